//! Watched folders against the real binary: files dropped into a folder,
//! some written slowly in pieces, some that docpipe refuses, across a
//! restart.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use serde_json::Value;

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn content(i: usize) -> String {
    format!(
        "Watched letter {i}.\nThe quokka census of folder {i} counted {} quokkas.\n",
        100 + i
    )
}

/// 200 files: 150 written at once (a third of them in `tax/2024/`), 20
/// written slowly in five pieces, 30 that docpipe refuses (empty, or of a
/// type it does not read), with a restart of docpipe part way. Each good
/// file is ingested exactly once, whole, tagged by its folders, and moved
/// to `done/`; each refused one is in `failed/` with its reason beside it.
#[test]
fn a_watched_folder_takes_each_file_once_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(inbox.join("tax/2024")).unwrap();
    let config = format!(
        r#"{FAST_CONFIG}
[[watch]]
path = "{}"
tags_from_folders = true
settle_ms = 1500
scan_ms = 50
"#,
        inbox.display()
    );
    let mut s = Server::start(&tmp.path().join("data"), &config, &[]);
    let good_path = |i: usize| -> PathBuf {
        if i.is_multiple_of(3) {
            inbox.join(format!("tax/2024/letter-{i}.txt"))
        } else {
            inbox.join(format!("letter-{i}.txt"))
        }
    };
    let drop_good = |range: std::ops::Range<usize>| {
        for i in range {
            std::fs::write(good_path(i), content(i)).unwrap();
        }
    };
    let drop_broken = |range: std::ops::Range<usize>| {
        for i in range {
            let p = inbox.join(format!("broken-{i}.bin"));
            if i.is_multiple_of(2) {
                std::fs::write(p, b"").unwrap();
            } else {
                std::fs::write(p, [0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0]).unwrap();
            }
        }
    };
    // Slow writers: five pieces each, a pause between pieces much shorter
    // than settle_ms, even on a loaded machine (the pauses are the
    // behaviour under test, not a wait).
    let slow = std::thread::spawn({
        let inbox = inbox.clone();
        move || {
            for i in 150..170 {
                let text = content(i);
                let mut f = std::fs::File::create(inbox.join(format!("slow-{i}.txt"))).unwrap();
                for piece in text.as_bytes().chunks(text.len().div_ceil(5)) {
                    f.write_all(piece).unwrap();
                    f.flush().unwrap();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    });
    drop_good(0..80);
    drop_broken(0..15);
    let watch = |s: &Server| -> Value {
        let (_, st) = get_json(&s.url("/api/v1/status"));
        st["watch"][0].clone()
    };
    wait_until(Duration::from_secs(60), "some files taken", || {
        watch(&s)["ingested"].as_u64() >= Some(20)
    });
    s.stop();
    s.restart();
    drop_good(80..150);
    drop_broken(15..30);
    slow.join().unwrap();

    let done = inbox.join("done");
    let failed = inbox.join("failed");
    wait_until(Duration::from_secs(300), "every file moved", || {
        let left: Vec<PathBuf> = files_under(&inbox)
            .into_iter()
            .filter(|p| !p.starts_with(&done) && !p.starts_with(&failed))
            .collect();
        left.is_empty() && files_under(&done).len() == 170 && files_under(&failed).len() == 60
    });
    // Every good file once, whole.
    let ids = list_ids(&s, "limit=1000");
    assert_eq!(ids.len(), 170, "one document per good file");
    let mut by_name = BTreeMap::new();
    for id in &ids {
        let d = wait_terminal(&s, id, Duration::from_secs(60));
        assert_eq!(d["stage"], "indexed", "{d}");
        by_name.insert(d["filename"].as_str().unwrap().to_string(), d);
    }
    assert_eq!(by_name.len(), 170, "no two documents of one file");
    for i in 150..170 {
        let d = &by_name[&format!("slow-{i}.txt")];
        let (code, _, text) = common::reqwest::send(common::reqwest::async_client().get(s.url(
            &format!("/api/v1/documents/{}/text", d["id"].as_str().unwrap()),
        )));
        assert_eq!(code, 200);
        let text = String::from_utf8_lossy(&text).to_string();
        assert_eq!(
            text.trim(),
            content(i).trim(),
            "slow-{i}.txt was taken whole"
        );
    }
    // Folders as tags: the Paperless view names them.
    let tags = {
        let (_, v) = get_json(&s.url("/api/tags/?page_size=100"));
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["name"].as_str().unwrap().to_string(),
                    t["document_count"].as_u64().unwrap(),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    assert_eq!(tags.get("tax"), Some(&50), "{tags:?}");
    assert_eq!(tags.get("2024"), Some(&50), "{tags:?}");
    // Moved as they were laid out; refused ones with their reason.
    assert!(done.join("tax/2024/letter-3.txt").exists());
    assert!(done.join("letter-1.txt").exists());
    for i in 0..30usize {
        let note = failed.join(format!("broken-{i}.bin.error.txt"));
        let why =
            std::fs::read_to_string(&note).unwrap_or_else(|e| panic!("{}: {e}", note.display()));
        let expected = if i.is_multiple_of(2) {
            "is empty"
        } else {
            "does not read"
        };
        assert!(why.contains(expected), "{why}");
    }
    let w = watch(&s);
    assert_eq!(w["path"], inbox.display().to_string());
    assert!(w["failed"].as_u64() >= Some(15), "{w}");
}

/// With the periodic scan ten minutes away, a dropped file is still taken
/// within seconds: the file system's change events wake the folder's task.
#[test]
fn change_events_take_a_file_without_waiting_for_the_scan() {
    let tmp = tempfile::tempdir().unwrap();
    let inbox = tmp.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let config = format!(
        "{FAST_CONFIG}\n[[watch]]\npath = \"{}\"\nsettle_ms = 200\nscan_ms = 600000\n",
        inbox.display()
    );
    let s = Server::start(&tmp.path().join("data"), &config, &[]);
    std::fs::write(inbox.join("note.txt"), "A note dropped into the folder.\n").unwrap();
    wait_until(Duration::from_secs(30), "the file taken", || {
        get_json(&s.url("/api/v1/status")).1["watch"][0]["ingested"] == 1
    });
    assert!(inbox.join("done/note.txt").exists());
}
