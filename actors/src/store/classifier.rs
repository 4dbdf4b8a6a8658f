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

/// Stores a newly trained classifier in place of the last one.
pub fn write_classifier(tx: &Transaction<'_>, model: &[u8], trained_at: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO classifier (id, trained_at, model) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET trained_at = excluded.trained_at, model = excluded.model",
        params![trained_at, model],
    )?;
    Ok(())
}

/// The stored classifier, with when it was trained.
pub fn read_classifier(conn: &Connection) -> Result<Option<(Vec<u8>, i64)>> {
    Ok(conn
        .query_row(
            "SELECT model, trained_at FROM classifier WHERE id = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?)
}

/// The training set: every document whose type a user set, with its title
/// and text.
pub fn read_training_set(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut st = conn.prepare(
        "SELECT d.user_doc_type, COALESCE(d.title, '') || char(10) || t.text
           FROM documents d JOIN texts t ON t.seq = d.seq
          WHERE d.user_doc_type IS NOT NULL AND d.stage != 'deleting' ORDER BY d.seq",
    )?;
    let rows = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}
