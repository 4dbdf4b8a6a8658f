//! Fields end to end: generated invoices and receipts (three languages, two
//! number conventions, several date forms, as text and as PDF) have their
//! fields found; the Factur-X sample's embedded e-invoice gives exact
//! values; a value set by hand is checked, kept over re-enrichment, and
//! given back to the rules when cleared.

mod common;

use std::time::Duration;

use common::invoices::{pdf, samples};
use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(120);

fn field<'a>(d: &'a Value, name: &str) -> Option<&'a Value> {
    d["fields"].as_array()?.iter().find(|f| f["name"] == name)
}

fn value(d: &Value, name: &str) -> Option<String> {
    field(d, name).and_then(|f| f["value"].as_str().map(str::to_string))
}

#[test]
fn generated_invoices_and_receipts_have_their_fields_found() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    // Invoices in columns are what the built-in rules miss (the benchmark
    // counts them); the others are all read.
    let set: Vec<_> = samples(24).into_iter().filter(|s| !s.columns).collect();
    assert_eq!(set.len(), 18);
    let mut ids = Vec::new();
    for smp in &set {
        ids.push(upload_one(
            &s,
            &format!("{}.txt", smp.name),
            smp.text.clone().into_bytes(),
        ));
        ids.push(upload_one(&s, &format!("{}.pdf", smp.name), pdf(&smp.text)));
    }
    let mut misses = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let smp = &set[i / 2];
        let d = wait_terminal(&s, id, WAIT);
        assert_eq!(d["stage"], "indexed", "{d}");
        for (name, want) in &smp.expected {
            let got = value(&d, name);
            if got.as_deref() != Some(want.as_str()) {
                misses.push(format!(
                    "{} ({}): {name} = {got:?}, want {want:?}",
                    smp.name, d["filename"]
                ));
            }
        }
        let total = field(&d, "total").cloned().unwrap_or_default();
        if total["currency"] != smp.currency {
            misses.push(format!(
                "{}: currency {}, want {}",
                d["filename"], total["currency"], smp.currency
            ));
        }
        for f in d["fields"].as_array().unwrap() {
            assert_eq!(f["source"], "rule", "{f}");
            let c = f["confidence"].as_f64().unwrap();
            assert!(c > 0.0 && c <= 1.0, "{f}");
        }
    }
    assert!(
        misses.is_empty(),
        "{} wrong values:\n{}",
        misses.len(),
        misses.join("\n")
    );
}

#[test]
fn the_factur_x_invoice_gives_its_exact_values_and_user_values_stay() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let bytes = std::fs::read(corpus_dir().join("invoice-facturx/invoice_EN16931.pdf")).unwrap();
    let id = upload_one(&s, "invoice_EN16931.pdf", bytes);
    let d = wait_terminal(&s, &id, WAIT);
    assert_eq!(d["stage"], "indexed", "{d}");
    assert_eq!(d["doc_type"], "invoice", "{d}");
    assert_eq!(d["metadata"]["einvoice"]["format"], "factur-x", "{d}");
    assert_eq!(
        value(&d, "invoice_number").as_deref(),
        Some("F20260023"),
        "{d}"
    );
    assert_eq!(value(&d, "date").as_deref(), Some("2026-01-31"), "{d}");
    let total = field(&d, "total").unwrap();
    assert_eq!(
        (
            total["value"].as_str(),
            total["currency"].as_str(),
            total["kind"].as_str()
        ),
        (Some("104.90"), Some("EUR"), Some("money")),
        "{d}"
    );
    assert_eq!(total["confidence"], 1.0);
    assert_eq!(
        value(&d, "iban").as_deref(),
        Some("FR2012542547256985425874698")
    );

    // Values set by hand are checked against their kind...
    let path = format!("/api/v1/documents/{id}");
    let (code, v) = patch_json(&s, &path, json!({"fields": {"due_date": "soon"}}));
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("invalid_field")),
        "{v}"
    );
    assert!(v["detail"].as_str().unwrap().contains("due_date"), "{v}");
    let (code, v) = patch_json(
        &s,
        &path,
        json!({"fields": {"iban": "DE89 3704 0044 0532 0130 01"}}),
    );
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("invalid_field")),
        "{v}"
    );
    // ...stored as their kind is written, and win over the rules.
    let (code, d) = patch_json(
        &s,
        &path,
        json!({"fields": {"total": {"value": "1.234,50", "currency": "eur"}, "due_date": "2 March 2026", "cost_centre": "KST-7"}}),
    );
    assert_eq!(code, 200, "{d}");
    let total = field(&d, "total").unwrap();
    assert_eq!(
        (
            total["value"].as_str(),
            total["currency"].as_str(),
            total["source"].as_str()
        ),
        (Some("1234.50"), Some("EUR"), Some("user")),
        "{d}"
    );
    assert_eq!(value(&d, "due_date").as_deref(), Some("2026-03-02"));
    assert_eq!(field(&d, "cost_centre").unwrap()["kind"], "text");

    // A new type sends the document through Enrich again: the user's
    // values stay, the rules' are found again.
    let (code, _) = patch_json(&s, &path, json!({"doc_type": "receipt"}));
    assert_eq!(code, 200);
    let mut d = Value::Null;
    wait_until(WAIT, "the document to be enriched again", || {
        d = doc(&s, &id);
        d["stage"] == "indexed" && d["doc_type"] == "receipt"
    });
    assert_eq!(field(&d, "total").unwrap()["source"], "user", "{d}");
    assert_eq!(value(&d, "total").as_deref(), Some("1234.50"));
    assert_eq!(
        field(&d, "invoice_number").unwrap()["source"],
        "rule",
        "{d}"
    );
    let (_, events) = get_json(&s.url(&format!("/api/v1/documents/{id}/events")));
    let enriched: Vec<&Value> = events
        .as_array()
        .or_else(|| events["events"].as_array())
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "enriched")
        .collect();
    assert_eq!(enriched.len(), 2, "{events}");
    assert!(
        enriched
            .iter()
            .any(|e| e.to_string().contains("kept_user_fields")),
        "{events}"
    );

    // Clearing a value hands the field back to the rules at the next run.
    let (code, d) = patch_json(
        &s,
        &path,
        json!({"fields": {"total": null}, "doc_type": "invoice"}),
    );
    assert_eq!(code, 200, "{d}");
    wait_until(WAIT, "the document to be enriched again", || {
        let d = doc(&s, &id);
        d["stage"] == "indexed" && value(&d, "total").as_deref() == Some("104.90")
    });
    assert_eq!(field(&doc(&s, &id), "total").unwrap()["source"], "rule");
}
