//! Labels: tags, document types and issuers, per workspace.

use super::events::{write_event, NewEvent};
use super::schema::workspace_filter;
use crate::model::{Origin, Scope};
use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LabelKind {
    Tag,
    DocType,
    /// Who issued a document (Paperless's correspondent): the value of its
    /// `issuer` field, found by Enrich or set by hand.
    Issuer,
}

impl LabelKind {
    fn table(self) -> &'static str {
        match self {
            LabelKind::Tag => "tags",
            LabelKind::DocType => "doc_types",
            LabelKind::Issuer => "issuers",
        }
    }

    /// How many documents of the label, as SQL over the label row `l`.
    fn count_sql(self) -> &'static str {
        match self {
            LabelKind::Tag => "(SELECT COUNT(*) FROM document_tags dt WHERE dt.tag_id = l.id)",
            LabelKind::DocType => {
                "(SELECT COUNT(*) FROM documents d WHERE d.workspace = l.workspace AND d.doc_type = l.name AND d.stage != 'deleting')"
            }
            LabelKind::Issuer => {
                "(SELECT COUNT(*) FROM doc_fields f JOIN documents d ON d.seq = f.doc_seq
                  WHERE f.name = 'issuer' AND f.value = l.name AND d.workspace = l.workspace AND d.stage != 'deleting')"
            }
        }
    }
}

/// A tag, a document type or an issuer.
#[derive(Clone, Debug, Serialize)]
pub struct Label {
    pub id: i64,
    pub workspace: String,
    pub name: String,
    pub color: Option<String>,
    pub document_count: i64,
}

pub const DEFAULT_TAG_COLOR: &str = "#a6cee3";

/// Lists a document type in its workspace, if it is not listed yet (types
/// come from the classifier and from edits as well as from the API).
pub fn ensure_doc_type(tx: &Transaction<'_>, workspace: &str, name: &str, now: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO doc_types (workspace, name, created_at) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![workspace, name, now])?;
    Ok(())
}

/// Creates a label unless the workspace has one of that name. Returns its id
/// and whether it is new.
pub fn write_label(
    tx: &Transaction<'_>,
    kind: LabelKind,
    workspace: &str,
    name: &str,
    color: Option<&str>,
    origin: &Origin,
    now: i64,
) -> Result<(i64, bool)> {
    let table = kind.table();
    let existing: Option<i64> = tx
        .query_row(
            &format!("SELECT id FROM {table} WHERE workspace = ?1 AND name = ?2"),
            params![workspace, name],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(id) = existing {
        return Ok((id, false));
    }
    match kind {
        LabelKind::Tag => tx.execute(
            "INSERT INTO tags (workspace, name, color, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![workspace, name, color.unwrap_or(DEFAULT_TAG_COLOR), now],
        )?,
        LabelKind::DocType | LabelKind::Issuer => tx.execute(
            &format!("INSERT INTO {table} (workspace, name, created_at) VALUES (?1, ?2, ?3)"),
            params![workspace, name, now],
        )?,
    };
    let id = tx.last_insert_rowid();
    let kind_name = match kind {
        LabelKind::Tag => "tag_created",
        LabelKind::DocType => "doc_type_created",
        LabelKind::Issuer => "issuer_created",
    };
    let ev = NewEvent::action(origin, kind_name, Some(workspace))
        .detail(serde_json::json!({"id": id, "name": name}));
    write_event(tx, &ev, now)?;
    Ok((id, true))
}

/// Which labels a list shows (Paperless's label filters); empty: all.
#[derive(Clone, Debug, Default)]
pub struct LabelFilter {
    /// Case-insensitive.
    pub name_contains: Option<String>,
    pub name_starts: Option<String>,
    pub name_is: Option<String>,
    pub ids: Option<Vec<i64>>,
}

/// The filter's conditions over the label row `l`, parameters `?2` to `?5`
/// (each holds when its parameter is NULL).
const LABEL_FILTER_SQL: &str = " AND (?2 IS NULL OR instr(lower(l.name), lower(?2)) > 0)
  AND (?3 IS NULL OR lower(substr(l.name, 1, length(?3))) = lower(?3))
  AND (?4 IS NULL OR lower(l.name) = lower(?4))
  AND (?5 IS NULL OR l.id IN (SELECT value FROM json_each(?5)))";

impl LabelFilter {
    fn ids_json(&self) -> Option<String> {
        self.ids
            .as_ref()
            .map(|v| serde_json::to_string(v).unwrap_or_else(|_| "[]".into()))
    }
}

pub fn list_labels(
    conn: &Connection,
    kind: LabelKind,
    scope: &Scope,
    filter: &LabelFilter,
    offset: usize,
    limit: usize,
) -> Result<(u64, Vec<Label>)> {
    let table = kind.table();
    let ws = workspace_filter("l.workspace", 1);
    let cond = LABEL_FILTER_SQL;
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM {table} l WHERE {ws}{cond}"),
        params![
            scope.sql_param(),
            filter.name_contains,
            filter.name_starts,
            filter.name_is,
            filter.ids_json()
        ],
        |r| r.get(0),
    )?;
    let color = if kind == LabelKind::Tag {
        "l.color"
    } else {
        "NULL"
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT l.id, l.workspace, l.name, {color}, {} FROM {table} l WHERE {ws}{cond}
         ORDER BY l.name, l.id LIMIT ?6 OFFSET ?7",
        kind.count_sql()
    ))?;
    let rows = stmt.query_map(
        params![
            scope.sql_param(),
            filter.name_contains,
            filter.name_starts,
            filter.name_is,
            filter.ids_json(),
            limit as i64,
            offset as i64
        ],
        label_from_row,
    )?;
    Ok((total as u64, rows.collect::<rusqlite::Result<Vec<_>>>()?))
}

fn label_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Label> {
    Ok(Label {
        id: r.get(0)?,
        workspace: r.get(1)?,
        name: r.get(2)?,
        color: r.get(3)?,
        document_count: r.get(4)?,
    })
}

pub fn get_label(
    conn: &Connection,
    kind: LabelKind,
    id: i64,
    scope: &Scope,
) -> Result<Option<Label>> {
    let table = kind.table();
    let color = if kind == LabelKind::Tag {
        "l.color"
    } else {
        "NULL"
    };
    Ok(conn
        .query_row(
            &format!(
                "SELECT l.id, l.workspace, l.name, {color}, {} FROM {table} l WHERE l.id = ?1 AND {}",
                kind.count_sql(),
                workspace_filter("l.workspace", 2)
            ),
            params![id, scope.sql_param()],
            label_from_row,
        )
        .optional()?)
}

/// Lists the issuer of a document (its `issuer` field, if it has one) in
/// the document's workspace.
pub fn ensure_issuer_of(tx: &Transaction<'_>, seq: i64, now: i64) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO issuers (workspace, name, created_at)
         SELECT d.workspace, f.value, ?2 FROM doc_fields f JOIN documents d ON d.seq = f.doc_seq
         WHERE f.doc_seq = ?1 AND f.name = 'issuer'",
    )?
    .execute(params![seq, now])?;
    Ok(())
}

/// The document-type id of `name` in `workspace`.
pub fn doc_type_id(conn: &Connection, workspace: &str, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM doc_types WHERE workspace = ?1 AND name = ?2")?
        .query_row(params![workspace, name], |r| r.get(0))
        .optional()?)
}
