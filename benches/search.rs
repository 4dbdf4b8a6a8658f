//! Search at scale: an index and catalog of 100,000 documents cut from the
//! shared corpus's real text (Markdown READMEs, the Python docs, the Debian
//! manuals), each with a type, tags, a language, a date and, for some, a
//! total and an issuer; then the real binary serves it and this measures,
//! over HTTP, one query at a time:
//!
//! - 1–3 word queries (words that follow each other in the corpus), with
//!   snippets and the four facets;
//! - the same with filters (a type, a tag, a date range);
//! - a comparison on a field, sorted by the field;
//! - filters alone (no words), with facets;
//!
//! - with the built-in embedder's table (`make deps`; `EMBED_TABLE`), every
//!   document's passages get their vectors too, and the same 1–3 word
//!   queries run in hybrid mode (words and meaning, fused) and in semantic
//!   mode;
//!
//! and prints p50 / p95 / p99 of each. Targets: full-text p95 ≤ 10 ms,
//! hybrid p95 ≤ 25 ms.
//!
//! Environment: BENCH_SEARCH_DOCS (default 100000), BENCH_QUERIES (default
//! 300 per kind), CORPUS_ROOT, EMBED_TABLE.

mod common;

use std::time::Instant;

use docpipe_actors::embed::chunk;
use docpipe_actors::embed::table::StaticTable;
use docpipe_actors::embed::vectors::ChunkVector;
use docpipe_actors::model::{Kind, NewDocument, Origin};
use docpipe_actors::store::documents::{write_insert, write_text};
use docpipe_actors::store::index::{IndexDoc, IndexMeta, SearchIndex};
use docpipe_actors::store::schema::open_writer;
use docpipe_actors::store::vectors::write_vectors;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The corpus's text files, concatenated (a few tens of MB).
fn corpus_text() -> String {
    let root = std::path::PathBuf::from(
        std::env::var("CORPUS_ROOT").unwrap_or_else(|_| "/tmp/docpipe-corpus".into()),
    )
    .join("docs");
    let mut files = Vec::new();
    for (dir, ext) in [
        ("markdown-crates", "md"),
        ("html-python-docs", "txt"),
        ("debian-manuals/debian-policy", "txt"),
        ("debian-manuals/developers-reference", "txt"),
    ] {
        let mut v: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e} (run `make corpus`)"))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == ext))
            .collect();
        v.sort();
        files.extend(v);
    }
    let mut text = String::new();
    for f in files {
        if let Ok(t) = std::fs::read_to_string(&f) {
            text.push_str(&t);
            text.push('\n');
        }
    }
    assert!(text.len() > 1_000_000, "too little corpus text");
    text
}

/// A small deterministic generator (xorshift).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn boundary(t: &str, mut i: usize) -> usize {
    while i < t.len() && !t.is_char_boundary(i) {
        i += 1;
    }
    i.min(t.len())
}

const TYPES: [&str; 8] = [
    "invoice",
    "receipt",
    "contract",
    "letter",
    "manual",
    "report",
    "statement",
    "note",
];
const TAGS: [&str; 12] = [
    "tax",
    "home",
    "work",
    "insurance",
    "car",
    "health",
    "bank",
    "archive",
    "todo",
    "family",
    "travel",
    "2024",
];
const ISSUERS: [&str; 6] = [
    "Acme Widgets GmbH",
    "Northwind Traders",
    "Globex Corporation",
    "Initech LLC",
    "Umbrella plc",
    "Stark Industries",
];

/// The built-in embedder's table, if `make deps` made it.
fn table() -> Option<(String, StaticTable)> {
    let path = std::env::var("EMBED_TABLE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.deps/embed/all-MiniLM-L6-v2.dpemb"
        )
        .into()
    });
    let t = StaticTable::load(std::path::Path::new(&path)).ok()?;
    Some((path, t))
}

fn build(dir: &std::path::Path, n: usize, corpus: &str, table: Option<&StaticTable>) -> f64 {
    let mut conn = open_writer(&dir.join("catalog.sqlite"), "normal").unwrap();
    let idx = SearchIndex::open(&dir.join("index")).unwrap();
    let mut writer: tantivy::IndexWriter = idx
        .index
        .writer_with_num_threads(2, 256 * 1024 * 1024)
        .unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut scratch = Vec::new();
    let mut passages = 0;
    let start = Instant::now();
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let tx = conn.transaction().unwrap();
        for &i in chunk {
            let len = 800 + rng.below(5000);
            let at = boundary(corpus, rng.below(corpus.len() - len - 1));
            let text = &corpus[at..boundary(corpus, at + len)];
            let d = NewDocument {
                id: format!("{i:032x}"),
                workspace: "default".into(),
                filename: format!("doc{i}.txt"),
                title: None,
                mime: "text/plain".into(),
                size: text.len() as u64,
                sha256: format!("{i:064x}"),
                inline: None,
                extra: Default::default(),
            };
            write_insert(&tx, &d, &Origin::default(), 0).unwrap();
            let seq = tx.last_insert_rowid();
            write_text(
                &tx,
                seq,
                &docpipe_actors::model::Extracted {
                    text: text.to_string(),
                    ..Default::default()
                },
            )
            .unwrap();
            let doc_type = TYPES[rng.below(TYPES.len())];
            let tags: Vec<String> = (0..rng.below(4))
                .map(|_| TAGS[rng.below(TAGS.len())].to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let created = format!(
                "{}-{:02}-{:02}",
                2015 + rng.below(11),
                1 + rng.below(12),
                1 + rng.below(28)
            );
            let mut fields = Vec::new();
            if rng.below(10) < 3 {
                fields.push((
                    "total".to_string(),
                    Kind::Money,
                    format!("{}.{:02}", rng.below(5000), rng.below(100)),
                ));
                fields.push((
                    "issuer".to_string(),
                    Kind::Party,
                    ISSUERS[rng.below(ISSUERS.len())].to_string(),
                ));
            }
            let language = match rng.below(10) {
                0 => "deu",
                1 => "fra",
                _ => "eng",
            };
            let meta = IndexMeta {
                tags,
                language: Some(language.into()),
                created: Some(created.clone()),
                added_ms: 1_700_000_000_000 + i as i64 * 1000,
                fields,
            };
            writer
                .add_document(idx.make_doc(&IndexDoc {
                    id: &d.id,
                    seq,
                    workspace: "default",
                    title: &d.filename,
                    filename: &d.filename,
                    body: text,
                    doc_type: Some(doc_type),
                    meta: &meta,
                }))
                .unwrap();
            tx.execute(
                "UPDATE documents SET stage = 'indexed', doc_type = ?2, doc_date = ?3,
                 language = ?4 WHERE seq = ?1",
                rusqlite::params![seq, doc_type, created, language],
            )
            .unwrap();
            if let Some(t) = table {
                // As the Embedder does: passages (the title leads the
                // first), their vectors, stored with the document's row.
                let mut chunks = Vec::new();
                for (no, (c, passage)) in chunk::passages(&d.filename, text, 1000)
                    .into_iter()
                    .enumerate()
                {
                    if let Some(v) = t.embed(&passage, &mut scratch) {
                        chunks.push(ChunkVector::new(no as u32, c.page, c.start, c.end, &v));
                    }
                }
                passages += chunks.len();
                assert!(write_vectors(&tx, seq, 0, &t.id, &chunks).unwrap());
            }
        }
        tx.commit().unwrap();
        writer.commit().unwrap();
    }
    writer.wait_merging_threads().unwrap();
    if table.is_some() {
        println!("  {passages} passages embedded with the documents");
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// 1–3 words that follow each other in the corpus, each of four letters or
/// more.
fn queries(corpus: &str, k: usize, rng: &mut Rng) -> Vec<String> {
    let words: Vec<&str> = corpus
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() >= 4 && w.chars().all(|c| c.is_ascii_alphabetic()))
        .collect();
    (0..k)
        .map(|j| {
            let n = 1 + j % 3;
            let at = rng.below(words.len() - n);
            words[at..at + n].join(" ").to_lowercase()
        })
        .collect()
}

fn percentiles(mut ms: Vec<f64>) -> (f64, f64, f64) {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |p: f64| ms[((ms.len() as f64 * p) as usize).min(ms.len() - 1)];
    (at(0.50), at(0.95), at(0.99))
}

fn main() {
    let n = env_usize("BENCH_SEARCH_DOCS", 100_000);
    let k = env_usize("BENCH_QUERIES", 300);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let corpus = corpus_text();
    let table = table();
    if table.is_none() {
        println!("  (no embedder table: run `make deps`; hybrid is not measured)");
    }
    let rate = build(&data, n, &corpus, table.as_ref().map(|t| &t.1));
    let index_mb = std::fs::read_dir(data.join("index"))
        .unwrap()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum::<u64>() as f64
        / 1e6;
    println!(
        "docpipe search benchmark: {n} documents cut from {:.1} MB of corpus text (built at {rate:.0} docs/s; index {index_mb:.0} MB)",
        corpus.len() as f64 / 1e6
    );

    let served = common::serve(|cmd| {
        cmd.arg("--data-dir").arg(&data);
        match &table {
            Some((path, _)) => cmd.env("DOCPIPE_EMBED__TABLE", path),
            None => cmd.env("DOCPIPE_EMBED__BACKEND", "off"),
        };
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rng = Rng(42);
    let words = queries(&corpus, k, &mut rng);
    let run = |label: &str, params: &dyn Fn(usize) -> Vec<(String, String)>| -> f64 {
        let client = served.client.clone();
        let url = format!("{}/api/v1/search", served.base);
        let (lat, hits) = rt.block_on(async {
            // Warm the caches the way a running server has them.
            for i in 0..20 {
                let _ = client.get(&url).query(&params(i)).send().await;
            }
            let mut lat = Vec::with_capacity(k);
            let mut hits = 0u64;
            for i in 0..k {
                let t = Instant::now();
                let r = client.get(&url).query(&params(i)).send().await.unwrap();
                assert_eq!(r.status(), 200, "{:?}", params(i));
                let v: serde_json::Value = r.json().await.unwrap();
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
                hits += v["total"].as_u64().unwrap_or(0);
            }
            (lat, hits)
        });
        let (p50, p95, p99) = percentiles(lat);
        println!(
            "  {label:<58} p50 {p50:>6.2} ms  p95 {p95:>6.2} ms  p99 {p99:>6.2} ms  (mean total {:.0})",
            hits as f64 / k as f64
        );
        p95
    };
    let p = |pairs: &[(&str, String)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.clone()))
            .collect()
    };
    let facets = "type,tags,year,language".to_string();
    let full = run("1-3 words, snippets, four facets", &|i| {
        p(&[
            ("q", words[i].clone()),
            ("facets", facets.clone()),
            ("mode", "fulltext".into()),
        ])
    });
    let filtered = run("1-3 words, type + tag + date range, snippets", &|i| {
        p(&[
            ("q", words[i].clone()),
            ("type", TYPES[i % TYPES.len()].to_string()),
            ("tag", TAGS[i % TAGS.len()].to_string()),
            ("from", format!("{}-01-01", 2015 + i % 8)),
            ("to", format!("{}-12-31", 2018 + i % 8)),
            ("mode", "fulltext".into()),
        ])
    });
    run("1 word + total>=N, sorted by total", &|i| {
        let w = words[i].split(' ').next().unwrap().to_string();
        p(&[
            ("q", format!("{w} total>={}", 100 * (i % 30))),
            ("sort", "total".into()),
            ("mode", "fulltext".into()),
        ])
    });
    run(
        "filters alone (type, language), four facets, by date",
        &|i| {
            p(&[
                ("type", TYPES[i % TYPES.len()].to_string()),
                ("language", "eng".into()),
                ("facets", facets.clone()),
                ("sort", "date".into()),
            ])
        },
    );
    let met = |ok: bool| if ok { "met" } else { "MISSED" };
    let hybrid = table.as_ref().map(|_| {
        let h = run(
            "1-3 words, hybrid (words + meaning), snippets, four facets",
            &|i| {
                p(&[
                    ("q", words[i].clone()),
                    ("facets", facets.clone()),
                    ("mode", "hybrid".into()),
                ])
            },
        );
        run("1-3 words, semantic, snippets", &|i| {
            p(&[("q", words[i].clone()), ("mode", "semantic".into())])
        });
        h
    });
    println!(
        "  targets: full-text p95 <= 10 ms [{}], filtered p95 <= 10 ms [{}], hybrid p95 <= 25 ms [{}]",
        met(full <= 10.0),
        met(filtered <= 10.0),
        hybrid.map_or("not measured", |h| met(h <= 25.0))
    );
}
