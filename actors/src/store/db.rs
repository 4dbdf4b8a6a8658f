//! SQLite: schema and migrations, the read pool, and the queries. Only the
//! Catalog actor writes (through the `write_*` functions, inside its group
//! commit); everyone else reads through [`ReadPool`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension, Row, Transaction};

use crate::model::{format_ms, Document, ErrorInfo, NewDocument, Stage};

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
];

pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("catalog.sqlite")
}

fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
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

const DOC_COLUMNS: &str =
    "seq, id, filename, title, mime, size, sha256, stage, doc_type, confidence, \
     created_at, updated_at, attempts, error_code, error_message";

fn doc_from_row(r: &Row<'_>) -> rusqlite::Result<Document> {
    let stage: String = r.get(7)?;
    let code: Option<String> = r.get(13)?;
    let message: Option<String> = r.get(14)?;
    Ok(Document {
        seq: r.get(0)?,
        id: r.get(1)?,
        filename: r.get(2)?,
        title: r.get(3)?,
        mime: r.get(4)?,
        size: r.get::<_, i64>(5)? as u64,
        sha256: r.get(6)?,
        stage: Stage::parse(&stage).unwrap_or(Stage::Failed),
        doc_type: r.get(8)?,
        confidence: r.get::<_, Option<f64>>(9)?.map(|c| c as f32),
        created_at: format_ms(r.get(10)?),
        updated_at: format_ms(r.get(11)?),
        attempts: r.get::<_, i64>(12)? as u32,
        error: code.map(|code| ErrorInfo {
            code,
            message: message.unwrap_or_default(),
        }),
    })
}

/// A visible document by id (`deleting` ones are gone already, as far as users are concerned).
pub fn get_document(conn: &Connection, id: &str) -> Result<Option<Document>> {
    let sql = format!("SELECT {DOC_COLUMNS} FROM documents WHERE id = ?1 AND stage != 'deleting'");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([id], doc_from_row)
        .optional()?)
}

pub fn get_by_sha(conn: &Connection, sha256: &str) -> Result<Option<Document>> {
    let sql = format!("SELECT {DOC_COLUMNS} FROM documents WHERE sha256 = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([sha256], doc_from_row)
        .optional()?)
}

pub fn exists_id(conn: &Connection, id: &str) -> Result<bool> {
    Ok(conn
        .query_row("SELECT 1 FROM documents WHERE id = ?1", [id], |_| Ok(()))
        .optional()?
        .is_some())
}

pub fn get_text(conn: &Connection, id: &str) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT t.text FROM texts t JOIN documents d ON d.seq = t.seq WHERE d.id = ?1 AND d.stage != 'deleting'")?
        .query_row([id], |r| r.get(0))
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
    pub stage: Option<Stage>,
    pub doc_type: Option<String>,
    pub limit: usize,
    /// Keyset cursor: the `seq` of the last document of the previous page.
    pub after_seq: Option<i64>,
}

/// Newest first, keyset-paginated. Returns the page and the cursor of the next page.
pub fn list_documents(conn: &Connection, f: &ListFilter) -> Result<(Vec<Document>, Option<i64>)> {
    let mut sql = format!("SELECT {DOC_COLUMNS} FROM documents WHERE stage != 'deleting'");
    let mut args: Vec<rusqlite::types::Value> = Vec::new();
    if let Some(stage) = f.stage {
        sql.push_str(" AND stage = ?");
        args.push(stage.as_str().to_string().into());
    }
    if let Some(t) = &f.doc_type {
        sql.push_str(" AND doc_type = ?");
        args.push(t.clone().into());
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

/// Number of documents per stage.
pub fn stage_counts(conn: &Connection) -> Result<Vec<(Stage, u64)>> {
    let mut stmt = conn.prepare("SELECT stage, COUNT(*) FROM documents GROUP BY stage")?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
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
        "SELECT seq, id, stage, mime, filename, title, attempts, doc_type, confidence FROM documents
         WHERE stage IN ('queued', 'extracted', 'classified') AND seq > ?1 AND (retry_at IS NULL OR retry_at <= ?2)
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
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// The earliest pending retry time, if any document waits for one.
pub fn earliest_retry(conn: &Connection) -> Result<Option<i64>> {
    Ok(conn.query_row(
        "SELECT MIN(retry_at) FROM documents WHERE stage IN ('queued', 'extracted', 'classified') AND retry_at IS NOT NULL",
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
    pub kind: String,
    pub stage: Option<String>,
    pub detail: Option<serde_json::Value>,
    pub at: String,
}

pub fn events_for(conn: &Connection, doc_id: &str) -> Result<Vec<Event>> {
    let mut stmt = conn.prepare(
        "SELECT seq, doc_id, kind, stage, detail, at FROM events WHERE doc_id = ?1 ORDER BY seq",
    )?;
    let rows = stmt.query_map([doc_id], |r| {
        let detail: Option<String> = r.get(4)?;
        Ok(Event {
            seq: r.get(0)?,
            doc_id: r.get(1)?,
            kind: r.get(2)?,
            stage: r.get(3)?,
            detail: detail.and_then(|d| serde_json::from_str(&d).ok()),
            at: format_ms(r.get(5)?),
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

// ---------------------------------------------------------------- writes (Catalog only)

pub fn write_event(
    tx: &Transaction<'_>,
    doc_id: &str,
    kind: &str,
    stage: Option<Stage>,
    detail: Option<&serde_json::Value>,
    now: i64,
) -> Result<()> {
    tx.prepare_cached(
        "INSERT INTO events (doc_id, kind, stage, detail, at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        doc_id,
        kind,
        stage.map(|s| s.as_str()),
        detail.map(|d| d.to_string()),
        now
    ])?;
    Ok(())
}

pub enum Inserted {
    New,
    Duplicate(Box<Document>),
}

/// Inserts a new document in `queued`, unless one with the same bytes exists.
pub fn write_insert(tx: &Transaction<'_>, d: &NewDocument, now: i64) -> Result<Inserted> {
    if let Some(existing) = get_by_sha(tx, &d.sha256)? {
        return Ok(Inserted::Duplicate(Box::new(existing)));
    }
    tx.prepare_cached(
        "INSERT INTO documents (id, filename, title, mime, size, sha256, stage, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'queued', ?7, ?7)",
    )?
    .execute(params![d.id, d.filename, d.title, d.mime, d.size as i64, d.sha256, now])?;
    if let Some(bytes) = &d.inline {
        tx.prepare_cached("INSERT INTO originals (seq, bytes) VALUES (?1, ?2)")?
            .execute(params![tx.last_insert_rowid(), &bytes[..]])?;
    }
    write_event(
        tx,
        &d.id,
        "uploaded",
        Some(Stage::Queued),
        Some(&serde_json::json!({"filename": d.filename, "size": d.size, "sha256": d.sha256})),
        now,
    )?;
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

pub fn write_classification(
    tx: &Transaction<'_>,
    seq: i64,
    doc_type: Option<&str>,
    confidence: f32,
) -> Result<()> {
    tx.prepare_cached("UPDATE documents SET doc_type = ?2, confidence = ?3 WHERE seq = ?1")?
        .execute(params![seq, doc_type, confidence as f64])?;
    Ok(())
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

/// Puts a failed document back at the stage it failed in, with fresh attempts.
pub fn write_retry(tx: &Transaction<'_>, id: &str, now: i64) -> Result<Option<Stage>> {
    let row: Option<(i64, Option<String>)> = tx
        .query_row(
            "SELECT seq, failed_stage FROM documents WHERE id = ?1 AND stage = 'failed'",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((seq, failed_stage)) = row else {
        return Ok(None);
    };
    let stage = failed_stage
        .as_deref()
        .and_then(Stage::parse)
        .unwrap_or(Stage::Queued);
    tx.execute(
        "UPDATE documents SET stage = ?2, failed_stage = NULL, attempts = 0, retry_at = NULL,
         error_code = NULL, error_message = NULL, updated_at = ?3 WHERE seq = ?1",
        params![seq, stage.as_str(), now],
    )?;
    write_event(tx, id, "retried", Some(stage), None, now)?;
    Ok(Some(stage))
}

pub fn write_mark_deleting(tx: &Transaction<'_>, id: &str, now: i64) -> Result<bool> {
    let n = tx.execute(
        "UPDATE documents SET stage = 'deleting', updated_at = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    if n == 1 {
        write_event(tx, id, "delete_requested", Some(Stage::Deleting), None, now)?;
    }
    Ok(n == 1)
}

pub fn write_purge(tx: &Transaction<'_>, id: &str, now: i64) -> Result<bool> {
    let n = tx.execute(
        "DELETE FROM documents WHERE id = ?1 AND stage = 'deleting'",
        [id],
    )?;
    if n == 1 {
        write_event(tx, id, "deleted", None, None, now)?;
    }
    Ok(n == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_doc(id: &str, sha: &str) -> NewDocument {
        NewDocument {
            id: id.into(),
            filename: format!("{id}.txt"),
            title: None,
            mime: "text/plain".into(),
            size: 3,
            sha256: sha.into(),
            inline: Some(bytes::Bytes::from_static(b"abc")),
        }
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
            write_insert(&tx, &new_doc("a", "s1"), 1).unwrap(),
            Inserted::New
        ));
        match write_insert(&tx, &new_doc("b", "s1"), 2).unwrap() {
            Inserted::Duplicate(d) => assert_eq!(d.id, "a"),
            Inserted::New => panic!("same sha inserted twice"),
        }
        let seq = get_document(&tx, "a").unwrap().unwrap().seq;
        assert_eq!(
            get_inline_original(&tx, "a").unwrap().as_deref(),
            Some(&b"abc"[..])
        );
        assert!(write_advance(&tx, seq, Stage::Queued, Stage::Extracted, 3).unwrap());
        // A stale completion of the same stage changes nothing.
        assert!(!write_advance(&tx, seq, Stage::Queued, Stage::Extracted, 4).unwrap());
        tx.commit().unwrap();
        assert_eq!(
            get_document(&conn, "a").unwrap().unwrap().stage,
            Stage::Extracted
        );
    }

    #[test]
    fn failure_parks_and_retry_restores_the_failed_stage() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
        let tx = conn.transaction().unwrap();
        write_insert(&tx, &new_doc("a", "s1"), 1).unwrap();
        let seq = get_document(&tx, "a").unwrap().unwrap().seq;
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
        let d = get_document(&tx, "a").unwrap().unwrap();
        assert_eq!((d.stage, d.attempts), (Stage::Failed, 2));
        assert_eq!(d.error, Some(err));
        assert_eq!(write_retry(&tx, "a", 4).unwrap(), Some(Stage::Queued));
        let d = get_document(&tx, "a").unwrap().unwrap();
        assert_eq!((d.stage, d.attempts, d.error), (Stage::Queued, 0, None));
    }

    #[test]
    fn list_pages_by_keyset_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open_writer(&dir.path().join("c.sqlite"), "normal").unwrap();
        let tx = conn.transaction().unwrap();
        for i in 0..5 {
            write_insert(&tx, &new_doc(&format!("d{i}"), &format!("s{i}")), i).unwrap();
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
