//! API tokens: only their hashes are kept.

use super::events::{write_event, NewEvent};
use crate::model::{format_ms, Origin};
use anyhow::Result;
use rusqlite::{params, Connection, Transaction};

/// An API token as stored: the secret itself is never kept, only its hash.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TokenRow {
    pub id: String,
    pub name: String,
    pub role: String,
    pub workspaces: Vec<String>,
    pub prefix: String,
    #[serde(skip)]
    pub hash: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

pub fn list_tokens(conn: &Connection) -> Result<Vec<TokenRow>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, name, role, workspaces, prefix, hash, created_at, revoked_at FROM tokens ORDER BY created_at, id",
    )?;
    let rows = stmt.query_map([], |r| {
        let ws: String = r.get(3)?;
        Ok(TokenRow {
            id: r.get(0)?,
            name: r.get(1)?,
            role: r.get(2)?,
            workspaces: serde_json::from_str(&ws).unwrap_or_default(),
            prefix: r.get(4)?,
            hash: r.get(5)?,
            created_at: format_ms(r.get(6)?),
            revoked_at: r.get::<_, Option<i64>>(7)?.map(format_ms),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Stores a new token (its hash) and records who created it.
pub fn write_token(tx: &Transaction<'_>, t: &TokenRow, origin: &Origin, now: i64) -> Result<()> {
    tx.execute(
        "INSERT INTO tokens (id, name, role, workspaces, prefix, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![t.id, t.name, t.role, serde_json::to_string(&t.workspaces)?, t.prefix, t.hash, now],
    )?;
    let ev = NewEvent::action(origin, "token_created", None).detail(serde_json::json!({
        "id": t.id, "name": t.name, "role": t.role, "workspaces": t.workspaces, "prefix": t.prefix
    }));
    write_event(tx, &ev, now)?;
    Ok(())
}

/// Revokes a token; false if there is no such token or it is revoked already.
pub fn write_revoke_token(
    tx: &Transaction<'_>,
    id: &str,
    origin: &Origin,
    now: i64,
) -> Result<bool> {
    let n = tx.execute(
        "UPDATE tokens SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![id, now],
    )?;
    if n == 1 {
        let ev =
            NewEvent::action(origin, "token_revoked", None).detail(serde_json::json!({"id": id}));
        write_event(tx, &ev, now)?;
    }
    Ok(n == 1)
}
