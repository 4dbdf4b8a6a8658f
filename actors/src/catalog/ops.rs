//! Every Catalog operation but the stage results (see `stages`): what each
//! message writes, and what its commit sets off.

use rusqlite::Transaction;

use super::stages::{failure_detail, write_stages};
use super::Effect;
use crate::model::{Registered, Stage};
use crate::routes::{CatalogMsg, StageOutput};
use crate::store::classifier::{workspace_of, write_classifier, write_type_overlay};
use crate::store::documents::{write_insert, write_mark_deleting, write_purge, Inserted};
use crate::store::edits::{write_edit, write_field_name, write_note, EditResult};
use crate::store::events::{write_event, NewEvent};
use crate::store::labels::write_label;
use crate::store::queue::{write_failure, write_reindex, write_reprocess_flagged, write_retry};
use crate::store::templates::write_delete_template;
use crate::store::tokens::{write_revoke_token, write_token};
use crate::store::vectors::write_vectors;
use crate::store::webhooks::{
    write_delete_webhook, write_resend, write_webhook, write_webhook_progress,
};
use crate::store::workflows::{
    write_delete_workflow, write_put_workflow, write_queue_delivery, write_workflow_cursor,
    PutOutcome,
};

pub(super) fn write_one(
    tx: &Transaction<'_>,
    op: CatalogMsg,
    now: i64,
    fx: &mut Vec<Effect>,
) -> anyhow::Result<()> {
    #[cfg(feature = "failpoints")]
    if let CatalogMsg::Register { docs, .. } = &op {
        crate::faults::catalog_register(docs)?;
    }
    match op {
        CatalogMsg::Register {
            docs,
            origin,
            reply,
        } => {
            let mut out = Vec::with_capacity(docs.len());
            for d in &docs {
                out.push(match write_insert(tx, d, &origin, now)? {
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
            // A number asked for (a migration, an import) may lie below
            // the Intake's scan cursor: it looks from the start again.
            let numbered = docs.iter().any(|d| d.extra.number.is_some());
            fx.push(Effect::reply(reply, out));
            fx.push(if numbered {
                Effect::RescanIntake
            } else {
                Effect::WakeIntake
            });
        }
        CatalogMsg::Advanced { job, outputs } => write_stages(tx, job, outputs, now, fx)?,
        CatalogMsg::Indexed { jobs } => {
            let seqs: Vec<i64> = jobs.iter().map(|j| j.seq).collect();
            for job in jobs {
                write_stages(tx, job, vec![StageOutput::Indexed], now, fx)?;
            }
            fx.push(Effect::Embed(seqs));
        }
        CatalogMsg::Embedded {
            embedder,
            docs,
            reply,
        } => {
            let mut stored = 0;
            for d in docs {
                if write_vectors(tx, d.seq, d.version, &embedder, &d.chunks)? {
                    stored += 1;
                    fx.push(Effect::Vectors(d.seq, Some(d.chunks)));
                }
            }
            fx.push(Effect::reply(reply, stored));
        }
        CatalogMsg::Failure {
            job,
            attempts,
            retry_at,
            error,
        } => {
            if write_failure(tx, job.seq, job.stage, attempts, retry_at, &error, now)? {
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
                .detail(failure_detail(&error, attempts, retry_at));
                write_event(tx, &ev, now)?;
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
            let r = write_retry(tx, &id, &scope, &origin, now)?;
            fx.push(Effect::reply(reply, r));
            fx.push(Effect::RescanIntake);
        }
        CatalogMsg::Reprocess {
            flag,
            scope,
            origin,
            reply,
        } => {
            let ids = write_reprocess_flagged(tx, flag, &scope, &origin, now)?;
            fx.push(Effect::reply(reply, ids));
            fx.push(Effect::RescanIntake);
        }
        CatalogMsg::Reindex { ids, origin, reply } => {
            let moved = write_reindex(tx, &ids, &origin, now)?;
            fx.push(Effect::reply(reply, moved));
            fx.push(Effect::RescanIntake);
        }
        CatalogMsg::MarkDeleting {
            id,
            scope,
            origin,
            reply,
        } => {
            let r = write_mark_deleting(tx, &id, &scope, &origin, now)?;
            if let Some(seq) = r {
                // Out of semantic search at once (the rows go with the document's).
                fx.push(Effect::Vectors(seq, None));
            }
            fx.push(Effect::reply(reply, r.is_some()));
        }
        CatalogMsg::Purge { id, origin, reply } => {
            let r = write_purge(tx, &id, &origin, now)?;
            fx.push(Effect::reply(reply, r));
        }
        CatalogMsg::CreateToken {
            token,
            origin,
            reply,
        } => {
            write_token(tx, &token, &origin, now)?;
            fx.push(Effect::reply(reply, ()));
        }
        CatalogMsg::RevokeToken { id, origin, reply } => {
            let r = write_revoke_token(tx, &id, &origin, now)?;
            fx.push(Effect::reply(reply, r));
        }
        CatalogMsg::Edit {
            id,
            scope,
            edit,
            origin,
            reply,
        } => {
            let r = write_edit(tx, &id, &scope, &edit, &origin, now)?;
            if matches!(r, EditResult::Edited(Stage::Classified | Stage::Enriched)) {
                fx.push(Effect::RescanIntake);
            }
            if matches!(r, EditResult::Edited(_)) && edit.doc_type.is_some() {
                // A correction: training data for its workspace's classifier.
                if let Some(ws) = workspace_of(tx, &id)? {
                    fx.push(Effect::Retrain(ws));
                }
            }
            fx.push(Effect::reply(reply, r));
        }
        CatalogMsg::CreateLabel {
            kind,
            workspace,
            name,
            color,
            origin,
            reply,
        } => {
            let r = write_label(tx, kind, &workspace, &name, color.as_deref(), &origin, now)?;
            fx.push(Effect::reply(reply, r));
        }
        CatalogMsg::CreateFieldName {
            name,
            kind,
            origin,
            reply,
        } => {
            let r = write_field_name(tx, &name, kind, &origin, now)?;
            fx.push(Effect::reply(reply, r));
        }
        CatalogMsg::AddNote {
            id,
            scope,
            note,
            origin,
            reply,
        } => {
            let r = write_note(tx, &id, &scope, &note, &origin, now)?;
            fx.push(Effect::reply(reply, r));
        }
        CatalogMsg::PutType {
            name,
            definition,
            origin,
            reply,
        } => {
            write_type_overlay(tx, &name, definition.as_deref(), &origin, now)?;
            fx.push(Effect::reply(reply, ()));
        }
        CatalogMsg::DeleteTemplate {
            id,
            scope,
            origin,
            reply,
        } => {
            let r = write_delete_template(tx, id, &scope, &origin, now)?;
            fx.push(Effect::reply(reply, r));
        }
        CatalogMsg::SaveClassifier {
            workspace,
            model,
            trained_at,
            reply,
        } => {
            write_classifier(tx, &workspace, &model, trained_at)?;
            fx.push(Effect::reply(reply, ()));
        }
        CatalogMsg::CreateWebhook {
            webhook,
            origin,
            reply,
        } => {
            write_webhook(tx, &webhook, &origin, now)?;
            fx.push(Effect::Webhook(webhook.id));
            fx.push(Effect::reply(reply, ()));
        }
        CatalogMsg::DeleteWebhook {
            id,
            scope,
            origin,
            reply,
        } => {
            let r = write_delete_webhook(tx, &id, &scope, &origin, now)?;
            if r {
                fx.push(Effect::Webhook(id));
            }
            fx.push(Effect::reply(reply, r));
        }
        CatalogMsg::Resend {
            webhook,
            event,
            scope,
            origin,
            reply,
        } => {
            let r = write_resend(tx, &webhook, event, &scope, &origin, now)?;
            if r {
                fx.push(Effect::Poke(webhook));
            }
            fx.push(Effect::reply(reply, r));
        }
        CatalogMsg::WebhookProgress {
            webhook,
            cursor,
            attempts,
        } => write_webhook_progress(tx, &webhook, cursor, &attempts, now)?,
        CatalogMsg::PutWorkflow {
            name,
            workspace,
            definition,
            scope,
            origin,
            reply,
        } => {
            let r = write_put_workflow(tx, &name, &workspace, &definition, &scope, &origin, now)?;
            if r != PutOutcome::Forbidden {
                fx.push(Effect::Workflow(name));
            }
            fx.push(Effect::reply(reply, r));
        }
        CatalogMsg::DeleteWorkflow {
            name,
            scope,
            origin,
            reply,
        } => {
            let r = write_delete_workflow(tx, &name, &scope, &origin, now)?;
            if r {
                fx.push(Effect::Workflow(name));
            }
            fx.push(Effect::reply(reply, r));
        }
        CatalogMsg::WorkflowCursor { name, cursor } => write_workflow_cursor(tx, &name, cursor)?,
        CatalogMsg::QueueDelivery {
            webhook,
            event,
            reply,
        } => {
            let r = write_queue_delivery(tx, &webhook, event, now)?;
            if r {
                fx.push(Effect::Poke(webhook));
            }
            fx.push(Effect::reply(reply, r));
        }
        CatalogMsg::Sync(reply) => fx.push(Effect::reply(reply, ())),
        CatalogMsg::WriterDown(_) => {}
    }
    Ok(())
}
