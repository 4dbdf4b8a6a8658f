//! Webhooks: where a workspace's events are sent, and the deliveries that
//! wait for another attempt or have failed. A webhook reads the events
//! table (the outbox is the audit trail itself) from its `cursor`, the last
//! event it has handled: sent, or put in `webhook_deliveries` to be tried
//! again.

use super::events::{write_event, NewEvent};
use super::schema::workspace_filter;
use crate::model::{format_ms, Origin, Scope};
use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

/// A webhook as stored. The secret is never shown again after creation.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WebhookRow {
    pub id: String,
    pub workspace: String,
    pub url: String,
    /// The stream's stages it is sent (`indexed`, `failed`, …).
    pub events: Vec<String>,
    #[serde(skip)]
    pub secret: String,
    /// The last event handled.
    #[serde(skip)]
    pub cursor: i64,
    pub created_at: String,
}

const WEBHOOK_COLUMNS: &str = "id, workspace, url, events, secret, cursor, created_at";

fn webhook_from_row(r: &Row<'_>) -> rusqlite::Result<WebhookRow> {
    let events: String = r.get(3)?;
    Ok(WebhookRow {
        id: r.get(0)?,
        workspace: r.get(1)?,
        url: r.get(2)?,
        events: serde_json::from_str(&events).unwrap_or_default(),
        secret: r.get(4)?,
        cursor: r.get(5)?,
        created_at: format_ms(r.get(6)?),
    })
}

/// The webhooks of the scope's workspaces, oldest first.
pub fn list_webhooks(conn: &Connection, scope: &Scope) -> Result<Vec<WebhookRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE {} ORDER BY created_at, id",
        workspace_filter("workspace", 1)
    ))?;
    let rows = stmt.query_map(params![scope.sql_param()], webhook_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn get_webhook(conn: &Connection, id: &str, scope: &Scope) -> Result<Option<WebhookRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1 AND {}",
        workspace_filter("workspace", 2)
    ))?;
    Ok(stmt
        .query_row(params![id, scope.sql_param()], webhook_from_row)
        .optional()?)
}

/// Stores a new webhook; it is sent the events after the last one written.
pub fn write_webhook(
    tx: &Transaction<'_>,
    w: &WebhookRow,
    origin: &Origin,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO webhooks (id, workspace, url, events, secret, cursor, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, (SELECT COALESCE(MAX(seq), 0) FROM events), ?6)",
        params![
            w.id,
            w.workspace,
            w.url,
            serde_json::to_string(&w.events)?,
            w.secret,
            now
        ],
    )?;
    let ev = NewEvent::action(origin, "webhook_created", Some(&w.workspace))
        .detail(serde_json::json!({"id": w.id, "url": w.url, "events": w.events}));
    write_event(tx, &ev, now)?;
    Ok(())
}

/// Deletes a webhook of the scope, with its deliveries; false if there is none.
pub fn write_delete_webhook(
    tx: &Transaction<'_>,
    id: &str,
    scope: &Scope,
    origin: &Origin,
    now: i64,
) -> Result<bool> {
    let Some(ws) = owner(tx, "webhooks", "id", id, scope)? else {
        return Ok(false);
    };
    tx.execute("DELETE FROM webhooks WHERE id = ?1", [id])?;
    let ev = NewEvent::action(origin, "webhook_deleted", Some(&ws))
        .detail(serde_json::json!({"id": id}));
    write_event(tx, &ev, now)?;
    Ok(true)
}

/// A webhook's event kinds as stored (the stream's stage names), from
/// `document.<stage>`, `<stage>` or `*` (all of them).
pub fn parse_kinds(kinds: &[String]) -> Result<Vec<String>, String> {
    use super::events::STREAM_STAGES;
    if kinds.is_empty() {
        return Err(format!(
            "events is empty; name some of {} (or \"*\" for all)",
            kinds_list()
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for k in kinds {
        if k == "*" {
            return Ok(STREAM_STAGES.iter().map(|s| s.to_string()).collect());
        }
        let stage = k.strip_prefix("document.").unwrap_or(k);
        if !STREAM_STAGES.contains(&stage) {
            return Err(format!(
                "event kind {k:?} is not one of {} (or \"*\")",
                kinds_list()
            ));
        }
        if !out.iter().any(|o| o == stage) {
            out.push(stage.to_string());
        }
    }
    Ok(out)
}

fn kinds_list() -> String {
    super::events::STREAM_STAGES
        .iter()
        .map(|s| format!("document.{s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The workspace of the row of `table` whose `key` column is `value`, if
/// it is in the scope (webhooks and workflows belong to one workspace).
pub(super) fn owner(
    tx: &Transaction<'_>,
    table: &str,
    key: &str,
    value: &str,
    scope: &Scope,
) -> Result<Option<String>> {
    Ok(tx
        .query_row(
            &format!(
                "SELECT workspace FROM {table} WHERE {key} = ?1 AND {}",
                workspace_filter("workspace", 2)
            ),
            params![value, scope.sql_param()],
            |r| r.get(0),
        )
        .optional()?)
}

/// A delivery that did not go through on its first attempt.
#[derive(Clone, Debug, serde::Serialize)]
pub struct DeliveryRow {
    /// `<webhook>.<event>`: the `X-Docpipe-Delivery` of every attempt.
    pub id: String,
    pub event: i64,
    /// `retrying` (another attempt is due at `next_at`) or `failed`.
    pub state: String,
    pub attempts: u32,
    pub next_at: Option<String>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub updated_at: String,
}

/// A delivery's id: the webhook's and the event's.
pub fn delivery_id(webhook: &str, seq: i64) -> String {
    format!("{webhook}.{seq}")
}

/// A webhook's deliveries in `state` (None: both), newest first.
pub fn list_deliveries(
    conn: &Connection,
    webhook: &str,
    state: Option<&str>,
    limit: usize,
) -> Result<Vec<DeliveryRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, state, attempts, next_at, last_status, last_error, updated_at
         FROM webhook_deliveries WHERE webhook_id = ?1 AND (?2 IS NULL OR state = ?2)
         ORDER BY seq DESC LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![webhook, state, limit as i64], |r| {
        let seq: i64 = r.get(0)?;
        Ok(DeliveryRow {
            id: delivery_id(webhook, seq),
            event: seq,
            state: r.get(1)?,
            attempts: r.get(2)?,
            next_at: r.get::<_, Option<i64>>(3)?.map(format_ms),
            last_status: r.get(4)?,
            last_error: r.get(5)?,
            updated_at: format_ms(r.get(6)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A webhook's deliveries waiting for another attempt: (event, attempts
/// made, when the next is due).
pub fn retrying_deliveries(conn: &Connection, webhook: &str) -> Result<Vec<(i64, u32, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, attempts, COALESCE(next_at, 0) FROM webhook_deliveries
         WHERE webhook_id = ?1 AND state = 'retrying' ORDER BY seq",
    )?;
    let rows = stmt.query_map(params![webhook], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// What became of one attempt of a delivery.
#[derive(Clone, Debug, PartialEq)]
pub enum Attempted {
    /// The receiver answered 2xx.
    Delivered { seq: i64 },
    /// It did not; another attempt is due at `next_at`.
    Retrying {
        seq: i64,
        attempts: u32,
        next_at: i64,
        status: Option<u16>,
        error: String,
    },
    /// It did not, and that was the last attempt.
    Failed {
        seq: i64,
        attempts: u32,
        status: Option<u16>,
        error: String,
    },
}

/// Records a webhook's progress: its cursor moves forward (never back),
/// and each attempt's outcome is kept (a delivered one is forgotten). A
/// webhook deleted meanwhile is left alone.
pub fn write_webhook_progress(
    tx: &Transaction<'_>,
    webhook: &str,
    cursor: Option<i64>,
    attempts: &[Attempted],
    now: i64,
) -> Result<()> {
    let exists: bool = tx
        .prepare_cached("SELECT 1 FROM webhooks WHERE id = ?1")?
        .exists(params![webhook])?;
    if !exists {
        return Ok(());
    }
    if let Some(c) = cursor {
        tx.prepare_cached("UPDATE webhooks SET cursor = MAX(cursor, ?2) WHERE id = ?1")?
            .execute(params![webhook, c])?;
    }
    for a in attempts {
        match a {
            Attempted::Delivered { seq } => {
                tx.prepare_cached(
                    "DELETE FROM webhook_deliveries WHERE webhook_id = ?1 AND seq = ?2",
                )?
                .execute(params![webhook, seq])?;
            }
            Attempted::Retrying {
                seq,
                attempts,
                next_at,
                status,
                error,
            } => upsert_delivery(
                tx,
                webhook,
                *seq,
                "retrying",
                *attempts,
                Some(*next_at),
                *status,
                error,
                now,
            )?,
            Attempted::Failed {
                seq,
                attempts,
                status,
                error,
            } => upsert_delivery(
                tx, webhook, *seq, "failed", *attempts, None, *status, error, now,
            )?,
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn upsert_delivery(
    tx: &Transaction<'_>,
    webhook: &str,
    seq: i64,
    state: &str,
    attempts: u32,
    next_at: Option<i64>,
    status: Option<u16>,
    error: &str,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO webhook_deliveries
           (webhook_id, seq, state, attempts, next_at, last_status, last_error, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
         ON CONFLICT (webhook_id, seq) DO UPDATE SET state = excluded.state,
           attempts = excluded.attempts, next_at = excluded.next_at,
           last_status = excluded.last_status, last_error = excluded.last_error,
           updated_at = excluded.updated_at",
    )?
    .execute(params![
        webhook, seq, state, attempts, next_at, status, error, now
    ])?;
    Ok(())
}

/// Sends a failed delivery again: it is due now, with a fresh count of
/// attempts. False if the webhook (in the scope) has no such failed delivery.
pub fn write_resend(
    tx: &Transaction<'_>,
    webhook: &str,
    seq: i64,
    scope: &Scope,
    origin: &Origin,
    now: i64,
) -> Result<bool> {
    let Some(ws) = owner(tx, "webhooks", "id", webhook, scope)? else {
        return Ok(false);
    };
    let n = tx.execute(
        "UPDATE webhook_deliveries SET state = 'retrying', attempts = 0, next_at = ?3,
           updated_at = ?3 WHERE webhook_id = ?1 AND seq = ?2 AND state = 'failed'",
        params![webhook, seq, now],
    )?;
    if n == 1 {
        let ev = NewEvent::action(origin, "webhook_resent", Some(&ws))
            .detail(serde_json::json!({"id": webhook, "delivery": delivery_id(webhook, seq)}));
        write_event(tx, &ev, now)?;
    }
    Ok(n == 1)
}

/// How many deliveries wait for another attempt, over every webhook (the
/// outbox's depth, for `/metrics` and the status).
pub fn outbox_depth(conn: &Connection) -> Result<(u64, u64)> {
    Ok(conn.query_row(
        "SELECT COALESCE(SUM(state = 'retrying'), 0), COALESCE(SUM(state = 'failed'), 0)
         FROM webhook_deliveries",
        [],
        |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
    )?)
}
