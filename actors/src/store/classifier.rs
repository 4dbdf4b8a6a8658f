//! The learned classifier's rows and its training set, and the document
//! types changed over the API.

use super::events::{write_event, NewEvent};
use crate::model::Origin;
use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// The types changed over the API, oldest change first.
pub fn read_type_overlays(conn: &Connection) -> Result<Vec<(String, Option<String>)>> {
    let mut st =
        conn.prepare("SELECT name, definition FROM doc_type_defs ORDER BY updated_at, name")?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Stores a type's definition (None: deleted), with an audit event.
pub fn write_type_overlay(
    tx: &Transaction<'_>,
    name: &str,
    definition: Option<&str>,
    origin: &Origin,
    now: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO doc_type_defs (name, definition, updated_at) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at",
        params![name, definition, now],
    )?;
    let ev = NewEvent::action(
        origin,
        if definition.is_some() {
            "type_saved"
        } else {
            "type_deleted"
        },
        None,
    )
    .detail(serde_json::json!({
        "name": name,
        "definition": definition.and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok()),
    }));
    write_event(tx, &ev, now)?;
    Ok(())
}

/// Stores a workspace's newly trained classifier in place of its last one.
pub fn write_classifier(
    tx: &Transaction<'_>,
    workspace: &str,
    model: &[u8],
    trained_at: i64,
) -> Result<()> {
    tx.execute(
        "INSERT INTO classifiers (workspace, trained_at, model) VALUES (?1, ?2, ?3)
         ON CONFLICT (workspace) DO UPDATE SET trained_at = excluded.trained_at, model = excluded.model",
        params![workspace, trained_at, model],
    )?;
    Ok(())
}

/// The stored classifiers: workspace, model, when it was trained.
pub fn read_classifiers(conn: &Connection) -> Result<Vec<(String, Vec<u8>, i64)>> {
    let mut st = conn.prepare("SELECT workspace, model, trained_at FROM classifiers")?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The training set: every document whose type a user set, with its title
/// and text.
pub fn read_training_set(
    conn: &Connection,
    workspace: &str,
) -> Result<Vec<(String, String, String)>> {
    let mut st = conn.prepare(
        "SELECT d.user_doc_type, COALESCE(d.title, ''), t.text
           FROM documents d JOIN texts t ON t.seq = d.seq
          WHERE d.workspace = ?1 AND d.user_doc_type IS NOT NULL AND d.stage != 'deleting'
          ORDER BY d.seq",
    )?;
    let rows = st
        .query_map([workspace], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// The workspace of a document.
pub fn workspace_of(conn: &Connection, id: &str) -> Result<Option<String>> {
    Ok(conn
        .query_row("SELECT workspace FROM documents WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .optional()?)
}

/// The workspaces with documents whose type a user set.
pub fn corrected_workspaces(conn: &Connection) -> Result<Vec<String>> {
    let mut st = conn.prepare(
        "SELECT DISTINCT workspace FROM documents
          WHERE user_doc_type IS NOT NULL AND stage != 'deleting'",
    )?;
    let rows = st
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
