//! `docpipe ingest PATH… --data-dir DIR`: the same pipeline as the server,
//! run in this process on the data directory (no server may run there).
//! Each file is streamed into the blob store and registered as an upload
//! is; the same bytes as a document already there are that document, so an
//! interrupted run is started again and skips what it took. It waits for
//! the pipeline to read what it took, then prints a summary naming every
//! file refused or failed, with its reason.

use std::path::PathBuf;

use docpipe_actors::{Origin, Pipeline, Scope, Stage, UploadExtras, DEFAULT_WORKSPACE};

use crate::config;
use crate::offline;
use crate::watch::{ingest_file, Taken};

/// `flags`: the configuration file and the data directory; `workspace`:
/// as given (default: the default workspace).
pub async fn ingest(
    flags: &config::Flags,
    workspace: Option<String>,
    files: Vec<PathBuf>,
) -> Result<(), String> {
    let (cfg, _) = config::load(flags)?;
    let workspace = workspace.unwrap_or_else(|| DEFAULT_WORKSPACE.to_string());
    if !docpipe_actors::valid_workspace(&workspace) {
        return Err(format!(
            "--workspace {workspace:?}: 1 to 64 letters, digits, '-' or '_'"
        ));
    }
    let summary = offline::with_engine(&cfg, "give --server instead of --data-dir", |pipeline| {
        let (cfg, workspace, files) = (&cfg, &workspace, &files);
        async move { run(&pipeline, cfg, workspace, files).await }
    })
    .await?;
    println!(
        "{} taken, {} there already, {} refused, {} failed in the pipeline",
        summary.taken,
        summary.present,
        summary.refused.len(),
        summary.failed.len()
    );
    for (p, why) in &summary.refused {
        println!("  refused {}: {why}", p.display());
    }
    for (p, why) in &summary.failed {
        println!("  failed {}: {why}", p.display());
    }
    if summary.refused.is_empty() && summary.failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} of {} files were refused or failed (listed above)",
            summary.refused.len() + summary.failed.len(),
            files.len()
        ))
    }
}

#[derive(Default)]
struct Summary {
    taken: u64,
    present: u64,
    refused: Vec<(PathBuf, String)>,
    failed: Vec<(PathBuf, String)>,
}

async fn run(
    pipeline: &Pipeline,
    cfg: &config::Config,
    workspace: &str,
    files: &[PathBuf],
) -> Result<Summary, String> {
    let total: u64 = files
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let (bar, tty) = offline::progress(
        total,
        "{bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
    );
    let origin = Origin {
        token_id: None,
        request_id: Some(format!("ingest:{}", uuid::Uuid::now_v7().simple())),
    };
    let mut s = Summary::default();
    let mut taken: Vec<(PathBuf, String)> = Vec::new();
    for (i, p) in files.iter().enumerate() {
        let size = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
        let r = ingest_file(
            pipeline,
            p,
            workspace,
            UploadExtras::default(),
            cfg.server.max_upload_bytes,
            &origin,
        )
        .await;
        let line = match r {
            Ok(reg) if reg.duplicate_of.is_some() => {
                s.present += 1;
                format!("{}: there already", p.display())
            }
            Ok(reg) => {
                s.taken += 1;
                taken.push((p.clone(), reg.id));
                format!("{}: taken", p.display())
            }
            Err(Taken::Refused(why)) => {
                s.refused.push((p.clone(), why.clone()));
                format!("{}: refused: {why}", p.display())
            }
            Err(Taken::NotNow(why)) => return Err(format!("{}: {why}", p.display())),
        };
        bar.inc(size);
        bar.set_message(format!("{}/{} files", i + 1, files.len()));
        if !tty {
            eprintln!("{line}");
        }
    }
    bar.finish_and_clear();
    // The pipeline reads and indexes what was taken.
    let scope = Scope::only([workspace.to_string()]);
    offline::wait_for_pipeline(pipeline, &scope, tty).await?;
    for (p, id) in taken {
        if let Some(d) = pipeline
            .reader()
            .get(&id, &scope)
            .await
            .map_err(|e| format!("{e:#}"))?
        {
            if d.stage == Stage::Failed {
                let why = d
                    .error
                    .map(|e| format!("{} ({})", e.message, e.code))
                    .unwrap_or_default();
                s.failed.push((p, why));
            }
        }
    }
    Ok(s)
}
