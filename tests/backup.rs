//! `docpipe export` / `import`, `backup` / `restore` and `check` against the
//! real binary, on documents of the shared corpus.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// Files of a few kinds: e-mails with attachments, an invoice, Markdown
/// and HTML (typed by the shipped rules).
fn some_corpus_files(per_dir: usize) -> Vec<PathBuf> {
    corpus_files(
        &[
            "email-cpython",
            "invoice-facturx",
            "markdown-crates",
            "html-python-docs",
        ],
        per_dir,
    )
}

fn upload_path(s: &Server, p: &Path) -> String {
    upload_one(
        s,
        p.file_name().unwrap().to_str().unwrap(),
        std::fs::read(p).unwrap(),
    )
}

fn wait_idle(s: &Server) {
    wait_until(Duration::from_secs(180), "the pipeline to finish", || {
        let (_, st) = get_json(&s.url("/api/v1/status"));
        ["queued", "extracted", "classified", "enriched"]
            .iter()
            .all(|k| st["stages"][k]["documents"].as_u64() == Some(0))
    });
}

/// Every document as a user sees it, by number: its file and bytes (as
/// downloaded), title, type, fields (name, kind, value, currency), tag
/// names, notes, ASN, date, stage and the documents it is attached to.
fn snapshot(s: &Server) -> BTreeMap<i64, Value> {
    use sha2::{Digest, Sha256};
    let (_, tags) = get_json(&s.url("/api/tags/?page_size=1000"));
    let tag_names: BTreeMap<i64, String> = tags["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["id"].as_i64().unwrap(),
                t["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    let native: BTreeMap<String, Value> = list_ids(s, "limit=1000")
        .into_iter()
        .map(|id| {
            let d = doc(s, &id);
            (id, d)
        })
        .collect();
    let by_sha: BTreeMap<&str, &Value> = native
        .values()
        .map(|d| (d["sha256"].as_str().unwrap(), d))
        .collect();
    let (code, list) = get_json(&s.url("/api/documents/?page_size=1000&truncate_content=true"));
    assert_eq!(code, 200, "{list}");
    let results = list["results"].as_array().unwrap();
    assert_eq!(results.len(), native.len());
    let mut out = BTreeMap::new();
    for p in results {
        let n = p["id"].as_i64().unwrap();
        let (code, _, bytes) = reqwest::send(
            reqwest::async_client()
                .get(s.url(&format!("/api/documents/{n}/download/?original=true"))),
        );
        assert_eq!(code, 200, "download #{n}");
        let sha = hex::encode(Sha256::digest(&bytes));
        let d = by_sha[sha.as_str()];
        let mut fields: Vec<Value> = d["fields"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| json!([f["name"], f["kind"], f["value"], f["currency"]]))
            .collect();
        fields.sort_by_key(|f| f.to_string());
        let mut tags: Vec<String> = p["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| tag_names[&t.as_i64().unwrap()].clone())
            .collect();
        tags.sort();
        let notes: Vec<Value> = p["notes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| json!([x["note"], x["user"]["username"]]))
            .collect();
        let mut parents: Vec<String> = d["attached_to"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| {
                native[id.as_str().unwrap()]["sha256"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        parents.sort();
        out.insert(
            n,
            json!({
                "filename": d["filename"], "sha256": sha, "size": d["size"],
                "title": p["title"], "doc_type": d["doc_type"], "fields": fields,
                "tags": tags, "notes": notes, "asn": p["archive_serial_number"],
                "created": p["created"], "stage": d["stage"], "attached_to": parents,
            }),
        );
    }
    out
}

/// `docpipe COMMAND DIR` on a data directory.
fn offline(cmd: &str, arg: &Path, data: &Path, config: &Path) -> (i32, String, String) {
    on_data_dir(&[cmd, arg.to_str().unwrap()], data, config)
}

/// The ids of the documents in a backup's catalog copy (`filter`: a WHERE
/// clause, or nothing).
fn backup_ids(dest: &Path, filter: &str) -> Vec<String> {
    let conn = rusqlite::Connection::open(dest.join("catalog.sqlite")).unwrap();
    let mut st = conn
        .prepare(&format!("SELECT id FROM documents {filter}"))
        .unwrap();
    let ids = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    ids
}

/// An export of documents a user has typed, tagged, filled and annotated,
/// imported into a fresh data directory, gives the same documents: the
/// same numbers, bytes, titles, types, fields, tags, notes and attachment
/// links. Both commands resume: run again, they do nothing twice.
#[test]
fn export_then_import_gives_the_same_documents_types_fields_and_tags() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("one");
    let mut s = Server::start(&data, FAST_CONFIG, &[]);
    for p in some_corpus_files(5) {
        upload_path(&s, &p);
    }
    wait_idle(&s);
    // What a user does: a tag, a type, a field, a title, a note, an ASN.
    let (code, tag) = post_json(&s, "/api/tags/", json!({"name": "tax 2026"}));
    assert_eq!(code, 201, "{tag}");
    let (code, other) = post_json(&s, "/api/tags/", json!({"name": "keep"}));
    assert_eq!(code, 201, "{other}");
    let ids = list_ids(&s, "limit=1000");
    assert!(ids.len() > 20, "{} documents", ids.len());
    let first = &ids[0];
    let (code, v) = patch_json(
        &s,
        &format!("/api/v1/documents/{first}"),
        json!({"title": "Edited by hand", "doc_type": "letter",
               "tags": [tag["id"], other["id"]],
               "fields": {"total": {"value": "99.90", "currency": "EUR"}, "reference": "X-17"}}),
    );
    assert_eq!(code, 200, "{v}");
    let (code, v) = patch_json(
        &s,
        &format!("/api/v1/documents/{}", ids[3]),
        json!({"tags": [other["id"]], "doc_type": null}),
    );
    assert_eq!(code, 200, "{v}");
    let (_, p) = get_json(&s.url("/api/documents/?page_size=1000"));
    let number = p["results"][1]["id"].as_i64().unwrap();
    let (code, v) = post_json(
        &s,
        &format!("/api/documents/{number}/notes/"),
        json!({"note": "call them back"}),
    );
    assert_eq!(code, 200, "{v}");
    let (code, v) = patch_json(
        &s,
        &format!("/api/documents/{number}/"),
        json!({"archive_serial_number": 4711}),
    );
    assert_eq!(code, 200, "{v}");
    wait_idle(&s);
    let before = snapshot(&s);
    assert!(
        before
            .values()
            .any(|d| !d["attached_to"].as_array().unwrap().is_empty()),
        "the e-mails' attachments are linked"
    );
    s.stop();

    let dir = tmp.path().join("export");
    let (code, out, err) = offline("export", &dir, &data, &s.config_path);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!("exported {} documents", before.len())),
        "{out}"
    );
    let one: Value = serde_json::from_slice(
        &std::fs::read(dir.join("documents").join(format!("{number}.json"))).unwrap(),
    )
    .unwrap();
    assert!(one["text"].as_str().is_some_and(|t| !t.is_empty()), "{one}");
    assert!(dir.join(one["original"].as_str().unwrap()).is_file());
    let (code, out, _) = offline("export", &dir, &data, &s.config_path);
    assert_eq!(code, 0);
    assert!(
        out.contains("(0 written"),
        "a second run writes nothing again: {out}"
    );

    let fresh = tmp.path().join("two");
    let config = tmp.path().join("two.toml");
    std::fs::write(&config, FAST_CONFIG).unwrap();
    let (code, out, err) = offline("import", &dir, &fresh, &config);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("{} new", before.len())), "{out}");
    let (code, out, err) = offline("import", &dir, &fresh, &config);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(&format!(
            "0 new, {} brought by an earlier run",
            before.len()
        )),
        "{out}"
    );
    let (code, out, err) = cli(&[
        "check",
        "--data-dir",
        fresh.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");

    let s2 = Server::start(&fresh, FAST_CONFIG, &[]);
    let after = snapshot(&s2);
    for (n, d) in &before {
        assert_eq!(Some(d), after.get(n), "document #{n}");
    }
    assert_eq!(before.len(), after.len());

    // Not an export: one clear line, non-zero.
    let (code, out, err) = offline("import", tmp.path(), &fresh, &config);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("is not a docpipe export"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

/// A backup taken by the running server while documents keep arriving
/// restores into a new data directory where `docpipe check` finds nothing
/// wrong, every document of the backup is there and reaches its end, and
/// the documents the backup says are indexed are found by search at once.
/// Damage is then named by `check`, and `check --repair` mends what can be
/// mended.
#[test]
fn a_backup_taken_during_ingestion_restores_to_an_instance_check_finds_sound() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("live");
    let s = Server::start(&data, FAST_CONFIG, &[]);
    let files = some_corpus_files(12);
    let uploaded = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let feeder = {
        let (uploaded, stop) = (uploaded.clone(), stop.clone());
        let (base, files) = (s.base.clone(), files.clone());
        std::thread::spawn(move || {
            // The corpus files, then notes of their own until told to stop:
            // documents arrive before, during and after the backup.
            let corpus = files.into_iter().map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().to_string();
                (name, std::fs::read(&p).unwrap())
            });
            let notes = (0..).map(|i| {
                let text = format!("Meeting note {i}: the backup ran while this arrived.\n");
                (format!("note-{i}.txt"), text.into_bytes())
            });
            for (name, bytes) in corpus.chain(notes) {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let form = ::reqwest::multipart::Form::new().part(
                    "file",
                    ::reqwest::multipart::Part::bytes(bytes).file_name(name),
                );
                let (code, _, _) = reqwest::send(
                    reqwest::async_client()
                        .post(format!("{base}/api/v1/documents"))
                        .multipart(form),
                );
                assert_eq!(code, 202);
                uploaded.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    wait_until(Duration::from_secs(60), "a first part uploaded", || {
        uploaded.load(Ordering::Relaxed) >= 12
    });
    let dest = tmp.path().join("backup");
    let (code, out, err) = cli(&["backup", dest.to_str().unwrap(), "--server", &s.base]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("backed up"), "{out}");
    stop.store(true, Ordering::Relaxed);
    feeder.join().unwrap();
    // A second backup into the same place is refused, in one line.
    let (code, out, err) = cli(&["backup", dest.to_str().unwrap(), "--server", &s.base]);
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("not empty"), "{err}");

    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dest.join("manifest.json")).unwrap()).unwrap();
    let in_backup = manifest["documents"].as_u64().unwrap();
    assert!(in_backup >= 12, "{manifest}");

    let restored = tmp.path().join("restored");
    let config = tmp.path().join("restored.toml");
    std::fs::write(&config, FAST_CONFIG).unwrap();
    let (code, out, err) = offline("restore", &dest, &restored, &config);
    assert_eq!(code, 0, "{out}{err}");
    // Not into a data directory that has one.
    let (code, _, err) = offline("restore", &dest, &restored, &config);
    assert_ne!(code, 0);
    assert!(err.contains("holds a docpipe catalog already"), "{err}");
    let check = |extra: &[&str]| {
        let mut args = vec!["check"];
        args.extend_from_slice(extra);
        on_data_dir(&args, &restored, &config)
    };
    let (code, out, err) = check(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("agree"), "{out}");

    // What the backup says is indexed is found at once; the rest finishes.
    let indexed = backup_ids(&dest, "WHERE stage = 'indexed'");
    assert!(!indexed.is_empty());
    // (`check` found each of them in the restored index.)
    let mut r = Server::start(&restored, FAST_CONFIG, &[]);
    for id in &indexed {
        assert_eq!(doc(&r, id)["stage"], "indexed");
    }
    // Every document of the backup is there (and more: an e-mail that was
    // not read yet when the backup was taken brings its attachments now).
    let all = backup_ids(&dest, "");
    assert_eq!(all.len() as u64, in_backup);
    let ids = list_ids(&r, "limit=1000");
    for id in &all {
        assert!(ids.contains(id), "{id} of the backup is missing");
    }
    for id in &ids {
        let d = wait_terminal(&r, id, Duration::from_secs(120));
        assert_eq!(d["stage"], "indexed", "{d}");
    }
    r.stop();
    let (code, out, err) = check(&[]);
    assert_eq!(code, 0, "{out}{err}");

    // Damage: an original gone, one no document has, the index lost.
    let blobs = restored.join("blobs/docs");
    let mut originals: Vec<PathBuf> = Vec::new();
    for shard in std::fs::read_dir(&blobs).unwrap().flatten() {
        for f in std::fs::read_dir(shard.path()).unwrap().flatten() {
            originals.push(f.path());
        }
    }
    originals.sort();
    assert!(!originals.is_empty());
    let gone = originals[0].clone();
    let kept = std::fs::read(&gone).unwrap();
    std::fs::remove_file(&gone).unwrap();
    let stray = gone
        .parent()
        .unwrap()
        .join("0123456789abcdef0123456789abcdef");
    std::fs::write(&stray, b"no document has me").unwrap();
    std::fs::remove_dir_all(restored.join("index")).unwrap();
    let (code, out, err) = check(&[]);
    assert_ne!(code, 0, "{out}{err}");
    for kind in ["original_missing", "original_orphan", "not_in_index"] {
        assert!(out.contains(kind), "{kind}: {out}");
    }
    assert!(
        err.contains("problems found") && err.contains("--repair"),
        "{err}"
    );
    let (code, out, err) = check(&["--repair"]);
    assert_ne!(code, 0, "a missing original cannot be mended: {out}{err}");
    assert!(out.contains("(repaired)"), "{out}");
    assert!(!stray.exists());
    // With the original back, everything agrees again.
    std::fs::write(&gone, kept).unwrap();
    let (code, out, err) = check(&[]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("agree"), "{out}");
    let r = Server::start(&restored, FAST_CONFIG, &[]);
    for id in &indexed {
        assert_eq!(doc(&r, id)["stage"], "indexed");
    }
    let (_, st) = get_json(&r.url("/api/v1/status"));
    assert_eq!(
        st["stages"]["indexed"]["documents"].as_u64(),
        Some(ids.len() as u64),
        "{st}"
    );
    drop(s);
}
