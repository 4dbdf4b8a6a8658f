//! End-to-end: the real binary over HTTP, real SQLite, Tantivy and blob files.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

fn tokens(text: &str) -> HashSet<String> {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|t| t.len() >= 6 && t.len() <= 30 && t.chars().all(|c| c.is_alphabetic()))
        .map(|t| t.to_lowercase())
        .collect()
}

/// Real documents of every format this version reads, from the shared corpus.
fn corpus_sample() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let pick = |sub: &str, ext: &str, n: usize| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join(sub))
            .unwrap_or_else(|e| panic!("{sub}: {e}"))
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext)))
            .collect();
        v.sort();
        v.into_iter().step_by(7).take(n).collect()
    };
    let mut files = Vec::new();
    // (The Python docs ship each page as .html and .rst.txt: take only one of them.)
    files.extend(pick("html-python-docs", "html", 12));
    files.extend(pick("debian-manuals/debian-policy", "txt", 4));
    files.extend(pick("debian-manuals/developers-reference", "txt", 4));
    files.extend(pick("debian-manuals/debian-reference-en", "html", 3));
    files.extend(pick("markdown-crates", "md", 16));
    files.extend(
        pick("pdf-pdf-parse", "pdf", 5)
            .into_iter()
            .filter(|p| !p.ends_with("03-invalid.pdf")),
    );
    files.extend(pick("invoice-facturx", "pdf", 1));
    files
}

#[test]
fn corpus_documents_are_indexed_and_found_by_their_own_words() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let mut ids: Vec<(String, String)> = Vec::new(); // (id, file)
    for path in corpus_sample() {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let (code, v) = upload(&s, &[(&name, std::fs::read(&path).unwrap())], None);
        assert_eq!(code, 202, "{name}: {v}");
        let d = &v["documents"][0];
        if d["duplicate_of"].is_null() {
            ids.push((d["id"].as_str().unwrap().to_string(), name));
        }
    }
    for f in ["quokka.pdf", "latin1.txt", "notes.md", "page.html"] {
        ids.push((upload_one(&s, f, fixture(f)), f.to_string()));
    }
    assert!(ids.len() >= 40, "too few documents: {}", ids.len()); // 45 expected

    let mut texts = HashMap::new();
    for (id, name) in &ids {
        let d = wait_terminal(&s, id, WAIT);
        assert_eq!(d["stage"], "indexed", "{name} did not reach indexed: {d}");
        let (code, headers, body) = common::reqwest::send(
            common::reqwest::async_client().get(s.url(&format!("/api/v1/documents/{id}/text"))),
        );
        assert_eq!(code, 200);
        assert!(headers
            .get("content-type")
            .unwrap()
            .starts_with("text/plain"));
        texts.insert(id.clone(), String::from_utf8(body).unwrap());
    }

    // Each document is found by a word no other document contains.
    // Titles and filenames are indexed too, so they count.
    let mut df: HashMap<String, usize> = HashMap::new();
    for (id, name) in &ids {
        let d = doc(&s, id);
        let all = format!(
            "{} {} {}",
            texts[id],
            name,
            d["title"].as_str().unwrap_or("")
        );
        for tok in tokens(&all) {
            *df.entry(tok).or_default() += 1;
        }
    }
    let mut checked = 0;
    let mut typo_checked = 0;
    for (id, name) in &ids {
        let Some(word) = tokens(&texts[id]).into_iter().filter(|t| df[t] == 1).min() else {
            eprintln!(
                "no word only {name} contains ({} chars of text)",
                texts[id].len()
            );
            continue; // nothing unique (e.g. a text-less PDF page); counted below
        };
        // Quoted, the word as written: only its document. Plain, other
        // forms of it too (stemmed), worth less.
        let exact = search(&s, &format!("\"{word}\""));
        assert_eq!(
            exact["total"], 1,
            "{name}: {word:?} should match only it: {exact}"
        );
        assert_eq!(exact["hits"][0]["id"], id.as_str(), "{name}: {word:?}");
        let r = search(&s, &word);
        assert!(
            r["hits"]
                .as_array()
                .unwrap()
                .iter()
                .any(|h| h["id"] == id.as_str()),
            "{name}: {word:?}: {r}"
        );
        let snippet = exact["hits"][0]["snippet"].as_str().unwrap();
        assert!(
            snippet.to_lowercase().contains(&format!("<b>{word}</b>")),
            "{name}: snippet {snippet:?}"
        );
        checked += 1;
        // One letter wrong: still found (said to be fuzzy), unless typos
        // are switched off.
        let chars: Vec<char> = word.chars().collect();
        if chars.len() >= 6 && chars.iter().all(|c| c.is_ascii_lowercase()) && typo_checked < 5 {
            let mut wrong = chars.clone();
            wrong[chars.len() / 2] = if chars[chars.len() / 2] == 'q' {
                'x'
            } else {
                'q'
            };
            let wrong: String = wrong.into_iter().collect();
            if !df.contains_key(&wrong) {
                let r = search(&s, &wrong);
                assert_eq!(
                    r["hits"][0]["id"],
                    id.as_str(),
                    "{name}: {wrong:?} for {word:?}: {r}"
                );
                assert_eq!(r["fuzzy"], true, "{r}");
                let url = ::reqwest::Url::parse_with_params(
                    &s.url("/api/v1/search"),
                    &[("q", wrong.as_str()), ("typos", "false")],
                )
                .unwrap();
                assert_eq!(
                    get_json(url.as_str()).1["total"],
                    0,
                    "{wrong:?} without typos"
                );
                typo_checked += 1;
            }
        }
    }
    assert!(typo_checked >= 1, "no word to misspell");
    assert!(
        checked * 10 >= ids.len() * 9,
        "only {checked} of {} documents had a unique word",
        ids.len()
    );

    // The fixtures: encodings decoded, markup and scripts gone, PDF text layer read.
    let by_name: HashMap<&str, &str> = ids.iter().map(|(i, n)| (n.as_str(), i.as_str())).collect();
    assert!(texts[by_name["latin1.txt"]].contains("Grüße aus München"));
    assert!(texts[by_name["quokka.pdf"]].contains("quokka"));
    assert!(!texts[by_name["page.html"]].contains("narwhalscript"));
    assert_eq!(
        search(&s, "narwhalscript")["total"],
        0,
        "script text must not be indexed"
    );
    let pdf = doc(&s, by_name["quokka.pdf"]);
    assert_eq!(pdf["mime"], "application/pdf");
    assert_eq!(pdf["title"], "Quokka fixture", "PDF info title is used");
    assert_eq!(pdf["doc_type"], "invoice", "rules classifier: {pdf}");
    assert_eq!(doc(&s, by_name["page.html"])["title"], "Capybara page");
}

#[test]
fn same_bytes_twice_give_the_first_document() {
    let tmp = tempfile::tempdir().unwrap();
    // Originals as files, to see that a duplicate's bytes are not kept.
    let cfg = format!("{FAST_CONFIG}\n[blobs]\ninline_max_bytes = 0\n");
    let s = Server::start(&tmp.path().join("data"), &cfg, &[]);
    let first = upload_one(&s, "a.txt", b"the same bytes twice: okapi".to_vec());
    let (code, v) = upload(
        &s,
        &[("b.txt", b"the same bytes twice: okapi".to_vec())],
        None,
    );
    assert_eq!(code, 202);
    assert_eq!(v["documents"][0]["duplicate_of"], first.as_str());
    assert_eq!(v["documents"][0]["id"], first.as_str());
    // Also within one request.
    let (_, v) = upload(
        &s,
        &[("c.txt", b"twin".to_vec()), ("d.txt", b"twin".to_vec())],
        None,
    );
    assert_eq!(v["documents"][1]["duplicate_of"], v["documents"][0]["id"]);
    wait_terminal(&s, &first, WAIT);
    let (_, list) = get_json(&s.url("/api/v1/documents?limit=100"));
    assert_eq!(
        list["documents"].as_array().unwrap().len(),
        2,
        "no second copy: {list}"
    );
    let blobs = walk_files(&s.data_dir.join("blobs/docs"));
    assert_eq!(blobs.len(), 2, "one blob per distinct content: {blobs:?}");
}

fn walk_files(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk_files(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn delete_removes_the_document_from_search_and_storage() {
    let tmp = tempfile::tempdir().unwrap();
    // Originals as files, so their removal can be seen on disk.
    let cfg = format!("{FAST_CONFIG}\n[blobs]\ninline_max_bytes = 0\n");
    let s = Server::start(&tmp.path().join("data"), &cfg, &[]);
    let id = upload_one(
        &s,
        "gone.txt",
        b"a document about the elusive quetzal".to_vec(),
    );
    let keep = upload_one(&s, "keep.txt", b"another quetzal, kept".to_vec());
    wait_terminal(&s, &id, WAIT);
    wait_terminal(&s, &keep, WAIT);
    assert_eq!(search(&s, "quetzal")["total"], 2);
    let (code, _, _) = common::reqwest::send(
        common::reqwest::async_client().delete(s.url(&format!("/api/v1/documents/{id}"))),
    );
    assert_eq!(code, 204);
    assert_eq!(
        search(&s, "quetzal")["total"],
        1,
        "deleted document is not searchable"
    );
    assert_eq!(get_json(&s.url(&format!("/api/v1/documents/{id}"))).0, 404);
    assert_eq!(
        get_json(&s.url(&format!("/api/v1/documents/{id}/content"))).0,
        404
    );
    assert!(
        !walk_files(&s.data_dir.join("blobs"))
            .iter()
            .any(|p| p.ends_with(&id)),
        "blob removed"
    );
    let (code, _, _) = common::reqwest::send(
        common::reqwest::async_client().delete(s.url(&format!("/api/v1/documents/{id}"))),
    );
    assert_eq!(code, 404, "second delete");
}

#[test]
fn restart_keeps_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let id = upload_one(
        &s,
        "persist.md",
        b"# Persistence\n\nThe tardigrade survives restarts.".to_vec(),
    );
    let before = wait_terminal(&s, &id, WAIT);
    let status = s.stop();
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    s.restart();
    let after = doc(&s, &id);
    assert_eq!(after, before, "the document is unchanged across a restart");
    assert_eq!(search(&s, "tardigrade")["hits"][0]["id"], id.as_str());
    let (code, headers, body) = common::reqwest::send(
        common::reqwest::async_client().get(s.url(&format!("/api/v1/documents/{id}/content"))),
    );
    assert_eq!(code, 200);
    assert_eq!(headers.get("content-type"), Some("text/markdown"));
    assert_eq!(body, b"# Persistence\n\nThe tardigrade survives restarts.");
}

#[test]
fn bad_uploads_get_problem_json_and_store_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = format!("{FAST_CONFIG}\n[server]\nmax_upload_bytes = 100000\n");
    let s = Server::start(&tmp.path().join("data"), &cfg, &[]);
    let (code, v) = upload(&s, &[("big.txt", vec![b'a'; 300_000])], None);
    assert_eq!(
        (code, v["code"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );
    let (code, v) = upload(&s, &[("empty.txt", Vec::new())], None);
    assert_eq!(
        (code, v["code"].as_str()),
        (415, Some("empty_document")),
        "{v}"
    );
    let gif = b"GIF89a\x01\0\x01\0\x80\0\0".to_vec();
    let (code, v) = upload(&s, &[("photo.pdf", gif)], None);
    assert_eq!(
        (code, v["code"].as_str()),
        (415, Some("unsupported_media_type")),
        "{v}"
    );
    // A good file beside a bad one: the whole request is refused, nothing kept.
    let (code, _) = upload(
        &s,
        &[("ok.txt", b"fine".to_vec()), ("empty.txt", Vec::new())],
        None,
    );
    assert_eq!(code, 415);
    let form = ::reqwest::multipart::Form::new().text("title", "no file");
    let (code, _, body) = common::reqwest::send(
        common::reqwest::async_client()
            .post(s.url("/api/v1/documents"))
            .multipart(form),
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((code, v["code"].as_str()), (400, Some("no_file")));
    let (code, _, _) = common::reqwest::send(
        common::reqwest::async_client()
            .post(s.url("/api/v1/documents"))
            .body("x"),
    );
    assert_eq!(code, 415);

    let (_, list) = get_json(&s.url("/api/v1/documents"));
    assert_eq!(
        list["documents"].as_array().unwrap().len(),
        0,
        "nothing registered"
    );
    assert!(
        walk_files(&s.data_dir.join("blobs")).is_empty(),
        "no blob left behind"
    );

    // Reads of unknown things and bad parameters.
    assert_eq!(
        get_json(&s.url("/api/v1/documents/nope")).1["code"],
        "not_found"
    );
    assert_eq!(
        get_json(&s.url("/api/v1/documents?stage=weird")).1["code"],
        "invalid_parameter"
    );
    assert_eq!(
        get_json(&s.url("/api/v1/search?q=")).1["code"],
        "missing_query"
    );
    let (code, v) = get_json(&s.url("/api/v1/search?q=title:("));
    assert_eq!((code, v["code"].as_str()), (400, Some("invalid_query")));
    assert!(v["detail"].as_str().unwrap().contains("syntax"), "{v}");
    // It says where.
    let (code, v) = get_json(&s.url("/api/v1/search?q=matrix%20AND%20(plot"));
    assert_eq!((code, v["code"].as_str()), (400, Some("invalid_query")));
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("at character 17 of \"matrix AND (plot\": expected ')'"),
        "{v}"
    );
}

#[test]
fn list_filters_and_pages_with_a_cursor() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(upload_one(
            &s,
            &format!("n{i}.txt"),
            format!("note number {i} of the series").into_bytes(),
        ));
    }
    let inv = upload_one(
        &s,
        "inv.txt",
        b"INVOICE\nInvoice number 9\nAmount due 3 EUR".to_vec(),
    );
    for id in ids.iter().chain([&inv]) {
        wait_terminal(&s, id, WAIT);
    }
    let seen = list_ids(&s, "limit=3&stage=indexed");
    assert_eq!(seen.len(), 8);
    assert_eq!(seen[0], inv, "newest first");
    let (_, v) = get_json(&s.url("/api/v1/documents?doc_type=invoice"));
    assert_eq!(v["documents"].as_array().unwrap().len(), 1);
    let (_, v) = get_json(&s.url("/api/v1/status"));
    assert_eq!(v["stages"]["indexed"]["documents"], 8, "{v}");
    assert!(v["actors"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| a["name"] == "extract" && a["pool_size"] == 2));
    let (_, ev) = get_json(&s.url(&format!("/api/v1/documents/{inv}/events")));
    let kinds: Vec<&str> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["uploaded", "extracted", "classified", "enriched", "indexed"],
        "audit trail"
    );
}

/// A long document's snippet comes from around the word, however far into
/// the text it is, and is escaped.
#[test]
fn a_long_documents_snippet_is_found_far_into_its_text() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let text = format!(
        "{}The <Okapi> sleeps at the very end.\n",
        "Nothing to see in this line of filler text.\n".repeat(20_000)
    );
    let id = upload_one(&s, "long.txt", text.into_bytes());
    assert_eq!(
        wait_terminal(&s, &id, Duration::from_secs(60))["stage"],
        "indexed"
    );
    let r = search(&s, "okapi");
    assert_eq!(r["hits"][0]["id"], id.as_str(), "{r}");
    let snippet = r["hits"][0]["snippet"].as_str().unwrap();
    assert!(
        snippet.contains("&lt;<b>Okapi</b>&gt; sleeps"),
        "{snippet:?}"
    );
}
