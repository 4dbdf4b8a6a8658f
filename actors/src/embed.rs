//! Embeddings: the built-in static embedder (a table distilled from
//! all-MiniLM-L6-v2), Ollama's `/api/embed` as the other, chunking, and
//! the in-memory vector index the searches read.

pub mod chunk;
pub mod distill;
pub mod table;
pub mod vectors;
pub mod wordpiece;

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;

pub use crate::config::{EmbedBackend, EmbedConfig};
use table::StaticTable;
use vectors::VectorIndex;

/// The embedder in force.
pub enum Embedder {
    Builtin(StaticTable),
    /// Ollama's `/api/embed`, on the LLM's endpoints and breakers.
    Ollama {
        llm: Arc<crate::llm::Llm>,
        model: String,
        id: String,
    },
}

impl Embedder {
    /// Names the vectors this embedder makes: vectors of another are
    /// never compared with them.
    pub fn id(&self) -> &str {
        match self {
            Embedder::Builtin(t) => &t.id,
            Embedder::Ollama { id, .. } => id,
        }
    }

    /// 0: known once the first vectors come back.
    pub fn dims(&self) -> usize {
        match self {
            Embedder::Builtin(t) => t.dims,
            Embedder::Ollama { .. } => 0,
        }
    }

    /// One unit vector per text (`None`: nothing in it to embed).
    pub async fn embed(
        self: &Arc<Self>,
        texts: Vec<String>,
    ) -> anyhow::Result<Vec<Option<Vec<f32>>>> {
        match &**self {
            Embedder::Builtin(_) => {
                let me = self.clone();
                tokio::task::spawn_blocking(move || {
                    let Embedder::Builtin(t) = &*me else {
                        unreachable!("matched above")
                    };
                    let mut scratch = Vec::new();
                    texts.iter().map(|s| t.embed(s, &mut scratch)).collect()
                })
                .await
                .context("the embedder panicked")
            }
            Embedder::Ollama { llm, model, .. } => {
                let vectors = llm
                    .embed(model, texts)
                    .await
                    .map_err(|e| anyhow::anyhow!("Ollama could not embed: {e}"))?;
                Ok(vectors
                    .into_iter()
                    .map(|mut v| table::normalize(&mut v).then_some(v))
                    .collect())
            }
        }
    }
}

/// What the engine shares about embeddings: the embedder (if one is
/// configured and could be loaded), why not otherwise, and the vectors.
pub struct Embedding {
    pub backend: EmbedBackend,
    pub model: String,
    pub embedder: Option<Arc<Embedder>>,
    /// Why there is no embedder although one is configured.
    pub problem: Option<String>,
    pub vectors: Arc<VectorIndex>,
    pub config: EmbedConfig,
}

impl Embedding {
    /// `llm`: the configured Ollama endpoints, if any (the `ollama` backend
    /// embeds through them).
    pub fn open(
        config: &EmbedConfig,
        data_dir: &Path,
        llm: Option<Arc<crate::llm::Llm>>,
    ) -> Embedding {
        let (embedder, problem) = match config.backend {
            EmbedBackend::Off => (None, None),
            EmbedBackend::Builtin => {
                let path = if config.table.is_empty() {
                    data_dir
                        .join("embed")
                        .join(format!("{}.dpemb", config.model))
                } else {
                    config.table.clone().into()
                };
                match StaticTable::load(&path) {
                    Ok(t) => (Some(Arc::new(Embedder::Builtin(t))), None),
                    Err(e) => {
                        let why = format!(
                            "{e:#}; make it with `docpipe distill-embedder` (`make deps` does) and set embed.table"
                        );
                        // Said loudly when the table was named; without one
                        // (the default), search by words is the plan.
                        if config.table.is_empty() {
                            tracing::info!("semantic search is off: {why}");
                        } else {
                            tracing::warn!("semantic search is off: {why}");
                        }
                        (None, Some(why))
                    }
                }
            }
            EmbedBackend::Ollama => match llm {
                Some(llm) => (
                    Some(Arc::new(Embedder::Ollama {
                        llm,
                        model: config.model.clone(),
                        id: format!("ollama:{}", config.model),
                    })),
                    None,
                ),
                None => (
                    None,
                    Some("embed.backend = \"ollama\" needs ollama.endpoints".into()),
                ),
            },
        };
        let dims = embedder.as_ref().map_or(0, |e| e.dims());
        Embedding {
            backend: config.backend,
            model: config.model.clone(),
            embedder,
            problem,
            vectors: Arc::new(VectorIndex::new(dims)),
            config: config.clone(),
        }
    }

    /// The text of each passage to embed (see [`chunk::passages`]).
    pub fn passages(&self, title: &str, text: &str) -> Vec<(chunk::Chunk, String)> {
        chunk::passages(title, text, self.config.chunk_chars)
    }
}
