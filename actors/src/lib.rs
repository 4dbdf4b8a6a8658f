//! docpipe's engine: supervised actors around a durable SQLite queue.
//!
//! ```text
//!  upload ─► blobs: incoming/<id> ─► Catalog.Register (commit) ─► blobs: docs/<id> ─► 202
//!                                              │ Committed{wake}
//!                                              ▼
//!  SQLite (the queue) ◄──── ready query ──── Intake ── max_in_flight permits, leases
//!        ▲                                     │ admit by stage
//!        │ group commits                       ▼
//!     Catalog ◄── Advanced ── Extract pool (factory; untrusted formats in parser processes)
//!        │        (extracted; with no LLM to ask: + classified + enriched, one step)
//!        │ ── forward ──► Classify pool (factory; only when the LLM is asked)
//!        │ ◄── Advanced ─┘
//!        │ ── forward ──► Enrich pool (factory; only when the LLM is asked)
//!        │ ◄── Advanced ─┘
//!        │ ── forward ──► Indexer (the one Tantivy writer; batch commits) ── Handoff ──► Intake
//!        │ ◄── Indexed (after the index commit)
//!        │ ── Indexed (hint) ──► Embedder (passage vectors; walks SQLite's queue) ── Embedded ──► Catalog
//!        │     (vectors stored with the embedded mark, then into the search's in-memory VectorIndex)
//!        │ ── Committed{queued, released} ──► Intake
//!        │ ── Corrected ──► Trainer (retrains the learned classifier) ── SaveClassifier ──► Catalog
//!     Scheduler ◄── failures; ──► Catalog (retry_at | failed), timers ──► Intake.Rescan
//!  PipelineSupervisor: spawns, links and restarts all of the above, from one table.
//! ```
//!
//! Actors talk only through [`routes`] (message types, `Routes`, `tell`,
//! `forward`); no actor module imports another. Each actor file is a thin
//! shell over plain functions: [`analyze`], [`classifier`], [`fields`],
//! `extract/`, `catalog/`, and all SQL in [`store`]. Reads (documents, text,
//! search, status) go through the [`Reader`], straight to SQLite read
//! connections and the Tantivy reader, never through the actors.

pub mod analyze;
pub mod breaker;
pub mod catalog;
pub mod classifier;
pub mod classify;
pub mod config;
pub mod counters;
pub mod embed;
pub mod embedder;
pub mod engine;
pub mod enrich;
pub mod errors;
pub mod extract;
#[cfg(feature = "failpoints")]
pub mod faults;
pub mod fields;
pub mod indexer;
pub mod intake;
pub mod llm;
pub mod maintenance;
pub mod memory;
pub mod model;
pub mod notifier;
pub mod pipeline;
pub mod reader;
pub mod routes;
pub mod scheduler;
pub mod store;
pub mod trainer;
pub mod types;

pub use config::{EngineConfig, TypeConfig, WebhooksConfig};
pub use counters::ActorSnapshot;
pub use engine::{NewWebhook, Pipeline, PoolsInForce, PoolsRequest, TypeError, MAX_POOL_WORKERS};
pub use errors::{Code, EngineError};
pub use extract::detect::{sniff, Sniffed};
pub use fields::normalize;
pub use model::{
    clean_filename, format_ms, now_ms, valid_workspace, Document, ErrorInfo, FieldValue, Kind,
    NewDocument, NewNote, Origin, Registered, RetryOutcome, Scope, Stage, UploadExtras,
    DEFAULT_WORKSPACE,
};
pub use reader::admin::{field_id, FieldName};
pub use reader::{
    ClassifierInfo, Original, Reader, SearchError, SearchHit, SearchMode, SearchResults,
    StageStatus, Status, TypeInfo,
};
pub use store::analytics::{Analytics, AnalyticsQuery, Period};
pub use store::blobs::{Staged, StoreUnavailable, Upload, HEAD_BYTES};
pub use store::events::{StreamEvent, StreamFilter, STREAM_STAGES};
pub use store::webhooks::{DeliveryRow, WebhookRow};
pub use store::workflows::{PutOutcome, WorkflowRow};
pub use store::{
    Cmp, DocExtras, DocOrder, DocQuery, Edit, EditResult, Event, Flag, Label, LabelFilter,
    LabelKind, Links, ListFilter, MimeCount, Note, TaskView, TokenRow, UserField,
};

/// Entry point of the parser mode (see [`extract::sandbox`]).
pub fn parser_main(args: &[String]) -> i32 {
    #[cfg(feature = "failpoints")]
    faults::setup();
    extract::sandbox::child_main(args)
}
