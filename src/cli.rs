//! Client commands: talk to a running server over its HTTP API.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde_json::Value;

#[derive(Clone, Debug, clap::Args)]
pub struct ServerArgs {
    /// The server's base URL
    #[arg(long, env = "DOCPIPE_URL", default_value = "http://127.0.0.1:8750")]
    pub server: String,
}

#[derive(Clone, Debug, clap::Args)]
pub struct IngestArgs {
    /// Files or directories (walked recursively)
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Uploads at once
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    #[command(flatten)]
    pub server: ServerArgs,
}

#[derive(Clone, Debug, clap::Args)]
pub struct SearchArgs {
    pub query: String,
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    #[command(flatten)]
    pub server: ServerArgs,
}

fn files_under(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = paths.to_vec();
    while let Some(p) = stack.pop() {
        let meta =
            std::fs::metadata(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
        if meta.is_dir() {
            let entries =
                std::fs::read_dir(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))?;
            for e in entries.flatten() {
                stack.push(e.path());
            }
        } else if meta.is_file() {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

async fn upload_one(client: &reqwest::Client, base: &str, path: &Path) -> Result<Value, String> {
    let file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let len = file
        .metadata()
        .await
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
    let part = reqwest::multipart::Part::stream_with_length(body, len).file_name(name);
    let form = reqwest::multipart::Form::new().part("file", part);
    let resp = client
        .post(format!("{base}/api/v1/documents"))
        .multipart(form)
        .send()
        .await
        .map_err(|e| format!("{}: cannot reach {base}: {e}", path.display()))?;
    let status = resp.status();
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(v["documents"][0].clone())
    } else {
        Err(format!(
            "{}: {} ({})",
            path.display(),
            v["detail"].as_str().unwrap_or("rejected"),
            v["code"].as_str().unwrap_or("")
        ))
    }
}

pub async fn ingest(a: IngestArgs) -> Result<(), String> {
    let files = files_under(&a.paths)?;
    let base = a.server.server.trim_end_matches('/').to_string();
    let client = reqwest::Client::new();
    let bar = indicatif::ProgressBar::new(files.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {per_sec} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let (mut new, mut dup, mut failed) = (0u64, 0u64, Vec::new());
    let mut results = futures::stream::iter(files.iter())
        .map(|p| {
            let client = &client;
            let base = &base;
            async move { upload_one(client, base, p).await }
        })
        .buffer_unordered(a.concurrency.max(1));
    while let Some(r) = results.next().await {
        bar.inc(1);
        match r {
            Ok(d) if d["duplicate_of"].is_string() => dup += 1,
            Ok(_) => new += 1,
            Err(e) => {
                // (bar.println prints nothing when stderr is not a terminal.)
                bar.suspend(|| eprintln!("rejected: {e}"));
                failed.push(e);
            }
        }
    }
    bar.finish_and_clear();
    println!(
        "{new} accepted, {dup} duplicates, {} rejected",
        failed.len()
    );
    if failed.is_empty() {
        Ok(())
    } else {
        Err(match failed.len() {
            1 => "1 file was rejected".to_string(),
            n => format!("{n} files were rejected"),
        })
    }
}

async fn get_json(url: &str) -> Result<Value, String> {
    let resp = reqwest::get(url)
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status();
    let v: Value = resp
        .json()
        .await
        .map_err(|e| format!("bad answer from {url}: {e}"))?;
    if status.is_success() {
        Ok(v)
    } else {
        Err(v["detail"].as_str().unwrap_or("request failed").to_string())
    }
}

pub async fn search(a: SearchArgs) -> Result<(), String> {
    let base = a.server.server.trim_end_matches('/');
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/api/v1/search"),
        &[("q", a.query.as_str()), ("limit", &a.limit.to_string())],
    )
    .map_err(|e| format!("bad server URL: {e}"))?;
    let v = get_json(url.as_str()).await?;
    println!("{} documents match", v["total"]);
    for h in v["hits"].as_array().into_iter().flatten() {
        println!(
            "{}  {:.2}  {}  [{}]",
            h["id"].as_str().unwrap_or(""),
            h["score"].as_f64().unwrap_or(0.0),
            h["title"].as_str().unwrap_or(""),
            h["doc_type"].as_str().unwrap_or("-")
        );
    }
    Ok(())
}

pub async fn status(a: ServerArgs) -> Result<(), String> {
    let base = a.server.trim_end_matches('/');
    let v = get_json(&format!("{base}/api/v1/status")).await?;
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>8}",
        "stage", "documents", "in flight", "processed", "failed"
    );
    if let Some(stages) = v["stages"].as_object() {
        for (name, s) in stages {
            println!(
                "{:<12} {:>10} {:>10} {:>10} {:>8}",
                name, s["documents"], s["in_flight"], s["processed"], s["failed"]
            );
        }
    }
    Ok(())
}
