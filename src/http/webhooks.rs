//! `/api/v1/webhooks`: webhooks per workspace (create, list, show with
//! their deliveries, delete) and re-sending a failed delivery. The engine's
//! Notifier sends them (see `docpipe_actors::notifier`).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use docpipe_actors::{Code, NewWebhook, WebhookRow};
use serde::Deserialize;
use serde_json::{json, Value};

use super::gateway::Caller;
use super::problem::{limit_param, Problem};
use super::AppState;

/// A webhook as the API shows it: its kinds as `document.<stage>`.
fn shown(w: &WebhookRow) -> Value {
    json!({
        "id": w.id,
        "workspace": w.workspace,
        "url": w.url,
        "events": w.events.iter().map(|s| format!("document.{s}")).collect::<Vec<_>>(),
        "created_at": w.created_at,
    })
}

/// `POST /api/v1/webhooks` `{url, events, secret?, workspace}`: `201` with
/// the webhook and its secret (shown this once).
pub async fn create(
    State(app): State<AppState>,
    caller: Caller,
    body: Result<Json<NewWebhook>, JsonRejection>,
) -> Result<Response, Problem> {
    let Json(new) = body.map_err(|e| Problem::new(Code::InvalidBody, e.body_text()))?;
    let w = app
        .pipeline
        .create_webhook(new, &caller.scope(), &caller.origin())
        .await?;
    let mut out = shown(&w);
    out["secret"] = json!(w.secret);
    Ok((StatusCode::CREATED, Json(out)).into_response())
}

/// `GET /api/v1/webhooks`: the webhooks of the token's workspaces.
pub async fn list(State(app): State<AppState>, caller: Caller) -> Result<Response, Problem> {
    let hooks = app.pipeline.reader().webhooks(&caller.scope()).await?;
    let hooks: Vec<Value> = hooks.iter().map(shown).collect();
    Ok(Json(json!({ "webhooks": hooks })).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveriesQuery {
    /// `failed` or `retrying` (default: both).
    state: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/v1/webhooks/{id}[?state=failed|retrying]`: the webhook, with
/// the deliveries that did not go through on their first attempt.
pub async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<DeliveriesQuery>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(q) = q.map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))?;
    if let Some(s) = q.state.as_deref() {
        if !matches!(s, "failed" | "retrying") {
            return Err(Problem::new(
                Code::InvalidParameter,
                format!("state {s:?} is not one of failed, retrying"),
            ));
        }
    }
    let limit = limit_param(q.limit, 100, 1000)?;
    let Some((w, deliveries)) = app
        .pipeline
        .reader()
        .webhook(&id, &caller.scope(), q.state, limit)
        .await?
    else {
        return Err(Problem::not_found(&format!("webhook {id}")));
    };
    let mut out = shown(&w);
    out["deliveries"] = json!(deliveries);
    Ok(Json(out).into_response())
}

/// `DELETE /api/v1/webhooks/{id}`: `204`; its waiting deliveries are dropped.
pub async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, Problem> {
    if app
        .pipeline
        .delete_webhook(&id, &caller.scope(), &caller.origin())
        .await?
    {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Problem::not_found(&format!("webhook {id}")))
    }
}

/// `POST /api/v1/webhooks/{id}/deliveries/{delivery}/resend`: `202`; the
/// failed delivery is sent again now, with a fresh count of attempts.
pub async fn resend(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, delivery)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let event = delivery
        .strip_prefix(&format!("{id}."))
        .and_then(|n| n.parse::<i64>().ok())
        .ok_or_else(|| Problem::not_found(&format!("delivery {delivery} of webhook {id}")))?;
    if app
        .pipeline
        .resend_delivery(&id, event, &caller.scope(), &caller.origin())
        .await?
    {
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({"delivery": delivery, "state": "retrying"})),
        )
            .into_response())
    } else {
        Err(Problem::not_found(&format!(
            "failed delivery {delivery} of webhook {id}"
        )))
    }
}
