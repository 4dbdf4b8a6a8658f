//! `/api/v1/tokens` (create, list, revoke), `/api/v1/audit` and
//! `/api/v1/backup`: admin only.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use docpipe_actors::valid_workspace;
use docpipe_actors::Code;
use serde::Deserialize;
use serde_json::json;

use super::auth::{check_new_token, Role};
use super::gateway::Caller;
use super::problem::Problem;
use super::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    name: String,
    role: String,
    #[serde(default)]
    workspaces: Vec<String>,
}

pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<CreateToken>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(req) = body.map_err(|e| Problem::new(Code::InvalidBody, e.body_text()))?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        Problem::new(
            Code::InvalidBody,
            format!("role {:?} is not one of admin, editor, reader", req.role),
        )
    })?;
    check_new_token(&req.name, role, &req.workspaces)
        .map_err(|e| Problem::new(Code::InvalidBody, e.to_string()))?;
    let made = app
        .auth
        .create(&req.name, role, req.workspaces, &caller.origin())
        .await?;
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

pub async fn list(State(app): State<AppState>) -> Result<Response, Problem> {
    Ok(Json(json!({ "tokens": app.pipeline.reader().tokens().await? })).into_response())
}

pub async fn revoke(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    if app.auth.revoke(&id, &caller.origin()).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Problem::not_found("token"))
    }
}

#[derive(Deserialize)]
pub struct AuditParams {
    workspace: Option<String>,
    /// RFC 3339 time, e.g. 2026-11-21T10:00:00Z.
    since: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

pub async fn audit(
    State(app): State<AppState>,
    params: Result<Query<AuditParams>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = params.map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))?;
    let workspace = p.workspace.filter(|w| !w.is_empty());
    if let Some(w) = &workspace {
        if !valid_workspace(w) {
            return Err(Problem::new(
                Code::InvalidParameter,
                format!("workspace {w:?} is not a valid name"),
            ));
        }
    }
    let since = match p.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            humantime::parse_rfc3339_weak(s)
                .map_err(|e| {
                    Problem::new(
                        Code::InvalidParameter,
                        format!("since {s:?} is not an RFC 3339 time: {e}"),
                    )
                })?
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0),
        ),
    };
    let limit = super::problem::limit_param(p.limit, 100, 1000)?;
    let after = super::problem::cursor_param(p.cursor.as_deref())?;
    let events = app
        .pipeline
        .reader()
        .audit(workspace, since, after, limit)
        .await?;
    let next = (events.len() == limit).then(|| events.last().map(|e| e.seq.to_string()));
    Ok(Json(json!({ "events": events, "next_cursor": next.flatten() })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupRequest {
    dest: String,
}

/// `POST /api/v1/backup {"dest": "/absolute/new/or/empty/dir"}`: a
/// consistent backup, written by the server on its machine.
pub async fn backup(
    State(app): State<AppState>,
    body: Result<Json<BackupRequest>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(req) = body.map_err(|e| Problem::new(Code::InvalidBody, e.body_text()))?;
    let dest = std::path::PathBuf::from(&req.dest);
    if !dest.is_absolute() {
        return Err(Problem::new(
            Code::InvalidField,
            format!("dest {:?} is not an absolute path", req.dest),
        )
        .on_field("dest"));
    }
    if std::fs::read_dir(&dest).is_ok_and(|mut d| d.next().is_some()) {
        return Err(Problem::new(
            Code::InvalidField,
            format!(
                "dest {:?} is not empty: a backup goes into a new or empty directory",
                req.dest
            ),
        )
        .on_field("dest"));
    }
    let report = app
        .pipeline
        .backup(&dest)
        .await
        .map_err(|e| Problem::new(Code::BackupFailed, format!("{e:#}")))?;
    Ok(Json(report).into_response())
}
