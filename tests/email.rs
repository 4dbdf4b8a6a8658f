//! E-mail end to end: headers become fields, attachments become linked
//! documents of their own (nested messages too), duplicates link the first
//! document, and deleting the e-mail says what happens to them.

mod common;

use std::time::Duration;

use common::reqwest::{anon_client, send};
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

fn mail() -> String {
    let inner = "From: Carol <carol@example.org>\r\n\
To: alice@example.org\r\n\
Subject: Field notes\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"inner\"\r\n\
\r\n\
--inner\r\n\
Content-Type: text/plain\r\n\
\r\n\
Notes attached.\r\n\
--inner\r\n\
Content-Type: text/markdown; name=\"notes.md\"\r\n\
Content-Disposition: attachment; filename=\"notes.md\"\r\n\
\r\n\
# Wombatnotes\r\n\
\r\n\
burrows everywhere\r\n\
--inner--\r\n";
    format!(
        "From: Alice Example <alice@example.org>\r\n\
To: Bob <bob@example.org>\r\n\
Subject: Quarterly numbers\r\n\
Date: Tue, 1 Oct 2024 10:00:00 +0000\r\n\
Message-ID: <q3@example.org>\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
--outer\r\n\
Content-Type: text/html; charset=utf-8\r\n\
\r\n\
<p>See the <b>platypus</b> report. The numbers for the third quarter are in the attached file, and the forwarded notes from Carol explain what changed since our last meeting.</p>\r\n\
--outer\r\n\
Content-Type: text/plain; name=\"report.txt\"\r\n\
Content-Disposition: attachment; filename=\"report.txt\"\r\n\
\r\n\
kangaroofigures for the quarter\r\n\
--outer\r\n\
Content-Type: text/plain; name=\"known.txt\"\r\n\
Content-Disposition: attachment; filename=\"known.txt\"\r\n\
\r\n\
already uploaded echidna\r\n\
--outer\r\n\
Content-Type: image/gif; name=\"logo.gif\"\r\n\
Content-Disposition: attachment; filename=\"logo.gif\"\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==\r\n\
--outer\r\n\
Content-Type: message/rfc822; name=\"fwd.eml\"\r\n\
Content-Disposition: attachment; filename=\"fwd.eml\"\r\n\
\r\n\
{inner}\r\n\
--outer--\r\n"
    )
}

fn attachments(d: &Value) -> Vec<(String, String)> {
    d["attachments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["filename"].as_str().unwrap().to_string(),
                a["id"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn an_email_becomes_fields_text_and_linked_searchable_attachments() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    // A document that one attachment duplicates (note the CRLF the mail uses).
    let known = upload_one(&s, "known.txt", b"already uploaded echidna".to_vec());
    wait_terminal(&s, &known, WAIT);

    let id = upload_one(&s, "q3.eml", mail().into_bytes());
    let d = wait_terminal(&s, &id, WAIT);
    assert_eq!(d["stage"], "indexed", "{d}");
    assert_eq!(d["mime"], "message/rfc822");
    assert_eq!(d["title"], "Quarterly numbers");
    let f = &d["metadata"];
    assert_eq!(f["from"][0], "Alice Example <alice@example.org>", "{f}");
    assert_eq!(f["to"][0], "Bob <bob@example.org>");
    assert_eq!(f["subject"], "Quarterly numbers");
    assert_eq!(f["date"], "2024-10-01T10:00:00Z");
    assert!(
        f["attachments_not_unpacked"]
            .to_string()
            .contains("logo.gif"),
        "{f}"
    );
    assert_eq!(d["language"], "eng", "{d}");
    let (_, text) = get_json(&s.url(&format!("/api/v1/documents/{id}/text")));
    let text = text.as_str().unwrap();
    assert!(
        text.contains("platypus") && !text.contains("<b>"),
        "HTML body as text: {text}"
    );

    let att = attachments(&doc(&s, &id));
    let names: Vec<&str> = att.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["fwd.eml", "known.txt", "report.txt"], "{att:?}");
    let by_name = |n: &str| att.iter().find(|(f, _)| f == n).unwrap().1.clone();
    // The duplicate links the document uploaded before.
    assert_eq!(
        by_name("known.txt"),
        known,
        "a duplicate attachment links the first document"
    );
    // Each attachment is a document of its own, found by its own words.
    let report = by_name("report.txt");
    assert_eq!(wait_terminal(&s, &report, WAIT)["stage"], "indexed");
    assert_eq!(doc(&s, &report)["attached_to"], serde_json::json!([id]));
    let fwd = by_name("fwd.eml");
    assert_eq!(wait_terminal(&s, &fwd, WAIT)["stage"], "indexed");
    // The attached message's own attachment, one level further down.
    let inner = attachments(&doc(&s, &fwd));
    assert_eq!(inner.len(), 1, "{inner:?}");
    assert_eq!(wait_terminal(&s, &inner[0].1, WAIT)["stage"], "indexed");
    for (word, expect) in [
        ("kangaroofigures", &report),
        ("wombatnotes", &inner[0].1),
        ("platypus", &id),
    ] {
        let r = search(&s, word);
        assert_eq!(r["total"], 1, "{word}: {r}");
        assert_eq!(r["hits"][0]["id"].as_str(), Some(expect.as_str()), "{word}");
    }

    // Deleting the e-mail keeps its attachments: they are documents too.
    let (code, _, _) =
        send(common::reqwest::async_client().delete(s.url(&format!("/api/v1/documents/{id}"))));
    assert_eq!(code, 204);
    assert_eq!(get_json(&s.url(&format!("/api/v1/documents/{id}"))).0, 404);
    let r = doc(&s, &report);
    assert_eq!(r["attached_to"], serde_json::json!([]), "unlinked: {r}");
    assert_eq!(search(&s, "kangaroofigures")["total"], 1);

    // Uploaded again, and deleted with ?attachments=delete: the attachments
    // that only it holds go too (the nested one as well); the document that
    // was uploaded on its own stays.
    let again = upload_one(&s, "q3.eml", mail().into_bytes());
    wait_terminal(&s, &again, WAIT);
    let att2 = attachments(&doc(&s, &again));
    assert_eq!(att2.len(), 3, "{att2:?}");
    let (code, _, body) = send(
        anon_client()
            .delete(s.url(&format!("/api/v1/documents/{again}?attachments=delete")))
            .bearer_auth(ADMIN_TOKEN),
    );
    assert_eq!(code, 204, "{}", String::from_utf8_lossy(&body));
    for gone in [&report, &fwd, &inner[0].1] {
        assert_eq!(
            get_json(&s.url(&format!("/api/v1/documents/{gone}"))).0,
            404,
            "{gone}"
        );
    }
    assert_eq!(search(&s, "kangaroofigures")["total"], 0);
    assert_eq!(search(&s, "wombatnotes")["total"], 0);
    let (code, _, body) = send(
        anon_client()
            .delete(s.url(&format!("/api/v1/documents/{known}?attachments=sometimes")))
            .bearer_auth(ADMIN_TOKEN),
    );
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&body));
}

#[test]
fn every_email_of_the_corpus_is_read_or_fails_with_a_code() {
    let dir = corpus_dir();
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    let files: Vec<_> = manifest
        .lines()
        .skip(1)
        .filter(|l| l.split('\t').nth(2) == Some("eml"))
        .map(|l| dir.join(l.split('\t').nth(1).unwrap()))
        .collect();
    assert!(files.len() >= 40, "{}", files.len());
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let mut ids = Vec::new();
    for f in &files {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let (code, v) = upload(&s, &[(&name, std::fs::read(f).unwrap())], None);
        assert_eq!(code, 202, "{name}: {v}");
        if v["documents"][0]["duplicate_of"].is_null() {
            ids.push((name, v["documents"][0]["id"].as_str().unwrap().to_string()));
        }
    }
    let (mut indexed, mut with_text, mut failed, mut empty) = (0, 0, Vec::new(), Vec::new());
    // The oracle: a message has text if anything but whitespace follows its
    // header block (a few test messages are headers alone).
    let has_body = |name: &str| {
        let raw = std::fs::read(files.iter().find(|f| f.ends_with(name)).unwrap()).unwrap();
        let raw = String::from_utf8_lossy(&raw).replace("\r\n", "\n");
        raw.split_once("\n\n")
            .is_some_and(|(_, b)| !b.trim().is_empty())
    };
    let mut expected = 0;
    for (name, id) in &ids {
        let d = wait_terminal(&s, id, WAIT);
        let wants_text = has_body(name);
        expected += wants_text as usize;
        if d["stage"] == "indexed" && wants_text {
            let (_, t) = get_json(&s.url(&format!("/api/v1/documents/{id}/text")));
            if t.as_str().unwrap_or("").trim().is_empty() {
                empty.push(name.clone());
            } else {
                with_text += 1;
            }
        } else if d["stage"] != "indexed" {
            failed.push(format!("{name}: {}", d["error"]));
        }
        if d["stage"] == "indexed" {
            indexed += 1;
        }
    }
    // Attachments of these messages are documents too: none may be stuck.
    wait_until(WAIT, "every attachment to finish", || {
        let (_, st) = get_json(&s.url("/api/v1/status"));
        ["queued", "extracted", "classified", "enriched"]
            .iter()
            .all(|k| st["stages"][k]["documents"] == 0)
    });
    let (_, st) = get_json(&s.url("/api/v1/status"));
    println!(
        "eml: {} files, {indexed} indexed, {with_text} with text, failed {failed:?}; attachments and all: {}",
        ids.len(),
        st["stages"]["indexed"]["documents"]
    );
    assert!(failed.is_empty(), "{failed:?}");
    assert!(
        with_text * 100 >= expected * 99,
        "{with_text} of the {expected} messages with a body gave text; empty: {empty:?}"
    );
}
