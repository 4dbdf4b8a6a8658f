//! The wiring: what the actors say to each other, and how it reaches them.
//!
//! Every message type, the reply port, the current actor references
//! ([`Routes`], published by the supervisor after each restart), and the few
//! ways to send ([`tell`], [`forward`], [`started`]) live here, below the
//! actors, so that no actor module imports another. An actor names its
//! peers only through `Routes`.

use std::sync::Arc;

use ractor::factory::FactoryRef;
use ractor::{ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::watch;

use crate::counters::Counters;
use crate::errors::EngineError;
use crate::model::{
    Classification, DocJob, ErrorInfo, Extracted, Found, Kind, NewDocument, NewNote, Origin,
    Registered, RetryOutcome, Scope, Stage,
};
use crate::store::webhooks::{Attempted, WebhookRow};
use crate::store::workflows::PutOutcome;
use crate::store::{Edit, EditResult, Flag, LabelKind, TokenRow};

/// How an actor answers a call: the value, or a typed error.
pub type Reply<T> = RpcReplyPort<Result<T, EngineError>>;

/// What one durable step of a document produced, stage by stage. The
/// Catalog writes each part with its stage advance and its event, in order,
/// in one transaction (see `catalog::stages`).
pub enum StageOutput {
    /// `queued → extracted`: the text, what the format carries, and the
    /// attachments found in it (staged like uploads).
    Extracted {
        out: Box<Extracted>,
        children: Vec<NewDocument>,
    },
    /// `extracted → classified`.
    Classified(Classification),
    /// `classified → enriched`; `needs_llm`: the LLM could not be asked.
    Enriched { fields: Vec<Found>, needs_llm: bool },
    /// `enriched → indexed`, after the index commit that holds the document.
    Indexed,
}

impl StageOutput {
    /// The stage this output moves a document out of, and the one it moves
    /// it into.
    pub fn advance(&self) -> (Stage, Stage) {
        match self {
            StageOutput::Extracted { .. } => (Stage::Queued, Stage::Extracted),
            StageOutput::Classified(_) => (Stage::Extracted, Stage::Classified),
            StageOutput::Enriched { .. } => (Stage::Classified, Stage::Enriched),
            StageOutput::Indexed => (Stage::Enriched, Stage::Indexed),
        }
    }
}

pub enum CatalogMsg {
    Register {
        docs: Vec<NewDocument>,
        origin: Origin,
        reply: Reply<Vec<Registered>>,
    },
    /// A worker's result: one or more stages of one document.
    Advanced {
        job: DocJob,
        outputs: Vec<StageOutput>,
    },
    /// The index commit holds these documents.
    Indexed { jobs: Vec<DocJob> },
    /// Passages' vectors by `embedder`, each stored only if its document's
    /// row is still the version they were made from. Answers how many were.
    Embedded {
        embedder: String,
        docs: Vec<EmbeddedDoc>,
        reply: Reply<usize>,
    },
    Failure {
        job: DocJob,
        attempts: u32,
        retry_at: Option<i64>,
        error: ErrorInfo,
    },
    Retry {
        id: String,
        scope: Scope,
        origin: Origin,
        reply: Reply<RetryOutcome>,
    },
    /// Requeue the scope's documents flagged for `flag`.
    Reprocess {
        flag: Flag,
        scope: Scope,
        origin: Origin,
        reply: Reply<Vec<String>>,
    },
    /// Indexed documents back to indexing (`docpipe check --repair`).
    Reindex {
        ids: Vec<String>,
        origin: Origin,
        reply: Reply<Vec<String>>,
    },
    MarkDeleting {
        id: String,
        scope: Scope,
        origin: Origin,
        reply: Reply<bool>,
    },
    Purge {
        id: String,
        origin: Origin,
        reply: Reply<bool>,
    },
    CreateToken {
        token: TokenRow,
        origin: Origin,
        reply: Reply<()>,
    },
    RevokeToken {
        id: String,
        origin: Origin,
        reply: Reply<bool>,
    },
    Edit {
        id: String,
        scope: Scope,
        edit: Edit,
        origin: Origin,
        reply: Reply<EditResult>,
    },
    /// Creates a tag or a document type (`kind`); replies with its id, or
    /// the id of the one of that name that exists, and whether it is new.
    CreateLabel {
        kind: LabelKind,
        workspace: String,
        name: String,
        color: Option<String>,
        origin: Origin,
        reply: Reply<(i64, bool)>,
    },
    /// Makes a field name known with its kind (Paperless's custom fields);
    /// replies whether it is new.
    CreateFieldName {
        name: String,
        kind: Kind,
        origin: Origin,
        reply: Reply<bool>,
    },
    /// Adds a note to a document of the scope; replies with the note's id,
    /// or None when there is no such document.
    AddNote {
        id: String,
        scope: Scope,
        note: NewNote,
        origin: Origin,
        reply: Reply<Option<i64>>,
    },
    /// Stores a document type's definition (None: deleted).
    PutType {
        name: String,
        definition: Option<String>,
        origin: Origin,
        reply: Reply<()>,
    },
    /// Stores a newly trained classifier.
    /// Deletes a field template in the scope; replies with its workspace
    /// (None: no such template).
    DeleteTemplate {
        id: i64,
        scope: Scope,
        origin: Origin,
        reply: Reply<Option<String>>,
    },
    SaveClassifier {
        workspace: String,
        model: Vec<u8>,
        trained_at: i64,
        reply: Reply<()>,
    },
    /// Stores a new webhook.
    CreateWebhook {
        webhook: WebhookRow,
        origin: Origin,
        reply: Reply<()>,
    },
    /// Deletes a webhook of the scope; replies whether there was one.
    DeleteWebhook {
        id: String,
        scope: Scope,
        origin: Origin,
        reply: Reply<bool>,
    },
    /// Makes a failed delivery due again; replies whether there was one.
    Resend {
        webhook: String,
        event: i64,
        scope: Scope,
        origin: Origin,
        reply: Reply<bool>,
    },
    /// The Notifier's progress with a webhook: the events it has handled,
    /// and the attempts that did not go through (or went through on a
    /// later attempt).
    WebhookProgress {
        webhook: String,
        cursor: Option<i64>,
        attempts: Vec<Attempted>,
    },
    /// Creates or replaces a workflow of the scope.
    PutWorkflow {
        name: String,
        workspace: String,
        definition: serde_json::Value,
        scope: Scope,
        origin: Origin,
        reply: Reply<PutOutcome>,
    },
    DeleteWorkflow {
        name: String,
        scope: Scope,
        origin: Origin,
        reply: Reply<bool>,
    },
    /// A workflow has handled the events up to `cursor`.
    WorkflowCursor { name: String, cursor: i64 },
    /// A workflow sends `event` to a webhook: a delivery due now; replies
    /// whether it is new.
    QueueDelivery {
        webhook: String,
        event: i64,
        reply: Reply<bool>,
    },
    /// Replies once everything received before it is committed.
    Sync(Reply<()>),
    /// Internal: the Catalog's writer thread stopped (why); the Catalog
    /// fails, and its supervisor restarts it.
    WriterDown(String),
}

/// A claim of the Intake: the document's `seq` and its admission number.
pub type ClaimId = (i64, u64);

pub enum IntakeMsg {
    /// New documents were committed after the scan cursor.
    Wake,
    /// Something below the cursor became due (a retry, an edit, a restart).
    Rescan,
    /// A worker took the job from its stage's queue: its lease starts.
    Started(ClaimId),
    /// The Indexer holds these documents' text: their permits go back; the
    /// claims stay until the commit.
    Handoff(Vec<ClaimId>),
    /// What a Catalog commit did to claimed jobs: `queued` were sent on to
    /// the queue of this stage; `released` left the chain (indexed, failed,
    /// waiting for a retry, or stale).
    Committed {
        queued: Vec<(ClaimId, Stage)>,
        released: Vec<ClaimId>,
        wake: bool,
    },
    /// A stage actor restarted: what was in flight there is lost.
    Reset,
    /// Lease check.
    Tick,
    /// Stop admitting; reply when nothing is in flight.
    Drain(RpcReplyPort<()>),
    /// Internal: refill after a burst of messages.
    Refill,
}

/// An index commit point: its `meta.json` and the segments it names
/// (held, so that no merge deletes their files while they are copied).
pub struct IndexSnapshot {
    pub meta_json: Vec<u8>,
    pub segments: Vec<tantivy::index::SegmentMeta>,
}

pub enum IndexerMsg {
    Add(DocJob),
    Delete {
        id: String,
        reply: Reply<()>,
    },
    /// Commit now and reply (shutdown).
    CommitNow(Reply<()>),
    /// Commit, wait until the Catalog has written what that commit holds,
    /// run `hold` (with no index change meanwhile: a backup's copy of the
    /// catalog), and reply with the commit point.
    Snapshot {
        hold: std::sync::Arc<dyn Fn() -> anyhow::Result<()> + Send + Sync>,
        reply: Reply<IndexSnapshot>,
    },
    /// Internal: the commit interval elapsed.
    Commit,
    /// Internal: add the staged documents to the writer and tell the
    /// Intake which texts the index now holds.
    Flush,
}

pub enum SchedulerMsg {
    Failed {
        job: Box<DocJob>,
        error: ErrorInfo,
        retryable: bool,
    },
    /// A retry at this time (ms since the epoch) is committed.
    Due(i64),
    /// The armed timer fired, or the pipeline started.
    Wake,
}

/// One document's vectors, made from its row at `version` (`updated_at`).
pub struct EmbeddedDoc {
    pub seq: i64,
    pub version: i64,
    pub chunks: Vec<crate::embed::vectors::ChunkVector>,
}

pub enum EmbedderMsg {
    /// These documents were just indexed.
    Indexed(Vec<i64>),
    /// Internal: the next step.
    Next,
}

pub enum NotifierMsg {
    /// A webhook was created or deleted: its feed starts over.
    Changed(String),
    /// A webhook has deliveries made due (a re-send, a workflow's).
    Poke(String),
    /// A workflow was stored or deleted: its feed starts over.
    Workflow(String),
    /// Shutdown: let each feed finish the attempt it is in (and report it),
    /// start no other, and reply.
    Quiesce(Reply<()>),
}

pub enum TrainerMsg {
    /// A user set the type of a document of this workspace.
    Corrected(String),
    /// Internal: train, unless a later correction re-armed the timer.
    Train(u64),
}

/// The current reference of every actor. Replaced whenever one restarts.
#[derive(Clone)]
pub struct Routes {
    pub catalog: ActorRef<CatalogMsg>,
    pub intake: ActorRef<IntakeMsg>,
    pub scheduler: ActorRef<SchedulerMsg>,
    pub indexer: ActorRef<IndexerMsg>,
    pub extract: FactoryRef<(), DocJob>,
    pub classify: FactoryRef<(), DocJob>,
    pub enrich: FactoryRef<(), DocJob>,
    pub trainer: ActorRef<TrainerMsg>,
    pub embedder: ActorRef<EmbedderMsg>,
    pub notifier: ActorRef<NotifierMsg>,
    /// The search's vectors: the Catalog updates them after each commit.
    pub vectors: Arc<crate::embed::vectors::VectorIndex>,
    pub counters: Arc<Counters>,
}

pub type RoutesRx = watch::Receiver<Option<Routes>>;

pub fn current_routes(rx: &RoutesRx) -> Result<Routes, ActorProcessingErr> {
    rx.borrow()
        .clone()
        .ok_or_else(|| "the pipeline is not wired yet".into())
}

/// Sends to a sibling actor without failing the sender. A message to an actor
/// that has just died is lost, and that is recovered elsewhere: the restart
/// makes the supervisor reset the Intake, which admits the document again from
/// its committed stage (leases cover the rest). The sender must not die as
/// well: a Catalog that failed here would take its batch's replies with it.
pub fn tell<M: ractor::Message>(to: &ActorRef<M>, msg: M, what: &'static str) {
    if to.cast(msg).is_err() {
        tracing::warn!(to = what, "dropped a message to a stopped actor; its documents are admitted again after the restart");
    }
}

/// Sends a job whose stage was just committed to the actor for its next stage.
pub fn forward(routes: &Routes, job: DocJob) {
    let pool = match job.stage {
        Stage::Queued => (&routes.extract, &routes.counters.extract, "extract"),
        Stage::Extracted => (&routes.classify, &routes.counters.classify, "classify"),
        Stage::Classified => (&routes.enrich, &routes.counters.enrich, "enrich"),
        Stage::Enriched => {
            routes.counters.indexer.queued(1);
            tell(&routes.indexer, IndexerMsg::Add(job), "indexer");
            return;
        }
        other => {
            tracing::error!(doc_id = %job.id, stage = %other, "no stage follows this one; not forwarded");
            return;
        }
    };
    let (factory, counters, name) = pool;
    counters.queued(1);
    if factory.dispatch((), job).is_err() {
        tracing::warn!(
            to = name,
            "dropped a job for a stopped pool; it is admitted again after the restart"
        );
    }
}

/// Tells the Intake a worker took `job` from its queue (its lease starts).
pub fn started(routes: &RoutesRx, job: &DocJob) {
    if let Ok(r) = current_routes(routes) {
        tell(
            &r.intake,
            IntakeMsg::Started((job.seq, job.admission)),
            "intake",
        );
    }
}
