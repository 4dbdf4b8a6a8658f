//! One webhook's feed: it reads the events table from the webhook's cursor
//! and sends each event it asked for, one at a time; a delivery that does
//! not go through is kept in `webhook_deliveries` and tried again after a
//! backoff, while the feed goes on with the next events. Every outcome goes
//! to the Catalog, which writes it; a feed that starts (again) first waits
//! until the Catalog has written everything sent before, then reads its
//! cursor and its waiting deliveries. So a restart sends again at most the
//! deliveries that were in the air, under the same delivery ids.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use tokio::sync::watch;

use super::deliver;
use crate::config::WebhooksConfig;
use crate::counters::ActorCounters;
use crate::model::{now_ms, Scope};
use crate::routes::{current_routes, tell, CatalogMsg, RoutesRx};
use crate::store::events::{stream_events, StreamEvent, StreamFilter};
use crate::store::pool::ReadPool;
use crate::store::webhooks::{
    delivery_id, get_webhook, retrying_deliveries, Attempted, WebhookRow,
};

/// What every feed shares.
pub struct FeedCtx {
    pub config: WebhooksConfig,
    pub db: ReadPool,
    pub events: watch::Receiver<i64>,
    pub routes: RoutesRx,
    pub client: reqwest::Client,
    pub counters: Arc<crate::counters::Counters>,
    /// Set at shutdown: no attempt starts after it.
    pub stop: watch::Receiver<bool>,
    /// The document types in force (a workflow's field kinds).
    pub types: crate::types::TypesSlot,
}

/// Events read per step.
const PAGE: usize = 64;
/// The wait after a failed read of the catalog.
const READ_RETRY: Duration = Duration::from_secs(2);

/// Runs the feed of webhook `id` until it is deleted or the task aborted.
pub async fn run(ctx: Arc<FeedCtx>, id: String, poke: watch::Receiver<()>) {
    loop {
        match feed(&ctx, &id, poke.clone()).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(webhook = %id, error = %e, "webhook feed failed; starting it again");
                tokio::time::sleep(READ_RETRY).await;
            }
        }
    }
}

async fn feed(ctx: &FeedCtx, id: &str, mut poke: watch::Receiver<()>) -> Result<()> {
    let mut routes = ctx.routes.clone();
    routes.wait_for(|r| r.is_some()).await?;
    let catalog = current_routes(&routes)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .catalog;
    catalog
        .call(CatalogMsg::Sync, Some(Duration::from_secs(60)))
        .await
        .map_err(|e| anyhow::anyhow!("the catalog did not answer: {e}"))?;
    let owned = id.to_string();
    let Some(hook) = ctx
        .db
        .run(move |c| get_webhook(c, &owned, &Scope::All))
        .await?
    else {
        return Ok(()); // deleted
    };
    let mut waiting: BTreeMap<i64, (u32, i64)> = BTreeMap::new();
    let mut reload = true;
    let filter = StreamFilter {
        document: None,
        stages: Some(hook.events.clone()),
        workspace: Some(hook.workspace.clone()),
    };
    let mut cursor = hook.cursor;
    let mut events = ctx.events.clone();
    let mut stop = ctx.stop.clone();
    let stopping = || *ctx.stop.borrow();
    let c = &ctx.counters.notifier;
    loop {
        if stopping() {
            return Ok(());
        }
        if reload || poke.has_changed().unwrap_or(false) {
            // Deliveries made due by a re-send or a workflow (committed
            // before the poke) join those this feed keeps.
            poke.borrow_and_update();
            reload = false;
            let owned = id.to_string();
            for (seq, made, at) in ctx.db.run(move |c| retrying_deliveries(c, &owned)).await? {
                waiting.entry(seq).or_insert((made, at));
            }
        }
        c.num_queued.store(waiting.len() as i64, Relaxed);
        let upto = *events.borrow_and_update();
        let now = now_ms();
        let due: Vec<(i64, u32)> = waiting
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(seq, (made, _))| (*seq, *made))
            .take(PAGE)
            .collect();
        for (seq, made) in due {
            if stopping() {
                return Ok(());
            }
            // Any event of the workspace: a workflow may send one the
            // webhook did not ask for.
            let f = StreamFilter {
                stages: None,
                ..filter.clone()
            };
            let s = seq;
            let ev = ctx
                .db
                .run(move |c| stream_events(c, s - 1, s, &f, &Scope::All, 1))
                .await?
                .pop();
            let outcome = match ev {
                Some(ev) => attempt(ctx, &hook, &ev, made + 1, c).await,
                None => Attempted::Failed {
                    seq,
                    attempts: made,
                    status: None,
                    error: "the event is no longer in the catalog".into(),
                },
            };
            note(&mut waiting, &outcome);
            report(ctx, &hook.id, None, vec![outcome]);
        }
        if cursor < upto {
            let (page, full) = next_page(ctx, &filter, cursor, upto).await?;
            for ev in &page {
                if stopping() {
                    return Ok(());
                }
                let outcome = attempt(ctx, &hook, ev, 1, c).await;
                note(&mut waiting, &outcome);
                let kept = match outcome {
                    Attempted::Delivered { .. } => vec![],
                    other => vec![other],
                };
                cursor = ev.id;
                report(ctx, &hook.id, Some(cursor), kept);
            }
            // Past the events it did not ask for as well.
            if !full && cursor < upto {
                cursor = upto;
                report(ctx, &hook.id, Some(cursor), vec![]);
            }
            continue;
        }
        let next = waiting.values().map(|(_, at)| *at).min();
        let wait = next.map(|at| Duration::from_millis((at - now_ms()).max(0) as u64));
        tokio::select! {
            changed = events.changed() => {
                if changed.is_err() {
                    return Ok(()); // the engine is stopping
                }
            }
            _ = sleep_or_never(wait) => {}
            _ = stop.changed() => {}
            poked = poke.changed() => reload = poked.is_ok(),
        }
    }
}

/// The filter's events after `after` up to `upto`, oldest first, a page
/// of them; true if the page is full (there may be more).
pub(super) async fn next_page(
    ctx: &FeedCtx,
    filter: &StreamFilter,
    after: i64,
    upto: i64,
) -> Result<(Vec<StreamEvent>, bool)> {
    let f = filter.clone();
    let page = ctx
        .db
        .run(move |c| stream_events(c, after, upto, &f, &Scope::All, PAGE))
        .await?;
    let full = page.len() == PAGE;
    Ok((page, full))
}

async fn sleep_or_never(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

/// Keeps the feed's own list of waiting deliveries as the Catalog will.
fn note(waiting: &mut BTreeMap<i64, (u32, i64)>, outcome: &Attempted) {
    match outcome {
        Attempted::Delivered { seq } | Attempted::Failed { seq, .. } => {
            waiting.remove(seq);
        }
        Attempted::Retrying {
            seq,
            attempts,
            next_at,
            ..
        } => {
            waiting.insert(*seq, (*attempts, *next_at));
        }
    }
}

/// Attempt number `n` of the delivery of `ev`.
async fn attempt(
    ctx: &FeedCtx,
    hook: &WebhookRow,
    ev: &StreamEvent,
    n: u32,
    c: &ActorCounters,
) -> Attempted {
    let id = delivery_id(&hook.id, ev.id);
    let body = deliver::body(&id, &hook.id, ev);
    c.num_busy.fetch_add(1, Relaxed);
    let started = std::time::Instant::now();
    // The address is checked again at each attempt: the configuration may
    // have changed since the webhook was made.
    let sent = match deliver::check_url(&hook.url, ctx.config.allow_private) {
        Ok(_) => deliver::send(&ctx.client, &hook.url, &hook.secret, &id, n, body).await,
        Err(e) => Err((None, e)),
    };
    c.num_busy.fetch_sub(1, Relaxed);
    c.busy_micros
        .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
    match sent {
        Ok(()) => {
            c.num_processed.fetch_add(1, Relaxed);
            Attempted::Delivered { seq: ev.id }
        }
        Err((status, error)) => {
            c.num_failed.fetch_add(1, Relaxed);
            tracing::info!(webhook = %hook.id, delivery = %id, attempt = n, status, error = %error, "webhook delivery did not go through");
            if n >= ctx.config.max_attempts {
                Attempted::Failed {
                    seq: ev.id,
                    attempts: n,
                    status,
                    error,
                }
            } else {
                let wait = deliver::backoff(&ctx.config, n);
                Attempted::Retrying {
                    seq: ev.id,
                    attempts: n,
                    next_at: now_ms() + wait.as_millis() as i64,
                    status,
                    error,
                }
            }
        }
    }
}

fn report(ctx: &FeedCtx, webhook: &str, cursor: Option<i64>, attempts: Vec<Attempted>) {
    if let Ok(r) = current_routes(&ctx.routes) {
        let msg = CatalogMsg::WebhookProgress {
            webhook: webhook.to_string(),
            cursor,
            attempts,
        };
        tell(&r.catalog, msg, "catalog");
    }
}
