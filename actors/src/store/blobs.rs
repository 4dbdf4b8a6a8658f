//! The originals. Small ones (up to `blobs.inline_max_bytes`) never touch the
//! blob store: [`Upload::finish`] hands their bytes back and the Catalog writes
//! them into SQLite in the same transaction as their row, so they are durable
//! with one group commit and cannot be orphaned. (Measured: one file per small
//! document cost three quarters of the server's CPU, in inode allocation.)
//!
//! Larger originals go through object_store. An upload streams into
//! `incoming/<id>` while its SHA-256 is computed; once its row is committed the
//! blob is renamed to `docs/<xx>/<id>`. At boot, [`Blobs::sweep_incoming`]
//! finishes the rename for every incoming blob that has a row and deletes the
//! rest, so a crash at any moment leaves no orphan and loses nothing
//! acknowledged (the row is committed before the upload is acknowledged).

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use std::time::Duration;

use crate::breaker::Breaker;
use crate::config::{BlobConfig, S3Config, StorageBackend, StorageConfig};
use sha2::{Digest, Sha256};

/// Uploads smaller than a part are written with one `put`; larger ones
/// stream through a multipart upload in parts of this size: on disk…
const PART_BYTES: usize = MAX_INLINE_BYTES as usize;
/// …and in S3, whose parts but the last must be at least 5 MiB: the least,
/// since an upload holds up to three parts (one filling, two on their way).
/// Measured on a 1 GiB upload to moto: 8 MiB parts grew the server's RSS by
/// 36 MiB, 5 MiB parts by less (`make bench`).
const S3_PART_BYTES: usize = 5 * 1024 * 1024;
pub use crate::config::MAX_INLINE_BYTES;
/// How much of the start of each upload is kept for type sniffing.
pub const HEAD_BYTES: usize = 8192;

/// A remote blob store that does not answer, or answers with errors: the
/// caller waits and tries again (uploads answer 503, documents wait in
/// SQLite); nothing acknowledged is lost.
#[derive(Debug, thiserror::Error)]
#[error("the blob store ({store}) is unavailable: {detail}")]
pub struct StoreUnavailable {
    pub store: String,
    pub detail: String,
    /// When to try again.
    pub retry_after: Duration,
}

/// The breaker of a remote store (none for the local disk, whose errors are
/// its own), and the store's name for messages.
#[derive(Clone, Debug)]
struct Guard {
    breaker: Option<Arc<Breaker>>,
    name: String,
}

impl Guard {
    /// Refuses at once while the breaker is open.
    fn enter(&self) -> Result<()> {
        if let Some(b) = &self.breaker {
            if let Err(wait) = b.allow() {
                return Err(StoreUnavailable {
                    store: self.name.clone(),
                    detail: "it failed several times in a row; its circuit breaker is open".into(),
                    retry_after: wait.max(Duration::from_secs(1)),
                }
                .into());
            }
        }
        Ok(())
    }

    /// Records an answer (a missing object is an answer).
    fn exit<T>(&self, r: object_store::Result<T>) -> object_store::Result<T> {
        if let Some(b) = &self.breaker {
            let answered = matches!(r, Ok(_) | Err(object_store::Error::NotFound { .. }));
            if b.record(answered) {
                tracing::warn!(store = %self.name, "the blob store is failing: its circuit breaker opened");
            }
        }
        r
    }

    /// An error of the store: for a remote one, unavailable.
    fn error(&self, e: object_store::Error, what: String) -> anyhow::Error {
        match &self.breaker {
            Some(_) => StoreUnavailable {
                store: self.name.clone(),
                detail: format!("{what}: {e}"),
                retry_after: Duration::from_secs(1),
            }
            .into(),
            None => anyhow::Error::new(e).context(what),
        }
    }
}

#[derive(Clone)]
pub struct Blobs {
    store: Arc<dyn ObjectStore>,
    guard: Guard,
    inline_max_bytes: u64,
    part_bytes: usize,
    /// Set for the local file system: lets the sweep also remove the
    /// half-written part files object_store leaves behind after a crash.
    local_root: Option<PathBuf>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Blobs({})", self.store)
    }
}

fn incoming_path(id: &str) -> Path {
    Path::from(format!("incoming/{id}"))
}

fn doc_path(id: &str) -> Path {
    let shard = &id[id.len().saturating_sub(2)..];
    Path::from(format!("docs/{shard}/{id}"))
}

impl Blobs {
    pub fn local(root: &FsPath, fsync: bool, inline_max_bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(root.join("incoming"))
            .with_context(|| format!("cannot create blob directory {}", root.display()))?;
        let store = LocalFileSystem::new_with_prefix(root)
            .with_context(|| format!("cannot open blob directory {}", root.display()))?
            .with_fsync(fsync)
            // No automatic cleanup: removing and recreating `incoming/` on every
            // upload churns directory inodes (it dominated a CPU profile).
            .with_automatic_cleanup(false);
        Ok(Blobs {
            store: Arc::new(store),
            inline_max_bytes: inline_max_bytes.min(MAX_INLINE_BYTES),
            part_bytes: PART_BYTES,
            guard: Guard {
                breaker: None,
                name: "local".into(),
            },
            local_root: Some(root.to_path_buf()),
        })
    }

    /// An S3-compatible bucket (see [`S3Config`]), under its prefix.
    pub fn s3(c: &S3Config, inline_max_bytes: u64) -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let region = Some(c.region.clone())
            .filter(|r| !r.is_empty())
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let loopback = {
            let host = c
                .endpoint
                .split("://")
                .nth(1)
                .unwrap_or("")
                .split(['/', ':'])
                .next()
                .unwrap_or("");
            matches!(host, "127.0.0.1" | "localhost" | "[" | "::1")
                || c.endpoint.contains("://[::1]")
        };
        let mut b = AmazonS3Builder::new()
            .with_bucket_name(&c.bucket)
            .with_region(region)
            .with_virtual_hosted_style_request(!c.path_style)
            .with_client_options(
                ClientOptions::new()
                    .with_timeout(Duration::from_millis(c.timeout_ms))
                    .with_connect_timeout(Duration::from_millis(c.connect_timeout_ms))
                    .with_allow_http(c.allow_http || loopback),
            )
            .with_retry(RetryConfig {
                max_retries: c.retries,
                retry_timeout: Duration::from_millis(c.timeout_ms * (c.retries as u64 + 1)),
                backoff: BackoffConfig::default(),
            });
        if !c.endpoint.is_empty() {
            b = b.with_endpoint(c.endpoint.trim_end_matches('/'));
        }
        let key = Some(c.access_key_id.clone())
            .filter(|k| !k.is_empty())
            .or_else(|| env("AWS_ACCESS_KEY_ID"));
        let secret = Some(c.secret_access_key.clone())
            .filter(|k| !k.is_empty())
            .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
        if let (Some(k), Some(s)) = (key, secret) {
            b = b.with_access_key_id(k).with_secret_access_key(s);
            if let Some(t) = env("AWS_SESSION_TOKEN") {
                b = b.with_token(t);
            }
        }
        let s3 = b
            .build()
            .with_context(|| format!("cannot use the S3 bucket {:?}", c.bucket))?;
        let prefix = c.prefix.trim_matches('/');
        let name = format!("s3://{}/{prefix}", c.bucket);
        let store: Arc<dyn ObjectStore> = if prefix.is_empty() {
            Arc::new(s3)
        } else {
            Arc::new(PrefixStore::new(s3, prefix))
        };
        Ok(Blobs {
            store,
            inline_max_bytes: inline_max_bytes.min(MAX_INLINE_BYTES),
            part_bytes: S3_PART_BYTES,
            guard: Guard {
                breaker: Some(Arc::new(Breaker::new(
                    c.failure_threshold,
                    Duration::from_millis(c.open_ms),
                ))),
                name,
            },
            local_root: None,
        })
    }

    /// The store the configuration names.
    pub fn open(storage: &StorageConfig, blobs: &BlobConfig, data_dir: &FsPath) -> Result<Self> {
        match storage.backend {
            StorageBackend::Local => {
                Self::local(&data_dir.join("blobs"), blobs.fsync, blobs.inline_max_bytes)
            }
            StorageBackend::S3 => Self::s3(&storage.s3, blobs.inline_max_bytes),
        }
    }

    /// Starts streaming a new upload into `incoming/<id>`.
    pub fn begin(&self, id: &str) -> Upload {
        Upload {
            store: self.store.clone(),
            inline_max_bytes: self.inline_max_bytes,
            part_bytes: self.part_bytes,
            guard: self.guard.clone(),
            path: incoming_path(id),
            hasher: Sha256::new(),
            size: 0,
            head: Vec::new(),
            buffer: Vec::new(),
            multipart: None,
        }
    }

    /// Moves a registered upload to its permanent place.
    pub async fn promote(&self, id: &str) -> Result<()> {
        self.guard.enter()?;
        let r = self
            .guard
            .exit(self.store.rename(&incoming_path(id), &doc_path(id)).await);
        r.map_err(|e| {
            self.guard
                .error(e, format!("failed to move blob {id} into place"))
        })
    }

    /// Drops an upload that was not registered (rejected, duplicate, failed).
    /// Nothing staged (an inline original) is fine.
    pub async fn discard(&self, id: &str) {
        if self.guard.enter().is_err() {
            // (The boot sweep deletes what is left in incoming/.)
            return;
        }
        match self.guard.exit(self.store.delete(&incoming_path(id)).await) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => tracing::warn!(doc_id = id, error = %e, "failed to delete incoming blob"),
        }
    }

    /// A registered document's bytes. Its row is committed before its blob
    /// moves out of `incoming/`, so a worker may get there first: look in
    /// both places (and in the final one again, in case the move completed
    /// between the two looks).
    pub async fn get(&self, id: &str) -> Result<Bytes> {
        for path in [doc_path(id), incoming_path(id), doc_path(id)] {
            self.guard.enter()?;
            let r = match self.store.get(&path).await {
                Ok(r) => r.bytes().await,
                Err(e) => Err(e),
            };
            match self.guard.exit(r) {
                Ok(b) => return Ok(b),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(self.guard.error(e, format!("cannot read blob {id}"))),
            }
        }
        anyhow::bail!("blob {id} is missing from the blob store")
    }

    /// A registered document's size in the store, if it is there.
    pub async fn size(&self, id: &str) -> Result<Option<u64>> {
        for path in [doc_path(id), incoming_path(id), doc_path(id)] {
            self.guard.enter()?;
            match self.guard.exit(self.store.head(&path).await) {
                Ok(m) => return Ok(Some(m.size)),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(self.guard.error(e, format!("cannot read blob {id}"))),
            }
        }
        Ok(None)
    }

    /// The stored original as a stream of chunks (for downloads).
    pub async fn stream(
        &self,
        id: &str,
    ) -> Result<futures::stream::BoxStream<'static, std::result::Result<Bytes, object_store::Error>>>
    {
        // Where `get` looks: a just-registered upload may not have moved.
        for path in [doc_path(id), incoming_path(id), doc_path(id)] {
            self.guard.enter()?;
            match self.guard.exit(self.store.get(&path).await) {
                Ok(r) => return Ok(r.into_stream()),
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(self.guard.error(e, format!("cannot read blob {id}"))),
            }
        }
        Err(anyhow::Error::new(BlobMissing(id.to_string())))
    }

    /// Stores the file at `path` as document `id`'s original (its final
    /// place), streaming, and returns its SHA-256 and size as written.
    pub async fn store_file(&self, id: &str, path: &FsPath) -> Result<(String, u64)> {
        let mut up = Upload {
            inline_max_bytes: 0,
            ..self.begin(id)
        };
        if let Err(e) = up.write_file(path).await {
            up.abort().await;
            return Err(e);
        }
        let staged = up.finish().await?;
        self.promote(id).await?;
        Ok((staged.sha256, staged.size))
    }

    pub async fn exists(&self, id: &str) -> bool {
        self.store.head(&doc_path(id)).await.is_ok()
    }

    /// Deletes a document's blob; a blob that is already gone is fine.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.guard.enter()?;
        match self.guard.exit(self.store.delete(&doc_path(id)).await) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.guard.error(e, format!("failed to delete blob {id}"))),
        }
    }

    /// The breaker's state (`closed`, `open`, `half_open`), failed calls
    /// and times it opened; None for the local disk.
    pub fn breaker(&self) -> Option<(&'static str, u64, u64)> {
        self.guard.breaker.as_ref().map(|b| {
            let (failures, opened) = b.counts();
            (b.state(), failures, opened)
        })
    }

    /// Every blob under `docs/`: its name (a document id) and where it is,
    /// when that is not where the id's original belongs (for checks).
    pub async fn list_docs(&self) -> Result<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        let mut s = self.store.list(Some(&Path::from("docs")));
        while let Some(meta) = s.next().await {
            let loc = meta?.location;
            if let Some(name) = loc.filename() {
                let misplaced = (loc != doc_path(name)).then(|| loc.to_string());
                out.push((name.to_string(), misplaced));
            }
        }
        Ok(out)
    }

    /// Deletes a blob found by [`Blobs::list_docs`]: at `misplaced`, else
    /// where the id's original belongs.
    pub async fn delete_listed(&self, id: &str, misplaced: Option<&str>) -> Result<()> {
        let Some(loc) = misplaced else {
            return self.delete(id).await;
        };
        self.guard.enter()?;
        match self.guard.exit(self.store.delete(&Path::from(loc)).await) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.guard.error(e, format!("failed to delete blob {loc}"))),
        }
    }

    /// Boot-time recovery of `incoming/`: promote blobs whose row exists,
    /// delete the others. Returns (promoted, deleted).
    pub async fn sweep_incoming<F>(&self, has_row: F) -> Result<(usize, usize)>
    where
        F: Fn(&str) -> Result<bool>,
    {
        let (mut promoted, mut deleted) = (0, 0);
        let mut names = Vec::new();
        let mut s = self.store.list(Some(&Path::from("incoming")));
        while let Some(meta) = s.next().await {
            if let Some(name) = meta?.location.filename() {
                names.push(name.to_string());
            }
        }
        for id in names {
            if has_row(&id)? {
                self.promote(&id).await?;
                promoted += 1;
            } else {
                self.discard(&id).await;
                deleted += 1;
            }
        }
        // Part files of multipart uploads cut short by a crash ("<id>#<n>")
        // are not listed by object_store; remove them directly.
        if let Some(root) = &self.local_root {
            if let Ok(entries) = std::fs::read_dir(root.join("incoming")) {
                for e in entries.flatten() {
                    if e.file_name().to_string_lossy().contains('#') {
                        let _ = std::fs::remove_file(e.path());
                        deleted += 1;
                    }
                }
            }
        }
        Ok((promoted, deleted))
    }

    /// Copies a document's original from `src` into this store (its final
    /// place), streaming, and returns its SHA-256 and size as written.
    pub async fn copy_from(&self, src: &Blobs, id: &str) -> Result<(String, u64)> {
        let mut input = src.stream(id).await?;
        let mut up = Upload {
            inline_max_bytes: 0,
            ..self.begin(id)
        };
        while let Some(chunk) = input.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    up.abort().await;
                    return Err(src.guard.error(e, format!("cannot read blob {id}")));
                }
            };
            if let Err(e) = up.write(&chunk).await {
                up.abort().await;
                return Err(e);
            }
        }
        let staged = up.finish().await?;
        self.promote(id).await?;
        Ok((staged.sha256, staged.size))
    }

    /// The SHA-256 and size of a document's original as this store holds
    /// it (read whole, streaming); None if it has none.
    pub async fn hash(&self, id: &str) -> Result<Option<(String, u64)>> {
        if self.size(id).await?.is_none() {
            return Ok(None);
        }
        let mut input = self.stream(id).await?;
        let (mut h, mut n) = (Sha256::new(), 0u64);
        while let Some(chunk) = input.next().await {
            let chunk = chunk.map_err(|e| self.guard.error(e, format!("cannot read blob {id}")))?;
            n += chunk.len() as u64;
            h.update(&chunk);
        }
        Ok(Some((hex::encode(h.finalize()), n)))
    }

    /// Which store this is, for messages and the status: `local` or
    /// `s3://bucket/prefix`.
    pub fn describe(&self) -> String {
        self.guard.name.clone()
    }

    /// Writes and reads back a small probe object (for `/readyz`).
    pub async fn probe(&self) -> Result<()> {
        let p = Path::from("incoming/.readyz-probe");
        self.guard.enter()?;
        let r = match self.store.put(&p, PutPayload::from_static(b"ok")).await {
            Ok(_) => self.store.delete(&p).await,
            Err(e) => Err(e),
        };
        self.guard
            .exit(r)
            .map_err(|e| self.guard.error(e, "cannot write a probe object".into()))
    }
}

/// A blob being streamed in. Either finished with [`Upload::finish`] or
/// dropped with [`Upload::abort`].
pub struct Upload {
    store: Arc<dyn ObjectStore>,
    inline_max_bytes: u64,
    part_bytes: usize,
    guard: Guard,
    path: Path,
    hasher: Sha256,
    size: u64,
    head: Vec<u8>,
    buffer: Vec<u8>,
    multipart: Option<WriteMultipart>,
}

/// A document's original is in neither `docs/` nor `incoming/`.
#[derive(Debug, thiserror::Error)]
#[error("blob {0} is missing from the blob store")]
pub struct BlobMissing(pub String);

/// A finished upload, still under `incoming/`.
#[derive(Clone, Debug)]
pub struct Staged {
    pub sha256: String,
    pub size: u64,
    /// The first bytes, for sniffing the type.
    pub head: Vec<u8>,
    /// The whole original when it is small enough to live in SQLite; then
    /// nothing was written to the blob store.
    pub inline: Option<Bytes>,
}

impl Upload {
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The first bytes seen so far (up to [`HEAD_BYTES`]).
    pub fn head(&self) -> &[u8] {
        &self.head
    }

    /// Streams the file at `path` into the upload.
    pub async fn write_file(&mut self, path: &FsPath) -> Result<()> {
        use tokio::io::AsyncReadExt;
        let mut file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = file
                .read(&mut buf)
                .await
                .with_context(|| format!("cannot read {}", path.display()))?;
            if n == 0 {
                return Ok(());
            }
            self.write(&buf[..n]).await?;
        }
    }

    pub async fn write(&mut self, chunk: &[u8]) -> Result<()> {
        self.hasher.update(chunk);
        self.size += chunk.len() as u64;
        if self.head.len() < HEAD_BYTES {
            let n = (HEAD_BYTES - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..n]);
        }
        match &mut self.multipart {
            Some(w) => {
                self.guard.enter()?;
                let r = self.guard.exit(w.wait_for_capacity(2).await);
                r.map_err(|e| self.guard.error(e, "cannot store the upload".into()))?;
                w.write(chunk);
            }
            None => {
                self.buffer.extend_from_slice(chunk);
                if self.buffer.len() >= self.part_bytes {
                    self.guard.enter()?;
                    let upload = self
                        .guard
                        .exit(self.store.put_multipart(&self.path).await)
                        .map_err(|e| self.guard.error(e, "cannot store the upload".into()))?;
                    let mut w = WriteMultipart::new_with_chunk_size(upload, self.part_bytes);
                    w.put(Bytes::from(std::mem::take(&mut self.buffer)));
                    self.multipart = Some(w);
                }
            }
        }
        Ok(())
    }

    pub async fn finish(self) -> Result<Staged> {
        let mut inline = None;
        match self.multipart {
            Some(w) => {
                self.guard.enter()?;
                let r = self.guard.exit(w.finish().await);
                r.map_err(|e| self.guard.error(e, "cannot store the upload".into()))?;
            }
            None if self.size <= self.inline_max_bytes => inline = Some(Bytes::from(self.buffer)),
            None => {
                self.guard.enter()?;
                let r = self.guard.exit(
                    self.store
                        .put(&self.path, PutPayload::from(Bytes::from(self.buffer)))
                        .await,
                );
                r.map_err(|e| self.guard.error(e, "cannot store the upload".into()))?;
            }
        }
        Ok(Staged {
            sha256: hex::encode(self.hasher.finalize()),
            size: self.size,
            head: self.head,
            inline,
        })
    }

    pub async fn abort(self) {
        if let Some(w) = self.multipart {
            let _ = w.abort().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn upload_hashes_streams_and_promotes() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path(), false, 1024).unwrap();
        let mut small = blobs.begin("small");
        small.write(b"tiny").await.unwrap();
        let staged = small.finish().await.unwrap();
        assert_eq!(
            staged.inline.as_deref(),
            Some(&b"tiny"[..]),
            "small originals come back inline"
        );
        assert!(
            blobs.get("small").await.is_err(),
            "and are not written to the blob store"
        );
        let mut up = blobs.begin("doc1");
        let big = vec![7u8; PART_BYTES + 123];
        for chunk in big.chunks(64 * 1024) {
            up.write(chunk).await.unwrap();
        }
        let staged = up.finish().await.unwrap();
        assert_eq!(staged.size, big.len() as u64);
        assert_eq!(staged.sha256, hex::encode(Sha256::digest(&big)));
        assert_eq!(staged.head.len(), HEAD_BYTES);
        assert!(staged.inline.is_none());
        // Readable while still staged (a worker can be faster than the move).
        assert_eq!(blobs.get("doc1").await.unwrap().len(), big.len());
        blobs.promote("doc1").await.unwrap();
        assert_eq!(blobs.get("doc1").await.unwrap().len(), big.len());
    }

    #[tokio::test]
    async fn sweep_promotes_registered_and_deletes_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let blobs = Blobs::local(dir.path(), false, 0).unwrap();
        for id in ["keep", "orphan"] {
            let mut up = blobs.begin(id);
            up.write(b"hello").await.unwrap();
            up.finish().await.unwrap();
        }
        std::fs::write(dir.path().join("incoming/x#1"), b"part").unwrap();
        let (promoted, deleted) = blobs.sweep_incoming(|id| Ok(id == "keep")).await.unwrap();
        assert_eq!((promoted, deleted), (1, 2));
        assert!(blobs.exists("keep").await);
        assert_eq!(
            std::fs::read_dir(dir.path().join("incoming"))
                .unwrap()
                .count(),
            0
        );
    }
}
