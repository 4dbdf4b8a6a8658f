//! Analytics against the real server: documents per type and period, sums
//! of the total per issuer, type, month and currency, latencies and
//! failures agree with what the test computes from what it uploaded.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::invoices::samples;
use common::*;
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(90);

fn field(d: &Value, name: &str) -> Option<(String, Option<String>)> {
    d["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .map(|f| {
            (
                f["value"].as_str().unwrap().to_string(),
                f["currency"].as_str().map(str::to_string),
            )
        })
}

/// "1234.5" → 123450 (hundredths).
fn cents(v: &str) -> i64 {
    let (whole, frac) = v.split_once('.').unwrap_or((v, ""));
    let frac = format!("{frac:0<2}");
    whole.parse::<i64>().unwrap() * 100 + frac[..2].parse::<i64>().unwrap()
}

#[test]
fn analytics_agree_with_what_was_uploaded() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let docs: Vec<_> = samples(24).into_iter().filter(|x| !x.columns).collect();
    let mut ids = Vec::new();
    for (i, x) in docs.iter().enumerate() {
        let ws = if i % 4 == 3 { "other" } else { "default" };
        ids.push((ws, upload_to(&s, ws, &format!("{}.txt", x.name), &x.text)));
    }
    let bad = upload_one(&s, "broken.pdf", b"%PDF-1.7\ntrailer garbage".to_vec());
    for (_, id) in &ids {
        wait_terminal(&s, id, WAIT);
    }
    assert_eq!(wait_terminal(&s, &bad, WAIT)["stage"], "failed");

    // What the test computes, from the documents as uploaded and read.
    let mut per_type: BTreeMap<(String, String), u64> = BTreeMap::new();
    let mut money: BTreeMap<(String, String, String, String), i64> = BTreeMap::new();
    let mut matched_truth = 0;
    for ((ws, id), x) in ids.iter().zip(&docs) {
        if *ws != "default" {
            continue;
        }
        let d = doc(&s, id);
        let day = field(&d, "date")
            .map(|(v, _)| v)
            .unwrap_or_else(|| d["created_at"].as_str().unwrap()[..10].to_string());
        let month = day[..7].to_string();
        let ty = d["doc_type"].as_str().unwrap_or_default().to_string();
        *per_type.entry((month.clone(), ty.clone())).or_default() += 1;
        if let Some((total, currency)) = field(&d, "total") {
            let issuer = field(&d, "issuer").map(|(v, _)| v).unwrap_or_default();
            *money
                .entry((
                    month,
                    issuer.clone(),
                    ty,
                    currency.clone().unwrap_or_default(),
                ))
                .or_default() += cents(&total);
            if x.expected.get("total") == Some(&total) && x.expected.get("issuer") == Some(&issuer)
            {
                matched_truth += 1;
            }
        }
    }
    let n = per_type.values().sum::<u64>();
    assert!(
        money.len() >= 3 && per_type.len() >= 3,
        "{money:?} {per_type:?}"
    );
    // The figures rest on fields read right, most of the time.
    assert!(matched_truth * 3 >= n * 2, "{matched_truth} of {n}");
    // The failed upload counts as a document of no type, on its day.
    let b = doc(&s, &bad);
    let month = b["created_at"].as_str().unwrap()[..7].to_string();
    *per_type.entry((month, String::new())).or_default() += 1;

    let (code, a) = get_json(&s.url("/api/v1/analytics?workspace=default"));
    assert_eq!(code, 200, "{a}");
    let got_types: BTreeMap<(String, String), u64> = a["per_type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                (
                    r["period"].as_str().unwrap().to_string(),
                    r["doc_type"].as_str().unwrap_or_default().to_string(),
                ),
                r["documents"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got_types, per_type);
    let got_money: BTreeMap<(String, String, String, String), i64> = a["money"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert_eq!(r["field"], "total");
            (
                (
                    r["period"].as_str().unwrap().to_string(),
                    r["issuer"].as_str().unwrap_or_default().to_string(),
                    r["doc_type"].as_str().unwrap_or_default().to_string(),
                    r["currency"].as_str().unwrap_or_default().to_string(),
                ),
                cents(r["total"].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(got_money, money);
    // Every indexed document of the workspace has its latencies.
    let total = &a["latency_ms"]["total"];
    assert_eq!(total["count"].as_u64(), Some(n), "{a}");
    assert!(total["p50"].as_u64().unwrap() <= total["p95"].as_u64().unwrap());
    assert!(a["latency_ms"]["extracted"]["count"].as_u64().unwrap() >= n);
    // The broken upload went to `default`.
    assert_eq!(a["failures"]["malformed"], 1, "{a}");

    // A window of one month holds only that month's documents.
    let (month, _) = per_type.keys().next().unwrap().clone();
    let (code, w) = get_json(&s.url(&format!(
        "/api/v1/analytics?workspace=default&from={month}-01&to={month}-31"
    )));
    assert_eq!(code, 200, "{w}");
    let in_month: u64 = per_type
        .iter()
        .filter(|((m, _), _)| *m == month)
        .map(|(_, n)| n)
        .sum();
    let got: u64 = w["per_type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["documents"].as_u64().unwrap())
        .sum();
    assert_eq!(got, in_month);

    // All workspaces: more; a bad parameter: a 400 naming it.
    let (_, all) = get_json(&s.url("/api/v1/analytics"));
    let everything: u64 = all["per_type"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["documents"].as_u64().unwrap())
        .sum();
    assert_eq!(everything as usize, ids.len() + 1);
    for (q, names) in [
        ("period=year", "period"),
        ("from=2026-13", "from"),
        ("from=2026-02-01&to=2026-01-01", "after"),
    ] {
        let (code, v) = get_json(&s.url(&format!("/api/v1/analytics?{q}")));
        assert_eq!(code, 400, "{q}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(names), "{q}: {v}");
    }
}
