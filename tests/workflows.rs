//! Workflows end to end against the real server: an invoice from a given
//! issuer gets its tag and title (once: the workflow's own edit sets off
//! nothing more), a failed document is sent to a webhook, rules survive a
//! restart, and a bad rule gets a `400` naming the problem.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::invoices::samples;
use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);

fn put(s: &Server, name: &str, body: Value) -> (u16, Value) {
    let (code, _, bytes) = reqwest::send(
        reqwest::async_client()
            .put(s.url(&format!("/api/v1/workflows/{name}")))
            .json(&body),
    );
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn tags_of(s: &Server, id: &str) -> Vec<String> {
    let d = doc(s, id);
    d["tags"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn field(d: &Value, name: &str) -> Option<String> {
    d["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .and_then(|f| f["value"].as_str().map(str::to_string))
}

fn issuer_rule(issuer: &str) -> Value {
    json!({
        "workspace": "default",
        "triggers": ["indexed"],
        "conditions": {"doc_type": ["invoice"], "fields": {"issuer": issuer}},
        "actions": {"add_tags": ["supplier-a"], "set_title": "{issuer} – {invoice_number}"}
    })
}

#[test]
fn an_invoice_from_an_issuer_gets_its_tag_and_title_once_and_rules_survive_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let invoices = samples(6);
    let (a, b) = (&invoices[0], &invoices[1]);
    let issuer = a.expected["issuer"].clone();
    assert_ne!(issuer, b.expected["issuer"]);
    let (code, v) = put(&s, "supplier-a", issuer_rule(&issuer));
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["name"], "supplier-a");
    assert_eq!(v["workspace"], "default");

    let first = upload_to(&s, "default", "a1.txt", &a.text);
    let other = upload_to(&s, "default", "b1.txt", &b.text);
    wait_until(WAIT, "the issuer's invoice tagged", || {
        tags_of(&s, &first) == ["supplier-a"]
    });
    let d = doc(&s, &first);
    assert_eq!(d["doc_type"], "invoice", "{d}");
    let number = field(&d, "invoice_number").expect("an invoice number");
    assert_eq!(number, a.expected["invoice_number"]);
    assert_eq!(d["title"], format!("{issuer} – {number}"), "{d}");
    // The edit is the workflow's, in the audit trail, with the upload's
    // request id.
    let (_, audit) = get_json(&s.url("/api/v1/audit?limit=1000"));
    let by_flow: Vec<&Value> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["token_id"] == "workflow:supplier-a" && e["kind"] == "edited")
        .collect();
    assert_eq!(by_flow.len(), 1, "{audit}");
    assert_eq!(by_flow[0]["doc_id"], first.as_str());
    assert!(by_flow[0]["request_id"].as_str().is_some());

    // The other issuer's invoice is left alone.
    wait_terminal(&s, &other, WAIT);

    // Indexed again after the edit; a later invoice of the issuer, once
    // tagged, shows the workflow has seen that second `indexed` event too,
    // and it changed nothing (one edit per document).
    wait_until(WAIT, "indexed again", || {
        doc(&s, &first)["stage"] == "indexed"
    });
    let second = upload_to(
        &s,
        "default",
        "a2.txt",
        &invoices[3]
            .text
            .replace(&invoices[3].expected["issuer"], &issuer),
    );
    wait_until(WAIT, "the second invoice tagged", || {
        tags_of(&s, &second) == ["supplier-a"]
    });
    assert!(tags_of(&s, &other).is_empty());
    assert_eq!(doc(&s, &other)["title"], Value::Null);
    let edits = |s: &Server, id: &str| {
        let (_, v) = get_json(&s.url(&format!("/api/v1/documents/{id}/events")));
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "edited")
            .count()
    };
    assert_eq!(edits(&s, &first), 1);

    // The rule survives a restart, and still applies.
    s.stop();
    s.restart();
    let (code, v) = get_json(&s.url("/api/v1/workflows/supplier-a"));
    assert_eq!(code, 200, "{v}");
    assert_eq!(
        v["definition"]["conditions"]["fields"]["issuer"],
        issuer.as_str()
    );
    let third = upload_to(
        &s,
        "default",
        "a3.txt",
        &a.text.replace("INVOICE", "INVOICE (copy)"),
    );
    wait_until(WAIT, "tagged after the restart", || {
        tags_of(&s, &third) == ["supplier-a"]
    });
    assert_eq!(
        edits(&s, &first),
        1,
        "nothing applied twice across the restart"
    );

    // Replaced (200), listed, deleted (204), gone (404).
    let mut rule = issuer_rule(&issuer);
    rule["actions"] = json!({"review": true});
    let (code, _) = put(&s, "supplier-a", rule);
    assert_eq!(code, 200);
    let (_, list) = get_json(&s.url("/api/v1/workflows"));
    assert_eq!(list["workflows"].as_array().unwrap().len(), 1);
    let (code, _, _) =
        reqwest::send(reqwest::async_client().delete(s.url("/api/v1/workflows/supplier-a")));
    assert_eq!(code, 204);
    let (code, _) = get_json(&s.url("/api/v1/workflows/supplier-a"));
    assert_eq!(code, 404);
}

#[test]
fn a_failed_document_sets_off_a_webhook_through_a_workflow() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(
        &tmp.path().join("data"),
        &format!("{FAST_CONFIG}\n[webhooks]\nallow_private = true\ninitial_backoff_ms = 100\nmax_backoff_ms = 200\n"),
        &[],
    );
    let got: Arc<Mutex<Vec<Value>>> = Default::default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let sink = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap());
                "ok"
            }
        }),
    );
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    // The webhook itself asks only for `indexed`: the failure reaches it
    // through the workflow.
    let (code, hook) = post_json(
        &s,
        "/api/v1/webhooks",
        json!({"url": format!("http://{addr}/hook"), "events": ["document.indexed"], "workspace": "default"}),
    );
    assert_eq!(code, 201, "{hook}");
    let hook_id = hook["id"].as_str().unwrap();
    let (code, v) = put(
        &s,
        "failures-out",
        json!({"workspace": "default", "triggers": ["failed"], "actions": {"webhook": hook_id, "add_tags": ["broken"]}}),
    );
    assert_eq!(code, 201, "{v}");

    let bad = upload_one(
        &s,
        "broken.pdf",
        b"%PDF-1.7\n1 0 obj << /Type /Catalog /Pages 9 0 R >>\ntrailer garbage".to_vec(),
    );
    let d = wait_terminal(&s, &bad, WAIT);
    assert_eq!(d["stage"], "failed", "{d}");
    wait_until(WAIT, "the failure delivered", || {
        got.lock()
            .unwrap()
            .iter()
            .any(|b| b["event"] == "document.failed" && b["data"]["document"] == bad.as_str())
    });
    wait_until(WAIT, "the failed document tagged", || {
        tags_of(&s, &bad) == ["broken"]
    });
    let b = got
        .lock()
        .unwrap()
        .iter()
        .find(|b| b["event"] == "document.failed")
        .cloned()
        .unwrap();
    assert_eq!(b["webhook"], hook_id);
    assert!(b["data"]["detail"]["code"].as_str().is_some(), "{b}");
}

#[test]
fn a_bad_rule_gets_a_400_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let ok = json!({"workspace": "default", "triggers": ["indexed"], "actions": {"review": true}});
    let with = |path: &[&str], value: Value| {
        let mut v = ok.clone();
        let mut at = &mut v;
        for p in &path[..path.len() - 1] {
            at = at
                .as_object_mut()
                .unwrap()
                .entry(p.to_string())
                .or_insert(json!({}));
        }
        at[path[path.len() - 1]] = value;
        v
    };
    let cases = [
        (with(&["conditons"], json!({})), "invalid_body", "conditons"),
        (
            with(&["triggers"], json!(["uploaded"])),
            "invalid_body",
            "uploaded",
        ),
        (with(&["triggers"], json!([])), "invalid_body", "triggers"),
        (
            with(&["conditions", "text"], json!("(unclosed")),
            "invalid_body",
            "conditions.text",
        ),
        (
            with(&["conditions", "doc_type"], json!(["no-such-type"])),
            "invalid_body",
            "no-such-type",
        ),
        (with(&["actions"], json!({})), "invalid_body", "actions"),
        (
            with(&["actions", "set_title"], json!("{issuer")),
            "invalid_body",
            "set_title",
        ),
        (
            with(&["actions", "webhook"], json!("wh_nope")),
            "invalid_body",
            "wh_nope",
        ),
        (
            with(&["actions", "set_fields"], json!({"total": "lots"})),
            "invalid_body",
            "set_fields.total",
        ),
        (
            with(&["workspace"], json!("Not A Workspace")),
            "invalid_workspace",
            "Not A Workspace",
        ),
    ];
    for (body, code_name, names) in cases {
        let (code, v) = put(&s, "rule", body.clone());
        assert_eq!(code, 400, "{body}: {v}");
        assert_eq!(v["code"], code_name, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(names), "{body}: {v}");
    }
    let (code, v) = put(&s, "bad name!", ok.clone());
    assert_eq!(code, 400, "{v}");
    assert!(v["detail"].as_str().unwrap().contains("bad name!"), "{v}");
    let (code, _, bytes) = reqwest::send(
        reqwest::async_client()
            .put(s.url("/api/v1/workflows/rule"))
            .header("content-type", "application/json")
            .body("{not json"),
    );
    assert_eq!(code, 400, "{}", String::from_utf8_lossy(&bytes));
    // Nothing was stored.
    let (_, list) = get_json(&s.url("/api/v1/workflows"));
    assert_eq!(list["workflows"], json!([]));
}
