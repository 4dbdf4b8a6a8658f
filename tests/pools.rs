//! Worker pools resized while documents flow: over the API and by SIGHUP
//! (the configuration read again), nothing lost or done twice, the status
//! showing the sizes in force.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(120);

fn put_pools(s: &Server, body: Value) -> (u16, Value) {
    let (code, _, bytes) = reqwest::send(
        reqwest::async_client()
            .put(s.url("/api/v1/admin/pools"))
            .json(&body),
    );
    (code, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn pool_sizes(s: &Server) -> BTreeMap<String, u64> {
    let (code, st) = get_json(&s.url("/api/v1/status"));
    assert_eq!(code, 200, "{st}");
    st["actors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| matches!(a["name"].as_str(), Some("extract" | "classify" | "enrich")))
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["pool_size"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn sizes(e: u64, c: u64, n: u64) -> BTreeMap<String, u64> {
    [("extract", e), ("classify", c), ("enrich", n)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

#[test]
fn pools_resized_under_load_by_the_api_and_by_sighup_lose_and_repeat_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start(&data, FAST_CONFIG, &[]);
    assert_eq!(pool_sizes(&s), sizes(2, 1, 2));

    let texts: Vec<String> = (0..90)
        .map(|i| {
            format!(
                "document {i} of the resize test: invoice {i} for {} apples",
                i * 7
            )
        })
        .collect();
    let mut ids = Vec::new();
    let upload_batch = |range: std::ops::Range<usize>, ids: &mut Vec<String>| {
        for i in range {
            ids.push(upload_to(&s, "default", &format!("r{i}.txt"), &texts[i]));
        }
    };

    upload_batch(0..30, &mut ids);
    let (code, v) = put_pools(&s, json!({"extract": 4, "classify": 3}));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v, json!({"extract": 4, "classify": 3, "enrich": 2}));
    assert_eq!(pool_sizes(&s), sizes(4, 3, 2));
    upload_batch(30..60, &mut ids);
    let (code, v) = put_pools(&s, json!({"extract": 1}));
    assert_eq!(code, 200, "{v}");
    assert_eq!(pool_sizes(&s), sizes(1, 3, 2));

    // SIGHUP: the configuration file read again; a setting that cannot
    // change live (the index's commit interval) is only logged.
    std::fs::write(
        &s.config_path,
        format!(
            "{}\n[pipeline.extract]\nworkers = 3\n[pipeline.enrich]\nworkers = 1\n",
            FAST_CONFIG.replace("commit_interval_ms = 50", "commit_interval_ms = 60")
        ),
    )
    .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(s.pid()),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
    upload_batch(60..90, &mut ids);
    wait_until(WAIT, "the sizes of config.toml in force", || {
        pool_sizes(&s) == sizes(3, 1, 1)
    });

    for id in &ids {
        let d = wait_terminal(&s, id, WAIT);
        assert_eq!(d["stage"], "indexed", "{d}");
    }
    // Each document went through each stage once.
    for id in &ids {
        let (_, v) = get_json(&s.url(&format!("/api/v1/documents/{id}/events")));
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for e in v["events"].as_array().unwrap() {
            *kinds
                .entry(e["kind"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
        for k in ["uploaded", "extracted", "indexed"] {
            assert_eq!(kinds.get(k), Some(&1), "{id}: {kinds:?}");
        }
        assert!(!kinds.contains_key("attempt_failed"), "{id}: {kinds:?}");
    }
    let (_, st) = get_json(&s.url("/api/v1/status"));
    assert_eq!(st["stages"]["indexed"]["documents"], ids.len(), "{st}");

    // What cannot be resized here is named.
    for (body, names) in [
        (json!({"ocr": 2}), "pipeline.ocr.workers"),
        (json!({"indexer": 2}), "one worker"),
        (json!({"extrct": 2}), "extrct"),
        (json!({"extract": 0}), "extract"),
        (json!({"extract": "many"}), "extract"),
    ] {
        let (code, v) = put_pools(&s, body.clone());
        assert_eq!(code, 400, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(names), "{body}: {v}");
    }
    assert_eq!(pool_sizes(&s), sizes(3, 1, 1));
}
