//! `/api/v1/workflows`: rules kept in the catalog (list, show, create or
//! replace, delete); the engine's Notifier applies them (see
//! `docpipe_actors::notifier::workflow` for what a rule may say).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use docpipe_actors::{Code, PutOutcome};
use serde_json::json;

use super::gateway::Caller;
use super::problem::Problem;
use super::AppState;

/// `GET /api/v1/workflows`: the workflows of the token's workspaces.
pub async fn list(State(app): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    let flows = app.pipeline.reader().workflows(&caller.scope()).await?;
    Ok(Json(json!({ "workflows": flows })).into_response())
}

/// `GET /api/v1/workflows/{name}`.
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    match app
        .pipeline
        .reader()
        .workflow(&name, &caller.scope())
        .await?
    {
        Some(w) => Ok(Json(w).into_response()),
        None => Err(Problem::not_found(&format!("workflow {name}"))),
    }
}

/// `PUT /api/v1/workflows/{name}` with the definition: `201` made, `200`
/// replaced; `400` naming what is wrong with a bad rule.
pub async fn put(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, Problem> {
    let definition: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|e| Problem::new(Code::InvalidBody, format!("the body is not JSON: {e}")))?;
    let (outcome, row) = app
        .pipeline
        .put_workflow(&name, definition, &caller.scope(), &caller.origin())
        .await?;
    let status = match outcome {
        PutOutcome::Created => StatusCode::CREATED,
        _ => StatusCode::OK,
    };
    Ok((status, Json(row)).into_response())
}

/// `DELETE /api/v1/workflows/{name}`: `204`.
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    if app
        .pipeline
        .delete_workflow(&name, &caller.scope(), &caller.origin())
        .await?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Problem::not_found(&format!("workflow {name}")))
    }
}
