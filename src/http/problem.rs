//! Errors as `application/problem+json` (RFC 9457), each with a stable `code`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use docpipe_actors::{Code, EngineError, StoreUnavailable};
use serde_json::json;

#[derive(Debug)]
pub struct Problem {
    pub code: Code,
    pub detail: String,
    /// Seconds, for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate` (401).
    pub challenge: Option<&'static str>,
    /// The request field the problem is about: the body also carries
    /// `{"<field>": ["<detail>"]}`, the shape Django REST framework gives
    /// validation errors, which Paperless clients read.
    pub field: Option<String>,
    /// More members of the body (e.g. `citations`).
    pub extra: Option<Box<serde_json::Map<String, serde_json::Value>>>,
}

impl Problem {
    /// A problem with this code; its HTTP status comes from the registry
    /// of codes (`docpipe_actors::errors`).
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        Problem {
            code,
            detail: detail.into(),
            retry_after: (code.http_status() == 503).then_some(1),
            challenge: None,
            field: None,
            extra: None,
        }
    }

    /// One more member of the body.
    pub fn with(mut self, key: &str, value: serde_json::Value) -> Self {
        self.extra
            .get_or_insert_with(Default::default)
            .insert(key.to_string(), value);
        self
    }

    /// The problem is about this request field (see [`Problem::field`]).
    pub fn on_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn challenge(mut self, value: &'static str) -> Self {
        self.challenge = Some(value);
        self
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(Code::NotFound, format!("{what} does not exist"))
    }

    /// An internal failure: logged in full (the log line carries the
    /// request id), answered without its detail.
    pub fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %format!("{e:#}"), "request failed");
        Self::new(
            Code::Internal,
            "an internal error occurred; the server's log has the details under this response's X-Request-Id",
        )
    }
}

/// `limit` in `1..=max`, `default` when absent.
pub fn limit_param(given: Option<usize>, default: usize, max: usize) -> Result<usize, Problem> {
    let limit = given.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::new(
            Code::InvalidParameter,
            format!("limit must be between 1 and {max}"),
        ))
    }
}

/// A keyset `cursor` this server gave out (a row number), if one is given.
pub fn cursor_param(given: Option<&str>) -> Result<Option<i64>, Problem> {
    match given.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c) => c.parse::<i64>().map(Some).map_err(|_| {
            Problem::new(
                Code::InvalidParameter,
                "cursor is not one this server gave out",
            )
        }),
    }
}

impl From<EngineError> for Problem {
    fn from(e: EngineError) -> Self {
        match e.code {
            Code::Internal => Problem::internal(e.message),
            code => Problem::new(code, e.message),
        }
    }
}

impl From<anyhow::Error> for Problem {
    fn from(e: anyhow::Error) -> Self {
        if let Some(u) = e.downcast_ref::<StoreUnavailable>() {
            return unavailable_store(u);
        }
        match e.downcast::<EngineError>() {
            Ok(e) => e.into(),
            Err(e) => Problem::internal(format!("{e:#}")),
        }
    }
}

/// `503` with `Retry-After` while the blob store is away.
fn unavailable_store(u: &StoreUnavailable) -> Problem {
    Problem::new(Code::StorageUnavailable, u.to_string()).retry_after(u.retry_after.as_secs())
}

/// A failure to store an upload: `503` while a remote store is away, else
/// `507` (the disk).
pub fn storage_problem(e: anyhow::Error) -> Problem {
    match e.downcast_ref::<StoreUnavailable>() {
        Some(u) => unavailable_store(u),
        None => Problem::new(
            Code::StorageFailed,
            format!("cannot store the upload: {e:#}"),
        ),
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut body = json!({
            "type": format!("urn:docpipe:problem:{}", self.code),
            "title": self.status().canonical_reason().unwrap_or("Error"),
            "status": self.status().as_u16(),
            "code": self.code,
            "detail": self.detail,
        });
        for (k, v) in self.extra.iter().flat_map(|m| m.iter()) {
            if body.get(k).is_none() {
                body[k] = v.clone();
            }
        }
        if let Some(f) = &self.field {
            // (A field named like a member of the problem itself keeps the
            // problem's member.)
            if body.get(f).is_none() {
                body[f] = json!([self.detail]);
            }
        }
        let mut response = (
            self.status(),
            [(header::CONTENT_TYPE, "application/problem+json")],
            body.to_string(),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        if let Some(c) = self.challenge {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static(c),
            );
        }
        response
    }
}
