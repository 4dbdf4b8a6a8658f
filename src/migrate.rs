//! `docpipe migrate-from-paperless`: every document of a running
//! Paperless-ngx, over its REST API, into this data directory.
//!
//! Labels first (tags, document types, correspondents as issuers, custom
//! fields as field names), then each document: its original streamed into
//! the blob store, registered with its title, date, tags, type,
//! correspondent, custom field values, notes and ASN, under its Paperless
//! number when that number is free. Each registration records where the
//! document came from in the same transaction, so an interrupted run
//! resumes where it stopped and never brings a document twice (and the
//! same bytes twice in a workspace are one document anyway). The documents
//! keep the type and fields they came with unless `--reclassify`.
//!
//! It runs the engine in-process on the configured data directory: stop
//! `docpipe serve` on that directory first (the index allows one writer).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use docpipe_actors::{
    sniff, valid_workspace, Kind, LabelKind, NewDocument, NewNote, Origin, Pipeline, Scope,
    Sniffed, Stage, UploadExtras, UserField, DEFAULT_WORKSPACE,
};
use futures::StreamExt;
use serde_json::Value;

use crate::config;
use crate::http::paperless_fields::user_value;
use crate::http::paperless_filters::instant;
use crate::offline;

#[derive(Clone, Debug, clap::Args)]
pub struct MigrateArgs {
    /// The Paperless-ngx server, e.g. https://paperless.example.com
    #[arg(long)]
    pub url: String,
    /// An API token of that server (Paperless: Profile → API token)
    #[arg(long, env = "PAPERLESS_TOKEN", hide_env_values = true)]
    pub token: String,
    /// The docpipe workspace the documents go to
    #[arg(long, default_value = DEFAULT_WORKSPACE)]
    pub workspace: String,
    /// Let docpipe type the documents and find their fields again, instead
    /// of keeping the type and fields they come with
    #[arg(long)]
    pub reclassify: bool,
    #[command(flatten)]
    pub flags: config::Flags,
}

/// The Paperless server's REST API.
struct Source {
    base: String,
    client: reqwest::Client,
}

const PAGE_SIZE: usize = 100;

impl Source {
    fn new(url: &str, token: &str) -> Result<Source, String> {
        let base = url.trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!("--url {url:?}: expected http://… or https://…"));
        }
        let mut headers = reqwest::header::HeaderMap::new();
        let mut auth = reqwest::header::HeaderValue::from_str(&format!("Token {}", token.trim()))
            .map_err(|_| "--token has characters a header cannot carry".to_string())?;
        auth.set_sensitive(true);
        headers.insert(reqwest::header::AUTHORIZATION, auth);
        headers.insert(
            reqwest::header::ACCEPT,
            reqwest::header::HeaderValue::from_static("application/json; version=9"),
        );
        let client = reqwest::Client::builder()
            .default_headers(headers)
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
        Ok(Source { base, client })
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, String> {
        let url = format!("{}{path}", self.base);
        let mut last = String::new();
        // A few tries: a busy Paperless answers 502/503 now and then.
        for attempt in 0..4u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            match self.client.get(&url).send().await {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) if r.status() == 401 || r.status() == 403 => {
                    return Err(format!(
                        "{url}: the Paperless server refused the token ({})",
                        r.status()
                    ))
                }
                Ok(r) if r.status().is_server_error() => last = format!("{url}: {}", r.status()),
                Ok(r) => return Err(format!("{url}: {}", r.status())),
                Err(e) => last = format!("cannot reach {url}: {e}"),
            }
        }
        Err(last)
    }

    async fn json(&self, path: &str) -> Result<Value, String> {
        let r = self.get(path).await?;
        r.json()
            .await
            .map_err(|e| format!("{}{path}: not JSON: {e}", self.base))
    }

    /// Every item of a paginated list, page by page.
    async fn all(&self, resource: &str) -> Result<Vec<Value>, String> {
        let mut out = Vec::new();
        for page in 1.. {
            let v = self
                .json(&format!(
                    "/api/{resource}/?page={page}&page_size={PAGE_SIZE}&ordering=id"
                ))
                .await?;
            let results = v["results"].as_array().cloned().unwrap_or_default();
            let count = v["count"].as_u64().unwrap_or(0) as usize;
            let done = results.is_empty() || out.len() + results.len() >= count;
            out.extend(results);
            if done {
                break;
            }
        }
        Ok(out)
    }
}

/// What became of the source's documents.
#[derive(Default)]
struct Summary {
    new: u64,
    renumbered: Vec<(i64, i64)>,
    earlier: u64,
    duplicates: Vec<(i64, i64)>,
    skipped: Vec<(i64, String)>,
    values_left_out: Vec<(i64, String)>,
    failed: Vec<(i64, String)>,
    labels: BTreeMap<&'static str, (usize, usize)>,
}

/// A Paperless custom field as docpipe keeps it: its field name, and the
/// kind its values are read as (None: a data type docpipe has no values
/// for).
struct FieldMap {
    name: String,
    kind: Option<Kind>,
    data_type: String,
}

/// A Paperless name as a docpipe field name: `Invoice Number` →
/// `invoice_number`.
fn field_name(name: &str) -> String {
    let mut s = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('_') {
            s.push('_');
        }
    }
    let s = s.trim_matches('_').to_string();
    if s.is_empty() {
        "field".into()
    } else {
        s
    }
}

fn id_of(v: &Value) -> Option<i64> {
    v.as_i64()
}

pub async fn migrate(a: MigrateArgs) -> Result<(), String> {
    if !valid_workspace(&a.workspace) {
        return Err(format!(
            "--workspace {:?}: 1 to 64 letters, digits, '-' or '_'",
            a.workspace
        ));
    }
    let (cfg, _) = config::load(&a.flags)?;
    let source = Source::new(&a.url, &a.token)?;
    let index = source.json("/api/").await?;
    if !index["documents"].is_string() {
        return Err(format!(
            "{}/api/ does not look like Paperless-ngx (no \"documents\" in {index})",
            source.base
        ));
    }
    let summary = offline::with_engine(&cfg, "stop it first", |pipeline| {
        let (a, source, cfg) = (&a, &source, &cfg);
        async move { run(a, source, &pipeline, cfg).await }
    })
    .await?;
    print_summary(&a, &source, &summary);
    Ok(())
}

async fn run(
    a: &MigrateArgs,
    source: &Source,
    pipeline: &Pipeline,
    cfg: &config::Config,
) -> Result<Summary, String> {
    let ws = a.workspace.as_str();
    let origin = Origin {
        token_id: None,
        request_id: Some(format!(
            "migrate-from-paperless-{}",
            uuid::Uuid::new_v4().simple()
        )),
    };
    let failed = |e: anyhow::Error| format!("{e:#}");
    let mut summary = Summary::default();

    // Labels.
    let mut label_ids: HashMap<(LabelKind, i64), (i64, String)> = HashMap::new();
    for (kind, resource) in [
        (LabelKind::Tag, "tags"),
        (LabelKind::DocType, "document_types"),
        (LabelKind::Issuer, "correspondents"),
    ] {
        let items = source.all(resource).await?;
        let mut made = 0;
        for item in &items {
            let (Some(id), Some(name)) = (id_of(&item["id"]), item["name"].as_str()) else {
                continue;
            };
            let color = item["color"]
                .as_str()
                .filter(|c| c.len() == 7 && c.starts_with('#'))
                .map(str::to_string);
            let (mine, new) = pipeline
                .create_label(kind, ws, name.trim(), color, &origin)
                .await
                .map_err(failed)?;
            made += usize::from(new);
            label_ids.insert((kind, id), (mine, name.trim().to_string()));
        }
        summary.labels.insert(resource, (items.len(), made));
    }
    let known: HashMap<String, Kind> = pipeline
        .reader()
        .field_names(&Scope::only([ws.to_string()]))
        .await
        .map_err(failed)?
        .into_iter()
        .map(|f| (f.name, f.kind))
        .collect();
    let mut fields: HashMap<i64, FieldMap> = HashMap::new();
    let custom = source.all("custom_fields").await?;
    let mut made = 0;
    for f in &custom {
        let (Some(id), Some(name), Some(data_type)) =
            (id_of(&f["id"]), f["name"].as_str(), f["data_type"].as_str())
        else {
            continue;
        };
        let mine = if known.contains_key(name) {
            name.to_string()
        } else {
            field_name(name)
        };
        let kind = known.get(&mine).copied().or(match data_type {
            "date" => Some(Kind::Date),
            "monetary" => Some(Kind::Money),
            "float" | "integer" => Some(Kind::Number),
            "url" => Some(Kind::Url),
            "string" | "longtext" => Some(Kind::Text),
            _ => None,
        });
        if let (Some(k), false) = (kind, known.contains_key(&mine)) {
            made += usize::from(
                pipeline
                    .create_field_name(&mine, k, &origin)
                    .await
                    .map_err(failed)?,
            );
        }
        fields.insert(
            id,
            FieldMap {
                name: mine,
                kind,
                data_type: data_type.to_string(),
            },
        );
    }
    summary.labels.insert("custom_fields", (custom.len(), made));

    // Documents.
    let source_key = format!("paperless:{}", source.base);
    let done: HashSet<i64> = pipeline
        .reader()
        .imported(&source_key)
        .await
        .map_err(failed)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let first = source
        .json("/api/documents/?page=1&page_size=1&ordering=id")
        .await?;
    let total = first["count"].as_u64().unwrap_or(0);
    let (bar, tty) = offline::progress(total, "{bar:40} {pos}/{len} {per_sec} {msg}");
    let ctx = Bringer {
        a,
        source,
        pipeline,
        cfg,
        source_key: &source_key,
        labels: &label_ids,
        fields: &fields,
        origin: &origin,
    };
    let mut brought: Vec<(i64, String)> = Vec::new();
    let mut seen = 0u64;
    for page in 1.. {
        let v = source
            .json(&format!(
                "/api/documents/?page={page}&page_size={PAGE_SIZE}&ordering=id&truncate_content=true"
            ))
            .await?;
        let docs = v["results"].as_array().cloned().unwrap_or_default();
        if docs.is_empty() {
            break;
        }
        for d in &docs {
            seen += 1;
            bar.inc(1);
            let Some(n) = id_of(&d["id"]) else { continue };
            if done.contains(&n) {
                summary.earlier += 1;
                continue;
            }
            let outcome = ctx.bring(d, n, &mut summary).await?;
            let line = match &outcome {
                Brought::New(number, id) => {
                    brought.push((n, id.clone()));
                    if *number == n {
                        format!("#{n}: brought")
                    } else {
                        format!("#{n}: brought as #{number} (#{n} is taken)")
                    }
                }
                Brought::Duplicate(of) => format!("#{n}: the same bytes as #{of}, not brought"),
                Brought::Skipped(why) => format!("#{n}: skipped: {why}"),
            };
            if tty {
                bar.set_message(line);
            } else {
                eprintln!("{line}");
            }
        }
        if seen >= v["count"].as_u64().unwrap_or(0) {
            break;
        }
    }
    bar.finish_and_clear();

    // The pipeline reads, indexes (and, with --reclassify, types) them.
    let scope = Scope::only([ws.to_string()]);
    offline::wait_for_pipeline(pipeline, &scope, tty).await?;
    for (n, id) in &brought {
        if let Some(d) = pipeline.reader().get(id, &scope).await.map_err(failed)? {
            if d.stage == Stage::Failed {
                let why = d.error.map(|e| e.message).unwrap_or_default();
                summary.failed.push((*n, why));
            }
        }
    }
    Ok(summary)
}

enum Brought {
    /// Registered under this number, with this id.
    New(i64, String),
    /// The workspace has these bytes already, as this number.
    Duplicate(i64),
    Skipped(String),
}

/// What bringing one document needs: the run's arguments, both ends, and
/// the labels and fields mapped already.
struct Bringer<'r> {
    a: &'r MigrateArgs,
    source: &'r Source,
    pipeline: &'r Pipeline,
    cfg: &'r config::Config,
    source_key: &'r str,
    /// (kind, Paperless id) → (docpipe id, name).
    labels: &'r HashMap<(LabelKind, i64), (i64, String)>,
    fields: &'r HashMap<i64, FieldMap>,
    origin: &'r Origin,
}

impl Bringer<'_> {
    /// Brings Paperless document `n` (its list entry `d`).
    async fn bring(&self, d: &Value, n: i64, summary: &mut Summary) -> Result<Brought, String> {
        let Bringer {
            a,
            source,
            pipeline,
            cfg,
            source_key,
            labels,
            fields,
            origin,
        } = self;
        let filename = d["original_file_name"]
            .as_str()
            .or(d["title"].as_str())
            .unwrap_or("document")
            .to_string();
        let mut x = UploadExtras {
            number: Some(n),
            keep_metadata: !a.reclassify,
            imported_from: Some((source_key.to_string(), n)),
            asn: d["archive_serial_number"].as_i64(),
            doc_date: d["created"]
                .as_str()
                .and_then(|c| c.get(..10))
                .map(str::to_string),
            ..Default::default()
        };
        for t in d["tags"].as_array().into_iter().flatten() {
            if let Some((mine, _)) = t.as_i64().and_then(|t| labels.get(&(LabelKind::Tag, t))) {
                x.tags.push(*mine);
            }
        }
        if !a.reclassify {
            x.doc_type = id_of(&d["document_type"])
                .and_then(|t| labels.get(&(LabelKind::DocType, t)))
                .map(|(_, name)| name.clone());
        }
        if let Some((_, name)) =
            id_of(&d["correspondent"]).and_then(|c| labels.get(&(LabelKind::Issuer, c)))
        {
            x.fields.push((
                "issuer".into(),
                UserField {
                    kind: Kind::Party,
                    value: name.clone(),
                    currency: None,
                },
            ));
        }
        for cf in d["custom_fields"].as_array().into_iter().flatten() {
            let Some(f) = id_of(&cf["field"]).and_then(|f| fields.get(&f)) else {
                continue;
            };
            let value = &cf["value"];
            match f.kind {
                None if !value.is_null() => summary.values_left_out.push((
                    n,
                    format!("{}: docpipe keeps no {} values", f.name, f.data_type),
                )),
                None => {}
                Some(kind) => match user_value(&f.name, kind, value) {
                    Ok(Some(v)) => x.fields.push((f.name.clone(), v)),
                    Ok(None) => {}
                    Err(p) => summary.values_left_out.push((n, p.detail)),
                },
            }
        }
        for note in d["notes"].as_array().into_iter().flatten() {
            let Some(text) = note["note"].as_str().filter(|t| !t.trim().is_empty()) else {
                continue;
            };
            let author = note["user"]["username"]
                .as_str()
                .map(str::to_string)
                .or_else(|| note["user"].as_i64().map(|u| format!("user {u}")))
                .unwrap_or_else(|| "paperless".into());
            x.notes.push(NewNote {
                note: text.to_string(),
                author,
                created_at: note["created"]
                    .as_str()
                    .and_then(|c| instant("created", c).ok()),
            });
        }

        // The original, streamed into the blob store.
        let resp = source
            .get(&format!("/api/documents/{n}/download/?original=true"))
            .await?;
        let (id, mut up) = pipeline.begin_upload();
        let mut body = resp.bytes_stream();
        let mut size = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(c) => c,
                Err(e) => {
                    up.abort().await;
                    return Err(format!(
                        "{}: the download of #{n} broke off: {e}",
                        source.base
                    ));
                }
            };
            size += chunk.len() as u64;
            if size > cfg.server.max_upload_bytes {
                up.abort().await;
                summary.skipped.push((
                    n,
                    format!(
                        "{filename:?} is larger than server.max_upload_bytes ({} bytes)",
                        cfg.server.max_upload_bytes
                    ),
                ));
                return Ok(Brought::Skipped("too large".into()));
            }
            if let Err(e) = up.write(&chunk).await {
                up.abort().await;
                return Err(format!("cannot store #{n}: {e:#}"));
            }
        }
        let staged = up
            .finish()
            .await
            .map_err(|e| format!("cannot store #{n}: {e:#}"))?;
        let mime = match sniff(&staged.head, &filename) {
            Sniffed::Supported(m) => m,
            Sniffed::Empty => {
                pipeline.discard_upload(&id).await;
                let why = format!("{filename:?} is empty");
                summary.skipped.push((n, why.clone()));
                return Ok(Brought::Skipped(why));
            }
            Sniffed::Unsupported(t) => {
                pipeline.discard_upload(&id).await;
                let why = format!("{filename:?} is {t}, which docpipe does not read");
                summary.skipped.push((n, why.clone()));
                return Ok(Brought::Skipped(why));
            }
        };
        let doc = NewDocument {
            id: id.clone(),
            workspace: a.workspace.clone(),
            filename,
            title: d["title"]
                .as_str()
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string),
            mime: mime.to_string(),
            size: staged.size,
            sha256: staged.sha256,
            inline: staged.inline,
            extra: x,
        };
        let registered = pipeline
            .register(vec![doc], origin)
            .await
            .map_err(|e| format!("cannot register #{n}: {e:#}"))?;
        let r = registered
            .into_iter()
            .next()
            .ok_or_else(|| format!("cannot register #{n}: no answer"))?;
        let scope = Scope::only([a.workspace.clone()]);
        let number_of = |d: Option<docpipe_actors::Document>| d.map_or(0, |d| d.seq);
        match r.duplicate_of {
            Some(first) => {
                let of = number_of(pipeline.reader().get(&first, &scope).await.unwrap_or(None));
                summary.duplicates.push((n, of));
                Ok(Brought::Duplicate(of))
            }
            None => {
                let number = number_of(pipeline.reader().get(&r.id, &scope).await.unwrap_or(None));
                summary.new += 1;
                if number != n {
                    summary.renumbered.push((n, number));
                }
                Ok(Brought::New(number, r.id))
            }
        }
    }
}

fn print_summary(a: &MigrateArgs, source: &Source, s: &Summary) {
    let brought = s.new + s.earlier;
    println!(
        "migrated from {} into workspace {:?}: {} new documents, {} brought by an earlier run",
        source.base, a.workspace, s.new, s.earlier
    );
    let labels: Vec<String> = s
        .labels
        .iter()
        .map(|(what, (seen, made))| format!("{seen} {what} ({made} new)"))
        .collect();
    println!("  labels: {}", labels.join(", "));
    if s.renumbered.is_empty() {
        println!("  numbers: all kept");
    } else {
        let list: Vec<String> = s
            .renumbered
            .iter()
            .map(|(from, to)| format!("#{from} → #{to}"))
            .collect();
        println!(
            "  numbers: {} kept, {} taken already and renumbered: {}",
            s.new as usize - s.renumbered.len(),
            s.renumbered.len(),
            list.join(", ")
        );
    }
    let show = |title: &str, items: &[(i64, String)]| {
        if !items.is_empty() {
            println!("  {title}: {}", items.len());
            for (n, why) in items {
                println!("    #{n}: {why}");
            }
        }
    };
    let dups: Vec<(i64, String)> = s
        .duplicates
        .iter()
        .map(|(n, of)| (*n, format!("the same bytes as document #{of}")))
        .collect();
    show("skipped as duplicates", &dups);
    show("skipped", &s.skipped);
    show("custom field values left out", &s.values_left_out);
    show(
        "failed in the pipeline (retry each with POST /api/v1/documents/{id}/retry)",
        &s.failed,
    );
    if a.reclassify {
        println!("  types and fields: found again by docpipe (--reclassify)");
    } else {
        println!("  types and fields: as they came ({brought} documents)");
    }
}
