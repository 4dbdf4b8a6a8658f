//! The Ollama embedder and "ask your documents", against the fake Ollama
//! (real Ollama API; deterministic embeddings that count a few words, and
//! answers that quote passage [1]): semantic rankings are exactly those
//! the embedder's vectors imply; `ask` answers from the retrieved passages,
//! cites them, streams as server-sent events, and never cites another
//! workspace's document; with Ollama gone, the documented `409` carries the
//! passages.

mod common;

use std::time::Duration;

use common::fake_ollama::{embedding_of, Behaviour, FakeOllama};
use common::*;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

fn config(fake: &FakeOllama) -> String {
    format!(
        "{FAST_CONFIG}\n[ollama]\nendpoints = [{:?}]\nclassify = false\nextract = false\n\
         failure_threshold = 1\nopen_ms = 60000\n\
         [embed]\nbackend = \"ollama\"\nmodel = \"fake-embed\"\n",
        fake.url()
    )
}

fn token_for(s: &Server, workspace: &str) -> String {
    let (code, v) = post_json(
        s,
        "/api/v1/tokens",
        json!({"name": "reader", "role": "reader", "workspaces": [workspace]}),
    );
    assert_eq!(code, 201, "{v}");
    v["token"].as_str().unwrap().to_string()
}

fn ask(s: &Server, token: Option<&str>, body: Value, events: bool) -> (u16, Vec<u8>) {
    let mut req = match token {
        Some(t) => reqwest::anon_client()
            .post(s.url("/api/v1/ask"))
            .bearer_auth(t),
        None => reqwest::async_client().post(s.url("/api/v1/ask")),
    };
    if events {
        req = req.header("accept", "text/event-stream");
    }
    let (code, _, bytes) = reqwest::send(req.json(&body));
    (code, bytes)
}

/// The ids of an answer's citations, in order.
fn cited(v: &Value) -> Vec<String> {
    v["citations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect()
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

const DOCS: &[(&str, &str, &str)] = &[
    (
        "a",
        "a1.txt",
        "The ship ship ship sailed at dawn. Some oil was spilled.",
    ),
    (
        "a",
        "a2.txt",
        "Gold and more gold. The bank bought gold and ship shares.",
    ),
    ("a", "a3.txt", "The hotel by the court was sold."),
    (
        "a",
        "a4.txt",
        "Oil, oil and wheat went up; one ship waited.",
    ),
    (
        "b",
        "b1.txt",
        "ship ship ship ship ship ship ship, nothing else",
    ),
];

#[test]
fn ollama_vectors_rank_semantic_search_and_ask_cites_only_the_callers_documents() {
    let mut fake = FakeOllama::start(Behaviour::Good);
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(&tmp.path().join("data"), &config(&fake), &[]);
    let ids: Vec<String> = DOCS
        .iter()
        .map(|(w, name, text)| upload_to(&s, w, name, text))
        .collect();
    for id in &ids {
        assert_eq!(wait_terminal(&s, id, WAIT)["stage"], "indexed");
    }
    wait_until(WAIT, "every document embedded", || {
        let e = get_json(&s.url("/api/v1/status")).1["embed"].clone();
        e["pending"] == 0 && e["documents"] == DOCS.len()
    });
    let e = get_json(&s.url("/api/v1/status")).1["embed"].clone();
    assert_eq!(
        (e["backend"].as_str(), e["model"].as_str()),
        (Some("ollama"), Some("fake-embed"))
    );

    // The ranking the fake's vectors imply: cosine of the query with each
    // document's passage (title line, then the text), those within the
    // semantic cut-off of the best.
    for q in ["ship", "gold bank", "oil"] {
        let qv = embedding_of(q);
        let mut want: Vec<(f32, &String)> = DOCS
            .iter()
            .zip(&ids)
            .map(|((_, name, text), id)| {
                (cosine(&qv, &embedding_of(&format!("{name}\n{text}"))), id)
            })
            .collect();
        want.sort_by(|a, b| b.0.total_cmp(&a.0));
        let best = want[0].0;
        let want: Vec<&String> = want
            .iter()
            .filter(|(c, _)| *c >= best * 0.6 + 0.02)
            .map(|(_, id)| *id)
            .collect();
        let url = ::reqwest::Url::parse_with_params(
            &s.url("/api/v1/search"),
            &[("q", q), ("mode", "semantic"), ("limit", "10")],
        )
        .unwrap();
        let (code, v) = get_json(url.as_str());
        assert_eq!(code, 200, "{v}");
        let got: Vec<String> = v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["id"].as_str().unwrap().to_string())
            .collect();
        // Everything clearly above the cut-off, in the vectors' order.
        let got_prefix: Vec<&String> = got.iter().take(want.len()).collect();
        assert_eq!(got_prefix, want, "{q:?}: {v}");
    }

    // Ask, as a reader of workspace a: b1 is the best match for ships, and
    // is never cited.
    let reader_a = token_for(&s, "a");
    let question = json!({"question": "Which ship sailed at dawn?"});
    let (code, body) = ask(&s, Some(&reader_a), question.clone(), false);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(code, 200, "{v}");
    let ids_cited = cited(&v);
    assert_eq!(ids_cited[0], ids[0], "{v}");
    assert!(!ids_cited.contains(&ids[4]), "another workspace cited: {v}");
    let first = &v["citations"][0];
    assert_eq!(first["page"], 1);
    assert!(
        first["snippet"]
            .as_str()
            .unwrap()
            .starts_with("The ship ship ship sailed"),
        "{v}"
    );
    assert_eq!(
        v["answer"], "The documents say: The ship ship ship sailed [1].",
        "{v}"
    );
    // Filters narrow the passages.
    let (code, body) = ask(
        &s,
        Some(&reader_a),
        json!({"question": "Which ship sailed at dawn?", "filters": {"type": "no-such-type"}}),
        false,
    );
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, v["citations"].as_array().map(Vec::len)),
        (200, Some(0)),
        "{v}"
    );

    // Streamed: the citations, the answer in pieces, then the whole.
    let (code, body) = ask(&s, Some(&reader_a), question.clone(), true);
    assert_eq!(code, 200);
    let text = String::from_utf8(body).unwrap();
    let events: Vec<(String, Value)> = text
        .split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|b| {
            let ev = b
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("");
            let data = b
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .unwrap_or("null");
            (ev.to_string(), serde_json::from_str(data).unwrap())
        })
        .collect();
    assert_eq!(events[0].0, "citations", "{text}");
    assert_eq!(events[0].1[0]["id"], ids[0].as_str());
    let pieces: Vec<&str> = events
        .iter()
        .filter(|(e, _)| e == "answer")
        .map(|(_, d)| d["text"].as_str().unwrap())
        .collect();
    assert!(
        pieces.iter().filter(|p| !p.is_empty()).count() >= 2,
        "{text}"
    );
    let (last, done) = events.last().unwrap();
    assert_eq!(last, "done", "{text}");
    assert_eq!(done["answer"], pieces.concat().trim(), "{text}");

    // Ollama gone: 409, the passages still given. Hybrid search falls back
    // to words meanwhile.
    fake.refuse();
    let (code, body) = ask(&s, Some(&reader_a), question, false);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, v["code"].as_str()),
        (409, Some("llm_unavailable")),
        "{v}"
    );
    let ids_cited = cited(&v);
    assert!(
        ids_cited.contains(&ids[0]) && !ids_cited.contains(&ids[4]),
        "{v}"
    );
    let (code, v) = get_json(&s.url("/api/v1/search?q=sailed&mode=hybrid"));
    assert_eq!((code, v["mode"].as_str()), (200, Some("fulltext")), "{v}");

    let (code, body) = ask(&s, None, json!({"question": "  "}), false);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        (code, v["code"].as_str()),
        (400, Some("missing_query")),
        "{v}"
    );

    // Another embedder: every document is embedded again in the background,
    // and queries use the new vectors (the built-in table knows that
    // vessels are ships; the fake's word counts do not).
    s.stop();
    let table = std::env::var("EMBED_TABLE").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/.deps/embed/all-MiniLM-L6-v2.dpemb"
        )
        .into()
    });
    std::fs::write(
        tmp.path().join("data").with_extension("toml"),
        format!("{FAST_CONFIG}\n[embed]\ntable = {table:?}\n"),
    )
    .unwrap();
    s.restart();
    wait_until(
        WAIT,
        "every document embedded by the built-in embedder",
        || {
            let e = get_json(&s.url("/api/v1/status")).1["embed"].clone();
            e["model"] == "all-MiniLM-L6-v2" && e["pending"] == 0 && e["documents"] == DOCS.len()
        },
    );
    assert_eq!(doc(&s, &ids[0])["embedded"], true);
    let (code, v) = get_json(&s.url("/api/v1/search?q=vessels&mode=semantic&limit=2"));
    assert_eq!(code, 200, "{v}");
    let top = hit_ids(&v);
    assert!(top.contains(&ids[4]) || top.contains(&ids[0]), "{v}");
}
