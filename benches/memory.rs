//! Memory benchmark (`make bench`).
//!
//! Starts the real binary with OCR off, ingests every PDF and text file of
//! the shared corpus over HTTP (4 uploads at a time), and prints the
//! server's resident memory — its own and its parser processes' together —
//! idle at start, at its peak while ingesting, and 30 s after the last
//! document finished. Targets on the 2-core machine: idle at start
//! <= 30 MB, peak <= 160 MB, idle after work <= 60 MB.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;

mod common;

/// Resident set of `pid` and every process below it, in KiB.
fn tree_rss_kb(pid: u32) -> u64 {
    let mut total = 0;
    let mut stack = vec![pid];
    let procs: Vec<(u32, u32, u64)> = std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
                .filter_map(|p| {
                    let status = std::fs::read_to_string(format!("/proc/{p}/status")).ok()?;
                    let field = |name: &str| {
                        status
                            .lines()
                            .find(|l| l.starts_with(name))
                            .and_then(|l| l.split_whitespace().nth(1))
                            .and_then(|v| v.parse::<u64>().ok())
                    };
                    Some((p, field("PPid:")? as u32, field("VmRSS:").unwrap_or(0)))
                })
                .collect()
        })
        .unwrap_or_default();
    while let Some(p) = stack.pop() {
        for (child, parent, rss) in &procs {
            if *child == p {
                total += rss;
            }
            if *parent == p {
                stack.push(*child);
            }
        }
    }
    total
}

use common::own_kb;

fn corpus_files() -> Vec<PathBuf> {
    let root = PathBuf::from(
        std::env::var("CORPUS_ROOT").unwrap_or_else(|_| "/tmp/docpipe-corpus".into()),
    )
    .join("docs");
    let manifest = std::fs::read_to_string(root.join("MANIFEST.tsv"))
        .expect("the shared corpus (make corpus)");
    manifest
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            matches!(cols.get(2), Some(&"pdf") | Some(&"txt")).then(|| root.join(cols[1]))
        })
        .collect()
}

fn main() {
    let files = corpus_files();
    let bytes: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map_or(0, |m| m.len()))
        .sum();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let served = common::serve(|cmd| {
        cmd.arg("--data-dir")
            .arg(&data)
            .env("DOCPIPE_PIPELINE__OCR__ENABLED", "false");
    });
    let pid = served.child.id();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (base, client) = (served.base.clone(), served.client.clone());
    let status = |client: &reqwest::Client| common::status(client.clone(), base.clone());
    rt.block_on(status(&client));
    std::thread::sleep(Duration::from_secs(2));
    let at_start = tree_rss_kb(pid);

    let peak = Arc::new(AtomicU64::new(at_start));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                peak.fetch_max(tree_rss_kb(pid), Relaxed);
                std::thread::sleep(Duration::from_millis(50));
            }
        })
    };
    let start = Instant::now();
    let accepted: usize = rt.block_on(async {
        let accepted = futures::stream::iter(files.clone())
            .map(|path| {
                let client = client.clone();
                let url = format!("{base}/api/v1/documents");
                async move {
                    let body = tokio::fs::read(&path).await.unwrap();
                    let name = path.file_name().unwrap().to_string_lossy().to_string();
                    let part = reqwest::multipart::Part::bytes(body).file_name(name);
                    let form = reqwest::multipart::Form::new().part("file", part);
                    let r = client.post(url).multipart(form).send().await.unwrap();
                    let ok = r.status().as_u16() == 202;
                    let v: serde_json::Value = r.json().await.unwrap_or_default();
                    // Duplicates within the corpus count once.
                    usize::from(ok && v["documents"][0]["duplicate_of"].is_null())
                }
            })
            .buffer_unordered(4)
            .fold(0, |a, b| futures::future::ready(a + b))
            .await;
        loop {
            let st = status(&client).await;
            let done = st["stages"]["indexed"]["documents"].as_u64().unwrap_or(0)
                + st["stages"]["failed"]["documents"].as_u64().unwrap_or(0);
            if done as usize >= accepted {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        accepted
    });
    let busy = start.elapsed();
    stop.store(true, Relaxed);
    sampler.join().unwrap();
    let peak = peak.load(Relaxed);
    // Idle: 30 s after the last document finished.
    std::thread::sleep(Duration::from_secs(30));
    let after = tree_rss_kb(pid);
    let own = own_kb(pid, "VmRSS:");
    let own_peak = own_kb(pid, "VmHWM:");
    let (anon, file) = (own_kb(pid, "RssAnon:"), own_kb(pid, "RssFile:"));

    let mb = |kb: u64| kb as f64 / 1024.0;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "docpipe memory benchmark: {} PDFs and text files of the shared corpus ({:.1} MB; {accepted} documents after duplicates), 4 uploads at a time, OCR off; {:.1} s",
        files.len(),
        bytes as f64 / 1e6,
        busy.as_secs_f64()
    );
    println!(
        "  server RSS with its parser processes: idle at start {:.0} MiB [<= 30: {}], peak {:.0} MiB [<= 160: {}], idle 30 s after {:.0} MiB [<= 60: {}]",
        mb(at_start),
        verdict(mb(at_start) <= 30.0),
        mb(peak),
        verdict(mb(peak) <= 160.0),
        mb(after),
        verdict(mb(after) <= 60.0),
    );
    println!(
        "  of which idle after: the server process {:.0} MiB ({:.0} heap and stacks, {:.0} mapped files: the binary, the index), its parser processes {:.0} MiB",
        mb(own),
        mb(anon),
        mb(file),
        mb(after.saturating_sub(own))
    );
    println!(
        "  the server process's own peak: {:.0} MiB (the rest of the peak is parser processes)",
        mb(own_peak)
    );
}
