//! Links between a document and the attachments found in it.

use super::schema::workspace_filter;
use crate::model::Scope;
use anyhow::Result;
use rusqlite::{params, Connection, Transaction};

/// Links an attachment (a new document, or the one it duplicates) to the
/// document it was found in.
pub fn write_link(
    tx: &Transaction<'_>,
    parent_seq: i64,
    child_id: &str,
    filename: &str,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO attachments (parent_seq, child_id, filename) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![parent_seq, child_id, filename])?;
    Ok(())
}

/// A document's attachments `(id, filename)`, and the ids of the documents
/// it is attached to.
pub type Links = (Vec<(String, String)>, Vec<String>);

/// A document's links, all within the scope.
pub fn links(conn: &Connection, id: &str, scope: &Scope) -> Result<Links> {
    let children = conn
        .prepare_cached(&format!(
            "SELECT a.child_id, a.filename FROM attachments a
             JOIN documents p ON p.seq = a.parent_seq
             JOIN documents c ON c.id = a.child_id AND c.stage != 'deleting'
             WHERE p.id = ?1 AND {} ORDER BY a.filename, a.child_id",
            workspace_filter("c.workspace", 2)
        ))?
        .query_map(params![id, scope.sql_param()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let parents = conn
        .prepare_cached(&format!(
            "SELECT p.id FROM attachments a JOIN documents p ON p.seq = a.parent_seq
             WHERE a.child_id = ?1 AND p.stage != 'deleting' AND {} ORDER BY p.seq",
            workspace_filter("p.workspace", 2)
        ))?
        .query_map(params![id, scope.sql_param()], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok((children, parents))
}

/// How many documents up the chain of attachments `id` sits (0: uploaded).
pub fn attachment_depth(conn: &Connection, id: &str) -> Result<usize> {
    let depth: Option<i64> = conn
        .prepare_cached(
            "WITH RECURSIVE up(id, depth) AS (
               SELECT ?1, 0
               UNION ALL
               SELECT d.id, up.depth + 1 FROM up
                 JOIN attachments a ON a.child_id = up.id
                 JOIN documents d ON d.seq = a.parent_seq
               WHERE up.depth < 32)
             SELECT MAX(depth) FROM up",
        )?
        .query_row([id], |r| r.get(0))?;
    Ok(depth.unwrap_or(0) as usize)
}

/// Attachments of `parent_id` that no other document holds.
pub fn own_attachments(conn: &Connection, parent_id: &str) -> Result<Vec<String>> {
    Ok(conn
        .prepare_cached(
            "SELECT a.child_id FROM attachments a JOIN documents p ON p.seq = a.parent_seq
             WHERE p.id = ?1 AND NOT EXISTS (
               SELECT 1 FROM attachments o JOIN documents q ON q.seq = o.parent_seq
               WHERE o.child_id = a.child_id AND q.id != ?1)",
        )?
        .query_map([parent_id], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?)
}
