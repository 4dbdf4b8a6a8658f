//! The status page in a real browser: headless Chromium opens `/` with the
//! admin token as its Basic password, runs the page's script against the
//! real server, and the rendered DOM is checked: documents per stage, what
//! waits for a person or a service, and the LLM's breaker.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

const WAIT: Duration = Duration::from_secs(60);

/// The DOM after the page's script ran (Chromium's virtual time runs the
/// first refresh; nothing here waits on the wall clock).
fn rendered(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--virtual-time-budget=5000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(url)
        .output()
        .expect("chromium runs (make deps installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The text of the element with this id, each tag read as a space.
fn text_of(dom: &str, id: &str) -> String {
    let start = dom
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in {dom}"));
    let rest = &dom[start..];
    let rest = &rest[rest.find('>').unwrap() + 1..];
    let tag = if id == "attention" || id == "services" {
        "</ul>"
    } else {
        "</div>\n<"
    };
    let inner = &rest[..rest.find(tag).unwrap_or(rest.len())];
    let mut text = String::new();
    let mut in_tag = false;
    for c in inner.chars() {
        match c {
            '<' => {
                in_tag = true;
                text.push(' ');
            }
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(" :", ":")
}

#[test]
fn the_status_page_shows_stages_what_waits_and_the_llm_breaker() {
    // An Ollama endpoint nobody listens on: the first refusal opens its
    // breaker, and documents are typed without it and flagged needs_llm.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let config = format!(
        "{FAST_CONFIG}\n[ollama]\nendpoints = [\"{endpoint}\"]\nmodel = \"tiny\"\n\
         failure_threshold = 1\nopen_ms = 600000\n"
    );
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config, &[]);
    let good = upload_one(
        &s,
        "note.txt",
        b"Invoice number 4711, total 12.50 EUR".to_vec(),
    );
    let mut broken = fixture("quokka.pdf");
    broken.truncate(300);
    let bad = upload_one(&s, "broken.pdf", broken);
    assert_eq!(wait_terminal(&s, &good, WAIT)["stage"], "indexed");
    assert_eq!(wait_terminal(&s, &bad, WAIT)["stage"], "failed");

    let base = s.base.strip_prefix("http://").unwrap();
    let dom = rendered(&format!("http://admin:{ADMIN_TOKEN}@{base}/"));
    assert_eq!(text_of(&dom, "err"), "", "the page reached the API");
    let stages = text_of(&dom, "stages");
    assert!(stages.contains("indexed 1 in flight"), "{stages}");
    assert!(stages.contains("failed 1 in flight"), "{stages}");
    let attention = text_of(&dom, "attention");
    for expected in [
        "failed: 1",
        "to review (unsure type): 0",
        "waiting for the LLM: 1",
    ] {
        assert!(attention.contains(expected), "{expected:?} in {attention}");
    }
    let services = text_of(&dom, "services");
    assert!(
        services.contains(&format!("LLM tiny: {endpoint} open")),
        "{services}"
    );
    assert!(services.contains("OCR:"), "{services}");
    // Counts link to the lists they come from.
    assert!(
        dom.contains("href=\"/api/v1/documents?flag=needs_llm\""),
        "{dom}"
    );
}
