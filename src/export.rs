//! `docpipe export DIR` and `docpipe import DIR`.
//!
//! An export is a directory anyone can read without docpipe:
//!
//! ```text
//! DIR/manifest.json            {"format": "docpipe-export", "version": 1, "id", "exported_at", "documents"}
//! DIR/documents/<number>.json  metadata, type, fields, tags, notes, text, where the original is
//! DIR/originals/<number>-<filename>
//! ```
//!
//! An export run again into the same directory writes only the documents
//! it lacks. `import` brings such a directory into a data directory: every
//! document with its number (when free), title, type, fields, tags, notes,
//! date and ASN, kept as they were (not typed or filled again); an e-mail
//! and its attachments are registered together, so the attachments keep
//! their own metadata and their link. Each registration records the export
//! and number it came from, so an interrupted import resumes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use docpipe_actors::{
    clean_filename, sniff, FieldValue, Kind, LabelKind, NewDocument, NewNote, Origin, Pipeline,
    Scope, Sniffed, Stage, UploadExtras, UserField,
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::config;
use crate::offline;

pub const EXPORT_FORMAT: &str = "docpipe-export";

#[derive(Clone, Debug, clap::Args)]
pub struct ExportArgs {
    /// The directory to write (made if missing; an earlier export there is
    /// completed, not repeated)
    pub dir: PathBuf,
    #[command(flatten)]
    pub flags: config::Flags,
}

#[derive(Clone, Debug, clap::Args)]
pub struct ImportArgs {
    /// A directory `docpipe export` wrote
    pub dir: PathBuf,
    #[command(flatten)]
    pub flags: config::Flags,
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: String,
    version: u32,
    /// Names this export: an import records it with each number.
    id: String,
    exported_at: String,
    documents: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct NoteOut {
    note: String,
    author: String,
    created_at: String,
}

/// One document of an export.
#[derive(Debug, Serialize, Deserialize)]
struct Exported {
    number: i64,
    id: String,
    workspace: String,
    filename: String,
    title: Option<String>,
    mime: String,
    size: u64,
    sha256: String,
    /// The original, relative to the export directory.
    original: String,
    added: String,
    doc_date: Option<String>,
    asn: Option<i64>,
    doc_type: Option<String>,
    type_source: Option<String>,
    tags: Vec<String>,
    fields: Vec<FieldValue>,
    notes: Vec<NoteOut>,
    /// The number of the document (an e-mail) this one was attached to.
    attachment_of: Option<i64>,
    language: Option<String>,
    pages: Option<u32>,
    stage: Stage,
    text: Option<String>,
}

fn failed(e: anyhow::Error) -> String {
    format!("{e:#}")
}

pub async fn export(a: ExportArgs) -> Result<(), String> {
    let (cfg, _) = config::load(&a.flags)?;
    let dir = a.dir.clone();
    let (written, present) = offline::with_engine(&cfg, "stop it first", |pipeline| async move {
        run_export(&pipeline, &dir).await
    })
    .await?;
    println!(
        "exported {} documents into {} ({written} written, {present} there from an earlier run)",
        written + present,
        a.dir.display()
    );
    Ok(())
}

async fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, bytes)
        .await
        .and(tokio::fs::rename(&tmp, path).await)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

async fn run_export(pipeline: &Pipeline, dir: &Path) -> Result<(u64, u64), String> {
    let reader = pipeline.reader();
    let all = Scope::All;
    for sub in ["documents", "originals"] {
        tokio::fs::create_dir_all(dir.join(sub))
            .await
            .map_err(|e| format!("cannot create {}: {e}", dir.join(sub).display()))?;
    }
    let manifest_path = dir.join("manifest.json");
    let id = match tokio::fs::read(&manifest_path).await {
        Ok(bytes) => {
            let m: Manifest = serde_json::from_slice(&bytes)
                .map_err(|e| format!("{}: not an export manifest: {e}", manifest_path.display()))?;
            m.id
        }
        Err(_) => {
            if std::fs::read_dir(dir.join("documents")).is_ok_and(|mut d| d.next().is_some()) {
                return Err(format!(
                    "{} holds documents but no manifest.json: not an export of docpipe",
                    dir.display()
                ));
            }
            uuid::Uuid::new_v4().simple().to_string()
        }
    };
    let numbers = reader.numbers(&all).await.map_err(failed)?;
    let (_, tags) = reader
        .labels(LabelKind::Tag, &all, 0, usize::MAX)
        .await
        .map_err(failed)?;
    let tag_names: HashMap<i64, String> = tags.into_iter().map(|t| (t.id, t.name)).collect();
    let (bar, tty) =
        offline::progress(numbers.len() as u64, "{bar:40} {pos}/{len} {per_sec} {msg}");
    let (mut written, mut present) = (0u64, 0u64);
    for n in &numbers {
        bar.inc(1);
        let json_path = dir.join("documents").join(format!("{n}.json"));
        if json_path.exists() {
            present += 1;
            continue;
        }
        let Some((d, x)) = reader.get_by_number(*n, &all).await.map_err(failed)? else {
            continue; // deleted meanwhile
        };
        let (_, parents) = reader.links(&d.id, &all).await.map_err(failed)?;
        let attachment_of = match parents.first() {
            Some(p) => reader.get(p, &all).await.map_err(failed)?.map(|p| p.seq),
            None => None,
        };
        let original = format!(
            "originals/{n}-{}",
            clean_filename(&d.filename).replace('/', "_")
        );
        let Some((_, mut stream)) = reader.content(&d.id, &all).await.map_err(failed)? else {
            continue;
        };
        let to = dir.join(&original);
        let mut file = tokio::fs::File::create(&to)
            .await
            .map_err(|e| format!("cannot create {}: {e}", to.display()))?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| format!("cannot read the original of #{n}: {e}"))?;
            file.write_all(&chunk)
                .await
                .map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        }
        file.flush()
            .await
            .map_err(|e| format!("cannot write {}: {e}", to.display()))?;
        let text = reader.text(&d.id, &all).await.map_err(failed)?;
        let e = Exported {
            number: d.seq,
            id: d.id.clone(),
            workspace: d.workspace.clone(),
            filename: d.filename.clone(),
            title: d.title.clone(),
            mime: d.mime.clone(),
            size: d.size,
            sha256: d.sha256.clone(),
            original,
            added: d.created_at.clone(),
            doc_date: x.doc_date.clone(),
            asn: x.asn,
            doc_type: d.doc_type.clone(),
            type_source: d.type_source.clone(),
            tags: x
                .tags
                .iter()
                .filter_map(|t| tag_names.get(t).cloned())
                .collect(),
            fields: d.fields.clone(),
            notes: x
                .notes
                .iter()
                .map(|n| NoteOut {
                    note: n.note.clone(),
                    author: n.author.clone(),
                    created_at: n.created_at.clone(),
                })
                .collect(),
            attachment_of,
            language: d.language.clone(),
            pages: d.pages,
            stage: d.stage,
            text,
        };
        let bytes = serde_json::to_vec_pretty(&e).map_err(|e| e.to_string())?;
        write_atomic(&json_path, &bytes).await?;
        written += 1;
        let line = format!("#{n}: {}", d.filename);
        if tty {
            bar.set_message(line);
        }
    }
    bar.finish_and_clear();
    let m = Manifest {
        format: EXPORT_FORMAT.into(),
        version: 1,
        id,
        exported_at: docpipe_actors::format_ms(docpipe_actors::now_ms()),
        documents: written + present,
    };
    let bytes = serde_json::to_vec_pretty(&m).map_err(|e| e.to_string())?;
    write_atomic(&manifest_path, &bytes).await?;
    Ok((written, present))
}

pub async fn import(a: ImportArgs) -> Result<(), String> {
    let (cfg, _) = config::load(&a.flags)?;
    let dir = a.dir.clone();
    let manifest_path = dir.join("manifest.json");
    let m: Manifest = serde_json::from_slice(&std::fs::read(&manifest_path).map_err(|e| {
        format!(
            "{} is not a docpipe export: cannot read manifest.json ({e})",
            dir.display()
        )
    })?)
    .map_err(|e| format!("{}: not an export manifest: {e}", manifest_path.display()))?;
    if m.format != EXPORT_FORMAT || m.version != 1 {
        return Err(format!(
            "{}: format {:?} version {}, expected {EXPORT_FORMAT:?} version 1",
            manifest_path.display(),
            m.format,
            m.version
        ));
    }
    let mut docs: BTreeMap<i64, Exported> = BTreeMap::new();
    let entries = std::fs::read_dir(dir.join("documents"))
        .map_err(|e| format!("cannot read {}: {e}", dir.join("documents").display()))?;
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let bytes =
            std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let e: Exported = serde_json::from_slice(&bytes)
            .map_err(|e| format!("{}: not an exported document: {e}", path.display()))?;
        docs.insert(e.number, e);
    }
    let summary = offline::with_engine(&cfg, "stop it first", |pipeline| {
        let (dir, m, docs) = (&dir, &m, &docs);
        async move { run_import(&pipeline, dir, m, docs).await }
    })
    .await?;
    println!(
        "imported {} documents from {}: {} new, {} brought by an earlier run, {} the same bytes as a document here already",
        summary.new + summary.earlier + summary.duplicates,
        a.dir.display(),
        summary.new,
        summary.earlier,
        summary.duplicates
    );
    for (n, why) in &summary.failed {
        println!("  #{n} failed in the pipeline: {why}");
    }
    Ok(())
}

#[derive(Default)]
struct ImportSummary {
    new: u64,
    earlier: u64,
    duplicates: u64,
    failed: Vec<(i64, String)>,
}

async fn run_import(
    pipeline: &Pipeline,
    dir: &Path,
    m: &Manifest,
    docs: &BTreeMap<i64, Exported>,
) -> Result<ImportSummary, String> {
    let reader = pipeline.reader();
    let source = format!("export:{}", m.id);
    let origin = Origin {
        token_id: None,
        request_id: Some(format!("import-{}", m.id)),
    };
    let done: HashSet<i64> = reader
        .imported(&source)
        .await
        .map_err(failed)?
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let mut summary = ImportSummary::default();
    // Field names the export uses that this instance does not know.
    let known: HashSet<String> = reader
        .field_names(&Scope::All)
        .await
        .map_err(failed)?
        .into_iter()
        .map(|f| f.name)
        .collect();
    let mut made_fields = HashSet::new();
    for d in docs.values() {
        for f in &d.fields {
            if !known.contains(&f.name) && made_fields.insert(f.name.clone()) {
                if let Ok(kind) = serde_json::from_value::<Kind>(f.kind.clone().into()) {
                    pipeline
                        .create_field_name(&f.name, kind, &origin)
                        .await
                        .map_err(failed)?;
                }
            }
        }
    }
    // Families: each document with the attachments under it, registered
    // in one transaction so the e-mail's reading finds its attachments
    // there with their own metadata.
    let mut children: HashMap<i64, Vec<i64>> = HashMap::new();
    let mut roots = Vec::new();
    for d in docs.values() {
        match d
            .attachment_of
            .filter(|p| docs.contains_key(p) && *p != d.number)
        {
            Some(p) => children.entry(p).or_default().push(d.number),
            None => roots.push(d.number),
        }
    }
    let mut tags: HashMap<(String, String), i64> = HashMap::new();
    let (bar, tty) = offline::progress(docs.len() as u64, "{bar:40} {pos}/{len} {per_sec} {msg}");
    let mut brought = Vec::new();
    for root in roots {
        let mut family = vec![root];
        let mut i = 0;
        while i < family.len() {
            for c in children.get(&family[i]).into_iter().flatten() {
                if !family.contains(c) {
                    family.push(*c);
                }
            }
            i += 1;
        }
        let mut batch = Vec::new();
        for n in family {
            bar.inc(1);
            if done.contains(&n) {
                summary.earlier += 1;
                continue;
            }
            let d = &docs[&n];
            let mut x = UploadExtras {
                number: Some(d.number),
                keep_metadata: true,
                imported_from: Some((source.clone(), d.number)),
                asn: d.asn,
                doc_date: d.doc_date.clone(),
                doc_type: d.doc_type.clone(),
                ..Default::default()
            };
            for t in &d.tags {
                let key = (d.workspace.clone(), t.clone());
                let id = match tags.get(&key) {
                    Some(id) => *id,
                    None => {
                        let (id, _) = pipeline
                            .create_label(LabelKind::Tag, &d.workspace, t, None, &origin)
                            .await
                            .map_err(failed)?;
                        tags.insert(key, id);
                        id
                    }
                };
                x.tags.push(id);
            }
            for f in &d.fields {
                let Ok(kind) = serde_json::from_value::<Kind>(f.kind.clone().into()) else {
                    continue;
                };
                x.fields.push((
                    f.name.clone(),
                    UserField {
                        kind,
                        value: f.value.clone(),
                        currency: f.currency.clone(),
                    },
                ));
            }
            for note in &d.notes {
                x.notes.push(NewNote {
                    note: note.note.clone(),
                    author: note.author.clone(),
                    created_at: crate::http::paperless_filters::instant(
                        "created_at",
                        &note.created_at,
                    )
                    .ok(),
                });
            }
            batch.push(stage_original(pipeline, dir, d, x).await?);
            if tty {
                bar.set_message(format!("#{n}: {}", d.filename));
            }
        }
        if batch.is_empty() {
            continue;
        }
        let numbers: Vec<i64> = batch.iter().filter_map(|b| b.extra.number).collect();
        let registered = pipeline
            .register(batch, &origin)
            .await
            .map_err(|e| format!("cannot register #{}: {e:#}", numbers[0]))?;
        for (n, r) in numbers.into_iter().zip(registered) {
            if r.duplicate_of.is_some() {
                summary.duplicates += 1;
            } else {
                summary.new += 1;
                brought.push((n, r.id));
            }
        }
    }
    bar.finish_and_clear();
    offline::wait_for_pipeline(pipeline, &Scope::All, tty).await?;
    for (n, id) in &brought {
        if let Some(d) = reader.get(id, &Scope::All).await.map_err(failed)? {
            if d.stage == Stage::Failed {
                summary
                    .failed
                    .push((*n, d.error.map(|e| e.message).unwrap_or_default()));
            }
        }
    }
    Ok(summary)
}

/// Streams an exported original into the blob store, checks it is the
/// one the export names, and makes its registration.
async fn stage_original(
    pipeline: &Pipeline,
    dir: &Path,
    d: &Exported,
    x: UploadExtras,
) -> Result<NewDocument, String> {
    let path = dir.join(&d.original);
    let (id, mut up) = pipeline.begin_upload();
    if let Err(e) = up.write_file(&path).await {
        up.abort().await;
        return Err(format!("#{}: {e:#}", d.number));
    }
    let staged = up
        .finish()
        .await
        .map_err(|e| format!("#{}: cannot store it: {e:#}", d.number))?;
    if staged.sha256 != d.sha256 {
        pipeline.discard_upload(&id).await;
        return Err(format!(
            "{}: SHA-256 {}, but the export says {}: the export is damaged",
            path.display(),
            staged.sha256,
            d.sha256
        ));
    }
    let mime = match sniff(&staged.head, &d.filename) {
        Sniffed::Supported(m) => m.to_string(),
        _ => d.mime.clone(),
    };
    Ok(NewDocument {
        id,
        workspace: d.workspace.clone(),
        filename: d.filename.clone(),
        title: d.title.clone(),
        mime,
        size: staged.size,
        sha256: staged.sha256,
        inline: staged.inline,
        extra: x,
    })
}
