//! What the Paperless-ngx mobile apps call to sign in and to start: they
//! sign in with a user name and a password at `POST /api/token/`, then read
//! the user, its settings and permissions, the profile, the statistics and
//! the remote version. docpipe has tokens, not users: any user name with a
//! docpipe token as the password signs in, and the answer is that same
//! token (none is ever minted here). A wrong one is refused as DRF refuses
//! it, and counts against the client's address like a bad token.

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use docpipe_actors::LabelKind;
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::auth::{Principal, Role, CONFIGURED_ADMIN_ID};
use super::gateway::{client_ip, count_failure, secret_of, Caller};
use super::paperless::reply;
use super::problem::Problem;
use super::AppState;

/// A sign-in form is a few short fields; anything longer is not one.
const MAX_FORM_BYTES: usize = 16 * 1024;

#[derive(Deserialize, Default)]
struct Credentials {
    username: Option<String>,
    password: Option<String>,
}

/// DRF's answer to a form it does not accept: each field's messages.
fn drf_invalid(v: Value) -> Response {
    reply(StatusCode::BAD_REQUEST, v)
}

/// `POST /api/token/`: JSON or a form, `username` and `password` (a token).
pub async fn obtain_token(State(app): State<AppState>, req: Request) -> Response {
    let ip = client_ip(&req);
    let json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().starts_with("application/json"));
    let body: Bytes = match axum::body::to_bytes(req.into_body(), MAX_FORM_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return drf_invalid(json!({"non_field_errors": ["The sign-in form is too large."]}))
        }
    };
    let parsed: Result<Credentials, String> = if json {
        serde_json::from_slice(&body).map_err(|e| e.to_string())
    } else {
        serde_urlencoded::from_bytes(&body).map_err(|e| e.to_string())
    };
    let creds = match parsed {
        Ok(c) => c,
        Err(e) => return drf_invalid(json!({"detail": format!("JSON parse error - {e}")})),
    };
    let required = json!(["This field is required."]);
    let blank = |f: &Option<String>| f.as_deref().is_none_or(|s| s.trim().is_empty());
    match (blank(&creds.username), blank(&creds.password)) {
        (true, true) => return drf_invalid(json!({"username": required, "password": required})),
        (true, false) => return drf_invalid(json!({"username": required})),
        (false, true) => return drf_invalid(json!({"password": required})),
        (false, false) => {}
    }
    let password = creds.password.unwrap_or_default();
    if app.auth.authenticate(password.trim()).is_none() {
        if let Err(p) = count_failure(&app.limits, ip) {
            return p.into_response();
        }
        return drf_invalid(
            json!({"non_field_errors": ["Unable to log in with provided credentials."]}),
        );
    }
    reply(StatusCode::OK, json!({"token": password.trim()}))
}

/// A Paperless user id for a token: stable, positive, from the token's id.
fn user_id(p: &Principal) -> u64 {
    let d = Sha256::digest(p.token_id.as_bytes());
    1 + (u64::from(d[0]) << 16 | u64::from(d[1]) << 8 | u64::from(d[2]))
}

/// The user name shown for a token: its name.
pub(super) async fn user_name(app: &AppState, p: &Principal) -> Result<String, Problem> {
    if p.token_id == CONFIGURED_ADMIN_ID {
        return Ok("admin".into());
    }
    let rows = app.pipeline.reader().tokens().await?;
    Ok(rows
        .into_iter()
        .find(|r| r.id == p.token_id)
        .map_or_else(|| p.token_id.clone(), |r| r.name))
}

/// Paperless's permission names for what a role may do (`view_document`…).
fn permissions(role: Role) -> Vec<String> {
    let read_only = [
        "document",
        "tag",
        "documenttype",
        "correspondent",
        "customfield",
        "note",
        "paperlesstask",
        "uisettings",
    ];
    let editable = [
        "document",
        "tag",
        "documenttype",
        "correspondent",
        "customfield",
        "note",
    ];
    let admin_only = ["user", "group", "storagepath", "savedview"];
    let mut out: Vec<String> = read_only.iter().map(|m| format!("view_{m}")).collect();
    if role >= Role::Editor {
        for m in editable {
            for a in ["add", "change", "delete"] {
                out.push(format!("{a}_{m}"));
            }
        }
        out.push("change_uisettings".into());
    }
    if role == Role::Admin {
        for m in admin_only {
            for a in ["view", "add", "change", "delete"] {
                let p = format!("{a}_{m}");
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// `GET /api/ui_settings/`: the user, the settings the apps read, and the
/// permissions of the token's role.
pub async fn ui_settings(State(app): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    let p = &caller.principal;
    let admin = p.role == Role::Admin;
    let ai = !app.pipeline.config().ollama.endpoints.is_empty();
    Ok(reply(
        StatusCode::OK,
        json!({
            "user": {
                "id": user_id(p),
                "username": user_name(&app, p).await?,
                "is_staff": admin,
                "is_superuser": admin,
                "groups": [],
            },
            "settings": {
                "update_checking": {"backend_setting": false},
                "version": env!("CARGO_PKG_VERSION"),
                "app_title": null,
                "app_logo": null,
                "auditlog_enabled": true,
                "email_enabled": false,
                "ai_enabled": ai,
            },
            "permissions": permissions(p.role),
        }),
    ))
}

/// `GET /api/profile/`: the signed-in user's profile; its `auth_token` is
/// the token it signed in with.
pub async fn profile(headers: HeaderMap) -> Response {
    let token = secret_of(&headers).unwrap_or_default();
    reply(
        StatusCode::OK,
        json!({
            "email": "",
            "password": "**********",
            "first_name": "",
            "last_name": "",
            "auth_token": token,
            "social_accounts": [],
            "has_usable_password": true,
            "is_mfa_enabled": false,
        }),
    )
}

/// `GET /api/statistics/`: counts over the token's workspaces.
pub async fn statistics(State(app): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    let scope = caller.scope();
    let reader = app.pipeline.reader();
    let mimes = reader.mime_counts(&scope).await?;
    let (tags, _) = reader.labels(LabelKind::Tag, &scope, 0, 0).await?;
    let (types, _) = reader.labels(LabelKind::DocType, &scope, 0, 0).await?;
    let (issuers, _) = reader.labels(LabelKind::Issuer, &scope, 0, 0).await?;
    let total: u64 = mimes.iter().map(|m| m.documents).sum();
    let chars: u64 = mimes.iter().map(|m| m.chars).sum();
    let counts: Vec<Value> = mimes
        .iter()
        .map(|m| json!({"mime_type": m.mime, "mime_type_count": m.documents}))
        .collect();
    Ok(reply(
        StatusCode::OK,
        json!({
            "documents_total": total,
            // docpipe has no inbox tags.
            "documents_inbox": null,
            "inbox_tag": null,
            "inbox_tags": null,
            "document_file_type_counts": counts,
            "character_count": chars,
            "tag_count": tags,
            "correspondent_count": issuers,
            "document_type_count": types,
            "storage_path_count": 0,
            "current_asn": 0,
        }),
    ))
}

/// `GET /api/remote_version/`: docpipe does not look for updates, so the
/// answer is Paperless's when it cannot tell.
pub async fn remote_version() -> Response {
    reply(
        StatusCode::OK,
        json!({"version": "0.0.0", "update_available": false}),
    )
}
