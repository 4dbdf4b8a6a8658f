//! Webhooks end to end: a real HTTP receiver in the test gets every event
//! it asked for, signed (checked here with an independent HMAC), under one
//! delivery id each, across a restart of docpipe in the middle of the
//! deliveries and a receiver that answers 500 for a while; failed
//! deliveries are listed and re-sent; private targets are refused unless
//! allowed.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode};
use common::*;
use hmac::Mac;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(90);
const SECRET: &str = "whsec_test_0123456789abcdef";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    delivery: String,
    timestamp: i64,
    signature: String,
    body: Vec<u8>,
    /// What the receiver answered.
    answered: u16,
}

#[derive(Default)]
struct Shared {
    got: Mutex<Vec<Got>>,
    /// Requests still to be answered 500.
    fail_next: AtomicU64,
    /// Each answer waits this long (ms).
    delay_ms: AtomicU64,
}

/// A webhook receiver on loopback (axum, on its own runtime).
struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    _rt: tokio::runtime::Runtime,
}

impl Receiver {
    fn start() -> Receiver {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let shared = Arc::new(Shared::default());
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let st = shared.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
                let st = st.clone();
                async move {
                    let failing = st
                        .fail_next
                        .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                        .is_ok();
                    let answered = if failing { 500 } else { 200 };
                    let h = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_string()
                    };
                    st.got.lock().unwrap().push(Got {
                        delivery: h("x-docpipe-delivery"),
                        timestamp: h("x-docpipe-timestamp").parse().unwrap_or(0),
                        signature: h("x-docpipe-signature"),
                        body: body.to_vec(),
                        answered,
                    });
                    // Handled, then slow to answer: a sender that gave up
                    // now would send it again.
                    let delay = st.delay_ms.load(SeqCst);
                    if delay > 0 {
                        tokio::time::sleep(Duration::from_millis(delay)).await;
                    }
                    StatusCode::from_u16(answered).unwrap()
                }
            }),
        );
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            addr,
            shared,
            _rt: rt,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    fn got(&self) -> Vec<Got> {
        self.shared.got.lock().unwrap().clone()
    }

    /// The events answered 200, by event id.
    fn delivered(&self) -> BTreeMap<i64, Vec<Got>> {
        let mut out: BTreeMap<i64, Vec<Got>> = BTreeMap::new();
        for g in self.got().into_iter().filter(|g| g.answered == 200) {
            let v: Value = serde_json::from_slice(&g.body).unwrap();
            out.entry(v["data"]["id"].as_i64().unwrap())
                .or_default()
                .push(g);
        }
        out
    }
}

/// HMAC-SHA256(secret, timestamp + "." + body), as a receiver checks it.
fn expected_signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn config(extra: &str) -> String {
    format!(
        "{FAST_CONFIG}
[webhooks]
allow_private = true
initial_backoff_ms = 100
max_backoff_ms = 400
{extra}
"
    )
}

fn create_hook(s: &Server, url: &str, events: Value) -> Value {
    let (code, v) = post_json(
        s,
        "/api/v1/webhooks",
        json!({"url": url, "events": events, "secret": SECRET, "workspace": "default"}),
    );
    assert_eq!(code, 201, "{v}");
    assert_eq!(v["secret"], SECRET);
    v
}

#[test]
fn a_receiver_gets_every_event_signed_once_per_delivery_across_a_restart_and_a_run_of_500s() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::start(&tmp.path().join("data"), &config("max_attempts = 100"), &[]);
    let rx = Receiver::start();
    let hook = create_hook(&s, &rx.url(), json!(["*"]));
    let hook_id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(hook["events"].as_array().unwrap().len(), 11, "{hook}");

    // The receiver is down for its first 8 requests, and slow after, so
    // that the restart below falls in the middle of the deliveries.
    rx.shared.fail_next.store(8, SeqCst);
    rx.shared.delay_ms.store(40, SeqCst);
    let ids: Vec<String> = (0..8)
        .map(|i| {
            upload_to(
                &s,
                "default",
                &format!("w{i}.txt"),
                &format!("webhook note {i}: invoice 10{i} for pears"),
            )
        })
        .collect();
    for id in &ids {
        wait_terminal(&s, id, WAIT);
    }
    wait_until(WAIT, "some deliveries", || rx.delivered().len() >= 5);
    let before = rx.delivered().len();
    s.stop();
    s.restart();

    let mut expected: BTreeSet<i64> = BTreeSet::new();
    for id in &ids {
        expected.extend(stream_stages_of(&s, id).into_iter().map(|(seq, _)| seq));
    }
    wait_until(WAIT, "every event delivered", || {
        expected.iter().all(|e| rx.delivered().contains_key(e))
    });
    let delivered = rx.delivered();
    assert!(
        before < expected.len(),
        "the restart came after every delivery ({before} of {})",
        expected.len()
    );

    // Every request: signed over timestamp and body, a fresh timestamp,
    // the delivery id in header and body, one delivery id per event.
    let now = docpipe_now_s();
    let mut ids_of_event: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
    let mut body_of_delivery: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for g in rx.got() {
        assert_eq!(
            g.signature,
            expected_signature(SECRET, g.timestamp, &g.body),
            "{}",
            g.delivery
        );
        assert!((now - g.timestamp).abs() < 300, "timestamp {}", g.timestamp);
        let v: Value = serde_json::from_slice(&g.body).unwrap();
        assert_eq!(v["delivery"], g.delivery.as_str());
        assert_eq!(v["webhook"], hook_id.as_str());
        assert_eq!(
            v["event"],
            format!("document.{}", v["data"]["stage"].as_str().unwrap())
        );
        assert_eq!(v["data"]["workspace"], "default");
        let event = v["data"]["id"].as_i64().unwrap();
        ids_of_event
            .entry(event)
            .or_default()
            .insert(g.delivery.clone());
        let first = body_of_delivery
            .entry(g.delivery.clone())
            .or_insert(g.body.clone());
        assert_eq!(
            *first, g.body,
            "{}: every attempt carries the same body",
            g.delivery
        );
    }
    for (event, ids) in &ids_of_event {
        assert_eq!(ids.len(), 1, "event {event} went under {ids:?}");
    }
    // Each event answered 200 exactly once: none lost to the 500s, none
    // sent again after the restart.
    let events: BTreeSet<i64> = delivered.keys().copied().collect();
    assert_eq!(events, expected);
    for (event, gots) in &delivered {
        assert_eq!(
            gots.len(),
            1,
            "event {event} delivered {} times",
            gots.len()
        );
    }
    assert!(rx.got().iter().filter(|g| g.answered == 500).count() == 8);

    // Nothing waits any more.
    let (code, v) = get_json(&s.url(&format!("/api/v1/webhooks/{hook_id}")));
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["deliveries"], json!([]), "{v}");
}

fn docpipe_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn a_delivery_that_keeps_failing_is_listed_and_can_be_sent_again() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), &config("max_attempts = 2"), &[]);
    let rx = Receiver::start();
    let hook = create_hook(&s, &rx.url(), json!(["document.indexed"]));
    let hook_id = hook["id"].as_str().unwrap().to_string();
    assert_eq!(hook["events"], json!(["document.indexed"]));
    rx.shared.fail_next.store(2, SeqCst);
    let id = upload_to(&s, "default", "f.txt", "a note that will be indexed");
    wait_terminal(&s, &id, WAIT);

    let failed = || {
        let (code, v) = get_json(&s.url(&format!("/api/v1/webhooks/{hook_id}?state=failed")));
        assert_eq!(code, 200, "{v}");
        v["deliveries"].as_array().unwrap().clone()
    };
    wait_until(WAIT, "the delivery listed as failed", || {
        failed().len() == 1
    });
    let d = failed()[0].clone();
    assert_eq!(d["attempts"], 2, "{d}");
    assert_eq!(d["last_status"], 500, "{d}");
    assert_eq!(d["state"], "failed");
    let delivery = d["id"].as_str().unwrap().to_string();
    assert!(rx.delivered().is_empty());

    let (code, v) = post_json(
        &s,
        &format!("/api/v1/webhooks/{hook_id}/deliveries/{delivery}/resend"),
        json!({}),
    );
    assert_eq!(code, 202, "{v}");
    wait_until(WAIT, "the re-sent delivery", || rx.delivered().len() == 1);
    let got = rx.delivered().into_values().next().unwrap();
    assert_eq!(got[0].delivery, delivery, "the same delivery id");
    let v: Value = serde_json::from_slice(&got[0].body).unwrap();
    assert_eq!(v["event"], "document.indexed");
    assert_eq!(v["data"]["document"], id.as_str());
    wait_until(WAIT, "nothing listed", || failed().is_empty());
    // A delivery that is not failed cannot be re-sent.
    let (code, v) = post_json(
        &s,
        &format!("/api/v1/webhooks/{hook_id}/deliveries/{delivery}/resend"),
        json!({}),
    );
    assert_eq!(code, 404, "{v}");

    // Deleted: no more deliveries, and it is gone from the list.
    let (code, _, _) = reqwest::send(
        reqwest::async_client().delete(s.url(&format!("/api/v1/webhooks/{hook_id}"))),
    );
    assert_eq!(code, 204);
    let (_, v) = get_json(&s.url("/api/v1/webhooks"));
    assert_eq!(v["webhooks"], json!([]));
}

#[test]
fn private_targets_and_bad_webhooks_are_refused_with_a_problem_naming_them() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let post = |body: Value| post_json(&s, "/api/v1/webhooks", body);
    for url in [
        "http://127.0.0.1:9/hook",
        "http://localhost/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://10.0.0.7/hook",
    ] {
        let (code, v) = post(json!({"url": url, "events": ["*"], "workspace": "default"}));
        assert_eq!(code, 400, "{url}: {v}");
        assert_eq!(v["code"], "webhook_target_refused", "{v}");
        assert!(
            v["detail"].as_str().unwrap().contains("allow_private"),
            "{v}"
        );
    }
    let cases = [
        (
            json!({"url": "ftp://example.com/", "events": ["*"], "workspace": "default"}),
            "webhook_target_refused",
            "http",
        ),
        (
            json!({"url": "https://example.com/", "events": ["document.exploded"], "workspace": "default"}),
            "invalid_body",
            "document.exploded",
        ),
        (
            json!({"url": "https://example.com/", "events": [], "workspace": "default"}),
            "invalid_body",
            "events",
        ),
        (
            json!({"url": "https://example.com/", "events": ["*"], "workspace": "default", "secret": "short"}),
            "invalid_body",
            "secret",
        ),
        (
            json!({"url": "https://example.com/", "events": ["*"], "workspace": "Bad Name"}),
            "invalid_workspace",
            "Bad Name",
        ),
        (
            json!({"url": "https://example.com/", "events": ["*"]}),
            "invalid_body",
            "workspace",
        ),
    ];
    for (body, code_name, names) in cases {
        let (code, v) = post(body.clone());
        assert_eq!(code, 400, "{body}: {v}");
        assert_eq!(v["code"], code_name, "{body}: {v}");
        assert!(v["detail"].as_str().unwrap().contains(names), "{body}: {v}");
    }
    // None of them was made.
    let (_, v) = get_json(&s.url("/api/v1/webhooks"));
    assert_eq!(v["webhooks"], json!([]));
}
