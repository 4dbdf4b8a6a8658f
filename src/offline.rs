//! The engine run by a command on a data directory, without a server
//! (`ingest --data-dir`, `migrate-from-paperless`, `migrate-storage`): its
//! start with a message that says what to do when a server holds the
//! directory, the wait for the pipeline, and the stop.

use std::future::Future;
use std::time::Duration;

use docpipe_actors::{Pipeline, Scope, Stage};

use crate::config;

/// Runs `work` with the engine on the configured data directory, then
/// stops it (draining the pipeline). `busy` says what to do instead when
/// a server runs there.
pub async fn with_engine<T, F, Fut>(cfg: &config::Config, busy: &str, work: F) -> Result<T, String>
where
    F: FnOnce(Pipeline) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    run_engine(cfg, cfg.engine(config::parser_command()), busy, work).await
}

/// [`with_engine`], the engine indexing every document again as it starts.
pub async fn with_engine_reindexing<T, F, Fut>(
    cfg: &config::Config,
    busy: &str,
    work: F,
) -> Result<T, String>
where
    F: FnOnce(Pipeline) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let mut engine = cfg.engine(config::parser_command());
    engine.rebuild_index = true;
    run_engine(cfg, engine, busy, work).await
}

async fn run_engine<T, F, Fut>(
    cfg: &config::Config,
    engine: docpipe_actors::config::EngineConfig,
    busy: &str,
    work: F,
) -> Result<T, String>
where
    F: FnOnce(Pipeline) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .try_init();
    let pipeline = Pipeline::start(engine).await.map_err(|e| {
        format!(
            "cannot open the data directory {}: {e:#} (if `docpipe serve` runs on it, {busy})",
            cfg.data_dir.display()
        )
    })?;
    let result = work(pipeline.clone()).await;
    let stop = pipeline
        .shutdown(Duration::from_millis(cfg.server.shutdown_drain_ms))
        .await
        .map_err(|e| format!("shutdown failed: {e:#}"));
    let out = result?;
    stop?;
    Ok(out)
}

/// Waits until no document of the scope waits for a stage (one line each
/// half second when `quiet` is false).
pub async fn wait_for_pipeline(
    pipeline: &Pipeline,
    scope: &Scope,
    quiet: bool,
) -> Result<(), String> {
    loop {
        let st = pipeline
            .reader()
            .status(scope)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let left: u64 = [
            Stage::Queued,
            Stage::Extracted,
            Stage::Classified,
            Stage::Enriched,
        ]
        .iter()
        .map(|s| st.stages.get(s.as_str()).map_or(0, |x| x.documents))
        .sum();
        if left == 0 {
            return Ok(());
        }
        if !quiet {
            eprintln!("waiting for the pipeline: {left} documents to go");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// A progress bar on stderr when it is a terminal (else hidden: the
/// commands print one line per item instead), and whether it is one.
pub fn progress(len: u64, template: &str) -> (indicatif::ProgressBar, bool) {
    use std::io::IsTerminal;
    let tty = std::io::stderr().is_terminal();
    let bar = if tty {
        indicatif::ProgressBar::new(len)
    } else {
        indicatif::ProgressBar::hidden()
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    (bar, tty)
}
