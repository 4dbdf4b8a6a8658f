//! Document types over the API: the defaults are listed with their fields;
//! a type created with `PUT` (fuzzy matching, its own field with its own
//! label) types and enriches the next documents; bad definitions are
//! refused; `DELETE` removes a configured type; the changes survive a
//! restart.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

fn types(s: &Server) -> Vec<Value> {
    let (code, v) = get_json(&s.url("/api/v1/types"));
    assert_eq!(code, 200, "{v}");
    v["types"].as_array().unwrap().clone()
}

fn find<'a>(list: &'a [Value], name: &str) -> Option<&'a Value> {
    list.iter().find(|t| t["name"] == name)
}

fn put_type(s: &Server, name: &str, body: Value) -> (u16, Value) {
    let (code, _, bytes) = reqwest::send(
        reqwest::async_client()
            .put(s.url(&format!("/api/v1/types/{name}")))
            .json(&body),
    );
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn delete_type(s: &Server, name: &str) -> u16 {
    reqwest::send(reqwest::async_client().delete(s.url(&format!("/api/v1/types/{name}")))).0
}

fn typed(s: &Server, name: &str, text: &str) -> Value {
    let id = upload_one(s, name, text.as_bytes().to_vec());
    let d = wait_terminal(s, &id, WAIT);
    assert_eq!(d["stage"], "indexed", "{d}");
    d
}

#[test]
fn types_are_listed_created_changed_and_deleted_over_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let list = types(&s);
    let invoice = find(&list, "invoice").expect("the default invoice type");
    assert_eq!(invoice["origin"], "config");
    assert_eq!(invoice["matching"], "any");
    assert!(
        invoice["fields"].to_string().contains("invoice_number"),
        "{invoice}"
    );
    for name in [
        "receipt",
        "contract",
        "letter",
        "email",
        "bank_statement",
        "payslip",
        "manual",
        "other",
    ] {
        assert!(find(&list, name).is_some(), "default type {name}");
    }

    // A new type: fuzzy keywords (a typo still matches) and its own field.
    let insurance = json!({
        "description": "An insurance policy or a change to one",
        "matching": "fuzzy",
        "keywords": ["insurance policy"],
        "fields": [{"name": "policy_number", "kind": "identifier", "required": true, "labels": ["policy no"]}]
    });
    let (code, v) = put_type(&s, "insurance", insurance.clone());
    assert_eq!(code, 201, "{v}");
    assert_eq!(
        (v["name"].as_str(), v["origin"].as_str()),
        (Some("insurance"), Some("api")),
        "{v}"
    );
    let d = typed(
        &s,
        "policy.txt",
        "Your Insurence Policy\nPolicy no: POL-7781\nValid from 1 March 2026.",
    );
    assert_eq!(
        (d["doc_type"].as_str(), d["type_source"].as_str()),
        (Some("insurance"), Some("rule")),
        "{d}"
    );
    let policy = d["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "policy_number")
        .cloned();
    assert_eq!(
        policy.as_ref().map(|f| f["value"].clone()),
        Some(json!("POL-7781")),
        "{d}"
    );
    assert!(
        d["fields"].to_string().contains("2026-03-01"),
        "the common date field: {d}"
    );

    // Replaced: 200; bad definitions: 400 with what is wrong.
    let mut changed = insurance.clone();
    changed["keywords"] = json!(["insurance policy", "premium"]);
    assert_eq!(put_type(&s, "insurance", changed).0, 200);
    for (name, body, wrong) in [
        ("bad", json!({"patterns": ["("]}), "patterns"),
        ("Bad Name", json!({}), "name"),
        ("other-name", json!({"name": "x"}), "name"),
        (
            "dup",
            json!({"fields": [{"name": "a", "kind": "date"}, {"name": "a", "kind": "text"}]}),
            "twice",
        ),
        (
            "kind",
            json!({"fields": [{"name": "a", "kind": "colour"}]}),
            "colour",
        ),
        ("extra", json!({"colour": "red"}), "colour"),
    ] {
        let (code, v) = put_type(&s, &name.replace(' ', "%20"), body);
        assert_eq!(
            (code, v["code"].as_str()),
            (400, Some("invalid_type")),
            "{name}: {v}"
        );
        assert!(v["detail"].as_str().unwrap().contains(wrong), "{name}: {v}");
    }

    // A configured type deleted: gone from the list and from typing.
    assert_eq!(delete_type(&s, "receipt"), 204);
    assert_eq!(delete_type(&s, "receipt"), 404);
    assert!(find(&types(&s), "receipt").is_none());
    let d = typed(
        &s,
        "receipt.txt",
        "RECEIPT\nThank you for your purchase\nTotal 12.00 EUR",
    );
    assert_ne!(d["doc_type"], "receipt", "{d}");

    // The changes are kept across a restart, and audited.
    assert!(s.stop().success());
    s.restart();
    let list = types(&s);
    assert!(find(&list, "receipt").is_none());
    let kept = find(&list, "insurance").expect("the API's type survives");
    assert_eq!(kept["keywords"], json!(["insurance policy", "premium"]));
    let (_, audit) = get_json(&s.url("/api/v1/audit"));
    let text = audit.to_string();
    assert!(
        text.contains("type_saved") && text.contains("type_deleted"),
        "{audit}"
    );
}
