//! Upload tasks (the ids Paperless-ngx clients poll).

use super::schema::workspace_filter;
use crate::model::{format_ms, Scope, Stage};
use anyhow::Result;
use rusqlite::{params, Connection, Transaction};

pub fn write_task(
    tx: &Transaction<'_>,
    task_id: &str,
    workspace: &str,
    doc_id: &str,
    filename: &str,
    duplicate: bool,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO tasks (task_id, workspace, doc_id, filename, duplicate, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        task_id, workspace, doc_id, filename, duplicate, now
    ])?;
    Ok(())
}

/// An upload task and where its document is now.
#[derive(Clone, Debug)]
pub struct TaskView {
    pub seq: i64,
    pub task_id: String,
    pub filename: String,
    pub created_at: String,
    pub duplicate: bool,
    /// The document's number, unless it has been deleted since.
    pub doc_seq: Option<i64>,
    pub stage: Option<Stage>,
    pub updated_at: Option<String>,
    pub error: Option<String>,
    /// The document's title (or file name), unless it has been deleted.
    pub doc_title: Option<String>,
}

/// Tasks of the scope, newest first; one by its id if `task_id` is given.
pub fn tasks(
    conn: &Connection,
    task_id: Option<&str>,
    scope: &Scope,
    limit: usize,
) -> Result<Vec<TaskView>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT t.seq, t.task_id, t.filename, t.created_at, t.duplicate, d.seq, d.stage, d.updated_at,
                d.error_message, COALESCE(d.title, d.filename)
         FROM tasks t LEFT JOIN documents d ON d.id = t.doc_id AND d.stage != 'deleting'
         WHERE (?1 IS NULL OR t.task_id = ?1) AND {}
         ORDER BY t.seq DESC LIMIT ?3",
        workspace_filter("t.workspace", 2)
    ))?;
    let rows = stmt.query_map(params![task_id, scope.sql_param(), limit as i64], |r| {
        let stage: Option<String> = r.get(6)?;
        Ok(TaskView {
            seq: r.get(0)?,
            task_id: r.get(1)?,
            filename: r.get(2)?,
            created_at: format_ms(r.get(3)?),
            duplicate: r.get(4)?,
            doc_seq: r.get(5)?,
            stage: stage.as_deref().and_then(Stage::parse),
            updated_at: r.get::<_, Option<i64>>(7)?.map(format_ms),
            error: r.get(8)?,
            doc_title: r.get(9)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
