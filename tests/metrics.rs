//! `/metrics` parses as the Prometheus text format (an independent parser,
//! `prometheus-parse`) and its figures agree with `/api/v1/status` and with
//! the requests the test made; no label carries a document id.

mod common;

use common::*;
use prometheus_parse::{Scrape, Value as P};

fn scrape(s: &Server) -> Scrape {
    let (code, h, body) = reqwest::send(reqwest::async_client().get(s.url("/metrics")));
    assert_eq!(code, 200);
    assert!(h
        .get("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = String::from_utf8(body).unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("the Prometheus text format")
}

fn value(sc: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    sc.samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            P::Counter(v) | P::Gauge(v) | P::Untyped(v) => *v,
            other => panic!("{metric} is {other:?}"),
        })
}

#[test]
fn metrics_parse_and_agree_with_the_status_and_the_requests_made() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Server::start(&tmp.path().join("data"), FAST_CONFIG, &[]);
    let ids: Vec<String> = (0..5)
        .map(|i| {
            upload_to(
                &s,
                "default",
                &format!("m{i}.txt"),
                &format!("metrics note {i}"),
            )
        })
        .collect();
    for id in &ids {
        wait_terminal(&s, id, std::time::Duration::from_secs(60));
        let _ = doc(&s, id);
    }
    let sc = scrape(&s);
    let (_, st) = get_json(&s.url("/api/v1/status"));

    for (stage, v) in st["stages"].as_object().unwrap() {
        assert_eq!(
            value(&sc, "docpipe_documents", &[("stage", stage)]),
            v["documents"].as_f64(),
            "{stage}"
        );
    }
    assert_eq!(
        value(&sc, "docpipe_documents", &[("stage", "indexed")]),
        Some(5.0)
    );
    for a in st["actors"].as_array().unwrap() {
        let name = a["name"].as_str().unwrap();
        assert_eq!(
            value(&sc, "docpipe_actor_processed_total", &[("actor", name)]),
            a["processed"].as_f64(),
            "{name}"
        );
        assert_eq!(
            value(&sc, "docpipe_actor_pool_size", &[("actor", name)]),
            a["pool_size"].as_f64(),
            "{name}"
        );
    }
    assert_eq!(
        value(&sc, "docpipe_commits_total", &[("store", "index")]),
        st["commits"]["index"].as_f64()
    );
    // Requests by route template, method and status: the five uploads, the
    // reads of one document by its template (`:id`), never by its id.
    assert_eq!(
        value(
            &sc,
            "docpipe_http_requests_total",
            &[
                ("route", "/api/v1/documents"),
                ("method", "POST"),
                ("status", "202")
            ]
        ),
        Some(5.0)
    );
    let reads = value(
        &sc,
        "docpipe_http_requests_total",
        &[
            ("route", "/api/v1/documents/:id"),
            ("method", "GET"),
            ("status", "200"),
        ],
    )
    .unwrap_or_else(|| {
        let http: Vec<_> = sc
            .samples
            .iter()
            .filter(|s| s.metric == "docpipe_http_requests_total")
            .collect();
        panic!("no reads by the route's template: {http:#?}")
    });
    assert!(reads >= 10.0, "{reads}");
    let hist = sc
        .samples
        .iter()
        .find(|s| {
            s.metric == "docpipe_http_request_duration_seconds"
                && s.labels.get("route") == Some("/api/v1/documents")
        })
        .expect("a latency histogram of uploads");
    match &hist.value {
        P::Histogram(buckets) => {
            let inf = buckets.last().unwrap();
            assert!(
                inf.less_than.is_infinite() && inf.count == 5.0,
                "{buckets:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    for smp in &sc.samples {
        for id in &ids {
            assert!(
                !format!("{:?}", smp.labels).contains(id.as_str()),
                "{} carries a document id",
                smp.metric
            );
        }
    }
    assert!(value(&sc, "docpipe_disk_bytes", &[("store", "database")]).unwrap() > 0.0);
    assert_eq!(
        value(&sc, "docpipe_webhook_outbox", &[("state", "failed")]),
        Some(0.0)
    );
    assert_eq!(value(&sc, "docpipe_event_subscribers", &[]), Some(0.0));
}
