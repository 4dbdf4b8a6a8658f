//! Workflows: rules kept in the catalog, each reading the events table from
//! its cursor like a webhook (see `notifier/workflow.rs` for what a rule
//! says and does).

use super::events::{write_event, NewEvent};
use super::schema::workspace_filter;
use crate::model::{format_ms, Origin, Scope};
use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

/// A workflow as stored: its definition is the JSON it was given.
#[derive(Clone, Debug, serde::Serialize)]
pub struct WorkflowRow {
    pub name: String,
    pub workspace: String,
    pub definition: serde_json::Value,
    /// The last event it has handled.
    #[serde(skip)]
    pub cursor: i64,
    pub created_at: String,
    pub updated_at: String,
}

const COLUMNS: &str = "name, workspace, definition, cursor, created_at, updated_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<WorkflowRow> {
    let d: String = r.get(2)?;
    Ok(WorkflowRow {
        name: r.get(0)?,
        workspace: r.get(1)?,
        definition: serde_json::from_str(&d).unwrap_or(serde_json::Value::Null),
        cursor: r.get(3)?,
        created_at: format_ms(r.get(4)?),
        updated_at: format_ms(r.get(5)?),
    })
}

pub fn list_workflows(conn: &Connection, scope: &Scope) -> Result<Vec<WorkflowRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM workflows WHERE {} ORDER BY name",
        workspace_filter("workspace", 1)
    ))?;
    let rows = stmt.query_map(params![scope.sql_param()], from_row)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub fn get_workflow(conn: &Connection, name: &str, scope: &Scope) -> Result<Option<WorkflowRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM workflows WHERE name = ?1 AND {}",
        workspace_filter("workspace", 2)
    ))?;
    Ok(stmt
        .query_row(params![name, scope.sql_param()], from_row)
        .optional()?)
}

/// What storing a workflow did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    Replaced,
    /// A workflow of this name belongs to a workspace outside the scope.
    Forbidden,
}

/// Creates a workflow (it sees the events after the last one written) or
/// replaces one's definition (it goes on from where it was).
pub fn write_put_workflow(
    tx: &Transaction<'_>,
    name: &str,
    workspace: &str,
    definition: &serde_json::Value,
    scope: &Scope,
    origin: &Origin,
    now: i64,
) -> Result<PutOutcome> {
    let existing: Option<String> = tx
        .query_row(
            "SELECT workspace FROM workflows WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?;
    let outcome = match existing {
        Some(ws) if !scope.allows(&ws) => return Ok(PutOutcome::Forbidden),
        Some(_) => {
            tx.execute(
                "UPDATE workflows SET workspace = ?2, definition = ?3, updated_at = ?4 WHERE name = ?1",
                params![name, workspace, definition.to_string(), now],
            )?;
            PutOutcome::Replaced
        }
        None => {
            tx.execute(
                "INSERT INTO workflows (name, workspace, definition, cursor, created_at, updated_at)
                 VALUES (?1, ?2, ?3, (SELECT COALESCE(MAX(seq), 0) FROM events), ?4, ?4)",
                params![name, workspace, definition.to_string(), now],
            )?;
            PutOutcome::Created
        }
    };
    let ev = NewEvent::action(origin, "workflow_saved", Some(workspace))
        .detail(serde_json::json!({"name": name, "definition": definition}));
    write_event(tx, &ev, now)?;
    Ok(outcome)
}

pub fn write_delete_workflow(
    tx: &Transaction<'_>,
    name: &str,
    scope: &Scope,
    origin: &Origin,
    now: i64,
) -> Result<bool> {
    let Some(ws) = super::webhooks::owner(tx, "workflows", "name", name, scope)? else {
        return Ok(false);
    };
    tx.execute("DELETE FROM workflows WHERE name = ?1", [name])?;
    let ev = NewEvent::action(origin, "workflow_deleted", Some(&ws))
        .detail(serde_json::json!({"name": name}));
    write_event(tx, &ev, now)?;
    Ok(true)
}

/// Moves a workflow's cursor forward (never back).
pub fn write_workflow_cursor(tx: &Transaction<'_>, name: &str, cursor: i64) -> Result<()> {
    tx.prepare_cached("UPDATE workflows SET cursor = MAX(cursor, ?2) WHERE name = ?1")?
        .execute(params![name, cursor])?;
    Ok(())
}

/// Whether event `seq` is an action a workflow took (its token is
/// `workflow:NAME`).
pub fn by_workflow(conn: &Connection, seq: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM events WHERE seq = ?1 AND token_id LIKE 'workflow:%'")?
        .exists([seq])?)
}

/// What a rule looks at in a document: the row, its tag names, its text
/// (only when asked for).
pub struct DocView {
    pub doc: crate::model::Document,
    pub tags: Vec<(i64, String)>,
    pub text: Option<String>,
}

pub fn doc_view(conn: &Connection, id: &str, with_text: bool) -> Result<Option<DocView>> {
    let Some(doc) = super::documents::get_document(conn, id, &Scope::All)? else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT t.id, t.name FROM document_tags d JOIN tags t ON t.id = d.tag_id
         WHERE d.doc_seq = ?1 ORDER BY t.id",
    )?;
    let tags = stmt
        .query_map([doc.seq], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let text = if with_text {
        super::documents::get_text_by_seq(conn, doc.seq)?
    } else {
        None
    };
    Ok(Some(DocView { doc, tags, text }))
}

/// A delivery of event `seq` to a webhook, due now, asked for by a
/// workflow; one already waiting (or failed) stays as it is.
pub fn write_queue_delivery(
    tx: &Transaction<'_>,
    webhook: &str,
    seq: i64,
    now: i64,
) -> Result<bool> {
    let n = tx.execute(
        "INSERT INTO webhook_deliveries
           (webhook_id, seq, state, attempts, next_at, last_status, last_error, updated_at)
         SELECT id, ?2, 'retrying', 0, ?3, NULL, NULL, ?3 FROM webhooks WHERE id = ?1
         ON CONFLICT (webhook_id, seq) DO NOTHING",
        params![webhook, seq, now],
    )?;
    Ok(n == 1)
}
