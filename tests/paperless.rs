//! The Paperless-ngx API against the real binary: the real `pypaperless`
//! client from PyPI, and the raw multipart form of Paperless's documentation.

mod common;
#[path = "paperless/strict.rs"]
mod strict;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::reqwest::{anon_client, send};
use common::*;
use serde_json::{json, Value};

const PYPAPERLESS: &str = "pypaperless==3.1.15";
const EASYPAPERLESS: &str = "easypaperless==0.7.1";

/// A venv with one client library (`module` from `package`), made once
/// under target/ (pip from PyPI).
fn client_python(module: &str, package: &str) -> PathBuf {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/venv-{module}"));
    let python = venv.join("bin/python");
    let ready = || {
        Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !ready() {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .expect("python3 is needed for the Paperless client tests");
        assert!(ok.success(), "python3 -m venv failed");
        let ok = Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", package])
            .status()
            .expect("run pip");
        assert!(ok.success(), "pip install {package} failed");
        assert!(
            ready(),
            "{module} does not import after installing {package}"
        );
    }
    python
}

/// Runs a client's flow script (`tests/paperless/SCRIPT URL TOKEN PDF`)
/// against the server with a real PDF: whether it succeeded, its output.
fn run_flow(python: PathBuf, script: &str, s: &Server, dir: &Path) -> (bool, String, String) {
    let pdf = dir.join("quokka.pdf");
    std::fs::write(&pdf, fixture("quokka.pdf")).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/paperless")
        .join(script);
    let out = Command::new(python)
        .arg(&script)
        .arg(&s.base)
        .arg(ADMIN_TOKEN)
        .arg(&pdf)
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", script.display()));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn pypaperless_python() -> PathBuf {
    client_python("pypaperless", PYPAPERLESS)
}

/// A second real client, easypaperless (typed pydantic models, its own
/// paging and task polling), unchanged: upload and wait for the task, get
/// the document, find it with a full-text query, tag it.
#[test]
fn easypaperless_uploads_waits_gets_searches_and_tags() {
    let python = client_python("easypaperless", EASYPAPERLESS);
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let (ok, stdout, stderr) = run_flow(python, "easypaperless_flow.py", &s, tmp.path());
    assert!(
        ok && stdout.trim_end().ends_with("ok"),
        "easypaperless flow failed:\n{stdout}\n{stderr}"
    );
    for step in ["uploaded", "got", "found", "tagged"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(step)),
            "{step}: {stdout}"
        );
    }
}

#[test]
fn pypaperless_uploads_waits_reads_and_searches() {
    let python = pypaperless_python();
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let (ok, stdout, stderr) = run_flow(python, "pypaperless_flow.py", &s, tmp.path());
    assert!(
        ok && stdout.starts_with("OK "),
        "pypaperless flow failed:\n{stdout}\n{stderr}"
    );
    // What pypaperless did is in the audit trail under the token it used.
    let (_, v) = get_json(&s.url("/api/v1/audit"));
    let kinds: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for k in ["tag_created", "doc_type_created", "uploaded"] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
}

/// The form of https://docs.paperless-ngx.com/api/#file-uploads, by hand.
fn post_document(s: &Server, pdf: &[u8], tags: &[i64]) -> (u16, Vec<u8>) {
    let tags: Vec<String> = tags.iter().map(i64::to_string).collect();
    let mut fields = vec![
        ("title", "Scanned letter"),
        ("created", "2024-05-01"),
        ("correspondent", ""),
        ("archive_serial_number", "1234"),
    ];
    fields.extend(tags.iter().map(|t| ("tags", t.as_str())));
    post_form(s, &fields, "letter.pdf", pdf)
}

/// `post_document` with these form fields and one file.
fn post_form(s: &Server, fields: &[(&str, &str)], filename: &str, file: &[u8]) -> (u16, Vec<u8>) {
    let mut body: Vec<u8> = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--BOUNDARY\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!("--BOUNDARY\r\nContent-Disposition: form-data; name=\"document\"; filename=\"{filename}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(b"\r\n--BOUNDARY--\r\n");
    let (code, _, bytes) = send(
        anon_client()
            .post(s.url("/api/documents/post_document/"))
            .header("authorization", format!("Token {ADMIN_TOKEN}"))
            .header("content-type", "multipart/form-data; boundary=BOUNDARY")
            .body(body),
    );
    (code, bytes)
}

/// A Paperless route's JSON, read as a Paperless client does (its `Token`
/// header, an `Accept` naming the API version); it must answer 200.
fn paperless_get(s: &Server, path: &str, accept: &str) -> Value {
    let (code, _, bytes) = send(
        anon_client()
            .get(s.url(path))
            .header("authorization", format!("Token {ADMIN_TOKEN}"))
            .header("accept", accept),
    );
    assert_eq!(code, 200, "{path}: {}", String::from_utf8_lossy(&bytes));
    serde_json::from_slice(&bytes).unwrap()
}

fn task(s: &Server, task_id: &str, accept: &str) -> Value {
    paperless_get(s, &format!("/api/tasks/?task_id={task_id}"), accept)
}

#[test]
fn the_documented_upload_form_gives_a_task_id_and_paperless_task_results() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let (code, v) = common::reqwest::run(async {
        let r = common::reqwest::async_client()
            .post(s.url("/api/tags/"))
            .json(&json!({"name": "inbox", "matching_algorithm": 0}))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    });
    assert_eq!(code, 201, "{v}");
    let tag = v["id"].as_i64().unwrap();

    let pdf = fixture("quokka.pdf");
    let (code, body) = post_document(&s, &pdf, &[tag]);
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    // A bare JSON string: "\"<uuid>\"".
    let task_id: String = serde_json::from_slice(&body).expect("a JSON string");
    assert_eq!(task_id.len(), 36);

    let mut t = Value::Null;
    wait_until(Duration::from_secs(60), "the task to finish", || {
        t = task(&s, &task_id, "application/json");
        matches!(t[0]["status"].as_str(), Some("SUCCESS" | "FAILURE"))
    });
    let t = &t[0];
    assert_eq!(t["status"], "SUCCESS", "{t}");
    let n: i64 = t["related_document"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        t["result"].as_str().unwrap(),
        format!("Success. New document id {n} created")
    );
    assert_eq!(
        (t["task_id"].as_str(), t["task_file_name"].as_str()),
        (Some(task_id.as_str()), Some("letter.pdf"))
    );

    // API version 10: the paginated shape.
    let v10 = task(&s, &task_id, "application/json; version=10");
    assert_eq!(v10["count"], 1);
    assert_eq!(v10["results"][0]["task_id"], task_id.as_str());

    // The document, by its Paperless number.
    let (code, d) = get_json(&s.url(&format!("/api/documents/{n}/")));
    assert_eq!(code, 200, "{d}");
    assert_eq!(d["title"], "Scanned letter");
    assert_eq!(d["tags"], json!([tag]));
    assert_eq!(d["archive_serial_number"], 1234);
    assert_eq!(d["created"], "2024-05-01");

    // The same bytes again: a failed task naming the first document.
    let (code, body) = post_document(&s, &pdf, &[]);
    assert_eq!(code, 200);
    let dup_task: String = serde_json::from_slice(&body).unwrap();
    let t = task(&s, &dup_task, "application/json");
    assert_eq!(t[0]["status"], "FAILURE");
    assert_eq!(
        t[0]["result"].as_str().unwrap(),
        format!("Not consuming: It is a duplicate of document #{n}")
    );

    // Bad fields are refused and store nothing.
    let before = list_ids(&s, "limit=100");
    let (code, body) = post_document(&s, b"%PDF-1.4 other bytes", &[999]);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("invalid_field")),
        "{v}"
    );
    assert_eq!(list_ids(&s, "limit=100"), before);
}

/// The Paperless-ngx mobile apps sign in with a user name and a password at
/// `/api/token/` (a form, or JSON), keep the token they get, and read the
/// user, settings, profile, statistics and remote version at start. Any
/// user name with a docpipe token as the password signs in and gets that
/// same token back (none is minted); a wrong one is refused as DRF refuses
/// it and counts against the address like a bad token.
#[test]
fn the_mobile_apps_sign_in_with_a_token_as_password_and_start() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        FAST_CONFIG,
        &[
            ("DOCPIPE_RATE_LIMIT__PER_IP_PER_SECOND", "1"),
            ("DOCPIPE_RATE_LIMIT__PER_IP_BURST", "3"),
        ],
    );
    let (code, made) = post_json(
        &s,
        "/api/v1/tokens",
        json!({"name": "phone", "role": "editor", "workspaces": ["default"]}),
    );
    assert_eq!(code, 201, "{made}");
    let token = made["token"].as_str().unwrap().to_string();
    let tokens_before = get_json(&s.url("/api/v1/tokens"))
        .1
        .as_array()
        .map(Vec::len);
    let id = upload_one(&s, "note.txt", b"a note for the phone".to_vec());
    assert_eq!(
        wait_terminal(&s, &id, Duration::from_secs(60))["stage"],
        "indexed"
    );

    let json_of = |(code, _, body): (u16, _, Vec<u8>)| -> (u16, Value) {
        (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
    };
    let sign_in = anon_client().post(s.url("/api/token/"));
    let form = sign_in
        .try_clone()
        .unwrap()
        .form(&[("username", "jane"), ("password", &token)]);
    assert_eq!(json_of(send(form)), (200, json!({"token": token})));
    let as_json = sign_in
        .try_clone()
        .unwrap()
        .json(&json!({"username": "jane", "password": token}));
    assert_eq!(json_of(send(as_json)), (200, json!({"token": token})));
    let missing = sign_in.try_clone().unwrap().form(&[("username", "jane")]);
    assert_eq!(
        json_of(send(missing)),
        (400, json!({"password": ["This field is required."]}))
    );
    assert_eq!(
        get_json(&s.url("/api/v1/tokens"))
            .1
            .as_array()
            .map(Vec::len),
        tokens_before,
        "signing in mints no token"
    );

    // The start-up calls, with the token as the apps send it.
    let get = |path: &str| {
        json_of(send(
            anon_client()
                .get(s.url(path))
                .header("accept", "application/json; version=9")
                .header("authorization", format!("Token {token}")),
        ))
    };
    let (code, ui) = get("/api/ui_settings/");
    assert_eq!(code, 200, "{ui}");
    assert_eq!(ui["user"]["username"], "phone");
    assert_eq!(ui["user"]["is_superuser"], false);
    assert!(ui["user"]["id"].as_u64().is_some_and(|n| n > 0), "{ui}");
    let perms: Vec<&str> = ui["permissions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        perms.contains(&"view_document") && perms.contains(&"add_document"),
        "{perms:?}"
    );
    assert!(
        !perms.contains(&"view_user"),
        "an editor manages no users: {perms:?}"
    );
    let (code, profile) = get("/api/profile/");
    assert_eq!(
        (code, profile["auth_token"].as_str()),
        (200, Some(token.as_str()))
    );
    let (code, stats) = get("/api/statistics/");
    assert_eq!(code, 200, "{stats}");
    assert_eq!(stats["documents_total"], 1);
    assert_eq!(
        stats["document_file_type_counts"],
        json!([{"mime_type": "text/plain", "mime_type_count": 1}])
    );
    assert_eq!(stats["character_count"], "a note for the phone".len());
    let (code, remote) = get("/api/remote_version/");
    assert_eq!(
        (code, remote["update_available"].as_bool()),
        (200, Some(false))
    );
    let (code, _) = json_of(send(anon_client().get(s.url("/api/ui_settings/"))));
    assert_eq!(code, 401, "the start-up calls need the token");

    // A wrong password: DRF's refusal, then the address's limit (1 a
    // second after a burst of 3 failures).
    let wrong = || {
        json_of(send(
            anon_client()
                .post(s.url("/api/token/"))
                .form(&[("username", "jane"), ("password", "dp_not-a-token")]),
        ))
    };
    let (code, refused) = wrong();
    assert_eq!(
        (code, refused),
        (
            400,
            json!({"non_field_errors": ["Unable to log in with provided credentials."]})
        )
    );
    let codes: Vec<u16> = (0..6).map(|_| wrong().0).collect();
    assert!(
        codes.contains(&429),
        "failed sign-ins are rate-limited: {codes:?}"
    );
    assert!(codes.iter().all(|c| *c == 400 || *c == 429), "{codes:?}");
}

/// A document's fields, sorted (a missing one would parse as null).
const DOCUMENT_FIELDS: [&str; 22] = [
    "added",
    "archive_serial_number",
    "archived_file_name",
    "content",
    "correspondent",
    "created",
    "created_date",
    "custom_fields",
    "deleted_at",
    "document_type",
    "id",
    "is_shared_by_requester",
    "mime_type",
    "modified",
    "notes",
    "original_file_name",
    "owner",
    "page_count",
    "storage_path",
    "tags",
    "title",
    "user_can_change",
];

fn is_date(s: &str) -> bool {
    s.len() == 10
        && s.char_indices().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == '-'
            } else {
                c.is_ascii_digit()
            }
        })
}

/// An ISO 8601 date and time with its offset (`Z` or `±hh:mm`), as DRF writes it.
fn is_datetime_with_offset(s: &str) -> bool {
    let Some((date, time)) = s.split_once('T') else {
        return false;
    };
    let offset = time.ends_with('Z')
        || time.rfind(['+', '-']).is_some_and(|i| {
            let off = &time.as_bytes()[i + 1..];
            off.len() == 5 && off[2] == b':'
        });
    is_date(date) && offset
}

/// Paperless-ngx API version 9 changed `created` to a date; a strict client
/// of version 9 or 10 rejects a date and time there, and one of version 8
/// expects a date and time.
#[test]
fn documents_are_serialized_as_paperless_does_for_the_requested_version() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let id = upload_one(&s, "strict.txt", b"a strict client reads this".to_vec());
    assert_eq!(
        wait_terminal(&s, &id, Duration::from_secs(60))["stage"],
        "indexed"
    );
    let get = |path: &str, version: u32| {
        paperless_get(&s, path, &format!("application/json; version={version}"))
    };
    let second = upload_one(&s, "second.txt", b"and a second one".to_vec());
    assert_eq!(
        wait_terminal(&s, &second, Duration::from_secs(60))["stage"],
        "indexed"
    );
    // A page of one: `all` holds both documents' numbers.
    let page: strict::Page<Value> =
        serde_json::from_value(get("/api/documents/?page_size=1", 9)).unwrap();
    assert_eq!((page.count, page.all.len(), page.results.len()), (2, 2, 1));
    // The first document: its Paperless id is its number (newest first).
    let n = page.all[1];
    for version in [9, 10] {
        let one = get(&format!("/api/documents/{n}/"), version);
        let listed = get("/api/documents/?page_size=5", version)["results"][1].clone();
        for v in [one, listed] {
            // Every field present (serde would take a missing Option as null).
            let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
            keys.sort_unstable();
            assert_eq!(keys, DOCUMENT_FIELDS, "version {version}");
            let doc: strict::Document = serde_json::from_value(v.clone())
                .unwrap_or_else(|e| panic!("version {version}: {e}: {v}"));
            doc.check_created(version);
            assert_eq!(doc.created.as_str(), Some(doc.created_date.0.as_str()));
            assert_eq!(doc.id, n);
            assert_eq!(doc.mime_type, "text/plain");
            assert_eq!(doc.original_file_name, "strict.txt");
            assert_eq!(doc.content, "a strict client reads this");
        }
    }
    let old: strict::Document =
        serde_json::from_value(get(&format!("/api/documents/{n}/"), 8)).unwrap();
    old.check_created(8);
    assert_eq!(
        old.created.as_str().and_then(|c| c.get(..10)),
        Some(old.created_date.0.as_str())
    );
}

fn sorted_keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("an object").keys().cloned().collect();
    k.sort();
    k
}

#[test]
fn tags_types_and_pages_are_serialized_as_paperless_does() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let (code, tag) = post_json(
        &s,
        "/api/tags/",
        json!({"name": "Tax 2026", "color": "#1f78b4"}),
    );
    assert_eq!(code, 201, "{tag}");
    let (code, plain) = post_json(&s, "/api/tags/", json!({"name": "plain"}));
    assert_eq!(code, 201, "{plain}");
    let (code, ty) = post_json(&s, "/api/document_types/", json!({"name": "Invoice"}));
    assert_eq!(code, 201, "{ty}");
    let get = |path: &str| paperless_get(&s, path, "application/json; version=9");
    let page: strict::Page<Value> = serde_json::from_value(get("/api/tags/?page_size=1")).unwrap();
    assert_eq!((page.count, page.all.len(), page.results.len()), (2, 2, 1));
    assert!(page.next.is_some() && page.previous.is_none(), "{page:?}");
    let tags: strict::Page<Value> = serde_json::from_value(get("/api/tags/")).unwrap();
    let mut by_name = std::collections::BTreeMap::new();
    for t in &tags.results {
        let strict: strict::Tag =
            serde_json::from_value(t.clone()).unwrap_or_else(|e| panic!("{e}: {t}"));
        by_name.insert(strict.name.clone(), strict);
    }
    let tax = &by_name["Tax 2026"];
    assert_eq!(
        (tax.slug.as_str(), tax.color.as_str()),
        ("tax-2026", "#1f78b4")
    );
    assert_eq!(tax.text_color, "#ffffff", "white on a dark colour");
    let plain = &by_name["plain"];
    assert_eq!(
        (plain.color.as_str(), plain.text_color.as_str()),
        ("#a6cee3", "#000000")
    );
    let one = get(&format!("/api/tags/{}/", tax.id));
    assert_eq!(sorted_keys(&one), sorted_keys(&tags.results[0]));
    let _: strict::Tag = serde_json::from_value(one).unwrap();

    let types: strict::Page<Value> = serde_json::from_value(get("/api/document_types/")).unwrap();
    let invoice = types
        .results
        .iter()
        .map(|t| {
            serde_json::from_value::<strict::DocumentType>(t.clone())
                .unwrap_or_else(|e| panic!("{e}: {t}"))
        })
        .find(|t| t.name == "Invoice")
        .expect("the new type is listed");
    assert_eq!(invoice.slug, "invoice");
    let _: strict::DocumentType =
        serde_json::from_value(get(&format!("/api/document_types/{}/", invoice.id))).unwrap();
    // Every field present: serde would take a missing Option as null.
    assert_eq!(
        sorted_keys(&tags.results[0]),
        [
            "children",
            "color",
            "document_count",
            "id",
            "is_inbox_tag",
            "is_insensitive",
            "match",
            "matching_algorithm",
            "name",
            "owner",
            "parent",
            "slug",
            "text_color",
            "user_can_change"
        ]
    );
    assert_eq!(
        sorted_keys(&types.results[0]),
        [
            "document_count",
            "id",
            "is_insensitive",
            "match",
            "matching_algorithm",
            "name",
            "owner",
            "slug",
            "user_can_change"
        ]
    );
}

#[test]
fn tasks_are_listed_as_paperless_does_with_the_document_a_duplicate_repeats() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let pdf = fixture("quokka.pdf");
    let first: String = serde_json::from_slice(&post_document(&s, &pdf, &[]).1).unwrap();
    let mut t = Value::Null;
    wait_until(Duration::from_secs(60), "the task to finish", || {
        t = task(&s, &first, "application/json; version=9");
        t[0]["status"] == "SUCCESS"
    });
    let done: strict::TaskV9 =
        serde_json::from_value(t[0].clone()).unwrap_or_else(|e| panic!("{e}: {t}"));
    assert!(done.duplicate_documents.is_empty(), "{done:?}");
    assert!(done.date_done.is_some(), "{done:?}");
    let n: i64 = done.related_document.as_deref().unwrap().parse().unwrap();
    let again: String = serde_json::from_slice(&post_document(&s, &pdf, &[]).1).unwrap();
    let t = task(&s, &again, "application/json; version=9");
    let dup: strict::TaskV9 =
        serde_json::from_value(t[0].clone()).unwrap_or_else(|e| panic!("{e}: {t}"));
    assert_eq!(dup.status, strict::CeleryStatus::Failure);
    assert_eq!(dup.duplicate_documents.len(), 1, "{dup:?}");
    assert_eq!(dup.duplicate_documents[0].id, n);
    assert_eq!(dup.duplicate_documents[0].title, "Scanned letter");
    assert!(dup.duplicate_documents[0].deleted_at.is_none());
    let mut keys: Vec<String> = t[0].as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "acknowledged",
            "date_created",
            "date_done",
            "duplicate_documents",
            "id",
            "owner",
            "related_document",
            "result",
            "status",
            "task_file_name",
            "task_id",
            "task_name",
            "type"
        ]
    );
}

/// Paperless's list option `truncate_content=true` (the apps' and the web
/// UI's document lists) cuts each document's content to 550 characters;
/// without it, and for a single document, the content is whole.
#[test]
fn lists_cut_content_to_550_characters_when_asked() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let long: String = (0..400).map(|i| format!("wörd{i} ")).collect();
    let id = upload_one(&s, "long.txt", long.clone().into_bytes());
    assert_eq!(
        wait_terminal(&s, &id, Duration::from_secs(60))["stage"],
        "indexed"
    );
    let get = |path: &str| paperless_get(&s, path, "application/json");
    let whole = get("/api/documents/")["results"][0]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(whole.trim_end(), long.trim_end());
    for q in [
        "truncate_content=true",
        "truncate_content=True&query=w%C3%B6rd7",
    ] {
        let cut = get(&format!("/api/documents/?{q}"))["results"][0]["content"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(cut.chars().count(), 550, "{q}");
        assert!(whole.starts_with(&cut), "{q}");
    }
    let n = get("/api/documents/")["results"][0]["id"].as_u64().unwrap();
    let one = get(&format!("/api/documents/{n}/?truncate_content=true"));
    assert_eq!(one["content"].as_str().map(str::len), Some(whole.len()));
}

/// A strict client (the models of `strict.rs`) against every Paperless
/// route docpipe serves, in API versions 9 and 10: correspondents (the
/// issuers Enrich finds, or set by hand), custom fields (docpipe's fields,
/// both ways), notes, filters, and the apps' start-up routes. The route
/// table itself (the OpenAPI document) says which routes there are: one
/// added without a model here fails the test.
#[test]
fn a_strict_client_parses_every_paperless_route_in_versions_9_and_10() {
    use std::collections::{BTreeMap, BTreeSet};
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let mut seen: BTreeSet<(String, String)> = BTreeSet::new();
    let mut mark = |method: &str, route: &str| {
        seen.insert((method.to_string(), route.to_string()));
    };
    fn parse<T: serde::de::DeserializeOwned>(what: &str, v: Value) -> T {
        serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{what}: {e}: {v}"))
    }
    let accept = |version: u32| format!("application/json; version={version}");

    // The labels and fields a client makes.
    let (code, v) = post_json(&s, "/api/tags/", json!({"name": "tax", "color": "#33a02c"}));
    assert_eq!(code, 201, "{v}");
    let tag: strict::Tag = parse("a new tag", v);
    mark("post", "/api/tags/");
    let (code, v) = post_json(&s, "/api/document_types/", json!({"name": "receipt"}));
    assert_eq!(code, 201, "{v}");
    let ty: strict::DocumentType = parse("a new type", v);
    mark("post", "/api/document_types/");
    let (code, v) = post_json(
        &s,
        "/api/correspondents/",
        json!({"name": "Quokka Island Trust", "matching_algorithm": 0}),
    );
    assert_eq!(code, 201, "{v}");
    let trust: strict::Correspondent = parse("a new correspondent", v);
    mark("post", "/api/correspondents/");
    let (code, v) = post_json(
        &s,
        "/api/correspondents/",
        json!({"name": "Quokka Island Trust"}),
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("already_exists")),
        "{v}"
    );
    let mut fields = BTreeMap::new();
    for (name, data_type) in [("reference", "string"), ("paid", "monetary")] {
        let (code, v) = post_json(
            &s,
            "/api/custom_fields/",
            json!({"name": name, "data_type": data_type}),
        );
        assert_eq!(code, 201, "{v}");
        let f: strict::CustomField = parse("a new custom field", v);
        fields.insert(name.to_string(), f.id);
    }
    mark("post", "/api/custom_fields/");
    let (code, v) = post_json(
        &s,
        "/api/custom_fields/",
        json!({"name": "linked", "data_type": "documentlink"}),
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("invalid_body")),
        "{v}"
    );
    // The common fields are custom fields too.
    let listed: strict::Page<strict::CustomField> = parse(
        "custom fields",
        paperless_get(&s, "/api/custom_fields/?page_size=100", &accept(9)),
    );
    let data_types: BTreeMap<i64, strict::DataType> =
        listed.results.iter().map(|f| (f.id, f.data_type)).collect();
    let id_of = |name: &str| {
        listed
            .results
            .iter()
            .find(|f| f.name == name)
            .map(|f| f.id)
            .unwrap_or_else(|| panic!("no custom field {name}"))
    };
    assert_eq!(data_types[&id_of("date")], strict::DataType::Date);
    assert_eq!(data_types[&id_of("paid")], strict::DataType::Monetary);
    assert_eq!(id_of("reference"), fields["reference"]);

    // An upload carrying a correspondent and custom field values.
    let pdf = fixture("quokka.pdf");
    let values = json!({
        fields["reference"].to_string(): "PO-7",
        fields["paid"].to_string(): "EUR12.50",
    })
    .to_string();
    let (trust_id, tag_id, ty_id) = (trust.id.to_string(), tag.id.to_string(), ty.id.to_string());
    let (code, body) = post_form(
        &s,
        &[
            ("title", "Quokka census"),
            ("created", "2024-05-01"),
            ("correspondent", &trust_id),
            ("document_type", &ty_id),
            ("tags", &tag_id),
            ("custom_fields", &values),
        ],
        "census.pdf",
        &pdf,
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    mark("post", "/api/documents/post_document/");
    let task_id: String = serde_json::from_slice(&body).unwrap();
    let mut tasks = Vec::new();
    wait_until(Duration::from_secs(60), "the task to finish", || {
        tasks = parse::<Vec<strict::TaskV9>>("v9 tasks", task(&s, &task_id, &accept(9)));
        tasks[0].status == strict::CeleryStatus::Success
    });
    let n: i64 = tasks[0]
        .related_document
        .as_deref()
        .unwrap()
        .parse()
        .unwrap();
    let v10: strict::Page<strict::TaskV10> = parse("v10 tasks", task(&s, &task_id, &accept(10)));
    assert_eq!(v10.results[0].status, strict::TaskStatus::Success);
    assert_eq!(v10.results[0].related_document_ids, vec![n]);
    mark("get", "/api/tasks/");

    // An invoice whose issuer Enrich finds: a correspondent of its own.
    let invoice = "ACME Tools Ltd\n12 High Street, London\nINVOICE\nInvoice No: INV-2024-0042\n\
                   Invoice date: 14 March 2024\nTotal £36.00\n";
    let id = upload_one(&s, "acme.txt", invoice.as_bytes().to_vec());
    assert_eq!(
        wait_terminal(&s, &id, Duration::from_secs(60))["stage"],
        "indexed"
    );
    let found: strict::Page<strict::Correspondent> = parse(
        "correspondents",
        paperless_get(&s, "/api/correspondents/", &accept(9)),
    );
    let acme = found
        .results
        .iter()
        .find(|c| c.name == "ACME Tools Ltd")
        .unwrap_or_else(|| panic!("the issuer is a correspondent: {found:?}"));
    assert_eq!(acme.document_count, 1);
    let acme_id = acme.id;

    // The upload's values, read back as the strict client types them.
    let check_fields = |d: &strict::Document| {
        for f in &d.custom_fields {
            strict::check_value(data_types[&f.field], &f.value);
        }
    };
    let value_of = |d: &strict::Document, field: i64| {
        d.custom_fields
            .iter()
            .find(|f| f.field == field)
            .map(|f| f.value.clone())
    };
    let d: strict::Document = parse(
        "the document",
        paperless_get(&s, &format!("/api/documents/{n}/"), &accept(9)),
    );
    check_fields(&d);
    assert_eq!(
        (d.correspondent, d.document_type, d.tags.clone()),
        (Some(trust.id), Some(ty.id), vec![tag.id])
    );
    assert_eq!(value_of(&d, fields["reference"]), Some(json!("PO-7")));
    assert_eq!(value_of(&d, fields["paid"]), Some(json!("EUR12.50")));

    // Edits: custom fields replace the document's list; a correspondent by id.
    let mut list: Vec<Value> = d
        .custom_fields
        .iter()
        .filter(|f| f.field != fields["reference"])
        .map(|f| json!({"field": f.field, "value": f.value}))
        .collect();
    list.push(json!({"field": fields["reference"], "value": "PO-8"}));
    list.push(json!({"field": id_of("date"), "value": "2024-05-02"}));
    let (code, v) = patch_json(
        &s,
        &format!("/api/documents/{n}/"),
        json!({"custom_fields": list, "correspondent": acme_id}),
    );
    assert_eq!(code, 200, "{v}");
    let d: strict::Document = parse("the edited document", v);
    mark("patch", "/api/documents/{id}/");
    check_fields(&d);
    assert_eq!(d.correspondent, Some(acme_id));
    assert_eq!(value_of(&d, fields["reference"]), Some(json!("PO-8")));
    assert_eq!(value_of(&d, id_of("date")), Some(json!("2024-05-02")));
    assert_eq!(value_of(&d, fields["paid"]), Some(json!("EUR12.50")));
    let (code, v) = patch_json(
        &s,
        &format!("/api/documents/{n}/"),
        json!({"custom_fields": [{"field": id_of("date"), "value": "not a date"}]}),
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("invalid_field")),
        "{v}"
    );
    // DRF's shape too: the field, with its messages.
    assert!(
        v["custom_fields"][0]
            .as_str()
            .is_some_and(|m| m.contains("date")),
        "{v}"
    );
    let (code, _, bytes) = send(
        anon_client()
            .put(s.url(&format!("/api/documents/{n}/")))
            .header("authorization", format!("Token {ADMIN_TOKEN}"))
            .json(&json!({"title": "Quokka census 2024", "correspondent": trust.id})),
    );
    assert_eq!(code, 200, "{}", String::from_utf8_lossy(&bytes));
    let d: strict::Document = parse("a PUT", serde_json::from_slice(&bytes).unwrap());
    mark("put", "/api/documents/{id}/");
    assert_eq!(
        (d.title.as_str(), d.correspondent),
        ("Quokka census 2024", Some(trust.id))
    );

    // Notes.
    let (code, v) = post_json(
        &s,
        &format!("/api/documents/{n}/notes/"),
        json!({"note": "counted twice"}),
    );
    assert_eq!(code, 200, "{v}");
    let notes: Vec<strict::Note> = parse("notes", v);
    mark("post", "/api/documents/{id}/notes/");
    assert_eq!(notes.len(), 1);
    assert_eq!(notes[0].note, "counted twice");
    assert_eq!(notes[0].user.username, "admin");

    // The original.
    let (code, _, bytes) = send(
        anon_client()
            .get(s.url(&format!("/api/documents/{n}/download/")))
            .header("authorization", format!("Token {ADMIN_TOKEN}")),
    );
    assert_eq!((code, bytes == pdf), (200, true));
    mark("get", "/api/documents/{id}/download/");

    // The mobile apps' sign-in.
    let (code, _, bytes) = send(
        anon_client()
            .post(s.url("/api/token/"))
            .json(&json!({"username": "anyone", "password": ADMIN_TOKEN})),
    );
    assert_eq!(code, 200);
    let t: strict::Token = parse("a token", serde_json::from_slice(&bytes).unwrap());
    assert_eq!(t.token, ADMIN_TOKEN);
    mark("post", "/api/token/");

    // Every read, in both versions.
    let q = |path: &str| path.split('?').next().unwrap().to_string();
    for version in [9, 10] {
        let get = |path: &str| paperless_get(&s, path, &accept(version));
        let index = get("/api/");
        for r in [
            "correspondents",
            "custom_fields",
            "documents",
            "document_types",
            "tags",
            "tasks",
        ] {
            assert!(
                index[r]
                    .as_str()
                    .is_some_and(|u| u.ends_with(&format!("/api/{r}/"))),
                "{index}"
            );
        }
        for path in [
            "/api/documents/".to_string(),
            "/api/documents/?query=quokka".to_string(),
            format!("/api/documents/?more_like_id={n}"),
            "/api/documents/?truncate_content=true&ordering=-created".to_string(),
        ] {
            let page: strict::Page<strict::Document> = parse(&path, get(&path));
            for d in &page.results {
                d.check_created(version);
                check_fields(d);
            }
        }
        let d: strict::Document = parse("a document", get(&format!("/api/documents/{n}/")));
        d.check_created(version);
        assert_eq!(d.notes.len(), 1);
        let _: Vec<strict::Note> = parse("notes", get(&format!("/api/documents/{n}/notes/")));
        let _: strict::Page<strict::Tag> = parse("tags", get("/api/tags/"));
        let _: strict::Tag = parse("a tag", get(&format!("/api/tags/{}/", tag.id)));
        let _: strict::Page<strict::DocumentType> = parse("types", get("/api/document_types/"));
        let _: strict::DocumentType =
            parse("a type", get(&format!("/api/document_types/{}/", ty.id)));
        let _: strict::Page<strict::Correspondent> =
            parse("correspondents", get("/api/correspondents/"));
        let c: strict::Correspondent = parse(
            "a correspondent",
            get(&format!("/api/correspondents/{acme_id}/")),
        );
        // The invoice; the upload went back to the trust with the PUT.
        assert_eq!(c.document_count, 1);
        let _: strict::Page<strict::CustomField> =
            parse("custom fields", get("/api/custom_fields/"));
        let f: strict::CustomField = parse(
            "a custom field",
            get(&format!("/api/custom_fields/{}/", fields["paid"])),
        );
        assert_eq!(f.document_count, 1);
        if version >= 10 {
            let _: strict::Page<strict::TaskV10> = parse("tasks", get("/api/tasks/"));
        } else {
            let _: Vec<strict::TaskV9> = parse("tasks", get("/api/tasks/"));
        }
        let ui: strict::UiSettings = parse("ui settings", get("/api/ui_settings/"));
        assert!(ui.permissions.iter().any(|p| p == "add_customfield"));
        let _: strict::Profile = parse("the profile", get("/api/profile/"));
        let st: strict::Statistics = parse("statistics", get("/api/statistics/"));
        assert_eq!((st.documents_total, st.correspondent_count), (2, 2));
        let _: strict::RemoteVersion = parse("the remote version", get("/api/remote_version/"));
        for path in [
            "/api/",
            "/api/documents/",
            "/api/documents/{id}/",
            "/api/documents/{id}/notes/",
            "/api/tags/",
            "/api/tags/{id}/",
            "/api/document_types/",
            "/api/document_types/{id}/",
            "/api/correspondents/",
            "/api/correspondents/{id}/",
            "/api/custom_fields/",
            "/api/custom_fields/{id}/",
            "/api/ui_settings/",
            "/api/profile/",
            "/api/statistics/",
            "/api/remote_version/",
        ] {
            mark("get", &q(path));
        }
    }

    // Filters pick documents as Paperless's do.
    let count = |query: &str| {
        parse::<strict::Page<strict::Document>>(
            query,
            paperless_get(&s, &format!("/api/documents/?{query}"), &accept(9)),
        )
        .count
    };
    assert_eq!(count(&format!("correspondent__id={}", trust.id)), 1);
    assert_eq!(
        count(&format!("correspondent__id__in={},{acme_id}", trust.id)),
        2
    );
    assert_eq!(count("correspondent__isnull=true"), 0);
    assert_eq!(count(&format!("tags__id__all={}", tag.id)), 1);
    assert_eq!(count(&format!("tags__id__none={}", tag.id)), 1);
    assert_eq!(count(&format!("document_type__id={}", ty.id)), 1);
    assert_eq!(count("title_content=census"), 1);
    assert_eq!(count("title__icontains=CENSUS"), 1);
    assert_eq!(
        count("created__date__gte=2024-05-01&created__date__lt=2024-05-02"),
        1
    );
    assert_eq!(count("storage_path__isnull=true"), 2);
    assert_eq!(count("storage_path__id=1"), 0);
    assert_eq!(
        count("query=quokka&tags__id__none=1&correspondent__id=999"),
        0
    );
    let (code, v) = get_json(&s.url("/api/documents/?tags__id__all=tax"));
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{v}"
    );
    assert!(v["tags__id__all"][0].is_string(), "{v}");
    // The native list filters by issuer too.
    let (code, v) = get_json(&s.url("/api/v1/documents?issuer=ACME%20Tools%20Ltd"));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["documents"].as_array().map(Vec::len), Some(1), "{v}");
    assert_eq!(v["documents"][0]["filename"], "acme.txt");
    // A search's `all` holds every hit, not just the page's.
    let page: strict::Page<strict::Document> = parse(
        "a search's first page",
        paperless_get(
            &s,
            "/api/documents/?query=quokka%20OR%20acme&page_size=1",
            &accept(9),
        ),
    );
    assert_eq!((page.count, page.results.len()), (2, 1));
    let mut all = page.all.clone();
    all.sort_unstable();
    assert_eq!(all.len(), 2);
    assert_eq!(page.all[0], page.results[0].id, "best first");
    // Labels are found by name, as the apps' pickers ask.
    let picked: strict::Page<strict::Correspondent> = parse(
        "correspondents by name",
        paperless_get(&s, "/api/correspondents/?name__icontains=acme", &accept(9)),
    );
    assert_eq!(
        picked.results.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![acme_id]
    );
    assert_eq!(picked.all, vec![acme_id]);
    let picked: strict::Page<strict::CustomField> = parse(
        "custom fields by name",
        paperless_get(&s, "/api/custom_fields/?name__istartswith=REF", &accept(9)),
    );
    assert_eq!(picked.count, 1);
    assert_eq!(picked.results[0].id, fields["reference"]);

    // Every Paperless route of the table was read with a strict model.
    let (code, api) = get_json(&s.url("/api/v1/openapi.json"));
    assert_eq!(code, 200);
    let mut routes = BTreeSet::new();
    for (path, ops) in api["paths"].as_object().unwrap() {
        if path.starts_with("/api/") && !path.starts_with("/api/v1/") {
            for method in ops.as_object().unwrap().keys() {
                routes.insert((method.clone(), path.clone()));
            }
        }
    }
    let missing: Vec<_> = routes.difference(&seen).collect();
    assert!(
        missing.is_empty(),
        "routes without a strict check: {missing:?}"
    );
}

/// Every document number of the server, as Paperless lists them (`all`).
fn all_numbers(s: &Server) -> Vec<i64> {
    paperless_get(s, "/api/documents/?page_size=1", "application/json")["all"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_i64().unwrap())
        .collect()
}

/// The values a migration must carry, of one Paperless document, with its
/// labels and custom fields by name (ids differ between instances).
fn carried(s: &Server, n: i64) -> Value {
    let get = |path: &str| paperless_get(s, path, "application/json; version=9");
    let d = get(&format!("/api/documents/{n}/"));
    let name = |resource: &str, id: &Value| match id.as_i64() {
        Some(id) => get(&format!("/api/{resource}/{id}/"))["name"].clone(),
        None => Value::Null,
    };
    let mut tags: Vec<Value> = d["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| name("tags", t))
        .collect();
    tags.sort_by_key(|t| t.to_string());
    let fields: std::collections::BTreeMap<String, Value> = d["custom_fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                name("custom_fields", &f["field"])
                    .as_str()
                    .unwrap()
                    .to_string(),
                f["value"].clone(),
            )
        })
        .collect();
    let notes: Vec<Value> = d["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| json!([n["note"], n["user"]["username"], n["created"]]))
        .collect();
    json!({
        "title": d["title"], "created": d["created"], "asn": d["archive_serial_number"],
        "file": d["original_file_name"], "mime": d["mime_type"], "content": d["content"],
        "type": name("document_types", &d["document_type"]),
        "correspondent": name("correspondents", &d["correspondent"]),
        "tags": tags, "fields": fields, "notes": notes,
    })
}

/// `docpipe migrate-from-paperless` against a docpipe instance's own
/// Paperless API: 200 documents with tags, types, correspondents, custom
/// fields, dates, ASNs and notes into a fresh data directory, killed part
/// way and run again: every document once, under its own number, with
/// everything it carried, and its type and fields as they came.
#[test]
fn migrate_from_paperless_brings_200_documents_and_resumes_after_a_kill() {
    use std::io::BufRead;
    let tmp = tempfile::tempdir().unwrap();
    let src = Server::start(&tmp.path().join("source"), FAST_CONFIG, &[]);
    let post = |path: &str, body: Value| {
        let (code, v) = post_json(&src, path, body);
        assert_eq!(code, 201, "{path}: {v}");
        v["id"].as_i64().unwrap()
    };
    let tags: Vec<i64> = ["tax", "home", "car"]
        .iter()
        .map(|t| post("/api/tags/", json!({"name": t})))
        .collect();
    let types: Vec<i64> = ["letter", "statement"]
        .iter()
        .map(|t| post("/api/document_types/", json!({"name": t})))
        .collect();
    let people: Vec<i64> = ["Quokka Trust", "Acme Bank", "City Council", "Dr. Who"]
        .iter()
        .map(|c| post("/api/correspondents/", json!({"name": c})))
        .collect();
    let reference = post(
        "/api/custom_fields/",
        json!({"name": "reference", "data_type": "string"}),
    );
    let paid = post(
        "/api/custom_fields/",
        json!({"name": "paid", "data_type": "monetary"}),
    );
    let pdf = fixture("quokka.pdf");
    for i in 0..200usize {
        let text = format!(
            "Letter {i} of the migration test.\nThe quokka census counted {} quokkas on day {i}.\n",
            1000 + i * 7
        );
        let (file, name): (Vec<u8>, String) = if i == 0 {
            (pdf.clone(), "census.pdf".into())
        } else {
            (text.into_bytes(), format!("letter-{i}.txt"))
        };
        let created = format!("2020-{:02}-{:02}", 1 + i % 12, 1 + i % 28);
        let tag = tags[i % 3].to_string();
        let ty = types[i % 2].to_string();
        let who = people[i % 4].to_string();
        let values = json!({reference.to_string(): format!("R-{i}"), paid.to_string(): format!("EUR{i}.50")})
            .to_string();
        let asn = (1000 + i).to_string();
        let title = format!("Letter {i}");
        let mut form: Vec<(&str, &str)> =
            vec![("title", &title), ("created", &created), ("tags", &tag)];
        if i % 5 != 0 {
            form.push(("document_type", &ty));
        }
        if i % 7 != 0 {
            form.push(("correspondent", &who));
        }
        if i % 2 == 0 {
            form.push(("custom_fields", &values));
        }
        if i % 10 == 0 {
            form.push(("archive_serial_number", &asn));
        }
        let (code, body) = post_form(&src, &form, &name, &file);
        assert_eq!(code, 200, "{}", String::from_utf8_lossy(&body));
    }
    wait_until(Duration::from_secs(120), "the source to index 200", || {
        get_json(&src.url("/api/v1/status")).1["stages"]["indexed"]["documents"] == 200
    });
    let numbers = all_numbers(&src);
    assert_eq!(numbers.len(), 200);
    for n in &numbers[..3] {
        let (code, v) = post_json(
            &src,
            &format!("/api/documents/{n}/notes/"),
            json!({"note": format!("checked #{n}")}),
        );
        assert_eq!(code, 200, "{v}");
    }

    let dest = tmp.path().join("dest");
    let config = dest.with_extension("toml");
    std::fs::write(&config, FAST_CONFIG).unwrap();
    let migrate = || {
        let mut c = Command::new(env!("CARGO_BIN_EXE_docpipe"));
        c.arg("migrate-from-paperless")
            .args(["--url", &src.base, "--token", ADMIN_TOKEN])
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&dest);
        c
    };
    // Killed once 60 documents are reported brought (each after its commit).
    let mut child = migrate()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let mut brought = 0;
    for line in lines {
        let line = line.unwrap();
        assert!(!line.contains("skipped"), "{line}");
        if line.ends_with(": brought") {
            brought += 1;
            if brought == 60 {
                break;
            }
        }
    }
    assert_eq!(brought, 60, "the first run stopped early");
    child.kill().unwrap();
    child.wait().unwrap();

    // Run again: the rest, none twice.
    let out = migrate().output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = stdout.lines().next().unwrap_or_default().to_string();
    let count = |after: &str| -> u64 {
        let (_, rest) = summary
            .split_once(after)
            .unwrap_or_else(|| panic!("{stdout}"));
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let (new, earlier) = (count("\": "), count("documents, "));
    assert_eq!(new + earlier, 200, "{stdout}");
    assert!(earlier >= 60, "{stdout}");
    assert!(stdout.contains("numbers: all kept"), "{stdout}");
    let correspondents = paperless_get(&src, "/api/correspondents/", "application/json")["count"]
        .as_u64()
        .unwrap();
    assert!(
        stdout.contains(&format!("{correspondents} correspondents")),
        "{stdout}"
    );
    // A third run finds nothing to do.
    let out = migrate().output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(": 0 new documents, 200 brought"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let dst = Server::start(&dest, FAST_CONFIG, &[]);
    let all = all_numbers(&dst);
    assert_eq!(all, numbers, "the same numbers, each once");
    for n in &numbers {
        assert_eq!(carried(&dst, *n), carried(&src, *n), "document #{n}");
    }
    let (code, _, bytes) = send(
        anon_client()
            .get(dst.url(&format!("/api/documents/{}/download/", numbers[199])))
            .header("authorization", format!("Token {ADMIN_TOKEN}")),
    );
    assert_eq!((code, bytes == pdf), (200, true), "the first upload, a PDF");
}
