//! Every file of the shared corpus (`fetch-corpus.sh`: PDFs incl. encrypted
//! and broken ones, Office files, HTML, text, Markdown, e-mails, scans)
//! uploaded to the real binary: each ends `indexed` or `failed` with a code,
//! nothing crashes or stays stuck, and the files that are neither encrypted
//! nor image-only give text: at least 99 % of those in which an independent
//! reader finds text (`pdftotext` for PDFs, the XML text runs for Office
//! files; every other file is expected to have text). Prints a table per
//! format.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

/// Codes a document may fail with: each names what was wrong with the file.
const KNOWN_CODES: &[&str] = &[
    "encrypted",
    "malformed",
    "too_large",
    "timeout",
    "unsupported",
    "ocr_failed",
    // pdf-extract gives up (panics) on some real PDFs, e.g. an unsupported
    // CMap; contained in the parser process and reported with this code.
    "parser_panic",
];

const OFFICE: &[&str] = &["docx", "pptx", "xlsx", "odt", "ods", "odp"];

#[derive(Default)]
struct Row {
    files: usize,
    bytes: u64,
    indexed: usize,
    with_text: usize,
    failed: BTreeMap<String, usize>,
    pages: u64,
    ocr_pages: u64,
    ms: u64,
}

fn manifest() -> Vec<(PathBuf, String, u64)> {
    let dir = corpus_dir();
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            Some((
                dir.join(c.get(1)?),
                c.get(2)?.to_string(),
                c.get(3)?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn every_corpus_file_is_indexed_or_fails_with_a_code() {
    let files = manifest();
    assert!(files.len() > 1000, "the corpus has {} files", files.len());
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let started = Instant::now();

    // Upload from 4 threads, one file per request, as a folder import would.
    let chunks: Vec<Vec<(PathBuf, String, u64)>> = (0..4)
        .map(|i| files.iter().skip(i).step_by(4).cloned().collect())
        .collect();
    let uploaded: Vec<(String, String, u64, Option<String>, PathBuf)> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = chunks
                .into_iter()
                .map(|chunk| {
                    let s = &s;
                    scope.spawn(move || {
                        let mut out = Vec::new();
                        for (path, ext, bytes) in chunk {
                            let name = path.file_name().unwrap().to_string_lossy().to_string();
                            let body = std::fs::read(&path).unwrap();
                            let (code, v) = upload(s, &[(&name, body)], None);
                            match code {
                                202 => {
                                    let d = &v["documents"][0];
                                    let id = d["id"].as_str().unwrap().to_string();
                                    let dup = d["duplicate_of"].as_str().map(str::to_string);
                                    out.push((id, ext, bytes, dup, path));
                                }
                                // Refused at the door (an empty file, a format
                                // docpipe does not read): counted by its code.
                                _ => out.push((
                                    String::new(),
                                    ext,
                                    bytes,
                                    Some(format!("refused:{}", v["code"].as_str().unwrap_or("?"))),
                                    path,
                                )),
                            }
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap())
                .collect()
        });
    let upload_secs = started.elapsed().as_secs_f64();

    // Everything reaches an end: nothing stuck in between.
    wait_until(Duration::from_secs(900), "every document to finish", || {
        let (_, st) = get_json(&s.url("/api/v1/status"));
        ["queued", "extracted", "classified", "enriched"]
            .iter()
            .all(|k| st["stages"][k]["documents"] == 0)
    });
    let total_secs = started.elapsed().as_secs_f64();

    let mut table: BTreeMap<String, Row> = BTreeMap::new();
    let mut refused = Vec::new();
    let mut unknown_codes = Vec::new();
    let (mut eligible, mut eligible_with_text) = (0usize, 0usize);
    let mut without_text = Vec::new();
    for (id, ext, bytes, dup, path) in &uploaded {
        let row = table.entry(ext.clone()).or_default();
        row.files += 1;
        row.bytes += bytes;
        if let Some(d) = dup {
            if d.starts_with("refused:") {
                refused.push((ext.clone(), d.clone()));
                *row.failed.entry(d.clone()).or_default() += 1;
                continue;
            }
        }
        // A duplicate upload points at the first copy: judge that one.
        let target = dup.as_deref().unwrap_or(id);
        let d = doc(&s, target);
        let (_, events) = get_json(&s.url(&format!("/api/v1/documents/{target}/events")));
        let extracted = events["events"]
            .as_array()
            .and_then(|evs| {
                evs.iter()
                    .rev()
                    .find(|e| e["kind"] == "extracted")
                    .map(|e| e["detail"].clone())
            })
            .unwrap_or(Value::Null);
        let chars = extracted["chars"].as_u64().unwrap_or(0);
        row.ms += extracted["ms"].as_u64().unwrap_or(0);
        row.pages += d["pages"].as_u64().unwrap_or(0);
        let ocr_pages = d["metadata"]["ocr_pages"].as_array().map_or(0, Vec::len) as u64;
        row.ocr_pages += ocr_pages;
        let image_only = d["mime"].as_str().is_some_and(|m| m.starts_with("image/"))
            || (ocr_pages > 0 && Some(ocr_pages) == d["pages"].as_u64());
        match d["stage"].as_str() {
            Some("indexed") => {
                row.indexed += 1;
                if chars > 0 {
                    row.with_text += 1;
                }
                if OFFICE.contains(&ext.as_str()) {
                    assert!(
                        !d["mime"].as_str().unwrap().contains("zip"),
                        "{path:?}: the precise type is recorded: {d}"
                    );
                }
            }
            Some("failed") => {
                let code = d["error"]["code"].as_str().unwrap_or("?").to_string();
                if !KNOWN_CODES.contains(&code.as_str()) {
                    unknown_codes.push((ext.clone(), code.clone(), d["error"].clone()));
                }
                *row.failed.entry(code).or_default() += 1;
            }
            other => panic!("document {target} ({ext}) ended {other:?}: {d}"),
        }
        let encrypted = d["error"]["code"] == "encrypted";
        let text_expected = match ext.as_str() {
            "pdf" => pdf_has_text(path),
            e if OFFICE.contains(&e) => office_has_text(&std::fs::read(path).unwrap()),
            _ => true,
        };
        if !encrypted && !image_only && text_expected {
            eligible += 1;
            if chars > 0 {
                eligible_with_text += 1;
            } else {
                without_text.push(format!(
                    "{ext} {} {}",
                    d["filename"],
                    d["error"]["code"].as_str().unwrap_or("indexed, empty")
                ));
            }
        }
    }

    println!(
        "\n{} files uploaded in {upload_secs:.1} s; all finished after {total_secs:.1} s",
        uploaded.len()
    );
    println!(
        "{:<6} {:>6} {:>8} {:>8} {:>7} {:>7} {:>10} {:>10}  failed by code",
        "format", "files", "MB", "indexed", "text", "pages", "MB/s", "pages/s"
    );
    for (ext, r) in &table {
        // Throughput of one extract worker: bytes (pages) over the summed
        // time each document took to read, OCR included.
        let secs = (r.ms as f64 / 1000.0).max(0.001);
        let failed: Vec<String> = r.failed.iter().map(|(c, n)| format!("{c}={n}")).collect();
        println!(
            "{:<6} {:>6} {:>8.1} {:>8} {:>7} {:>7} {:>10.2} {:>10}  {}",
            ext,
            r.files,
            r.bytes as f64 / 1e6,
            r.indexed,
            r.with_text,
            if r.pages > 0 {
                format!("{}", r.pages)
            } else {
                "-".into()
            },
            r.bytes as f64 / 1e6 / secs,
            if r.pages > 0 {
                format!("{:.1}", r.pages as f64 / secs)
            } else {
                "-".into()
            },
            failed.join(" ")
        );
    }
    let ocr: u64 = table.values().map(|r| r.ocr_pages).sum();
    let pid = s.pid();
    println!(
        "OCR pages: {ocr}; text from {eligible_with_text} of {eligible} files that are neither \
         encrypted nor image-only and hold text; server peak RSS {} MiB",
        vm_hwm_mib(pid)
    );
    if !without_text.is_empty() {
        println!("without text: {without_text:#?}");
    }

    assert!(
        unknown_codes.is_empty(),
        "failures without a known code: {unknown_codes:#?}"
    );
    assert!(
        refused.is_empty(),
        "every corpus file is a format docpipe reads: {refused:?}"
    );
    assert!(
        eligible_with_text * 100 >= eligible * 99,
        "text from only {eligible_with_text} of {eligible}: {without_text:#?}"
    );
    // The server stays small whatever it reads: parsers and OCR run in
    // processes of their own, under their own limits.
    assert!(
        vm_hwm_mib(pid) < 1024,
        "server peak RSS {} MiB",
        vm_hwm_mib(pid)
    );
    let (_, health) = get_json(&s.url("/healthz"));
    assert_ne!(health, Value::Null, "the server still answers");
}
