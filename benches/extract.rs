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
    ocr_per_source(&root, &rt, &ocr);
}

/// The pages scanned per source: (source, PDFs under docs/ or labeled/,
/// pages of each). The last source is held out: nothing in the OCR
/// settings is tuned on it.
const SOURCES: [(&str, &str, &[u32]); 6] = [
    (
        "octave (tuned on)",
        "docs/pdf-octave/octave__octave.pdf",
        &[12, 40, 200],
    ),
    (
        "debian-devref",
        "docs/debian-manuals/developers-reference/developers-reference__developers-reference.pdf",
        &[8, 30, 60, 90],
    ),
    (
        "debian-reference",
        "docs/debian-manuals/debian-reference-en/debian-reference__debian-reference.en.pdf",
        &[12, 40, 80, 120],
    ),
    ("pypdf test PDFs", "docs/pdf-pypdf", &[1]),
    ("pdf-parse test PDFs", "docs/pdf-pdf-parse", &[1]),
    ("invoices (held out)", "labeled/invoices-real", &[1]),
];

/// OCR per source: pages of other documents scanned the way
/// `fetch-corpus.sh` makes the shared scans (200 dpi grey, rotated 0.7°,
/// blurred 0.6, Gaussian noise 0.25, JPEG 85), each against its own text.
/// A page's text has two right orders — as laid out (`pdftotext -layout`:
/// a table's rows whole, two columns' lines interleaved) and as read (a
/// column after the other) — and tesseract may follow either, so a page
/// scores its similarity to the nearer one; the figure against the layout
/// alone and the order-free word F1 are printed beside it. The scans are
/// made once, under `labeled/ocr-sources/`.
fn ocr_per_source(root: &Path, rt: &tokio::runtime::Runtime, ocr: &Ocr) {
    let out = root.join("labeled/ocr-sources");
    println!("\nOCR per source (scans derived like the shared ones, from other documents):");
    println!(
        "  {:<22} {:>5} {:>10} {:>8} {:>9} {:>8} {:>9}",
        "source", "pages", "similarity", "worst", "vs layout", "word F1", "s/page"
    );
    let mut all = Vec::new();
    for (name, rel, pages) in SOURCES {
        let path = root.join(rel);
        let mut pdfs: Vec<PathBuf> = if path.is_dir() {
            std::fs::read_dir(&path)
                .map(|d| d.flatten().map(|e| e.path()).collect())
                .unwrap_or_default()
        } else {
            vec![path]
        };
        pdfs.retain(|p| p.extension().is_some_and(|e| e == "pdf"));
        pdfs.sort();
        let dir = out.join(name.split(' ').next().unwrap_or(name));
        let _ = std::fs::create_dir_all(&dir);
        let mut scans = Vec::new();
        for pdf in &pdfs {
            for &pg in pages {
                if scans.len() >= 8 {
                    break;
                }
                let stem = format!("{}_p{pg}", pdf.file_stem().unwrap().to_string_lossy());
                let (jpg, gt, flow) = (
                    dir.join(format!("{stem}.jpg")),
                    dir.join(format!("{stem}.gt.txt")),
                    dir.join(format!("{stem}.gt-flow.txt")),
                );
                if !jpg.exists() && !derive(pdf, pg, &jpg, &gt) {
                    continue;
                }
                if !flow.exists() && !page_text(pdf, pg, &flow, false) {
                    continue;
                }
                // Pages with little text say little about OCR.
                match (std::fs::read_to_string(&gt), std::fs::read_to_string(&flow)) {
                    (Ok(t), Ok(f)) if t.split_whitespace().count() >= 40 => scans.push((jpg, t, f)),
                    _ => {}
                }
            }
        }
        let t = Instant::now();
        // Per page: (best of the two orders, against the layout, word F1).
        let scores: Vec<(f64, f64, f64)> = scans
            .iter()
            .map(|(jpg, layout, flow)| {
                let read = rt
                    .block_on(ocr.image(&std::fs::read(jpg).unwrap()))
                    .unwrap_or_default();
                let by_layout = similarity(&read.text, layout, false);
                let by_flow = similarity(&read.text, flow, false);
                (
                    by_layout.max(by_flow),
                    by_layout,
                    word_f1(&read.text, layout),
                )
            })
            .collect();
        let secs = t.elapsed().as_secs_f64();
        let sims: Vec<f64> = scores.iter().map(|s| s.0).collect();
        let mean_of = |f: fn(&(f64, f64, f64)) -> f64| {
            scores.iter().map(f).sum::<f64>() / scores.len().max(1) as f64
        };
        if sims.is_empty() {
            println!(
                "  {name:<22} no pages (run `make corpus labeled`; needs pdftoppm and ImageMagick)"
            );
            continue;
        }
        let mean = sims.iter().sum::<f64>() / sims.len() as f64;
        println!(
            "  {name:<22} {:>5} {mean:>10.3} {:>8.3} {:>9.3} {:>8.3} {:>9.1}",
            sims.len(),
            sims.iter().copied().fold(1.0, f64::min),
            mean_of(|s| s.1),
            mean_of(|s| s.2),
            secs / sims.len() as f64
        );
        all.push((name, mean));
    }
    if let Some(worst) = all.iter().min_by(|a, b| a.1.total_cmp(&b.1)) {
        println!(
            "  lowest source: {} at {:.3} (target ≥ 0.90 on each, held-out included)",
            worst.0, worst.1
        );
    }
}

/// One page of a PDF scanned the way `fetch-corpus.sh` does, with its text
/// as the truth; false when the page cannot be made.
fn derive(pdf: &Path, page: u32, jpg: &Path, gt: &Path) -> bool {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("p");
    let pg = page.to_string();
    let ok = Command::new("pdftoppm")
        .args(["-f", &pg, "-l", &pg, "-r", "200", "-gray", "-png"])
        .arg(pdf)
        .arg(&prefix)
        .status()
        .is_ok_and(|s| s.success());
    let Some(png) = std::fs::read_dir(tmp.path()).ok().and_then(|d| {
        d.flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "png"))
    }) else {
        return false;
    };
    let ok = ok
        && Command::new("/usr/bin/convert")
            .arg(&png)
            .args([
                "-background",
                "white",
                "-rotate",
                "0.7",
                "-blur",
                "0x0.6",
                "-attenuate",
                "0.25",
                "+noise",
                "Gaussian",
                "-colorspace",
                "Gray",
                "-quality",
                "85",
            ])
            .arg(jpg)
            .status()
            .is_ok_and(|s| s.success());
    ok && page_text(pdf, page, gt, true)
}

/// A PDF page's text by pdftotext: laid out as on the page (`-layout`: the
/// lines of side-by-side columns interleaved, table rows kept whole), or in
/// its reading order (a column after the other).
fn page_text(pdf: &Path, page: u32, out: &Path, layout: bool) -> bool {
    let pg = page.to_string();
    let mut cmd = Command::new("pdftotext");
    cmd.args(["-f", &pg, "-l", &pg]);
    if layout {
        cmd.arg("-layout");
    }
    cmd.arg(pdf).arg(out).status().is_ok_and(|s| s.success())
}

/// F1 of the words read against the words of the truth, as multisets, in
/// any order (words trimmed of the punctuation around them, dot leaders
/// left out).
fn word_f1(read: &str, truth: &str) -> f64 {
    let words = |s: &str| {
        let mut m = std::collections::HashMap::<String, i64>::new();
        for w in s.split_whitespace() {
            let w = w.trim_matches(|c: char| !c.is_alphanumeric());
            if !w.is_empty() {
                *m.entry(w.to_string()).or_default() += 1;
            }
        }
        m
    };
    let (r, t) = (words(read), words(truth));
    let common: i64 = r
        .iter()
        .map(|(w, n)| (*n).min(t.get(w).copied().unwrap_or(0)))
        .sum();
    let (nr, nt) = (r.values().sum::<i64>(), t.values().sum::<i64>());
    if common == 0 || nr == 0 || nt == 0 {
        return 0.0;
    }
    let (p, q) = (common as f64 / nr as f64, common as f64 / nt as f64);
    2.0 * p * q / (p + q)
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
