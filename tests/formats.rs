//! Hostile files through the real binary: zip bombs, truncated files of each
//! format, huge page counts, names that lie. (Every corpus file end to end:
//! tests/corpus.rs.)

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

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

/// A valid PDF of `pages` empty pages (with its cross-reference table).
fn pdf_with_pages(pages: usize) -> Vec<u8> {
    let kids: Vec<String> = (0..pages).map(|i| format!("{} 0 R", i + 3)).collect();
    let mut objects = vec![
        b"<< /Type /Catalog /Pages 2 0 R >>".to_vec(),
        format!(
            "<< /Type /Pages /Count {pages} /Kids [{}] >>",
            kids.join(" ")
        )
        .into_bytes(),
    ];
    objects.extend(
        (0..pages).map(|_| b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>".to_vec()),
    );
    common::invoices::pdf_file(&objects)
}

fn failure_of(s: &Server, name: &str, bytes: Vec<u8>) -> Value {
    let id = upload_one(s, name, bytes);
    wait_terminal(s, &id, WAIT)
}

#[test]
fn hostile_files_fail_with_their_codes_within_limits() {
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

    // A PDF of 100,000 pages (2 MB) under the default limit of 5,000: it
    // fails before any page is read, and the parser process stays within
    // its address-space limit.
    let huge = pdf_with_pages(100_000);
    let d = failure_of(&s, "huge.pdf", huge);
    assert_eq!(
        (d["stage"].as_str(), d["error"]["code"].as_str()),
        (Some("failed"), Some("too_large")),
        "{d}"
    );
    assert!(
        d["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_pages"),
        "{d}"
    );
    // The same file with few pages is fine.
    let d = failure_of(&s, "small.pdf", pdf_with_pages(3));
    assert_eq!(
        (d["stage"].as_str(), d["pages"].as_u64()),
        (Some("indexed"), Some(3)),
        "{d}"
    );

    // A truncated PDF and RTF of real content.
    let octave = std::fs::read(corpus_dir().join("pdf-octave/octave__refcard-a4.pdf")).unwrap();
    let d = failure_of(&s, "cut.pdf", octave[..octave.len() / 2].to_vec());
    assert_eq!(
        (d["stage"].as_str(), d["error"]["code"].as_str()),
        (Some("failed"), Some("malformed")),
        "{d}"
    );
    let d = failure_of(&s, "cut.rtf", b"{\\rtf1\\ansi {\\b bold".to_vec());
    assert_eq!(d["error"]["code"], "malformed", "{d}");
    // (Text, Markdown, HTML, CSV and e-mail cannot tell a cut from an end:
    // they are indexed with the text they have.)

    // None of it cost the server memory: the parser processes took the
    // blows, each under its own address-space limit.
    let peak = vm_hwm_mib(s.pid());
    println!("server peak RSS after the hostile files: {peak} MiB");
    assert!(peak < 256, "server peak RSS {peak} MiB");

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
