//! `/api/v1/documents`: upload (streamed), read, list, delete, retry.

use axum::body::Body;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use docpipe_actors::Code;
use docpipe_actors::{sniff, Sniffed};
use docpipe_actors::{Flag, ListFilter};
use docpipe_actors::{NewDocument, RetryOutcome, Stage};
use docpipe_actors::{Upload, HEAD_BYTES};
use futures::TryStreamExt;
use serde::Deserialize;
use serde_json::json;

use super::gateway::Caller;
use super::problem::Problem;
use super::AppState;
use docpipe_actors::{clean_filename, valid_workspace};
use docpipe_actors::{Edit, EditResult, LabelKind, UploadExtras, UserField};

/// Past the limit we keep reading (and discarding) this much more, so that the
/// client is still listening when the 413 arrives.
const DRAIN_AFTER_LIMIT_BYTES: u64 = 64 * 1024 * 1024;

pub async fn upload(
    State(app): State<AppState>,
    caller: Caller,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, Problem> {
    let _slot = upload_slot(&app)?;
    let form = receive(&app, multipart, "file").await?;
    let mut staged = form.staged;
    let workspace = match resolve_workspace(&caller, form.fields.workspace.clone()) {
        Ok(w) => w,
        Err(p) => {
            discard_all(&app, &staged).await;
            return Err(p);
        }
    };
    let extra = match upload_labels(&app, &caller, &form.fields, &workspace).await {
        Ok(x) => x,
        Err(p) => {
            discard_all(&app, &staged).await;
            return Err(p);
        }
    };
    for d in &mut staged {
        d.workspace = workspace.clone();
        if let Some(t) = &form.fields.title {
            d.title = Some(t.clone());
        }
        d.extra.tags = extra.tags.clone();
        d.extra.doc_date = extra.doc_date.clone();
    }
    let registered = app.pipeline.register(staged, &caller.origin()).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "documents": registered })),
    )
        .into_response())
}

/// The upload's `tags` (names: a tag of the workspace, made if there is
/// none) and `created` (the documents' date).
async fn upload_labels(
    app: &AppState,
    caller: &Caller,
    f: &FormFields,
    workspace: &str,
) -> Result<UploadExtras, Problem> {
    let mut x = UploadExtras::default();
    for name in &f.tags {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 128 {
            return Err(Problem::new(
                Code::InvalidField,
                format!("tags: {name:?} is not a tag name (1 to 128 characters)"),
            )
            .on_field("tags"));
        }
        let (id, _) = app
            .pipeline
            .create_label(LabelKind::Tag, workspace, name, None, &caller.origin())
            .await?;
        if !x.tags.contains(&id) {
            x.tags.push(id);
        }
    }
    if let Some(c) = &f.created {
        x.doc_date = Some(super::paperless::parse_date(c)?);
    }
    Ok(x)
}

/// One of the `server.max_concurrent_uploads` upload slots, or a 503.
pub fn upload_slot(app: &AppState) -> Result<tokio::sync::OwnedSemaphorePermit, Problem> {
    app.uploads.clone().try_acquire_owned().map_err(|_| {
        Problem::new(
            Code::TooManyUploads,
            "the server is reading as many uploads as it may at once (server.max_concurrent_uploads); try again shortly",
        )
    })
}

/// The workspace an upload goes to: the one it names, if the token may use
/// it, else the token's default.
pub fn resolve_workspace(caller: &Caller, named: Option<String>) -> Result<String, Problem> {
    match named {
        None => Ok(caller.principal.default_workspace().to_string()),
        Some(w) if !valid_workspace(&w) => Err(Problem::new(
            Code::InvalidWorkspace,
            format!("workspace {w:?} is not a valid name (a-z, 0-9, '-' and '_', at most 64)"),
        )),
        Some(w) if !caller.principal.may_use(&w) => Err(Problem::new(
            Code::WorkspaceForbidden,
            format!("this token may not upload to workspace {w:?}"),
        )),
        Some(w) => Ok(w),
    }
}

/// An upload form, read: its files staged in the blob store (not registered
/// yet), and its other fields.
pub struct Received {
    pub staged: Vec<NewDocument>,
    pub fields: FormFields,
}

/// Reads a multipart upload whose files are in parts named `file_part`. On
/// any error nothing stays staged.
pub async fn receive(
    app: &AppState,
    multipart: Result<Multipart, MultipartRejection>,
    file_part: &str,
) -> Result<Received, Problem> {
    let mut multipart = multipart.map_err(|e| {
        Problem::new(
            Code::NotMultipart,
            format!("expected multipart/form-data with parts named {file_part:?}: {e}"),
        )
    })?;
    let mut staged: Vec<NewDocument> = Vec::new();
    let mut fields = FormFields::default();
    let mut total = 0u64;
    let result = read_parts(
        app,
        &mut multipart,
        file_part,
        &mut staged,
        &mut fields,
        &mut total,
    )
    .await;
    if let Err(problem) = result {
        discard_all(app, &staged).await;
        if problem.code == Code::PayloadTooLarge {
            drain(&mut multipart, total + DRAIN_AFTER_LIMIT_BYTES).await;
        }
        return Err(problem);
    }
    if staged.is_empty() {
        return Err(Problem::new(
            Code::NoFile,
            format!("the request has no part named {file_part:?}"),
        ));
    }
    Ok(Received { staged, fields })
}

pub async fn discard_all(app: &AppState, staged: &[NewDocument]) {
    for d in staged {
        app.pipeline.discard_upload(&d.id).await;
    }
}

/// The form's fields other than the files (text, at most 1,000 characters
/// each, control characters removed). Repeated fields collect in `tags`.
#[derive(Default)]
pub struct FormFields {
    pub title: Option<String>,
    pub workspace: Option<String>,
    /// Paperless-ngx form fields.
    pub created: Option<String>,
    pub document_type: Option<String>,
    pub tags: Vec<String>,
    pub archive_serial_number: Option<String>,
    pub correspondent: Option<String>,
    /// Paperless's `custom_fields`: field ids (one part each, or a list), or
    /// one JSON object of ids to values.
    pub custom_fields: Vec<String>,
}

async fn read_parts(
    app: &AppState,
    multipart: &mut Multipart,
    file_part: &str,
    staged: &mut Vec<NewDocument>,
    fields: &mut FormFields,
    total: &mut u64,
) -> Result<(), Problem> {
    while let Some(field) = multipart.next_field().await.map_err(bad_multipart)? {
        let name = field.name().unwrap_or("").to_string();
        if name == file_part {
            let raw = field
                .file_name()
                .map(str::to_string)
                .or_else(|| extended_filename(field.headers()))
                .unwrap_or_default();
            let filename = clean_filename(&raw);
            let (id, up) = app.pipeline.begin_upload();
            match stream_file(app, field, up, &filename, total).await {
                Ok((mime, staged_blob)) => staged.push(NewDocument {
                    id,
                    workspace: String::new(), // set once the whole form is read
                    filename,
                    title: None,
                    mime: mime.to_string(),
                    size: staged_blob.size,
                    sha256: staged_blob.sha256,
                    inline: staged_blob.inline,
                    extra: Default::default(),
                }),
                Err(p) => return Err(p),
            }
        } else if FIELDS.contains(&name.as_str()) {
            let text = field.text().await.map_err(bad_multipart)?;
            let limit = if name == "custom_fields" {
                64 * 1024
            } else {
                1000
            };
            let clean: String = text
                .chars()
                .filter(|c| !c.is_control())
                .take(limit)
                .collect();
            let value = Some(clean.trim().to_string()).filter(|t| !t.is_empty());
            match name.as_str() {
                "title" => fields.title = value,
                "workspace" => fields.workspace = value,
                "created" => fields.created = value,
                "document_type" => fields.document_type = value,
                "tags" => fields.tags.extend(value),
                "archive_serial_number" => fields.archive_serial_number = value,
                "correspondent" => fields.correspondent = value,
                "custom_fields" => fields.custom_fields.extend(value),
                _ => {}
            }
        } else {
            // Unknown parts (and Paperless's storage_path, which docpipe
            // has no place for) are read and ignored.
            let mut f = field;
            while f.chunk().await.map_err(bad_multipart)?.is_some() {}
        }
    }
    Ok(())
}

const FIELDS: &[&str] = &[
    "title",
    "workspace",
    "created",
    "document_type",
    "tags",
    "archive_serial_number",
    "correspondent",
    "custom_fields",
];

/// Streams one file part into the blob store, rejecting it as soon as its
/// first bytes show a type docpipe does not read, or the request grows past
/// the limit.
async fn stream_file(
    app: &AppState,
    mut field: Field<'_>,
    mut up: Upload,
    filename: &str,
    total: &mut u64,
) -> Result<(&'static str, docpipe_actors::Staged), Problem> {
    let max = app.max_upload_bytes;
    let mut mime: Option<&'static str> = None;
    loop {
        let chunk = match field.chunk().await {
            Ok(Some(c)) => c,
            Ok(None) => break,
            Err(e) => {
                up.abort().await;
                return Err(bad_multipart(e));
            }
        };
        *total += chunk.len() as u64;
        if *total > max {
            up.abort().await;
            return Err(Problem::new(
                Code::PayloadTooLarge,
                format!(
                    "the upload is larger than the limit of {max} bytes (server.max_upload_bytes)"
                ),
            ));
        }
        if let Err(e) = up.write(&chunk).await {
            up.abort().await;
            return Err(super::problem::storage_problem(e));
        }
        if mime.is_none() && up.head().len() >= HEAD_BYTES {
            match check_type(up.head(), filename) {
                Ok(m) => mime = Some(m),
                Err(p) => {
                    up.abort().await;
                    return Err(p);
                }
            }
        }
    }
    let mime = match mime {
        Some(m) => m,
        None => match check_type(up.head(), filename) {
            Ok(m) => m,
            Err(p) => {
                up.abort().await;
                return Err(p);
            }
        },
    };
    let staged = up.finish().await.map_err(super::problem::storage_problem)?;
    Ok((mime, staged))
}

fn check_type(head: &[u8], filename: &str) -> Result<&'static str, Problem> {
    match sniff(head, filename) {
        Sniffed::Supported(m) => Ok(m),
        Sniffed::Empty => Err(Problem::new(
            Code::EmptyDocument,
            format!("{filename:?} is empty"),
        )),
        Sniffed::Unsupported(t) => Err(Problem::new(
            Code::UnsupportedMediaType,
            format!("{filename:?} looks like {t}, which docpipe does not read; it reads PDF, Word (DOCX), PowerPoint (PPTX), Excel (XLSX, XLS), OpenDocument (ODT, ODS, ODP), RTF, e-mail (.eml), HTML, Markdown and plain text"),
        )),
    }
}

async fn drain(multipart: &mut Multipart, budget: u64) {
    let mut seen = 0u64;
    while let Ok(Some(mut f)) = multipart.next_field().await {
        while let Ok(Some(c)) = f.chunk().await {
            seen += c.len() as u64;
            if seen > budget {
                return;
            }
        }
    }
}

fn bad_multipart(e: axum::extract::multipart::MultipartError) -> Problem {
    Problem::new(
        if e.status().as_u16() == 413 {
            Code::PayloadTooLarge
        } else {
            Code::BadMultipart
        },
        format!("the multipart body could not be read: {}", e.body_text()),
    )
}

/// RFC 5987's `filename*=charset''percent-encoded` of a part's
/// Content-Disposition (the multipart parser reads only `filename=`).
fn extended_filename(headers: &axum::http::HeaderMap) -> Option<String> {
    let cd = headers.get(header::CONTENT_DISPOSITION)?.to_str().ok()?;
    let value = cd
        .split(';')
        .map(str::trim)
        .find_map(|p| p.strip_prefix("filename*="))?
        .trim_matches('"');
    let (charset, rest) = value.split_once('\'')?;
    let (_lang, encoded) = rest.split_once('\'')?;
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut it = encoded.bytes();
    while let Some(b) = it.next() {
        if b == b'%' {
            let hex = [it.next()?, it.next()?];
            bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
        } else {
            bytes.push(b);
        }
    }
    Some(if charset.eq_ignore_ascii_case("iso-8859-1") {
        bytes.iter().map(|&b| b as char).collect()
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The document with this id, or a 404.
/// The document with this id in the caller's workspaces, or a 404 (also for
/// another workspace's documents: their existence is not revealed).
async fn find(
    app: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<docpipe_actors::Document, Problem> {
    app.pipeline
        .reader()
        .get(id, &caller.scope())
        .await?
        .ok_or_else(|| Problem::not_found("document"))
}

pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let doc = find(&app, &caller, &id).await?;
    let (children, parents) = app.pipeline.reader().links(&id, &caller.scope()).await?;
    let (tags, date) = app
        .pipeline
        .reader()
        .tags_and_date(&id, &caller.scope())
        .await?
        .ok_or_else(|| Problem::not_found("document"))?;
    let mut v = serde_json::to_value(&doc).map_err(Problem::internal)?;
    v["tags"] = tags
        .into_iter()
        .map(|(id, name)| json!({"id": id, "name": name}))
        .collect();
    v["created"] = json!(date);
    v["attachments"] = children
        .into_iter()
        .map(|(id, filename)| json!({"id": id, "filename": filename}))
        .collect();
    v["attached_to"] = json!(parents);
    Ok(Json(v).into_response())
}

pub async fn text(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    let doc = find(&app, &caller, &id).await?;
    match app.pipeline.reader().text(&id, &caller.scope()).await? {
        Some(t) => Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], t).into_response()),
        None => Err(Problem::new(
            Code::NotExtracted,
            format!(
                "the document's text is not extracted yet (stage {})",
                doc.stage
            ),
        )),
    }
}

pub async fn events(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    find(&app, &caller, &id).await?;
    let events = app.pipeline.reader().events(&id, &caller.scope()).await?;
    Ok(Json(json!({ "events": events })).into_response())
}

#[derive(Deserialize)]
pub struct SimilarParams {
    limit: Option<usize>,
}

pub async fn similar(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Result<Query<SimilarParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = params.map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))?;
    let limit = p.limit.unwrap_or(10);
    if !(1..=100).contains(&limit) {
        return Err(Problem::new(
            Code::InvalidParameter,
            "limit must be between 1 and 100",
        ));
    }
    match app
        .pipeline
        .reader()
        .similar(&id, limit, &caller.scope())
        .await?
    {
        Some(hits) => Ok(Json(json!({ "hits": hits })).into_response()),
        None => Err(Problem::not_found("document")),
    }
}

pub async fn content(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    original(&app, &id, &caller.scope()).await
}

/// The original of a document of the scope, as a download (or a 404).
pub async fn original(
    app: &AppState,
    id: &str,
    scope: &docpipe_actors::Scope,
) -> Result<Response, Problem> {
    let (doc, stream) = app
        .pipeline
        .reader()
        .content(id, scope)
        .await?
        .ok_or_else(|| Problem::not_found("document"))?;
    let body = Body::from_stream(stream.map_err(std::io::Error::other));
    Ok((
        [
            (header::CONTENT_TYPE, doc.mime.clone()),
            (header::CONTENT_LENGTH, doc.size.to_string()),
            // An HTML original opened from here must not run as this origin.
            (header::CONTENT_SECURITY_POLICY, "sandbox".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename*=UTF-8''{}",
                    percent_encode(&doc.filename)
                ),
            ),
        ],
        body,
    )
        .into_response())
}

pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
pub struct ListParams {
    stage: Option<String>,
    doc_type: Option<String>,
    /// The issuer's name, exactly (the `issuer` field).
    issuer: Option<String>,
    /// `needs_review`, `needs_ocr` or `needs_llm`.
    flag: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    params: Result<Query<ListParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = params.map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))?;
    let stage = match p.stage.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => match Stage::parse(s).filter(|s| Stage::VISIBLE.contains(s)) {
            Some(stage) => Some(stage),
            None => {
                return Err(Problem::new(
                    Code::InvalidParameter,
                    format!(
                        "stage {s:?} is not one of queued, extracted, classified, enriched, indexed, failed"
                    ),
                ))
            }
        },
    };
    let limit = super::problem::limit_param(p.limit, 50, 1000)?;
    let after_seq = super::problem::cursor_param(p.cursor.as_deref())?;
    let flag = match p.flag.as_deref().filter(|f| !f.is_empty()) {
        None => None,
        Some(f) => Some(Flag::parse(f).ok_or_else(|| {
            Problem::new(
                Code::InvalidParameter,
                format!("flag {f:?} is not one of needs_review, needs_ocr, needs_llm"),
            )
        })?),
    };
    let filter = ListFilter {
        scope: Some(caller.scope()),
        stage,
        doc_type: p.doc_type.filter(|t| !t.is_empty()),
        issuer: p.issuer.filter(|t| !t.is_empty()),
        flag,
        limit,
        after_seq,
    };
    let (docs, next) = app.pipeline.reader().list(filter).await?;
    Ok(
        Json(json!({ "documents": docs, "next_cursor": next.map(|n| n.to_string()) }))
            .into_response(),
    )
}

/// `PATCH /api/v1/documents/{id}`: `{"title", "doc_type", "tags" (ids),
/// "created" (the document's date), "fields"}`, each optional; `null`
/// clears. Answers the document as it is now.
pub async fn edit(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    let Json(body) = body.map_err(|e| Problem::new(Code::InvalidBody, e.body_text()))?;
    let obj = body
        .as_object()
        .ok_or_else(|| Problem::new(Code::InvalidBody, "expected a JSON object"))?;
    let mut e = Edit::default();
    for (k, v) in obj {
        match k.as_str() {
            "title" => e.title = Some(optional_text(v, "title", 1000)?),
            "doc_type" => e.doc_type = Some(optional_text(v, "doc_type", 100)?),
            "tags" => e.tags = Some(id_list(v, "tags")?),
            "fields" => e.fields = Some(user_fields(&app, v)?),
            "created" => {
                e.doc_date = Some(match optional_text(v, "created", 40)? {
                    None => None,
                    Some(t) => Some(super::paperless::parse_date(&t)?),
                })
            }
            other => {
                return Err(Problem::new(
                    Code::InvalidBody,
                    format!(
                    "unknown field {other:?}; a document's title, doc_type, tags, created and fields can be changed"
                ),
                ))
            }
        }
    }
    apply_edit(&app, &caller, &id, e).await?;
    let doc = find(&app, &caller, &id).await?;
    Ok(Json(doc).into_response())
}

/// `{"name": "value" | {"value", "currency"} | null, …}`: each value is
/// checked against its field's kind (400 `invalid_field` naming it).
fn user_fields(
    app: &AppState,
    v: &serde_json::Value,
) -> Result<Vec<(String, Option<UserField>)>, Problem> {
    let bad = |m: String| Problem::new(Code::InvalidField, m);
    let obj = v.as_object().ok_or_else(|| {
        bad(
            "fields: expected an object of field names and values, e.g. {\"total\": \"12.50\"}"
                .into(),
        )
    })?;
    let mut out = Vec::new();
    for (name, value) in obj {
        if name.is_empty()
            || name.len() > 64
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        {
            return Err(bad(format!(
                "fields: {name:?} is not a field name (lower-case letters, digits and _)"
            )));
        }
        let (raw, currency) = match value {
            serde_json::Value::Null => {
                out.push((name.clone(), None));
                continue;
            }
            serde_json::Value::String(s) => (s.clone(), None),
            serde_json::Value::Number(n) => (n.to_string(), None),
            serde_json::Value::Object(o) => (
                o.get("value")
                    .and_then(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .or_else(|| v.as_number().map(|n| n.to_string()))
                    })
                    .ok_or_else(|| bad(format!("fields.{name}: expected a \"value\"")))?,
                o.get("currency")
                    .and_then(|c| c.as_str())
                    .map(str::to_string),
            ),
            _ => {
                return Err(bad(format!(
                    "fields.{name}: expected a string, a number, an object or null"
                )))
            }
        };
        let kind = app.pipeline.reader().field_kind(name);
        let (value, currency) = docpipe_actors::normalize(kind, &raw, currency.as_deref())
            .map_err(|e| bad(format!("fields.{name}: {e}")))?;
        out.push((
            name.clone(),
            Some(UserField {
                kind,
                value,
                currency,
            }),
        ));
    }
    Ok(out)
}

/// Runs an edit; 404 for a document outside the scope, 400 for a foreign tag.
pub async fn apply_edit(app: &AppState, caller: &Caller, id: &str, e: Edit) -> Result<(), Problem> {
    match app
        .pipeline
        .edit(id, &caller.scope(), e, &caller.origin())
        .await?
    {
        EditResult::Edited(_) => Ok(()),
        EditResult::NotFound => Err(Problem::not_found("document")),
        EditResult::UnknownTag(t) => Err(Problem::new(
            Code::InvalidField,
            format!("tags: there is no {t} in this document's workspace"),
        )
        .on_field("tags")),
    }
}

/// A string or null, trimmed, without control characters.
pub fn optional_text(
    v: &serde_json::Value,
    field: &str,
    max: usize,
) -> Result<Option<String>, Problem> {
    match v {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => {
            let t: String = s.chars().filter(|c| !c.is_control()).collect();
            let t = t.trim();
            if t.chars().count() > max {
                return Err(Problem::new(
                    Code::InvalidBody,
                    format!("{field} is longer than {max} characters"),
                )
                .on_field(field));
            }
            Ok(Some(t.to_string()).filter(|t| !t.is_empty()))
        }
        _ => Err(Problem::new(
            Code::InvalidBody,
            format!("{field} must be a string or null"),
        )
        .on_field(field)),
    }
}

/// A list of non-negative integer ids.
pub fn id_list(v: &serde_json::Value, field: &str) -> Result<Vec<i64>, Problem> {
    v.as_array()
        .and_then(|a| {
            a.iter()
                .map(|x| x.as_i64().filter(|n| *n >= 0))
                .collect::<Option<Vec<_>>>()
        })
        .ok_or_else(|| {
            Problem::new(Code::InvalidBody, format!("{field} must be a list of ids"))
                .on_field(field)
        })
}

#[derive(Deserialize)]
pub struct DeleteParams {
    /// `delete`: also delete the document's attachments that no other
    /// document holds. By default attachments stay, as documents of their own.
    attachments: Option<String>,
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    params: Result<Query<DeleteParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = params.map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))?;
    let with_attachments = match p.attachments.as_deref() {
        None | Some("keep") => false,
        Some("delete") => true,
        Some(other) => {
            return Err(Problem::new(
                Code::InvalidParameter,
                format!("attachments={other:?}: use keep (the default) or delete"),
            ))
        }
    };
    if with_attachments {
        let deleted = app
            .pipeline
            .delete_with_attachments(&id, &caller.scope(), &caller.origin())
            .await?;
        return if deleted.is_empty() {
            Err(Problem::not_found("document"))
        } else {
            Ok(StatusCode::NO_CONTENT.into_response())
        };
    }
    if app
        .pipeline
        .delete(&id, &caller.scope(), &caller.origin())
        .await?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Problem::not_found("document"))
    }
}

pub async fn retry(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    match app
        .pipeline
        .retry(&id, &caller.scope(), &caller.origin())
        .await?
    {
        RetryOutcome::Requeued(stage) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({ "id": id, "stage": stage })),
        )
            .into_response()),
        RetryOutcome::NotFound => Err(Problem::not_found("document")),
        RetryOutcome::NotFailed(stage) => Err(Problem::new(
            Code::NotFailed,
            format!("only failed documents can be retried; this one is {stage}"),
        )),
    }
}

/// `POST /api/v1/reprocess {"<flag>": true}`: sends the caller's indexed
/// documents carrying the flag through the pipeline again: `needs_ocr` (read
/// again, once OCR is installed or switched on), `needs_llm` (typed and
/// enriched while the LLM was down; `llm` is the older name), `needs_review`
/// (typed again by the classifier, which may have learnt since).
pub async fn reprocess(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    let Json(body) = body.map_err(|e| Problem::new(Code::InvalidBody, e.body_text()))?;
    let flag = body
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.iter().next())
        .filter(|(_, v)| **v == serde_json::Value::Bool(true))
        .and_then(|(k, _)| Flag::parse(if k == "llm" { "needs_llm" } else { k }))
        .ok_or_else(|| {
            Problem::new(
                Code::InvalidBody,
                "say which documents to run again: {\"needs_ocr\": true}, {\"needs_llm\": true} \
                 or {\"needs_review\": true}",
            )
        })?;
    match flag {
        Flag::Ocr if !app.pipeline.reader().ocr_available() => {
            return Err(Problem::new(
                Code::OcrUnavailable,
                "OCR is not available on this server (see ocr.reason in /api/v1/status); \
                 reading the documents again would change nothing",
            ))
        }
        Flag::Llm if !app.pipeline.reader().llm_configured() => {
            return Err(Problem::new(
                Code::LlmUnavailable,
                "no Ollama endpoint is configured ([ollama] endpoints in config.toml)",
            ))
        }
        _ => {}
    }
    let ids = app
        .pipeline
        .reprocess(flag, &caller.scope(), &caller.origin())
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "requeued": ids.len(), "ids": ids })),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_lose_paths_and_control_characters() {
        assert_eq!(clean_filename("../../etc/passwd"), "passwd");
        assert_eq!(clean_filename("C:\\x\\a.pdf"), "a.pdf");
        assert_eq!(clean_filename("a\u{0}b\nc.txt"), "abc.txt");
        assert_eq!(clean_filename(".."), "upload");
        assert_eq!(clean_filename(""), "upload");
    }

    #[test]
    fn extended_filenames_are_decoded() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            header::CONTENT_DISPOSITION,
            "form-data; name=\"file\"; filename*=UTF-8''R%C3%A9sum%C3%A9%00.pdf"
                .parse()
                .unwrap(),
        );
        assert_eq!(extended_filename(&h).as_deref(), Some("Résumé\0.pdf"));
        assert_eq!(clean_filename("Résumé\0.pdf"), "Résumé.pdf");
        h.insert(
            header::CONTENT_DISPOSITION,
            "form-data; filename*=iso-8859-1'en'caf%E9.txt"
                .parse()
                .unwrap(),
        );
        assert_eq!(extended_filename(&h).as_deref(), Some("café.txt"));
    }
}
