//! The gateway: axum layers every request passes before a handler.
//!
//! - [`request_id`]: takes the client's `X-Request-Id` (if it is sane) or
//!   makes one, returns it, and puts it on the request's log span; handlers
//!   pass it to the engine, which writes it into the events (the correlation
//!   id of the audit trail and of the document's pipeline events).
//! - [`require`]: on every route but the health checks: the token (Bearer,
//!   Paperless's `Token`, or the password of HTTP Basic for browsers), the
//!   per-token and per-client-IP rate limits, and the route's role.
//! - [`security_headers`]: `nosniff` everywhere, and a strict CSP on HTML.

use docpipe_actors::Code;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use axum::extract::{ConnectInfo, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use tracing::Instrument;

use super::auth::{Principal, Role};
use super::problem::Problem;
use super::AppState;

/// The request's correlation id.
#[derive(Clone, Debug)]
pub struct RequestId(pub Arc<str>);

pub const REQUEST_ID: &str = "x-request-id";

fn sane_request_id(v: &str) -> bool {
    (1..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id: Arc<str> = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| sane_request_id(v))
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from(uuid::Uuid::now_v7().simple().to_string()));
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        method = %req.method(),
        path = %req.uri().path(),
        token_id = tracing::field::Empty
    );
    let mut resp = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// What a handler knows of its caller.
#[derive(Clone, Debug)]
pub struct Caller {
    pub principal: Principal,
    pub request_id: Arc<str>,
}

impl Caller {
    pub fn origin(&self) -> docpipe_actors::Origin {
        self.principal.origin(&self.request_id)
    }

    pub fn scope(&self) -> docpipe_actors::Scope {
        self.principal.scope()
    }

    /// `403 workspace_forbidden` unless the token may read the workspace.
    pub fn may_read(&self, workspace: &str) -> Result<(), Problem> {
        if self.principal.may_use(workspace) {
            Ok(())
        } else {
            Err(Problem::new(
                docpipe_actors::Code::WorkspaceForbidden,
                format!("this token may not read workspace {workspace:?}"),
            ))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let principal = parts
            .extensions
            .get::<Principal>()
            .cloned()
            .ok_or_else(|| Problem::internal(anyhow::anyhow!("route without the token check")))?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_else(|| Arc::from("-"));
        Ok(Caller {
            principal,
            request_id,
        })
    }
}

/// Rate limits from `[rate_limit]`; a rate of 0 switches that limit off.
pub struct Limits {
    per_token: Option<DefaultKeyedRateLimiter<String>>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(
    per_second: u32,
    burst: u32,
) -> Option<DefaultKeyedRateLimiter<K>> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Some(RateLimiter::keyed(
        Quota::per_second(rate).allow_burst(burst),
    ))
}

impl Limits {
    pub fn new(c: &crate::config::RateLimitConfig) -> Limits {
        Limits {
            per_token: limiter(c.per_token_per_second, c.per_token_burst),
            per_ip: limiter(c.per_ip_per_second, c.per_ip_burst),
        }
    }

    /// Forgets idle keys; called now and then so the tables stay small.
    pub fn shrink(&self) {
        if let Some(l) = &self.per_token {
            l.retain_recent();
        }
        if let Some(l) = &self.per_ip {
            l.retain_recent();
        }
    }
}

fn check<K: std::hash::Hash + Eq + Clone>(
    l: &Option<DefaultKeyedRateLimiter<K>>,
    key: &K,
    what: &str,
) -> Result<(), Problem> {
    let Some(l) = l else { return Ok(()) };
    l.check_key(key).map_err(|not_until| {
        let wait = not_until.wait_time_from(DefaultClock::default().now());
        Problem::new(
            Code::RateLimited,
            format!("too many requests from this {what}; try again later"),
        )
        .retry_after(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
    })
}

/// A failed or missing token (or a failed sign-in) counts against the
/// client's address, which bounds how fast anyone can guess: refused once
/// the address is over its limit.
pub fn count_failure(limits: &Limits, ip: Option<IpAddr>) -> Result<(), Problem> {
    match ip {
        Some(ip) => check(&limits.per_ip, &ip, "address"),
        None => Ok(()),
    }
}

/// The secret in `Authorization`: `Bearer`, `Token` (Paperless clients), or
/// the password of `Basic` (browsers on the status page).
pub fn secret_of(parts: &axum::http::HeaderMap) -> Option<String> {
    let v = parts.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    let rest = rest.trim();
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" | "token" => Some(rest.to_string()),
        "basic" => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(rest)
                .ok()?;
            let pair = String::from_utf8(raw).ok()?;
            Some(pair.split_once(':')?.1.to_string())
        }
        _ => None,
    }
}

/// A browser's ticket (`?ticket=`), taken only by the live event routes,
/// where an `EventSource` or a WebSocket cannot send a header.
fn ticket_of(req: &Request) -> Option<String> {
    let path = req.uri().path();
    if path != "/api/v1/events/stream" && path != "/api/v1/ws" {
        return None;
    }
    req.uri().query()?.split('&').find_map(|kv| {
        kv.strip_prefix("ticket=")
            .filter(|t| !t.is_empty())
            .map(str::to_string)
    })
}

/// The address a request came from (none in tests that call the router
/// directly).
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

/// The token check of one route: `need` is the least role that may use it.
pub async fn require(
    State((app, need)): State<(AppState, Role)>,
    mut req: Request,
    next: Next,
) -> Response {
    let ip = client_ip(&req);
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    let principal = match secret_of(req.headers()) {
        Some(s) => app.auth.authenticate(&s),
        None => ticket_of(&req)
            .and_then(|t| app.subscribers.redeem(&t))
            .and_then(|id| app.auth.by_token_id(&id)),
    };
    let Some(principal) = principal else {
        if let Err(p) = count_failure(&app.limits, ip) {
            return p.into_response();
        }
        let challenge = if wants_html {
            "Basic realm=\"docpipe\", charset=\"UTF-8\""
        } else {
            "Bearer realm=\"docpipe\""
        };
        let detail = if req.headers().contains_key(header::AUTHORIZATION) {
            "the token is not valid (unknown or revoked)"
        } else {
            "this route needs a token: Authorization: Bearer <token>"
        };
        return Problem::new(Code::Unauthorized, detail)
            .challenge(challenge)
            .into_response();
    };
    if let Err(p) = check(&app.limits.per_token, &principal.token_id, "token") {
        return p.into_response();
    }
    if principal.role < need {
        return Problem::new(
            Code::Forbidden,
            format!(
                "this route needs the {} role; the token has {}",
                need.as_str(),
                principal.role.as_str()
            ),
        )
        .into_response();
    }
    tracing::Span::current().record("token_id", principal.token_id.as_str());
    req.extensions_mut().insert(principal);
    next.run(req).await
}

/// The status page's inline script and style, allowed by their hashes.
static STATUS_PAGE_CSP: LazyLock<String> = LazyLock::new(|| {
    let page = super::STATUS_PAGE;
    let hash_of = |open: &str, close: &str| -> String {
        let start = page
            .find(open)
            .and_then(|i| page[i..].find('>').map(|j| i + j + 1));
        let body = start.and_then(|s| page[s..].find(close).map(|e| &page[s..s + e]));
        let digest = Sha256::digest(body.unwrap_or("").as_bytes());
        format!(
            "'sha256-{}'",
            base64::engine::general_purpose::STANDARD.encode(digest)
        )
    };
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
         base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        hash_of("<script", "</script>"),
        hash_of("<style", "</style>")
    )
});

pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    let html = h
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if html {
        h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        if let Ok(v) = HeaderValue::from_str(&STATUS_PAGE_CSP) {
            h.insert(header::CONTENT_SECURITY_POLICY, v);
        }
    }
    resp
}

/// Forgets idle rate-limit keys every minute.
pub fn spawn_limit_janitor(limits: Arc<Limits>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(60));
        loop {
            tick.tick().await;
            limits.shrink();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_come_from_bearer_token_and_basic() {
        let mut h = axum::http::HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(secret_of(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, "Token abc".parse().unwrap());
        assert_eq!(secret_of(&h).as_deref(), Some("abc"));
        let basic = base64::engine::general_purpose::STANDARD.encode("me:abc");
        h.insert(
            header::AUTHORIZATION,
            format!("Basic {basic}").parse().unwrap(),
        );
        assert_eq!(secret_of(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, "Digest x".parse().unwrap());
        assert_eq!(secret_of(&h), None);
    }

    #[test]
    fn request_ids_are_bounded_and_plain() {
        assert!(sane_request_id("abc-123_x.y:z"));
        assert!(!sane_request_id(""));
        assert!(!sane_request_id("a b"));
        assert!(!sane_request_id(&"a".repeat(129)));
    }

    #[test]
    fn the_status_page_csp_allows_exactly_its_inline_code() {
        let csp = &*STATUS_PAGE_CSP;
        assert_eq!(csp.matches("'sha256-").count(), 2, "{csp}");
        assert!(!csp.contains("unsafe-inline"));
    }
}
