//! The passages' vectors in SQLite (`chunks`), and which documents wait
//! for them: an indexed document whose vectors are missing, were made by
//! another embedder, or are older than its row.

use anyhow::Result;
use rusqlite::{params, Connection, OptionalExtension, Transaction};

use crate::embed::vectors::{ChunkVector, VectorIndex};

/// SQL that holds for a document (columns prefixed `d`) waiting for vectors
/// from embedder `?1`.
fn pending(d: &str) -> String {
    format!(
        "{d}stage = 'indexed' AND ({d}embedded_by IS NOT ?1 OR {d}embedded_at IS NOT {d}updated_at)"
    )
}

/// A document to embed: its title and text as of `version`.
pub struct ToEmbed {
    pub seq: i64,
    pub version: i64,
    pub title: String,
    pub text: String,
}

/// Up to `limit` documents waiting for `embedder`'s vectors, after `after`.
pub fn pending_after(
    conn: &Connection,
    embedder: &str,
    after: i64,
    limit: usize,
) -> Result<Vec<i64>> {
    let sql = format!(
        "SELECT seq FROM documents WHERE seq > ?2 AND {} ORDER BY seq LIMIT ?3",
        pending("")
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![embedder, after, limit as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

pub fn count_pending(conn: &Connection, embedder: &str) -> Result<u64> {
    let sql = format!("SELECT COUNT(*) FROM documents WHERE {}", pending(""));
    Ok(conn.query_row(&sql, [embedder], |r| r.get::<_, i64>(0))? as u64)
}

/// Those of `seqs` still waiting for `embedder`, with their text.
pub fn read_to_embed(conn: &Connection, embedder: &str, seqs: &[i64]) -> Result<Vec<ToEmbed>> {
    let sql = format!(
        "SELECT d.seq, d.updated_at, COALESCE(d.title, d.filename), COALESCE(t.text, '')
         FROM documents d LEFT JOIN texts t ON t.seq = d.seq
         WHERE d.seq IN (SELECT value FROM json_each(?2)) AND {}",
        pending("d.")
    );
    let rows = conn
        .prepare_cached(&sql)?
        .query_map(params![embedder, serde_json::to_string(seqs)?], |r| {
            Ok(ToEmbed {
                seq: r.get(0)?,
                version: r.get(1)?,
                title: r.get(2)?,
                text: r.get(3)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Stores a document's vectors, if its row is still the version they were
/// made from and it is still indexed. True if stored.
pub fn write_vectors(
    tx: &Transaction<'_>,
    seq: i64,
    version: i64,
    embedder: &str,
    chunks: &[ChunkVector],
) -> Result<bool> {
    let n = tx
        .prepare_cached(
            "UPDATE documents SET embedded_by = ?3, embedded_at = updated_at
             WHERE seq = ?1 AND updated_at = ?2 AND stage = 'indexed'",
        )?
        .execute(params![seq, version, embedder])?;
    if n == 0 {
        return Ok(false);
    }
    tx.prepare_cached("DELETE FROM chunks WHERE doc_seq = ?1")?
        .execute([seq])?;
    let mut ins = tx.prepare_cached(
        "INSERT INTO chunks (doc_seq, no, page, start, end, scale, vec) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for c in chunks {
        let bytes: Vec<u8> = c.q.iter().map(|&b| b as u8).collect();
        ins.execute(params![seq, c.no, c.page, c.start, c.end, c.scale, bytes])?;
    }
    Ok(true)
}

/// At start: vectors made by another embedder than the one in force
/// (`None`: embedding is off) no longer count as made.
pub fn forget_other_embedders(conn: &Connection, embedder: Option<&str>) -> Result<usize> {
    Ok(conn.execute(
        "UPDATE documents SET embedded_at = NULL
         WHERE embedded_at IS NOT NULL AND embedded_by IS NOT ?1",
        [embedder],
    )?)
}

/// Every stored vector of `embedder`, into `index` (at start).
pub fn load_vectors(conn: &Connection, embedder: &str, index: &VectorIndex) -> Result<usize> {
    let mut stmt = conn.prepare(
        "SELECT c.doc_seq, c.no, c.page, c.start, c.end, c.scale, c.vec
         FROM chunks c JOIN documents d ON d.seq = c.doc_seq
         WHERE d.embedded_by = ?1 AND d.stage = 'indexed' ORDER BY c.doc_seq, c.no",
    )?;
    let mut rows = stmt.query([embedder])?;
    let mut doc: Option<i64> = None;
    let mut chunks: Vec<ChunkVector> = Vec::new();
    let mut docs = 0;
    while let Some(r) = rows.next()? {
        let seq: i64 = r.get(0)?;
        if doc != Some(seq) {
            if let Some(d) = doc {
                index.replace(d, &chunks);
                docs += 1;
            }
            chunks.clear();
            doc = Some(seq);
        }
        let bytes: Vec<u8> = r.get(6)?;
        chunks.push(ChunkVector {
            no: r.get(1)?,
            page: r.get(2)?,
            start: r.get(3)?,
            end: r.get(4)?,
            scale: r.get(5)?,
            q: bytes.into_iter().map(|b| b as i8).collect(),
        });
    }
    if let Some(d) = doc {
        index.replace(d, &chunks);
        docs += 1;
    }
    Ok(docs)
}

/// Where a passage lies in its document's text, and its page.
pub fn passage(conn: &Connection, seq: i64, no: u32) -> Result<Option<(u32, String)>> {
    Ok(conn
        .query_row(
            "SELECT c.page, CAST(substr(CAST(t.text AS BLOB), c.start + 1, c.end - c.start) AS BLOB)
             FROM chunks c JOIN texts t ON t.seq = c.doc_seq WHERE c.doc_seq = ?1 AND c.no = ?2",
            params![seq, no],
            |r| Ok((r.get::<_, u32>(0)?, r.get::<_, Vec<u8>>(1)?)),
        )
        .optional()?
        .map(|(p, b)| (p, String::from_utf8_lossy(&b).into_owned())))
}
