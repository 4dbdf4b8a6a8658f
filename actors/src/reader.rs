//! The read side of the engine: documents, text, events, lists, search,
//! similar documents, status, tokens, labels, tasks. Reads go straight to
//! SQLite read connections, the Tantivy reader and the blob store; they
//! never queue behind the pipeline's actors. Split by concern into
//! `reader/`.

pub mod admin;
pub mod ask;
mod documents;
mod search;
mod status;

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

use crate::classifier::ModelSlot;
use crate::config::{EngineConfig, TypeConfig};
use crate::counters::{ActorSnapshot, Counters};
use crate::extract::ocr::{Ocr, OcrStatus};
use crate::llm::{Llm, LlmStatus};
use crate::store::blobs::Blobs;
use crate::store::index::SearchIndex;
use crate::store::pool::ReadPool;
use crate::types::TypesSlot;

/// Cheap to clone; every clone reads the same engine.
#[derive(Clone)]
pub struct Reader {
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) db: ReadPool,
    pub(crate) index: SearchIndex,
    pub(crate) blobs: Blobs,
    pub(crate) counters: Arc<Counters>,
    pub(crate) ocr: Arc<Ocr>,
    pub(crate) llm: Option<Arc<Llm>>,
    pub(crate) types: TypesSlot,
    pub(crate) model: ModelSlot,
    pub(crate) templates: crate::fields::templates::TemplatesSlot,
    pub(crate) embedding: Arc<crate::embed::Embedding>,
    /// The last durable event's `seq` (see [`Reader::stream_events`]).
    pub(crate) events: tokio::sync::watch::Receiver<i64>,
}

/// A document's original, as it streams out of SQLite or the blob store.
pub type Original =
    futures::stream::BoxStream<'static, std::result::Result<Bytes, object_store::Error>>;

/// A document type as `GET /api/v1/types` shows it.
#[derive(Debug, Serialize)]
pub struct TypeInfo {
    #[serde(flatten)]
    pub def: TypeConfig,
    /// "config" (from config.toml) or "api".
    pub origin: &'static str,
}

/// What `GET /api/v1/classifier` reports about the learned classifier.
#[derive(Debug, Serialize)]
pub struct ClassifierInfo {
    /// The workspace whose model this is (each learns from its own
    /// corrections).
    pub workspace: String,
    /// "naive_bayes" (words alone) or "naive_bayes+meaning" (words and the
    /// built-in embedder's vectors) once trained; null before the first
    /// correction.
    pub model: Option<&'static str>,
    /// The meaning model's share of the prediction (0 to 1), as
    /// cross-validation chose it.
    pub meaning_share: Option<f32>,
    pub trained_at: Option<String>,
    /// Documents learned from (those whose type a user set), per type.
    pub labels: BTreeMap<String, u32>,
    pub samples: u32,
    /// Accuracy in stratified cross-validation on those documents (null with
    /// fewer than two documents of some type).
    pub accuracy: Option<f32>,
    pub review_threshold: f32,
}

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error("{0}")]
    Query(String),
    /// Semantic search asked for, and no vectors to search.
    #[error("{0}")]
    NoEmbeddings(String),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// How a search ranks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SearchMode {
    /// Words only (BM25).
    Fulltext,
    /// Meaning only: the passages' vectors.
    Semantic,
    /// Both, fused by reciprocal rank.
    Hybrid,
}

impl SearchMode {
    pub fn parse(s: &str) -> Option<SearchMode> {
        Some(match s {
            "fulltext" => SearchMode::Fulltext,
            "semantic" => SearchMode::Semantic,
            "hybrid" => SearchMode::Hybrid,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SearchMode::Fulltext => "fulltext",
            SearchMode::Semantic => "semantic",
            SearchMode::Hybrid => "hybrid",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SearchResults {
    /// Every hit, exactly (not only this page).
    pub total: u64,
    /// The mode the hits were ranked in (`fulltext` until documents have
    /// vectors).
    pub mode: &'static str,
    pub hits: Vec<SearchHit>,
    /// The facets asked for, counted over all hits.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub facets: crate::store::index::FacetCounts,
    /// Pass as `cursor` for the next page; null on the last.
    pub next_cursor: Option<String>,
    /// No document matched the words as written: these match them give or
    /// take a typo (one letter wrong, missing, extra, or two swapped).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub fuzzy: bool,
}

#[derive(Debug, Serialize)]
pub struct SearchHit {
    pub id: String,
    pub title: String,
    pub doc_type: Option<String>,
    pub score: f32,
    pub snippet: String,
}

#[derive(Debug, Serialize)]
pub struct StageStatus {
    pub documents: u64,
    pub in_flight: u64,
    pub processed: u64,
    pub failed: u64,
}

#[derive(Debug, Serialize)]
pub struct Status {
    pub stages: BTreeMap<&'static str, StageStatus>,
    pub actors: Vec<ActorSnapshot>,
    pub in_flight: u64,
    pub max_in_flight: usize,
    pub commits: Commits,
    pub retries_scheduled: u64,
    pub parked: u64,
    pub leases_expired: u64,
    pub index_docs: u64,
    /// Documents whose scanned pages wait for OCR.
    pub needs_ocr: u64,
    pub ocr: OcrStatus,
    /// Documents typed and enriched without the LLM while it was down.
    pub needs_llm: u64,
    pub llm: LlmStatus,
    /// Documents typed by the classifier below `review_threshold`.
    pub needs_review: u64,
    pub storage: StorageStatus,
    pub embed: EmbedStatus,
}

/// Passage vectors for semantic search.
#[derive(Debug, Serialize)]
pub struct EmbedStatus {
    /// `builtin`, `ollama` or `off`.
    pub backend: &'static str,
    pub model: String,
    /// Whether documents are being embedded (false: see `problem`).
    pub available: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// Indexed documents waiting for their vectors.
    pub pending: u64,
    /// Documents with vectors, and their passages, in the search.
    pub documents: u64,
    pub passages: u64,
}

/// The blob store: which, and how its breaker stands.
#[derive(Debug, Serialize)]
pub struct StorageStatus {
    /// `local` or `s3`.
    pub backend: &'static str,
    /// `local`, or `s3://bucket/prefix`.
    pub location: String,
    /// `closed`, `open` or `half_open`; null for the local disk.
    pub breaker: Option<&'static str>,
    /// Calls that failed, and times the breaker opened, since start.
    pub failures: u64,
    pub opened: u64,
}

#[derive(Debug, Serialize)]
pub struct Commits {
    pub catalog: u64,
    pub index: u64,
}
