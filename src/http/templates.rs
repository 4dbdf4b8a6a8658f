//! Field templates over the API: where each issuer puts a field, learned
//! from a user's correction of a field (`PATCH /api/v1/documents/{id}`
//! with `fields`). Listed per workspace the token may read, and deletable.

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use docpipe_actors::Code;
use serde::Deserialize;
use serde_json::json;

use super::gateway::Caller;
use super::problem::Problem;
use super::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    workspace: Option<String>,
}

/// `GET /api/v1/templates[?workspace=]`.
pub async fn list(
    State(app): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, Problem> {
    let Query(q) = q.map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))?;
    if let Some(w) = q.workspace.as_deref() {
        caller.may_read(w)?;
    }
    let templates = app.pipeline.templates(&caller.scope(), q.workspace).await?;
    Ok(Json(json!({ "templates": templates })))
}

/// `DELETE /api/v1/templates/{id}`: `204`, or `404` when the token's
/// workspaces hold no such template.
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, Problem> {
    let Path(id) = id.map_err(|_| Problem::not_found("template"))?;
    if app
        .pipeline
        .delete_template(id, &caller.scope(), &caller.origin())
        .await?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Problem::not_found(&format!("template {id}")))
    }
}
