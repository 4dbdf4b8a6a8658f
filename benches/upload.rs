//! Streaming benchmark (`make bench`).
//!
//! One 1 GiB upload, generated as it is sent, into the real binary: once
//! with the originals on local disk, once in an S3 bucket (moto on
//! loopback, started by `../shared/scripts/start-s3-moto.sh`). Prints how
//! much the server's resident memory grew over its level before the upload
//! (sampled every 20 ms, and its high-water mark), the upload's rate, and
//! the size of the release binary (`make release`). Target: growth <= 32
//! MiB each way — the upload streams, it is never held whole.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use sha2::{Digest, Sha256};

mod common;

const TOTAL: u64 = 1 << 30;
const MOTO: &str = "http://127.0.0.1:9000";

use common::own_kb as kb;

fn corpus_root() -> PathBuf {
    PathBuf::from(std::env::var("CORPUS_ROOT").unwrap_or_else(|_| "/tmp/docpipe-corpus".into()))
}

fn start_moto() {
    let script =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/scripts/start-s3-moto.sh");
    let root = corpus_root();
    std::fs::create_dir_all(&root).unwrap();
    let out = Command::new("bash")
        .arg(&script)
        .current_dir(&root)
        .output()
        .expect("run start-s3-moto.sh");
    assert!(
        out.status.success(),
        "start-s3-moto.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Measured {
    growth_mib: f64,
    hwm_growth_mib: f64,
    mb_per_s: f64,
}

/// One 1 GiB upload into a server started with `env`.
fn measure(rt: &tokio::runtime::Runtime, env: &[(&str, &str)]) -> Measured {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let served = common::serve(|cmd| {
        cmd.arg("--data-dir")
            .arg(&data)
            .env("DOCPIPE_SERVER__MAX_UPLOAD_BYTES", (2 * TOTAL).to_string())
            // Kept, not read: this measures the upload.
            .env("DOCPIPE_PIPELINE__EXTRACT__MAX_READ_MB", "64")
            .env("DOCPIPE_PIPELINE__OCR__ENABLED", "false");
        for (k, v) in env {
            cmd.env(k, v);
        }
    });
    let pid = served.child.id();
    let (base, client) = (served.base.clone(), served.client.clone());
    rt.block_on(common::status(client.clone(), base.clone()));
    let before = kb(pid, "VmRSS:");
    let hwm_before = kb(pid, "VmHWM:");
    let peak = Arc::new(AtomicU64::new(before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Relaxed) {
                peak.fetch_max(kb(pid, "VmRSS:"), Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let line = b"The quokka census goes on, line after line, for a whole gibibyte of text.\n";
    let chunk: Vec<u8> = line.iter().copied().cycle().take(1 << 20).collect();
    let mut expected = Sha256::new();
    for _ in 0..(TOTAL >> 20) {
        expected.update(&chunk);
    }
    let expected = hex::encode(expected.finalize());
    let start = Instant::now();
    let v: serde_json::Value = rt.block_on(async {
        let chunk = bytes::Bytes::from(chunk);
        let body = futures::stream::iter(0..(TOTAL >> 20))
            .map(move |_| Ok::<_, std::io::Error>(chunk.clone()));
        let part =
            reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(body), TOTAL)
                .file_name("census.txt");
        let r = client
            .post(format!("{base}/api/v1/documents"))
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 202);
        r.json().await.unwrap()
    });
    let secs = start.elapsed().as_secs_f64();
    stop.store(true, Relaxed);
    sampler.join().unwrap();
    assert_eq!(v["documents"][0]["sha256"], expected.as_str(), "{v}");
    let mib = |k: u64| k as f64 / 1024.0;
    Measured {
        growth_mib: mib(peak.load(Relaxed).saturating_sub(before)),
        hwm_growth_mib: mib(kb(pid, "VmHWM:").saturating_sub(hwm_before.max(before))),
        mb_per_s: TOTAL as f64 / 1e6 / secs,
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let verdict = |m: &Measured| {
        if m.growth_mib.max(m.hwm_growth_mib) <= 32.0 {
            "met"
        } else {
            "MISSED"
        }
    };
    println!("docpipe streaming benchmark: one 1 GiB upload, generated as it is sent");
    let local = measure(&rt, &[]);
    println!(
        "  to local disk: server RSS grew by {:.1} MiB (high-water mark +{:.1}) [<= 32: {}], {:.0} MB/s",
        local.growth_mib,
        local.hwm_growth_mib,
        verdict(&local),
        local.mb_per_s
    );
    start_moto();
    let bucket = format!("bench-{}", std::process::id());
    rt.block_on(async {
        let r = reqwest::Client::new()
            .put(format!("{MOTO}/{bucket}"))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "create bucket: {}", r.status());
    });
    let s3 = measure(
        &rt,
        &[
            ("DOCPIPE_STORAGE__BACKEND", "s3"),
            ("DOCPIPE_STORAGE__S3__ENDPOINT", MOTO),
            ("DOCPIPE_STORAGE__S3__BUCKET", &bucket),
            ("DOCPIPE_STORAGE__S3__PREFIX", "bench"),
            ("DOCPIPE_STORAGE__S3__ACCESS_KEY_ID", "test"),
            ("DOCPIPE_STORAGE__S3__SECRET_ACCESS_KEY", "test"),
            ("DOCPIPE_BLOBS__INLINE_MAX_BYTES", "0"),
        ],
    );
    println!(
        "  to S3 (moto on loopback, 5 MiB parts): server RSS grew by {:.1} MiB (high-water mark +{:.1}) [<= 32: {}], {:.0} MB/s",
        s3.growth_mib,
        s3.hwm_growth_mib,
        verdict(&s3),
        s3.mb_per_s
    );
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dist/docpipe");
    match std::fs::metadata(&dist) {
        Ok(m) => println!(
            "  release binary (make release: optimised, stripped, assets inside): {:.1} MB",
            m.len() as f64 / 1048576.0
        ),
        Err(_) => println!(
            "  release binary: {} is missing: run `make release`",
            dist.display()
        ),
    }
}
