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

/// Two invoices of one issuer, in a layout the rules do not read: the
/// number under a column heading, the total after a label they do not
/// know.
fn nordwind(number: &str, issued: &str, due: &str, total: &str) -> String {
    format!(
        "Nordwind Bikes Ltd\n12 Harbour Road, Leith\nINVOICE\n\nRef. code        Issued          Pay by\n{number:<17}{issued:<16}{due}\n\n1 x Touring saddle    GBP 120.00\nGrand sum payable ........ GBP {total}\nThank you for riding with us.\n"
    )
}

/// Uploads a text into a workspace and waits until it is indexed.
fn indexed_in(s: &Server, workspace: &str, name: &str, text: &str) -> Value {
    let id = upload_to(s, workspace, name, text);
    let d = wait_terminal(s, &id, WAIT);
    assert_eq!(d["stage"], "indexed", "{d}");
    d
}

fn templates(s: &Server) -> Vec<Value> {
    let (code, v) = get_json(&s.url("/api/v1/templates"));
    assert_eq!(code, 200, "{v}");
    v["templates"].as_array().unwrap().clone()
}

/// One correction per field teaches a template for the issuer: the
/// issuer's next invoice is read with it (`source: "template"`), in that
/// workspace only; templates are listed and deleted over the API.
#[test]
fn a_corrected_field_teaches_a_template_for_the_issuers_next_invoice() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let first = indexed_in(
        &s,
        "default",
        "nb1.txt",
        &nordwind("NB/22/0107", "3 March 2025", "2 April 2025", "1,240.00"),
    );
    assert_eq!(
        value(&first, "issuer").as_deref(),
        Some("Nordwind Bikes Ltd"),
        "{first}"
    );
    assert_ne!(
        value(&first, "total").as_deref(),
        Some("1240.00"),
        "the rules read it: {first}"
    );
    assert!(templates(&s).is_empty());

    let id = first["id"].as_str().unwrap();
    let (code, d) = patch_json(
        &s,
        &format!("/api/v1/documents/{id}"),
        json!({"fields": {
            "invoice_number": "NB/22/0107",
            "total": {"value": "1,240.00", "currency": "GBP"},
            "due_date": "2 April 2025"
        }}),
    );
    assert_eq!(code, 200, "{d}");
    let list = templates(&s);
    let of = |field: &str| {
        list.iter()
            .find(|t| t["field"] == field)
            .unwrap_or_else(|| panic!("no template for {field}: {list:?}"))
            .clone()
    };
    assert_eq!(list.len(), 3, "{list:?}");
    let number = of("invoice_number");
    assert_eq!(
        (
            number["issuer"].as_str(),
            number["workspace"].as_str(),
            number["relation"].as_str(),
            number["label"].as_str(),
            number["learned_from"].as_str()
        ),
        (
            Some("Nordwind Bikes Ltd"),
            Some("default"),
            Some("below"),
            Some("ref. code"),
            Some(id)
        ),
        "{number}"
    );
    assert_eq!(of("total")["relation"], "right_of");
    let (_, events) = get_json(&s.url(&format!("/api/v1/documents/{id}/events")));
    assert!(events.to_string().contains("template_learned"), "{events}");

    // The issuer's next invoice is read with the templates.
    let next = indexed_in(
        &s,
        "default",
        "nb2.txt",
        &nordwind("NB/22/0131", "9 May 2025", "8 June 2025", "86.50"),
    );
    for (name, want) in [
        ("invoice_number", "NB/22/0131"),
        ("total", "86.50"),
        ("due_date", "2025-06-08"),
    ] {
        let f = field(&next, name).unwrap_or_else(|| panic!("no {name}: {next}"));
        assert_eq!(
            (f["value"].as_str(), f["source"].as_str()),
            (Some(want), Some("template")),
            "{name}: {next}"
        );
    }
    assert_eq!(field(&next, "total").unwrap()["currency"], "GBP");

    // Another workspace does not use them.
    let other = indexed_in(
        &s,
        "other",
        "nb2.txt",
        &nordwind("NB/22/0131", "9 May 2025", "8 June 2025", "86.50"),
    );
    assert!(
        other["fields"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["source"] != "template"),
        "{other}"
    );

    // A deleted template is no longer used; deleting it again is a 404.
    let total_id = of("total")["id"].as_i64().unwrap();
    let del = |id: i64| {
        reqwest::send(reqwest::async_client().delete(s.url(&format!("/api/v1/templates/{id}"))))
    };
    assert_eq!(del(total_id).0, 204);
    let (code, _, body) = del(total_id);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!((code, v["code"].as_str()), (404, Some("not_found")), "{v}");
    assert_eq!(templates(&s).len(), 2);
    let third = indexed_in(
        &s,
        "default",
        "nb3.txt",
        &nordwind("NB/22/0140", "1 July 2025", "31 July 2025", "310.00"),
    );
    assert_ne!(
        field(&third, "total").map(|f| f["source"].clone()),
        Some(json!("template")),
        "{third}"
    );
    assert_eq!(
        field(&third, "invoice_number").unwrap()["source"],
        "template",
        "{third}"
    );
    let (code, v) = get_json(&s.url("/api/v1/templates?workspace=other"));
    assert_eq!(
        (code, v["templates"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );
}
