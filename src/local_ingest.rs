//! `docpipe ingest PATH… --data-dir DIR`: the same pipeline as the server,
//! run in this process on the data directory (no server may run there).
//! Each file is streamed into the blob store and registered as an upload
//! is; the same bytes as a document already there are that document, so an
//! interrupted run is started again and skips what it took. It waits for
//! the pipeline to read what it took, then prints a summary naming every
//! file refused or failed, with its reason.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use docpipe_actors::{Origin, Pipeline, Scope, Stage, UploadExtras, DEFAULT_WORKSPACE};

use crate::cli::IngestArgs;
use crate::config;
use crate::watch::{ingest_file, Taken};

pub async fn ingest(a: &IngestArgs, files: Vec<PathBuf>) -> Result<(), String> {
    let flags = config::Flags {
        config: a.config.clone(),
        data_dir: a.data_dir.clone(),
        listen: None,
    };
    let (cfg, _) = config::load(&flags)?;
    let workspace = a
        .workspace
        .clone()
        .unwrap_or_else(|| DEFAULT_WORKSPACE.to_string());
    if !docpipe_actors::valid_workspace(&workspace) {
        return Err(format!(
            "--workspace {workspace:?}: 1 to 64 letters, digits, '-' or '_'"
        ));
    }
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
    let pipeline = Pipeline::start(cfg.engine(config::parser_command()))
        .await
        .map_err(|e| {
            format!(
                "cannot open the data directory {}: {e:#} (if `docpipe serve` runs on it, give --server instead of --data-dir)",
                cfg.data_dir.display()
            )
        })?;
    let result = run(&pipeline, &cfg, &workspace, &files).await;
    let stop = pipeline
        .shutdown(Duration::from_millis(cfg.server.shutdown_drain_ms))
        .await
        .map_err(|e| format!("shutdown failed: {e:#}"));
    let summary = result?;
    stop?;
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
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        indicatif::ProgressBar::new(total)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta} {msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
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
    let waiting = |st: &docpipe_actors::Status| {
        [
            Stage::Queued,
            Stage::Extracted,
            Stage::Classified,
            Stage::Enriched,
        ]
        .iter()
        .map(|x| st.stages.get(x.as_str()).map_or(0, |v| v.documents))
        .sum::<u64>()
    };
    loop {
        let st = pipeline
            .reader()
            .status(&scope)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let left = waiting(&st);
        if left == 0 {
            break;
        }
        if !tty {
            eprintln!("waiting for the pipeline: {left} documents to go");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
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
