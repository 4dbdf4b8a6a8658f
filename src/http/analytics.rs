//! `GET /api/v1/analytics`: documents per type and period, money sums per
//! issuer, type, period and currency, stage latencies and failures, over a
//! window of dates and the token's workspaces.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use docpipe_actors::{AnalyticsQuery, Code, Period};
use serde::Deserialize;

use super::gateway::Caller;
use super::problem::Problem;
use super::AppState;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// `YYYY-MM-DD`, included.
    from: Option<String>,
    to: Option<String>,
    workspace: Option<String>,
    /// `day`, `week` or `month` (default).
    period: Option<String>,
    /// The money field summed (default `total`).
    field: Option<String>,
}

fn date(name: &str, v: Option<String>) -> Result<Option<String>, Problem> {
    let Some(v) = v.filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let b = v.as_bytes();
    let ok = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !ok {
        return Err(Problem::new(
            Code::InvalidParameter,
            format!("{name}: {v:?} is not a date like 2026-12-31"),
        ));
    }
    Ok(Some(v))
}

pub async fn analytics(
    State(app): State<AppState>,
    caller: Caller,
    params: Result<Query<Params>, QueryRejection>,
) -> Result<Response, Problem> {
    let Query(p) = params.map_err(|e| Problem::new(Code::InvalidParameter, e.body_text()))?;
    let workspace = p.workspace.filter(|w| !w.is_empty());
    if let Some(w) = &workspace {
        caller.may_read(w)?;
    }
    let period = match p.period.as_deref() {
        None | Some("") => Period::Month,
        Some(s) => Period::parse(s).ok_or_else(|| {
            Problem::new(
                Code::InvalidParameter,
                format!("period: {s:?} is not one of day, week, month"),
            )
        })?,
    };
    let (from, to) = (date("from", p.from)?, date("to", p.to)?);
    if let (Some(f), Some(t)) = (&from, &to) {
        if f > t {
            return Err(Problem::new(
                Code::InvalidParameter,
                format!("from ({f}) is after to ({t})"),
            ));
        }
    }
    let q = AnalyticsQuery {
        from,
        to,
        workspace,
        period,
        field: p.field.unwrap_or_else(|| "total".into()),
    };
    let a = app.pipeline.reader().analytics(q, &caller.scope()).await?;
    Ok(Json(a).into_response())
}
