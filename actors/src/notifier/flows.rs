//! One workflow's feed: it reads the events table from the workflow's
//! cursor, and for each event of its triggers whose document meets its
//! conditions, applies its actions through the Catalog (an edit with the
//! token `workflow:NAME`, audited like any other; a delivery to a
//! webhook). The cursor moves after the actions are committed, so a
//! restart applies an event's actions again at most, and they change
//! nothing the second time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Result};
use ractor::rpc::CallResult;

use super::feed::{next_page, FeedCtx};
use super::workflow::{Workflow, WorkflowDef};
use crate::model::{Origin, Scope};
use crate::routes::{current_routes, tell, CatalogMsg};
use crate::store::events::{StreamEvent, StreamFilter};
use crate::store::workflows::{by_workflow, doc_view, get_workflow};
use crate::store::LabelKind;

const CALL: Duration = Duration::from_secs(60);

/// Runs workflow `name` until it is deleted or the task aborted.
pub async fn run(ctx: Arc<FeedCtx>, name: String) {
    loop {
        match flow(&ctx, &name).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(workflow = %name, error = %e, "workflow failed; starting it again");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    }
}

async fn call<T: Send + 'static>(
    ctx: &FeedCtx,
    make: impl Fn(crate::routes::Reply<T>) -> CatalogMsg,
) -> Result<T> {
    let catalog = current_routes(&ctx.routes)
        .map_err(|e| anyhow!("{e}"))?
        .catalog;
    match catalog.call(make, Some(CALL)).await {
        Ok(CallResult::Success(r)) => Ok(r?),
        _ => Err(anyhow!("the catalog did not answer")),
    }
}

async fn flow(ctx: &FeedCtx, name: &str) -> Result<()> {
    let mut routes = ctx.routes.clone();
    routes.wait_for(|r| r.is_some()).await?;
    call(ctx, CatalogMsg::Sync).await?;
    let owned = name.to_string();
    let Some(row) = ctx
        .db
        .run(move |c| get_workflow(c, &owned, &Scope::All))
        .await?
    else {
        return Ok(()); // deleted
    };
    let def: WorkflowDef = serde_json::from_value(row.definition.clone())?;
    let types = ctx.types.clone();
    let wf = Workflow::compile(
        name,
        def,
        &|f| crate::types::current(&types).field_kind(f),
        &|_| true, // checked when it was stored; a type deleted since is simply never matched
    )
    .map_err(|e| anyhow!("the stored workflow does not compile: {e}"))?;
    let filter = StreamFilter {
        document: None,
        stages: Some(wf.stages()),
        workspace: Some(wf.def.workspace.clone()),
    };
    let mut cursor = row.cursor;
    let mut events = ctx.events.clone();
    let mut stop = ctx.stop.clone();
    loop {
        if *ctx.stop.borrow() {
            return Ok(());
        }
        let upto = *events.borrow_and_update();
        if cursor < upto {
            let (page, full) = next_page(ctx, &filter, cursor, upto).await?;
            for ev in &page {
                if *ctx.stop.borrow() {
                    return Ok(());
                }
                apply(ctx, &wf, ev).await?;
                cursor = ev.id;
                report(ctx, name, cursor);
            }
            if !full && cursor < upto {
                cursor = upto;
                report(ctx, name, cursor);
            }
            continue;
        }
        tokio::select! {
            changed = events.changed() => {
                if changed.is_err() {
                    return Ok(());
                }
            }
            _ = stop.changed() => {}
        }
    }
}

fn report(ctx: &FeedCtx, name: &str, cursor: i64) {
    if let Ok(r) = current_routes(&ctx.routes) {
        let msg = CatalogMsg::WorkflowCursor {
            name: name.to_string(),
            cursor,
        };
        tell(&r.catalog, msg, "catalog");
    }
}

/// The workflow's actions on the event's document, if its conditions hold.
async fn apply(ctx: &FeedCtx, wf: &Workflow, ev: &StreamEvent) -> Result<()> {
    let seq = ev.id;
    if ev.stage == "edited" && ctx.db.run(move |c| by_workflow(c, seq)).await? {
        return Ok(()); // a workflow's own edit does not set off workflows
    }
    let (id, text) = (ev.document.clone(), wf.needs_text());
    let Some(view) = ctx.db.run(move |c| doc_view(c, &id, text)).await? else {
        return Ok(()); // gone
    };
    if !wf.holds(&view) {
        return Ok(());
    }
    let origin = Origin {
        token_id: Some(format!("workflow:{}", wf.name)),
        request_id: ev.request_id.clone(),
    };
    let mut tag_ids = BTreeMap::new();
    for t in &wf.def.actions.add_tags {
        if let Some((id, _)) = view.tags.iter().find(|(_, n)| n == t) {
            tag_ids.insert(t.clone(), *id);
            continue;
        }
        let (id, _) = call(ctx, |reply| CatalogMsg::CreateLabel {
            kind: LabelKind::Tag,
            workspace: view.doc.workspace.clone(),
            name: t.clone(),
            color: None,
            origin: origin.clone(),
            reply,
        })
        .await?;
        tag_ids.insert(t.clone(), id);
    }
    let types = ctx.types.clone();
    let kind = move |f: &str| crate::types::current(&types).field_kind(f);
    if let Some(edit) = wf.edit(&view, &tag_ids, &kind) {
        call(ctx, |reply| CatalogMsg::Edit {
            id: view.doc.id.clone(),
            scope: Scope::All,
            edit: edit.clone(),
            origin: origin.clone(),
            reply,
        })
        .await?;
        tracing::debug!(workflow = %wf.name, doc_id = %view.doc.id, "workflow applied");
    }
    if let Some(hook) = &wf.def.actions.webhook {
        call(ctx, |reply| CatalogMsg::QueueDelivery {
            webhook: hook.clone(),
            event: seq,
            reply,
        })
        .await?;
    }
    Ok(())
}
