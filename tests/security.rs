//! The gateway against the real binary: tokens and roles on every route,
//! workspace isolation on every read path, rate limits, revocation, request
//! ids, the audit trail, the first admin token, and hostile uploads.

mod common;

use std::time::Duration;

use common::reqwest::{anon_client, send, HeaderMapLite, Method};
use common::*;
use serde_json::{json, Value};

/// Test config with the per-address limit off (these tests send many
/// token-less requests on purpose).
fn config(extra: &str) -> String {
    format!("{FAST_CONFIG}\n[rate_limit]\nper_ip_per_second = 0\n{extra}")
}

fn call(
    method: Method,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, HeaderMapLite, Value) {
    let mut req = anon_client().request(method, url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (code, h, body) = send(req);
    let v = serde_json::from_slice(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into()));
    (code, h, v)
}

fn post_json(url: &str, token: &str, body: &Value) -> (u16, Value) {
    let (code, _, bytes) = send(anon_client().post(url).bearer_auth(token).json(body));
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn create_token(s: &Server, name: &str, role: &str, workspaces: &[&str]) -> (String, String) {
    let body = json!({"name": name, "role": role, "workspaces": workspaces});
    let (code, v) = post_json(&s.url("/api/v1/tokens"), ADMIN_TOKEN, &body);
    assert_eq!(code, 201, "create token: {v}");
    assert!(v.get("hash").is_none(), "the hash is never shown: {v}");
    (
        v["id"].as_str().unwrap().to_string(),
        v["token"].as_str().unwrap().to_string(),
    )
}

fn upload_as(
    s: &Server,
    token: &str,
    files: &[(&str, &[u8])],
    workspace: Option<&str>,
    request_id: Option<&str>,
) -> (u16, Value) {
    let mut form = ::reqwest::multipart::Form::new();
    if let Some(w) = workspace {
        form = form.text("workspace", w.to_string());
    }
    for (name, bytes) in files {
        form = form.part(
            "file",
            ::reqwest::multipart::Part::bytes(bytes.to_vec()).file_name(name.to_string()),
        );
    }
    let mut req = anon_client()
        .post(s.url("/api/v1/documents"))
        .bearer_auth(token)
        .multipart(form);
    if let Some(r) = request_id {
        req = req.header("x-request-id", r);
    }
    let (code, _, body) = send(req);
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

fn wait_indexed(s: &Server, ids: &[&str]) {
    for id in ids {
        let d = wait_terminal(s, id, Duration::from_secs(60));
        assert_eq!(d["stage"], "indexed", "{d}");
    }
}

#[test]
fn every_route_needs_a_token_and_a_role_that_may_use_it() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config(""), &[]);
    let (_, reader) = create_token(&s, "r", "reader", &["default"]);
    let (_, editor) = create_token(&s, "e", "editor", &["default"]);
    let id = upload_one(&s, "a.txt", b"route probe".to_vec());

    // The router's own table, as the server publishes it.
    let (code, _, api) = call(
        Method::GET,
        &s.url("/api/v1/openapi.json"),
        Some(&reader),
        &[],
    );
    assert_eq!(code, 200, "{api}");
    let paths = api["paths"].as_object().expect("paths");
    let mut checked = 0;
    for (path, ops) in paths {
        for (method, op) in ops.as_object().unwrap() {
            let url = s.url(&path.replace("{id}", &id));
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let role = op["x-docpipe-role"].as_str();
            let Some(role) = role else {
                let (code, _, v) = call(m, &url, None, &[]);
                match path.as_str() {
                    "/healthz" | "/readyz" => {
                        assert_eq!(code, 200, "{method} {path} without a token")
                    }
                    // The Paperless apps' sign-in takes a token as its
                    // password; without one it gives nothing.
                    "/api/token/" => assert_eq!(code, 400, "{method} {path}: {v}"),
                    _ => panic!("{method} {path} is open but is not a health check or the sign-in"),
                }
                continue;
            };
            let (code, h, v) = call(m.clone(), &url, None, &[]);
            assert_eq!(code, 401, "{method} {path} without a token: {v}");
            assert_eq!(h.get("content-type"), Some("application/problem+json"));
            assert!(h.get("www-authenticate").is_some(), "{method} {path}");
            let (code, _, _) = call(m.clone(), &url, Some("dp_not-a-real-token"), &[]);
            assert_eq!(code, 401, "{method} {path} with a made-up token");
            let lower: &[&str] = match role {
                "admin" => &[&reader, &editor],
                "editor" => &[&reader],
                "reader" => &[],
                other => panic!("unknown role {other} on {method} {path}"),
            };
            for t in lower {
                let (code, _, v) = call(m.clone(), &url, Some(t), &[]);
                assert_eq!(code, 403, "{method} {path} needs {role}: {v}");
                assert_eq!(v["code"], "forbidden");
            }
            checked += 1;
        }
    }
    assert!(checked >= 17, "only {checked} protected routes listed");
    // The refused DELETEs and retries left the document in place.
    assert!(doc(&s, &id)["stage"].as_str().is_some());
}

#[test]
fn a_workspace_never_sees_another_workspaces_documents() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config(""), &[]);
    let (_, acme) = create_token(&s, "acme editor", "editor", &["acme"]);
    let (_, acme_reader) = create_token(&s, "acme reader", "reader", &["acme"]);
    let (_, beta) = create_token(&s, "beta editor", "editor", &["beta"]);

    let shared = b"quokkaledger shared text of both workspaces".to_vec();
    let (code, a) = upload_as(&s, &acme, &[("a.txt", &shared)], None, None);
    assert_eq!(code, 202, "{a}");
    assert_eq!(a["documents"][0]["duplicate_of"], Value::Null);
    // The same bytes in beta: a new document there, nothing said of acme's.
    let (code, b) = upload_as(&s, &beta, &[("b.txt", &shared)], None, None);
    assert_eq!(code, 202, "{b}");
    assert_eq!(b["documents"][0]["duplicate_of"], Value::Null, "{b}");
    let (code, b2) = upload_as(
        &s,
        &beta,
        &[("b2.txt", b"quokkaledger beta only secretword")],
        None,
        None,
    );
    assert_eq!(code, 202, "{b2}");
    let a_id = a["documents"][0]["id"].as_str().unwrap().to_string();
    let b_id = b["documents"][0]["id"].as_str().unwrap().to_string();
    let b2_id = b2["documents"][0]["id"].as_str().unwrap().to_string();
    wait_indexed(&s, &[&a_id, &b_id, &b2_id]);
    assert_eq!(doc(&s, &a_id)["workspace"], "acme");
    assert_eq!(doc(&s, &b_id)["workspace"], "beta");

    // Uploading into a workspace the token may not use.
    let (code, v) = upload_as(&s, &acme, &[("x.txt", b"x")], Some("beta"), None);
    assert_eq!(
        (code, v["code"].as_str()),
        (403, Some("workspace_forbidden"))
    );

    for t in [&acme, &acme_reader] {
        // Every read path by id: a foreign id is simply not there.
        for suffix in ["", "/content", "/text", "/events", "/similar"] {
            let url = s.url(&format!("/api/v1/documents/{b_id}{suffix}"));
            let (code, _, v) = call(Method::GET, &url, Some(t), &[]);
            assert_eq!(code, 404, "GET …{suffix} of beta's document: {v}");
            let url = s.url(&format!("/api/v1/documents/{a_id}{suffix}"));
            let (code, _, v) = call(Method::GET, &url, Some(t), &[]);
            assert_eq!(code, 200, "GET …{suffix} of acme's own document: {v}");
        }
        // List.
        let (_, _, v) = call(Method::GET, &s.url("/api/v1/documents"), Some(t), &[]);
        let ids: Vec<&str> = v["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [a_id.as_str()]);
        // Search: hits, total and snippets.
        let (_, _, v) = call(
            Method::GET,
            &s.url("/api/v1/search?q=quokkaledger"),
            Some(t),
            &[],
        );
        assert_eq!(v["total"], 1, "{v}");
        assert_eq!(v["hits"][0]["id"], a_id.as_str());
        let (_, _, v) = call(
            Method::GET,
            &s.url("/api/v1/search?q=secretword"),
            Some(t),
            &[],
        );
        assert_eq!(
            (v["total"].as_u64(), v["hits"].as_array().map(Vec::len)),
            (Some(0), Some(0))
        );
        // Similar: beta's copy of the very same text is not offered.
        let (_, _, v) = call(
            Method::GET,
            &s.url(&format!("/api/v1/documents/{a_id}/similar")),
            Some(t),
            &[],
        );
        assert_eq!(v["hits"].as_array().unwrap().len(), 0, "{v}");
        // Counts.
        let (_, _, v) = call(Method::GET, &s.url("/api/v1/status"), Some(t), &[]);
        assert_eq!(v["stages"]["indexed"]["documents"], 1, "{v}");
        assert_eq!(v["actors"].as_array().map(Vec::len), Some(0));
        // The audit trail is the admin's.
        let (code, _, _) = call(Method::GET, &s.url("/api/v1/audit"), Some(t), &[]);
        assert_eq!(code, 403);
    }
    // The Paperless-ngx API: numbers are easy to guess, and still scoped.
    let b_number = {
        let (_, _, v) = call(
            Method::GET,
            &s.url("/api/documents/"),
            Some(ADMIN_TOKEN),
            &[],
        );
        v["results"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["original_file_name"] == "b.txt")
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    for path in [
        format!("/api/documents/{b_number}/"),
        format!("/api/documents/{b_number}/download/"),
        format!("/api/documents/?more_like_id={b_number}"),
    ] {
        let (code, _, v) = call(Method::GET, &s.url(&path), Some(&acme_reader), &[]);
        assert_eq!(code, 404, "{path}: {v}");
    }
    let (_, _, v) = call(
        Method::GET,
        &s.url("/api/documents/?query=quokkaledger"),
        Some(&acme_reader),
        &[],
    );
    assert_eq!(v["count"], 1, "{v}");
    let (_, _, v) = call(
        Method::GET,
        &s.url("/api/documents/"),
        Some(&acme_reader),
        &[],
    );
    assert_eq!(v["count"], 1, "{v}");
    let (_, _, v) = call(Method::GET, &s.url("/api/tasks/"), Some(&acme_reader), &[]);
    assert_eq!(v.as_array().map(Vec::len), Some(0), "no tasks of beta: {v}");
    let (code, v) = post_json(&s.url("/api/tags/"), &beta, &json!({"name": "beta-only"}));
    assert_eq!(code, 201, "{v}");
    let beta_tag = v["id"].as_i64().unwrap();
    let (_, _, v) = call(Method::GET, &s.url("/api/tags/"), Some(&acme_reader), &[]);
    assert_eq!(v["count"], 0, "{v}");
    let (code, _, _) = call(
        Method::GET,
        &s.url(&format!("/api/tags/{beta_tag}/")),
        Some(&acme_reader),
        &[],
    );
    assert_eq!(code, 404);
    // Nor can acme tag its document with beta's tag.
    let (code, _, bytes) = send(
        anon_client()
            .patch(s.url(&format!("/api/v1/documents/{a_id}")))
            .bearer_auth(&acme)
            .json(&json!({"tags": [beta_tag]})),
    );
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&bytes));

    // Writes by id are scoped the same way.
    for (m, suffix) in [
        (Method::DELETE, ""),
        (Method::POST, "/retry"),
        (Method::PATCH, ""),
    ] {
        let url = s.url(&format!("/api/v1/documents/{b_id}{suffix}"));
        let (code, _, bytes) = send(
            anon_client()
                .request(m, &url)
                .bearer_auth(&acme)
                .json(&json!({"title": "hijacked"})),
        );
        assert_eq!(code, 404, "{}", String::from_utf8_lossy(&bytes));
    }
    assert_eq!(
        doc(&s, &b_id)["stage"],
        "indexed",
        "beta's document untouched"
    );

    // The admin sees both, and the audit trail by workspace.
    let (_, _, v) = call(
        Method::GET,
        &s.url(&format!("/api/v1/documents/{a_id}/similar")),
        Some(ADMIN_TOKEN),
        &[],
    );
    assert!(
        v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["id"] == b_id.as_str()),
        "{v}"
    );
    let (_, _, v) = call(
        Method::GET,
        &s.url("/api/v1/audit?workspace=acme"),
        Some(ADMIN_TOKEN),
        &[],
    );
    let events = v["events"].as_array().unwrap();
    assert!(!events.is_empty());
    assert!(events.iter().all(|e| e["workspace"] == "acme"), "{v}");
}

#[test]
fn the_audit_trail_records_every_change_with_token_and_request_id() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config(""), &[]);
    let (editor_id, editor) = create_token(&s, "scanner", "editor", &["default"]);

    let (code, v) = upload_as(
        &s,
        &editor,
        &[("ok.txt", b"audit me")],
        None,
        Some("req-upload-1"),
    );
    assert_eq!(code, 202, "{v}");
    let ok = v["documents"][0]["id"].as_str().unwrap().to_string();
    let broken = fixture("quokka.pdf");
    let broken = &broken[..broken.len() / 3];
    let (code, v) = upload_as(&s, &editor, &[("broken.pdf", broken)], None, None);
    assert_eq!(code, 202, "{v}");
    let bad = v["documents"][0]["id"].as_str().unwrap().to_string();
    assert_eq!(
        wait_terminal(&s, &bad, Duration::from_secs(60))["stage"],
        "failed"
    );
    wait_indexed(&s, &[&ok]);

    let retry = s.url(&format!("/api/v1/documents/{bad}/retry"));
    let (code, h, _) = call(
        Method::POST,
        &retry,
        Some(&editor),
        &[("x-request-id", "req-retry-2")],
    );
    assert_eq!(code, 202);
    assert_eq!(
        h.get("x-request-id"),
        Some("req-retry-2"),
        "the id comes back"
    );
    // An edit: recorded, and the document is indexed again under its new title.
    let edit = s.url(&format!("/api/v1/documents/{ok}"));
    let (code, _, bytes) = send(
        anon_client()
            .patch(&edit)
            .bearer_auth(&editor)
            .header("x-request-id", "req-edit-5")
            .json(&json!({"title": "Zebrafinch memo", "doc_type": "memo"})),
    );
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        (v["title"].as_str(), v["doc_type"].as_str()),
        (Some("Zebrafinch memo"), Some("memo"))
    );
    wait_until(
        Duration::from_secs(60),
        "the edited title to be searchable",
        || search(&s, "zebrafinch")["total"] == 1,
    );
    assert_eq!(
        doc(&s, &ok)["doc_type"],
        "memo",
        "the classifier did not override it"
    );
    let (code, _, v) = call(Method::PATCH, &edit, Some(&editor), &[]);
    assert_eq!(code, 400, "a body is needed: {v}");
    let del = s.url(&format!("/api/v1/documents/{ok}"));
    let (code, _, _) = call(
        Method::DELETE,
        &del,
        Some(&editor),
        &[("x-request-id", "req-del-3")],
    );
    assert_eq!(code, 204);
    let revoke = s.url(&format!("/api/v1/tokens/{editor_id}"));
    let (code, _, _) = call(
        Method::DELETE,
        &revoke,
        Some(ADMIN_TOKEN),
        &[("x-request-id", "req-rev-4")],
    );
    assert_eq!(code, 204);
    // A request without an id gets one.
    let (_, h, _) = call(
        Method::GET,
        &s.url("/api/v1/status"),
        Some(ADMIN_TOKEN),
        &[],
    );
    assert!(h.get("x-request-id").is_some_and(|v| v.len() >= 16));

    let (code, _, v) = call(Method::GET, &s.url("/api/v1/audit"), Some(ADMIN_TOKEN), &[]);
    assert_eq!(code, 200, "{v}");
    let events = v["events"].as_array().unwrap();
    let find = |kind: &str, doc: Option<&str>| -> &Value {
        events
            .iter()
            .find(|e| e["kind"] == kind && doc.is_none_or(|d| e["doc_id"] == d))
            .unwrap_or_else(|| panic!("no {kind} event in {v}"))
    };
    let e = find("token_created", None);
    assert_eq!(e["token_id"], "configured-admin");
    assert_eq!(e["detail"]["id"], editor_id.as_str());
    let e = find("uploaded", Some(&ok));
    assert_eq!(
        (e["token_id"].as_str(), e["request_id"].as_str()),
        (Some(editor_id.as_str()), Some("req-upload-1"))
    );
    assert_eq!(e["workspace"], "default");
    let e = find("uploaded", Some(&bad));
    assert_eq!(e["token_id"], editor_id.as_str());
    assert!(e["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    let e = find("retried", Some(&bad));
    assert_eq!(
        (e["token_id"].as_str(), e["request_id"].as_str()),
        (Some(editor_id.as_str()), Some("req-retry-2"))
    );
    for kind in ["delete_requested", "deleted"] {
        let e = find(kind, Some(&ok));
        assert_eq!(
            (e["token_id"].as_str(), e["request_id"].as_str()),
            (Some(editor_id.as_str()), Some("req-del-3"))
        );
    }
    let e = find("edited", Some(&ok));
    assert_eq!(
        (e["token_id"].as_str(), e["request_id"].as_str()),
        (Some(editor_id.as_str()), Some("req-edit-5"))
    );
    assert_eq!(e["detail"]["title"], "Zebrafinch memo");
    let e = find("token_revoked", None);
    assert_eq!(
        (e["token_id"].as_str(), e["request_id"].as_str()),
        (Some("configured-admin"), Some("req-rev-4"))
    );
    // The document's pipeline events carry its upload's request id.
    let (_, _, v) = call(
        Method::GET,
        &s.url(&format!("/api/v1/documents/{bad}/events")),
        Some(ADMIN_TOKEN),
        &[],
    );
    assert!(v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "failed")
        .all(|e| e["request_id"] == find("uploaded", Some(&bad))["request_id"]));
    // Filtering by time.
    let (_, _, v) = call(
        Method::GET,
        &s.url("/api/v1/audit?since=2999-01-01T00:00:00Z"),
        Some(ADMIN_TOKEN),
        &[],
    );
    assert_eq!(v["events"].as_array().unwrap().len(), 0);
    let (code, _, v) = call(
        Method::GET,
        &s.url("/api/v1/audit?since=yesterday"),
        Some(ADMIN_TOKEN),
        &[],
    );
    assert_eq!((code, v["code"].as_str()), (400, Some("invalid_parameter")));
}

#[test]
fn rate_limits_answer_429_and_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &format!("{FAST_CONFIG}\n[rate_limit]\nper_ip_per_second = 1\nper_ip_burst = 2\n"),
        &[
            ("DOCPIPE_RATE_LIMIT__PER_TOKEN_PER_SECOND", "1"),
            ("DOCPIPE_RATE_LIMIT__PER_TOKEN_BURST", "3"),
        ],
    );
    let (_, t) = create_token(&s, "limited", "reader", &["default"]);
    let status = s.url("/api/v1/status");
    for _ in 0..3 {
        assert_eq!(call(Method::GET, &status, Some(&t), &[]).0, 200);
    }
    let (code, h, v) = call(Method::GET, &status, Some(&t), &[]);
    assert_eq!(
        (code, v["code"].as_str()),
        (429, Some("rate_limited")),
        "{v}"
    );
    let wait: u64 = h.get("retry-after").expect("Retry-After").parse().unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    // Another token is not slowed down by this one.
    assert_eq!(call(Method::GET, &status, Some(ADMIN_TOKEN), &[]).0, 200);
    // Waiting as told is enough.
    std::thread::sleep(Duration::from_secs(wait));
    assert_eq!(call(Method::GET, &status, Some(&t), &[]).0, 200);

    // Requests without a valid token are limited per address.
    let codes: Vec<u16> = (0..4)
        .map(|_| call(Method::GET, &status, Some("dp_guess"), &[]).0)
        .collect();
    assert_eq!(&codes[..2], [401, 401]);
    assert!(codes[2..].contains(&429), "{codes:?}");
}

#[test]
fn a_revoked_token_fails_on_its_next_request() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config(""), &[]);
    let (id, t) = create_token(&s, "soon gone", "editor", &["default"]);
    let status = s.url("/api/v1/status");
    assert_eq!(call(Method::GET, &status, Some(&t), &[]).0, 200);
    let (code, _, _) = call(
        Method::DELETE,
        &s.url(&format!("/api/v1/tokens/{id}")),
        Some(ADMIN_TOKEN),
        &[],
    );
    assert_eq!(code, 204);
    let (code, _, v) = call(Method::GET, &status, Some(&t), &[]);
    assert_eq!(
        (code, v["code"].as_str()),
        (401, Some("unauthorized")),
        "{v}"
    );
    // Revoking twice: there is no live token by that id any more.
    let (code, _, _) = call(
        Method::DELETE,
        &s.url(&format!("/api/v1/tokens/{id}")),
        Some(ADMIN_TOKEN),
        &[],
    );
    assert_eq!(code, 404);
    let (_, _, v) = call(
        Method::GET,
        &s.url("/api/v1/tokens"),
        Some(ADMIN_TOKEN),
        &[],
    );
    let row = v["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == id.as_str())
        .unwrap()
        .clone();
    assert!(row["revoked_at"].is_string(), "{row}");
    assert!(row["prefix"]
        .as_str()
        .is_some_and(|p| t.starts_with(p) && p.len() < 16));
    assert!(
        !v.to_string().contains(&t[12..]),
        "no secret in the listing"
    );
    // And after a restart it stays revoked.
    let mut s = s;
    s.stop();
    s.restart();
    assert_eq!(
        call(Method::GET, &s.url("/api/v1/status"), Some(&t), &[]).0,
        401
    );
    // Bad token requests are refused with the reason.
    for body in [
        json!({"name": "x", "role": "root", "workspaces": ["default"]}),
        json!({"name": "x", "role": "reader"}),
        json!({"name": "x", "role": "reader", "workspaces": ["Not Valid"]}),
        json!({"name": "", "role": "admin"}),
    ] {
        let (code, v) = post_json(&s.url("/api/v1/tokens"), ADMIN_TOKEN, &body);
        assert_eq!(
            (code, v["code"].as_str()),
            (400, Some("invalid_body")),
            "{body}: {v}"
        );
    }
}

#[test]
fn hostile_filenames_are_stored_safely_and_oversized_uploads_store_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, &config("[server]\nmax_upload_bytes = 100000\n"), &[]);
    // NUL and newlines cannot travel raw in a header; RFC 5987's filename*
    // carries them percent-encoded, and multipart parsers decode them.
    let body = "--XyZ\r\nContent-Disposition: form-data; name=\"file\"; \
                filename*=UTF-8''..%2F..%2Fetc%2Fpass%00wd%0A%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E.txt\r\n\
                Content-Type: text/plain\r\n\r\nhostile name\r\n--XyZ--\r\n";
    let (code, _, bytes) = send(
        common::reqwest::async_client()
            .post(s.url("/api/v1/documents"))
            .header("content-type", "multipart/form-data; boundary=XyZ")
            .body(body),
    );
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(code, 202, "{v}");
    let id = v["documents"][0]["id"].as_str().unwrap().to_string();
    let stored = v["documents"][0]["filename"].as_str().unwrap().to_string();
    assert!(
        !stored.contains('/') && !stored.contains('\0') && !stored.contains('\n'),
        "{stored:?}"
    );
    assert_eq!(stored, "passwd<img src=x onerror=alert(1)>.txt");
    let (code, h, _) = send(
        common::reqwest::async_client().get(s.url(&format!("/api/v1/documents/{id}/content"))),
    );
    assert_eq!(code, 200);
    let cd = h.get("content-disposition").unwrap();
    assert!(
        cd.starts_with("attachment; filename*=UTF-8''") && !cd.contains('<') && !cd.contains('/'),
        "{cd}"
    );
    assert_eq!(h.get("x-content-type-options"), Some("nosniff"));
    assert_eq!(h.get("content-security-policy"), Some("sandbox"));

    let before = list_ids(&s, "limit=100");
    let big = vec![b'a'; 200_000];
    let (code, v) = upload(&s, &[("big.txt", big)], None);
    assert_eq!(
        (code, v["code"].as_str()),
        (413, Some("payload_too_large")),
        "{v}"
    );
    assert_eq!(list_ids(&s, "limit=100"), before, "nothing registered");
    let incoming = data.join("blobs/incoming");
    let left = std::fs::read_dir(&incoming).map(|d| d.count()).unwrap_or(0);
    assert_eq!(left, 0, "no staged bytes left in {}", incoming.display());
}

#[test]
fn first_start_makes_an_admin_token_once() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut s = Server::start_plain(&data, &config(""), &[]);
    let token = s
        .first_token
        .clone()
        .expect("the first admin token is printed");
    let file = data.join("admin-token");
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let (code, _, v) = call(Method::GET, &s.url("/api/v1/tokens"), Some(&token), &[]);
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["tokens"][0]["role"], "admin");
    // The test's configured token is not accepted here.
    assert_eq!(
        call(
            Method::GET,
            &s.url("/api/v1/status"),
            Some(ADMIN_TOKEN),
            &[]
        )
        .0,
        401
    );
    s.stop();
    s.restart();
    assert_eq!(
        s.first_token.as_deref(),
        Some(token.as_str()),
        "not printed again"
    );
    assert_eq!(
        call(Method::GET, &s.url("/api/v1/status"), Some(&token), &[]).0,
        200
    );
}

#[test]
fn the_status_page_asks_browsers_for_the_token_and_locks_itself_down() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config(""), &[]);
    let (code, h, _) = call(Method::GET, &s.url("/"), None, &[("accept", "text/html")]);
    assert_eq!(code, 401);
    assert!(
        h.get("www-authenticate")
            .is_some_and(|c| c.starts_with("Basic")),
        "a browser shows its login box"
    );
    let (code, h, body) = send(
        anon_client()
            .get(s.url("/"))
            .basic_auth("me", Some(ADMIN_TOKEN)),
    );
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).contains("<html"));
    let csp = h.get("content-security-policy").expect("CSP");
    assert!(
        csp.contains("default-src 'none'") && csp.contains("script-src 'sha256-"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"));
    assert_eq!(h.get("x-frame-options"), Some("DENY"));
    // No CORS unless configured.
    let (_, h, _) = call(
        Method::OPTIONS,
        &s.url("/api/v1/status"),
        None,
        &[
            ("origin", "https://evil.example"),
            ("access-control-request-method", "GET"),
        ],
    );
    assert_eq!(h.get("access-control-allow-origin"), None);
    // Health checks stay open for load balancers.
    assert_eq!(call(Method::GET, &s.url("/healthz"), None, &[]).0, 200);
}

#[test]
fn cors_allows_exactly_the_configured_origins() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &config("[server]\ncors_origins = [\"https://docs.example.org\"]\n"),
        &[],
    );
    let preflight = |origin: &str| {
        call(
            Method::OPTIONS,
            &s.url("/api/v1/search"),
            None,
            &[
                ("origin", origin),
                ("access-control-request-method", "GET"),
                ("access-control-request-headers", "authorization"),
            ],
        )
        .1
    };
    let h = preflight("https://docs.example.org");
    assert_eq!(
        h.get("access-control-allow-origin"),
        Some("https://docs.example.org")
    );
    assert!(h
        .get("access-control-allow-headers")
        .is_some_and(|v| v.contains("authorization")));
    assert_eq!(
        preflight("https://evil.example").get("access-control-allow-origin"),
        None
    );
}

#[test]
fn metrics_need_an_admin_token_unless_made_public() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config(""), &[]);
    let id = upload_one(&s, "m.txt", b"metrics count me".to_vec());
    wait_indexed(&s, &[&id]);
    assert_eq!(call(Method::GET, &s.url("/metrics"), None, &[]).0, 401);
    let (code, h, v) = call(Method::GET, &s.url("/metrics"), Some(ADMIN_TOKEN), &[]);
    assert_eq!(code, 200);
    assert!(h
        .get("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = v.as_str().unwrap();
    assert!(
        text.contains("docpipe_documents{stage=\"indexed\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("# TYPE docpipe_actor_processed_total counter"),
        "{text}"
    );
    drop(s);

    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &config("[auth]\nmetrics_public = true\n"),
        &[],
    );
    assert_eq!(call(Method::GET, &s.url("/metrics"), None, &[]).0, 200);
    assert_eq!(
        call(Method::GET, &s.url("/api/v1/status"), None, &[]).0,
        401
    );
}
