//! The HTTP API (axum). The caller binds the listener (tests bind port 0);
//! [`run`] serves until `shutdown` resolves, then stops accepting and lets
//! open requests finish.

pub mod admin;
pub mod analytics;
pub mod ask;
pub mod auth;
pub mod documents;
pub mod events;
pub mod gateway;
pub mod metrics;
pub mod paperless;
pub mod paperless_apps;
pub mod paperless_fields;
pub mod paperless_filters;
pub mod problem;
pub mod templates;
pub mod tokens;
pub mod types;
pub mod webhooks;
pub mod workflows;

use docpipe_actors::Code;
use std::future::Future;

use axum::extract::rejection::QueryRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::header;
use axum::http::Method;
use axum::middleware;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{delete, get, patch, post, put, MethodRouter};
use axum::{Json, Router};
use docpipe_actors::{Pipeline, SearchError, SearchMode};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

use auth::{Auth, Role};
use gateway::{Caller, Limits};
use problem::Problem;

/// What every handler shares. Handlers and layers take a clone of the state
/// per request, so it is one `Arc`: a clone is a reference count, not a copy
/// of every field.
#[derive(Clone)]
pub struct AppState(Arc<App>);

impl AppState {
    pub fn new(app: App) -> Self {
        AppState(Arc::new(app))
    }
}

impl std::ops::Deref for AppState {
    type Target = App;

    fn deref(&self) -> &App {
        &self.0
    }
}

pub struct App {
    pub pipeline: Pipeline,
    pub auth: Auth,
    pub limits: Arc<Limits>,
    pub max_upload_bytes: u64,
    /// Upload requests being read at once (`server.max_concurrent_uploads`).
    pub uploads: Arc<tokio::sync::Semaphore>,
    /// A request body that stalls this long is cut off (`server.request_body_timeout_ms`).
    pub body_timeout: std::time::Duration,
    /// Origins allowed to call the API from a browser (`server.cors_origins`).
    pub cors_origins: Vec<String>,
    /// `/metrics` without a token (`auth.metrics_public`).
    pub metrics_public: bool,
    /// The watched folders' figures.
    pub watch: Vec<Arc<crate::watch::WatchState>>,
    /// The mailboxes' figures.
    pub mail: Vec<Arc<crate::mail::MailState>>,
    /// Live event subscribers.
    pub subscribers: events::Subscribers,
    /// The Prometheus recorder's handle (`/metrics` renders it).
    pub prometheus: metrics_exporter_prometheus::PrometheusHandle,
}

pub const STATUS_PAGE: &str = include_str!("../assets/index.html");

/// One route of the API: who may use it, and what it does. The router is
/// built from this table, the token check of each route comes from its
/// `role`, and `/api/v1/openapi.json` lists it, so the three cannot disagree.
pub struct RouteSpec {
    pub method: Method,
    pub path: &'static str,
    /// The least role that may use the route; `None`: open to anyone.
    pub role: Option<Role>,
    pub summary: &'static str,
}

macro_rules! spec {
    ($m:ident $path:literal, $role:expr, $summary:literal) => {
        RouteSpec {
            method: Method::$m,
            path: $path,
            role: $role,
            summary: $summary,
        }
    };
}

use Role::{Admin, Editor, Reader};

/// Every route, with its handler.
fn routes(metrics_public: bool) -> Vec<(RouteSpec, MethodRouter<AppState>)> {
    let metrics_role = if metrics_public { None } else { Some(Admin) };
    vec![
        (
            spec!(GET "/healthz", None, "The process is alive"),
            get(healthz),
        ),
        (
            spec!(GET "/readyz", None, "SQLite, the index and the blob store answer"),
            get(readyz),
        ),
        (
            RouteSpec {
                method: Method::GET,
                path: "/metrics",
                role: metrics_role,
                summary: "Prometheus metrics of the whole pipeline (admin, or open with auth.metrics_public)",
            },
            get(metrics::metrics),
        ),
        (
            spec!(GET "/", Some(Reader), "The status page"),
            get(status_page),
        ),
        (
            spec!(POST "/api/v1/documents", Some(Editor), "Upload documents (multipart, parts named file)"),
            // docpipe enforces its own limit while streaming.
            post(documents::upload).layer(DefaultBodyLimit::disable()),
        ),
        (
            spec!(GET "/api/v1/documents", Some(Reader), "List documents (keyset pagination)"),
            get(documents::list),
        ),
        (
            spec!(GET "/api/v1/documents/{id}", Some(Reader), "One document"),
            get(documents::get),
        ),
        (
            spec!(DELETE "/api/v1/documents/{id}", Some(Editor), "Delete a document"),
            delete(documents::delete),
        ),
        (
            spec!(PATCH "/api/v1/documents/{id}", Some(Editor), "Change title, doc_type, tags"),
            patch(documents::edit),
        ),
        (
            spec!(GET "/api/v1/documents/{id}/content", Some(Reader), "The original bytes"),
            get(documents::content),
        ),
        (
            spec!(GET "/api/v1/documents/{id}/text", Some(Reader), "The extracted text"),
            get(documents::text),
        ),
        (
            spec!(GET "/api/v1/documents/{id}/events", Some(Reader), "The document's events"),
            get(documents::events),
        ),
        (
            spec!(GET "/api/v1/documents/{id}/similar", Some(Reader), "Documents with similar text"),
            get(documents::similar),
        ),
        (
            spec!(POST "/api/v1/documents/{id}/retry", Some(Editor), "Run a failed document again"),
            post(documents::retry),
        ),
        (
            spec!(POST "/api/v1/reprocess", Some(Editor), "Run the documents carrying a flag again: {\"needs_ocr\" | \"needs_llm\" | \"needs_review\": true}"),
            post(documents::reprocess),
        ),
        (
            spec!(GET "/api/v1/events/stream", Some(Reader), "Live events by server-sent events: every stage change of your workspaces' documents (?since=&document=&stage=&workspace=; Last-Event-ID resumes)"),
            get(events::stream),
        ),
        (
            spec!(GET "/api/v1/ws", Some(Reader), "Live events over a WebSocket: the same JSON objects as the event stream, the same query"),
            get(events::ws),
        ),
        (
            spec!(POST "/api/v1/events/ticket", Some(Reader), "A ticket a browser passes as ?ticket= to the event stream or the WebSocket in place of its token (60 s)"),
            post(events::ticket),
        ),
        (
            spec!(POST "/api/v1/webhooks", Some(Editor), "Create a webhook of a workspace: {url, events, secret?, workspace}; the answer holds its secret, once"),
            post(webhooks::create),
        ),
        (
            spec!(GET "/api/v1/webhooks", Some(Reader), "Your workspaces' webhooks (no secrets)"),
            get(webhooks::list),
        ),
        (
            spec!(GET "/api/v1/webhooks/{id}", Some(Reader), "A webhook, with its deliveries waiting for another attempt or failed (?state=failed|retrying)"),
            get(webhooks::get),
        ),
        (
            spec!(DELETE "/api/v1/webhooks/{id}", Some(Editor), "Delete a webhook"),
            delete(webhooks::delete),
        ),
        (
            spec!(POST "/api/v1/webhooks/{id}/deliveries/{delivery}/resend", Some(Editor), "Send a failed delivery again"),
            post(webhooks::resend),
        ),
        (
            spec!(GET "/api/v1/analytics", Some(Reader), "Documents per type and period, money sums per issuer, type, period and currency, stage latencies, failures (?from=&to=&workspace=&period=day|week|month&field=total)"),
            get(analytics::analytics),
        ),
        (
            spec!(GET "/api/v1/workflows", Some(Reader), "Your workspaces' workflows"),
            get(workflows::list),
        ),
        (
            spec!(GET "/api/v1/workflows/{name}", Some(Reader), "A workflow"),
            get(workflows::get),
        ),
        (
            spec!(PUT "/api/v1/workflows/{name}", Some(Editor), "Create or replace a workflow: {workspace, triggers, conditions, actions}"),
            put(workflows::put),
        ),
        (
            spec!(DELETE "/api/v1/workflows/{name}", Some(Editor), "Delete a workflow"),
            delete(workflows::delete),
        ),
        (
            spec!(GET "/api/v1/search", Some(Reader), "Search: full-text, semantic or hybrid, with filters, facets and cursor pages"),
            get(search),
        ),
        (
            spec!(POST "/api/v1/ask", Some(Reader), "An answer from your documents, with citations: {question, filters} (Accept: text/event-stream streams it)"),
            post(ask::ask),
        ),
        (
            spec!(GET "/api/v1/classifier", Some(Reader), "The learned classifier: documents learned from per type, when it was trained, cross-validated accuracy"),
            get(classifier),
        ),
        (
            spec!(GET "/api/v1/templates", Some(Reader), "Field templates learned from corrections: where each issuer puts a field (?workspace=)"),
            get(templates::list),
        ),
        (
            spec!(DELETE "/api/v1/templates/{id}", Some(Editor), "Delete a field template"),
            delete(templates::delete),
        ),
        (
            spec!(GET "/api/v1/types", Some(Reader), "Document types: rules, matching mode, field schema, where each is defined"),
            get(types::list),
        ),
        (
            spec!(PUT "/api/v1/types/{name}", Some(Admin), "Create or replace a document type (kept in the catalog, wins over config.toml)"),
            put(types::put),
        ),
        (
            spec!(DELETE "/api/v1/types/{name}", Some(Admin), "Delete a document type"),
            delete(types::delete),
        ),
        (
            spec!(GET "/api/v1/status", Some(Reader), "Documents per stage; pipeline figures for admins"),
            get(status),
        ),
        (
            spec!(GET "/api/v1/tokens", Some(Admin), "List tokens (no secrets)"),
            get(tokens::list),
        ),
        (
            spec!(POST "/api/v1/tokens", Some(Admin), "Create a token; the answer holds its secret, once"),
            post(tokens::create),
        ),
        (
            spec!(DELETE "/api/v1/tokens/{id}", Some(Admin), "Revoke a token"),
            delete(tokens::revoke),
        ),
        (
            spec!(PUT "/api/v1/admin/pools", Some(Admin), "Resize worker pools while running: {\"extract\": N, \"classify\": N, \"enrich\": N}; answers the sizes in force"),
            put(admin::put_pools),
        ),
        (
            spec!(GET "/api/v1/audit", Some(Admin), "The audit trail"),
            get(tokens::audit),
        ),
        (
            spec!(POST "/api/v1/backup", Some(Admin), "Write a consistent backup into a new or empty directory of the server's machine"),
            post(tokens::backup),
        ),
        (
            spec!(GET "/api/v1/openapi.json", Some(Reader), "This API, as OpenAPI 3.1"),
            get(openapi),
        ),
        // The Paperless-ngx API (see paperless.rs).
        (
            spec!(GET "/api/", Some(Reader), "Paperless-ngx: the resources docpipe serves"),
            get(paperless::index),
        ),
        (
            spec!(POST "/api/documents/post_document/", Some(Editor), "Paperless-ngx: upload one document; answers its task id"),
            post(paperless::post_document).layer(DefaultBodyLimit::disable()),
        ),
        (
            spec!(GET "/api/tasks/", Some(Reader), "Paperless-ngx: upload tasks (?task_id=)"),
            get(paperless::tasks),
        ),
        (
            spec!(GET "/api/documents/", Some(Reader), "Paperless-ngx: documents (?query=, ?more_like_id=, pages)"),
            get(paperless::documents),
        ),
        (
            spec!(GET "/api/documents/{id}/", Some(Reader), "Paperless-ngx: one document by number"),
            get(paperless::document),
        ),
        (
            spec!(PATCH "/api/documents/{id}/", Some(Editor), "Paperless-ngx: change a document"),
            patch(paperless::edit_document),
        ),
        (
            spec!(PUT "/api/documents/{id}/", Some(Editor), "Paperless-ngx: change a document (as PATCH)"),
            put(paperless::edit_document),
        ),
        (
            spec!(GET "/api/documents/{id}/download/", Some(Reader), "Paperless-ngx: the original"),
            get(paperless::download),
        ),
        (
            spec!(GET "/api/documents/{id}/notes/", Some(Reader), "Paperless-ngx: a document's notes"),
            get(paperless_fields::notes),
        ),
        (
            spec!(POST "/api/documents/{id}/notes/", Some(Editor), "Paperless-ngx: add a note to a document"),
            post(paperless_fields::add_note),
        ),
        (
            spec!(GET "/api/correspondents/", Some(Reader), "Paperless-ngx: correspondents (docpipe's issuers)"),
            get(paperless::correspondents),
        ),
        (
            spec!(POST "/api/correspondents/", Some(Editor), "Paperless-ngx: create a correspondent (an issuer)"),
            post(paperless::create_correspondent),
        ),
        (
            spec!(GET "/api/correspondents/{id}/", Some(Reader), "Paperless-ngx: one correspondent"),
            get(paperless::correspondent),
        ),
        (
            spec!(GET "/api/custom_fields/", Some(Reader), "Paperless-ngx: custom fields (docpipe's field names)"),
            get(paperless_fields::custom_fields),
        ),
        (
            spec!(POST "/api/custom_fields/", Some(Editor), "Paperless-ngx: create a custom field (a field name with its kind)"),
            post(paperless_fields::create_custom_field),
        ),
        (
            spec!(GET "/api/custom_fields/{id}/", Some(Reader), "Paperless-ngx: one custom field"),
            get(paperless_fields::custom_field),
        ),
        (
            spec!(GET "/api/tags/", Some(Reader), "Paperless-ngx: tags"),
            get(paperless::tags),
        ),
        (
            spec!(POST "/api/tags/", Some(Editor), "Paperless-ngx: create a tag"),
            post(paperless::create_tag),
        ),
        (
            spec!(GET "/api/tags/{id}/", Some(Reader), "Paperless-ngx: one tag"),
            get(paperless::tag),
        ),
        (
            spec!(GET "/api/document_types/", Some(Reader), "Paperless-ngx: document types"),
            get(paperless::doc_types),
        ),
        (
            spec!(POST "/api/document_types/", Some(Editor), "Paperless-ngx: create a document type"),
            post(paperless::create_doc_type),
        ),
        (
            spec!(GET "/api/document_types/{id}/", Some(Reader), "Paperless-ngx: one document type"),
            get(paperless::doc_type),
        ),
        (
            spec!(POST "/api/token/", None, "Paperless-ngx sign-in: any user name, a docpipe token as the password; answers that token"),
            post(paperless_apps::obtain_token),
        ),
        (
            spec!(GET "/api/ui_settings/", Some(Reader), "Paperless-ngx: the user, its settings and permissions"),
            get(paperless_apps::ui_settings),
        ),
        (
            spec!(GET "/api/profile/", Some(Reader), "Paperless-ngx: the signed-in user's profile"),
            get(paperless_apps::profile),
        ),
        (
            spec!(GET "/api/statistics/", Some(Reader), "Paperless-ngx: document, tag and type counts"),
            get(paperless_apps::statistics),
        ),
        (
            spec!(GET "/api/remote_version/", Some(Reader), "Paperless-ngx: the newest version (docpipe does not look)"),
            get(paperless_apps::remote_version),
        ),
    ]
}

/// CORS for the configured origins (none: browsers on other origins are refused).
pub fn cors_layer(origins: &[String]) -> tower_http::cors::CorsLayer {
    use axum::http::HeaderValue;
    let allowed: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    tower_http::cors::CorsLayer::new()
        .allow_origin(allowed)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::PATCH,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static(gateway::REQUEST_ID),
        ])
        .expose_headers([header::HeaderName::from_static(gateway::REQUEST_ID)])
}

/// The routes as a table (for the OpenAPI document and the tests).
pub fn route_specs(metrics_public: bool) -> Vec<RouteSpec> {
    routes(metrics_public)
        .into_iter()
        .map(|(spec, _)| spec)
        .collect()
}

pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for (spec, handler) in routes(state.metrics_public) {
        let handler = match spec.role {
            None => handler,
            Some(role) => handler.route_layer(middleware::from_fn_with_state(
                (state.clone(), role),
                gateway::require,
            )),
        };
        router = router.route(spec.path, handler);
    }
    router
        .fallback(|| async { Problem::new(Code::NotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                Code::MethodNotAllowed,
                "this route does not take that method",
            )
        })
        .layer(middleware::from_fn(gateway::security_headers))
        .layer(middleware::from_fn(metrics::track))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            state.body_timeout,
        ))
        .layer(cors_layer(&state.cors_origins))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .layer(middleware::from_fn(gateway::request_id))
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
    gateway::spawn_limit_janitor(state.limits.clone());
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}

async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

async fn readyz(State(app): State<AppState>) -> Response {
    match app.pipeline.ready().await {
        Ok(()) => Json(json!({"status": "ready", "storage": app.pipeline.reader().storage()}))
            .into_response(),
        Err(e) => Problem::new(Code::NotReady, format!("{e:#}")).into_response(),
    }
}

#[derive(Deserialize)]
struct WorkspaceQuery {
    workspace: Option<String>,
}

/// The learned classifier of a workspace (`?workspace=`, else the token's
/// default one).
async fn classifier(
    State(app): State<AppState>,
    caller: Caller,
    Query(q): Query<WorkspaceQuery>,
) -> Result<Json<docpipe_actors::ClassifierInfo>, Problem> {
    let ws = q
        .workspace
        .unwrap_or_else(|| caller.principal.default_workspace().to_string());
    caller.may_read(&ws)?;
    Ok(Json(app.pipeline.reader().classifier(&ws)))
}

async fn status(State(app): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    let mut v = serde_json::to_value(app.pipeline.reader().status(&caller.scope()).await?)
        .map_err(Problem::internal)?;
    v["watch"] = app.watch.iter().map(|w| w.json()).collect();
    v["mail"] = app.mail.iter().map(|m| m.json()).collect();
    v["subscribers"] = json!(app.subscribers.count());
    Ok(Json(v).into_response())
}

/// The pipeline's figures in the Prometheus text format.
async fn status_page() -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-cache")], Html(STATUS_PAGE))
}

/// A small OpenAPI 3.1 document: every route, its summary and the role it
/// needs (`x-docpipe-role`).
async fn openapi(State(app): State<AppState>) -> Response {
    let mut paths = serde_json::Map::new();
    for r in route_specs(app.metrics_public) {
        let params: Vec<serde_json::Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": r.summary,
            "parameters": params,
            "responses": {"default": {"description": "JSON, or application/problem+json on error"}},
            "x-docpipe-role": r.role.map(|r| r.as_str()),
        });
        if r.role.is_none() {
            op["security"] = json!([]);
        }
        let entry = paths.entry(r.path.to_string()).or_insert_with(|| json!({}));
        entry[r.method.as_str().to_ascii_lowercase()] = op;
    }
    Json(json!({
        "openapi": "3.1.0",
        "info": {"title": "docpipe", "version": env!("CARGO_PKG_VERSION")},
        "components": {"securitySchemes": {"token": {"type": "http", "scheme": "bearer"}}},
        "security": [{"token": []}],
        "paths": paths,
    }))
    .into_response()
}

#[derive(Deserialize)]
struct SearchParams {
    q: Option<String>,
    /// `fulltext`, `semantic` or `hybrid` (the default once documents have
    /// vectors, full-text before).
    mode: Option<String>,
    /// Types, comma-separated: any of them.
    #[serde(rename = "type")]
    doc_type: Option<String>,
    /// Tags, comma-separated: all of them.
    tag: Option<String>,
    /// Languages, comma-separated: any of them.
    language: Option<String>,
    /// The document's date, from and to (inclusive), `YYYY-MM-DD`.
    from: Option<String>,
    to: Option<String>,
    /// `relevance`, `date`, `added` or a field, with `:asc` or `:desc`.
    sort: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
    cursor: Option<String>,
    /// Facets to count, comma-separated: type, tags, year, language.
    facets: Option<String>,
    /// `false`: no typo tolerance.
    typos: Option<bool>,
}

fn list_param(v: &Option<String>) -> Vec<String> {
    v.as_deref()
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

async fn search(
    State(app): State<AppState>,
    caller: Caller,
    params: Result<Query<SearchParams>, QueryRejection>,
) -> Result<Response, Problem> {
    use docpipe_actors::store::index::{Cursor, FacetKind, SearchRequest, Sort};
    let Query(p) = params.map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))?;
    let bad = |m: String| Problem::new(Code::InvalidParameter, m);
    let q = p.q.clone().unwrap_or_default();
    let types = list_param(&p.doc_type);
    let tags = list_param(&p.tag);
    let languages = list_param(&p.language);
    let filtered = !types.is_empty()
        || !tags.is_empty()
        || !languages.is_empty()
        || p.from.is_some()
        || p.to.is_some();
    if q.trim().is_empty() && !filtered {
        return Err(Problem::new(
            Code::MissingQuery,
            "give a query in the q parameter, or a filter (type, tag, language, from, to)",
        ));
    }
    let mode = p
        .mode
        .as_deref()
        .filter(|m| !m.is_empty())
        .map(|m| {
            SearchMode::parse(m).ok_or_else(|| {
                bad(format!(
                    "unknown mode {m:?}: use fulltext, semantic or hybrid"
                ))
            })
        })
        .transpose()?;
    let limit = p.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(bad("limit must be between 1 and 100".into()));
    }
    let offset = p.offset.unwrap_or(0);
    if offset > 10_000 {
        return Err(bad("offset must be at most 10000; page with cursor".into()));
    }
    let sort = Sort::parse(p.sort.as_deref().unwrap_or("relevance"))
        .map_err(|m| bad(format!("sort: {m}")))?;
    let cursor = p
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(|c| Cursor::decode(c, &sort))
        .transpose()
        .map_err(|m| bad(format!("cursor: {m}")))?;
    let mut facets = Vec::new();
    for f in list_param(&p.facets) {
        let kind = FacetKind::parse(&f).ok_or_else(|| {
            bad(format!(
                "unknown facet {f:?}: use type, tags, year or language"
            ))
        })?;
        if !facets.contains(&kind) {
            facets.push(kind);
        }
    }
    let req = SearchRequest {
        q,
        types,
        tags,
        languages,
        from: p.from.clone(),
        to: p.to.clone(),
        sort,
        limit,
        offset,
        cursor,
        facets,
        typos: p.typos.unwrap_or(true),
        near: None,
    };
    match app.pipeline.reader().find(req, mode, &caller.scope()).await {
        Ok(r) => Ok(Json(r).into_response()),
        Err(SearchError::Query(m)) => Err(Problem::new(Code::InvalidQuery, m)),
        Err(SearchError::NoEmbeddings(m)) => Err(Problem::new(Code::NoEmbeddings, m)),
        Err(SearchError::Internal(e)) => Err(Problem::internal(e)),
    }
}
