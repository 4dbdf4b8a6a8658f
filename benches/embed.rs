//! The built-in embedder and the vector store (`make bench`):
//!
//! 1. How fast the static table embeds real passages (one thread).
//! 2. The vector store at 1,000,000 passages cut from the shared corpus:
//!    the latency of a query (the 100 nearest documents, as search asks)
//!    and its recall@10 against an exact float search over the same
//!    passages, and the memory the rows take.
//! 3. Ingest of the shared corpus (every document but the images, which
//!    wait for OCR) through the real binary over HTTP, with embedding off
//!    and with the built-in embedder, counted until every document is
//!    indexed (off) or embedded (on). Target: on ≥ 80 % of off.
//!
//! Environment: BENCH_PASSAGES (default 1000000), CORPUS_ROOT, EMBED_TABLE.

mod common;

use std::time::{Duration, Instant};

use docpipe_actors::embed::table::StaticTable;
use docpipe_actors::embed::vectors::{ChunkVector, VectorIndex};
use futures::StreamExt;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn corpus_root() -> std::path::PathBuf {
    std::path::PathBuf::from(
        std::env::var("CORPUS_ROOT").unwrap_or_else(|_| "/tmp/docpipe-corpus".into()),
    )
    .join("docs")
}

/// The corpus's documents: (path, extension).
fn manifest() -> Vec<(std::path::PathBuf, String)> {
    let root = corpus_root();
    std::fs::read_to_string(root.join("MANIFEST.tsv"))
        .expect("the shared corpus is missing: run `make corpus`")
        .lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            Some((root.join(c.get(1)?), c.get(2)?.to_string()))
        })
        .collect()
}

struct Rng(u64);
impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn boundary(t: &str, mut i: usize) -> usize {
    while !t.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)];
    (at(0.5), at(0.95), at(0.99))
}

fn main() {
    let path = std::env::var("EMBED_TABLE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.deps/embed/all-MiniLM-L6-v2.dpemb"
        )
        .into()
    });
    let table = StaticTable::load(std::path::Path::new(&path))
        .unwrap_or_else(|e| panic!("{e:#} (run `make deps`)"));
    let texts: String = manifest()
        .iter()
        .filter(|(_, ext)| matches!(ext.as_str(), "txt" | "md"))
        .filter_map(|(p, _)| std::fs::read_to_string(p).ok())
        .collect::<Vec<_>>()
        .join("\n");
    println!(
        "docpipe embedding benchmark ({}; {:.1} MB of corpus text)",
        table.name,
        texts.len() as f64 / 1e6
    );

    // 1. Embedding rate.
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut scratch = Vec::new();
    let window = |rng: &mut Rng| {
        let at = boundary(&texts, rng.below(texts.len() - 1200));
        &texts[at..boundary(&texts, at + 1000)]
    };
    let sample: Vec<&str> = (0..20_000).map(|_| window(&mut rng)).collect();
    let t = Instant::now();
    let mut made = 0;
    for s in &sample {
        made += table.embed(s, &mut scratch).is_some() as usize;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  embedding: {:.0} passages/s of 1,000 bytes on one thread ({:.1} µs each; {made} made)",
        sample.len() as f64 / secs,
        secs * 1e6 / sample.len() as f64
    );

    // 2. The vector store at many passages.
    let n = env_usize("BENCH_PASSAGES", 1_000_000);
    let index = VectorIndex::new(table.dims);
    let mut exact: Vec<f32> = Vec::with_capacity(n * table.dims);
    let t = Instant::now();
    for i in 0..n {
        let p = window(&mut rng);
        let v = table
            .embed(p, &mut scratch)
            .unwrap_or_else(|| vec![0.0; table.dims]);
        index.replace(i as i64 + 1, &[ChunkVector::new(0, 1, 0, 0, &v)]);
        exact.extend_from_slice(&v);
    }
    println!(
        "  vector store: {n} passages embedded and loaded in {:.0} s; rows take {:.0} MB (8-bit, {} dimensions)",
        t.elapsed().as_secs_f64(),
        n as f64 * (table.dims + 4 + 8 + 4) as f64 / 1e6,
        table.dims
    );
    let queries: Vec<Vec<f32>> = {
        let words: Vec<&str> = texts
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.len() >= 4)
            .collect();
        (0..60)
            .filter_map(|j| {
                let k = 1 + j % 3;
                let at = rng.below(words.len() - k);
                table.embed(&words[at..at + k].join(" "), &mut scratch)
            })
            .collect()
    };
    let mut lat = Vec::new();
    let mut recall = 0.0;
    for q in &queries {
        let t = Instant::now();
        let near = index.nearest(q, 100, &|_| true);
        lat.push(t.elapsed().as_secs_f64() * 1000.0);
        let mut scored: Vec<(f32, i64)> = exact
            .chunks_exact(table.dims)
            .enumerate()
            .map(|(i, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), i as i64 + 1))
            .collect();
        scored.select_nth_unstable_by(10, |a, b| b.0.total_cmp(&a.0));
        let truth: std::collections::HashSet<i64> = scored[..10].iter().map(|s| s.1).collect();
        let got = near
            .iter()
            .take(10)
            .filter(|n| truth.contains(&n.seq))
            .count();
        recall += got as f64 / 10.0;
    }
    let (p50, p95, p99) = percentiles(lat);
    println!(
        "  nearest 100 of {n}: p50 {p50:.1} ms  p95 {p95:.1} ms  p99 {p99:.1} ms; recall@10 against exact float search {:.3} ({} queries)",
        recall / queries.len() as f64,
        queries.len()
    );
    drop(exact);
    drop(index);

    // 3. Ingest with and without the embedder: every document but the
    // images, then the text files alone (where extraction costs least, so
    // embedding weighs most).
    for (label, keep) in [
        (
            "corpus documents",
            &(|e: &str| !matches!(e, "jpg" | "png")) as &dyn Fn(&str) -> bool,
        ),
        ("corpus text and Markdown files", &|e: &str| {
            matches!(e, "txt" | "md")
        }),
    ] {
        let docs: Vec<std::path::PathBuf> = manifest()
            .into_iter()
            .filter(|(_, ext)| keep(ext))
            .map(|(p, _)| p)
            .collect();
        let off = ingest(&docs, None);
        let on = ingest(&docs, Some(&path));
        let ratio = on / off;
        println!(
            "  ingest of {} {label}: {off:.0} docs/s until indexed without embeddings, {on:.0} docs/s until embedded with the built-in embedder ({:.0} %; target >= 80 % [{}])",
            docs.len(),
            ratio * 100.0,
            if ratio >= 0.8 { "met" } else { "MISSED" }
        );
    }
}

/// Uploads every document (8 at a time) to a fresh server and waits until
/// none is in the pipeline and, with a table, none waits for vectors;
/// documents per second.
fn ingest(docs: &[std::path::PathBuf], table: Option<&str>) -> f64 {
    let tmp = tempfile::tempdir().unwrap();
    let served = common::serve(|cmd| {
        cmd.arg("--data-dir").arg(tmp.path().join("data"));
        match table {
            Some(t) => cmd.env("DOCPIPE_EMBED__TABLE", t),
            None => cmd.env("DOCPIPE_EMBED__BACKEND", "off"),
        };
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let url = format!("{}/api/v1/documents", served.base);
    let status = format!("{}/api/v1/status", served.base);
    let client = served.client.clone();
    rt.block_on(async move {
        let start = Instant::now();
        futures::stream::iter(docs.iter().cloned())
            .map(|p| {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let bytes = tokio::fs::read(&p).await.unwrap();
                    let name = p.file_name().unwrap().to_string_lossy().to_string();
                    let form = reqwest::multipart::Form::new().part(
                        "file",
                        reqwest::multipart::Part::bytes(bytes).file_name(name),
                    );
                    let r = client.post(&url).multipart(form).send().await.unwrap();
                    assert!(r.status().is_success(), "upload: {}", r.status());
                }
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        loop {
            let s: serde_json::Value = client
                .get(&status)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let active: u64 = ["queued", "extracted", "classified", "enriched"]
                .iter()
                .map(|k| s["stages"][k]["documents"].as_u64().unwrap_or(0))
                .sum();
            let waiting = s["embed"]["pending"].as_u64().unwrap_or(0);
            if active == 0 && waiting == 0 {
                let done = s["stages"]["indexed"]["documents"].as_u64().unwrap_or(0)
                    + s["stages"]["failed"]["documents"].as_u64().unwrap_or(0);
                let secs = start.elapsed().as_secs_f64();
                return done as f64 / secs;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
}
