//! The HTTP API (axum). The caller binds the listener (tests bind port 0);
//! [`run`] serves until `shutdown` resolves, then stops accepting and lets
//! open requests finish.

pub mod documents;
pub mod problem;

use std::future::Future;

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use docpipe_actors::{Pipeline, SearchError};
use serde::Deserialize;
use serde_json::json;

use problem::Problem;

#[derive(Clone)]
pub struct AppState {
    pub pipeline: Pipeline,
    pub max_upload_bytes: u64,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(status_page))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route(
            "/api/v1/documents",
            // docpipe enforces its own limit while streaming.
            post(documents::upload)
                .get(documents::list)
                .layer(DefaultBodyLimit::disable()),
        )
        .route(
            "/api/v1/documents/{id}",
            get(documents::get).delete(documents::delete),
        )
        .route("/api/v1/documents/{id}/content", get(documents::content))
        .route("/api/v1/documents/{id}/text", get(documents::text))
        .route("/api/v1/documents/{id}/events", get(documents::events))
        .route("/api/v1/documents/{id}/retry", post(documents::retry))
        .route("/api/v1/search", get(search))
        .route("/api/v1/status", get(status))
        .fallback(|| async { Problem::new(StatusCode::NOT_FOUND, "not_found", "no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method",
            )
        })
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

pub async fn run(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::serve::ListenerExt;
    // Responses are small and written in pieces (headers, body): without
    // TCP_NODELAY, Nagle and delayed ACKs add tens of milliseconds to each.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(app): State<AppState>) -> Response {
    match app.pipeline.ready().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            format!("{e:#}"),
        )
        .into_response(),
    }
}

async fn status(State(app): State<AppState>) -> Result<Response, Problem> {
    Ok(Json(app.pipeline.status().await?).into_response())
}

async fn status_page() -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-cache")],
        Html(include_str!("../assets/index.html")),
    )
}

#[derive(Deserialize)]
struct SearchParams {
    q: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

async fn search(
    State(app): State<AppState>,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = params.map_err(|e| Problem::bad_request("invalid_parameter", e.body_text()))?;
    let q = p.q.unwrap_or_default();
    if q.trim().is_empty() {
        return Err(Problem::bad_request(
            "missing_query",
            "give a query in the q parameter",
        ));
    }
    let limit = p.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(Problem::bad_request(
            "invalid_parameter",
            "limit must be between 1 and 100",
        ));
    }
    let offset = p.offset.unwrap_or(0);
    if offset > 10_000 {
        return Err(Problem::bad_request(
            "invalid_parameter",
            "offset must be at most 10000",
        ));
    }
    match app.pipeline.search(&q, limit, offset).await {
        Ok(r) => Ok(Json(r).into_response()),
        Err(SearchError::Query(m)) => Err(Problem::bad_request("invalid_query", m)),
        Err(SearchError::Internal(e)) => Err(Problem::internal(e)),
    }
}
