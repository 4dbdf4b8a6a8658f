//! Client commands: talk to a running server over its HTTP API.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use serde_json::Value;

#[derive(Clone, Debug, clap::Args)]
pub struct ServerArgs {
    /// The server's base URL
    #[arg(long, env = "DOCPIPE_URL", default_value = "http://127.0.0.1:8750")]
    pub server: String,
    /// API token (default: the contents of ./data/admin-token, which the
    /// server writes on its first start)
    #[arg(long, env = "DOCPIPE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

impl ServerArgs {
    pub(crate) fn base(&self) -> String {
        self.server.trim_end_matches('/').to_string()
    }

    /// An HTTP client that sends the token with every request.
    pub(crate) fn client(&self) -> Result<reqwest::Client, String> {
        let token = match &self.token {
            Some(t) => t.trim().to_string(),
            None => std::fs::read_to_string("data/admin-token")
                .map(|t| t.trim().to_string())
                .map_err(|_| {
                    "no token: give --token or DOCPIPE_TOKEN (the first admin token is in <data_dir>/admin-token)"
                        .to_string()
                })?,
        };
        let mut headers = reqwest::header::HeaderMap::new();
        let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|_| "the token has characters a header cannot carry".to_string())?;
        value.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, value);
        reqwest::Client::builder()
            .default_headers(headers)
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))
    }
}

#[derive(Clone, Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Create a token; its secret is printed once
    Create {
        /// A name to recognise it by
        #[arg(long)]
        name: String,
        /// admin, editor or reader
        #[arg(long, default_value = "reader")]
        role: String,
        /// A workspace it may act in (repeat for several; admins: all)
        #[arg(long = "workspace")]
        workspaces: Vec<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// List tokens (ids, names, roles, prefixes; never secrets)
    List {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Revoke a token by id; it stops working at once
    Revoke {
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

#[derive(Clone, Debug, clap::Args)]
pub struct IngestArgs {
    /// Files or directories (walked recursively)
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// Uploads at once
    #[arg(long, default_value_t = 4)]
    pub concurrency: usize,
    /// The workspace to upload into (default: the token's)
    #[arg(long)]
    pub workspace: Option<String>,
    /// Only files whose path matches one of these globs (`*.pdf`, `**/2024/**`)
    #[arg(long)]
    pub include: Vec<String>,
    /// Not the files whose path matches one of these globs
    #[arg(long)]
    pub exclude: Vec<String>,
    /// Ingest straight into this data directory, without a server (none
    /// may run on it)
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The configuration for --data-dir (default: ./config.toml if present)
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
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

#[derive(Clone, Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["needs_ocr", "llm", "needs_review"])))]
pub struct ReprocessArgs {
    /// The documents whose scanned pages wait for OCR (flagged needs_ocr),
    /// once tesseract and pdftoppm are installed on the server
    #[arg(long)]
    pub needs_ocr: bool,
    /// The documents typed and enriched while no Ollama endpoint answered
    /// (flagged needs_llm): asked again
    #[arg(long, visible_alias = "needs-llm")]
    pub llm: bool,
    /// The documents whose type the classifier was unsure of (flagged
    /// needs_review): typed again by the model in force, after corrections
    #[arg(long)]
    pub needs_review: bool,
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

/// Uploads one file; a busy or rate-limited server is waited for, as its
/// `Retry-After` says, up to a few times.
async fn upload_one(
    client: &reqwest::Client,
    base: &str,
    path: &Path,
    workspace: Option<&str>,
) -> Result<Value, String> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match upload_once(client, base, path, workspace).await? {
            Ok(v) => return Ok(v),
            Err(wait) if attempt < 6 => tokio::time::sleep(wait).await,
            Err(_) => return Err(format!("{}: the server stayed busy", path.display())),
        }
    }
}

async fn upload_once(
    client: &reqwest::Client,
    base: &str,
    path: &Path,
    workspace: Option<&str>,
) -> Result<Result<Value, std::time::Duration>, String> {
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
    let mut form = reqwest::multipart::Form::new();
    if let Some(w) = workspace {
        form = form.text("workspace", w.to_string());
    }
    let form = form.part("file", part);
    let resp = client
        .post(format!("{base}/api/v1/documents"))
        .multipart(form)
        .send()
        .await
        .map_err(|e| format!("{}: cannot reach {base}: {e}", path.display()))?;
    let status = resp.status();
    if status.as_u16() == 429 || status.as_u16() == 503 {
        let secs = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(1);
        return Ok(Err(std::time::Duration::from_secs(secs.clamp(1, 60))));
    }
    let v: Value = resp.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        Ok(Ok(v["documents"][0].clone()))
    } else {
        Err(format!(
            "{}: {} ({})",
            path.display(),
            v["detail"].as_str().unwrap_or("rejected"),
            v["code"].as_str().unwrap_or("")
        ))
    }
}

/// The files under the paths that the globs let through.
fn chosen_files(a: &IngestArgs) -> Result<Vec<PathBuf>, String> {
    let set = |globs: &[String], flag: &str| -> Result<Option<globset::GlobSet>, String> {
        if globs.is_empty() {
            return Ok(None);
        }
        let mut b = globset::GlobSetBuilder::new();
        for g in globs {
            b.add(
                globset::GlobBuilder::new(g)
                    .literal_separator(false)
                    .build()
                    .map_err(|e| format!("--{flag} {g:?}: {e}"))?,
            );
        }
        b.build().map(Some).map_err(|e| format!("--{flag}: {e}"))
    };
    let (include, exclude) = (set(&a.include, "include")?, set(&a.exclude, "exclude")?);
    Ok(files_under(&a.paths)?
        .into_iter()
        .filter(|p| include.as_ref().is_none_or(|s| s.is_match(p)))
        .filter(|p| exclude.as_ref().is_none_or(|s| !s.is_match(p)))
        .collect())
}

pub async fn ingest(a: IngestArgs) -> Result<(), String> {
    if a.data_dir.is_some() {
        let flags = crate::config::Flags {
            config: a.config.clone(),
            data_dir: a.data_dir.clone(),
            listen: None,
        };
        return crate::local_ingest::ingest(&flags, a.workspace.clone(), chosen_files(&a)?).await;
    }
    let files = chosen_files(&a)?;
    let base = a.server.base();
    let client = a.server.client()?;
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
            let ws = a.workspace.as_deref();
            async move { upload_one(client, base, p, ws).await }
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

async fn get_json(client: &reqwest::Client, url: &str) -> Result<Value, String> {
    answer(client.get(url), url).await
}

/// Sends a request; the JSON answer, or the server's problem detail.
pub(crate) async fn answer(req: reqwest::RequestBuilder, url: &str) -> Result<Value, String> {
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot reach {url}: {e}"))?;
    let status = resp.status();
    if status == reqwest::StatusCode::NO_CONTENT {
        return Ok(Value::Null);
    }
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
    let base = a.server.base();
    let client = a.server.client()?;
    let url = reqwest::Url::parse_with_params(
        &format!("{base}/api/v1/search"),
        &[("q", a.query.as_str()), ("limit", &a.limit.to_string())],
    )
    .map_err(|e| format!("bad server URL: {e}"))?;
    let v = get_json(&client, url.as_str()).await?;
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
    let base = a.base();
    let v = get_json(&a.client()?, &format!("{base}/api/v1/status")).await?;
    // (A JSON value prints without padding: each cell is a string first.)
    let cell = |v: &Value| v.as_u64().map_or_else(|| v.to_string(), |n| n.to_string());
    println!(
        "{:<12} {:>10} {:>10} {:>10} {:>8}",
        "stage", "documents", "in flight", "processed", "failed"
    );
    if let Some(stages) = v["stages"].as_object() {
        for (name, s) in stages {
            println!(
                "{:<12} {:>10} {:>10} {:>10} {:>8}",
                name,
                cell(&s["documents"]),
                cell(&s["in_flight"]),
                cell(&s["processed"]),
                cell(&s["failed"])
            );
        }
    }
    let st = &v["storage"];
    if let Some(location) = st["location"].as_str() {
        match st["breaker"].as_str() {
            Some(b) => println!("storage: {location} (breaker {b})"),
            None => println!("storage: {location}"),
        }
    }
    for w in v["watch"].as_array().into_iter().flatten() {
        println!(
            "watching {}: {} taken, {} refused{}",
            w["path"].as_str().unwrap_or(""),
            cell(&w["ingested"]),
            cell(&w["failed"]),
            w["last_error"]
                .as_str()
                .map(|e| format!(" (last: {e})"))
                .unwrap_or_default()
        );
    }
    let ocr = &v["ocr"];
    if ocr["available"] == Value::Bool(true) {
        println!(
            "OCR: tesseract {} ({}), {} workers",
            ocr["tesseract"].as_str().unwrap_or("?"),
            ocr["languages"]
                .as_array()
                .map(|l| l
                    .iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("+"))
                .unwrap_or_default(),
            ocr["workers"]
        );
    } else {
        println!(
            "OCR: not available ({})",
            ocr["reason"].as_str().unwrap_or("unknown")
        );
    }
    if v["needs_ocr"].as_u64().unwrap_or(0) > 0 {
        println!(
            "{} documents wait for OCR: docpipe reprocess --needs-ocr",
            v["needs_ocr"]
        );
    }
    let llm = &v["llm"];
    if llm["configured"] == true {
        let endpoints: Vec<String> = llm["endpoints"]
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|e| {
                        format!(
                            "{} ({})",
                            e["url"].as_str().unwrap_or(""),
                            e["breaker"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "LLM: {} at {}",
            llm["model"].as_str().unwrap_or(""),
            endpoints.join(", ")
        );
    }
    if v["needs_llm"].as_u64().unwrap_or(0) > 0 {
        println!(
            "{} documents wait for the LLM: docpipe reprocess --llm",
            v["needs_llm"]
        );
    }
    if v["needs_review"].as_u64().unwrap_or(0) > 0 {
        println!(
            "{} documents have a type the classifier was unsure of (GET /api/v1/documents?flag=needs_review); \
             after correcting some: docpipe reprocess --needs-review",
            v["needs_review"]
        );
    }
    Ok(())
}

pub async fn reprocess(a: ReprocessArgs) -> Result<(), String> {
    let url = format!("{}/api/v1/reprocess", a.server.base());
    let client = a.server.client()?;
    let (flag, what) = if a.llm {
        ("needs_llm", "to the LLM again")
    } else if a.needs_review {
        ("needs_review", "to be typed again")
    } else {
        ("needs_ocr", "to be read again")
    };
    let v = answer(
        client.post(&url).json(&serde_json::json!({ flag: true })),
        &url,
    )
    .await?;
    println!("{} documents sent {what}", v["requeued"]);
    Ok(())
}

pub async fn token(cmd: TokenCommand) -> Result<(), String> {
    match cmd {
        TokenCommand::Create {
            name,
            role,
            workspaces,
            server,
        } => {
            let url = format!("{}/api/v1/tokens", server.base());
            let body = serde_json::json!({"name": name, "role": role, "workspaces": workspaces});
            let v = answer(server.client()?.post(&url).json(&body), &url).await?;
            println!("id:     {}", v["id"].as_str().unwrap_or(""));
            println!("role:   {}", v["role"].as_str().unwrap_or(""));
            println!("token:  {}", v["token"].as_str().unwrap_or(""));
            eprintln!("(the token is shown this once; keep it safe)");
        }
        TokenCommand::List { server } => {
            let url = format!("{}/api/v1/tokens", server.base());
            let v = get_json(&server.client()?, &url).await?;
            println!(
                "{:<26} {:<16} {:<7} {:<12} {:<24} workspaces",
                "id", "name", "role", "prefix", "revoked"
            );
            for t in v["tokens"].as_array().into_iter().flatten() {
                let ws: Vec<&str> = t["workspaces"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|w| w.as_str())
                    .collect();
                println!(
                    "{:<26} {:<16} {:<7} {:<12} {:<24} {}",
                    t["id"].as_str().unwrap_or(""),
                    t["name"].as_str().unwrap_or(""),
                    t["role"].as_str().unwrap_or(""),
                    t["prefix"].as_str().unwrap_or(""),
                    t["revoked_at"].as_str().unwrap_or("-"),
                    if ws.is_empty() {
                        "(all)".to_string()
                    } else {
                        ws.join(",")
                    }
                );
            }
        }
        TokenCommand::Revoke { id, server } => {
            let url = format!("{}/api/v1/tokens/{id}", server.base());
            answer(server.client()?.delete(&url), &url).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}
