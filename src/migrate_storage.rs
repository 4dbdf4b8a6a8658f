//! `docpipe migrate-storage --to s3://bucket/prefix | local`: every
//! original of the blob store copied to another store, each one read back
//! and its SHA-256 checked against the catalog, and only then the
//! configuration file switched to the new store. Originals already in the
//! target with the right hash are not copied again, so an interrupted run
//! is simply started again. The old store is left as it was.
//!
//! It runs the engine on the data directory, so `docpipe serve` must not
//! run there (new uploads would go to the old store meanwhile).

use std::path::PathBuf;

use docpipe_actors::config::{StorageBackend, StorageConfig};
use docpipe_actors::store::blobs::Blobs;
use docpipe_actors::Pipeline;

use crate::config;
use crate::offline;

#[derive(Clone, Debug, clap::Args)]
pub struct MigrateStorageArgs {
    /// `s3://bucket/prefix` (the endpoint, region and keys come from
    /// [storage.s3] and the AWS environment variables), or `local`
    #[arg(long)]
    pub to: String,
    #[command(flatten)]
    pub flags: config::Flags,
}

/// The target store's settings: the current ones with the backend, bucket
/// and prefix of `--to`.
fn target(current: &StorageConfig, to: &str) -> Result<StorageConfig, String> {
    let mut t = current.clone();
    if to == "local" {
        t.backend = StorageBackend::Local;
        return Ok(t);
    }
    let rest = to
        .strip_prefix("s3://")
        .ok_or_else(|| format!("--to {to:?}: expected s3://bucket/prefix or local"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("--to {to:?}: no bucket"));
    }
    t.backend = StorageBackend::S3;
    t.s3.bucket = bucket.to_string();
    t.s3.prefix = prefix.trim_matches('/').to_string();
    Ok(t)
}

/// The configuration file to switch: `--config`, else ./config.toml
/// (made if there is none).
fn config_path(flags: &config::Flags) -> PathBuf {
    flags
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("config.toml"))
}

/// Writes the target's `[storage]` into the configuration file, keeping the
/// rest of it (comments included).
fn switch_config(path: &PathBuf, t: &StorageConfig) -> Result<(), String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| format!("{} is not TOML: {e}", path.display()))?;
    let storage = doc
        .entry("storage")
        .or_insert(toml_edit::table())
        .as_table_mut()
        .ok_or_else(|| format!("{}: [storage] is not a table", path.display()))?;
    storage["backend"] = toml_edit::value(match t.backend {
        StorageBackend::Local => "local",
        StorageBackend::S3 => "s3",
    });
    if t.backend == StorageBackend::S3 {
        let s3 = storage
            .entry("s3")
            .or_insert(toml_edit::table())
            .as_table_mut()
            .ok_or_else(|| format!("{}: [storage.s3] is not a table", path.display()))?;
        s3["bucket"] = toml_edit::value(t.s3.bucket.clone());
        s3["prefix"] = toml_edit::value(t.s3.prefix.clone());
    }
    // Written beside it, then renamed over it: never half a file.
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, doc.to_string())
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub async fn migrate_storage(a: MigrateStorageArgs) -> Result<(), String> {
    let (cfg, _) = config::load(&a.flags)?;
    let to = target(&cfg.storage, &a.to)?;
    if to == cfg.storage {
        return Err(format!("the originals are in {} already", a.to));
    }
    // The engine, for its lock on the data directory and its recovery of
    // interrupted uploads; the stores, both ends.
    let (copied, present, bytes) = offline::with_engine(&cfg, "stop it first", |pipeline| {
        let (a, cfg, to) = (&a, &cfg, &to);
        async move { copy_all(a, cfg, to, &pipeline).await }
    })
    .await?;
    let path = config_path(&a.flags);
    switch_config(&path, &to)?;
    println!(
        "moved the originals to {}: {copied} copied, {present} there already, {bytes} bytes, every SHA-256 checked",
        a.to
    );
    println!(
        "{} now says storage.backend = {:?}; the old store is left as it was",
        path.display(),
        match to.backend {
            StorageBackend::Local => "local",
            StorageBackend::S3 => "s3",
        }
    );
    if std::env::vars().any(|(k, _)| k.starts_with("DOCPIPE_STORAGE__BACKEND")) {
        println!("note: DOCPIPE_STORAGE__BACKEND is set in the environment and wins over the file");
    }
    Ok(())
}

async fn copy_all(
    a: &MigrateStorageArgs,
    cfg: &config::Config,
    to: &StorageConfig,
    pipeline: &Pipeline,
) -> Result<(u64, u64, u64), String> {
    let failed = |e: anyhow::Error| format!("{e:#}");
    let from = Blobs::open(&cfg.storage, &cfg.blobs, &cfg.data_dir).map_err(failed)?;
    let dest = Blobs::open(to, &cfg.blobs, &cfg.data_dir).map_err(failed)?;
    dest.probe()
        .await
        .map_err(|e| format!("{} does not answer: {e:#}", a.to))?;
    let docs = pipeline.reader().blob_documents().await.map_err(failed)?;
    let (bar, tty) = offline::progress(docs.len() as u64, "{bar:40} {pos}/{len} {per_sec} {msg}");
    let (mut copied, mut present, mut bytes) = (0u64, 0u64, 0u64);
    for (id, sha, size) in &docs {
        bar.inc(1);
        let there = dest.hash(id).await.map_err(failed)?;
        let line = if there.as_ref() == Some(&(sha.clone(), *size)) {
            present += 1;
            format!("{id}: there already, checked")
        } else {
            dest.copy_from(&from, id).await.map_err(failed)?;
            // Read back from the target, not trusted from the copy.
            let back = dest.hash(id).await.map_err(failed)?;
            if back.as_ref() != Some(&(sha.clone(), *size)) {
                return Err(format!(
                    "{id}: the copy in {} does not match the catalog (SHA-256 {sha}, {size} bytes); nothing was switched",
                    a.to
                ));
            }
            copied += 1;
            format!("{id}: copied, checked")
        };
        bytes += size;
        if tty {
            bar.set_message(line);
        } else {
            eprintln!("{line}");
        }
    }
    bar.finish_and_clear();
    Ok((copied, present, bytes))
}
