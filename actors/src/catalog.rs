//! Catalog: the one SQLite writer, and the durable hop between stages.
//!
//! In: registrations of uploads, stage results (extracted text,
//! classification, index commits), failure decisions, retries and deletes.
//! Messages are buffered and written in one transaction per batch (a group
//! commit: whatever arrived while the previous batch was committing). Out,
//! only after the commit: replies to callers, each advanced job forwarded to
//! its next stage, finished jobs released to the Intake, retry times to the
//! Scheduler. So the actor chain only ever carries states that are durable,
//! and a crash at any point re-admits each document from its last committed
//! stage. Every write is conditional on the stage it expects, so a duplicate
//! or stale completion changes nothing.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use rusqlite::{Connection, Transaction};
use serde_json::json;

use crate::config::CatalogConfig;
use crate::counters::Counters;
use crate::enrich::fields::Found;
use crate::indexer::IndexerMsg;
use crate::intake::IntakeMsg;
use crate::model::{
    now_ms, Classification, DocJob, ErrorInfo, Extracted, NewDocument, Origin, Registered, Scope,
    Stage,
};
use crate::pipeline::{current_routes, tell, Routes, RoutesRx};
use crate::scheduler::SchedulerMsg;
use crate::store::db::{self, Inserted, NewEvent};
use crate::store::meta;
use crate::trainer::TrainerMsg;

pub type Reply<T> = RpcReplyPort<Result<T, String>>;

pub enum CatalogMsg {
    Register {
        docs: Vec<NewDocument>,
        origin: Origin,
        reply: Reply<Vec<Registered>>,
    },
    Extracted {
        job: DocJob,
        out: Extracted,
        /// Attachments found in the document, staged like uploads.
        children: Vec<NewDocument>,
    },
    Classified {
        job: DocJob,
        class: Classification,
    },
    Enriched {
        job: DocJob,
        fields: Vec<Found>,
        /// The LLM could not be asked: mark the document to ask it later.
        needs_llm: bool,
    },
    Indexed {
        jobs: Vec<DocJob>,
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
        reply: Reply<db::RetryResult>,
    },
    /// Requeue the scope's documents flagged for `flag`.
    Reprocess {
        flag: db::Flag,
        scope: Scope,
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
        token: db::TokenRow,
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
        edit: meta::Edit,
        origin: Origin,
        reply: Reply<meta::EditResult>,
    },
    /// Creates a tag or a document type (`kind`); replies with its id, or
    /// the id of the one of that name that exists.
    CreateLabel {
        kind: meta::LabelKind,
        workspace: String,
        name: String,
        color: Option<String>,
        origin: Origin,
        reply: Reply<(i64, bool)>,
    },
    /// Stores a document type's definition (None: deleted).
    PutType {
        name: String,
        definition: Option<String>,
        origin: Origin,
        reply: Reply<()>,
    },
    /// Stores a newly trained classifier.
    SaveClassifier {
        model: Vec<u8>,
        trained_at: i64,
        reply: Reply<()>,
    },
    /// Replies once everything received before it is committed.
    Sync(Reply<()>),
    /// Internal: write the buffered batch.
    Flush,
}

/// What to do once a batch is committed.
enum Effect {
    Registered(Reply<Vec<Registered>>, Vec<Registered>),
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

pub struct Catalog;

pub struct CatalogArgs {
    /// DOCPIPE_TEST_FAULTS=1: a registration whose filename contains
    /// `DOCPIPE-FAULT-catalog` makes this actor panic mid-batch (tests of the
    /// supervisor's restarts).
    pub test_faults: bool,
    pub path: std::path::PathBuf,
    pub config: CatalogConfig,
    pub routes: RoutesRx,
    pub counters: Arc<Counters>,
    pub blobs: crate::store::blobs::Blobs,
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
        let conn = db::open_writer(&args.path, &args.config.synchronous)?;
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
    let test_faults = st.args.test_faults;
    let _timer = counters.catalog.start_job();
    counters.catalog.queued(1 - n as i64);
    let (conn, result) = tokio::task::spawn_blocking(move || {
        let result = write_batch(&mut conn, ops, test_faults);
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

fn write_batch(
    conn: &mut Connection,
    ops: Vec<CatalogMsg>,
    test_faults: bool,
) -> anyhow::Result<Vec<Effect>> {
    let tx = conn.transaction()?;
    let now = now_ms();
    let mut effects = Vec::with_capacity(ops.len());
    for op in ops {
        let mut injected_error = false;
        if test_faults {
            if let CatalogMsg::Register { docs, .. } = &op {
                if docs
                    .iter()
                    .any(|d| d.filename.contains("DOCPIPE-FAULT-catalog-error"))
                {
                    injected_error = true;
                } else if docs
                    .iter()
                    .any(|d| d.filename.contains("DOCPIPE-FAULT-catalog"))
                {
                    panic!("injected catalog fault");
                }
            }
        }
        // One operation that fails (a constraint, a bad value) fails alone:
        // its writes are undone, its caller's request fails (the reply is
        // dropped with its effects), and the rest of the batch commits.
        // Cached: these run around every operation of every batch.
        tx.prepare_cached("SAVEPOINT op")?.execute([])?;
        let mut local = Vec::new();
        let result = if injected_error {
            Err(anyhow::anyhow!("injected catalog error"))
        } else {
            write_one(&tx, op, now, &mut local)
        };
        match result {
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

fn write_one(
    tx: &Transaction<'_>,
    op: CatalogMsg,
    now: i64,
    fx: &mut Vec<Effect>,
) -> anyhow::Result<()> {
    match op {
        CatalogMsg::Register {
            docs,
            origin,
            reply,
        } => {
            let mut out = Vec::with_capacity(docs.len());
            for d in &docs {
                out.push(match db::write_insert(tx, d, &origin, now)? {
                    Inserted::New => Registered {
                        id: d.id.clone(),
                        filename: d.filename.clone(),
                        sha256: d.sha256.clone(),
                        stage: Stage::Queued,
                        duplicate_of: None,
                    },
                    Inserted::Duplicate(first) => Registered {
                        id: first.id.clone(),
                        filename: first.filename.clone(),
                        sha256: first.sha256.clone(),
                        stage: first.stage,
                        duplicate_of: Some(first.id),
                    },
                });
            }
            fx.push(Effect::Registered(reply, out));
            fx.push(Effect::WakeIntake);
        }
        CatalogMsg::Extracted {
            mut job,
            out,
            children,
        } => {
            if db::write_extracted(tx, job.seq, &out, now)? {
                let origin = Origin {
                    token_id: None,
                    request_id: job.request_id.clone(),
                };
                for child in &children {
                    let staged = child.inline.is_none();
                    match db::write_insert(tx, child, &origin, now)? {
                        Inserted::New => {
                            meta::write_link(tx, job.seq, &child.id, &child.filename)?;
                            if staged {
                                fx.push(Effect::Promote(child.id.clone()));
                            }
                        }
                        Inserted::Duplicate(first) => {
                            // (A message that carries itself is not its own attachment.)
                            if first.id != job.id {
                                meta::write_link(tx, job.seq, &first.id, &child.filename)?;
                            }
                            if staged {
                                fx.push(Effect::Discard(child.id.clone()));
                            }
                        }
                    }
                }
                if !children.is_empty() {
                    fx.push(Effect::WakeIntake);
                }
                db::write_text(tx, job.seq, &out.text, out.title.as_deref(), out.pages)?;
                if let Some(m) = &out.mime {
                    job.mime = m.clone();
                }
                if job.title.is_none() && out.title.is_some() {
                    tx.execute(
                        "UPDATE documents SET title = ?2 WHERE seq = ?1 AND title IS NULL",
                        rusqlite::params![job.seq, out.title],
                    )?;
                    job.title = out.title.clone();
                }
                let detail = json!({"chars": out.text.chars().count(), "pages": out.pages,
                                    "ms": out.elapsed_ms, "needs_ocr": out.needs_ocr});
                let ev = NewEvent::pipeline(
                    &job.id,
                    &job.workspace,
                    job.request_id.as_deref(),
                    "extracted",
                    Some(Stage::Extracted),
                )
                .detail(detail);
                db::write_event(tx, &ev, now)?;
                job.stage = Stage::Extracted;
                job.attempts = 0;
                job.text = Some(Arc::from(out.text));
                fx.push(Effect::Forward(job));
            } else {
                for child in children.iter().filter(|c| c.inline.is_none()) {
                    fx.push(Effect::Discard(child.id.clone()));
                }
                fx.push(Effect::Release(job));
            }
        }
        CatalogMsg::Classified { mut job, class } => {
            if db::write_advance(tx, job.seq, Stage::Extracted, Stage::Classified, now)? {
                let kept = db::write_classification(tx, job.seq, &class, now)?;
                let (doc_type, confidence) = (kept.doc_type, kept.confidence);
                let detail = json!({"doc_type": doc_type, "confidence": confidence,
                                    "source": kept.source, "needs_review": kept.needs_review,
                                    "classifier": {"doc_type": class.doc_type, "confidence": class.confidence,
                                                   "source": class.source}});
                let ev = NewEvent::pipeline(
                    &job.id,
                    &job.workspace,
                    job.request_id.as_deref(),
                    "classified",
                    Some(Stage::Classified),
                )
                .detail(detail);
                db::write_event(tx, &ev, now)?;
                job.stage = Stage::Classified;
                job.attempts = 0;
                job.doc_type = doc_type;
                job.confidence = Some(confidence);
                fx.push(Effect::Forward(job));
            } else {
                fx.push(Effect::Release(job));
            }
        }
        CatalogMsg::Enriched {
            mut job,
            fields,
            needs_llm,
        } => {
            if db::write_advance(tx, job.seq, Stage::Classified, Stage::Enriched, now)? {
                let kept = meta::write_found_fields(tx, job.seq, &fields)?;
                if needs_llm {
                    tx.execute(
                        "UPDATE documents SET needs_llm = 1 WHERE seq = ?1",
                        [job.seq],
                    )?;
                }
                let ev = NewEvent::pipeline(
                    &job.id,
                    &job.workspace,
                    job.request_id.as_deref(),
                    "enriched",
                    Some(Stage::Enriched),
                )
                .detail(json!({
                    "fields": fields.iter().map(|f| &f.name).collect::<Vec<_>>(),
                    "kept_user_fields": kept,
                    "needs_llm": needs_llm,
                }));
                db::write_event(tx, &ev, now)?;
                job.stage = Stage::Enriched;
                job.attempts = 0;
                fx.push(Effect::Forward(job));
            } else {
                fx.push(Effect::Release(job));
            }
        }
        CatalogMsg::Indexed { jobs } => {
            for job in jobs {
                if db::write_advance(tx, job.seq, Stage::Enriched, Stage::Indexed, now)? {
                    let ev = NewEvent::pipeline(
                        &job.id,
                        &job.workspace,
                        job.request_id.as_deref(),
                        "indexed",
                        Some(Stage::Indexed),
                    );
                    db::write_event(tx, &ev, now)?;
                }
                fx.push(Effect::Release(job));
            }
        }
        CatalogMsg::Failure {
            job,
            attempts,
            retry_at,
            error,
        } => {
            if db::write_failure(tx, job.seq, job.stage, attempts, retry_at, &error, now)? {
                let detail = json!({"code": error.code, "message": error.message, "attempt": attempts,
                                    "retry_at": retry_at.map(crate::model::format_ms)});
                let kind = if retry_at.is_some() {
                    "attempt_failed"
                } else {
                    "failed"
                };
                let ev = NewEvent::pipeline(
                    &job.id,
                    &job.workspace,
                    job.request_id.as_deref(),
                    kind,
                    Some(job.stage),
                )
                .detail(detail);
                db::write_event(tx, &ev, now)?;
                if let Some(at) = retry_at {
                    fx.push(Effect::RetryDue(at));
                }
            }
            fx.push(Effect::Release(job));
        }
        CatalogMsg::Retry {
            id,
            scope,
            origin,
            reply,
        } => {
            let r = db::write_retry(tx, &id, &scope, &origin, now)?;
            fx.push(Effect::Replied(Box::new(move || {
                let _ = reply.send(Ok(r));
            })));
            fx.push(Effect::RescanIntake);
        }
        CatalogMsg::Reprocess {
            flag,
            scope,
            origin,
            reply,
        } => {
            let ids = db::write_reprocess_flagged(tx, flag, &scope, &origin, now)?;
            fx.push(Effect::Replied(Box::new(move || {
                let _ = reply.send(Ok(ids));
            })));
            fx.push(Effect::RescanIntake);
        }
        CatalogMsg::MarkDeleting {
            id,
            scope,
            origin,
            reply,
        } => {
            let r = db::write_mark_deleting(tx, &id, &scope, &origin, now)?;
            fx.push(Effect::Replied(Box::new(move || {
                let _ = reply.send(Ok(r));
            })));
        }
        CatalogMsg::Purge { id, origin, reply } => {
            let r = db::write_purge(tx, &id, &origin, now)?;
            fx.push(Effect::Replied(Box::new(move || {
                let _ = reply.send(Ok(r));
            })));
        }
        CatalogMsg::CreateToken {
            token,
            origin,
            reply,
        } => {
            db::write_token(tx, &token, &origin, now)?;
            fx.push(Effect::Replied(Box::new(move || {
                let _ = reply.send(Ok(()));
            })));
        }
        CatalogMsg::Edit {
            id,
            scope,
            edit,
            origin,
            reply,
        } => {
            let r = meta::write_edit(tx, &id, &scope, &edit, &origin, now)?;
            if matches!(
                r,
                meta::EditResult::Edited(Stage::Classified | Stage::Enriched)
            ) {
                fx.push(Effect::RescanIntake);
            }
            if matches!(r, meta::EditResult::Edited(_)) && edit.doc_type.is_some() {
                // A correction: training data for the classifier.
                fx.push(Effect::Retrain);
            }
            fx.push(Effect::Replied(Box::new(move || {
                let _ = reply.send(Ok(r));
            })));
        }
        CatalogMsg::CreateLabel {
            kind,
            workspace,
            name,
            color,
            origin,
            reply,
        } => {
            let r = meta::write_label(tx, kind, &workspace, &name, color.as_deref(), &origin, now)?;
            fx.push(Effect::Replied(Box::new(move || {
                let _ = reply.send(Ok(r));
            })));
        }
        CatalogMsg::RevokeToken { id, origin, reply } => {
            let r = db::write_revoke_token(tx, &id, &origin, now)?;
            fx.push(Effect::Replied(Box::new(move || {
                let _ = reply.send(Ok(r));
            })));
        }
        CatalogMsg::PutType {
            name,
            definition,
            origin,
            reply,
        } => {
            db::write_type_overlay(tx, &name, definition.as_deref(), &origin, now)?;
            fx.push(Effect::Replied(Box::new(move || {
                let _ = reply.send(Ok(()));
            })));
        }
        CatalogMsg::SaveClassifier {
            model,
            trained_at,
            reply,
        } => {
            db::write_classifier(tx, &model, trained_at)?;
            fx.push(Effect::Replied(Box::new(move || {
                let _ = reply.send(Ok(()));
            })));
        }
        CatalogMsg::Sync(reply) => fx.push(Effect::Replied(Box::new(move || {
            let _ = reply.send(Ok(()));
        }))),
        CatalogMsg::Flush => {}
    }
    Ok(())
}

fn apply_effects(routes: &Routes, effects: Vec<Effect>) {
    // The Intake learns the jobs wait in their next stage's queue before any
    // worker there can report taking one.
    let queued: Vec<(i64, u64, Stage)> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::Forward(job) => Some((job.seq, job.admission, job.stage)),
            _ => None,
        })
        .collect();
    if !queued.is_empty() {
        tell(&routes.intake, IntakeMsg::Queued(queued), "intake");
    }
    let mut released = Vec::new();
    let (mut wake, mut rescan, mut retrain) = (false, false, false);
    for e in effects {
        match e {
            Effect::Registered(reply, out) => {
                let _ = reply.send(Ok(out));
            }
            Effect::Replied(f) => f(),
            Effect::Forward(job) => forward(routes, job),
            Effect::Release(job) => released.push((job.seq, job.admission)),
            Effect::RetryDue(at) => tell(&routes.scheduler, SchedulerMsg::Due(at), "scheduler"),
            Effect::WakeIntake => wake = true,
            Effect::Promote(_) | Effect::Discard(_) => {}
            Effect::RescanIntake => rescan = true,
            Effect::Retrain => retrain = true,
        }
    }
    if rescan {
        tell(&routes.intake, IntakeMsg::Rescan, "intake");
    }
    if retrain {
        tell(&routes.trainer, TrainerMsg::Corrected, "trainer");
    }
    if !released.is_empty() {
        tell(&routes.intake, IntakeMsg::Release(released), "intake");
    } else if wake {
        tell(&routes.intake, IntakeMsg::Wake, "intake");
    }
}

/// Sends a job whose stage was just committed to the actor for its next stage.
pub fn forward(routes: &Routes, job: DocJob) {
    match job.stage {
        Stage::Queued => {
            routes.counters.extract.queued(1);
            if routes.extract.dispatch((), job).is_err() {
                tracing::warn!(
                    to = "extract",
                    "dropped a job for a stopped pool; it is admitted again after the restart"
                );
            }
        }
        Stage::Extracted => {
            routes.counters.classify.queued(1);
            if routes.classify.dispatch((), job).is_err() {
                tracing::warn!(
                    to = "classify",
                    "dropped a job for a stopped pool; it is admitted again after the restart"
                );
            }
        }
        Stage::Classified => {
            routes.counters.enrich.queued(1);
            if routes.enrich.dispatch((), job).is_err() {
                tracing::warn!(
                    to = "enrich",
                    "dropped a job for a stopped pool; it is admitted again after the restart"
                );
            }
        }
        Stage::Enriched => {
            routes.counters.indexer.queued(1);
            tell(&routes.indexer, IndexerMsg::Add(job), "indexer");
        }
        other => {
            tracing::error!(doc_id = %job.id, stage = %other, "no stage follows this one; not forwarded")
        }
    }
}
