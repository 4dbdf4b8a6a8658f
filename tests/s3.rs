//! Originals in an S3-compatible bucket: the real binary against a real S3
//! server on loopback (moto from PyPI, started by `../shared/scripts`).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::reqwest::{async_client, run, send};
use common::*;
use futures::StreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};

const MOTO: &str = "http://127.0.0.1:9000";

/// moto on :9000 (started once per machine; the script is idempotent, but
/// two tests must not run it at once).
fn moto() {
    static UP: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    UP.get_or_init(start_moto);
}

fn start_moto() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/scripts/start-s3-moto.sh");
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(corpus_root())
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    assert!(
        out.status.success(),
        "start-s3-moto.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new empty bucket (moto takes an unsigned request).
fn bucket(name: &str) {
    let (code, _, body) = send(common::reqwest::anon_client().put(format!("{MOTO}/{name}")));
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
}

/// The keys under `prefix` in the bucket.
fn keys(name: &str, prefix: &str) -> Vec<String> {
    let (code, _, body) = send(
        common::reqwest::anon_client().get(format!("{MOTO}/{name}?list-type=2&prefix={prefix}")),
    );
    assert_eq!(code, 200);
    let xml = String::from_utf8_lossy(&body).to_string();
    xml.split("<Key>")
        .skip(1)
        .filter_map(|k| k.split("</Key>").next())
        .map(str::to_string)
        .collect()
}

fn s3_config(name: &str, extra: &str) -> String {
    format!(
        r#"{FAST_CONFIG}
[blobs]
inline_max_bytes = 0
[storage]
backend = "s3"
[storage.s3]
endpoint = "{MOTO}"
bucket = "{name}"
prefix = "docpipe"
access_key_id = "test"
secret_access_key = "test"
{extra}"#
    )
}

/// Upload, process, download, delete, with every original in the bucket
/// under its prefix; and a 300 MB upload streamed through, its bytes
/// never held whole by the server.
#[test]
fn originals_live_in_s3_streamed_in_and_out() {
    moto();
    let name = format!("docpipe-{}", std::process::id());
    bucket(&name);
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &format!(
            "{}\n[server]\nmax_upload_bytes = 400000000\n",
            // (The 300 MB document is kept, not read: reading holds an
            // original whole, and this test measures the upload.)
            s3_config(&name, "[pipeline.extract]\nmax_read_mb = 64\n")
        ),
        &[],
    );
    let (_, ready) = get_json(&s.url("/readyz"));
    assert_eq!(ready["status"], "ready", "{ready}");

    let pdf = fixture("quokka.pdf");
    let id = upload_one(&s, "quokka.pdf", pdf.clone());
    assert_eq!(
        wait_terminal(&s, &id, Duration::from_secs(60))["stage"],
        "indexed"
    );
    let stored = keys(&name, "docpipe/docs/");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].ends_with(&id), "{stored:?}");
    assert!(keys(&name, "docpipe/incoming/").is_empty());
    let (code, _, bytes) =
        send(async_client().get(s.url(&format!("/api/v1/documents/{id}/content"))));
    assert_eq!((code, bytes == pdf), (200, true));

    // 300 MB, generated as it is sent: the server streams it to S3 in parts.
    let total: u64 = 300 * 1024 * 1024;
    let line = b"The quokka census goes on, line after line, for three hundred megabytes.\n";
    let chunk: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
    let mut sent_hash = Sha256::new();
    for _ in 0..(total >> 20) {
        sent_hash.update(&chunk);
    }
    let sent_hash = hex::encode(sent_hash.finalize());
    let before = vm_hwm_mib(s.pid());
    let body = {
        let chunk = bytes::Bytes::from(chunk);
        futures::stream::iter(0..(total >> 20)).map(move |_| Ok::<_, std::io::Error>(chunk.clone()))
    };
    let part =
        ::reqwest::multipart::Part::stream_with_length(::reqwest::Body::wrap_stream(body), total)
            .file_name("census.txt");
    let (code, _, body) = send(
        async_client()
            .post(s.url("/api/v1/documents"))
            .multipart(::reqwest::multipart::Form::new().part("file", part)),
    );
    assert_eq!(code, 202, "{}", String::from_utf8_lossy(&body));
    let v: Value = serde_json::from_slice(&body).unwrap();
    let big = v["documents"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(v["documents"][0]["sha256"], sent_hash.as_str());
    let grew = vm_hwm_mib(s.pid()).saturating_sub(before);
    eprintln!("a 300 MB upload streamed to S3: the server's peak RSS grew by {grew} MiB");
    assert!(
        grew < 64,
        "the server's peak RSS grew by {grew} MiB for a 300 MB upload"
    );
    let done = wait_terminal(&s, &big, Duration::from_secs(180));
    assert_eq!(
        (done["stage"].as_str(), done["error"]["code"].as_str()),
        (Some("failed"), Some("too_large")),
        "{done}"
    );
    // Streamed back out: the same bytes.
    let got = run(async {
        let r = async_client()
            .get(s.url(&format!("/api/v1/documents/{big}/content")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let mut h = Sha256::new();
        let mut stream = r.bytes_stream();
        while let Some(c) = stream.next().await {
            h.update(c.unwrap());
        }
        hex::encode(h.finalize())
    });
    assert_eq!(got, sent_hash);

    // Deleting removes the original from the bucket.
    for doc in [&id, &big] {
        let (code, _, _) = send(async_client().delete(s.url(&format!("/api/v1/documents/{doc}"))));
        assert!(code == 200 || code == 204, "delete answered {code}");
    }
    assert!(
        keys(&name, "docpipe/docs/").is_empty(),
        "{:?}",
        keys(&name, "docpipe/docs/")
    );
    let (code, _) = get_json(&s.url(&format!("/api/v1/documents/{id}")));
    assert_eq!(code, 404);
}

/// What `docpipe serve` says on stderr when it does not start with `config`.
fn serve_fails(config: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("config.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_docpipe"))
        .arg("serve")
        .arg("--config")
        .arg(&path)
        .arg("--data-dir")
        .arg(tmp.path().join("data"))
        .args(["--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(!out.status.success(), "it started");
    String::from_utf8_lossy(&out.stderr).to_string()
}

/// A bucket that does not exist is named at start, and the server does not
/// start.
#[test]
fn a_missing_bucket_is_named_at_start() {
    moto();
    let err = serve_fails(&s3_config("no-such-bucket-here", ""));
    assert!(
        err.contains("blob store") && err.contains("no-such-bucket-here"),
        "{err}"
    );
}

const S3S: &str = "http://127.0.0.1:8014";

/// Where the shared scripts keep their servers' data; also the servers'
/// working directory (s3s-fs resolves paths against it, so it must outlive
/// this checkout).
fn corpus_root() -> PathBuf {
    let root = PathBuf::from(
        std::env::var("CORPUS_ROOT").unwrap_or_else(|_| "/tmp/docpipe-corpus".into()),
    );
    std::fs::create_dir_all(&root).unwrap();
    root
}

fn script(name: &str, args: &[&str]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/scripts")
        .join(name);
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .current_dir(corpus_root())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{name} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// s3s-fs (files on disk, checks SigV4 signatures) is one server for the
/// machine, stopped and started by one of these tests: they take turns.
fn s3s_fs() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    static FRESH: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let turn = TURN.lock().unwrap_or_else(|p| p.into_inner());
    // One that an earlier run left running may have lost its working
    // directory: these tests start their own.
    FRESH.get_or_init(|| script("stop-servers.sh", &["s3s-fs"]));
    script("start-s3s-fs.sh", &[]);
    turn
}

/// A bucket of s3s-fs: a directory of its data.
fn s3s_bucket(name: &str) {
    std::fs::create_dir_all(corpus_root().join("data/s3s-fs").join(name)).unwrap();
}

fn s3s_config(bucket: &str, secret: &str, extra: &str) -> String {
    format!(
        r#"{FAST_CONFIG}
[blobs]
inline_max_bytes = 1024
[storage]
backend = "s3"
[storage.s3]
endpoint = "{S3S}"
bucket = "{bucket}"
access_key_id = "testkey"
secret_access_key = "{secret}"
{extra}"#
    )
}

/// s3s-fs checks signatures: a wrong secret stops the server at start with
/// a line that says so.
#[test]
fn a_wrong_secret_is_refused_at_start_with_a_clear_error() {
    let _turn = s3s_fs();
    let name = format!("wrong-{}", std::process::id());
    s3s_bucket(&name);
    let err = serve_fails(&s3s_config(&name, "not-the-secret", "retries = 0"));
    assert!(
        err.contains("blob store") && err.contains(&name) && err.contains("SignatureDoesNotMatch"),
        "{err}"
    );
}

/// The S3 server stops in the middle of an ingest and starts again: while
/// it is away, uploads that need it answer 503 with Retry-After (never a
/// 500), small ones (kept in SQLite) are still taken, the breaker shows in
/// the status, and every acknowledged document ends `indexed`.
#[test]
fn an_s3_outage_holds_documents_and_refuses_uploads_until_it_ends() {
    let _turn = s3s_fs();
    let name = format!("outage-{}", std::process::id());
    s3s_bucket(&name);
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &s3s_config(
            &name,
            "testsecret",
            "retries = 1\ntimeout_ms = 2000\nconnect_timeout_ms = 500\nfailure_threshold = 2\nopen_ms = 300",
        ),
        &[],
    );
    let text =
        |i: usize, n: usize| -> Vec<u8> { format!("Outage letter {i}. ").repeat(n).into_bytes() };
    let mut acknowledged = Vec::new();
    for i in 0..20 {
        acknowledged.push(upload_one(&s, &format!("before-{i}.txt"), text(i, 400)));
    }
    script("stop-servers.sh", &["s3s-fs"]);
    let mut refused = 0;
    for i in 0..4 {
        let (code, headers, body) = send(
            async_client().post(s.url("/api/v1/documents")).multipart(
                ::reqwest::multipart::Form::new().part(
                    "file",
                    ::reqwest::multipart::Part::bytes(text(100 + i, 400))
                        .file_name(format!("during-{i}.txt")),
                ),
            ),
        );
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        assert_eq!(
            (code, v["code"].as_str()),
            (503, Some("storage_unavailable")),
            "{v}"
        );
        assert!(
            headers.get("retry-after").is_some(),
            "503 without Retry-After"
        );
        refused += 1;
    }
    // A small document does not need the store.
    acknowledged.push(upload_one(&s, "small.txt", b"a small note".to_vec()));
    let (_, status) = get_json(&s.url("/api/v1/status"));
    let storage = &status["storage"];
    assert_eq!(storage["backend"], "s3", "{storage}");
    assert_ne!(storage["breaker"], "closed", "{storage}");
    assert!(storage["failures"].as_u64() >= Some(2), "{storage}");
    script("start-s3s-fs.sh", &[]);
    for id in &acknowledged {
        let d = wait_terminal(&s, id, Duration::from_secs(120));
        assert_eq!(d["stage"], "indexed", "{d}");
    }
    assert_eq!(refused, 4);
    // And uploads are taken again: at once, or after the Retry-After of a
    // 503 while the breaker's probe finds its feet (the first request to
    // a restarted store may meet a stale connection).
    let mut id = None;
    wait_until(
        Duration::from_secs(30),
        "an upload taken after the outage",
        || {
            let (code, v) = upload(&s, &[("after.txt", text(999, 400))], None);
            if code == 202 {
                id = v["documents"][0]["id"].as_str().map(str::to_string);
                return true;
            }
            assert_eq!(
                (code, v["code"].as_str()),
                (503, Some("storage_unavailable")),
                "{v}"
            );
            false
        },
    );
    let id = id.unwrap();
    assert_eq!(
        wait_terminal(&s, &id, Duration::from_secs(60))["stage"],
        "indexed"
    );
    let (_, status) = get_json(&s.url("/api/v1/status"));
    assert_eq!(status["storage"]["breaker"], "closed");
}

/// `docpipe migrate-storage` moves a populated instance's originals from
/// local disk to S3 (killed part way and run again) and back, every hash
/// checked, the configuration switched only once all are there.
#[test]
fn migrate_storage_moves_originals_to_s3_and_back_resuming_after_a_kill() {
    use std::io::BufRead;
    moto();
    let name = format!("moved-{}", std::process::id());
    bucket(&name);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let local = format!(
        r#"{FAST_CONFIG}
[blobs]
inline_max_bytes = 1024
[storage]
backend = "local"
[storage.s3]
endpoint = "{MOTO}"
access_key_id = "test"
secret_access_key = "test"
"#
    );
    let mut s = Server::start(&data, &local, &[]);
    let mut originals = Vec::new();
    for i in 0..30 {
        let bytes = format!("Original number {i}, moved between stores. ")
            .repeat(100)
            .into_bytes();
        originals.push((upload_one(&s, &format!("o{i}.txt"), bytes.clone()), bytes));
    }
    originals.push((
        upload_one(&s, "small.txt", b"kept in SQLite".to_vec()),
        b"kept in SQLite".to_vec(),
    ));
    for (id, _) in &originals {
        assert_eq!(
            wait_terminal(&s, id, Duration::from_secs(60))["stage"],
            "indexed"
        );
    }
    s.stop();
    let config = data.with_extension("toml");
    let backend = || -> String {
        let t: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
        t["storage"]["backend"].as_str().unwrap().to_string()
    };
    let migrate = |to: &str| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_docpipe"));
        c.args(["migrate-storage", "--to", to])
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data);
        c
    };
    let to = format!("s3://{name}/moved");
    // Killed after ten originals are copied and checked.
    let mut child = migrate(&to)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut copied = 0;
    for line in std::io::BufReader::new(child.stderr.take().unwrap()).lines() {
        if line.unwrap().ends_with(": copied, checked") {
            copied += 1;
            if copied == 10 {
                break;
            }
        }
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(copied, 10);
    assert_eq!(
        backend(),
        "local",
        "not switched before every original is there"
    );
    let out = migrate(&to).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let number = |after: &str| -> u64 {
        let (before, _) = stdout
            .split_once(after)
            .unwrap_or_else(|| panic!("{stdout}"));
        before.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let (now, already) = (number(" copied"), number(" there already"));
    assert_eq!(now + already, 30, "{stdout}");
    assert!(already >= 10, "{stdout}");
    assert_eq!(backend(), "s3");
    assert_eq!(keys(&name, "moved/docs/").len(), 30);

    let check = |s: &Server| {
        for (id, bytes) in &originals {
            let (code, _, got) =
                send(async_client().get(s.url(&format!("/api/v1/documents/{id}/content"))));
            assert_eq!((code, &got), (200, bytes), "{id}");
        }
    };
    let on_s3 = std::fs::read_to_string(&config).unwrap();
    let mut s = Server::start(&data, &on_s3, &[]);
    check(&s);
    s.stop();

    // And back, with the local copies gone.
    std::fs::remove_dir_all(data.join("blobs/docs")).unwrap();
    let out = migrate("local").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("30 copied, 0 there already"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(backend(), "local");
    let s = Server::start(&data, &std::fs::read_to_string(&config).unwrap(), &[]);
    check(&s);
}
