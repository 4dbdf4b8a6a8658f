//! `PUT /api/v1/admin/pools`: worker pools resized while running.

use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use docpipe_actors::{Code, PoolsRequest};

use super::problem::Problem;
use super::AppState;

/// Why a setting cannot be changed here, if it is a known one.
pub fn not_live(name: &str) -> Option<&'static str> {
    match name {
        "ocr" => Some(
            "pipeline.ocr.workers cannot change while running; set it in config.toml and restart",
        ),
        "catalog" | "indexer" | "intake" | "scheduler" | "embedder" | "trainer" | "notifier" => {
            Some("has one worker by design (one writer each)")
        }
        _ => None,
    }
}

/// `{"extract": N, "classify": N, "enrich": N}` (any of them) → the sizes
/// in force.
pub async fn put_pools(State(app): State<AppState>, body: Bytes) -> Result<Response, Problem> {
    let bad = |m: String| Problem::new(Code::InvalidBody, m);
    let v: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the body is not a JSON object: {e}")))?;
    let mut ask = PoolsRequest::default();
    for (k, n) in &v {
        let slot = match k.as_str() {
            "extract" => &mut ask.extract,
            "classify" => &mut ask.classify,
            "enrich" => &mut ask.enrich,
            other => {
                return Err(bad(match not_live(other) {
                    Some(why) => format!("{other}: {why}"),
                    None => format!("{other}: not a pool; the pools are extract, classify, enrich"),
                }))
            }
        };
        *slot = Some(
            n.as_u64()
                .ok_or_else(|| bad(format!("{k}: expected a number of workers, got {n}")))?
                as usize,
        );
    }
    let sizes = app.pipeline.resize_pools(&ask).await?;
    Ok(Json(sizes).into_response())
}
