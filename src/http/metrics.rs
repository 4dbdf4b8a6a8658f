//! `/metrics` through the `metrics` facade and its Prometheus exporter:
//! HTTP requests by route template, method and status (a counter and a
//! latency histogram), recorded as they are answered; the pipeline's
//! figures (documents per stage, each actor's counters, queue depths,
//! in-flight, commits, retries, the webhooks' outbox, subscribers, sizes
//! on disk) set from the same snapshot `/api/v1/status` shows, at each
//! scrape. Labels stay few: a route's template, never a document id.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::problem::Problem;
use super::AppState;

const HTTP_SECONDS: &str = "docpipe_http_request_duration_seconds";

/// Installs the process's recorder (once, at `serve`).
pub fn install() -> Result<PrometheusHandle, String> {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(HTTP_SECONDS.into()),
            &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
            ],
        )
        .map_err(|e| format!("metrics: {e}"))?
        .install_recorder()
        .map_err(|e| format!("metrics: {e}"))
}

/// Records each request by its route's template (`/api/v1/documents/:id`,
/// or `unmatched`), method and status. A template's parameters are written
/// `:name`, not `{name}`: braces inside a label value trip up common
/// parsers of the text format.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().replace('{', ":").replace('}', ""))
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().as_str().to_string();
    let started = Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    counter!("docpipe_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    histogram!(HTTP_SECONDS, "route" => route, "method" => method)
        .record(started.elapsed().as_secs_f64());
    resp
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

pub async fn metrics(State(app): State<AppState>) -> Result<Response, Problem> {
    let reader = app.pipeline.reader();
    let st = reader.status(&docpipe_actors::Scope::All).await?;
    for (stage, s) in &st.stages {
        gauge!("docpipe_documents", "stage" => stage.to_string()).set(s.documents as f64);
        counter!("docpipe_stage_processed_total", "stage" => stage.to_string())
            .absolute(s.processed);
        counter!("docpipe_stage_failed_total", "stage" => stage.to_string()).absolute(s.failed);
        gauge!("docpipe_stage_in_flight", "stage" => stage.to_string()).set(s.in_flight as f64);
    }
    for a in &st.actors {
        let name = a.name;
        counter!("docpipe_actor_processed_total", "actor" => name).absolute(a.processed);
        counter!("docpipe_actor_failed_total", "actor" => name).absolute(a.failed);
        gauge!("docpipe_actor_busy", "actor" => name).set(a.busy as f64);
        gauge!("docpipe_actor_queue_depth", "actor" => name).set(a.queue_depth as f64);
        gauge!("docpipe_actor_pool_size", "actor" => name).set(a.pool_size as f64);
        counter!("docpipe_actor_restarts_total", "actor" => name).absolute(a.restarts);
        counter!("docpipe_actor_busy_microseconds_total", "actor" => name).absolute(a.busy_micros);
    }
    gauge!("docpipe_in_flight").set(st.in_flight as f64);
    gauge!("docpipe_max_in_flight").set(st.max_in_flight as f64);
    counter!("docpipe_commits_total", "store" => "catalog").absolute(st.commits.catalog);
    counter!("docpipe_commits_total", "store" => "index").absolute(st.commits.index);
    counter!("docpipe_retries_scheduled_total").absolute(st.retries_scheduled);
    counter!("docpipe_parked_total").absolute(st.parked);
    counter!("docpipe_leases_expired_total").absolute(st.leases_expired);
    gauge!("docpipe_index_documents").set(st.index_docs as f64);
    gauge!("docpipe_event_subscribers").set(app.subscribers.count() as f64);
    let (retrying, failed) = reader.outbox_depth().await?;
    gauge!("docpipe_webhook_outbox", "state" => "retrying").set(retrying as f64);
    gauge!("docpipe_webhook_outbox", "state" => "failed").set(failed as f64);
    let data = app.pipeline.config().data_dir.clone();
    let (db, index, blobs) = tokio::task::spawn_blocking(move || {
        let db: u64 = ["catalog.sqlite", "catalog.sqlite-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(data.join(f)).ok())
            .map(|m| m.len())
            .sum();
        (
            db,
            dir_bytes(&data.join("index")),
            dir_bytes(&data.join("blobs")),
        )
    })
    .await
    .map_err(Problem::internal)?;
    gauge!("docpipe_disk_bytes", "store" => "database").set(db as f64);
    gauge!("docpipe_disk_bytes", "store" => "index").set(index as f64);
    gauge!("docpipe_disk_bytes", "store" => "blobs").set(blobs as f64);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.prometheus.render(),
    )
        .into_response())
}
