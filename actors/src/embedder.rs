//! Embedder: gives indexed documents their passages' vectors, after
//! indexing, so that a document is found by its words as soon as it is
//! indexed and by its meaning a moment later.
//!
//! SQLite is its queue: a document waits for vectors while it is indexed
//! and its vectors are missing, were made by another embedder, or are
//! older than its row (see `store::vectors`). The Catalog tells it which
//! documents it has just indexed (a hint, taken first); at start, and
//! after a failure, it also walks every waiting document in order. Each
//! step reads a few documents' text, embeds their passages, and hands the
//! vectors to the Catalog, which stores them in the transaction that marks
//! the document embedded (only if its row has not changed meanwhile) and
//! then puts them in the search's vector index.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::counters::Counters;
use crate::embed::vectors::ChunkVector;
use crate::embed::{Embedder, Embedding};
use crate::routes::{current_routes, CatalogMsg, EmbeddedDoc, EmbedderMsg, RoutesRx};
use crate::store::pool::ReadPool;
use crate::store::vectors::{pending_after, read_to_embed};

/// After a failed step (Ollama down, say), the walk starts again this much
/// later, doubling up to a minute.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Hints held at most; past them the Embedder walks SQLite's queue instead.
const MAX_HINTS: usize = 10_000;

pub struct EmbedderActor;

pub struct EmbedderArgs {
    pub embedding: Arc<Embedding>,
    pub db: ReadPool,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
}

pub struct EmbedderState {
    args: EmbedderArgs,
    embedder: Arc<Embedder>,
    hinted: VecDeque<i64>,
    /// The walk over every waiting document: the last one looked at.
    walk: Option<i64>,
    /// A `Next` is on its way.
    running: bool,
    backoff: Duration,
}

impl Actor for EmbedderActor {
    type Msg = EmbedderMsg;
    type State = Option<EmbedderState>;
    type Arguments = EmbedderArgs;

    async fn pre_start(
        &self,
        me: ActorRef<EmbedderMsg>,
        args: EmbedderArgs,
    ) -> Result<Option<EmbedderState>, ActorProcessingErr> {
        // Without an embedder the actor only swallows its hints.
        let Some(embedder) = args.embedding.embedder.clone() else {
            return Ok(None);
        };
        args.counters.embedder.pool_size.store(1, Relaxed);
        me.cast(EmbedderMsg::Next)?;
        Ok(Some(EmbedderState {
            args,
            embedder,
            hinted: VecDeque::new(),
            walk: Some(0),
            running: true,
            backoff: FIRST_BACKOFF,
        }))
    }

    async fn handle(
        &self,
        me: ActorRef<EmbedderMsg>,
        msg: EmbedderMsg,
        st: &mut Option<EmbedderState>,
    ) -> Result<(), ActorProcessingErr> {
        let Some(st) = st else {
            return Ok(());
        };
        match msg {
            EmbedderMsg::Indexed(seqs) => {
                if st.hinted.len() + seqs.len() > MAX_HINTS {
                    // Faster than embedding: the walk finds them all.
                    st.hinted.clear();
                    st.walk = Some(0);
                } else {
                    st.hinted.extend(seqs);
                }
                if !st.running {
                    st.running = true;
                    me.cast(EmbedderMsg::Next)?;
                }
            }
            EmbedderMsg::Next => match step(st).await {
                Ok(true) => me.cast(EmbedderMsg::Next)?,
                Ok(false) => st.running = false,
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), retry_in = ?st.backoff, "embedding failed; the documents wait");
                    st.args.counters.embedder.num_failed.fetch_add(1, Relaxed);
                    st.hinted.clear();
                    st.walk = Some(0);
                    me.send_after(st.backoff, || EmbedderMsg::Next);
                    st.backoff = (st.backoff * 2).min(MAX_BACKOFF);
                }
            },
        }
        Ok(())
    }
}

/// Embeds the next few waiting documents; false when none waits.
async fn step(st: &mut EmbedderState) -> anyhow::Result<bool> {
    let batch = st.args.embedding.config.batch.max(1);
    let id = st.embedder.id().to_string();
    let mut seqs: Vec<i64> = Vec::new();
    while seqs.len() < batch {
        match st.hinted.pop_front() {
            Some(s) => seqs.push(s),
            None => break,
        }
    }
    let db = st.args.db.clone();
    if seqs.is_empty() {
        let Some(after) = st.walk else {
            return Ok(false);
        };
        let id = id.clone();
        seqs = db.run(move |c| pending_after(c, &id, after, batch)).await?;
        match seqs.last() {
            Some(&last) => st.walk = Some(last),
            None => {
                st.walk = None;
                return Ok(false);
            }
        }
    }
    let docs = {
        let id = id.clone();
        db.run(move |c| read_to_embed(c, &id, &seqs)).await?
    };
    if docs.is_empty() {
        return Ok(true);
    }
    let _timer = st.args.counters.embedder.start_job();
    let mut texts = Vec::new();
    let mut shapes = Vec::new();
    for d in &docs {
        let passages = st.args.embedding.passages(&d.title, &d.text);
        shapes.push(passages.iter().map(|(c, _)| *c).collect::<Vec<_>>());
        texts.extend(passages.into_iter().map(|(_, t)| t));
    }
    let mut vectors = st.embedder.embed(texts).await?.into_iter();
    let mut out = Vec::with_capacity(docs.len());
    for (d, shape) in docs.iter().zip(shapes) {
        let mut chunks = Vec::with_capacity(shape.len());
        for (no, c) in shape.into_iter().enumerate() {
            if let Some(v) = vectors.next().flatten() {
                chunks.push(ChunkVector::new(no as u32, c.page, c.start, c.end, &v));
            }
        }
        out.push(EmbeddedDoc {
            seq: d.seq,
            version: d.version,
            chunks,
        });
    }
    let n = out.len() as u64;
    let catalog = current_routes(&st.args.routes)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .catalog;
    match catalog
        .call(
            |reply| CatalogMsg::Embedded {
                embedder: id,
                docs: out,
                reply,
            },
            Some(Duration::from_secs(120)),
        )
        .await
    {
        Ok(ractor::rpc::CallResult::Success(r)) => {
            r?;
        }
        _ => anyhow::bail!("the catalog did not answer"),
    }
    st.args
        .counters
        .embedder
        .num_processed
        .fetch_add(n, Relaxed);
    st.backoff = FIRST_BACKOFF;
    Ok(true)
}
