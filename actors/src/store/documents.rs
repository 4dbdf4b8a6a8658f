//! Documents: their rows, texts and inline originals; reads by id, number
//! and page; registration, deletion.

use super::edits::{ensure_field_name, ISSUER};
use super::events::{write_event, NewEvent};
use super::labels::{doc_type_id, ensure_issuer_of};
use super::schema::workspace_filter;
use super::tasks::write_task;
use crate::model::{
    format_ms, Document, ErrorInfo, Extracted, NewDocument, NewNote, Origin, Scope, Stage,
};
use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};
use serde::Serialize;

pub(crate) const DOC_COLUMNS: &str =
    "seq, id, filename, title, mime, size, sha256, stage, doc_type, confidence, \
     created_at, updated_at, attempts, error_code, error_message, workspace, language, fields, \
     needs_ocr, (SELECT pages FROM texts WHERE texts.seq = documents.seq), type_source, needs_review, \
     (SELECT json_group_array(json_object('name', name, 'kind', kind, 'value', value, \
        'currency', currency, 'confidence', confidence, 'source', source)) \
      FROM (SELECT * FROM doc_fields WHERE doc_fields.doc_seq = documents.seq ORDER BY name)), \
     needs_llm, (embedded_at IS updated_at)";

pub(crate) fn doc_from_row(r: &Row<'_>) -> rusqlite::Result<Document> {
    let stage: String = r.get(7)?;
    let code: Option<String> = r.get(13)?;
    let message: Option<String> = r.get(14)?;
    Ok(Document {
        seq: r.get(0)?,
        id: r.get(1)?,
        workspace: r.get(15)?,
        language: r.get(16)?,
        needs_ocr: r.get::<_, i64>(18)? != 0,
        pages: r.get::<_, Option<i64>>(19)?.map(|p| p as u32),
        type_source: r.get(20)?,
        needs_review: r.get::<_, i64>(21)? != 0,
        metadata: r
            .get::<_, Option<String>>(17)?
            .and_then(|f| serde_json::from_str(&f).ok()),
        fields: r
            .get::<_, Option<String>>(22)?
            .and_then(|f| serde_json::from_str(&f).ok())
            .unwrap_or_default(),
        needs_llm: r.get::<_, i64>(23)? != 0,
        embedded: r.get::<_, i64>(24)? != 0,
        filename: r.get(2)?,
        title: r.get(3)?,
        mime: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
        sha256: r.get(6)?,
        stage: Stage::parse(&stage).unwrap_or(Stage::Failed),
        doc_type: r.get(8)?,
        confidence: r.get::<_, Option<f64>>(9)?,
        created_at: format_ms(r.get(10)?),
        updated_at: format_ms(r.get(11)?),
        attempts: r.get::<_, i64>(12)? as u32,
        error: code.map(|code| ErrorInfo {
            code,
            message: message.unwrap_or_default(),
        }),
    })
}

/// A visible document by id, if it is in the scope (`deleting` ones are gone
/// already, as far as users are concerned).
pub fn get_document(conn: &Connection, id: &str, scope: &Scope) -> Result<Option<Document>> {
    let sql = format!(
        "SELECT {DOC_COLUMNS} FROM documents WHERE id = ?1 AND stage != 'deleting' AND {}",
        workspace_filter("workspace", 2)
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![id, scope.sql_param()], doc_from_row)
        .optional()?)
}

/// The document of this workspace with these bytes, if there is one.
pub fn get_by_sha(conn: &Connection, workspace: &str, sha256: &str) -> Result<Option<Document>> {
    let sql = format!("SELECT {DOC_COLUMNS} FROM documents WHERE workspace = ?1 AND sha256 = ?2");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([workspace, sha256], doc_from_row)
        .optional()?)
}

pub fn exists_id(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM documents WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn get_text(conn: &Connection, id: &str, scope: &Scope) -> Result<Option<String>> {
    let sql = format!(
        "SELECT t.text FROM texts t JOIN documents d ON d.seq = t.seq \
         WHERE d.id = ?1 AND d.stage != 'deleting' AND {}",
        workspace_filter("d.workspace", 2)
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![id, scope.sql_param()], |r| r.get(0))
        .optional()?)
}

/// A document's text, or of a long one the `window` characters around the
/// first place one of `needles` occurs (the start when none does): SQLite
/// looks, so a long text is not copied out whole for a snippet.
pub fn get_text_window(
    conn: &Connection,
    id: &str,
    scope: &Scope,
    needles: &[String],
    window: usize,
) -> Result<Option<String>> {
    let sql = format!(
        "SELECT CASE WHEN length(t.text) <= ?3 THEN t.text ELSE substr(t.text, max(1, \
           coalesce((SELECT min(p) FROM (SELECT instr(t.text, j.value) AS p FROM json_each(?4) j) \
                     WHERE p > 0), 1) - ?3 / 2), ?3) END \
         FROM texts t JOIN documents d ON d.seq = t.seq \
         WHERE d.id = ?1 AND d.stage != 'deleting' AND {}",
        workspace_filter("d.workspace", 2)
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(
            params![
                id,
                scope.sql_param(),
                window as i64,
                serde_json::to_string(needles)?
            ],
            |r| r.get(0),
        )
        .optional()?)
}

/// The original of a document whose bytes live in SQLite, if they do.
pub fn get_inline_original(conn: &Connection, id: &str) -> Result<Option<Vec<u8>>> {
    Ok(conn
        .prepare_cached(
            "SELECT o.bytes FROM originals o JOIN documents d ON d.seq = o.seq WHERE d.id = ?1",
        )?
        .query_row([id], |r| r.get(0))
        .optional()?)
}

pub fn get_text_by_seq(conn: &Connection, seq: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT text FROM texts WHERE seq = ?1")?
        .query_row([seq], |r| r.get(0))
        .optional()?)
}

#[derive(Clone, Debug, Default)]
pub struct ListFilter {
    pub scope: Option<Scope>,
    pub stage: Option<Stage>,
    pub doc_type: Option<String>,
    /// Only documents whose issuer is this.
    pub issuer: Option<String>,
    /// Only documents carrying this flag.
    pub flag: Option<Flag>,
    pub limit: usize,
    /// Keyset cursor: the `seq` of the last document of the previous page.
    pub after_seq: Option<i64>,
}

/// Newest first, keyset-paginated. Returns the page and the cursor of the next page.
pub fn list_documents(conn: &Connection, f: &ListFilter) -> Result<(Vec<Document>, Option<i64>)> {
    let mut sql = format!("SELECT {DOC_COLUMNS} FROM documents WHERE stage != 'deleting'");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(Scope::Only(w)) = &f.scope {
        sql.push_str(" AND workspace IN (SELECT value FROM json_each(?))");
        args.push(serde_json::to_string(&**w)?.into());
    }
    if let Some(stage) = f.stage {
        sql.push_str(" AND stage = ?");
        args.push(stage.as_str().to_string().into());
    }
    if let Some(t) = &f.doc_type {
        sql.push_str(" AND doc_type = ?");
        args.push(t.clone().into());
    }
    if let Some(i) = &f.issuer {
        sql.push_str(
            " AND seq IN (SELECT doc_seq FROM doc_fields WHERE name = 'issuer' AND value = ?)",
        );
        args.push(i.clone().into());
    }
    if let Some(flag) = f.flag {
        sql.push_str(&format!(" AND {} = 1", flag.column()));
    }
    if let Some(after) = f.after_seq {
        sql.push_str(" AND seq < ?");
        args.push(after.into());
    }
    sql.push_str(" ORDER BY seq DESC LIMIT ?");
    args.push(((f.limit + 1) as i64).into());
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut docs = stmt
        .query_map(rusqlite::params_from_iter(args), doc_from_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let next = if docs.len() > f.limit {
        docs.truncate(f.limit);
        docs.last().map(|d| d.seq)
    } else {
        None
    };
    Ok((docs, next))
}

/// Number of documents per stage, in the scope.
pub fn stage_counts(conn: &Connection, scope: &Scope) -> Result<Vec<(Stage, u64)>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT stage, COUNT(*) FROM documents WHERE {} GROUP BY stage",
        workspace_filter("workspace", 1)
    ))?;
    let rows = stmt.query_map([scope.sql_param()], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (s, n) = row?;
        if let Some(stage) = Stage::parse(&s) {
            out.push((stage, n as u64));
        }
    }
    Ok(out)
}

/// The scope's documents per media type, most first, each with the
/// characters of its extracted text.
pub fn mime_counts(conn: &Connection, scope: &Scope) -> Result<Vec<MimeCount>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT d.mime, COUNT(*), COALESCE(SUM(length(t.text)), 0)
         FROM documents d LEFT JOIN texts t ON t.seq = d.seq
         WHERE d.stage != 'deleting' AND {}
         GROUP BY d.mime ORDER BY 2 DESC, 1",
        workspace_filter("d.workspace", 1)
    ))?;
    let rows = stmt.query_map([scope.sql_param()], |r| {
        Ok(MimeCount {
            mime: r.get(0)?,
            documents: r.get::<_, i64>(1)? as u64,
            chars: r.get::<_, i64>(2)? as u64,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Documents of one media type (see [`mime_counts`]).
#[derive(Clone, Debug, serde::Serialize)]
pub struct MimeCount {
    pub mime: String,
    pub documents: u64,
    /// Characters of their extracted text.
    pub chars: u64,
}

/// Ids of documents whose delete was interrupted.
pub fn deleting_ids(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT id FROM documents WHERE stage = 'deleting'")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub enum Inserted {
    New,
    Duplicate(Box<Document>),
}

/// Inserts a new document in `queued`, unless its workspace has one with the
/// same bytes.
pub fn write_insert(
    tx: &Transaction<'_>,
    d: &NewDocument,
    origin: &Origin,
    now: i64,
) -> Result<Inserted> {
    if let Some(existing) = get_by_sha(tx, &d.workspace, &d.sha256)? {
        if let Some(task) = &d.extra.task_id {
            write_task(tx, task, &d.workspace, &existing.id, &d.filename, true, now)?;
        }
        if let Some((source, n)) = &d.extra.imported_from {
            write_imported(tx, source, *n, &existing.id, now)?;
        }
        return Ok(Inserted::Duplicate(Box::new(existing)));
    }
    let x = &d.extra;
    // A number asked for is kept if free; NULL takes the next one.
    let number = match x.number {
        Some(n) if n > 0 => tx
            .prepare_cached("SELECT 1 FROM documents WHERE seq = ?1")?
            .query_row([n], |_| Ok(()))
            .optional()?
            .is_none()
            .then_some(n),
        _ => None,
    };
    tx.prepare_cached(
        "INSERT INTO documents (id, workspace, filename, title, mime, size, sha256, stage, request_id,
           doc_date, asn, user_doc_type, created_at, updated_at, seq, keep_metadata)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?9, ?10, ?11, ?12, ?12, ?13, ?14)",
    )?
    .execute(params![
        d.id,
        d.workspace,
        d.filename,
        d.title,
        d.mime,
        d.size as i64,
        d.sha256,
        origin.request_id,
        x.doc_date,
        x.asn,
        x.doc_type,
        now,
        number,
        x.keep_metadata
    ])?;
    let seq = tx.last_insert_rowid();
    if let Some(bytes) = &d.inline {
        tx.prepare_cached("INSERT INTO originals (seq, bytes) VALUES (?1, ?2)")?
            .execute(params![seq, &bytes[..]])?;
    }
    for tag in &x.tags {
        tx.prepare_cached("INSERT OR IGNORE INTO document_tags (doc_seq, tag_id) VALUES (?1, ?2)")?
            .execute(params![seq, tag])?;
    }
    if let Some(task) = &x.task_id {
        write_task(tx, task, &d.workspace, &d.id, &d.filename, false, now)?;
    }
    for (name, f) in &x.fields {
        tx.prepare_cached(
            "INSERT OR REPLACE INTO doc_fields (doc_seq, name, kind, value, currency, confidence, source)
             VALUES (?1, ?2, ?3, ?4, ?5, 1.0, 'user')",
        )?
        .execute(params![seq, name, f.kind.as_str(), f.value, f.currency])?;
        ensure_field_name(tx, name, f.kind, now)?;
        if name == ISSUER {
            ensure_issuer_of(tx, seq, now)?;
        }
    }
    for n in &x.notes {
        write_note_row(tx, seq, n, now)?;
    }
    if let Some((source, n)) = &x.imported_from {
        write_imported(tx, source, *n, &d.id, now)?;
    }
    let (kind, detail) = match &x.parent {
        Some(parent) => (
            "attached",
            serde_json::json!({"filename": d.filename, "size": d.size, "sha256": d.sha256, "parent": parent}),
        ),
        None => (
            "uploaded",
            serde_json::json!({"filename": d.filename, "size": d.size, "sha256": d.sha256}),
        ),
    };
    let ev = NewEvent::action(origin, kind, Some(&d.workspace))
        .doc(&d.id)
        .stage(Stage::Queued)
        .detail(detail);
    write_event(tx, &ev, now)?;
    Ok(Inserted::New)
}

pub fn write_text(tx: &Transaction<'_>, seq: i64, out: &Extracted) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO texts (seq, text, title, pages, layout) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![seq, out.text, out.title, out.pages, out.layout])?;
    Ok(())
}

/// The seq and workspace of a document in the scope (any stage but `deleting`).
pub(crate) fn find_in_scope(
    tx: &Transaction<'_>,
    id: &str,
    scope: &Scope,
) -> Result<Option<(i64, String)>> {
    let sql = format!(
        "SELECT seq, workspace FROM documents WHERE id = ?1 AND stage != 'deleting' AND {}",
        workspace_filter("workspace", 2)
    );
    Ok(tx
        .prepare_cached(&sql)?
        .query_row(params![id, scope.sql_param()], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?)
}

/// Marks a document of the scope for deletion; false if there is none.
pub fn write_mark_deleting(
    tx: &Transaction<'_>,
    id: &str,
    scope: &Scope,
    origin: &Origin,
    now: i64,
) -> Result<Option<i64>> {
    let Some((seq, workspace)) = find_in_scope(tx, id, scope)? else {
        return Ok(None);
    };
    tx.execute(
        "UPDATE documents SET stage = 'deleting', updated_at = ?2 WHERE seq = ?1",
        params![seq, now],
    )?;
    let ev = NewEvent::action(origin, "delete_requested", Some(&workspace))
        .doc(id)
        .stage(Stage::Deleting);
    write_event(tx, &ev, now)?;
    Ok(Some(seq))
}

pub fn write_purge(tx: &Transaction<'_>, id: &str, origin: &Origin, now: i64) -> Result<bool> {
    let workspace: Option<String> = tx
        .query_row(
            "SELECT workspace FROM documents WHERE id = ?1 AND stage = 'deleting'",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    let Some(workspace) = workspace else {
        return Ok(false);
    };
    tx.execute(
        "DELETE FROM documents WHERE id = ?1 AND stage = 'deleting'",
        [id],
    )?;
    let ev = NewEvent::action(origin, "deleted", Some(&workspace)).doc(id);
    write_event(tx, &ev, now)?;
    Ok(true)
}

/// What a document carries besides its row: tag ids, document-type id, the
/// uploader's date and archive serial number.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DocExtras {
    pub tags: Vec<i64>,
    pub doc_type_id: Option<i64>,
    /// The id of the document's issuer (see [`LabelKind::Issuer`](super::LabelKind)).
    pub issuer_id: Option<i64>,
    pub doc_date: Option<String>,
    pub asn: Option<i64>,
    pub notes: Vec<Note>,
}

/// A note on a document.
#[derive(Clone, Debug, Serialize)]
pub struct Note {
    pub id: i64,
    pub note: String,
    pub author: String,
    pub created_at: String,
}

fn write_imported(
    tx: &Transaction<'_>,
    source: &str,
    n: i64,
    doc_id: &str,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR IGNORE INTO imported (source, source_id, doc_id, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![source, n, doc_id, now])?;
    Ok(())
}

/// Every document whose original is in the blob store (not inline): id,
/// SHA-256 and size, oldest first.
pub fn blob_documents(conn: &Connection) -> Result<Vec<(String, String, u64)>> {
    let mut stmt = conn.prepare(
        "SELECT d.id, d.sha256, d.size FROM documents d
         WHERE d.stage != 'deleting' AND NOT EXISTS (SELECT 1 FROM originals o WHERE o.seq = d.seq)
         ORDER BY d.seq",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The ids of the documents brought from `source` so far, with the
/// documents they became.
pub fn imported_from(conn: &Connection, source: &str) -> Result<Vec<(i64, String)>> {
    let mut stmt =
        conn.prepare_cached("SELECT source_id, doc_id FROM imported WHERE source = ?1")?;
    let rows = stmt.query_map([source], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

pub(crate) fn write_note_row(tx: &Transaction<'_>, seq: i64, n: &NewNote, now: i64) -> Result<i64> {
    tx.prepare_cached(
        "INSERT INTO notes (doc_seq, note, author, created_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![seq, n.note, n.author, n.created_at.unwrap_or(now)])?;
    Ok(tx.last_insert_rowid())
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
    let issuer_id = conn
        .prepare_cached(
            "SELECT i.id FROM doc_fields f JOIN issuers i ON i.name = f.value AND i.workspace = ?2
             WHERE f.doc_seq = ?1 AND f.name = 'issuer'",
        )?
        .query_row(params![doc.seq, doc.workspace], |r| r.get(0))
        .optional()?;
    let notes = conn
        .prepare_cached(
            "SELECT id, note, author, created_at FROM notes WHERE doc_seq = ?1 ORDER BY id",
        )?
        .query_map([doc.seq], |r| {
            Ok(Note {
                id: r.get(0)?,
                note: r.get(1)?,
                author: r.get(2)?,
                created_at: format_ms(r.get(3)?),
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(DocExtras {
        tags,
        doc_type_id,
        issuer_id,
        doc_date,
        asn,
        notes,
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

/// Which documents a list shows and in what order (the Paperless list's
/// filters); empty: all of the scope's, newest first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DocQuery {
    /// Documents carrying every one of these tags.
    pub tags_all: Vec<i64>,
    /// Documents carrying at least one of these tags (if any are given).
    pub tags_any: Option<Vec<i64>>,
    /// Documents carrying none of these tags.
    pub tags_none: Vec<i64>,
    pub is_tagged: Option<bool>,
    /// Document-type ids; `Some(vec![])` matches nothing.
    pub doc_types: Option<Vec<i64>>,
    pub doc_types_none: Vec<i64>,
    pub doc_type_null: Option<bool>,
    /// Issuer ids.
    pub issuers: Option<Vec<i64>>,
    pub issuers_none: Vec<i64>,
    pub issuer_null: Option<bool>,
    /// Document numbers.
    pub numbers: Option<Vec<i64>>,
    /// Case-insensitive substrings.
    pub title_contains: Option<String>,
    pub content_contains: Option<String>,
    pub title_or_content: Option<String>,
    pub filename_contains: Option<String>,
    /// The document's date (`created`), against `YYYY-MM-DD`.
    pub created: Vec<(Cmp, String)>,
    /// The day it was added (UTC), against `YYYY-MM-DD`.
    pub added_date: Vec<(Cmp, String)>,
    /// When it was added, against ms since the epoch.
    pub added: Vec<(Cmp, i64)>,
    pub asn: Vec<(Cmp, i64)>,
    pub asn_null: Option<bool>,
    pub mime: Option<String>,
    pub order: Option<(DocOrder, bool)>,
}

/// A comparison of a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Cmp {
    fn sql(self) -> &'static str {
        match self {
            Cmp::Eq => "=",
            Cmp::Gt => ">",
            Cmp::Gte => ">=",
            Cmp::Lt => "<",
            Cmp::Lte => "<=",
        }
    }
}

/// What a list can be ordered by (`true`: descending).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DocOrder {
    Number,
    Title,
    Created,
    Added,
    Modified,
    Asn,
    DocType,
    Issuer,
    Mime,
    Pages,
}

/// The document's own date, or the day it was added.
const CREATED_DATE_SQL: &str =
    "COALESCE(substr(d.doc_date, 1, 10), date(d.created_at / 1000, 'unixepoch'))";

impl DocQuery {
    /// Whether it leaves any document out (its order aside).
    pub fn has_conditions(&self) -> bool {
        let bare = DocQuery {
            order: None,
            ..self.clone()
        };
        bare != DocQuery::default()
    }

    /// `AND`-ed SQL conditions over `documents d`, and their arguments.
    fn conditions(&self, args: &mut Vec<rusqlite::types::Value>) -> Result<String> {
        let mut sql = String::new();
        let ids = |v: &[i64]| serde_json::to_string(v).map(rusqlite::types::Value::from);
        let tagged = "(SELECT 1 FROM document_tags t WHERE t.doc_seq = d.seq AND t.tag_id";
        for t in &self.tags_all {
            sql.push_str(&format!(" AND EXISTS {tagged} = ?)"));
            args.push((*t).into());
        }
        if let Some(any) = &self.tags_any {
            sql.push_str(&format!(
                " AND EXISTS {tagged} IN (SELECT value FROM json_each(?)))"
            ));
            args.push(ids(any)?);
        }
        if !self.tags_none.is_empty() {
            sql.push_str(&format!(
                " AND NOT EXISTS {tagged} IN (SELECT value FROM json_each(?)))"
            ));
            args.push(ids(&self.tags_none)?);
        }
        if let Some(t) = self.is_tagged {
            let not = if t { "" } else { "NOT " };
            sql.push_str(&format!(
                " AND {not}EXISTS (SELECT 1 FROM document_tags t WHERE t.doc_seq = d.seq)"
            ));
        }
        let type_id = "(SELECT ty.id FROM doc_types ty WHERE ty.workspace = d.workspace AND ty.name = d.doc_type)";
        if let Some(v) = &self.doc_types {
            sql.push_str(&format!(
                " AND {type_id} IN (SELECT value FROM json_each(?))"
            ));
            args.push(ids(v)?);
        }
        if !self.doc_types_none.is_empty() {
            sql.push_str(&format!(
                " AND (d.doc_type IS NULL OR {type_id} NOT IN (SELECT value FROM json_each(?)))"
            ));
            args.push(ids(&self.doc_types_none)?);
        }
        if let Some(null) = self.doc_type_null {
            sql.push_str(if null {
                " AND d.doc_type IS NULL"
            } else {
                " AND d.doc_type IS NOT NULL"
            });
        }
        let issuer_id = "(SELECT i.id FROM doc_fields f JOIN issuers i ON i.name = f.value AND i.workspace = d.workspace WHERE f.doc_seq = d.seq AND f.name = 'issuer')";
        if let Some(v) = &self.issuers {
            sql.push_str(&format!(
                " AND {issuer_id} IN (SELECT value FROM json_each(?))"
            ));
            args.push(ids(v)?);
        }
        if !self.issuers_none.is_empty() {
            sql.push_str(&format!(
                " AND COALESCE({issuer_id} NOT IN (SELECT value FROM json_each(?)), 1)"
            ));
            args.push(ids(&self.issuers_none)?);
        }
        if let Some(null) = self.issuer_null {
            let not = if null { "" } else { "NOT " };
            sql.push_str(&format!(" AND {issuer_id} IS {not}NULL"));
        }
        if let Some(v) = &self.numbers {
            sql.push_str(" AND d.seq IN (SELECT value FROM json_each(?))");
            args.push(ids(v)?);
        }
        let text = "(SELECT x.text FROM texts x WHERE x.seq = d.seq)";
        let title = "COALESCE(d.title, d.filename)";
        for (value, expr) in [
            (&self.title_contains, title.to_string()),
            (&self.content_contains, text.to_string()),
            (&self.filename_contains, "d.filename".to_string()),
            (
                &self.title_or_content,
                format!("{title} || char(10) || COALESCE({text}, '')"),
            ),
        ] {
            if let Some(v) = value {
                sql.push_str(&format!(" AND instr(lower({expr}), lower(?)) > 0"));
                args.push(v.clone().into());
            }
        }
        for (cmp, v) in &self.created {
            sql.push_str(&format!(" AND {CREATED_DATE_SQL} {} ?", cmp.sql()));
            args.push(v.clone().into());
        }
        for (cmp, v) in &self.added_date {
            sql.push_str(&format!(
                " AND date(d.created_at / 1000, 'unixepoch') {} ?",
                cmp.sql()
            ));
            args.push(v.clone().into());
        }
        for (cmp, v) in &self.added {
            sql.push_str(&format!(" AND d.created_at {} ?", cmp.sql()));
            args.push((*v).into());
        }
        for (cmp, v) in &self.asn {
            sql.push_str(&format!(" AND d.asn {} ?", cmp.sql()));
            args.push((*v).into());
        }
        if let Some(null) = self.asn_null {
            sql.push_str(if null {
                " AND d.asn IS NULL"
            } else {
                " AND d.asn IS NOT NULL"
            });
        }
        if let Some(m) = &self.mime {
            sql.push_str(" AND d.mime = ?");
            args.push(m.clone().into());
        }
        Ok(sql)
    }

    fn order_sql(&self) -> String {
        let Some((by, desc)) = self.order else {
            return "d.seq DESC".into();
        };
        let col = match by {
            DocOrder::Number => "d.seq",
            DocOrder::Title => "lower(COALESCE(d.title, d.filename))",
            DocOrder::Created => CREATED_DATE_SQL,
            DocOrder::Added => "d.created_at",
            DocOrder::Modified => "d.updated_at",
            DocOrder::Asn => "d.asn",
            DocOrder::DocType => "d.doc_type",
            DocOrder::Issuer => {
                "(SELECT f.value FROM doc_fields f WHERE f.doc_seq = d.seq AND f.name = 'issuer')"
            }
            DocOrder::Mime => "d.mime",
            DocOrder::Pages => "(SELECT x.pages FROM texts x WHERE x.seq = d.seq)",
        };
        let dir = if desc { "DESC" } else { "ASC" };
        format!("{col} {dir}, d.seq {dir}")
    }
}

/// A page of the documents a query picks, how many it picks, and all their
/// numbers in order (Paperless's `all`).
pub fn query_documents(
    conn: &Connection,
    scope: &Scope,
    q: &DocQuery,
    offset: usize,
    limit: usize,
) -> Result<(u64, Vec<Document>, Vec<i64>)> {
    let mut args: Vec<rusqlite::types::Value> = vec![match scope.sql_param() {
        Some(s) => s.into(),
        None => rusqlite::types::Value::Null,
    }];
    let cond = q.conditions(&mut args)?;
    let base = format!(
        "FROM documents d WHERE d.stage != 'deleting' AND {}{cond}",
        workspace_filter("d.workspace", 1)
    );
    let order = q.order_sql();
    let numbers = conn
        .prepare_cached(&format!("SELECT d.seq {base} ORDER BY {order}"))?
        .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<i64>>>()?;
    let page: Vec<i64> = numbers.iter().skip(offset).take(limit).copied().collect();
    let mut docs = Vec::with_capacity(page.len());
    let mut one = conn.prepare_cached(&format!(
        "SELECT {DOC_COLUMNS} FROM documents WHERE seq = ?1"
    ))?;
    for n in page {
        if let Some(doc) = one.query_row([n], doc_from_row).optional()? {
            docs.push(doc);
        }
    }
    Ok((numbers.len() as u64, docs, numbers))
}

/// The numbers of all the scope's documents, newest first (Paperless's
/// `all`: eight bytes a document, so 100,000 documents are under 1 MB).
pub fn document_numbers(conn: &Connection, scope: &Scope) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT seq FROM documents WHERE stage != 'deleting' AND {} ORDER BY seq DESC",
        workspace_filter("workspace", 1)
    ))?;
    let rows = stmt.query_map(params![scope.sql_param()], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<i64>>>()?)
}

/// A document's language and the fields its format carries (for Enrich).
/// What the field rules read besides the text: the language, the format's
/// own fields, and the text as laid out on the page (short PDFs).
pub struct FieldInputs {
    pub language: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub layout: Option<String>,
}

pub fn get_field_inputs(conn: &Connection, seq: i64) -> Result<FieldInputs> {
    let (language, metadata, layout): (Option<String>, Option<String>, Option<String>) = conn
        .prepare_cached(
            "SELECT d.language, d.fields, (SELECT t.layout FROM texts t WHERE t.seq = d.seq) \
             FROM documents d WHERE d.seq = ?1",
        )?
        .query_row([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?
        .unwrap_or((None, None, None));
    Ok(FieldInputs {
        language,
        metadata: metadata.and_then(|m| serde_json::from_str(&m).ok()),
        layout,
    })
}

/// What a document waits for, to be run again once it is there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flag {
    /// OCR: read again from the original (stage `queued`).
    Ocr,
    /// The LLM: typed and enriched again (stage `extracted`; the text
    /// stays, values users set stay).
    Llm,
    /// A type the classifier was unsure of: typed again (stage `extracted`)
    /// by the model in force, which may have learnt from corrections since.
    Review,
}

impl Flag {
    /// The flag's column; it is also the flag's name in the API.
    pub fn column(self) -> &'static str {
        match self {
            Flag::Ocr => "needs_ocr",
            Flag::Llm => "needs_llm",
            Flag::Review => "needs_review",
        }
    }

    pub fn parse(name: &str) -> Option<Flag> {
        [Flag::Ocr, Flag::Llm, Flag::Review]
            .into_iter()
            .find(|f| f.column() == name)
    }

    pub(crate) fn restart(self) -> Stage {
        match self {
            Flag::Ocr => Stage::Queued,
            Flag::Llm | Flag::Review => Stage::Extracted,
        }
    }
}

/// What the index keeps of each document beside its words (tags, language,
/// date, fields), for a batch of documents by number.
pub fn index_meta(
    conn: &Connection,
    seqs: &[i64],
) -> Result<std::collections::HashMap<i64, crate::store::index::IndexMeta>> {
    use crate::store::index::IndexMeta;
    let json = serde_json::to_string(seqs)?;
    let mut out: std::collections::HashMap<i64, IndexMeta> = std::collections::HashMap::new();
    let mut docs = conn.prepare_cached(&format!(
        "SELECT d.seq, d.language, {CREATED_DATE_SQL}, d.created_at FROM documents d
         WHERE d.seq IN (SELECT value FROM json_each(?1))"
    ))?;
    let rows = docs.query_map([&json], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            IndexMeta {
                language: r.get(1)?,
                created: r.get(2)?,
                added_ms: r.get(3)?,
                ..IndexMeta::default()
            },
        ))
    })?;
    for row in rows {
        let (seq, meta) = row?;
        out.insert(seq, meta);
    }
    let mut tags = conn.prepare_cached(
        "SELECT dt.doc_seq, t.name FROM document_tags dt JOIN tags t ON t.id = dt.tag_id
         WHERE dt.doc_seq IN (SELECT value FROM json_each(?1)) ORDER BY t.name",
    )?;
    let rows = tags.query_map([&json], |r| {
        Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (seq, name) = row?;
        if let Some(m) = out.get_mut(&seq) {
            m.tags.push(name);
        }
    }
    let mut fields = conn.prepare_cached(
        "SELECT doc_seq, name, kind, value FROM doc_fields
         WHERE doc_seq IN (SELECT value FROM json_each(?1))",
    )?;
    let rows = fields.query_map([&json], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    for row in rows {
        let (seq, name, kind, value) = row?;
        if let (Some(m), Some(kind)) = (out.get_mut(&seq), crate::model::Kind::parse(&kind)) {
            m.fields.push((name, kind, value));
        }
    }
    Ok(out)
}

/// A document's tags (id, name, by name) and its date: its own, else the
/// day it was added (`YYYY-MM-DD`).
pub fn tags_and_date(conn: &Connection, seq: i64) -> Result<(Vec<(i64, String)>, String)> {
    let tags = conn
        .prepare_cached(
            "SELECT t.id, t.name FROM document_tags dt JOIN tags t ON t.id = dt.tag_id
             WHERE dt.doc_seq = ?1 ORDER BY t.name",
        )?
        .query_map([seq], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let date: String = conn
        .prepare_cached(&format!(
            "SELECT {CREATED_DATE_SQL} FROM documents d WHERE d.seq = ?1"
        ))?
        .query_row([seq], |r| r.get(0))?;
    Ok((tags, date))
}
