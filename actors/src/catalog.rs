//! Catalog: the one SQLite writer, and the durable hop between stages.
//!
//! In: registrations of uploads, stage results (one or more stages of a
//! document at once), index commits, failure decisions, retries, edits,
//! deletes. Messages are buffered and written in one transaction per batch
//! (a group commit: whatever arrived while the previous batch was
//! committing), each under its own savepoint, so one failing operation
//! fails alone. Out, only after the commit: replies to callers, each
//! advanced job forwarded to its next stage, what happened to claimed jobs
//! to the Intake (one message per commit), retry times to the Scheduler.
//! So the actor chain only ever carries states that are durable, and a
//! crash at any point re-admits each document from its last committed
//! stage. Every stage write is conditional on the stage it expects, so a
//! duplicate or stale completion changes nothing.

mod ops;
mod stages;
mod writer;

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use crate::config::CatalogConfig;
use crate::counters::Counters;
use crate::model::DocJob;
use crate::routes::{
    forward, tell, CatalogMsg, ClaimId, EmbedderMsg, IntakeMsg, NotifierMsg, Reply, Routes,
    RoutesRx, SchedulerMsg, TrainerMsg,
};
use crate::store::blobs::Blobs;
use crate::store::schema::open_writer;
use writer::Writer;

/// What to do once a batch is committed.
enum Effect {
    Replied(Box<dyn FnOnce() + Send>),
    Forward(DocJob),
    Release(DocJob),
    RetryDue(i64),
    /// A staged attachment's blob, registered: move it into place.
    Promote(String),
    /// A staged attachment's blob that was not registered.
    Discard(String),
    /// New documents after the Intake's cursor.
    WakeIntake,
    /// A document below the cursor became due again.
    RescanIntake,
    /// A user set the type of a document of this workspace: its
    /// classifier learns from it.
    Retrain(String),
    /// Documents just indexed: the Embedder gives them vectors.
    Embed(Vec<i64>),
    /// A document's vectors in the search, replaced (or dropped: `None`).
    Vectors(i64, Option<Vec<crate::embed::vectors::ChunkVector>>),
    /// A webhook created or deleted.
    Webhook(String),
    /// A webhook with deliveries made due.
    Poke(String),
    /// A workflow stored or deleted.
    Workflow(String),
}

impl Effect {
    /// An answer to a caller, sent after the commit.
    fn reply<T: Send + 'static>(reply: Reply<T>, value: T) -> Effect {
        Effect::Replied(Box::new(move || {
            let _ = reply.send(Ok(value));
        }))
    }
}

pub struct Catalog;

pub struct CatalogArgs {
    pub path: std::path::PathBuf,
    pub config: CatalogConfig,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
    pub blobs: Blobs,
    /// Told the last event's `seq` once its batch is durable.
    pub events: Arc<tokio::sync::watch::Sender<i64>>,
}

pub struct CatalogState {
    writer: Writer,
    counters: Arc<Counters>,
}

impl Actor for Catalog {
    type Msg = CatalogMsg;
    type State = CatalogState;
    type Arguments = CatalogArgs;

    async fn pre_start(
        &self,
        me: ActorRef<CatalogMsg>,
        args: CatalogArgs,
    ) -> Result<CatalogState, ActorProcessingErr> {
        // Opened here, so that a database that cannot be opened fails the start.
        let conn = open_writer(&args.path, "normal")?;
        args.counters.catalog.pool_size.store(1, Relaxed);
        let counters = args.counters.clone();
        let writer = Writer::start(conn, args, me)?;
        Ok(CatalogState { writer, counters })
    }

    async fn handle(
        &self,
        _me: ActorRef<CatalogMsg>,
        msg: CatalogMsg,
        st: &mut CatalogState,
    ) -> Result<(), ActorProcessingErr> {
        if let CatalogMsg::WriterDown(why) = msg {
            return Err(why.into());
        }
        st.counters.catalog.queued(1);
        if !st.writer.send(msg) {
            return Err("the catalog's writer thread has stopped".into());
        }
        Ok(())
    }
}

/// Writes one document's stage outputs in a transaction of the caller's,
/// exactly as the Catalog does (the load benchmark's same-work baseline).
/// True if the document advanced.
pub fn write_stage_outputs(
    tx: &rusqlite::Transaction<'_>,
    job: DocJob,
    outputs: Vec<crate::routes::StageOutput>,
    now: i64,
) -> anyhow::Result<bool> {
    let mut fx = Vec::new();
    stages::write_stages(tx, job, outputs, now, &mut fx)?;
    Ok(fx.iter().any(|e| matches!(e, Effect::Forward(_))))
}

fn apply_effects(routes: &Routes, effects: Vec<Effect>) {
    // The Intake learns which jobs wait in their next stage's queue, and
    // which left the chain, in one message per commit; it learns the first
    // before any worker there can report taking one.
    let mut queued: Vec<(ClaimId, crate::model::Stage)> = Vec::new();
    let mut released: Vec<ClaimId> = Vec::new();
    let (mut wake, mut rescan) = (false, false);
    let mut retrain = std::collections::BTreeSet::new();
    let mut forwards = Vec::new();
    let mut indexed = Vec::new();
    for e in effects {
        match e {
            Effect::Replied(f) => f(),
            Effect::Forward(job) => {
                queued.push(((job.seq, job.admission), job.stage));
                forwards.push(job);
            }
            Effect::Release(job) => released.push((job.seq, job.admission)),
            Effect::RetryDue(at) => tell(&routes.scheduler, SchedulerMsg::Due(at), "scheduler"),
            Effect::WakeIntake => wake = true,
            Effect::Promote(_) | Effect::Discard(_) => {}
            Effect::RescanIntake => rescan = true,
            Effect::Retrain(ws) => {
                retrain.insert(ws);
            }
            Effect::Embed(seqs) => indexed.extend(seqs),
            Effect::Vectors(seq, Some(chunks)) => routes.vectors.replace(seq, &chunks),
            Effect::Vectors(seq, None) => routes.vectors.remove(seq),
            Effect::Webhook(id) => tell(&routes.notifier, NotifierMsg::Changed(id), "notifier"),
            Effect::Poke(id) => tell(&routes.notifier, NotifierMsg::Poke(id), "notifier"),
            Effect::Workflow(name) => {
                tell(&routes.notifier, NotifierMsg::Workflow(name), "notifier")
            }
        }
    }
    if !indexed.is_empty() {
        tell(&routes.embedder, EmbedderMsg::Indexed(indexed), "embedder");
    }
    if !(queued.is_empty() && released.is_empty() && !wake) {
        let msg = IntakeMsg::Committed {
            queued,
            released,
            wake,
        };
        tell(&routes.intake, msg, "intake");
    }
    for job in forwards {
        forward(routes, job);
    }
    if rescan {
        tell(&routes.intake, IntakeMsg::Rescan, "intake");
    }
    for ws in retrain {
        tell(&routes.trainer, TrainerMsg::Corrected(ws), "trainer");
    }
}
