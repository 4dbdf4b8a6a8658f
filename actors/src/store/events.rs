//! Events: every stage change and every action taken with a token (the
//! audit trail), in one table.

use super::schema::workspace_filter;
use crate::model::{format_ms, Origin, Scope, Stage};
use anyhow::Result;
use rusqlite::{params, Connection, Row, Transaction};

#[derive(Clone, Debug, serde::Serialize)]
pub struct Event {
    pub seq: i64,
    pub doc_id: Option<String>,
    pub workspace: Option<String>,
    pub kind: String,
    pub stage: Option<String>,
    pub detail: Option<serde_json::Value>,
    pub token_id: Option<String>,
    pub request_id: Option<String>,
    pub at: String,
}

const EVENT_COLUMNS: &str = "seq, doc_id, workspace, kind, stage, detail, token_id, request_id, at";

fn event_from_row(r: &Row<'_>) -> rusqlite::Result<Event> {
    let detail: Option<String> = r.get(5)?;
    Ok(Event {
        seq: r.get(0)?,
        doc_id: r.get(1)?,
        workspace: r.get(2)?,
        kind: r.get(3)?,
        stage: r.get(4)?,
        detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
        token_id: r.get(6)?,
        request_id: r.get(7)?,
        at: format_ms(r.get(8)?),
    })
}

/// A document's events, oldest first, if the document is in the scope.
pub fn events_for(conn: &Connection, doc_id: &str, scope: &Scope) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE doc_id = ?1 AND {} ORDER BY seq",
        workspace_filter("workspace", 2)
    ))?;
    let rows = stmt.query_map(params![doc_id, scope.sql_param()], event_from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The audit trail: events of actions taken with a token, oldest first, from
/// `since` (ms) on, optionally of one workspace, after the event `after_seq`.
pub fn audit_events(
    conn: &Connection,
    workspace: Option<&str>,
    since_ms: Option<i64>,
    after_seq: Option<i64>,
    limit: usize,
) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE token_id IS NOT NULL
         AND at >= ?1 AND seq > ?2 AND (?3 IS NULL OR workspace = ?3) ORDER BY seq LIMIT ?4"
    ))?;
    let rows = stmt.query_map(
        params![
            since_ms.unwrap_or(0),
            after_seq.unwrap_or(0),
            workspace,
            limit as i64
        ],
        event_from_row,
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// One row for the `events` table.
pub struct NewEvent<'a> {
    pub doc_id: Option<&'a str>,
    pub workspace: Option<&'a str>,
    pub kind: &'a str,
    pub stage: Option<Stage>,
    pub detail: Option<serde_json::Value>,
    pub token_id: Option<&'a str>,
    pub request_id: Option<&'a str>,
}

impl<'a> NewEvent<'a> {
    /// An event of a document's pipeline, correlated with its upload request.
    pub fn pipeline(
        doc_id: &'a str,
        workspace: &'a str,
        request_id: Option<&'a str>,
        kind: &'a str,
        stage: Option<Stage>,
    ) -> Self {
        NewEvent {
            doc_id: Some(doc_id),
            workspace: Some(workspace),
            kind,
            stage,
            detail: None,
            token_id: None,
            request_id,
        }
    }

    /// An action someone took (the audit trail).
    pub fn action(origin: &'a Origin, kind: &'a str, workspace: Option<&'a str>) -> Self {
        NewEvent {
            doc_id: None,
            workspace,
            kind,
            stage: None,
            detail: None,
            token_id: origin.token_id.as_deref(),
            request_id: origin.request_id.as_deref(),
        }
    }

    pub fn doc(mut self, doc_id: &'a str) -> Self {
        self.doc_id = Some(doc_id);
        self
    }

    pub fn stage(mut self, stage: Stage) -> Self {
        self.stage = Some(stage);
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

pub fn write_event(tx: &Transaction<'_>, e: &NewEvent<'_>, now: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (doc_id, workspace, kind, stage, detail, token_id, request_id, at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        e.doc_id,
        e.workspace,
        e.kind,
        e.stage.map(|s| s.as_str()),
        e.detail.as_ref().map(|d| d.to_string()),
        e.token_id,
        e.request_id,
        now
    ])?;
    Ok(())
}

/// One event of the live stream (`/api/v1/events/stream`, `/api/v1/ws`):
/// a document's stage change, edit or deletion.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StreamEvent {
    pub id: i64,
    pub document: String,
    pub workspace: Option<String>,
    /// `queued` (uploaded, or found in another document), `extracted`,
    /// `classified`, `enriched`, `indexed`, `attempt_failed` (to be tried
    /// again), `failed`, `retried`, `reprocessed`, `edited`, `deleted`.
    pub stage: String,
    pub at: String,
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<serde_json::Value>,
}

/// The stages the stream knows, each from the event kinds it shows.
pub const STREAM_STAGES: [&str; 11] = [
    "queued",
    "extracted",
    "classified",
    "enriched",
    "indexed",
    "attempt_failed",
    "failed",
    "retried",
    "reprocessed",
    "edited",
    "deleted",
];

/// What a subscriber asked for: one document, some stages, one workspace.
#[derive(Clone, Debug, Default)]
pub struct StreamFilter {
    pub document: Option<String>,
    pub stages: Option<Vec<String>>,
    pub workspace: Option<String>,
}

/// The stream's events after `after` up to `upto` (the last durable one),
/// oldest first, at most `limit`, in the scope and the filter.
pub fn stream_events(
    conn: &Connection,
    after: i64,
    upto: i64,
    filter: &StreamFilter,
    scope: &Scope,
    limit: usize,
) -> Result<Vec<StreamEvent>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT seq, doc_id, workspace, stage, at, request_id, detail FROM (
           SELECT seq, doc_id, workspace, at, request_id, detail,
             CASE kind WHEN 'uploaded' THEN 'queued' WHEN 'attached' THEN 'queued'
                       WHEN 'reprocess_requested' THEN 'reprocessed' ELSE kind END AS stage
           FROM events
           WHERE seq > ?1 AND seq <= ?2 AND doc_id IS NOT NULL
             AND kind IN ('uploaded', 'attached', 'extracted', 'classified', 'enriched',
                          'indexed', 'attempt_failed', 'failed', 'retried',
                          'reprocess_requested', 'edited', 'deleted')
             AND (?3 IS NULL OR doc_id = ?3) AND (?4 IS NULL OR workspace = ?4) AND {}
           ORDER BY seq)
         WHERE ?6 IS NULL OR stage IN (SELECT value FROM json_each(?6))
         LIMIT ?7",
        workspace_filter("workspace", 5)
    ))?;
    let stages = filter
        .stages
        .as_ref()
        .map(|s| serde_json::to_string(s).unwrap_or_else(|_| "[]".into()));
    let rows = stmt.query_map(
        params![
            after,
            upto,
            filter.document,
            filter.workspace,
            scope.sql_param(),
            stages,
            limit as i64
        ],
        |r| {
            let detail: Option<String> = r.get(6)?;
            Ok(StreamEvent {
                id: r.get(0)?,
                document: r.get(1)?,
                workspace: r.get(2)?,
                stage: r.get(3)?,
                at: format_ms(r.get(4)?),
                request_id: r.get(5)?,
                detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
            })
        },
    )?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
