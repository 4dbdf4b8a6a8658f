//! The queue: which documents are due, stage advances with their outputs,
//! failures, retries and the flags that send documents round again.

use super::documents::{find_in_scope, Flag};
use super::events::{write_event, NewEvent};
use super::labels::ensure_doc_type;
use super::schema::workspace_filter;
use crate::model::{Classification, DocJob, ErrorInfo, Origin, RetryOutcome, Scope, Stage};
use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// Up to `limit` active documents that are due now, oldest first.
pub fn ready_documents(conn: &Connection, now_ms: i64, limit: usize) -> Result<Vec<DocJob>> {
    ready_documents_after(conn, 0, now_ms, limit)
}

/// Like [`ready_documents`], for documents after `after_seq` only.
pub fn ready_documents_after(
    conn: &Connection,
    after_seq: i64,
    now_ms: i64,
    limit: usize,
) -> Result<Vec<DocJob>> {
    let mut stmt = conn.prepare_cached(
        "SELECT seq, id, stage, mime, filename, title, attempts, doc_type, confidence, workspace, request_id, user_doc_type FROM documents
         WHERE stage IN ('queued', 'extracted', 'classified', 'enriched') AND seq > ?1 AND (retry_at IS NULL OR retry_at <= ?2)
         ORDER BY seq LIMIT ?3",
    )?;
    let rows = stmt.query_map(params![after_seq, now_ms, limit as i64], |r| {
        let stage: String = r.get(2)?;
        // Admitted as a job (its admission number set by the Intake).
        Ok(DocJob {
            admission: 0,
            text: None,
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
            user_doc_type: r.get(11)?,
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

/// What extraction learnt about the document: its language, the fields its
/// format carries, a precise type, whether pages wait for OCR.
pub fn write_extracted(
    tx: &Transaction<'_>,
    seq: i64,
    out: &crate::model::Extracted,
) -> Result<()> {
    tx.prepare_cached(
        "UPDATE documents SET language = ?2, fields = ?3, mime = COALESCE(?4, mime), needs_ocr = ?5
         WHERE seq = ?1",
    )?
    .execute(params![
        seq,
        out.language,
        out.fields.as_ref().map(|f| f.to_string()),
        out.mime,
        out.needs_ocr
    ])?;
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
    // A document that came with its metadata keeps its type, even none.
    let (doc_type, confidence, source, review, workspace): (
        Option<String>,
        Option<f64>,
        Option<String>,
        bool,
        String,
    ) = tx
        .prepare_cached(
            "UPDATE documents SET
               doc_type = CASE WHEN keep_metadata = 1 THEN user_doc_type ELSE COALESCE(user_doc_type, ?2) END,
               confidence = CASE WHEN user_doc_type IS NOT NULL THEN 1.0
                 WHEN keep_metadata = 1 THEN NULL ELSE ?3 END,
               type_source = CASE WHEN user_doc_type IS NOT NULL THEN 'user'
                 WHEN keep_metadata = 1 THEN NULL ELSE ?4 END,
               needs_review = CASE WHEN user_doc_type IS NULL AND keep_metadata = 0 THEN
                 ?5 OR json_extract(fields, '$.ocr_low_confidence_pages') IS NOT NULL ELSE 0 END,
               needs_llm = CASE WHEN keep_metadata = 1 THEN 0 ELSE ?6 END
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
        ensure_doc_type(tx, &workspace, t, now)?;
    }
    Ok(Classification {
        doc_type,
        confidence: confidence.unwrap_or(0.0) as f32,
        source,
        needs_review: review,
        needs_llm: class.needs_llm,
    })
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
pub fn write_retry(
    tx: &Transaction<'_>,
    id: &str,
    scope: &Scope,
    origin: &Origin,
    now: i64,
) -> Result<RetryOutcome> {
    let Some((seq, workspace)) = find_in_scope(tx, id, scope)? else {
        return Ok(RetryOutcome::NotFound);
    };
    let (stage, failed_stage): (String, Option<String>) = tx.query_row(
        "SELECT stage, failed_stage FROM documents WHERE seq = ?1",
        [seq],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let stage = Stage::parse(&stage).unwrap_or(Stage::Failed);
    if stage != Stage::Failed {
        return Ok(RetryOutcome::NotFailed(stage));
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
    Ok(RetryOutcome::Requeued(to))
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

/// Sends indexed documents back to indexing (`docpipe check --repair`:
/// the index lacks them or holds them twice); the ids it moved.
pub fn write_reindex(
    tx: &Transaction<'_>,
    ids: &[String],
    origin: &Origin,
    now: i64,
) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for id in ids {
        let row: Option<String> = tx
            .prepare_cached(
                "UPDATE documents SET stage = 'enriched', attempts = 0, retry_at = NULL, updated_at = ?2
                 WHERE id = ?1 AND stage = 'indexed' RETURNING workspace",
            )?
            .query_row(params![id, now], |r| r.get(0))
            .optional()?;
        if let Some(workspace) = row {
            let ev = NewEvent::action(origin, "reindex_requested", Some(&workspace))
                .doc(id)
                .stage(Stage::Enriched)
                .detail(serde_json::json!({"reason": "check"}));
            write_event(tx, &ev, now)?;
            out.push(id.clone());
        }
    }
    Ok(out)
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
