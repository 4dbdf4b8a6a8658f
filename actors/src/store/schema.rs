//! SQLite: the schema and its migrations, and how connections are opened.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rusqlite::Connection;

/// Versioned migrations; `PRAGMA user_version` records how many have run.
/// Append only: never edit a migration that has shipped.
pub(crate) const MIGRATIONS: &[&str] = &[
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
    // Issuers as labels of their own (Paperless's correspondents): a
    // document's issuer is its `issuer` field, and this table gives each
    // name an id per workspace. Field names made over the API with their
    // kind (Paperless's custom fields), notes on documents, documents
    // whose type and fields came with them (a migration: not typed or
    // filled again), and which documents of another system were brought.
    r#"
CREATE TABLE issuers (
    id         INTEGER PRIMARY KEY,
    workspace  TEXT NOT NULL,
    name       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (workspace, name)
);
INSERT OR IGNORE INTO issuers (workspace, name, created_at)
  SELECT DISTINCT d.workspace, f.value, 0 FROM doc_fields f JOIN documents d ON d.seq = f.doc_seq
  WHERE f.name = 'issuer';
CREATE INDEX doc_fields_issuer ON doc_fields(value, doc_seq) WHERE name = 'issuer';
CREATE TABLE field_names (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE notes (
    id         INTEGER PRIMARY KEY,
    doc_seq    INTEGER NOT NULL REFERENCES documents(seq) ON DELETE CASCADE,
    note       TEXT NOT NULL,
    author     TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX notes_doc ON notes(doc_seq, id);
ALTER TABLE documents ADD COLUMN keep_metadata INTEGER NOT NULL DEFAULT 0;
CREATE TABLE imported (
    source     TEXT NOT NULL,
    source_id  INTEGER NOT NULL,
    doc_id     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (source, source_id)
) WITHOUT ROWID;
"#,
    // Embeddings: each indexed document's passages with their vectors
    // (8-bit, with a scale), which embedder made them and from which
    // version of the row (`updated_at` then): a row changed since is
    // embedded again.
    r#"
ALTER TABLE documents ADD COLUMN embedded_by TEXT;
ALTER TABLE documents ADD COLUMN embedded_at INTEGER;
CREATE TABLE chunks (
    doc_seq INTEGER NOT NULL REFERENCES documents(seq) ON DELETE CASCADE,
    no      INTEGER NOT NULL,
    page    INTEGER NOT NULL,
    start   INTEGER NOT NULL,
    end     INTEGER NOT NULL,
    scale   REAL NOT NULL,
    vec     BLOB NOT NULL,
    PRIMARY KEY (doc_seq, no)
) WITHOUT ROWID;
"#,
    // One learned classifier per workspace (each learns from its own
    // corrections). The one model of before was trained on every
    // workspace's: it is dropped, and each workspace's is trained again
    // from its corrections at start. Field templates: where an issuer puts
    // a field, learned from a user's correction (per workspace).
    r#"
CREATE TABLE classifiers (
    workspace  TEXT PRIMARY KEY,
    trained_at INTEGER NOT NULL,
    model      BLOB NOT NULL
) WITHOUT ROWID;
DROP TABLE classifier;
CREATE TABLE field_templates (
    id           INTEGER PRIMARY KEY,
    workspace    TEXT NOT NULL,
    issuer       TEXT NOT NULL COLLATE NOCASE,
    field        TEXT NOT NULL,
    template     TEXT NOT NULL,
    learned_from TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (workspace, issuer, field)
);
"#,
    // A short PDF's text as laid out on its pages, for the field rules.
    "ALTER TABLE texts ADD COLUMN layout TEXT;",
    // Webhooks and workflows: each reads the events table from its cursor
    // (the outbox is the audit trail itself); a delivery that did not go
    // through on its first attempt waits in webhook_deliveries for its next.
    r#"
CREATE TABLE webhooks (
    id         TEXT PRIMARY KEY,
    workspace  TEXT NOT NULL,
    url        TEXT NOT NULL,
    events     TEXT NOT NULL,
    secret     TEXT NOT NULL,
    cursor     INTEGER NOT NULL,
    created_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE webhook_deliveries (
    webhook_id  TEXT NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
    seq         INTEGER NOT NULL,
    state       TEXT NOT NULL,
    attempts    INTEGER NOT NULL,
    next_at     INTEGER,
    last_status INTEGER,
    last_error  TEXT,
    updated_at  INTEGER NOT NULL,
    PRIMARY KEY (webhook_id, seq)
) WITHOUT ROWID;
CREATE INDEX events_kind_at ON events(kind, at);
CREATE TABLE workflows (
    name       TEXT PRIMARY KEY,
    workspace  TEXT NOT NULL,
    definition TEXT NOT NULL,
    cursor     INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
) WITHOUT ROWID;
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

pub(crate) fn configure(conn: &Connection) -> Result<()> {
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
    // Each Catalog operation runs under a savepoint, and SQLite keeps the
    // original of every page a savepoint changes in a sub-journal: a temp
    // file by default, which cost a third of the writer's CPU in pwrite
    // calls (perf, load bench). In memory it is a copy of the page.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
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
