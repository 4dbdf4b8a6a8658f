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

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use rusqlite::Connection;

use crate::config::CatalogConfig;
use crate::counters::Counters;
use crate::model::{now_ms, DocJob};
use crate::routes::{
    current_routes, forward, tell, CatalogMsg, ClaimId, IntakeMsg, Reply, Routes, RoutesRx,
    SchedulerMsg, TrainerMsg,
};
use crate::store::blobs::Blobs;
use crate::store::schema::open_writer;

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
    /// A user set a document's type: the classifier learns from it.
    Retrain,
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
}

pub struct CatalogState {
    args: CatalogArgs,
    conn: Option<Connection>,
    pending: Vec<CatalogMsg>,
    flush_queued: bool,
}

impl Actor for Catalog {
    type Msg = CatalogMsg;
    type State = CatalogState;
    type Arguments = CatalogArgs;

    async fn pre_start(
        &self,
        _me: ActorRef<CatalogMsg>,
        args: CatalogArgs,
    ) -> Result<CatalogState, ActorProcessingErr> {
        let conn = open_writer(&args.path, &args.config.synchronous)?;
        args.counters.catalog.pool_size.store(1, Relaxed);
        Ok(CatalogState {
            args,
            conn: Some(conn),
            pending: Vec::new(),
            flush_queued: false,
        })
    }

    async fn handle(
        &self,
        me: ActorRef<CatalogMsg>,
        msg: CatalogMsg,
        st: &mut CatalogState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CatalogMsg::Flush => {
                st.flush_queued = false;
                flush(st).await?;
            }
            other => {
                st.args.counters.catalog.queued(1);
                st.pending.push(other);
                if st.pending.len() >= st.args.config.max_batch {
                    flush(st).await?;
                } else if !st.flush_queued {
                    // Everything already in the mailbox is handled before this
                    // Flush, so it joins the same transaction.
                    st.flush_queued = true;
                    me.cast(CatalogMsg::Flush)?;
                }
            }
        }
        Ok(())
    }
}

async fn flush(st: &mut CatalogState) -> Result<(), ActorProcessingErr> {
    if st.pending.is_empty() {
        return Ok(());
    }
    let ops = std::mem::take(&mut st.pending);
    let n = ops.len();
    let mut conn = st.conn.take().ok_or("catalog connection lost")?;
    let counters = st.args.counters.clone();
    let _timer = counters.catalog.start_job();
    counters.catalog.queued(1 - n as i64);
    let (conn, result) = tokio::task::spawn_blocking(move || {
        let result = write_batch(&mut conn, ops);
        (conn, result)
    })
    .await?;
    st.conn = Some(conn);
    let effects = result?;
    counters.catalog.num_processed.fetch_add(n as u64, Relaxed);
    counters.num_commits_catalog.fetch_add(1, Relaxed);
    // Attachments' blobs move into place before anyone can admit them.
    let blob_ops: Vec<(bool, String)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Promote(id) => Some((true, id.clone())),
            Effect::Discard(id) => Some((false, id.clone())),
            _ => None,
        })
        .collect();
    for (promote, id) in blob_ops {
        if !promote {
            st.args.blobs.discard(&id).await;
        } else if let Err(e) = st.args.blobs.promote(&id).await {
            tracing::error!(doc_id = %id, error = %format!("{e:#}"), "attachment not moved into place; the next start finishes it");
        }
    }
    // Replies go out even if a sibling is down: the batch is committed.
    apply_effects(&current_routes(&st.args.routes)?, effects);
    Ok(())
}

fn write_batch(conn: &mut Connection, ops: Vec<CatalogMsg>) -> anyhow::Result<Vec<Effect>> {
    let tx = conn.transaction()?;
    let now = now_ms();
    let mut effects = Vec::with_capacity(ops.len());
    for op in ops {
        // One operation that fails (a constraint, a bad value) fails alone:
        // its writes are undone, its caller's request fails (the reply is
        // dropped with its effects), and the rest of the batch commits.
        // Cached: these run around every operation of every batch.
        tx.prepare_cached("SAVEPOINT op")?.execute([])?;
        let mut local = Vec::new();
        match ops::write_one(&tx, op, now, &mut local) {
            Ok(()) => {
                tx.prepare_cached("RELEASE op")?.execute([])?;
                effects.append(&mut local);
            }
            Err(e) => {
                // If SQLite gave up the whole transaction (I/O errors), this
                // fails too and the batch fails as one, as before.
                tx.execute_batch("ROLLBACK TO op; RELEASE op")?;
                tracing::error!(error = %format!("{e:#}"), "a catalog operation failed; the rest of its batch goes on");
            }
        }
    }
    tx.commit()?;
    Ok(effects)
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
    let (mut wake, mut rescan, mut retrain) = (false, false, false);
    let mut forwards = Vec::new();
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
            Effect::Retrain => retrain = true,
        }
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
    if retrain {
        tell(&routes.trainer, TrainerMsg::Corrected, "trainer");
    }
}
