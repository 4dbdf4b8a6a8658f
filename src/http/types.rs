//! Document types over the API: list, create or replace, delete. Changes
//! are kept in the catalog and win over `config.toml`; they apply to the
//! documents classified after them.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use docpipe_actors::Code;
use docpipe_actors::TypeConfig;
use docpipe_actors::TypeError;
use serde_json::json;

use super::gateway::Caller;
use super::problem::Problem;
use super::AppState;

impl From<TypeError> for Problem {
    fn from(e: TypeError) -> Self {
        match e {
            TypeError::Invalid(m) => Problem::new(Code::InvalidType, m),
            TypeError::NotFound(name) => Problem::not_found(&format!("document type {name:?}")),
            TypeError::Internal(e) => e.into(),
        }
    }
}

pub async fn list(State(app): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({ "types": app.pipeline.reader().types() }))
}

/// `PUT /api/v1/types/{name}` with the type's definition (its `name`, if
/// given, must be the one in the path): `201` when new, `200` when replaced.
pub async fn put(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    body: Result<Json<serde_json::Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, Problem> {
    let Json(mut body) = body.map_err(|e| Problem::new(Code::InvalidBody, e.body_text()))?;
    let obj = body
        .as_object_mut()
        .ok_or_else(|| Problem::new(Code::InvalidBody, "expected a JSON object"))?;
    match obj.get("name") {
        None => {
            obj.insert("name".into(), json!(name));
        }
        Some(n) if n == &json!(name) => {}
        Some(n) => {
            return Err(Problem::new(
                Code::InvalidType,
                format!("the body's name {n} is not the path's {name:?}"),
            ))
        }
    }
    let def: TypeConfig =
        serde_json::from_value(body).map_err(|e| Problem::new(Code::InvalidType, e.to_string()))?;
    let created = app
        .pipeline
        .put_type(&name, Some(def), &caller.origin())
        .await?;
    let shown = app
        .pipeline
        .reader()
        .types()
        .into_iter()
        .find(|t| t.def.name == name);
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(shown),
    )
        .into_response())
}

pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, Problem> {
    app.pipeline.put_type(&name, None, &caller.origin()).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
