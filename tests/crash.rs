//! Crash safety: SIGKILL the server at several moments while hundreds of
//! documents are being uploaded and processed, restart it, and prove that
//! every acknowledged document ends `indexed` exactly once (search hits =
//! database rows = acknowledged uploads), that every original reads back
//! byte for byte, and that nothing unacknowledged left an orphan blob. A third
//! of the documents are larger than `blobs.inline_max_bytes`, so both ways of
//! storing an original (inline in SQLite, a file in the blob store) are killed
//! mid-flight.

mod common;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures::StreamExt;

const DOCS: usize = 600;
const CONCURRENCY: usize = 8;
const INLINE_MAX: usize = 4096;

fn is_large(i: usize) -> bool {
    i.is_multiple_of(3)
}

fn body(i: usize) -> Vec<u8> {
    const WORDS: [&str; 12] = [
        "ledger", "harbour", "meadow", "copper", "lantern", "orchard", "granite", "willow",
        "saddle", "thistle", "beacon", "marble",
    ];
    let mut s = format!("crashcorpus doc{i:05}\n");
    let mut x = i as u64 * 2654435761 + 1;
    let size = if is_large(i) { 6000 } else { 2000 };
    while s.len() < size {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.push_str(WORDS[(x % 12) as usize]);
        s.push(' ');
    }
    s.into_bytes()
}

/// Uploads one document; Some(id) once the server acknowledged it.
async fn try_upload(client: &reqwest::Client, base: &str, i: usize) -> Option<String> {
    let part = reqwest::multipart::Part::bytes(body(i)).file_name(format!("doc{i:05}.txt"));
    let form = reqwest::multipart::Form::new().part("file", part);
    let r = client
        .post(format!("{base}/api/v1/documents"))
        .multipart(form)
        .send()
        .await
        .ok()?;
    if r.status().as_u16() != 202 {
        return None;
    }
    let v: serde_json::Value = r.json().await.ok()?;
    v["documents"][0]["id"].as_str().map(String::from)
}

#[test]
fn sigkill_during_upload_and_processing_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = format!("{FAST_CONFIG}\n[blobs]\ninline_max_bytes = {INLINE_MAX}\n");
    let mut s = Server::start(&tmp.path().join("data"), &cfg, &[]);
    let client = common::reqwest::async_client();
    let mut pending: VecDeque<usize> = (0..DOCS).collect();
    let mut acked: BTreeMap<usize, String> = BTreeMap::new();
    // Kill after this many acknowledgements in each phase (mid-upload), then
    // once more right after the last upload (mid-processing).
    let kill_after = [120usize, 200, usize::MAX];
    let mut kills = 0;
    for (phase, &threshold) in kill_after.iter().enumerate() {
        let base = s.base.clone();
        let pid = s.pid();
        let batch: Vec<usize> = pending.drain(..).collect();
        let acks_this_phase = Arc::new(AtomicUsize::new(0));
        let killed = Arc::new(AtomicBool::new(false));
        let results: Vec<(usize, Option<String>)> = common::reqwest::run(async {
            futures::stream::iter(batch)
                .map(|i| {
                    let (client, base, acks, killed) = (
                        client.clone(),
                        base.clone(),
                        acks_this_phase.clone(),
                        killed.clone(),
                    );
                    async move {
                        let r = try_upload(&client, &base, i).await;
                        if r.is_some()
                            && acks.fetch_add(1, Ordering::SeqCst) + 1 == threshold
                            && !killed.swap(true, Ordering::SeqCst)
                        {
                            // Other uploads are in flight at this moment.
                            nix::sys::signal::kill(
                                nix::unistd::Pid::from_raw(pid),
                                nix::sys::signal::Signal::SIGKILL,
                            )
                            .unwrap();
                        }
                        (i, r)
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await
        });
        for (i, r) in results {
            match r {
                Some(id) => {
                    if let Some(prev) = acked.insert(i, id.clone()) {
                        assert_eq!(prev, id, "doc{i} acknowledged under two ids");
                    }
                }
                // Not acknowledged: upload it again after the restart. If it
                // had been committed after all, the server says duplicate_of.
                None if !acked.contains_key(&i) => pending.push_back(i),
                None => {}
            }
        }
        if killed.load(Ordering::SeqCst) {
            kills += 1;
            s.kill9();
            s.restart();
        }
        eprintln!(
            "phase {phase}: {} acknowledged, {} to upload again",
            acked.len(),
            pending.len()
        );
        if pending.is_empty() && phase + 1 < kill_after.len() && threshold != usize::MAX {
            break;
        }
    }
    // Everything not yet acknowledged goes up now; then kill mid-processing.
    while !pending.is_empty() {
        let i = pending.pop_front().unwrap();
        acked.insert(i, upload_one(&s, &format!("doc{i:05}.txt"), body(i)));
    }
    let (_, st) = get_json(&s.url("/api/v1/status"));
    eprintln!(
        "before the last kill: {} of {DOCS} indexed",
        st["stages"]["indexed"]["documents"]
    );
    s.kill9();
    kills += 1;
    s.restart();
    assert!(
        kills >= 3,
        "the test must kill the server at least three times, did {kills}"
    );
    assert_eq!(
        acked.len(),
        DOCS,
        "every document was acknowledged eventually"
    );

    // Every acknowledged document ends indexed.
    let ids: BTreeSet<String> = acked.values().cloned().collect();
    assert_eq!(ids.len(), DOCS, "distinct ids");
    wait_until(Duration::from_secs(300), "all documents indexed", || {
        let (_, st) = get_json(&s.url("/api/v1/status"));
        st["stages"]["indexed"]["documents"] == DOCS
    });
    for id in &ids {
        assert_eq!(doc(&s, id)["stage"], "indexed");
    }
    // Database rows = acknowledged: no extra document from a lost upload.
    let rows: BTreeSet<String> = list_ids(&s, "limit=1000").into_iter().collect();
    assert_eq!(rows, ids, "database rows = acknowledged documents");
    // Exactly once in the index: hits for the shared word, and live docs.
    assert_eq!(
        search(&s, "crashcorpus")["total"],
        DOCS,
        "search hits = acknowledged"
    );
    let (_, st) = get_json(&s.url("/api/v1/status"));
    assert_eq!(st["index_docs"], DOCS, "no duplicate index entries");
    for i in [0, DOCS / 2, DOCS - 1] {
        let r = search(&s, &format!("doc{i:05}"));
        assert_eq!(
            (r["total"].as_u64(), r["hits"][0]["id"].as_str()),
            (Some(1), Some(acked[&i].as_str()))
        );
    }
    // Blob files = acknowledged large documents; nothing left in incoming/.
    let blob_dir = s.data_dir.join("blobs");
    let mut blobs = BTreeSet::new();
    for shard in std::fs::read_dir(blob_dir.join("docs")).unwrap().flatten() {
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            blobs.insert(f.file_name().to_string_lossy().to_string());
        }
    }
    let large: BTreeSet<String> = acked
        .iter()
        .filter(|(i, _)| is_large(**i))
        .map(|(_, id)| id.clone())
        .collect();
    assert_eq!(
        blobs, large,
        "one blob file per acknowledged large document, no orphans"
    );
    // Every original reads back byte for byte, wherever it is kept.
    for (i, id) in &acked {
        let (code, _, bytes) = common::reqwest::send(
            common::reqwest::async_client().get(s.url(&format!("/api/v1/documents/{id}/content"))),
        );
        assert_eq!((code, bytes == body(*i)), (200, true), "original of doc{i}");
    }
    // (object_store removes the directory itself once it is empty.)
    let incoming: Vec<_> = std::fs::read_dir(blob_dir.join("incoming"))
        .map(|rd| rd.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(incoming.is_empty(), "orphans in incoming/: {incoming:?}");
}

/// The Catalog's commits stay in the WAL only until a background checkpoint
/// copies them into the database file, while the server runs: a copy of the
/// database file alone (no WAL) soon holds every acknowledged document, so
/// the WAL stays small and a restart has little to replay.
#[test]
fn commits_reach_the_database_file_while_the_server_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, FAST_CONFIG, &[]);
    let ids: Vec<String> = (0..40)
        .map(|i| {
            upload_one(
                &s,
                &format!("wal{i}.txt"),
                format!("walcheck {i}").into_bytes(),
            )
        })
        .collect();
    for id in &ids {
        assert_eq!(
            wait_terminal(&s, id, Duration::from_secs(60))["stage"],
            "indexed"
        );
    }
    let copy = tmp.path().join("copy.sqlite");
    let in_file = || {
        // The main file alone: what is not checkpointed yet is not in it.
        std::fs::copy(data.join("catalog.sqlite"), &copy).ok()?;
        let conn = rusqlite::Connection::open(&copy).ok()?;
        conn.query_row(
            "SELECT COUNT(*) FROM documents WHERE stage = 'indexed'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ok()
    };
    wait_until(
        Duration::from_secs(20),
        "the indexed documents in the database file itself",
        || in_file() == Some(ids.len() as i64),
    );
    assert!(
        std::fs::metadata(data.join("catalog.sqlite-wal")).is_ok(),
        "the server is running in WAL mode"
    );
}
