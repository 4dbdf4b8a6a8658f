//! What the end-to-end benchmarks share: the real binary, started on a free
//! loopback port with the benchmarks' admin token and no rate limit.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const TOKEN: &str = "bench-admin-token-0123456789";

/// A running `docpipe serve` and a client that sends the admin token. The
/// process is killed on drop if it is still running.
pub struct Served {
    pub child: Child,
    pub base: String,
    pub client: reqwest::Client,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `docpipe serve --listen 127.0.0.1:0`, with the further arguments
/// and environment `configure` adds, and waits for the line that gives its
/// address.
pub fn serve(configure: impl FnOnce(&mut Command)) -> Served {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_docpipe"));
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .env("DOCPIPE_ADMIN_TOKEN", TOKEN)
        // The benchmarks measure the pipeline, not the abuse limits.
        .env("DOCPIPE_RATE_LIMIT__PER_TOKEN_PER_SECOND", "0")
        .stdout(Stdio::piped());
    configure(&mut cmd);
    let mut child = cmd.spawn().expect("start docpipe");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let base = line
        .trim()
        .strip_prefix("docpipe listening on ")
        .expect("listening line")
        .to_string();
    let mut auth = reqwest::header::HeaderMap::new();
    auth.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {TOKEN}").parse().unwrap(),
    );
    let client = reqwest::Client::builder()
        .default_headers(auth)
        .build()
        .unwrap();
    Served {
        child,
        base,
        client,
    }
}

/// `GET /api/v1/status` of a served binary.
#[allow(dead_code)] // each bench compiles this module; not all ask for the status
pub async fn status(client: reqwest::Client, base: String) -> serde_json::Value {
    client
        .get(format!("{base}/api/v1/status"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()
}

/// A `/proc/PID/status` field of `pid` alone, in KiB (0 if it is not there).
#[allow(dead_code)] // each bench compiles this module; not all read /proc
pub fn own_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}
