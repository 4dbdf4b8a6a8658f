//! The Paperless-ngx REST API, as far as its ecosystem needs it: scanner
//! scripts and mobile apps upload with `post_document` and poll the task;
//! `pypaperless` also reads documents, searches, and lists and creates tags
//! and document types. A Paperless document id is docpipe's document number
//! (its row number, stable for the document's life); tags and document types
//! are per workspace, like everything else.

use axum::extract::multipart::MultipartRejection;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use docpipe_actors::{Code, Kind, UserField};
use docpipe_actors::{DocExtras, Label, LabelKind};
use docpipe_actors::{Document, Scope, SearchError, Stage, UploadExtras};
use serde::Deserialize;
use serde_json::{json, Value};

use super::documents::{
    apply_edit, discard_all, id_list, optional_text, receive, resolve_workspace, upload_slot,
};
use super::gateway::Caller;
use super::paperless_fields::{
    document_custom_fields, document_notes, fields_from_paperless, set_values,
};
use super::problem::Problem;
use super::AppState;
use docpipe_actors::Edit;

/// The field that holds a document's issuer (Paperless's correspondent).
const ISSUER: &str = "issuer";

/// The API version docpipe answers as (Paperless-ngx's `X-Api-Version`).
const API_VERSION: u32 = 9;

/// JSON with the version headers Paperless clients read.
pub(super) fn reply(status: StatusCode, v: Value) -> Response {
    let mut r = (status, Json(v)).into_response();
    let h = r.headers_mut();
    h.insert("x-api-version", API_VERSION.into());
    h.insert(
        "x-version",
        header::HeaderValue::from_static(concat!("docpipe-", env!("CARGO_PKG_VERSION"))),
    );
    r
}

/// The version the client asked for in `Accept: application/json; version=N`.
fn requested_version(headers: &HeaderMap) -> u32 {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(';')
                .find_map(|p| p.trim().strip_prefix("version="))
                .and_then(|n| n.trim().parse().ok())
        })
        .unwrap_or(API_VERSION)
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

pub async fn index(headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let mut v = serde_json::Map::new();
    for r in [
        "correspondents",
        "custom_fields",
        "documents",
        "document_types",
        "tags",
        "tasks",
    ] {
        v.insert(r.into(), json!(format!("{base}/api/{r}/")));
    }
    reply(StatusCode::OK, Value::Object(v))
}

// ---------------------------------------------------------------- upload

pub async fn post_document(
    State(app): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, Problem> {
    let _slot = upload_slot(&app)?;
    let form = receive(&app, multipart, "document").await?;
    let mut staged = form.staged;
    let extras = match upload_extras(&app, &caller, &form.fields, staged.len()).await {
        Ok(x) => x,
        Err(p) => {
            discard_all(&app, &staged).await;
            return Err(p);
        }
    };
    let (workspace, mut extra) = extras;
    let task_id = uuid::Uuid::new_v4().hyphenated().to_string();
    extra.task_id = Some(task_id.clone());
    for d in &mut staged {
        d.workspace = workspace.clone();
        d.title = form.fields.title.clone();
        d.extra = extra.clone();
    }
    app.pipeline.register(staged, &caller.origin()).await?;
    Ok(reply(StatusCode::OK, json!(task_id)))
}

/// Checks the Paperless form fields against the workspace the upload goes to.
async fn upload_extras(
    app: &AppState,
    caller: &Caller,
    f: &super::documents::FormFields,
    files: usize,
) -> Result<(String, UploadExtras), Problem> {
    if files != 1 {
        return Err(Problem::new(
            Code::OneDocument,
            "post_document takes exactly one part named \"document\"",
        )
        .on_field("document"));
    }
    let workspace = resolve_workspace(caller, f.workspace.clone())?;
    let here = Scope::only([workspace.clone()]);
    let mut x = UploadExtras::default();
    for t in &f.tags {
        let id = parse_id(t, "tags")?;
        app.pipeline
            .reader()
            .label(LabelKind::Tag, id, &here)
            .await?
            .ok_or_else(|| unknown("tags", id))?;
        x.tags.push(id);
    }
    if let Some(t) = &f.document_type {
        let id = parse_id(t, "document_type")?;
        let label = app
            .pipeline
            .reader()
            .label(LabelKind::DocType, id, &here)
            .await?
            .ok_or_else(|| unknown("document_type", id))?;
        x.doc_type = Some(label.name);
    }
    if let Some(c) = &f.correspondent {
        let id = parse_id(c, "correspondent")?;
        x.fields
            .push((ISSUER.into(), issuer_value(app, id, &here).await?));
    }
    if !f.custom_fields.is_empty() {
        let given = upload_custom_fields(&f.custom_fields)?;
        let values = fields_from_paperless(app, caller, &given, None).await?;
        x.fields.extend(set_values(values));
    }
    if let Some(c) = &f.created {
        x.doc_date = Some(parse_date(c)?);
    }
    if let Some(a) = &f.archive_serial_number {
        x.asn = Some(parse_id(a, "archive_serial_number")?);
    }
    Ok((workspace, x))
}

/// An upload's `custom_fields` parts as one JSON value: a JSON object or
/// list in one part, or ids (one per part, or comma-separated).
fn upload_custom_fields(parts: &[String]) -> Result<Value, Problem> {
    if let [one] = parts {
        if one.starts_with('{') || one.starts_with('[') {
            return serde_json::from_str(one).map_err(|e| {
                Problem::new(Code::InvalidField, format!("custom_fields: not JSON: {e}"))
            });
        }
    }
    let mut ids = Vec::new();
    for p in parts {
        for id in p.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            ids.push(json!(parse_id(id, "custom_fields")?));
        }
    }
    Ok(Value::Array(ids))
}

/// The issuer of id `id` in the workspace, as a field value set by hand.
async fn issuer_value(app: &AppState, id: i64, here: &Scope) -> Result<UserField, Problem> {
    let l = app
        .pipeline
        .reader()
        .label(LabelKind::Issuer, id, here)
        .await?
        .ok_or_else(|| unknown("correspondent", id))?;
    Ok(UserField {
        kind: Kind::Party,
        value: l.name,
        currency: None,
    })
}

fn parse_id(v: &str, field: &str) -> Result<i64, Problem> {
    v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
        Problem::new(Code::InvalidField, format!("{field}: {v:?} is not an id")).on_field(field)
    })
}

fn unknown(field: &str, id: i64) -> Problem {
    Problem::new(
        Code::InvalidField,
        format!("{field}: there is no {id} in this workspace"),
    )
    .on_field(field)
}

/// `YYYY-MM-DD` or an RFC 3339 date-time; kept as given.
pub(super) fn parse_date(v: &str) -> Result<String, Problem> {
    let date_only =
        v.len() == 10 && humantime::parse_rfc3339_weak(&format!("{v} 00:00:00")).is_ok();
    if date_only || humantime::parse_rfc3339_weak(v).is_ok() || parse_offset_datetime(v) {
        Ok(v.to_string())
    } else {
        Err(Problem::new(
            Code::InvalidField,
            format!("created: {v:?} is not a date (YYYY-MM-DD or an ISO 8601 date-time)"),
        )
        .on_field("created"))
    }
}

/// `2024-05-01T10:00:00+02:00` (humantime reads only `Z`).
fn parse_offset_datetime(v: &str) -> bool {
    let Some((dt, off)) = v.get(..19).zip(v.get(19..)) else {
        return false;
    };
    let off_ok = off.len() == 6
        && (off.starts_with('+') || off.starts_with('-'))
        && off.as_bytes()[3] == b':';
    off_ok && humantime::parse_rfc3339_weak(dt).is_ok()
}

// ---------------------------------------------------------------- tasks

#[derive(Deserialize)]
pub struct TaskParams {
    task_id: Option<String>,
}

pub async fn tasks(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    params: Result<Query<TaskParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = params.map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))?;
    let rows = app
        .pipeline
        .reader()
        .tasks(p.task_id.filter(|t| !t.is_empty()), &caller.scope(), 100)
        .await?;
    if requested_version(&headers) >= 10 {
        let items: Vec<Value> = rows.iter().map(task_json_v10).collect();
        let all: Vec<i64> = rows.iter().map(|t| t.seq).collect();
        return Ok(reply(
            StatusCode::OK,
            json!({"count": items.len(), "next": null, "previous": null, "all": all, "results": items}),
        ));
    }
    let items: Vec<Value> = rows.iter().map(task_json).collect();
    Ok(reply(StatusCode::OK, Value::Array(items)))
}

/// Where a task stands: Celery's state, its result message, the document
/// it made, and when it ended.
struct TaskState {
    status: &'static str,
    result: Option<String>,
    document: Option<i64>,
    done: Option<String>,
}

fn task_state(t: &docpipe_actors::TaskView) -> TaskState {
    let state = |status, result: Option<String>, document, done| TaskState {
        status,
        result,
        document,
        done,
    };
    if t.duplicate {
        return state(
            "FAILURE",
            Some(match t.doc_seq {
                Some(n) => format!("Not consuming: It is a duplicate of document #{n}"),
                None => "Not consuming: It is a duplicate of a deleted document".into(),
            }),
            None,
            Some(t.created_at.clone()),
        );
    }
    match (t.stage, t.doc_seq) {
        (None, _) | (_, None) => state(
            "FAILURE",
            Some("The document was deleted".to_string()),
            None,
            t.updated_at.clone(),
        ),
        (Some(Stage::Queued), _) => state("PENDING", None, None, None),
        (Some(Stage::Indexed), Some(n)) => state(
            "SUCCESS",
            Some(format!("Success. New document id {n} created")),
            Some(n),
            t.updated_at.clone(),
        ),
        (Some(Stage::Failed), _) => state(
            "FAILURE",
            Some(t.error.clone().unwrap_or_else(|| "failed".into())),
            None,
            t.updated_at.clone(),
        ),
        (Some(_), _) => state("STARTED", None, None, None),
    }
}

/// Seconds from one RFC 3339 time to another.
fn seconds_between(from: &str, to: &str) -> Option<f64> {
    let a = humantime::parse_rfc3339_weak(from).ok()?;
    let b = humantime::parse_rfc3339_weak(to).ok()?;
    b.duration_since(a).ok().map(|d| d.as_secs_f64())
}

/// A task as Paperless-ngx 3 (API version 10) gives it: lower-case states,
/// the documents it made as a list, its input and result as objects.
fn task_json_v10(t: &docpipe_actors::TaskView) -> Value {
    let s = task_state(t);
    let status = s.status.to_ascii_lowercase();
    let display = {
        let mut c = status.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    let result_data = match (&s.result, s.document, s.status) {
        (_, Some(n), _) => json!({"document_id": n}),
        (Some(r), None, "FAILURE") => json!({"error": r}),
        _ => Value::Null,
    };
    json!({
        "id": t.seq,
        "task_id": t.task_id,
        "task_type": "consume_file",
        "task_type_display": "Consume File",
        "trigger_source": "api_upload",
        "trigger_source_display": "API Upload",
        "status": status,
        "status_display": display,
        "date_created": t.created_at,
        // docpipe does not keep when a stage worker first took the
        // document; the duration is from upload to done.
        "date_started": null,
        "date_done": s.done,
        "duration_seconds": s.done.as_deref().and_then(|d| seconds_between(&t.created_at, d)),
        "wait_time_seconds": null,
        "input_data": {"filename": t.filename},
        "result_data": result_data,
        "related_document_ids": s.document.map_or_else(Vec::new, |n| vec![n]),
        "acknowledged": false,
        "owner": null,
    })
}

fn task_json(t: &docpipe_actors::TaskView) -> Value {
    let TaskState {
        status,
        result,
        document,
        done,
    } = task_state(t);
    let related = document.map(|n| n.to_string());
    json!({
        "id": t.seq,
        "task_id": t.task_id,
        "task_name": "consume_file",
        "task_file_name": t.filename,
        "date_created": t.created_at,
        "date_done": done,
        "type": "file",
        "status": status,
        "result": result,
        "acknowledged": false,
        "related_document": related,
        // The document an upload duplicated, as Paperless (version 9) lists it.
        "duplicate_documents": match (t.duplicate, t.doc_seq) {
            (true, Some(n)) => json!([{"id": n, "title": t.doc_title, "deleted_at": null}]),
            _ => json!([]),
        },
        "owner": null,
    })
}

// ---------------------------------------------------------------- documents

/// A document as Paperless-ngx serializes it for API `version`: from
/// version 9 on, `created` is a date (`"2026-12-01"`); before, a date and
/// time with its offset. `added` and `modified` are always date and time.
pub(super) fn document_json(
    d: &Document,
    x: &DocExtras,
    content: Option<String>,
    version: u32,
) -> Value {
    let when = x.doc_date.clone().unwrap_or_else(|| d.created_at.clone());
    let date = when.get(..10).unwrap_or(&when).to_string();
    let created = if version >= 9 {
        date.clone()
    } else if when.contains('T') {
        when.clone()
    } else {
        format!("{date}T00:00:00Z")
    };
    json!({
        "id": d.seq,
        "correspondent": x.issuer_id,
        "document_type": x.doc_type_id,
        "storage_path": null,
        "title": d.title.clone().unwrap_or_else(|| d.filename.clone()),
        "content": content.unwrap_or_default(),
        "tags": x.tags,
        "created": created,
        "created_date": date,
        "modified": d.updated_at,
        "added": d.created_at,
        "deleted_at": null,
        "archive_serial_number": x.asn,
        "original_file_name": d.filename,
        "archived_file_name": null,
        "mime_type": d.mime,
        "owner": null,
        "user_can_change": true,
        "is_shared_by_requester": false,
        "notes": document_notes(x),
        "custom_fields": document_custom_fields(d),
        "page_count": d.pages,
    })
}

async fn with_content(
    app: &AppState,
    scope: &Scope,
    d: &Document,
    x: &DocExtras,
    version: u32,
) -> Result<Value, Problem> {
    let text = app.pipeline.reader().text(&d.id, scope).await?;
    Ok(document_json(d, x, text, version))
}

/// The characters of `content` a list keeps with `truncate_content`.
const TRUNCATED_CONTENT_CHARS: usize = 550;

fn truncate_content(v: &mut Value) {
    if let Some(c) = v["content"].as_str() {
        if let Some((i, _)) = c.char_indices().nth(TRUNCATED_CONTENT_CHARS) {
            v["content"] = json!(&c[..i]);
        }
    }
}

/// `GET /api/documents/`: a page of the documents that pass the filters
/// (see `paperless_filters`), of a full-text `query`'s hits, or of those
/// like `more_like_id`.
pub async fn documents(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Problem> {
    let version = requested_version(&headers);
    let Query(pairs) = params.map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))?;
    let (p, filter) = super::paperless_filters::parse(&pairs)?;
    let truncate = p.truncate_content;
    let listed = |mut v: Value| {
        if truncate {
            truncate_content(&mut v);
        }
        v
    };
    let page = p.page.unwrap_or(1).max(1);
    let size = p.page_size.unwrap_or(25).clamp(1, 1000);
    let offset = (page - 1) * size;
    let scope = caller.scope();
    if p.nothing {
        return Ok(reply(
            StatusCode::OK,
            paginated(&headers, "documents", page, size, 0, Vec::new(), Vec::new()),
        ));
    }
    let mut results = Vec::new();
    let total;
    let search_all;
    if let Some(q) = p.query.as_deref() {
        let searched = |e| match e {
            SearchError::Query(m) => Problem::new(Code::InvalidQuery, m),
            SearchError::NoEmbeddings(m) => Problem::new(Code::NoEmbeddings, m),
            SearchError::Internal(e) => Problem::internal(e),
        };
        let filter = filter.has_conditions().then_some(filter);
        let r = app
            .pipeline
            .reader()
            .search_where(q, size, offset.min(10_000), &scope, filter.clone(), true)
            .await
            .map_err(searched)?;
        total = r.total;
        // Paperless's `all`: every hit's number (of the best 10,000), not
        // just the page's; a second, cheap pass without snippets.
        search_all = if total as usize > r.hits.len() {
            Some(
                app.pipeline
                    .reader()
                    .search_numbers(q, &scope, filter)
                    .await
                    .map_err(searched)?,
            )
        } else {
            None
        };
        let ids = r.hits.iter().map(|h| h.id.clone()).collect();
        let docs = app.pipeline.reader().get_many(ids, &scope).await?;
        for (rank, (d, x)) in docs.iter().enumerate() {
            let hit = r.hits.iter().find(|h| h.id == d.id);
            let mut v = listed(with_content(&app, &scope, d, x, version).await?);
            v["__search_hit__"] = json!({
                "score": hit.map(|h| h.score),
                "highlights": hit.map(|h| h.snippet.clone()),
                "note_highlights": null,
                "rank": offset + rank,
            });
            results.push(v);
        }
    } else if let Some(n) = p.more_like_id {
        let Some((doc, _)) = app.pipeline.reader().get_by_number(n, &scope).await? else {
            return Err(Problem::not_found("document"));
        };
        let hits = app
            .pipeline
            .reader()
            .similar(&doc.id, size, &scope)
            .await?
            .unwrap_or_default();
        total = hits.len() as u64;
        search_all = None;
        let ids = hits.into_iter().map(|h| h.id).collect();
        for (d, x) in app.pipeline.reader().get_many(ids, &scope).await? {
            results.push(listed(with_content(&app, &scope, &d, &x, version).await?));
        }
    } else {
        let (n, docs, all) = app
            .pipeline
            .reader()
            .query(&scope, filter, offset, size)
            .await?;
        for (d, x) in &docs {
            results.push(listed(with_content(&app, &scope, d, x, version).await?));
        }
        // Paperless's `all`: every document of the list, not just the page's.
        return Ok(reply(
            StatusCode::OK,
            paginated(
                &headers,
                "documents",
                page,
                size,
                n,
                all.into_iter().map(Value::from).collect(),
                results,
            ),
        ));
    }
    let ids: Vec<Value> = match search_all {
        Some(all) => all.into_iter().map(Value::from).collect(),
        None => results.iter().map(|r| r["id"].clone()).collect(),
    };
    Ok(reply(
        StatusCode::OK,
        paginated(&headers, "documents", page, size, total, ids, results),
    ))
}

fn paginated(
    headers: &HeaderMap,
    resource: &str,
    page: usize,
    size: usize,
    total: u64,
    all: Vec<Value>,
    results: Vec<Value>,
) -> Value {
    let base = base_url(headers);
    let more = (page * size) < total as usize;
    json!({
        "count": total,
        "next": more.then(|| format!("{base}/api/{resource}/?page={}&page_size={size}", page + 1)),
        "previous": (page > 1).then(|| format!("{base}/api/{resource}/?page={}&page_size={size}", page - 1)),
        "all": all,
        "results": results,
    })
}

/// A page of a list whose ids are all known.
pub(super) fn paginated_all(
    headers: &HeaderMap,
    resource: &str,
    page: usize,
    size: usize,
    all: Vec<Value>,
    results: Vec<Value>,
) -> Value {
    let total = all.len() as u64;
    paginated(headers, resource, page, size, total, all, results)
}

fn number(raw: &str) -> Result<i64, Problem> {
    raw.parse::<i64>()
        .map_err(|_| Problem::not_found("document"))
}

pub async fn document(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let version = requested_version(&headers);
    let scope = caller.scope();
    let (d, x) = app
        .pipeline
        .reader()
        .get_by_number(number(&id)?, &scope)
        .await?
        .ok_or_else(|| Problem::not_found("document"))?;
    Ok(reply(
        StatusCode::OK,
        with_content(&app, &scope, &d, &x, version).await?,
    ))
}

/// `PATCH /api/documents/{n}/` (and `PUT`): title, correspondent and
/// document_type (ids or null), tags, created, archive_serial_number,
/// custom_fields. Other Paperless fields are ignored.
pub async fn edit_document(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Result<Json<Value>, JsonRejection>,
) -> Result<Response, Problem> {
    let version = requested_version(&headers);
    let Json(body) = body.map_err(|e| Problem::new(Code::InvalidBody, e.body_text()))?;
    let obj = body
        .as_object()
        .ok_or_else(|| Problem::new(Code::InvalidBody, "expected a JSON object"))?;
    let scope = caller.scope();
    let (d, _) = app
        .pipeline
        .reader()
        .get_by_number(number(&id)?, &scope)
        .await?
        .ok_or_else(|| Problem::not_found("document"))?;
    let here = Scope::only([d.workspace.clone()]);
    let mut e = Edit::default();
    for (k, v) in obj {
        match k.as_str() {
            "title" => e.title = Some(optional_text(v, "title", 1000)?),
            "tags" => e.tags = Some(id_list(v, "tags")?),
            "document_type" => {
                e.doc_type = Some(match v {
                    Value::Null => None,
                    v => {
                        let id = v.as_i64().ok_or_else(|| {
                            Problem::new(Code::InvalidField, "document_type must be an id or null")
                                .on_field("document_type")
                        })?;
                        let l = app
                            .pipeline
                            .reader()
                            .label(LabelKind::DocType, id, &here)
                            .await?
                            .ok_or_else(|| unknown("document_type", id))?;
                        Some(l.name)
                    }
                })
            }
            "created" | "created_date" => {
                e.doc_date = Some(match optional_text(v, k, 40)? {
                    None => None,
                    Some(t) => Some(parse_date(&t)?),
                })
            }
            "archive_serial_number" => {
                e.asn = Some(match v {
                    Value::Null => None,
                    v => Some(v.as_i64().filter(|n| *n >= 0).ok_or_else(|| {
                        Problem::new(Code::InvalidField, "archive_serial_number must be a number")
                            .on_field("archive_serial_number")
                    })?),
                })
            }
            "correspondent" => {
                let value = match v {
                    Value::Null => None,
                    v => {
                        let id = v.as_i64().ok_or_else(|| {
                            Problem::new(Code::InvalidField, "correspondent must be an id or null")
                                .on_field("correspondent")
                        })?;
                        Some(issuer_value(&app, id, &here).await?)
                    }
                };
                e.fields
                    .get_or_insert_with(Vec::new)
                    .push((ISSUER.into(), value));
            }
            "custom_fields" => {
                let values = fields_from_paperless(&app, &caller, v, Some(&d)).await?;
                // (A correspondent given too wins over an issuer field here.)
                let fields = e.fields.get_or_insert_with(Vec::new);
                for (name, value) in values {
                    if !fields.iter().any(|(n, _)| *n == name) {
                        fields.push((name, value));
                    }
                }
            }
            _ => {} // storage_path, owner, set_permissions, remove_inbox_tags, …
        }
    }
    apply_edit(&app, &caller, &d.id, e).await?;
    let (d, x) = app
        .pipeline
        .reader()
        .get_by_number(d.seq, &scope)
        .await?
        .ok_or_else(|| Problem::not_found("document"))?;
    Ok(reply(
        StatusCode::OK,
        with_content(&app, &scope, &d, &x, version).await?,
    ))
}

pub async fn download(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let scope = caller.scope();
    let (d, _) = app
        .pipeline
        .reader()
        .get_by_number(number(&id)?, &scope)
        .await?
        .ok_or_else(|| Problem::not_found("document"))?;
    super::documents::original(&app, &d.id, &scope).await
}

// ---------------------------------------------------------------- tags, document types

fn label_json(kind: LabelKind, l: &Label) -> Value {
    let mut v = json!({
        "id": l.id,
        "slug": slugify(&l.name),
        "name": l.name,
        "match": "",
        "matching_algorithm": 0,
        "is_insensitive": true,
        "document_count": l.document_count,
        "owner": null,
        "user_can_change": true,
    });
    if kind == LabelKind::Issuer {
        v["last_correspondence"] = Value::Null;
    }
    if kind == LabelKind::Tag {
        let color = l.color.clone().unwrap_or_else(|| DEFAULT_TAG_COLOR.into());
        v["text_color"] = json!(text_color(&color));
        v["color"] = json!(color);
        v["is_inbox_tag"] = json!(false);
        // Paperless's tag tree: docpipe's tags are flat.
        v["parent"] = Value::Null;
        v["children"] = json!([]);
    }
    v
}

/// Paperless's colour for a tag made without one.
const DEFAULT_TAG_COLOR: &str = "#a6cee3";

/// Black or white text on a tag's colour, by its luminance, as Paperless
/// picks it.
fn text_color(color: &str) -> &'static str {
    let hex = color.trim_start_matches('#');
    let channel = |i: usize| {
        hex.get(i..i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .map(|c| f64::from(c) / 256.0)
    };
    match (channel(0), channel(2), channel(4)) {
        (Some(r), Some(g), Some(b)) if hex.len() == 6 => {
            let luminance = (0.299 * r * r + 0.587 * g * g + 0.114 * b * b).sqrt();
            if luminance < 0.53 {
                "#ffffff"
            } else {
                "#000000"
            }
        }
        _ => "#000000",
    }
}

fn slugify(name: &str) -> String {
    let mut s = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            s.push(c);
        } else if !s.ends_with('-') && !s.is_empty() {
            s.push('-');
        }
    }
    s.trim_end_matches('-').to_string()
}

async fn list_labels(
    app: AppState,
    caller: Caller,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
    kind: LabelKind,
) -> Result<Response, Problem> {
    let Query(pairs) = params.map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))?;
    let (page, size, filter) = super::paperless_filters::parse_labels(&pairs)?;
    let reader = app.pipeline.reader();
    let scope = caller.scope();
    let (total, labels) = reader
        .labels_where(kind, &scope, filter.clone(), (page - 1) * size, size)
        .await?;
    let results: Vec<Value> = labels.iter().map(|l| label_json(kind, l)).collect();
    // Paperless's `all`: the ids of every label of the list, not just the
    // page's (a workspace has tens or hundreds of labels, not millions).
    let ids = if total as usize == labels.len() {
        labels.iter().map(|l| json!(l.id)).collect()
    } else {
        let (_, every) = reader
            .labels_where(kind, &scope, filter, 0, total as usize)
            .await?;
        every.iter().map(|l| json!(l.id)).collect()
    };
    let resource = resource_of(kind);
    Ok(reply(
        StatusCode::OK,
        paginated(&headers, resource, page, size, total, ids, results),
    ))
}

fn resource_of(kind: LabelKind) -> &'static str {
    match kind {
        LabelKind::Tag => "tags",
        LabelKind::DocType => "document_types",
        LabelKind::Issuer => "correspondents",
    }
}

async fn get_label(
    app: AppState,
    caller: Caller,
    id: String,
    kind: LabelKind,
) -> Result<Response, Problem> {
    let what = match kind {
        LabelKind::Tag => "tag",
        LabelKind::DocType => "document type",
        LabelKind::Issuer => "correspondent",
    };
    let id = id.parse::<i64>().map_err(|_| Problem::not_found(what))?;
    let l = app
        .pipeline
        .reader()
        .label(kind, id, &caller.scope())
        .await?
        .ok_or_else(|| Problem::not_found(what))?;
    Ok(reply(StatusCode::OK, label_json(kind, &l)))
}

#[derive(Deserialize)]
pub struct NewLabel {
    name: String,
    color: Option<String>,
    workspace: Option<String>,
    // Paperless's matching settings and permissions are accepted and unused.
    #[serde(flatten)]
    _rest: serde_json::Map<String, Value>,
}

async fn create_label(
    app: AppState,
    caller: Caller,
    body: Result<Json<NewLabel>, JsonRejection>,
    kind: LabelKind,
) -> Result<Response, Problem> {
    let Json(b) = body.map_err(|e| Problem::new(Code::InvalidBody, e.body_text()))?;
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 128 || name.chars().any(char::is_control) {
        return Err(Problem::new(
            Code::InvalidBody,
            "name must be 1 to 128 characters, without control characters",
        )
        .on_field("name"));
    }
    if let Some(c) = &b.color {
        let hex = c.strip_prefix('#').unwrap_or("");
        if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Problem::new(
                Code::InvalidBody,
                format!("color {c:?} is not like #a6cee3"),
            )
            .on_field("color"));
        }
    }
    let workspace = resolve_workspace(&caller, b.workspace)?;
    let (id, new) = app
        .pipeline
        .create_label(kind, &workspace, name, b.color, &caller.origin())
        .await?;
    if !new {
        return Err(Problem::new(
            Code::AlreadyExists,
            format!("{} {name:?} exists already (id {id})", resource_of(kind)),
        )
        .on_field("name"));
    }
    let l = app
        .pipeline
        .reader()
        .label(kind, id, &Scope::only([workspace]))
        .await?
        .ok_or_else(|| Problem::internal(anyhow::anyhow!("label {id} vanished")))?;
    Ok(reply(StatusCode::CREATED, label_json(kind, &l)))
}

pub async fn tags(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Problem> {
    list_labels(app, caller, headers, params, LabelKind::Tag).await
}

pub async fn tag(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    get_label(app, caller, id, LabelKind::Tag).await
}

pub async fn create_tag(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<NewLabel>, JsonRejection>,
) -> Result<Response, Problem> {
    create_label(app, caller, body, LabelKind::Tag).await
}

pub async fn doc_types(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Problem> {
    list_labels(app, caller, headers, params, LabelKind::DocType).await
}

pub async fn doc_type(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    get_label(app, caller, id, LabelKind::DocType).await
}

pub async fn create_doc_type(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<NewLabel>, JsonRejection>,
) -> Result<Response, Problem> {
    create_label(app, caller, body, LabelKind::DocType).await
}

pub async fn correspondents(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    params: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Result<Response, Problem> {
    list_labels(app, caller, headers, params, LabelKind::Issuer).await
}

pub async fn correspondent(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    get_label(app, caller, id, LabelKind::Issuer).await
}

pub async fn create_correspondent(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<NewLabel>, JsonRejection>,
) -> Result<Response, Problem> {
    create_label(app, caller, body, LabelKind::Issuer).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_text_is_white_on_dark_colours_and_black_on_light_ones() {
        assert_eq!(text_color("#a6cee3"), "#000000");
        assert_eq!(text_color("#1f78b4"), "#ffffff");
        assert_eq!(text_color("#000000"), "#ffffff");
        assert_eq!(text_color("#ffffff"), "#000000");
        assert_eq!(text_color("not a colour"), "#000000");
    }

    #[test]
    fn versions_dates_and_slugs() {
        let mut h = HeaderMap::new();
        assert_eq!(requested_version(&h), 9);
        h.insert(
            header::ACCEPT,
            "application/json; version=10".parse().unwrap(),
        );
        assert_eq!(requested_version(&h), 10);
        assert!(parse_date("2024-05-01").is_ok());
        assert!(parse_date("2024-05-01T10:00:00Z").is_ok());
        assert!(parse_date("2024-05-01T10:00:00+02:00").is_ok());
        assert!(parse_date("yesterday").is_err());
        assert!(parse_date("2024-13-01").is_err());
        assert_eq!(slugify("Bank Statements / 2024"), "bank-statements-2024");
    }
}
