//! Extraction benchmark (`make bench`): how fast docpipe reads each format of
//! the shared corpus, PDFs beside `pdftotext` on the same files in the same
//! run, and how well its OCR reads the scans with ground truth in
//! `labeled/ocr-derived` (mean character similarity, target ≥ 0.90).
//!
//! The parsers run here in-process on one thread, as one Extract worker runs
//! them (minus the parser process round trip); OCR runs through the same
//! tesseract/pdftoppm pool as the server.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use docpipe_actors::config::OcrConfig;
use docpipe_actors::extract::{self, detect, ocr::Ocr, ParseLimits};

#[derive(Default)]
struct Row {
    files: usize,
    bytes: u64,
    ok: usize,
    failed: BTreeMap<String, usize>,
    pages: u64,
    time: Duration,
}

fn corpus_root() -> PathBuf {
    PathBuf::from(std::env::var("CORPUS_ROOT").unwrap_or_else(|_| "/tmp/docpipe-corpus".into()))
}

fn manifest(docs: &Path) -> Vec<(PathBuf, String)> {
    let text = std::fs::read_to_string(docs.join("MANIFEST.tsv"))
        .expect("the corpus is missing: run `make corpus`");
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            Some((docs.join(c.get(1)?), c.get(2)?.to_string()))
        })
        .collect()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // `cargo test` runs benches once as tests: nothing to do then
    }
    std::panic::set_hook(Box::new(|_| {}));
    let root = corpus_root();
    let docs = root.join("docs");
    let files = manifest(&docs);
    let limits = ParseLimits::default();

    // 1. Every format, parsed in-process (scans without their OCR).
    let mut table: BTreeMap<String, Row> = BTreeMap::new();
    let mut pdfs = Vec::new();
    for (path, ext) in &files {
        let bytes = std::fs::read(path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy();
        let head = &bytes[..bytes.len().min(8192)];
        let row = table.entry(ext.clone()).or_default();
        row.files += 1;
        row.bytes += bytes.len() as u64;
        let mime = match detect::sniff(head, &name) {
            detect::Sniffed::Supported(m) => m,
            other => {
                *row.failed.entry(format!("{other:?}")).or_default() += 1;
                continue;
            }
        };
        let t = Instant::now();
        let result = std::panic::catch_unwind(|| extract::parse(mime, &bytes, &limits));
        let took = t.elapsed();
        row.time += took;
        match result {
            Ok(Ok(out)) => {
                row.ok += 1;
                row.pages += u64::from(out.pages.unwrap_or(0));
                if mime == detect::PDF {
                    pdfs.push((path.clone(), out.pages.unwrap_or(0), took));
                }
            }
            Ok(Err(e)) => *row.failed.entry(e.code.to_string()).or_default() += 1,
            Err(_) => *row.failed.entry("parser_panic".into()).or_default() += 1,
        }
    }
    println!("\nExtraction, one thread, in-process (OCR excluded):");
    println!(
        "{:<6} {:>6} {:>8} {:>6} {:>9} {:>10} {:>10}  failed",
        "format", "files", "MB", "read", "seconds", "MB/s", "pages/s"
    );
    for (ext, r) in &table {
        let secs = r.time.as_secs_f64().max(1e-6);
        let failed: Vec<String> = r.failed.iter().map(|(c, n)| format!("{c}={n}")).collect();
        println!(
            "{:<6} {:>6} {:>8.1} {:>6} {:>9.3} {:>10.1} {:>10}  {}",
            ext,
            r.files,
            r.bytes as f64 / 1e6,
            r.ok,
            secs,
            r.bytes as f64 / 1e6 / secs,
            if r.pages > 0 {
                format!("{:.0}", r.pages as f64 / secs)
            } else {
                "-".into()
            },
            failed.join(" ")
        );
    }

    // 2. PDFs: docpipe beside pdftotext, the same files, the same run.
    let (mut ours, mut theirs, mut pages) = (Duration::ZERO, Duration::ZERO, 0u64);
    for (path, n, took) in &pdfs {
        let t = Instant::now();
        let out = Command::new("pdftotext")
            .args(["-q", "-enc", "UTF-8"])
            .arg(path)
            .arg("-")
            .output();
        if out.is_err() {
            println!("pdftotext is not installed (make deps): no comparison");
            break;
        }
        theirs += t.elapsed();
        ours += *took;
        pages += u64::from(*n);
    }
    if pages > 0 {
        println!(
            "\nPDF text, {} files, {pages} pages: docpipe {:.0} pages/s ({:.2} s), \
             pdftotext {:.0} pages/s ({:.2} s, process start included)",
            pdfs.len(),
            pages as f64 / ours.as_secs_f64(),
            ours.as_secs_f64(),
            pages as f64 / theirs.as_secs_f64(),
            theirs.as_secs_f64()
        );
    }

    // 3. OCR quality and speed on the scans with ground truth.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let ocr = rt.block_on(Ocr::probe(
        &OcrConfig {
            workers: 1,
            // `make bench` points this at the data with the legacy engine
            // (fetched by `make deps`).
            tessdata_dir: std::env::var("OCR_TESSDATA_DIR").unwrap_or_default(),
            ..OcrConfig::default()
        },
        scratch.path().to_path_buf(),
    ));
    if !ocr.available() {
        println!(
            "\nOCR not available ({:?}): no OCR figures",
            ocr.status().reason
        );
        return;
    }
    let dir = root.join("labeled/ocr-derived");
    let mut scans: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    scans.retain(|p| p.extension().is_some_and(|e| e == "jpg" || e == "png"));
    scans.sort();
    let (mut sims, mut raws) = (Vec::new(), Vec::new());
    let t = Instant::now();
    println!(
        "\nOCR on {} (one tesseract thread; legacy engine for low-confidence pages: {}):",
        dir.display(),
        if ocr.status().legacy_engine {
            "yes"
        } else {
            "no, set OCR_TESSDATA_DIR to data that has it (make deps)"
        }
    );
    for scan in &scans {
        let gt_path = scan.with_extension("gt.txt");
        let Ok(truth) = std::fs::read_to_string(&gt_path) else {
            continue;
        };
        let bytes = std::fs::read(scan).unwrap();
        let page = Instant::now();
        let read = rt.block_on(ocr.image(&bytes)).unwrap_or_default();
        let (text, confidence, reread) = (read.text, read.confidence, read.reread);
        let sim = similarity(&text, &truth, false);
        let raw = similarity(&text, &truth, true);
        println!(
            "  {:<32} similarity {sim:.3} (leaders kept: {raw:.3})  confidence {:.0}{}  {:.1} s",
            scan.file_name().unwrap().to_string_lossy(),
            confidence.unwrap_or(0.0),
            if reread { " (legacy engine)" } else { "" },
            page.elapsed().as_secs_f64()
        );
        sims.push(sim);
        raws.push(raw);
    }
    if !sims.is_empty() {
        let mean = sims.iter().sum::<f64>() / sims.len() as f64;
        let raw = raws.iter().sum::<f64>() / raws.len() as f64;
        println!(
            "OCR mean character similarity {mean:.3} over {} pages (target ≥ 0.90: {}; \
             {raw:.3} with dot leaders compared char by char), {:.2} pages/s",
            sims.len(),
            if mean >= 0.90 { "met" } else { "MISSED" },
            sims.len() as f64 / t.elapsed().as_secs_f64()
        );
    }
}

/// 1 − (Levenshtein distance / longer length) over the texts with layout
/// folded away on both sides: whitespace runs become one space, and so do
/// dot leaders (". . . . ." in a table of contents), whose length is the
/// renderer's choice and not content. `raw` keeps the leaders.
fn similarity(a: &str, b: &str, raw: bool) -> f64 {
    let fold = |s: &str| {
        let mut out = String::with_capacity(s.len());
        let mut dots = 0;
        for word in s.split_whitespace() {
            let leader = !raw && !word.is_empty() && word.chars().all(|c| c == '.' || c == '…');
            if leader {
                dots += word.len();
                continue;
            }
            if dots > 1 && !out.is_empty() {
                out.push_str(" …");
            }
            dots = 0;
            let word = if raw {
                word.to_string()
            } else {
                collapse_dot_runs(word)
            };
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&word);
        }
        out
    };
    strsim::normalized_levenshtein(&fold(a), &fold(b))
}

/// "Manipulations......797" → "Manipulations … 797".
fn collapse_dot_runs(word: &str) -> String {
    let mut out = String::new();
    let mut run = 0;
    for c in word.chars() {
        if c == '.' {
            run += 1;
            continue;
        }
        match run {
            0 => {}
            1 => out.push('.'),
            _ => out.push_str(" … "),
        }
        run = 0;
        out.push(c);
    }
    match run {
        0 => {}
        1 => out.push('.'),
        _ => out.push_str(" …"),
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}
