//! docpipe: a self-hosted document pipeline in one binary.

mod cli;
mod config;
mod export;
mod http;
mod local_ingest;
mod mail;
mod maintain;
mod migrate;
mod migrate_storage;
mod offline;
mod watch;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use docpipe_actors::Pipeline;

/// The argument that starts this binary as a parser process (see DESIGN.md,
/// rule 5). Not a user command.
pub const PARSER_MODE: &str = "__parse-worker";

#[derive(Parser)]
#[command(
    name = "docpipe",
    version = concat!(env!("CARGO_PKG_VERSION"), " (commit ", env!("BUILT_FROM_COMMIT"), ")"),
    about = "A self-hosted document pipeline in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: HTTP API, status page and the pipeline
    Serve(config::Flags),
    /// Print the effective configuration and where each value came from
    Config(config::Flags),
    /// Upload files or whole directories to a running server, or with
    /// --data-dir straight into a data directory
    Ingest(cli::IngestArgs),
    /// Search a running server
    Search(cli::SearchArgs),
    /// Show a running server's pipeline status
    Status(cli::ServerArgs),
    /// Send documents through a running server's pipeline again
    Reprocess(cli::ReprocessArgs),
    /// Manage API tokens of a running server (admin token needed)
    #[command(subcommand)]
    Token(cli::TokenCommand),
    /// Bring every document of a running Paperless-ngx into this data
    /// directory (stop `docpipe serve` on it first); resumable
    MigrateFromPaperless(migrate::MigrateArgs),
    /// Copy every original to another store (s3://bucket/prefix or local),
    /// check each SHA-256, then switch the configuration file to it;
    /// resumable (stop `docpipe serve` first)
    MigrateStorage(migrate_storage::MigrateStorageArgs),
    /// Write every document (original + one JSON with its metadata, type,
    /// fields, tags and text) into a directory
    Export(export::ExportArgs),
    /// Bring a directory `docpipe export` wrote into this data directory;
    /// resumable
    Import(export::ImportArgs),
    /// A consistent backup (catalog, index at a commit point, originals
    /// with their SHA-256) of a data directory, or with --server of a
    /// running server
    Backup(maintain::BackupArgs),
    /// Bring a backup into a new data directory
    Restore(maintain::RestoreArgs),
    /// Check that the catalog, the index and the blob store agree; with
    /// --repair mend what can be mended
    Check(maintain::CheckArgs),
    /// Rebuild the search index from the catalog's text and metadata
    /// (nothing is extracted again)
    Reindex(maintain::ReindexArgs),
    /// Make the built-in embedder's table from a sentence-transformers
    /// model (`make deps` does this once)
    DistillEmbedder(maintain::DistillArgs),
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(PARSER_MODE) {
        return ExitCode::from(docpipe_actors::parser_main(&args[2..]).clamp(0, 255) as u8);
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(flags) => serve(flags).await,
            Command::Config(flags) => {
                let (cfg, fig) = config::load(&flags)?;
                println!("{}", config::describe(&cfg, &fig));
                Ok(())
            }
            Command::Ingest(a) => cli::ingest(a).await,
            Command::Search(a) => cli::search(a).await,
            Command::Status(a) => cli::status(a).await,
            Command::Reprocess(a) => cli::reprocess(a).await,
            Command::Token(c) => cli::token(c).await,
            Command::MigrateFromPaperless(a) => migrate::migrate(a).await,
            Command::MigrateStorage(a) => migrate_storage::migrate_storage(a).await,
            Command::Export(a) => export::export(a).await,
            Command::Import(a) => export::import(a).await,
            Command::Backup(a) => maintain::backup(a).await,
            Command::Restore(a) => maintain::restore(a).await,
            Command::Check(a) => maintain::check(a).await,
            Command::Reindex(a) => maintain::reindex(a).await,
            Command::DistillEmbedder(a) => maintain::distill(a).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            for line in msg.lines() {
                eprintln!("error: {line}");
            }
            ExitCode::from(2)
        }
    }
}

async fn serve(flags: config::Flags) -> Result<(), String> {
    let (cfg, _) = config::load(&flags)?;
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| cfg.log.level.clone());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();

    let addr = cfg.server.listen;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let pipeline = Pipeline::start(cfg.engine(config::parser_command()))
        .await
        .map_err(|e| format!("cannot start: {e:#}"))?;
    let configured = Some(cfg.auth.admin_token.as_str()).filter(|t| !t.is_empty());
    let (auth, first_token) = http::auth::Auth::start(pipeline.clone(), configured, &cfg.data_dir)
        .await
        .map_err(|e| format!("cannot start: {e:#}"))?;
    if let Some(token) = first_token {
        println!(
            "created the first admin token (shown once; also in {}): {token}",
            cfg.data_dir.join("admin-token").display()
        );
    }
    let state = http::AppState::new(http::App {
        pipeline: pipeline.clone(),
        auth,
        limits: std::sync::Arc::new(http::gateway::Limits::new(&cfg.rate_limit)),
        max_upload_bytes: cfg.server.max_upload_bytes,
        uploads: std::sync::Arc::new(tokio::sync::Semaphore::new(
            cfg.server.max_concurrent_uploads,
        )),
        body_timeout: Duration::from_millis(cfg.server.request_body_timeout_ms),
        cors_origins: cfg.server.cors_origins.clone(),
        metrics_public: cfg.auth.metrics_public,
        watch: watch::start(&pipeline, &cfg.watch, cfg.server.max_upload_bytes)?,
        mail: mail::start(&pipeline, &cfg.mail, cfg.server.max_upload_bytes),
        subscribers: http::events::Subscribers::new(&cfg.server),
        prometheus: http::metrics::install().map_err(|e| format!("cannot start: {e}"))?,
    });
    tokio::spawn(reload_on_hangup(
        pipeline.clone(),
        flags.clone(),
        cfg.clone(),
    ));
    // Tests and scripts read this line to learn the port when given port 0.
    println!("docpipe listening on http://{local}");
    tracing::info!(%local, data_dir = %cfg.data_dir.display(), "docpipe serving");
    http::run(listener, state, shutdown_signal())
        .await
        .map_err(|e| format!("server failed: {e}"))?;
    tracing::info!("shutting down: draining the pipeline");
    pipeline
        .shutdown(Duration::from_millis(cfg.server.shutdown_drain_ms))
        .await
        .map_err(|e| format!("shutdown failed: {e:#}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// On `SIGHUP`: reads the configuration again and resizes the worker pools
/// to it; every other setting that differs from the one in force is named
/// in the log (it needs a restart).
async fn reload_on_hangup(pipeline: Pipeline, flags: config::Flags, started: config::Config) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP");
            return;
        }
    };
    while hup.recv().await.is_some() {
        let cfg = match config::load(&flags) {
            Ok((cfg, _)) => cfg,
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: the configuration has problems; nothing changed");
                continue;
            }
        };
        let p = &cfg.pipeline;
        let ask = docpipe_actors::PoolsRequest {
            extract: Some(p.extract.workers),
            classify: Some(p.classify.workers),
            enrich: Some(p.enrich.workers),
        };
        match pipeline.resize_pools(&ask).await {
            Ok(sizes) => tracing::info!(?sizes, "SIGHUP: pools in force"),
            Err(e) => {
                tracing::error!(error = %format!("{e:#}"), "SIGHUP: the pools were not resized")
            }
        }
        let stale = config::changed_keys(&started, &cfg)
            .into_iter()
            .filter(|k| !config::LIVE_KEYS.contains(&k.as_str()))
            .collect::<Vec<_>>();
        if !stale.is_empty() {
            tracing::warn!(settings = %stale.join(", "), "SIGHUP: these settings changed and take effect only after a restart");
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            std::future::pending::<()>().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
