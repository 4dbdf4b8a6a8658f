//! Watched folders (`[[watch]]`): files dropped into a folder are ingested
//! once they stop changing, then moved to `done/` (or deleted); a file
//! docpipe refuses goes to `failed/` with a `.error.txt` beside it naming
//! the problem.
//!
//! One task per folder scans it when the file system says something changed
//! (the `notify` crate: inotify on Linux) and every `scan_ms` anyway
//! (network shares send no change events, so a scan is the one mechanism
//! that always works). A file
//! is taken when its size and modification time have not changed for
//! `settle_ms`. It is streamed into the blob store and registered like an
//! upload, and only then moved: a crash in between leaves it in place, and
//! taking it again finds the same bytes in the workspace (a duplicate, not
//! a second document), so each file is ingested exactly once, across
//! restarts.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use docpipe_actors::{
    clean_filename, sniff, LabelKind, NewDocument, Origin, Pipeline, Registered, Sniffed,
    UploadExtras, DEFAULT_WORKSPACE,
};
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum After {
    #[default]
    Move,
    Delete,
}

/// One watched folder.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct WatchConfig {
    pub path: PathBuf,
    pub workspace: String,
    /// A document type the classifier does not override; empty: classified.
    pub doc_type: String,
    /// Each subfolder's name a file sits in becomes a tag.
    pub tags_from_folders: bool,
    pub after: After,
    /// Default `PATH/done`.
    pub done_dir: Option<PathBuf>,
    /// Default `PATH/failed`.
    pub failed_dir: Option<PathBuf>,
    /// A file is taken once unchanged this long.
    pub settle_ms: u64,
    /// How often the folder is looked at.
    pub scan_ms: u64,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            path: PathBuf::new(),
            workspace: DEFAULT_WORKSPACE.into(),
            doc_type: String::new(),
            tags_from_folders: false,
            after: After::Move,
            done_dir: None,
            failed_dir: None,
            settle_ms: 2_000,
            scan_ms: 1_000,
        }
    }
}

impl WatchConfig {
    fn done(&self) -> PathBuf {
        self.done_dir
            .clone()
            .unwrap_or_else(|| self.path.join("done"))
    }

    fn failed(&self) -> PathBuf {
        self.failed_dir
            .clone()
            .unwrap_or_else(|| self.path.join("failed"))
    }
}

/// A folder's figures, for `/api/v1/status`.
#[derive(Debug, Default)]
pub struct WatchState {
    pub path: String,
    pub ingested: AtomicU64,
    pub failed: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl WatchState {
    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "path": self.path,
            "ingested": self.ingested.load(Relaxed),
            "failed": self.failed.load(Relaxed),
            "last_error": *self.last_error.lock().unwrap_or_else(|p| p.into_inner()),
        })
    }

    fn error(&self, e: String) {
        tracing::warn!(folder = %self.path, error = %e, "watched folder");
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e);
    }
}

/// Starts one task per folder; their figures.
pub fn start(
    pipeline: &Pipeline,
    folders: &[WatchConfig],
    max_bytes: u64,
) -> Result<Vec<Arc<WatchState>>, String> {
    let mut states = Vec::new();
    for w in folders {
        std::fs::create_dir_all(&w.path)
            .and_then(|_| std::fs::create_dir_all(w.done()))
            .and_then(|_| std::fs::create_dir_all(w.failed()))
            .map_err(|e| format!("watch {}: {e}", w.path.display()))?;
        let state = Arc::new(WatchState {
            path: w.path.display().to_string(),
            ..Default::default()
        });
        states.push(state.clone());
        let (pipeline, w) = (pipeline.clone(), w.clone());
        // Change events wake the task early; the scan every scan_ms stays
        // (shares and some file systems send none).
        let changed = Arc::new(tokio::sync::Notify::new());
        let watcher = events(&w.path, changed.clone());
        if let Err(e) = &watcher {
            tracing::info!(folder = %w.path.display(), error = %e, "no change events; scanning every scan_ms");
        }
        tokio::spawn(async move {
            let _watcher = watcher;
            let mut seen: HashMap<PathBuf, (u64, SystemTime, Instant)> = HashMap::new();
            loop {
                if let Err(e) = scan(&pipeline, &w, &state, &mut seen, max_bytes).await {
                    state.error(e);
                }
                // A file seen changing is looked at again once it can have
                // settled (events alone would not say when that is).
                let next = if seen.is_empty() {
                    w.scan_ms
                } else {
                    w.scan_ms.min(w.settle_ms)
                };
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(next.max(50))) => {}
                    _ = changed.notified() => {
                        // A file written in many pieces sends many events:
                        // at most one scan per 100 ms for them.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        });
    }
    Ok(states)
}

/// A watcher of `dir` (recursive) that wakes `changed` on every event.
fn events(
    dir: &Path,
    changed: Arc<tokio::sync::Notify>,
) -> notify::Result<notify::RecommendedWatcher> {
    use notify::Watcher;
    let mut w = notify::recommended_watcher(move |e: notify::Result<notify::Event>| {
        if e.is_ok() {
            changed.notify_one();
        }
    })?;
    w.watch(dir, notify::RecursiveMode::Recursive)?;
    Ok(w)
}

/// The files under `dir`, but not under the done and failed folders.
fn files(dir: &Path, skip: &[PathBuf], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() && !skip.contains(&p) => files(&p, skip, out),
            Ok(t) if t.is_file() => {
                let name = e.file_name();
                let name = name.to_string_lossy();
                // Partial downloads and hidden files are not documents yet.
                if !name.starts_with('.') && !name.ends_with(".part") && !name.ends_with(".tmp") {
                    out.push(p);
                }
            }
            _ => {}
        }
    }
}

async fn scan(
    pipeline: &Pipeline,
    w: &WatchConfig,
    state: &WatchState,
    seen: &mut HashMap<PathBuf, (u64, SystemTime, Instant)>,
    max_bytes: u64,
) -> Result<(), String> {
    let mut found = Vec::new();
    files(&w.path, &[w.done(), w.failed()], &mut found);
    // (A set: a folder of thousands of files is scanned every scan_ms.)
    let present: std::collections::HashSet<&PathBuf> = found.iter().collect();
    seen.retain(|p, _| present.contains(p));
    let now = Instant::now();
    for p in found {
        let Ok(meta) = std::fs::metadata(&p) else {
            continue;
        };
        let (size, mtime) = (
            meta.len(),
            meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
        );
        let entry = seen.entry(p.clone()).or_insert((size, mtime, now));
        if (entry.0, entry.1) != (size, mtime) {
            *entry = (size, mtime, now);
            continue;
        }
        if now.duration_since(entry.2) < Duration::from_millis(w.settle_ms) {
            continue;
        }
        seen.remove(&p);
        match take(pipeline, w, &p, max_bytes).await {
            Ok(()) => {
                state.ingested.fetch_add(1, Relaxed);
                settle(w, &p, None);
            }
            Err(Taken::Refused(why)) => {
                state.failed.fetch_add(1, Relaxed);
                state.error(format!("{}: {why}", p.display()));
                settle(w, &p, Some(&why));
            }
            // The store or the catalog is away: left in place, taken later.
            Err(Taken::NotNow(why)) => state.error(format!("{}: {why}", p.display())),
        }
    }
    Ok(())
}

/// Streams a file into the blob store and registers it, with tags from
/// its folders if asked.
async fn take(pipeline: &Pipeline, w: &WatchConfig, p: &Path, max_bytes: u64) -> Result<(), Taken> {
    let origin = Origin {
        token_id: None,
        request_id: Some(format!("watch:{}", uuid::Uuid::now_v7().simple())),
    };
    let mut extra = UploadExtras {
        doc_type: Some(w.doc_type.clone()).filter(|t| !t.is_empty()),
        ..Default::default()
    };
    if w.tags_from_folders {
        let rel = p.parent().and_then(|d| d.strip_prefix(&w.path).ok());
        for folder in rel.into_iter().flat_map(|r| r.components()) {
            let name = folder.as_os_str().to_string_lossy().trim().to_string();
            if name.is_empty() {
                continue;
            }
            let (tag, _) = pipeline
                .create_label(LabelKind::Tag, &w.workspace, &name, None, &origin)
                .await
                .map_err(|e| Taken::NotNow(format!("{e:#}")))?;
            extra.tags.push(tag);
        }
    }
    ingest_file(pipeline, p, &w.workspace, extra, max_bytes, &origin)
        .await
        .map(|_| ())
}

/// Why a file was not taken.
pub enum Taken {
    /// docpipe will not take this file.
    Refused(String),
    /// It could not be taken now (the store or the catalog is away).
    NotNow(String),
}

/// Streams a file into the blob store and registers it (the same bytes as
/// a document of the workspace are that document: see `duplicate_of`).
pub async fn ingest_file(
    pipeline: &Pipeline,
    p: &Path,
    workspace: &str,
    extra: UploadExtras,
    max_bytes: u64,
    origin: &Origin,
) -> Result<Registered, Taken> {
    let not_now = |e: String| Taken::NotNow(e);
    // A file that is gone or may not be read is refused; any other error
    // (the runtime shutting down, a share that hiccups) leaves it for later.
    let io = |what: &str, e: std::io::Error| {
        let msg = format!("cannot {what} it: {e}");
        match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
                Taken::Refused(msg)
            }
            _ => Taken::NotNow(msg),
        }
    };
    let filename = clean_filename(&p.file_name().unwrap_or_default().to_string_lossy());
    let mut file = tokio::fs::File::open(p).await.map_err(|e| io("open", e))?;
    let (id, mut up) = pipeline.begin_upload();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                up.abort().await;
                return Err(io("read", e));
            }
        };
        if n == 0 {
            break;
        }
        if up.size() + n as u64 > max_bytes {
            up.abort().await;
            return Err(Taken::Refused(format!(
                "it is larger than server.max_upload_bytes ({max_bytes} bytes)"
            )));
        }
        if let Err(e) = up.write(&buf[..n]).await {
            up.abort().await;
            return Err(not_now(format!("{e:#}")));
        }
    }
    let staged = up.finish().await.map_err(|e| not_now(format!("{e:#}")))?;
    let mime = match sniff(&staged.head, &filename) {
        Sniffed::Supported(m) => m,
        Sniffed::Empty => {
            pipeline.discard_upload(&id).await;
            return Err(Taken::Refused(format!("{filename:?} is empty")));
        }
        Sniffed::Unsupported(t) => {
            pipeline.discard_upload(&id).await;
            return Err(Taken::Refused(format!(
                "{filename:?} looks like {t}, which docpipe does not read"
            )));
        }
    };
    let doc = NewDocument {
        id: id.clone(),
        workspace: workspace.to_string(),
        filename,
        title: None,
        mime: mime.to_string(),
        size: staged.size,
        sha256: staged.sha256,
        inline: staged.inline,
        extra,
    };
    let mut registered = pipeline
        .register(vec![doc], origin)
        .await
        .map_err(|e| not_now(format!("{e:#}")))?;
    registered
        .pop()
        .ok_or_else(|| not_now("the catalog did not answer".into()))
}

/// Moves (or deletes) a file once taken; a refused one goes to `failed/`
/// with its reason beside it.
fn settle(w: &WatchConfig, p: &Path, refused: Option<&str>) {
    let rel = p.strip_prefix(&w.path).unwrap_or(p);
    let to_dir = match refused {
        Some(_) => w.failed(),
        None if w.after == After::Delete => {
            if let Err(e) = std::fs::remove_file(p) {
                tracing::warn!(file = %p.display(), error = %e, "cannot delete a taken file");
            }
            return;
        }
        None => w.done(),
    };
    let mut dest = to_dir.join(rel);
    if let Some(parent) = dest.parent() {
        let _ = std::fs::create_dir_all(parent);
    }
    // Never over an earlier file of the same name.
    let mut n = 1;
    while dest.exists() {
        let stem = rel.file_stem().unwrap_or_default().to_string_lossy();
        let ext = rel
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()))
            .unwrap_or_default();
        dest = to_dir
            .join(rel.parent().unwrap_or(Path::new("")))
            .join(format!("{stem}-{n}{ext}"));
        n += 1;
    }
    if let Err(e) = std::fs::rename(p, &dest) {
        tracing::warn!(file = %p.display(), error = %e, "cannot move a taken file");
        return;
    }
    if let Some(why) = refused {
        let note = dest.with_file_name(format!(
            "{}.error.txt",
            dest.file_name().unwrap_or_default().to_string_lossy()
        ));
        let _ = std::fs::write(note, format!("{why}\n"));
    }
}
