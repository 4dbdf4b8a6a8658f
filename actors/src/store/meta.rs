//! Labels (tags and document types, per workspace), upload tasks, and what
//! uploads may say about a document beyond its bytes. Reads take a
//! [`Scope`]; writes run inside the Catalog's transaction.

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, Transaction};
use serde::Serialize;

use super::db::{doc_from_row, workspace_filter, write_event, NewEvent, DOC_COLUMNS};
use crate::enrich::fields::{Found, Kind};
use crate::model::{format_ms, Document, Origin, Scope, Stage};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelKind {
    Tag,
    DocType,
}

impl LabelKind {
    fn table(self) -> &'static str {
        match self {
            LabelKind::Tag => "tags",
            LabelKind::DocType => "doc_types",
        }
    }

    /// How many documents of the label, as SQL over the label row `l`.
    fn count_sql(self) -> &'static str {
        match self {
            LabelKind::Tag => "(SELECT COUNT(*) FROM document_tags dt WHERE dt.tag_id = l.id)",
            LabelKind::DocType => {
                "(SELECT COUNT(*) FROM documents d WHERE d.workspace = l.workspace AND d.doc_type = l.name AND d.stage != 'deleting')"
            }
        }
    }
}

/// A tag or a document type.
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
        LabelKind::DocType => tx.execute(
            "INSERT INTO doc_types (workspace, name, created_at) VALUES (?1, ?2, ?3)",
            params![workspace, name, now],
        )?,
    };
    let id = tx.last_insert_rowid();
    let kind_name = match kind {
        LabelKind::Tag => "tag_created",
        LabelKind::DocType => "doc_type_created",
    };
    let ev = NewEvent::action(origin, kind_name, Some(workspace))
        .detail(serde_json::json!({"id": id, "name": name}));
    write_event(tx, &ev, now)?;
    Ok((id, true))
}

pub fn list_labels(
    conn: &Connection,
    kind: LabelKind,
    scope: &Scope,
    offset: usize,
    limit: usize,
) -> Result<(u64, Vec<Label>)> {
    let table = kind.table();
    let filter = workspace_filter("l.workspace", 1);
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM {table} l WHERE {filter}"),
        params![scope.sql_param()],
        |r| r.get(0),
    )?;
    let color = if kind == LabelKind::Tag {
        "l.color"
    } else {
        "NULL"
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT l.id, l.workspace, l.name, {color}, {} FROM {table} l WHERE {filter}
         ORDER BY l.name, l.id LIMIT ?2 OFFSET ?3",
        kind.count_sql()
    ))?;
    let rows = stmt.query_map(
        params![scope.sql_param(), limit as i64, offset as i64],
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

/// The document-type id of `name` in `workspace`.
pub fn doc_type_id(conn: &Connection, workspace: &str, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM doc_types WHERE workspace = ?1 AND name = ?2")?
        .query_row(params![workspace, name], |r| r.get(0))
        .optional()?)
}

/// What a document carries besides its row: tag ids, document-type id, the
/// uploader's date and archive serial number.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DocExtras {
    pub tags: Vec<i64>,
    pub doc_type_id: Option<i64>,
    pub doc_date: Option<String>,
    pub asn: Option<i64>,
}

pub fn extras_of(conn: &Connection, doc: &Document) -> Result<DocExtras> {
    let mut stmt =
        conn.prepare_cached("SELECT tag_id FROM document_tags WHERE doc_seq = ?1 ORDER BY tag_id")?;
    let tags = stmt
        .query_map([doc.seq], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    let (doc_date, asn): (Option<String>, Option<i64>) = conn
        .prepare_cached("SELECT doc_date, asn FROM documents WHERE seq = ?1")?
        .query_row([doc.seq], |r| Ok((r.get(0)?, r.get(1)?)))?;
    let doc_type_id = match &doc.doc_type {
        Some(t) => doc_type_id(conn, &doc.workspace, t)?,
        None => None,
    };
    Ok(DocExtras {
        tags,
        doc_type_id,
        doc_date,
        asn,
    })
}

/// A document by its number (`seq`, the Paperless id), if in the scope.
pub fn get_by_seq(conn: &Connection, seq: i64, scope: &Scope) -> Result<Option<Document>> {
    let sql = format!(
        "SELECT {DOC_COLUMNS} FROM documents WHERE seq = ?1 AND stage != 'deleting' AND {}",
        workspace_filter("workspace", 2)
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![seq, scope.sql_param()], doc_from_row)
        .optional()?)
}

/// A page of the scope's documents, newest first, and how many there are.
pub fn page_documents(
    conn: &Connection,
    scope: &Scope,
    offset: usize,
    limit: usize,
) -> Result<(u64, Vec<Document>)> {
    let filter = workspace_filter("workspace", 1);
    let total: i64 = conn.query_row(
        &format!("SELECT COUNT(*) FROM documents WHERE stage != 'deleting' AND {filter}"),
        params![scope.sql_param()],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {DOC_COLUMNS} FROM documents WHERE stage != 'deleting' AND {filter}
         ORDER BY seq DESC LIMIT ?2 OFFSET ?3"
    ))?;
    let docs = stmt
        .query_map(
            params![scope.sql_param(), limit as i64, offset as i64],
            doc_from_row,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok((total as u64, docs))
}

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
                d.error_message
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
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A change to a document's metadata; `None` leaves a field as it is, and
/// `Some(None)` clears it.
#[derive(Clone, Debug, Default)]
pub struct Edit {
    pub title: Option<Option<String>>,
    /// A type set by hand: the classifier does not override it.
    pub doc_type: Option<Option<String>>,
    pub tags: Option<Vec<i64>>,
    pub doc_date: Option<Option<String>>,
    pub asn: Option<Option<i64>>,
    /// Field values set by hand (already checked against their kind); None
    /// removes the user's value, and the next enrichment fills it again.
    pub fields: Option<Vec<(String, Option<UserField>)>>,
}

/// A field value a user set.
#[derive(Clone, Debug)]
pub struct UserField {
    pub kind: Kind,
    pub value: String,
    pub currency: Option<String>,
}

/// Stores the fields Enrich found, in place of the ones found before; a
/// value a user set stays (whatever was found for that name). Returns the
/// names of the user's values kept.
pub fn write_found_fields(tx: &Transaction<'_>, seq: i64, found: &[Found]) -> Result<Vec<String>> {
    tx.prepare_cached("DELETE FROM doc_fields WHERE doc_seq = ?1 AND source != 'user'")?
        .execute([seq])?;
    let mut insert = tx.prepare_cached(
        "INSERT INTO doc_fields (doc_seq, name, kind, value, currency, confidence, source)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (doc_seq, name) DO NOTHING",
    )?;
    for f in found {
        insert.execute(params![
            seq,
            f.name,
            kind_name(f.kind),
            f.value,
            f.currency,
            (f.confidence as f64 * 1000.0).round() / 1000.0,
            f.source
        ])?;
    }
    let kept = tx
        .prepare_cached(
            "SELECT name FROM doc_fields WHERE doc_seq = ?1 AND source = 'user' ORDER BY name",
        )?
        .query_map([seq], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(kept)
}

pub fn kind_name(kind: Kind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

#[derive(Debug)]
pub enum EditResult {
    Edited(Stage),
    NotFound,
    /// A tag id that the document's workspace does not have.
    UnknownTag(i64),
}

/// Applies an edit to a document of the scope. A document already indexed
/// goes back to `classified`, so the pipeline indexes it again with the new
/// title and type (from its stored text).
pub fn write_edit(
    tx: &Transaction<'_>,
    id: &str,
    scope: &Scope,
    edit: &Edit,
    origin: &Origin,
    now: i64,
) -> Result<EditResult> {
    let found: Option<(i64, String, String)> = tx
        .query_row(
            &format!(
                "SELECT seq, workspace, stage FROM documents WHERE id = ?1 AND stage != 'deleting' AND {}",
                workspace_filter("workspace", 2)
            ),
            params![id, scope.sql_param()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((seq, workspace, stage)) = found else {
        return Ok(EditResult::NotFound);
    };
    if let Some(tags) = &edit.tags {
        for t in tags {
            let known: Option<i64> = tx
                .query_row(
                    "SELECT id FROM tags WHERE id = ?1 AND workspace = ?2",
                    params![t, workspace],
                    |r| r.get(0),
                )
                .optional()?;
            if known.is_none() {
                return Ok(EditResult::UnknownTag(*t));
            }
        }
        tx.execute("DELETE FROM document_tags WHERE doc_seq = ?1", [seq])?;
        for t in tags {
            tx.execute(
                "INSERT OR IGNORE INTO document_tags (doc_seq, tag_id) VALUES (?1, ?2)",
                params![seq, t],
            )?;
        }
    }
    if let Some(t) = &edit.title {
        tx.execute(
            "UPDATE documents SET title = ?2 WHERE seq = ?1",
            params![seq, t],
        )?;
    }
    if let Some(t) = &edit.doc_type {
        tx.execute(
            "UPDATE documents SET user_doc_type = ?2, doc_type = ?2,
               confidence = CASE WHEN ?2 IS NULL THEN NULL ELSE 1.0 END,
               type_source = CASE WHEN ?2 IS NULL THEN NULL ELSE 'user' END,
               needs_review = 0 WHERE seq = ?1",
            params![seq, t],
        )?;
        if let Some(name) = t {
            ensure_doc_type(tx, &workspace, name, now)?;
        }
    }
    if let Some(d) = &edit.doc_date {
        tx.execute(
            "UPDATE documents SET doc_date = ?2 WHERE seq = ?1",
            params![seq, d],
        )?;
    }
    if let Some(a) = &edit.asn {
        tx.execute(
            "UPDATE documents SET asn = ?2 WHERE seq = ?1",
            params![seq, a],
        )?;
    }
    if let Some(fields) = &edit.fields {
        for (name, value) in fields {
            match value {
                Some(f) => tx.execute(
                    "INSERT INTO doc_fields (doc_seq, name, kind, value, currency, confidence, source)
                     VALUES (?1, ?2, ?3, ?4, ?5, 1.0, 'user')
                     ON CONFLICT (doc_seq, name) DO UPDATE SET kind = excluded.kind,
                       value = excluded.value, currency = excluded.currency,
                       confidence = 1.0, source = 'user'",
                    params![seq, name, kind_name(f.kind), f.value, f.currency],
                )?,
                None => tx.execute(
                    "DELETE FROM doc_fields WHERE doc_seq = ?1 AND name = ?2",
                    params![seq, name],
                )?,
            };
        }
    }
    let mut stage = Stage::parse(&stage).unwrap_or(Stage::Failed);
    // A new type has other fields: enrich again (values set by hand stay).
    // A new title only needs indexing again.
    let back_to = if edit.doc_type.is_some() {
        Some(Stage::Classified)
    } else if edit.title.is_some() {
        Some(Stage::Enriched)
    } else {
        None
    };
    if let (Stage::Indexed, Some(to)) = (stage, back_to) {
        tx.execute(
            "UPDATE documents SET stage = ?2 WHERE seq = ?1",
            params![seq, to.as_str()],
        )?;
        stage = to;
    }
    tx.execute(
        "UPDATE documents SET updated_at = ?2 WHERE seq = ?1",
        params![seq, now],
    )?;
    let mut changed = serde_json::Map::new();
    if let Some(t) = &edit.title {
        changed.insert("title".into(), serde_json::json!(t));
    }
    if let Some(t) = &edit.doc_type {
        changed.insert("doc_type".into(), serde_json::json!(t));
    }
    if let Some(t) = &edit.tags {
        changed.insert("tags".into(), serde_json::json!(t));
    }
    if let Some(d) = &edit.doc_date {
        changed.insert("created".into(), serde_json::json!(d));
    }
    if let Some(a) = &edit.asn {
        changed.insert("archive_serial_number".into(), serde_json::json!(a));
    }
    if let Some(fields) = &edit.fields {
        let values: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(n, v)| (n.clone(), serde_json::json!(v.as_ref().map(|f| &f.value))))
            .collect();
        changed.insert("fields".into(), serde_json::Value::Object(values));
    }
    let ev = NewEvent::action(origin, "edited", Some(&workspace))
        .doc(id)
        .detail(serde_json::Value::Object(changed));
    write_event(tx, &ev, now)?;
    Ok(EditResult::Edited(stage))
}

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
