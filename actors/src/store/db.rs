//! SQLite: schema and migrations, the read pool, and the queries. Only the
//! Catalog actor writes (through the `write_*` functions, inside its group
//! commit); everyone else reads through [`ReadPool`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use super::meta;
use crate::model::{
    format_ms, Classification, Document, ErrorInfo, NewDocument, Origin, Scope, Stage,
};

/// Versioned migrations; `PRAGMA user_version` records how many have run.
/// Append only: never edit a migration that has shipped.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE documents (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    filename      TEXT NOT NULL,
    title         TEXT,
    mime          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL UNIQUE,
    stage         TEXT NOT NULL,
    failed_stage  TEXT,
    doc_type      TEXT,
    confidence    REAL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    retry_at      INTEGER,
    error_code    TEXT,
    error_message TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX documents_active ON documents(seq) WHERE stage IN ('queued', 'extracted', 'classified');
CREATE INDEX documents_stage ON documents(stage, seq);
CREATE INDEX documents_type ON documents(doc_type, seq);
CREATE TABLE texts (
    seq   INTEGER PRIMARY KEY REFERENCES documents(seq) ON DELETE CASCADE,
    text  TEXT NOT NULL,
    title TEXT,
    pages INTEGER
);
CREATE TABLE events (
    seq    INTEGER PRIMARY KEY,
    doc_id TEXT,
    kind   TEXT NOT NULL,
    stage  TEXT,
    detail TEXT,
    at     INTEGER NOT NULL
);
CREATE INDEX events_doc ON events(doc_id, seq);
"#,
    r#"
CREATE TABLE originals (
    seq   INTEGER PRIMARY KEY REFERENCES documents(seq) ON DELETE CASCADE,
    bytes BLOB NOT NULL
);
"#,
    // Workspaces (duplicates are per workspace, so that an upload never learns
    // of another workspace's documents), the upload's request id as the
    // correlation id, the audit columns of events, and API tokens. The
    // documents table is rebuilt (SQLite cannot drop a UNIQUE constraint);
    // foreign keys are off while migrations run.
    r#"
CREATE TABLE documents_v3 (
    seq           INTEGER PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    workspace     TEXT NOT NULL,
    filename      TEXT NOT NULL,
    title         TEXT,
    mime          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    stage         TEXT NOT NULL,
    failed_stage  TEXT,
    doc_type      TEXT,
    confidence    REAL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    retry_at      INTEGER,
    error_code    TEXT,
    error_message TEXT,
    request_id    TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    UNIQUE (workspace, sha256)
);
INSERT INTO documents_v3 (seq, id, workspace, filename, title, mime, size, sha256, stage, failed_stage,
    doc_type, confidence, attempts, retry_at, error_code, error_message, created_at, updated_at)
  SELECT seq, id, 'default', filename, title, mime, size, sha256, stage, failed_stage,
    doc_type, confidence, attempts, retry_at, error_code, error_message, created_at, updated_at
  FROM documents;
DROP TABLE documents;
ALTER TABLE documents_v3 RENAME TO documents;
CREATE INDEX documents_active ON documents(seq) WHERE stage IN ('queued', 'extracted', 'classified');
CREATE INDEX documents_stage ON documents(stage, seq);
CREATE INDEX documents_type ON documents(doc_type, seq);
CREATE INDEX documents_workspace ON documents(workspace, seq);
ALTER TABLE events ADD COLUMN workspace TEXT;
ALTER TABLE events ADD COLUMN token_id TEXT;
ALTER TABLE events ADD COLUMN request_id TEXT;
UPDATE events SET workspace = 'default' WHERE doc_id IS NOT NULL;
CREATE INDEX events_audit ON events(at) WHERE token_id IS NOT NULL;
CREATE TABLE tokens (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    workspaces TEXT NOT NULL,
    prefix     TEXT NOT NULL,
    hash       TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
"#,
    // Tags, document types per workspace, upload tasks (the Paperless-ngx
    // API's task ids), and what an upload may set: the document's own date,
    // an archive serial number, and a document type that the classifier
    // must not override.
    r#"
CREATE TABLE tags (
    id         INTEGER PRIMARY KEY,
    workspace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    color      TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (workspace, name)
);
CREATE TABLE document_tags (
    doc_seq INTEGER NOT NULL REFERENCES documents(seq) ON DELETE CASCADE,
    tag_id  INTEGER NOT NULL REFERENCES tags(id) ON DELETE CASCADE,
    PRIMARY KEY (doc_seq, tag_id)
) WITHOUT ROWID;
CREATE INDEX document_tags_tag ON document_tags(tag_id, doc_seq);
CREATE TABLE doc_types (
    id         INTEGER PRIMARY KEY,
    workspace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (workspace, name)
);
INSERT INTO doc_types (workspace, name, created_at)
  SELECT DISTINCT workspace, doc_type, 0 FROM documents WHERE doc_type IS NOT NULL;
CREATE TABLE tasks (
    seq        INTEGER PRIMARY KEY,
    task_id    TEXT NOT NULL UNIQUE,
    workspace  TEXT NOT NULL,
    doc_id     TEXT NOT NULL,
    filename   TEXT NOT NULL,
    duplicate  INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
ALTER TABLE documents ADD COLUMN doc_date TEXT;
ALTER TABLE documents ADD COLUMN asn INTEGER;
ALTER TABLE documents ADD COLUMN user_doc_type TEXT;
"#,
    // Files inside documents (e-mail attachments) are documents of their own,
    // linked here; a duplicate attachment links the document it duplicates.
    // The text's language and the fields the format carries.
    r#"
CREATE TABLE attachments (
    parent_seq INTEGER NOT NULL REFERENCES documents(seq) ON DELETE CASCADE,
    child_id   TEXT NOT NULL,
    filename   TEXT NOT NULL,
    PRIMARY KEY (parent_seq, child_id)
) WITHOUT ROWID;
CREATE INDEX attachments_child ON attachments(child_id);
ALTER TABLE documents ADD COLUMN language TEXT;
ALTER TABLE documents ADD COLUMN fields TEXT;
"#,
    // Documents whose scanned pages wait for OCR.
    r#"
ALTER TABLE documents ADD COLUMN needs_ocr INTEGER NOT NULL DEFAULT 0;
CREATE INDEX documents_needs_ocr ON documents(seq) WHERE needs_ocr = 1;
"#,
    // Where a document's type came from (rule, model, user), whether it
    // waits for a person to check it, and the learned classifier.
    r#"
ALTER TABLE documents ADD COLUMN type_source TEXT;
ALTER TABLE documents ADD COLUMN needs_review INTEGER NOT NULL DEFAULT 0;
CREATE INDEX documents_needs_review ON documents(seq) WHERE needs_review = 1;
UPDATE documents SET type_source = CASE WHEN user_doc_type IS NOT NULL THEN 'user' ELSE 'rule' END
  WHERE doc_type IS NOT NULL;
CREATE TABLE classifier (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    trained_at INTEGER NOT NULL,
    model      BLOB NOT NULL
);
"#,
    // The Enrich stage and the fields it finds (or users set).
    r#"
DROP INDEX documents_active;
CREATE INDEX documents_active ON documents(seq)
  WHERE stage IN ('queued', 'extracted', 'classified', 'enriched');
CREATE TABLE doc_fields (
    doc_seq    INTEGER NOT NULL REFERENCES documents(seq) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    currency   TEXT,
    confidence REAL NOT NULL,
    source     TEXT NOT NULL,
    PRIMARY KEY (doc_seq, name)
) WITHOUT ROWID;
"#,
    // Documents to run through the LLM once it answers again.
    r#"
ALTER TABLE documents ADD COLUMN needs_llm INTEGER NOT NULL DEFAULT 0;
CREATE INDEX documents_needs_llm ON documents(seq) WHERE needs_llm = 1;
"#,
    // Document types created, changed or deleted (definition NULL) over the
    // API; they win over config.toml.
    r#"
CREATE TABLE doc_type_defs (
    name       TEXT PRIMARY KEY,
    definition TEXT,
    updated_at INTEGER NOT NULL
);
"#,
];

/// `AND`-able SQL that keeps the rows of the scope's workspaces; `?{n}` is
/// bound to [`Scope::sql_param`] (NULL: every workspace).
pub(crate) fn workspace_filter(col: &str, n: usize) -> String {
    format!("(?{n} IS NULL OR {col} IN (SELECT value FROM json_each(?{n})))")
}

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("catalog.sqlite")
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    // Plans stay fixed for a statement's life. Without this, SQLite marks
    // cached statements whose parameters might change the plan (partial
    // indexes, LIMIT ?) for a fresh parse on every new binding: measured at
    // 6 % of the server's CPU under load, re-parsing the same few queries.
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Opens the writer connection (WAL, chosen `synchronous`) and runs migrations.
pub fn open_writer(path: &Path, synchronous: &str) -> Result<Connection> {
    let mut conn = Connection::open(path)
        .with_context(|| format!("failed to open SQLite database {}", path.display()))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", synchronous)?;
    configure(&conn)?;
    migrate(&mut conn)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    let r = run_migrations(conn);
    conn.pragma_update(None, "foreign_keys", "ON")?;
    r
}

fn run_migrations(conn: &mut Connection) -> Result<()> {
    let version = conn.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0))? as usize;
    if version > MIGRATIONS.len() {
        anyhow::bail!(
            "the database is at schema version {version}, newer than this docpipe knows ({}); use a newer docpipe",
            MIGRATIONS.len()
        );
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)
            .with_context(|| format!("migration {} failed", i + 1))?;
        let broken: i64 =
            tx.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        if broken > 0 {
            anyhow::bail!(
                "migration {} left {broken} rows with dangling references",
                i + 1
            );
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// A small pool of read-only connections; reads run on the blocking pool and
/// never queue behind the writer (WAL).
#[derive(Clone)]
pub struct ReadPool {
    path: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

const MAX_IDLE_READERS: usize = 8;

impl ReadPool {
    pub fn new(path: PathBuf) -> Self {
        ReadPool {
            path,
            idle: Arc::new(Mutex::new(Vec::new())),
        }
    }

    fn take(&self) -> Result<Connection> {
        if let Some(c) = self
            .idle
            .lock()
            .map_err(|_| anyhow::anyhow!("read pool poisoned"))?
            .pop()
        {
            return Ok(c);
        }
        let conn = Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("failed to open {}", self.path.display()))?;
        configure(&conn)?;
        Ok(conn)
    }

    fn give_back(&self, conn: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
    }

    /// Runs `f` on a pooled connection in a blocking task.
    pub async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = pool.take()?;
            let out = f(&conn);
            pool.give_back(conn);
            out
        })
        .await
        .context("read task failed")?
    }
}

// ---------------------------------------------------------------- reads

pub(crate) const DOC_COLUMNS: &str =
    "seq, id, filename, title, mime, size, sha256, stage, doc_type, confidence, \
     created_at, updated_at, attempts, error_code, error_message, workspace, language, fields, \
     needs_ocr, (SELECT pages FROM texts WHERE texts.seq = documents.seq), type_source, needs_review, \
     (SELECT json_group_array(json_object('name', name, 'kind', kind, 'value', value, \
        'currency', currency, 'confidence', confidence, 'source', source)) \
      FROM (SELECT * FROM doc_fields WHERE doc_fields.doc_seq = documents.seq ORDER BY name)), \
     needs_llm";

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

/// A document waiting in SQLite for admission.
#[derive(Clone, Debug)]
pub struct Pending {
    pub seq: i64,
    pub id: String,
    pub workspace: String,
    pub request_id: Option<String>,
    pub stage: Stage,
    pub mime: String,
    pub filename: String,
    pub title: Option<String>,
    pub attempts: u32,
    pub doc_type: Option<String>,
    pub confidence: Option<f32>,
}

/// Up to `limit` active documents that are due now, oldest first.
pub fn ready_documents(conn: &Connection, now_ms: i64, limit: usize) -> Result<Vec<Pending>> {
    ready_documents_after(conn, 0, now_ms, limit)
}

/// Like [`ready_documents`], for documents after `after_seq` only.
pub fn ready_documents_after(
    conn: &Connection,
    after_seq: i64,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<Pending>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, id, stage, mime, filename, title, attempts, doc_type, confidence, workspace, request_id FROM documents
         WHERE stage IN ('queued', 'extracted', 'classified', 'enriched') AND seq > ?1 AND (retry_at IS NULL OR retry_at <= ?2)
         ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![after_seq, now_ms, limit as i64], |r| {
        let stage: String = r.get(2)?;
        Ok(Pending {
            seq: r.get(0)?,
            id: r.get(1)?,
            stage: Stage::parse(&stage).unwrap_or(Stage::Queued),
            mime: r.get(3)?,
            filename: r.get(4)?,
            title: r.get(5)?,
            attempts: r.get::<_, i64>(6)? as u32,
            doc_type: r.get(7)?,
            confidence: r.get::<_, Option<f64>>(8)?.map(|c| c as f32),
            workspace: r.get(9)?,
            request_id: r.get(10)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// Sends every indexed document back to `classified`, so that the pipeline
/// indexes it again from its stored text (after the index was rebuilt).
/// Run at start, before the Catalog exists. Returns how many.
pub fn requeue_indexed(conn: &Connection) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE documents SET stage = 'enriched' WHERE stage = 'indexed'",
        [],
    )?)
}

/// The earliest pending retry time, if any document waits for one.
pub fn earliest_retry(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn.query_row(
        "SELECT MIN(retry_at) FROM documents WHERE stage IN ('queued', 'extracted', 'classified', 'enriched') AND retry_at IS NOT NULL",
        [],
        |r| r.get(0),
    )?)
}

/// Ids of documents whose delete was interrupted.
pub fn deleting_ids(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT id FROM documents WHERE stage = 'deleting'")?;
    let rows = stmt.query_map([], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

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

// ---------------------------------------------------------------- writes (Catalog only)

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
            meta::write_task(tx, task, &d.workspace, &existing.id, &d.filename, true, now)?;
        }
        return Ok(Inserted::Duplicate(Box::new(existing)));
    }
    let x = &d.extra;
    tx.prepare_cached(
        "INSERT INTO documents (id, workspace, filename, title, mime, size, sha256, stage, request_id,
           doc_date, asn, user_doc_type, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'queued', ?8, ?9, ?10, ?11, ?12, ?12)",
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
        now
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
        meta::write_task(tx, task, &d.workspace, &d.id, &d.filename, false, now)?;
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

/// Moves a document from `from` to `to` if it is still at `from` (a stale or
/// duplicate completion changes nothing). Clears retry state.
pub fn write_advance(
    tx: &Transaction<'_>,
    seq: i64,
    from: Stage,
    to: Stage,
    now: i64,
) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "UPDATE documents SET stage = ?3, attempts = 0, retry_at = NULL, error_code = NULL,
             error_message = NULL, updated_at = ?4 WHERE seq = ?1 AND stage = ?2",
        )?
        .execute(params![seq, from.as_str(), to.as_str(), now])?;
    Ok(n == 1)
}

/// `queued → extracted`, with what extraction learnt about the document
/// (language, fields, a precise type) in the same row write.
pub fn write_extracted(
    tx: &Transaction<'_>,
    seq: i64,
    out: &crate::model::Extracted,
    now: i64,
) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "UPDATE documents SET stage = 'extracted', attempts = 0, retry_at = NULL, error_code = NULL,
               error_message = NULL, updated_at = ?2, language = ?3, fields = ?4,
               mime = COALESCE(?5, mime), needs_ocr = ?6
             WHERE seq = ?1 AND stage = 'queued'",
        )?
        .execute(params![
            seq,
            now,
            out.language,
            out.fields.as_ref().map(|f| f.to_string()),
            out.mime,
            out.needs_ocr
        ])?;
    Ok(n == 1)
}

pub fn write_text(
    tx: &Transaction<'_>,
    seq: i64,
    text: &str,
    title: Option<&str>,
    pages: Option<u32>,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT OR REPLACE INTO texts (seq, text, title, pages) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![seq, text, title, pages])?;
    Ok(())
}

/// Stores the classifier's verdict, unless a user set the type (then that
/// stays, with confidence 1 and source `user`). Returns the verdict in
/// force, and makes sure the type is listed among the workspace's document
/// types.
pub fn write_classification(
    tx: &Transaction<'_>,
    seq: i64,
    class: &Classification,
    now: i64,
) -> Result<Classification> {
    let (doc_type, confidence, source, review, workspace): (
        Option<String>,
        f64,
        Option<String>,
        bool,
        String,
    ) = tx
        .prepare_cached(
            "UPDATE documents SET doc_type = COALESCE(user_doc_type, ?2),
               confidence = CASE WHEN user_doc_type IS NULL THEN ?3 ELSE 1.0 END,
               type_source = CASE WHEN user_doc_type IS NULL THEN ?4 ELSE 'user' END,
               needs_review = CASE WHEN user_doc_type IS NULL THEN ?5 ELSE 0 END,
               needs_llm = ?6
             WHERE seq = ?1 RETURNING doc_type, confidence, type_source, needs_review, workspace",
        )?
        .query_row(
            params![
                seq,
                class.doc_type,
                (class.confidence as f64 * 1000.0).round() / 1000.0,
                class.source,
                class.needs_review,
                class.needs_llm
            ],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )?;
    if let Some(t) = &doc_type {
        meta::ensure_doc_type(tx, &workspace, t, now)?;
    }
    Ok(Classification {
        doc_type,
        confidence: confidence as f32,
        source,
        needs_review: review,
        needs_llm: class.needs_llm,
    })
}

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

/// Records a failed attempt at `stage`: either schedule the next attempt at
/// `retry_at`, or (None) park the document as `failed`.
pub fn write_failure(
    tx: &Transaction<'_>,
    seq: i64,
    stage: Stage,
    attempts: u32,
    retry_at: Option<i64>,
    error: &ErrorInfo,
    now: i64,
) -> Result<bool> {
    let n = match retry_at {
        Some(at) => tx
            .prepare_cached(
                "UPDATE documents SET attempts = ?3, retry_at = ?4, error_code = ?5, error_message = ?6,
                 updated_at = ?7 WHERE seq = ?1 AND stage = ?2",
            )?
            .execute(params![seq, stage.as_str(), attempts, at, error.code, error.message, now])?,
        None => tx
            .prepare_cached(
                "UPDATE documents SET stage = 'failed', failed_stage = ?2, attempts = ?3, retry_at = NULL,
                 error_code = ?4, error_message = ?5, updated_at = ?6 WHERE seq = ?1 AND stage = ?2",
            )?
            .execute(params![seq, stage.as_str(), attempts, error.code, error.message, now])?,
    };
    Ok(n == 1)
}

/// The seq and workspace of a document in the scope (any stage but `deleting`).
fn find_in_scope(tx: &Transaction<'_>, id: &str, scope: &Scope) -> Result<Option<(i64, String)>> {
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

#[derive(Debug)]
pub enum RetryResult {
    Requeued(Stage),
    NotFound,
    NotFailed(Stage),
}

/// Puts a failed document back at the stage it failed in, with fresh attempts.
pub fn write_retry(
    tx: &Transaction<'_>,
    id: &str,
    scope: &Scope,
    origin: &Origin,
    now: i64,
) -> Result<RetryResult> {
    let Some((seq, workspace)) = find_in_scope(tx, id, scope)? else {
        return Ok(RetryResult::NotFound);
    };
    let (stage, failed_stage): (String, Option<String>) = tx.query_row(
        "SELECT stage, failed_stage FROM documents WHERE seq = ?1",
        [seq],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let stage = Stage::parse(&stage).unwrap_or(Stage::Failed);
    if stage != Stage::Failed {
        return Ok(RetryResult::NotFailed(stage));
    }
    let to = failed_stage
        .as_deref()
        .and_then(Stage::parse)
        .unwrap_or(Stage::Queued);
    tx.execute(
        "UPDATE documents SET stage = ?2, failed_stage = NULL, attempts = 0, retry_at = NULL,
         error_code = NULL, error_message = NULL, updated_at = ?3 WHERE seq = ?1",
        params![seq, to.as_str(), now],
    )?;
    let ev = NewEvent::action(origin, "retried", Some(&workspace))
        .doc(id)
        .stage(to);
    write_event(tx, &ev, now)?;
    Ok(RetryResult::Requeued(to))
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

    fn restart(self) -> Stage {
        match self {
            Flag::Ocr => Stage::Queued,
            Flag::Llm | Flag::Review => Stage::Extracted,
        }
    }
}

/// Sends the scope's indexed documents flagged for `flag` back to the
/// stage that redoes that work, with an audit event each; returns their
/// ids.
pub fn write_reprocess_flagged(
    tx: &Transaction<'_>,
    flag: Flag,
    scope: &Scope,
    origin: &Origin,
    now: i64,
) -> Result<Vec<String>> {
    let col = flag.column();
    let sql = format!(
        "SELECT seq, id, workspace FROM documents WHERE {col} = 1 AND stage = 'indexed' AND {}",
        workspace_filter("workspace", 1)
    );
    let docs: Vec<(i64, String, String)> = tx
        .prepare_cached(&sql)?
        .query_map([scope.sql_param()], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let stage = flag.restart();
    for (seq, id, workspace) in &docs {
        tx.prepare_cached(&format!(
            "UPDATE documents SET stage = ?3, attempts = 0, retry_at = NULL, updated_at = ?2{}
             WHERE seq = ?1",
            if flag == Flag::Llm {
                ", needs_llm = 0"
            } else {
                ""
            }
        ))?
        .execute(params![seq, now, stage.as_str()])?;
        let ev = NewEvent::action(origin, "reprocess_requested", Some(workspace))
            .doc(id)
            .stage(stage)
            .detail(serde_json::json!({"reason": col}));
        write_event(tx, &ev, now)?;
    }
    Ok(docs.into_iter().map(|(_, id, _)| id).collect())
}

/// Documents of the scope flagged for `flag`.
pub fn count_flagged(conn: &Connection, flag: Flag, scope: &Scope) -> Result<u64> {
    let sql = format!(
        "SELECT COUNT(*) FROM documents WHERE {} = 1 AND stage != 'deleting' AND {}",
        flag.column(),
        workspace_filter("workspace", 1)
    );
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([scope.sql_param()], |r| r.get::<_, i64>(0))? as u64)
}

/// Marks a document of the scope for deletion; false if there is none.
pub fn write_mark_deleting(
    tx: &Transaction<'_>,
    id: &str,
    scope: &Scope,
    origin: &Origin,
    now: i64,
) -> Result<bool> {
    let Some((seq, workspace)) = find_in_scope(tx, id, scope)? else {
        return Ok(false);
    };
    tx.execute(
        "UPDATE documents SET stage = 'deleting', updated_at = ?2 WHERE seq = ?1",
        params![seq, now],
    )?;
    let ev = NewEvent::action(origin, "delete_requested", Some(&workspace))
        .doc(id)
        .stage(Stage::Deleting);
    write_event(tx, &ev, now)?;
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn new_doc(id: &str, sha: &str) -> NewDocument {
        NewDocument {
            id: id.into(),
            workspace: "default".into(),
            filename: format!("{id}.txt"),
            title: None,
            mime: "text/plain".into(),
            size: 3,
            sha256: sha.into(),
            inline: Some(bytes::Bytes::from_static(b"abc")),
            extra: Default::default(),
        }
    }

    fn o() -> Origin {
        Origin {
            token_id: Some("tok".into()),
            request_id: Some("req".into()),
        }
    }

    #[test]
    fn cached_statements_are_not_parsed_again_for_new_bindings() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
        let tx = conn.transaction().unwrap();
        for i in 0..20 {
            write_insert(&tx, &new_doc(&format!("d{i}"), &format!("s{i}")), &o(), 0).unwrap();
        }
        tx.commit().unwrap();
        let reader = ReadPool::new(dir.path().join("c.sqlite")).take().unwrap();
        // A LIMIT bound to a parameter, and a parameter beside a column that
        // a partial index mentions: both made SQLite re-parse on each binding.
        let queries = [
            "SELECT id FROM documents WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            "SELECT id FROM documents WHERE needs_ocr = ?2 AND seq > ?1",
        ];
        for sql in queries {
            let mut st = reader.prepare_cached(sql).unwrap();
            for i in 0..10i64 {
                let n = st
                    .query_map([i, i % 3], |r| r.get::<_, String>(0))
                    .unwrap()
                    .count();
                assert!(n <= 20);
            }
            let again = st.get_status(rusqlite::StatementStatus::RePrepare);
            assert_eq!(again, 0, "{sql} was prepared again {again} times");
        }
    }

    #[test]
    fn workspaces_scope_reads_and_dedup() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
        let tx = conn.transaction().unwrap();
        let mut b = new_doc("b", "s1");
        b.workspace = "acme".into();
        write_insert(&tx, &new_doc("a", "s1"), &o(), 1).unwrap();
        // The same bytes in another workspace are a new document there.
        assert!(matches!(
            write_insert(&tx, &b, &o(), 2).unwrap(),
            Inserted::New
        ));
        tx.commit().unwrap();
        let acme = Scope::only(["acme"]);
        assert!(get_document(&conn, "a", &acme).unwrap().is_none());
        assert_eq!(
            get_document(&conn, "b", &acme).unwrap().unwrap().workspace,
            "acme"
        );
        assert!(events_for(&conn, "a", &acme).unwrap().is_empty());
        let ev = events_for(&conn, "b", &acme).unwrap();
        assert_eq!(ev[0].kind, "uploaded");
        assert_eq!(ev[0].token_id.as_deref(), Some("tok"));
        assert_eq!(ev[0].request_id.as_deref(), Some("req"));
        let f = ListFilter {
            scope: Some(acme.clone()),
            limit: 10,
            ..Default::default()
        };
        let ids: Vec<_> = list_documents(&conn, &f)
            .unwrap()
            .0
            .into_iter()
            .map(|d| d.id)
            .collect();
        assert_eq!(ids, ["b"]);
        assert_eq!(stage_counts(&conn, &acme).unwrap(), [(Stage::Queued, 1)]);
        assert_eq!(
            stage_counts(&conn, &Scope::All).unwrap(),
            [(Stage::Queued, 2)]
        );
        assert_eq!(
            audit_events(&conn, Some("acme"), None, None, 10)
                .unwrap()
                .len(),
            1
        );
        assert_eq!(audit_events(&conn, None, None, None, 10).unwrap().len(), 2);
    }

    #[test]
    fn migration_3_keeps_every_row_and_puts_it_in_the_default_workspace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(MIGRATIONS[0]).unwrap();
            conn.execute_batch(MIGRATIONS[1]).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.execute_batch(
                "INSERT INTO documents (seq, id, filename, mime, size, sha256, stage, created_at, updated_at)
                   VALUES (7, 'old', 'old.txt', 'text/plain', 3, 'sha', 'indexed', 1, 1);
                 INSERT INTO texts (seq, text) VALUES (7, 'old text');
                 INSERT INTO originals (seq, bytes) VALUES (7, x'616263');
                 INSERT INTO events (doc_id, kind, at) VALUES ('old', 'uploaded', 1);",
            )
            .unwrap();
        }
        let conn = open_writer(&path, "full").unwrap();
        let d = get_document(&conn, "old", &Scope::only(["default"]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (d.seq, d.stage, d.workspace.as_str()),
            (7, Stage::Indexed, "default")
        );
        assert_eq!(
            get_text(&conn, "old", &Scope::All).unwrap().as_deref(),
            Some("old text")
        );
        assert_eq!(
            get_inline_original(&conn, "old").unwrap().as_deref(),
            Some(&b"abc"[..])
        );
        assert_eq!(
            events_for(&conn, "old", &Scope::only(["default"]))
                .unwrap()
                .len(),
            1
        );
        // The foreign keys survived the rebuild: deleting cascades.
        conn.execute("DELETE FROM documents WHERE seq = 7", [])
            .unwrap();
        let left: i64 = conn
            .query_row("SELECT COUNT(*) FROM texts", [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0);
    }

    #[test]
    fn migrations_run_once_and_reopen_cleanly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.sqlite");
        drop(open_writer(&path, "full").unwrap());
        let conn = open_writer(&path, "full").unwrap();
        let v: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
    }

    #[test]
    fn insert_dedups_by_sha_and_advance_is_conditional() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
        let tx = conn.transaction().unwrap();
        assert!(matches!(
            write_insert(&tx, &new_doc("a", "s1"), &o(), 1).unwrap(),
            Inserted::New
        ));
        match write_insert(&tx, &new_doc("b", "s1"), &o(), 2).unwrap() {
            Inserted::Duplicate(d) => assert_eq!(d.id, "a"),
            Inserted::New => panic!("same sha inserted twice"),
        }
        let seq = get_document(&tx, "a", &Scope::All).unwrap().unwrap().seq;
        assert_eq!(
            get_inline_original(&tx, "a").unwrap().as_deref(),
            Some(&b"abc"[..])
        );
        assert!(write_advance(&tx, seq, Stage::Queued, Stage::Extracted, 3).unwrap());
        // A stale completion of the same stage changes nothing.
        assert!(!write_advance(&tx, seq, Stage::Queued, Stage::Extracted, 4).unwrap());
        tx.commit().unwrap();
        assert_eq!(
            get_document(&conn, "a", &Scope::All)
                .unwrap()
                .unwrap()
                .stage,
            Stage::Extracted
        );
    }

    #[test]
    fn failure_parks_and_retry_restores_the_failed_stage() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
        let tx = conn.transaction().unwrap();
        write_insert(&tx, &new_doc("a", "s1"), &o(), 1).unwrap();
        let seq = get_document(&tx, "a", &Scope::All).unwrap().unwrap().seq;
        let err = ErrorInfo::new("timeout", "parser took too long");
        assert!(write_failure(&tx, seq, Stage::Queued, 1, Some(100), &err, 2).unwrap());
        assert_eq!(
            ready_documents(&tx, 50, 10).unwrap().len(),
            0,
            "not due before retry_at"
        );
        assert_eq!(ready_documents(&tx, 100, 10).unwrap().len(), 1);
        assert_eq!(earliest_retry(&tx).unwrap(), Some(100));
        assert!(write_failure(&tx, seq, Stage::Queued, 2, None, &err, 3).unwrap());
        let d = get_document(&tx, "a", &Scope::All).unwrap().unwrap();
        assert_eq!((d.stage, d.attempts), (Stage::Failed, 2));
        assert_eq!(d.error, Some(err));
        assert!(matches!(
            write_retry(&tx, "a", &Scope::only(["elsewhere"]), &o(), 4).unwrap(),
            RetryResult::NotFound
        ));
        assert!(matches!(
            write_retry(&tx, "a", &Scope::All, &o(), 4).unwrap(),
            RetryResult::Requeued(Stage::Queued)
        ));
        let d = get_document(&tx, "a", &Scope::All).unwrap().unwrap();
        assert_eq!((d.stage, d.attempts, d.error), (Stage::Queued, 0, None));
    }

    #[test]
    fn list_pages_by_keyset_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
        let tx = conn.transaction().unwrap();
        for i in 0..5 {
            write_insert(&tx, &new_doc(&format!("d{i}"), &format!("s{i}")), &o(), i).unwrap();
        }
        tx.commit().unwrap();
        let mut f = ListFilter {
            limit: 2,
            ..Default::default()
        };
        let mut seen = Vec::new();
        loop {
            let (page, next) = list_documents(&conn, &f).unwrap();
            seen.extend(page.into_iter().map(|d| d.id));
            match next {
                Some(c) => f.after_seq = Some(c),
                None => break,
            }
        }
        assert_eq!(seen, ["d4", "d3", "d2", "d1", "d0"]);
    }
}
