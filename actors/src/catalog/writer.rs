//! The Catalog's threads: the writer, which owns the SQLite connection and
//! commits one batch after another; the syncer, which makes each committed
//! batch durable and only then sets off its effects (replies, forwards, blob
//! moves); and the checkpointer.
//!
//! Split so that the disk's flush and the next batch's writes overlap. The
//! connection runs with `synchronous=NORMAL` (a commit writes its WAL frames
//! and returns), and with `synchronous = "full"` in the config the syncer
//! `fdatasync`s the WAL file once for every batch committed since its last
//! flush before anything of theirs is acknowledged: every acknowledged
//! change has reached the disk, as with SQLite's own `FULL`, but one flush
//! covers several commits and the writer never waits for it. (Readers may
//! see a batch a few hundred microseconds before it is durable; nothing is
//! acknowledged, forwarded or indexed from it until it is.) A flush that
//! fails stops the process: after a failed `fsync` the kernel may have
//! dropped the pages, so nothing written since can be trusted to be on disk,
//! and a restart recovers from what is.
//!
//! WAL checkpoints run on the checkpointer's own connection, so the writer's
//! commits do not carry them; the writer's own automatic checkpoint stays as
//! a backstop that bounds the WAL under load that never pauses.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{channel, sync_channel, Receiver, Sender, SyncSender};
use std::thread::JoinHandle;
use std::time::Duration;

use ractor::ActorRef;
use rusqlite::Connection;

use super::{apply_effects, ops, CatalogArgs, Effect};
use crate::counters::Counters;
use crate::model::now_ms;
use crate::routes::{current_routes, CatalogMsg, RoutesRx};
use crate::store::blobs::Blobs;

/// WAL pages after which the writer checkpoints itself (SQLite's automatic
/// checkpoint, ten times its default): only when the background checkpoints
/// cannot keep up.
const WRITER_CHECKPOINT_PAGES: i64 = 10_000;
/// Committed batches that may wait for the syncer's flush.
const COMMITTED_WAITING: usize = 64;
/// At most one background checkpoint per this interval.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(200);

/// The writer thread's handle, kept in the actor's state. Dropping it closes
/// the writer's queue and waits for the batch in hand to be committed.
pub(super) struct Writer {
    tx: Option<Sender<CatalogMsg>>,
    thread: Option<JoinHandle<()>>,
}

/// A committed batch on its way to the syncer.
struct Committed {
    effects: Vec<Effect>,
    /// The last event written so far (the events table's largest `seq`).
    events_upto: i64,
}

impl Writer {
    pub(super) fn start(
        conn: Connection,
        args: CatalogArgs,
        me: ActorRef<CatalogMsg>,
    ) -> anyhow::Result<Writer> {
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)?;
        let (tx, rx) = channel::<CatalogMsg>();
        // Committed batches waiting for their flush; one flush covers them
        // all. Bounded, so a disk that stalls stalls the writer too.
        let (done_tx, done_rx) = sync_channel::<Committed>(COMMITTED_WAITING);
        let (nudge_tx, nudge_rx) = sync_channel::<()>(1);
        let full = args.config.synchronous == "full";
        let runtime = tokio::runtime::Handle::current();
        let max_batch = args.config.max_batch.max(1);
        let counters = args.counters.clone();
        let path = args.path.clone();
        std::thread::Builder::new()
            .name("catalog-checkpoint".into())
            .spawn({
                let path = path.clone();
                move || checkpoint_loop(&path, nudge_rx)
            })?;
        std::thread::Builder::new()
            .name("catalog-sync".into())
            .spawn({
                let path = path.clone();
                let out = Outlets {
                    routes: args.routes,
                    blobs: args.blobs,
                    events: args.events,
                    runtime,
                };
                move || sync_loop(&path, full, done_rx, nudge_tx, out)
            })?;
        let thread = std::thread::Builder::new()
            .name("catalog-writer".into())
            .spawn(move || {
                let why = write_loop(conn, rx, done_tx, max_batch, &counters);
                if let Some(why) = why {
                    tracing::error!(error = %why, "the catalog's writer stopped; the Catalog restarts");
                    let _ = me.cast(CatalogMsg::WriterDown(why));
                }
            })?;
        Ok(Writer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues an operation for the next batch; false if the writer has
    /// stopped (the operation is dropped, and its caller's reply with it).
    pub(super) fn send(&self, msg: CatalogMsg) -> bool {
        self.tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok())
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.tx.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Commits batches until the queue closes (None) or a batch fails (the
/// reason). A batch is whatever waits when the previous one is committed,
/// up to `max_batch` operations.
fn write_loop(
    mut conn: Connection,
    rx: Receiver<CatalogMsg>,
    done: SyncSender<Committed>,
    max_batch: usize,
    counters: &Counters,
) -> Option<String> {
    while let Ok(first) = rx.recv() {
        let mut ops = vec![first];
        while ops.len() < max_batch {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let n = ops.len();
        counters.catalog.queued(1 - n as i64);
        let timer = counters.catalog.start_job();
        let result = catch_unwind(AssertUnwindSafe(|| write_batch(&mut conn, ops)));
        drop(timer);
        match result {
            Ok(Ok(effects)) => {
                counters.catalog.num_processed.fetch_add(n as u64, Relaxed);
                counters.num_commits_catalog.fetch_add(1, Relaxed);
                // The largest rowid is one step down the table's b-tree.
                let events_upto = conn
                    .prepare_cached("SELECT COALESCE(MAX(seq), 0) FROM events")
                    .and_then(|mut s| s.query_row([], |r| r.get(0)))
                    .unwrap_or(0);
                if done
                    .send(Committed {
                        effects,
                        events_upto,
                    })
                    .is_err()
                {
                    return Some("the catalog's syncer has stopped".into());
                }
            }
            Ok(Err(e)) => return Some(format!("a batch could not be committed: {e:#}")),
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                return Some(format!("writing a batch panicked: {what}"));
            }
        }
    }
    None
}

fn write_batch(conn: &mut Connection, ops: Vec<CatalogMsg>) -> anyhow::Result<Vec<Effect>> {
    let tx = conn.transaction()?;
    let now = now_ms();
    let mut effects = Vec::with_capacity(ops.len());
    for op in ops {
        // One operation that fails (a constraint, a bad value) fails alone:
        // its writes are undone, its caller's request fails (the reply is
        // dropped with its effects), and the rest of the batch commits.
        // Cached: these run around every operation of every batch.
        tx.prepare_cached("SAVEPOINT op")?.execute([])?;
        let mut local = Vec::new();
        match ops::write_one(&tx, op, now, &mut local) {
            Ok(()) => {
                tx.prepare_cached("RELEASE op")?.execute([])?;
                effects.append(&mut local);
            }
            Err(e) => {
                // If SQLite gave up the whole transaction (I/O errors), this
                // fails too and the batch fails as one, as before.
                tx.execute_batch("ROLLBACK TO op; RELEASE op")?;
                tracing::error!(error = %format!("{e:#}"), "a catalog operation failed; the rest of its batch goes on");
            }
        }
    }
    tx.commit()?;
    Ok(effects)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

/// Flushes the WAL to disk (with `full`), then sets off the effects of every
/// batch it covers, in commit order.
/// Where the syncer sends what a durable batch sets off.
struct Outlets {
    routes: RoutesRx,
    blobs: Blobs,
    events: std::sync::Arc<tokio::sync::watch::Sender<i64>>,
    runtime: tokio::runtime::Handle,
}

fn sync_loop(db: &Path, full: bool, rx: Receiver<Committed>, nudge: SyncSender<()>, out: Outlets) {
    let wal = wal_path(db);
    // The WAL file flushed last: SQLite deletes it when its last connection
    // closes and makes a new one, whose directory entry must reach the disk
    // too before anything in it counts as durable.
    let mut flushed: Option<u64> = None;
    while let Ok(first) = rx.recv() {
        let mut batches = vec![first];
        batches.extend(rx.try_iter());
        if full {
            if let Err(e) = flush_wal(db, &wal, &mut flushed) {
                fatal(&format!("{}: {e}", wal.display()));
            }
        }
        let mut upto = 0;
        for Committed {
            effects,
            events_upto,
        } in batches
        {
            finish(effects, &out.routes, &out.blobs, &out.runtime);
            upto = upto.max(events_upto);
        }
        // Subscribers see an event only once it is durable: one that a crash
        // could undo is never sent (its id would be given again).
        out.events.send_if_modified(|v| {
            let newer = upto > *v;
            if newer {
                *v = upto;
            }
            newer
        });
        let _ = nudge.try_send(());
    }
}

/// `fdatasync`s the WAL file, and its directory when the file is a new one.
fn flush_wal(db: &Path, wal: &Path, flushed: &mut Option<u64>) -> std::io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let f = std::fs::File::open(wal)?;
    f.sync_data()?;
    let inode = f.metadata()?.ino();
    if *flushed != Some(inode) {
        if let Some(dir) = db.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::File::open(dir)?.sync_all()?;
        }
        *flushed = Some(inode);
    }
    Ok(())
}

fn fatal(what: &str) -> ! {
    tracing::error!(
        "the catalog's write-ahead log could not be flushed to disk ({what}); \
         docpipe stops rather than acknowledge what may be lost: start it again to \
         recover from what is on disk"
    );
    eprintln!("docpipe: fatal: could not flush the catalog's write-ahead log to disk: {what}");
    std::process::exit(70)
}

/// A durable batch's effects: attachments' blobs move into place before
/// anyone can admit them, then replies and forwards go out (even if a
/// sibling is down: the batch is committed).
fn finish(effects: Vec<Effect>, routes: &RoutesRx, blobs: &Blobs, rt: &tokio::runtime::Handle) {
    for e in &effects {
        match e {
            Effect::Promote(id) => {
                if let Err(e) = rt.block_on(blobs.promote(id)) {
                    tracing::error!(doc_id = %id, error = %format!("{e:#}"), "attachment not moved into place; the next start finishes it");
                }
            }
            Effect::Discard(id) => rt.block_on(blobs.discard(id)),
            _ => {}
        }
    }
    match current_routes(routes) {
        Ok(r) => apply_effects(&r, effects),
        Err(e) => tracing::error!(error = %e, "a committed batch's effects were dropped"),
    }
}

/// Checkpoints the WAL into the database on a connection of its own when
/// nudged after a commit, at most once per [`CHECKPOINT_EVERY`] (a passive
/// checkpoint: it never blocks the writer or a reader).
fn checkpoint_loop(db: &Path, nudges: Receiver<()>) {
    let conn = match Connection::open(db) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no background checkpoints; the writer checkpoints itself");
            return;
        }
    };
    let _ = conn.pragma_update(None, "synchronous", "normal");
    while nudges.recv().is_ok() {
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::debug!(error = %e, "background checkpoint skipped");
        }
        // Nudges that come meanwhile wait in the channel (one at most).
        std::thread::sleep(CHECKPOINT_EVERY);
    }
}
