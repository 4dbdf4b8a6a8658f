//! The real binary, driven over HTTP: free port (the server prints the port
//! it bound), temp data dir, generated config, `/readyz` before use, SIGTERM
//! on drop.

#![allow(dead_code)]

pub mod fake_ollama;
pub mod invoices;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_docpipe");

/// The admin token every test server accepts (`DOCPIPE_ADMIN_TOKEN`); the
/// harness's client sends it unless a request sets its own.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// Test settings: quick commits and retries, real fsync and SQLite FULL.
pub const FAST_CONFIG: &str = r#"
[index]
commit_interval_ms = 50
[pipeline.retry]
max_attempts = 2
initial_backoff_ms = 50
max_backoff_ms = 200
"#;

pub struct Server {
    child: Option<Child>,
    pub base: String,
    /// What the server printed as its first admin token, if it made one.
    pub first_token: Option<String>,
    pub data_dir: PathBuf,
    pub config_path: PathBuf,
    env: Vec<(String, String)>,
}

impl Server {
    /// Starts docpipe on a fresh port with `config` (TOML) and extra env vars.
    pub fn start(data_dir: &Path, config: &str, env: &[(&str, &str)]) -> Server {
        let mut env = env.to_vec();
        env.push(("DOCPIPE_ADMIN_TOKEN", ADMIN_TOKEN));
        // Tests drive the server as fast as they can with one token; the
        // per-token limit is off unless a test sets it.
        if !env
            .iter()
            .any(|(k, _)| k.starts_with("DOCPIPE_RATE_LIMIT__PER_TOKEN"))
        {
            env.push(("DOCPIPE_RATE_LIMIT__PER_TOKEN_PER_SECOND", "0"));
        }
        Self::start_plain(data_dir, config, &env)
    }

    /// Like [`Server::start`], without the test admin token: the server makes
    /// its own on first start.
    pub fn start_plain(data_dir: &Path, config: &str, env: &[(&str, &str)]) -> Server {
        let config_path = data_dir.with_extension("toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut s = Server {
            child: None,
            base: String::new(),
            first_token: None,
            data_dir: data_dir.to_path_buf(),
            config_path,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        s.boot();
        s
    }

    fn boot(&mut self) {
        let mut cmd = Command::new(BIN);
        cmd.arg("serve")
            .arg("--config")
            .arg(&self.config_path)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .env(
                "RUST_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start docpipe");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = BufReader::new(stdout);
        let base = loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("read docpipe's output");
            assert!(n > 0, "docpipe exited before it listened");
            if let Some(b) = line.trim().strip_prefix("docpipe listening on ") {
                break b.to_string();
            }
            if let Some((_, t)) = line.trim().rsplit_once(": ") {
                if line.starts_with("created the first admin token") {
                    self.first_token = Some(t.to_string());
                    continue;
                }
            }
            panic!("unexpected line from docpipe: {line:?}");
        };
        self.base = base;
        self.child = Some(child);
        wait_until(Duration::from_secs(30), "server ready", || {
            reqwest::blocking_get(&format!("{}/readyz", self.base))
                .is_some_and(|(code, _)| code == 200)
        });
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("server running").id() as i32
    }

    /// SIGKILL: no chance to flush anything. (Also reaps a process that a
    /// test already killed through its pid.)
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            c.wait().expect("wait");
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("server running");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .expect("sigterm");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = c.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "docpipe did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the binary again on the same data dir (a new port).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop or kill it first");
        self.boot();
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop();
        }
    }
}

/// Polls `cond` until it holds; fails the test with `what` at the deadline.
/// (Observing state through the API, not sleeping in place of a sync point.)
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A tiny blocking HTTP client for the harness and the tests, on reqwest's
/// async client inside a private runtime (tests stay plain #[test] fns).
pub mod reqwest {
    use std::sync::OnceLock;

    pub use ::reqwest::*;
    use serde_json::Value;

    fn rt() -> &'static tokio::runtime::Runtime {
        static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
        RT.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
        })
    }

    fn client() -> &'static Client {
        static C: OnceLock<Client> = OnceLock::new();
        C.get_or_init(|| {
            let mut h = header::HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                format!("Bearer {}", super::ADMIN_TOKEN).parse().unwrap(),
            );
            Client::builder()
                .pool_max_idle_per_host(32)
                .default_headers(h)
                .build()
                .unwrap()
        })
    }

    /// A client that sends no token unless a request adds one.
    pub fn anon_client() -> Client {
        static C: OnceLock<Client> = OnceLock::new();
        C.get_or_init(|| Client::builder().build().unwrap()).clone()
    }

    pub fn run<F: std::future::Future>(f: F) -> F::Output {
        rt().block_on(f)
    }

    /// Runs a task on the harness's runtime (a subscriber's reader).
    #[allow(dead_code)] // not every test binary reads streams
    pub fn spawn<F>(f: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        rt().spawn(f)
    }

    pub fn async_client() -> Client {
        client().clone()
    }

    /// GET; None if the server did not answer at all.
    pub fn blocking_get(url: &str) -> Option<(u16, Value)> {
        run(async {
            let r = client().get(url).send().await.ok()?;
            let code = r.status().as_u16();
            let text = r.text().await.ok()?;
            Some((
                code,
                serde_json::from_str(&text).unwrap_or(Value::String(text)),
            ))
        })
    }

    pub fn send(req: RequestBuilder) -> (u16, HeaderMapLite, Vec<u8>) {
        run(async {
            let r = req.send().await.expect("request");
            let code = r.status().as_u16();
            let headers = HeaderMapLite(
                r.headers()
                    .iter()
                    .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
                    .collect(),
            );
            (code, headers, r.bytes().await.expect("body").to_vec())
        })
    }

    pub struct HeaderMapLite(pub Vec<(String, String)>);

    impl HeaderMapLite {
        pub fn get(&self, name: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }
    }
}

pub fn get_json(url: &str) -> (u16, Value) {
    reqwest::blocking_get(url).unwrap_or_else(|| panic!("no answer from {url}"))
}

/// Uploads files in one multipart request; returns (status, body).
pub fn upload(s: &Server, files: &[(&str, Vec<u8>)], title: Option<&str>) -> (u16, Value) {
    let mut form = ::reqwest::multipart::Form::new();
    for (name, bytes) in files {
        form = form.part(
            "file",
            ::reqwest::multipart::Part::bytes(bytes.clone()).file_name(name.to_string()),
        );
    }
    if let Some(t) = title {
        form = form.text("title", t.to_string());
    }
    let (code, headers, body) = reqwest::send(
        reqwest::async_client()
            .post(s.url("/api/v1/documents"))
            .multipart(form),
    );
    if code >= 400 {
        assert_eq!(
            headers.get("content-type"),
            Some("application/problem+json"),
            "errors are problem+json"
        );
    }
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// Uploads one file and returns its document id (asserting 202).
/// Posts a multipart upload form; asserts `202` and returns the first
/// document's id.
#[allow(dead_code)] // not every test binary builds its own forms
pub fn upload_form(s: &Server, form: ::reqwest::multipart::Form) -> String {
    let (code, _, body) = reqwest::send(
        reqwest::async_client()
            .post(s.url("/api/v1/documents"))
            .multipart(form),
    );
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    assert_eq!(code, 202, "{v}");
    v["documents"][0]["id"].as_str().unwrap().to_string()
}

/// `GET /api/v1/search` with these parameters; asserts `200`.
#[allow(dead_code)] // not every test binary searches
pub fn search_ok(s: &Server, params: &[(&str, &str)]) -> Value {
    let url = ::reqwest::Url::parse_with_params(&s.url("/api/v1/search"), params).unwrap();
    let (code, v) = get_json(url.as_str());
    assert_eq!(code, 200, "{params:?}: {v}");
    v
}

/// The ids of a search answer's hits, in order.
#[allow(dead_code)] // not every test binary searches
pub fn hit_ids(v: &Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .collect()
}

/// Uploads a text file into a workspace; its id.
pub fn upload_to(s: &Server, workspace: &str, name: &str, text: &str) -> String {
    let form = ::reqwest::multipart::Form::new()
        .text("workspace", workspace.to_string())
        .part(
            "file",
            ::reqwest::multipart::Part::bytes(text.as_bytes().to_vec()).file_name(name.to_string()),
        );
    upload_form(s, form)
}

pub fn upload_one(s: &Server, name: &str, bytes: Vec<u8>) -> String {
    let (code, v) = upload(s, &[(name, bytes)], None);
    assert_eq!(code, 202, "upload of {name} answered {code}: {v}");
    v["documents"][0]["id"].as_str().expect("id").to_string()
}

pub fn doc(s: &Server, id: &str) -> Value {
    let (code, v) = get_json(&s.url(&format!("/api/v1/documents/{id}")));
    assert_eq!(code, 200, "GET document {id}: {v}");
    v
}

/// Waits until a document leaves the active stages; returns it.
pub fn wait_terminal(s: &Server, id: &str, timeout: Duration) -> Value {
    let mut last = Value::Null;
    wait_until(timeout, &format!("document {id} to finish"), || {
        last = doc(s, id);
        matches!(last["stage"].as_str(), Some("indexed" | "failed"))
    });
    last
}

pub fn search(s: &Server, q: &str) -> Value {
    let url =
        ::reqwest::Url::parse_with_params(&s.url("/api/v1/search"), &[("q", q), ("limit", "100")])
            .unwrap();
    let (code, v) = get_json(url.as_str());
    assert_eq!(code, 200, "search {q:?}: {v}");
    v
}

/// The built-in embedder's table `make deps` made (`EMBED_TABLE`).
pub fn embed_table() -> String {
    let t = std::env::var("EMBED_TABLE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.deps/embed/all-MiniLM-L6-v2.dpemb"
        )
        .into()
    });
    assert!(
        std::path::Path::new(&t).exists(),
        "the built-in embedder's table is missing at {t}: run `make deps` (make test does it)"
    );
    t
}

pub fn corpus_dir() -> PathBuf {
    let root = std::env::var("CORPUS_ROOT").unwrap_or_else(|_| "/tmp/docpipe-corpus".into());
    let dir = PathBuf::from(root).join("docs");
    assert!(
        dir.join("MANIFEST.tsv").exists(),
        "the shared corpus is missing at {}: run `make corpus` (make test does it)",
        dir.display()
    );
    dir
}

/// The first `per_dir` files (by name) of each of these corpus folders.
#[allow(dead_code)] // not every test binary takes corpus files
pub fn corpus_files(dirs: &[&str], per_dir: usize) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in dirs {
        let mut files: Vec<_> = std::fs::read_dir(corpus_dir().join(dir))
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        out.extend(files.into_iter().take(per_dir));
    }
    out
}

pub fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    )
    .expect("fixture")
}

/// Every document id the list endpoint gives for `query`, following cursors.
pub fn list_ids(s: &Server, query: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut url = s.url(&format!("/api/v1/documents?{query}"));
    loop {
        let (code, v) = get_json(&url);
        assert_eq!(code, 200, "{v}");
        ids.extend(
            v["documents"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["id"].as_str().unwrap().to_string()),
        );
        match v["next_cursor"].as_str() {
            Some(c) => url = s.url(&format!("/api/v1/documents?{query}&cursor={c}")),
            None => return ids,
        }
    }
}

/// An oracle independent of docpipe's parser: does any XML part of the
/// container hold a text run (`<w:t>`, `<a:t>`, ODF paragraphs, or cells)?
pub fn office_has_text(bytes: &[u8]) -> bool {
    let Ok(mut zip) = zip::ZipArchive::new(std::io::Cursor::new(bytes)) else {
        return false;
    };
    let re_ooxml = |x: &str| {
        x.split("<w:t").chain(x.split("<a:t")).skip(1).any(|rest| {
            rest.split_once('>').is_some_and(|(attrs, after)| {
                (attrs.is_empty() || attrs.starts_with(' '))
                    && after
                        .split('<')
                        .next()
                        .is_some_and(|t| !t.trim().is_empty())
            })
        })
    };
    let re_odf = |x: &str| {
        x.split("<text:p")
            .chain(x.split("<text:h"))
            .skip(1)
            .any(|rest| {
                rest.split_once('>').is_some_and(|(_, after)| {
                    after
                        .split('<')
                        .next()
                        .is_some_and(|t| !t.trim().is_empty())
                })
            })
    };
    for i in 0..zip.len() {
        let Ok(mut f) = zip.by_index(i) else { continue };
        let Ok(name) = f.name().map(|n| n.to_string()) else {
            continue;
        };
        let wanted = name == "content.xml"
            || name.starts_with("word/document")
            || name.starts_with("ppt/slides/slide")
            || name.starts_with("xl/sharedStrings")
            || name.starts_with("xl/worksheets/");
        if !wanted {
            continue;
        }
        let mut x = String::new();
        if f.read_to_string(&mut x).is_err() {
            continue;
        }
        if re_ooxml(&x) || re_odf(&x) || (name.starts_with("xl/") && x.contains("<v>")) {
            return true;
        }
    }
    false
}

/// An oracle for PDFs: does poppler's `pdftotext` find any text?
pub fn pdf_has_text(path: &Path) -> bool {
    Command::new("pdftotext")
        .args(["-q", "-l", "50"])
        .arg(path)
        .arg("-")
        .output()
        .is_ok_and(|o| o.stdout.iter().any(|b| b.is_ascii_alphanumeric()))
}

/// The peak resident memory of a process (VmHWM), in MiB.
pub fn vm_hwm_mib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .unwrap()
        / 1024
}

/// PATCH with a JSON body; returns (status, body).
/// Runs the docpipe CLI with the admin token: (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(BIN)
        .args(args)
        .env("DOCPIPE_TOKEN", ADMIN_TOKEN)
        .output()
        .expect("run docpipe");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

pub fn patch_json(s: &Server, path: &str, body: Value) -> (u16, Value) {
    let (code, _, bytes) = reqwest::send(reqwest::async_client().patch(s.url(path)).json(&body));
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

pub fn post_json(s: &Server, path: &str, body: Value) -> (u16, Value) {
    let (code, _, bytes) = reqwest::send(reqwest::async_client().post(s.url(path)).json(&body));
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// `docpipe ARGS… --data-dir DATA --config CONFIG`.
#[allow(dead_code)] // not every test binary runs commands on a data directory
pub fn on_data_dir(args: &[&str], data: &Path, config: &Path) -> (i32, String, String) {
    let mut all = args.to_vec();
    all.extend([
        "--data-dir",
        data.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ]);
    cli(&all)
}

/// A document's events as the live stream names their stages (`queued`
/// for uploaded or attached, and so on), from its own event list.
pub fn stream_stages_of(s: &Server, id: &str) -> Vec<(i64, String)> {
    let (code, v) = get_json(&s.url(&format!("/api/v1/documents/{id}/events")));
    assert_eq!(code, 200, "{v}");
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            let stage = match e["kind"].as_str()? {
                "uploaded" | "attached" => "queued",
                "reprocess_requested" => "reprocessed",
                k @ ("extracted" | "classified" | "enriched" | "indexed" | "failed"
                | "attempt_failed" | "retried" | "edited" | "deleted") => k,
                _ => return None,
            };
            Some((e["seq"].as_i64()?, stage.to_string()))
        })
        .collect()
}
