//! Errors as `application/problem+json` (RFC 9457), each with a stable `code`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: String,
    /// Seconds, for `Retry-After` (429, 503).
    pub retry_after: Option<u64>,
    /// `WWW-Authenticate` (401).
    pub challenge: Option<&'static str>,
}

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Problem {
            status,
            code,
            detail: detail.into(),
            retry_after: (status == StatusCode::SERVICE_UNAVAILABLE).then_some(1),
            challenge: None,
        }
    }

    pub fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs.max(1));
        self
    }

    pub fn challenge(mut self, value: &'static str) -> Self {
        self.challenge = Some(value);
        self
    }

    pub fn bad_request(code: &'static str, detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, detail)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what} does not exist"),
        )
    }

    pub fn internal(e: anyhow::Error) -> Self {
        tracing::error!(error = %format!("{e:#}"), "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("{e:#}"),
        )
    }
}

/// `limit` in `1..=max`, `default` when absent.
pub fn limit_param(given: Option<usize>, default: usize, max: usize) -> Result<usize, Problem> {
    let limit = given.unwrap_or(default);
    if (1..=max).contains(&limit) {
        Ok(limit)
    } else {
        Err(Problem::bad_request(
            "invalid_parameter",
            format!("limit must be between 1 and {max}"),
        ))
    }
}

/// A keyset `cursor` this server gave out (a row number), if one is given.
pub fn cursor_param(given: Option<&str>) -> Result<Option<i64>, Problem> {
    match given.filter(|c| !c.is_empty()) {
        None => Ok(None),
        Some(c) => c.parse::<i64>().map(Some).map_err(|_| {
            Problem::bad_request(
                "invalid_parameter",
                "cursor is not one this server gave out",
            )
        }),
    }
}

impl From<anyhow::Error> for Problem {
    fn from(e: anyhow::Error) -> Self {
        if e.is::<docpipe_actors::Unavailable>() {
            return Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            );
        }
        Problem::internal(e)
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = json!({
            "type": format!("urn:docpipe:problem:{}", self.code),
            "title": self.status.canonical_reason().unwrap_or("Error"),
            "status": self.status.as_u16(),
            "code": self.code,
            "detail": self.detail,
        });
        let mut response = (
            self.status,
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
