//! Live events end to end: subscribers by server-sent events and by
//! WebSocket against the real server, every stage event of each document in
//! order, resuming without gaps or repeats, and only their workspaces'.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use common::*;
use futures::StreamExt;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// A subscriber's received events, by a task of the harness's runtime.
struct Sub {
    rx: Receiver<Value>,
    task: tokio::task::JoinHandle<()>,
}

impl Sub {
    /// The events received until `done` says the collection is complete
    /// (each waited for at most `WAIT`).
    fn collect_until(&self, mut done: impl FnMut(&[Value]) -> bool) -> Vec<Value> {
        let mut got = Vec::new();
        while !done(&got) {
            match self.rx.recv_timeout(WAIT) {
                Ok(v) => got.push(v),
                Err(e) => panic!("no event for {WAIT:?} ({e}); got {got:#?}"),
            }
        }
        got
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Subscribes by SSE: `query` after `?`, `last_id` as `Last-Event-ID`, with
/// `token`. Each event's data, with its SSE `id` and `event` under `_id`,
/// `_event`.
fn sse(s: &Server, query: &str, token: &str, last_id: Option<i64>) -> Sub {
    let mut req = reqwest::anon_client()
        .get(s.url(&format!("/api/v1/events/stream?{query}")))
        .bearer_auth(token);
    if let Some(id) = last_id {
        req = req.header("last-event-id", id.to_string());
    }
    sse_of(req)
}

fn sse_of(req: ::reqwest::RequestBuilder) -> Sub {
    let (tx, rx) = channel();
    let resp = reqwest::run(req.send()).expect("the stream answers");
    assert_eq!(resp.status(), 200, "{:?}", resp.headers());
    assert!(resp.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let task = reqwest::spawn(async move {
        let mut body = resp.bytes_stream();
        let mut buf = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let frame: String = buf.drain(..end + 2).collect();
                let mut ev = BTreeMap::new();
                for line in frame.lines() {
                    if let Some((k, v)) = line.split_once(':') {
                        ev.insert(k.to_string(), v.strip_prefix(' ').unwrap_or(v).to_string());
                    }
                }
                let Some(data) = ev.get("data") else { continue };
                let mut v: Value = serde_json::from_str(data).unwrap();
                v["_event"] = json!(ev.get("event"));
                v["_id"] = json!(ev.get("id").and_then(|i| i.parse::<i64>().ok()));
                if tx.send(v).is_err() {
                    return;
                }
            }
        }
    });
    Sub { rx, task }
}

/// Subscribes over the WebSocket, with the token in the header.
fn ws(s: &Server, query: &str, token: &str) -> Sub {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let url = s
        .url(&format!("/api/v1/ws?{query}"))
        .replacen("http", "ws", 1);
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (socket, resp) = reqwest::run(tokio_tungstenite::connect_async(req)).expect("upgrade");
    assert_eq!(resp.status(), 101);
    let (tx, rx) = channel();
    let task = reqwest::spawn(async move {
        let mut socket = socket;
        while let Some(Ok(msg)) = socket.next().await {
            if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                if tx.send(serde_json::from_str(&t).unwrap()).is_err() {
                    return;
                }
            }
        }
    });
    Sub { rx, task }
}

fn of(events: &[Value], id: &str) -> Vec<(i64, String)> {
    events
        .iter()
        .filter(|e| e["document"] == id)
        .map(|e| {
            (
                e["id"].as_i64().unwrap(),
                e["stage"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// True once every document in `ids` has an `indexed` event in `events`.
fn all_indexed(events: &[Value], ids: &[String]) -> bool {
    ids.iter().all(|id| {
        events
            .iter()
            .any(|e| e["document"] == id.as_str() && e["stage"] == "indexed")
    })
}

#[test]
fn sse_and_websocket_subscribers_get_every_stage_event_of_each_document_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let by_sse = sse(&s, "", ADMIN_TOKEN, None);
    let by_ws = ws(&s, "", ADMIN_TOKEN);
    let ids: Vec<String> = (0..4)
        .map(|i| {
            upload_to(
                &s,
                "default",
                &format!("n{i}.txt"),
                &format!("note {i} about invoices and apples"),
            )
        })
        .collect();
    let got = by_sse.collect_until(|e| all_indexed(e, &ids));
    let over_ws = by_ws.collect_until(|e| all_indexed(e, &ids));

    // Ids rise; each event is `event: stage` with its id; the WebSocket
    // sends the same objects.
    let seqs: Vec<i64> = got.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    for e in &got {
        assert_eq!(e["_event"], "stage", "{e}");
        assert_eq!(e["_id"], e["id"], "{e}");
        assert_eq!(e["workspace"], "default", "{e}");
        assert!(e["at"].as_str().is_some_and(|a| a.ends_with('Z')), "{e}");
        assert!(
            e["request_id"].as_str().is_some_and(|r| !r.is_empty()),
            "{e}"
        );
    }
    for id in &ids {
        let table = stream_stages_of(&s, id);
        assert_eq!(
            of(&got, id),
            table,
            "{id}: the stream has what the table has"
        );
        assert_eq!(of(&over_ws, id), table, "{id} over the WebSocket");
        let stages: Vec<&str> = table.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(stages.first(), Some(&"queued"), "{stages:?}");
        assert_eq!(stages.last(), Some(&"indexed"), "{stages:?}");
        assert!(stages.contains(&"extracted"), "{stages:?}");
    }

    // Filters: one document, one stage.
    let one = sse(
        &s,
        &format!("since=0&document={}", ids[2]),
        ADMIN_TOKEN,
        None,
    );
    let only = one.collect_until(|e| e.iter().any(|e| e["stage"] == "indexed"));
    assert_eq!(of(&only, &ids[2]), stream_stages_of(&s, &ids[2]));
    assert!(only.iter().all(|e| e["document"] == ids[2].as_str()));
    let indexed = sse(&s, "since=0&stage=indexed,queued", ADMIN_TOKEN, None);
    let got = indexed.collect_until(|e| e.len() == 2 * ids.len());
    assert!(
        got.iter()
            .all(|e| e["stage"] == "indexed" || e["stage"] == "queued"),
        "{got:#?}"
    );
    let (_, st) = get_json(&s.url("/api/v1/status"));
    assert!(st["subscribers"].as_u64().unwrap() >= 2, "{st}");
}

#[test]
fn a_subscriber_that_resumes_from_its_last_id_misses_nothing_and_gets_nothing_twice() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let first: Vec<String> = (0..3)
        .map(|i| {
            upload_to(
                &s,
                "default",
                &format!("a{i}.txt"),
                &format!("first batch {i}"),
            )
        })
        .collect();
    // From the beginning, then cut off after a few events.
    let sub = sse(&s, "since=0", ADMIN_TOKEN, None);
    let part = sub.collect_until(|e| e.len() == 4);
    drop(sub);
    let last = part.last().unwrap()["id"].as_i64().unwrap();
    // Meanwhile more arrive; the subscriber comes back with its last id.
    let second: Vec<String> = (0..3)
        .map(|i| {
            upload_to(
                &s,
                "default",
                &format!("b{i}.txt"),
                &format!("second batch {i}"),
            )
        })
        .collect();
    let all_ids: Vec<String> = first.iter().chain(&second).cloned().collect();
    let resumed = sse(&s, "", ADMIN_TOKEN, Some(last));
    let rest = resumed.collect_until(|e| all_indexed(&[&part[..], e].concat(), &all_ids));
    assert!(
        rest.iter().all(|e| e["id"].as_i64().unwrap() > last),
        "nothing twice"
    );
    let mut seen: Vec<Value> = part.clone();
    seen.extend(rest);
    let unique: HashSet<i64> = seen.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(unique.len(), seen.len(), "nothing twice");
    for id in &all_ids {
        assert_eq!(
            of(&seen, id),
            stream_stages_of(&s, id),
            "{id}: nothing missed"
        );
    }
    // `?since=` is the same as the header.
    let again = sse(&s, &format!("since={last}"), ADMIN_TOKEN, None);
    let same = again.collect_until(|e| all_indexed(&[&part[..], e].concat(), &all_ids));
    assert_eq!(
        same.iter().map(|e| &e["id"]).collect::<Vec<_>>(),
        seen[part.len()..part.len() + same.len()]
            .iter()
            .map(|e| &e["id"])
            .collect::<Vec<_>>()
    );
}

fn create_token(s: &Server, role: &str, workspaces: &[&str]) -> String {
    let (code, v) = post_json(
        s,
        "/api/v1/tokens",
        json!({"name": "sub", "role": role, "workspaces": workspaces}),
    );
    assert_eq!(code, 201, "{v}");
    v["token"].as_str().unwrap().to_string()
}

#[test]
fn a_reader_token_sees_only_its_workspaces_events_and_bad_requests_say_why() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let reader = create_token(&s, "reader", &["alpha"]);
    let mine = upload_to(&s, "alpha", "mine.txt", "alpha's own note");
    let theirs = upload_to(&s, "beta", "theirs.txt", "beta's secret note");
    let last = upload_to(&s, "alpha", "last.txt", "alpha's last note");
    wait_terminal(&s, &theirs, WAIT);

    let sub = sse(&s, "since=0", &reader, None);
    let got = sub.collect_until(|e| all_indexed(e, &[mine.clone(), last.clone()]));
    assert!(got.iter().all(|e| e["workspace"] == "alpha"), "{got:#?}");
    assert!(of(&got, &theirs).is_empty());
    let over_ws = ws(&s, "since=0", &reader);
    let got = over_ws.collect_until(|e| all_indexed(e, &[mine.clone(), last.clone()]));
    assert!(got.iter().all(|e| e["workspace"] == "alpha"), "{got:#?}");

    // A browser's ticket stands for the token, on the stream only.
    let (code, _, body) = reqwest::send(
        reqwest::anon_client()
            .post(s.url("/api/v1/events/ticket"))
            .bearer_auth(&reader),
    );
    assert_eq!(code, 200);
    let ticket: Value = serde_json::from_slice(&body).unwrap();
    let ticket = ticket["ticket"].as_str().unwrap();
    let by_ticket = sse_of(
        reqwest::anon_client()
            .get(s.url(&format!("/api/v1/events/stream?since=0&ticket={ticket}"))),
    );
    let got = by_ticket.collect_until(|e| all_indexed(e, &[mine.clone(), last.clone()]));
    assert!(got.iter().all(|e| e["workspace"] == "alpha"), "{got:#?}");
    let (code, ..) = reqwest::send(
        reqwest::anon_client().get(s.url(&format!("/api/v1/documents?ticket={ticket}"))),
    );
    assert_eq!(code, 401, "a ticket opens the event routes only");

    let problem = |token: &str, query: &str| {
        let (code, h, body) = reqwest::send(
            reqwest::anon_client()
                .get(s.url(&format!("/api/v1/events/stream?{query}")))
                .bearer_auth(token),
        );
        assert_eq!(h.get("content-type"), Some("application/problem+json"));
        let v: Value = serde_json::from_slice(&body).unwrap();
        (code, v["code"].as_str().unwrap().to_string())
    };
    assert_eq!(
        problem(&reader, "workspace=beta"),
        (403, "workspace_forbidden".into())
    );
    assert_eq!(
        problem(&reader, "stage=cooked"),
        (400, "invalid_parameter".into())
    );
    assert_eq!(
        problem(&reader, "since=-4"),
        (400, "invalid_parameter".into())
    );
    assert_eq!(problem("not-a-token", "").0, 401);
    assert_eq!(problem("", "ticket=made-up").0, 401);
}
