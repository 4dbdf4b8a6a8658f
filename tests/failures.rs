//! A bad document never hurts the process: parsers that panic, hang, abort or
//! run out of memory, and malformed files, each fail only their document, with
//! a code, after the configured retries; the server keeps serving; `retry`
//! runs the document again.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;

const WAIT: Duration = Duration::from_secs(120);

fn faulty_pdf(kind: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% DOCPIPE-FAULT:{kind}\n1 0 obj << >> endobj\n%%EOF\n").into_bytes()
}

#[test]
fn misbehaving_parsers_fail_only_their_document() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = format!(
        "{FAST_CONFIG}\n[pipeline]\nlease_ms = 4000\n[pipeline.extract]\ntimeout_ms = 1000\nmax_memory_mb = 512\n[pipeline.ocr]\ntimeout_ms = 2000\n"
    );
    // The parser misbehaves on the documents that say how (test builds only).
    let s = Server::start(
        &tmp.path().join("data"),
        &cfg,
        &[(
            "FAILPOINTS",
            "parser=return;extract-worker=return(worker.pdf)",
        )],
    );

    let mut truncated = fixture("quokka.pdf");
    truncated.truncate(300);
    let cases = [
        ("panic.pdf", faulty_pdf("panic"), "parser_panic", 2),
        ("hang.pdf", faulty_pdf("hang"), "timeout", 2),
        ("abort.pdf", faulty_pdf("abort"), "crashed", 2),
        ("oom.pdf", faulty_pdf("oom"), "crashed", 2),
        // The extract worker itself dies holding the job: the factory replaces
        // the worker, the lease notices the job is gone.
        ("worker.pdf", faulty_pdf("worker-panic"), "lost", 2),
        // Deterministic: parked at the first attempt, not retried.
        ("truncated.pdf", truncated, "malformed", 1),
    ];
    let mut ids = Vec::new();
    for (name, bytes, code, attempts) in &cases {
        ids.push((upload_one(&s, name, bytes.clone()), *name, *code, *attempts));
    }
    let good = upload_one(
        &s,
        "good.txt",
        b"a perfectly normal document about a numbat".to_vec(),
    );

    for (id, name, code, attempts) in &ids {
        let d = wait_terminal(&s, id, WAIT);
        assert_eq!(d["stage"], "failed", "{name}: {d}");
        assert_eq!(d["error"]["code"], *code, "{name}: {d}");
        assert!(
            !d["error"]["message"].as_str().unwrap().is_empty(),
            "{name} has a message"
        );
        assert_eq!(d["attempts"], *attempts, "{name}: {d}");
    }
    assert_eq!(
        wait_terminal(&s, &good, WAIT)["stage"],
        "indexed",
        "the good document is unaffected"
    );
    assert_eq!(
        get_json(&s.url("/healthz")).0,
        200,
        "the process keeps serving"
    );
    assert_eq!(search(&s, "numbat")["total"], 1);
    let (_, st) = get_json(&s.url("/api/v1/status"));
    assert_eq!(st["stages"]["failed"]["documents"], 6, "{st}");
    assert_eq!(st["parked"], 6, "{st}");
    assert!(st["leases_expired"].as_u64().unwrap() >= 2, "{st}");

    // Retry re-runs a failed document from the stage it failed in.
    let (hang_id, ..) = &ids[1];
    let (code, _, _) = common::reqwest::send(
        common::reqwest::async_client().post(s.url(&format!("/api/v1/documents/{hang_id}/retry"))),
    );
    assert_eq!(code, 202);
    wait_until(WAIT, "the retried document to fail again", || {
        let (_, ev) = get_json(&s.url(&format!("/api/v1/documents/{hang_id}/events")));
        let kinds: Vec<String> = ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_string())
            .collect();
        let retried = kinds.iter().position(|k| k == "retried");
        retried.is_some_and(|r| kinds[r..].iter().any(|k| k == "failed"))
    });
    let d = doc(&s, hang_id);
    assert_eq!(
        (d["stage"].as_str(), d["error"]["code"].as_str()),
        (Some("failed"), Some("timeout"))
    );
    // Retrying a document that has not failed is refused.
    let (code, _, body) = common::reqwest::send(
        common::reqwest::async_client().post(s.url(&format!("/api/v1/documents/{good}/retry"))),
    );
    assert_eq!(code, 409, "{}", String::from_utf8_lossy(&body));
}

/// The one SQLite writer dies mid-batch, holding uploads and stage results.
/// The uploads in that batch are refused (never acknowledged); the supervisor
/// restarts the Catalog and counts it; every document that was in flight is
/// admitted again; all acknowledged documents end indexed.
#[test]
fn a_crashed_catalog_is_restarted_and_nothing_acknowledged_is_lost() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        FAST_CONFIG,
        &[(
            "FAILPOINTS",
            "catalog-register=return(panic:DOCPIPE-FAULT-catalog.txt)",
        )],
    );
    let names = names_with_fault(80, "d", 40, "DOCPIPE-FAULT-catalog.txt");
    let results = upload_many(&s, &names, "restartcorpus");
    let fault = results.iter().find(|(n, ..)| n.contains("FAULT")).unwrap();
    assert_eq!(
        (fault.1, fault.2["code"].as_str()),
        (503, Some("unavailable")),
        "the upload in the crashed batch is refused, retryable: {fault:?}"
    );
    // Uploads that shared its batch were refused too; a client sends them again.
    let mut acked = Vec::new();
    for (name, code, v) in &results {
        if name.contains("FAULT") {
            continue;
        }
        if *code == 202 {
            acked.push(v["documents"][0]["id"].as_str().unwrap().to_string());
        } else {
            assert_eq!(
                (*code, v["code"].as_str()),
                (503, Some("unavailable")),
                "{name}: {v}"
            );
            acked.push(upload_one(
                &s,
                name,
                format!("restartcorpus {name} lorem ipsum").into_bytes(),
            ));
        }
    }
    assert_eq!(acked.len(), 79);
    for id in &acked {
        assert_eq!(wait_terminal(&s, id, WAIT)["stage"], "indexed");
    }
    assert_eq!(search(&s, "restartcorpus")["total"], 79);
    let (_, st) = get_json(&s.url("/api/v1/status"));
    let catalog = st["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "catalog")
        .unwrap()
        .clone();
    assert_eq!(catalog["restarts"], 1, "{st}");
    assert_eq!(
        list_ids(&s, "limit=1000").len(),
        79,
        "the refused upload left no document"
    );
}

#[test]
fn a_failing_catalog_operation_fails_alone() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        FAST_CONFIG,
        &[(
            "FAILPOINTS",
            "catalog-register=return(error:DOCPIPE-FAULT-catalog-error.txt)",
        )],
    );
    let names = names_with_fault(40, "e", 20, "DOCPIPE-FAULT-catalog-error.txt");
    let results = upload_many(&s, &names, "savepointcorpus");
    for (name, code, _) in &results {
        let want = if name.contains("FAULT") { 503 } else { 202 };
        assert_eq!(
            *code, want,
            "{name}: its batch neighbours are not refused with it"
        );
    }
    wait_until(WAIT, "the 39 to be indexed", || {
        search(&s, "savepointcorpus")["total"] == 39
    });
    let (_, st) = get_json(&s.url("/api/v1/status"));
    let catalog = st["actors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "catalog")
        .unwrap()
        .clone();
    assert_eq!(catalog["restarts"], 0, "no restart: {st}");
    assert_eq!(list_ids(&s, "limit=1000").len(), 39);
}

/// Uploads one small text document per name, 8 at a time; each name's body is
/// `"{word} {name} lorem ipsum"`. Returns (name, status, body) per upload.
fn upload_many(s: &Server, names: &[String], word: &str) -> Vec<(String, u16, serde_json::Value)> {
    let client = common::reqwest::async_client();
    let upload = |name: String| {
        let client = client.clone();
        let url = s.url("/api/v1/documents");
        let body = format!("{word} {name} lorem ipsum");
        async move {
            let part = ::reqwest::multipart::Part::text(body).file_name(name.clone());
            let r = client
                .post(url)
                .multipart(::reqwest::multipart::Form::new().part("file", part))
                .send()
                .await
                .unwrap();
            let code = r.status().as_u16();
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            (name, code, v)
        }
    };
    common::reqwest::run(
        futures::stream::iter(names.to_vec())
            .map(upload)
            .buffer_unordered(8)
            .collect(),
    )
}

/// `count` names `{prefix}{i}.txt`, with `fault` at position `at`.
fn names_with_fault(count: usize, prefix: &str, at: usize, fault: &str) -> Vec<String> {
    (0..count)
        .map(|i| {
            if i == at {
                fault.to_string()
            } else {
                format!("{prefix}{i}.txt")
            }
        })
        .collect()
}
