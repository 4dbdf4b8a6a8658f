//! Backup, restore and check of a data directory.
//!
//! **Backup** (`Pipeline::backup`) runs beside the pipeline. The Indexer
//! commits what it holds, waits until the Catalog has written what that
//! commit says, and while it holds still (no index change) the catalog is
//! copied with `VACUUM INTO` (one read transaction: a consistent snapshot,
//! and writers go on). So every document the copy says is `indexed` is in
//! the index at that commit point; a document indexed later is in neither
//! or, still `enriched` in the copy, is indexed again after a restore. The
//! commit point's segments stay alive (no merge deletes their files) until
//! they are copied. Then every original the copy names is streamed out of
//! the blob store into the backup, its SHA-256 checked on the way against
//! the catalog; one deleted while the backup ran is marked `deleting` in
//! the copy, so the restored instance finishes that delete. `manifest.json`
//! is written last: a backup without it is not finished.
//!
//! **Restore** copies a backup into an empty data directory, every
//! original through the configured blob store with its hash checked.
//!
//! **Check** compares the catalog, the index and the blob store, and with
//! `repair` mends what can be mended from what is kept.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use futures::StreamExt;
use rusqlite::OpenFlags;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use crate::config::{BlobConfig, StorageConfig};
use crate::engine::Pipeline;
use crate::model::{now_ms, Origin};
use crate::routes::{CatalogMsg, IndexSnapshot, IndexerMsg};
use crate::store::blobs::{BlobMissing, Blobs};
use crate::store::documents::blob_documents;
use crate::store::schema::db_path;

pub const BACKUP_FORMAT: &str = "docpipe-backup";
const MANIFEST: &str = "manifest.json";

/// `manifest.json` of a backup.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub version: u32,
    /// When the catalog was copied (ms since the epoch).
    pub taken_at: i64,
    /// The store the originals were read from (`local`, `s3://…`).
    pub storage: String,
    pub documents: u64,
    pub originals: Vec<ManifestOriginal>,
    pub index_files: Vec<String>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ManifestOriginal {
    pub id: String,
    pub sha256: String,
    pub size: u64,
}

#[derive(Debug, Default, Serialize)]
pub struct BackupReport {
    pub dest: String,
    pub documents: u64,
    pub originals: u64,
    pub bytes: u64,
    pub index_files: u64,
    /// Deleted while the backup ran: the restored instance finishes it.
    pub deleted_meanwhile: u64,
}

/// The destination must be new or an empty directory.
fn prepare_dest(dest: &Path) -> Result<()> {
    match std::fs::read_dir(dest) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} is not empty: a backup goes into a new or empty directory",
                    dest.display()
                );
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(anyhow!("cannot use {}: {e}", dest.display())),
    }
    std::fs::create_dir_all(dest.join("index"))
        .and_then(|_| std::fs::create_dir_all(dest.join("originals")))
        .with_context(|| format!("cannot create {}", dest.display()))
}

impl Pipeline {
    /// A consistent backup of the running instance into `dest` (new or
    /// empty), as the module says.
    pub async fn backup(&self, dest: &Path) -> Result<BackupReport> {
        prepare_dest(dest)?;
        let src = db_path(&self.config().data_dir);
        let copy = dest.join("catalog.sqlite");
        let (s, d) = (src.clone(), copy.clone());
        let hold: Arc<dyn Fn() -> Result<()> + Send + Sync> = Arc::new(move || {
            let _ = std::fs::remove_file(&d);
            let conn = rusqlite::Connection::open_with_flags(
                &s,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            conn.busy_timeout(std::time::Duration::from_secs(30))?;
            let target = d.to_str().ok_or_else(|| anyhow!("the path is not UTF-8"))?;
            conn.execute("VACUUM INTO ?1", [target])
                .context("cannot copy the catalog")?;
            Ok(())
        });
        let taken_at = now_ms();
        let snap: IndexSnapshot = self
            .ask(
                |r| r.indexer.clone(),
                |reply| IndexerMsg::Snapshot {
                    hold: hold.clone(),
                    reply,
                },
            )
            .await?;

        // The index at the commit point.
        let index_dir = self.config().data_dir.join("index");
        let mut index_files = Vec::new();
        for seg in &snap.segments {
            use tantivy::index::SegmentComponent as C;
            let mut parts = vec![
                C::Postings,
                C::Positions,
                C::Terms,
                C::Store,
                C::FastFields,
                C::FieldNorms,
            ];
            if seg.has_deletes() {
                parts.push(C::Delete);
            }
            for f in parts.into_iter().map(|c| seg.relative_path(c)) {
                let from = index_dir.join(&f);
                if !from.exists() {
                    continue; // a component this segment does not have
                }
                tokio::fs::copy(&from, dest.join("index").join(&f))
                    .await
                    .with_context(|| format!("cannot copy {}", from.display()))?;
                index_files.push(f.to_string_lossy().into_owned());
            }
        }
        tokio::fs::write(dest.join("index/meta.json"), &snap.meta_json).await?;
        index_files.push("meta.json".into());
        drop(snap);

        // The originals the copy names.
        let c = copy.clone();
        let (documents, originals) = tokio::task::spawn_blocking(move || -> Result<_> {
            let conn = rusqlite::Connection::open(&c)?;
            let n: i64 = conn.query_row("SELECT COUNT(*) FROM documents", [], |r| r.get(0))?;
            Ok((n as u64, blob_documents(&conn)?))
        })
        .await??;
        let blobs = &self.reader().blobs;
        let mut report = BackupReport {
            dest: dest.display().to_string(),
            documents,
            index_files: index_files.len() as u64,
            ..Default::default()
        };
        let mut kept = Vec::new();
        let mut gone = Vec::new();
        for (id, sha256, size) in originals {
            let to = dest.join("originals").join(&id);
            match copy_out(blobs, &id, &to).await {
                Ok((sha, n)) if sha == sha256 && n == size => {
                    report.originals += 1;
                    report.bytes += n;
                    kept.push(ManifestOriginal { id, sha256, size });
                }
                Ok((sha, n)) => bail!(
                    "the original of {id} in the blob store ({n} bytes, SHA-256 {sha}) is not the one the catalog names ({size} bytes, {sha256}); `docpipe check` tells more"
                ),
                Err(e) if e.downcast_ref::<BlobMissing>().is_some() => {
                    let _ = tokio::fs::remove_file(&to).await;
                    if self.live_stage(&id).await?.is_none_or(|s| s == "deleting") {
                        gone.push(id);
                    } else {
                        bail!("the original of {id} is missing from the blob store; `docpipe check` tells more");
                    }
                }
                Err(e) => return Err(e),
            }
        }
        if !gone.is_empty() {
            report.deleted_meanwhile = gone.len() as u64;
            let c = copy.clone();
            tokio::task::spawn_blocking(move || -> Result<()> {
                let conn = rusqlite::Connection::open(&c)?;
                for id in &gone {
                    conn.execute(
                        "UPDATE documents SET stage = 'deleting' WHERE id = ?1",
                        [id],
                    )?;
                }
                Ok(())
            })
            .await??;
        }
        let manifest = Manifest {
            format: BACKUP_FORMAT.into(),
            version: 1,
            taken_at,
            storage: blobs.describe(),
            documents,
            originals: kept,
            index_files,
        };
        let tmp = dest.join("manifest.json.tmp");
        tokio::fs::write(&tmp, serde_json::to_vec_pretty(&manifest)?).await?;
        tokio::fs::rename(&tmp, dest.join(MANIFEST)).await?;
        Ok(report)
    }

    async fn live_stage(&self, id: &str) -> Result<Option<String>> {
        let id = id.to_string();
        self.reader()
            .db
            .run(move |c| {
                use rusqlite::OptionalExtension;
                Ok(
                    c.query_row("SELECT stage FROM documents WHERE id = ?1", [&id], |r| {
                        r.get(0)
                    })
                    .optional()?,
                )
            })
            .await
    }
}

/// Streams an original out of the store into a file; its SHA-256 and size.
async fn copy_out(blobs: &Blobs, id: &str, to: &Path) -> Result<(String, u64)> {
    let mut input = blobs.stream(id).await?;
    let mut file = tokio::fs::File::create(to)
        .await
        .with_context(|| format!("cannot create {}", to.display()))?;
    let (mut h, mut n) = (Sha256::new(), 0u64);
    while let Some(chunk) = input.next().await {
        let chunk = chunk.map_err(|e| anyhow!("cannot read the original of {id}: {e}"))?;
        h.update(&chunk);
        n += chunk.len() as u64;
        file.write_all(&chunk)
            .await
            .with_context(|| format!("cannot write {}", to.display()))?;
    }
    file.flush().await?;
    Ok((hex::encode(h.finalize()), n))
}

#[derive(Debug, Default, Serialize)]
pub struct RestoreReport {
    pub documents: u64,
    pub originals: u64,
    /// In the store already with the right hash (restoring onto the same
    /// bucket).
    pub present: u64,
    pub bytes: u64,
}

/// Reads a backup's manifest, with a clear error when it is none.
pub fn read_manifest(src: &Path) -> Result<Manifest> {
    let path = src.join(MANIFEST);
    let text = std::fs::read(&path).map_err(|e| {
        anyhow!(
            "{} is not a finished docpipe backup: cannot read {MANIFEST} ({e})",
            src.display()
        )
    })?;
    let m: Manifest = serde_json::from_slice(&text)
        .map_err(|e| anyhow!("{}: not a docpipe backup manifest: {e}", path.display()))?;
    if m.format != BACKUP_FORMAT || m.version != 1 {
        bail!(
            "{}: format {:?} version {}, expected {BACKUP_FORMAT:?} version 1",
            path.display(),
            m.format,
            m.version
        );
    }
    Ok(m)
}

/// Brings the backup at `src` into `data_dir`, which must hold no catalog;
/// the originals go into the configured store, each hash checked.
pub async fn restore(
    src: &Path,
    data_dir: &Path,
    storage: &StorageConfig,
    blob_config: &BlobConfig,
) -> Result<RestoreReport> {
    let m = read_manifest(src)?;
    let db = db_path(data_dir);
    if db.exists() {
        bail!(
            "{} holds a docpipe catalog already: restore into a new or empty data directory",
            data_dir.display()
        );
    }
    std::fs::create_dir_all(data_dir.join("index"))
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let blobs = Blobs::open(storage, blob_config, data_dir)?;
    blobs
        .probe()
        .await
        .with_context(|| format!("the blob store ({}) does not answer", blobs.describe()))?;
    let mut report = RestoreReport {
        documents: m.documents,
        ..Default::default()
    };
    // Originals first, the catalog last: a restore broken off leaves no
    // catalog, so it is simply run again.
    for o in &m.originals {
        if blobs.hash(&o.id).await?.as_ref() == Some(&(o.sha256.clone(), o.size)) {
            report.present += 1;
            report.bytes += o.size;
            continue;
        }
        let file = src.join("originals").join(&o.id);
        let (sha, n) = blobs.store_file(&o.id, &file).await?;
        if sha != o.sha256 || n != o.size {
            bail!(
                "{}: {n} bytes with SHA-256 {sha}, but the manifest says {} bytes, {}: the backup is damaged",
                file.display(),
                o.size,
                o.sha256
            );
        }
        report.originals += 1;
        report.bytes += n;
    }
    for f in &m.index_files {
        if f == "meta.json" {
            continue;
        }
        std::fs::copy(src.join("index").join(f), data_dir.join("index").join(f))
            .with_context(|| format!("cannot copy the index file {f}"))?;
    }
    std::fs::copy(
        src.join("index/meta.json"),
        data_dir.join("index/meta.json"),
    )
    .context("cannot copy the index's meta.json")?;
    let tmp = data_dir.join("catalog.sqlite.restoring");
    std::fs::copy(src.join("catalog.sqlite"), &tmp).context("cannot copy the catalog")?;
    std::fs::rename(&tmp, &db).context("cannot put the catalog in place")?;
    Ok(report)
}

/// One disagreement `docpipe check` found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckProblem {
    /// `catalog_damaged`, `original_missing`, `original_differs`,
    /// `original_orphan`, `not_in_index`, `indexed_twice`, `index_orphan`.
    pub kind: &'static str,
    pub id: Option<String>,
    pub detail: String,
    pub repaired: bool,
}

#[derive(Debug, Default, Serialize)]
pub struct CheckReport {
    pub documents: u64,
    pub originals_checked: u64,
    pub index_documents: u64,
    /// Documents whose passages have vectors, and the passages.
    pub embedded_documents: u64,
    pub passages: u64,
    pub problems: Vec<CheckProblem>,
}

impl CheckReport {
    fn add(&mut self, kind: &'static str, id: Option<&str>, detail: String) {
        self.problems.push(CheckProblem {
            kind,
            id: id.map(str::to_string),
            detail,
            repaired: false,
        });
    }
}

impl Pipeline {
    /// Compares the catalog, the index and the blob store. `quick` compares
    /// originals by size only (not read); `repair` sends documents missing
    /// from the index (or in it twice) to be indexed again, deletes index
    /// entries and blobs no document has. A missing or changed original
    /// cannot be mended and is only reported.
    pub async fn check(&self, repair: bool, quick: bool) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        let reader = self.reader();
        let integrity: String = reader
            .db
            .run(|c| Ok(c.query_row("PRAGMA quick_check", [], |r| r.get(0))?))
            .await?;
        if integrity != "ok" {
            report.add("catalog_damaged", None, format!("SQLite: {integrity}"));
        }
        // The index first, then the rows: offline, rows only ever move on
        // (to indexed), so a document indexed in between is looked up again.
        let in_index = reader.index.all_ids()?;
        report.index_documents = in_index.values().map(|&n| u64::from(n)).sum();
        let rows: Vec<(String, String)> = reader
            .db
            .run(|c| {
                let mut st = c.prepare("SELECT id, stage FROM documents ORDER BY seq")?;
                let rows = st
                    .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok(rows)
            })
            .await?;
        report.documents = rows.len() as u64;
        let known: HashSet<&str> = rows.iter().map(|(id, _)| id.as_str()).collect();

        // Originals.
        for (id, sha256, size) in reader.blob_documents().await? {
            let found = if quick {
                reader.blobs.size(&id).await?.map(|n| (sha256.clone(), n))
            } else {
                reader.blobs.hash(&id).await?
            };
            report.originals_checked += 1;
            match found {
                None => report.add(
                    "original_missing",
                    Some(&id),
                    format!("the blob store has no original for it ({size} bytes, SHA-256 {sha256})"),
                ),
                Some((sha, n)) if sha != sha256 || n != size => report.add(
                    "original_differs",
                    Some(&id),
                    format!("the blob store holds {n} bytes with SHA-256 {sha}; the catalog says {size} bytes, {sha256}"),
                ),
                Some(_) => {}
            }
        }
        let mut orphan_blobs = Vec::new();
        for (id, misplaced) in reader.blobs.list_docs().await? {
            let detail = match &misplaced {
                Some(at) => {
                    format!("the blob store holds a file at {at}, where no original belongs")
                }
                None if !known.contains(id.as_str()) => {
                    "the blob store holds an original no document has".to_string()
                }
                None => continue,
            };
            report.add("original_orphan", Some(&id), detail);
            orphan_blobs.push((id, misplaced));
        }

        // Index.
        let mut reindex = Vec::new();
        for (id, stage) in &rows {
            let n = in_index.get(id).copied().unwrap_or(0);
            if stage == "indexed" && n == 0 && reader.index.count_id(id)? == 0 {
                report.add(
                    "not_in_index",
                    Some(id),
                    "indexed, but the search index does not hold it".into(),
                );
                reindex.push(id.clone());
            } else if n > 1 {
                report.add(
                    "indexed_twice",
                    Some(id),
                    format!("the search index holds it {n} times"),
                );
                reindex.push(id.clone());
            }
        }
        // Vectors: a document marked embedded has its passages' rows (the
        // rows go with their document, so none can be left over).
        let (embedded, passages, lost): (u64, u64, Vec<String>) = reader
            .db
            .run(|c| {
                let (e, p) = c.query_row(
                    "SELECT (SELECT COUNT(*) FROM documents WHERE embedded_at IS updated_at
                             AND stage = 'indexed'),
                            (SELECT COUNT(*) FROM chunks)",
                    [],
                    |r| Ok((r.get::<_, i64>(0)? as u64, r.get::<_, i64>(1)? as u64)),
                )?;
                let mut st = c.prepare(
                    "SELECT d.id FROM documents d JOIN texts t ON t.seq = d.seq
                     WHERE d.stage = 'indexed' AND d.embedded_at IS d.updated_at
                     AND length(t.text) > 0
                     AND NOT EXISTS (SELECT 1 FROM chunks c WHERE c.doc_seq = d.seq)",
                )?;
                let lost = st
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<Vec<String>>>()?;
                Ok((e, p, lost))
            })
            .await?;
        report.embedded_documents = embedded;
        report.passages = passages;
        for id in lost {
            report.add(
                "vectors_missing",
                Some(&id),
                "marked embedded, but no passage of it has a vector".into(),
            );
            // Indexed again, then embedded again.
            if !reindex.contains(&id) {
                reindex.push(id);
            }
        }
        let orphans: Vec<String> = in_index
            .keys()
            .filter(|id| !known.contains(id.as_str()))
            .cloned()
            .collect();
        for id in &orphans {
            report.add(
                "index_orphan",
                Some(id),
                "the search index holds a document the catalog does not have".into(),
            );
        }

        if repair {
            let origin = Origin {
                token_id: None,
                request_id: Some("check-repair".into()),
            };
            let moved: HashSet<String> = self
                .ask(
                    |r| r.catalog.clone(),
                    |reply| CatalogMsg::Reindex {
                        ids: reindex.clone(),
                        origin: origin.clone(),
                        reply,
                    },
                )
                .await?
                .into_iter()
                .collect();
            let mut unindexed = HashSet::new();
            for id in &orphans {
                self.unindex(id).await?;
                unindexed.insert(id.clone());
            }
            let mut deleted = HashSet::new();
            for (id, misplaced) in &orphan_blobs {
                reader.blobs.delete_listed(id, misplaced.as_deref()).await?;
                deleted.insert(id.clone());
            }
            for p in &mut report.problems {
                let id = p.id.clone().unwrap_or_default();
                p.repaired = match p.kind {
                    "not_in_index" | "indexed_twice" | "vectors_missing" => moved.contains(&id),
                    "index_orphan" => unindexed.contains(&id),
                    "original_orphan" => deleted.contains(&id),
                    _ => false,
                };
            }
        }
        Ok(report)
    }
}

/// Counts by kind, for a summary line.
pub fn count_kinds(problems: &[CheckProblem]) -> Vec<(&'static str, usize)> {
    let mut m: HashMap<&'static str, usize> = HashMap::new();
    for p in problems {
        *m.entry(p.kind).or_insert(0) += 1;
    }
    let mut v: Vec<_> = m.into_iter().collect();
    v.sort();
    v
}
