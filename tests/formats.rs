//! Office formats end to end: every DOCX, PPTX, XLSX, ODT, ODS and ODP of the
//! shared corpus through the real binary, and hostile containers.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const OFFICE: &[&str] = &["docx", "pptx", "xlsx", "odt", "ods", "odp"];
const WAIT: Duration = Duration::from_secs(120);

fn office_files() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let mut files: Vec<PathBuf> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            OFFICE
                .contains(&cols.get(2).copied()?)
                .then(|| dir.join(cols[1]))
        })
        .collect();
    files.sort();
    files
}

/// An oracle independent of docpipe's parser: does any XML part of the
/// container hold a text run (`<w:t>`, `<a:t>`, ODF paragraphs, or cells)?
fn has_text(bytes: &[u8]) -> bool {
    let Ok(mut zip) = zip::ZipArchive::new(std::io::Cursor::new(bytes)) else {
        return false;
    };
    let re_ooxml = |x: &str| {
        x.split("<w:t").chain(x.split("<a:t")).skip(1).any(|rest| {
            rest.split_once('>').is_some_and(|(attrs, after)| {
                (attrs.is_empty() || attrs.starts_with(' '))
                    && after
                        .split('<')
                        .next()
                        .is_some_and(|t| !t.trim().is_empty())
            })
        })
    };
    let re_odf = |x: &str| {
        x.split("<text:p")
            .chain(x.split("<text:h"))
            .skip(1)
            .any(|rest| {
                rest.split_once('>').is_some_and(|(_, after)| {
                    after
                        .split('<')
                        .next()
                        .is_some_and(|t| !t.trim().is_empty())
                })
            })
    };
    for i in 0..zip.len() {
        let Ok(mut f) = zip.by_index(i) else { continue };
        let Ok(name) = f.name().map(|n| n.to_string()) else {
            continue;
        };
        let wanted = name == "content.xml"
            || name.starts_with("word/document")
            || name.starts_with("ppt/slides/slide")
            || name.starts_with("xl/sharedStrings")
            || name.starts_with("xl/worksheets/");
        if !wanted {
            continue;
        }
        let mut x = String::new();
        if f.read_to_string(&mut x).is_err() {
            continue;
        }
        if re_ooxml(&x) || re_odf(&x) || (name.starts_with("xl/") && x.contains("<v>")) {
            return true;
        }
    }
    false
}

#[derive(Default)]
struct Row {
    files: usize,
    bytes: u64,
    indexed: usize,
    failed: BTreeMap<String, usize>,
    with_text: usize,
    text_expected: usize,
    text_found: usize,
}

#[test]
fn every_office_file_of_the_corpus_is_read_or_fails_with_a_code() {
    let files = office_files();
    assert!(files.len() >= 100, "corpus too small: {}", files.len());
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let start = Instant::now();
    let mut uploaded = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        let ext = f.extension().unwrap().to_string_lossy().to_lowercase();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let (code, v) = upload(&s, &[(&name, bytes.clone())], None);
        assert_eq!(code, 202, "{name}: {v}");
        let d = &v["documents"][0];
        if d["duplicate_of"].is_string() {
            continue;
        }
        uploaded.push((ext, d["id"].as_str().unwrap().to_string(), bytes, name));
    }
    let mut table: BTreeMap<String, Row> = BTreeMap::new();
    let mut missing_text = Vec::new();
    for (ext, id, bytes, name) in &uploaded {
        let d = wait_terminal(&s, id, WAIT);
        let row = table.entry(ext.clone()).or_default();
        row.files += 1;
        row.bytes += bytes.len() as u64;
        let expected = has_text(bytes);
        row.text_expected += expected as usize;
        match d["stage"].as_str() {
            Some("indexed") => {
                row.indexed += 1;
                let (code, text) = get_json(&s.url(&format!("/api/v1/documents/{id}/text")));
                assert_eq!(code, 200);
                let text = text.as_str().unwrap_or("").trim().to_string();
                if !text.is_empty() {
                    row.with_text += 1;
                }
                if expected {
                    if text.is_empty() {
                        missing_text.push(name.clone());
                    } else {
                        row.text_found += 1;
                    }
                }
                assert!(
                    !d["mime"].as_str().unwrap().contains("zip"),
                    "{name}: the precise type is recorded: {d}"
                );
            }
            _ => {
                let code = d["error"]["code"].as_str().unwrap_or("?").to_string();
                assert!(
                    ["malformed", "too_large", "unsupported", "encrypted"].contains(&code.as_str()),
                    "{name}: failed with an unexpected code: {d}"
                );
                if expected {
                    missing_text.push(format!("{name} ({code})"));
                }
                *row.failed.entry(code).or_default() += 1;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!("\nformat  files  indexed  with text  failed (by code)          MB/s (upload to terminal, all formats together)");
    let (mut expected, mut found) = (0, 0);
    for (ext, r) in &table {
        println!(
            "{ext:<6} {:>6} {:>8} {:>10}  {:<24} {:>6.2}",
            r.files,
            r.indexed,
            r.with_text,
            format!("{:?}", r.failed),
            r.bytes as f64 / 1e6 / secs
        );
        expected += r.text_expected;
        found += r.text_found;
    }
    println!("files whose XML holds text: {expected}; docpipe found text in {found}; missed: {missing_text:?}");
    assert!(
        found * 100 >= expected * 99,
        "fewer than 99 % of the files with text gave text: {missing_text:?}"
    );
    // Nothing is left half-way.
    let (_, st) = get_json(&s.url("/api/v1/status"));
    for stage in ["queued", "extracted", "classified"] {
        assert_eq!(st["stages"][stage]["documents"], 0, "{st}");
    }
}

fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        for (name, body) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(body).unwrap();
        }
        w.finish().unwrap();
    }
    buf.into_inner()
}

fn failure_of(s: &Server, name: &str, bytes: Vec<u8>) -> Value {
    let id = upload_one(s, name, bytes);
    wait_terminal(s, &id, WAIT)
}

#[test]
fn hostile_office_files_fail_with_their_codes_within_limits() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &format!("{FAST_CONFIG}\n[pipeline.extract]\nmax_zip_mb = 16\nmax_memory_mb = 512\n"),
        &[],
    );
    // A zip bomb: 64 MiB of zeros in a DOCX of well under 1 MiB.
    let zeros = vec![0u8; 64 * 1024 * 1024];
    let bomb = zip_with(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("word/document.xml", &zeros),
    ]);
    assert!(bomb.len() < 1024 * 1024, "{}", bomb.len());
    let d = failure_of(&s, "bomb.docx", bomb);
    assert_eq!(
        (d["stage"].as_str(), d["error"]["code"].as_str()),
        (Some("failed"), Some("too_large")),
        "{d}"
    );

    // A truncated copy of a real file of each format.
    for ext in OFFICE {
        let Some(real) = office_files().into_iter().find(|f| {
            f.extension().is_some_and(|e| e == *ext) && std::fs::metadata(f).unwrap().len() > 4096
        }) else {
            continue;
        };
        let bytes = std::fs::read(&real).unwrap();
        let cut = bytes[..bytes.len() / 2].to_vec();
        let d = failure_of(&s, &format!("truncated.{ext}"), cut);
        assert_eq!(
            (d["stage"].as_str(), d["error"]["code"].as_str()),
            (Some("failed"), Some("malformed")),
            "truncated {ext}: {d}"
        );
    }

    // Names lie; content decides. A PDF called .docx is read as a PDF, and a
    // DOCX called .pdf as a DOCX.
    let d = failure_of(&s, "really-a-pdf.docx", fixture("quokka.pdf"));
    assert_eq!(
        (d["stage"].as_str(), d["mime"].as_str()),
        (Some("indexed"), Some("application/pdf")),
        "{d}"
    );
    let docx = zip_with(&[
        ("[Content_Types].xml", b"<Types/>"),
        ("word/document.xml", br#"<w:document xmlns:w="w"><w:body><w:p><w:r><w:t>wombatfile</w:t></w:r></w:p></w:body></w:document>"#),
    ]);
    let d = failure_of(&s, "really-a-docx.pdf", docx);
    assert_eq!(d["stage"], "indexed", "{d}");
    assert!(
        d["mime"].as_str().unwrap().contains("wordprocessingml"),
        "{d}"
    );
    assert_eq!(search(&s, "wombatfile")["total"], 1);
    // RTF, named as text: read as RTF; cut short: malformed.
    let rtf = br"{\rtf1\ansi{\fonttbl{\f0 Arial;}}\pard Numbat budget for \'e9t\'e9\par}".to_vec();
    let d = failure_of(&s, "memo.txt", rtf.clone());
    assert_eq!(
        (d["stage"].as_str(), d["mime"].as_str()),
        (Some("indexed"), Some("application/rtf")),
        "{d}"
    );
    assert_eq!(search(&s, "numbat")["total"], 1);
    let d = failure_of(&s, "cut.rtf", rtf[..rtf.len() - 12].to_vec());
    assert_eq!(d["error"]["code"], "malformed", "{d}");
    // A plain zip archive is not a document.
    let d = failure_of(&s, "photos.zip", zip_with(&[("a.jpg", b"jpeg bytes")]));
    assert_eq!(d["error"]["code"], "unsupported", "{d}");
    // The server is fine throughout.
    assert_eq!(get_json(&s.url("/readyz")).0, 200);
}
