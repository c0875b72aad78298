//! `GET /api/v1/genai/stats`: what the application's LLM calls cost and how
//! they behave — requests, errors, tokens, cost and latency, per model and
//! over time.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::error::ErrorBody;
use super::openapi::GenAiParams;
use super::params::{Params, QueryPairs};
use super::{ApiError, AppState};
use crate::ingest::convert::now_unix_nano;
use crate::model::query::{GenAiFilter, GenAiStats};

/// Buckets one answer may hold; a finer step is refused.
const MAX_STEPS: u64 = 11_000;

pub fn routes() -> Router<AppState> {
    Router::new().route("/genai/stats", get(genai_stats))
}

/// GenAI calls in a window (the last 24 hours by default).
#[utoipa::path(
    get,
    path = "/api/v1/genai/stats",
    tag = "genai",
    params(GenAiParams),
    responses(
        (status = 200, description = "Totals, per model and over time", body = GenAiStats),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn genai_stats(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<GenAiStats>, ApiError> {
    let mut p = Params::new(pairs);
    let until = p.time("until")?.unwrap_or_else(now_unix_nano);
    let since = p
        .time("since")?
        .unwrap_or(until.saturating_sub(86_400_000_000_000));
    let step = p.duration_ms("step")?;
    let f = GenAiFilter {
        since,
        until,
        service: p.get("service"),
        provider: p.get("provider"),
        model: p.get("model"),
        session_id: p.get("session_id"),
        step_ns: 0,
    };
    p.reject_unknown()?;
    if since >= until {
        return Err(ApiError::bad_request("since: must be before until"));
    }
    let range = until - since;
    let step_ns = match step {
        Some(0) => return Err(ApiError::bad_request("step: must be greater than 0")),
        Some(s) => s,
        // About 60 buckets, on whole seconds.
        None => (range / 60).max(1_000_000_000) / 1_000_000_000 * 1_000_000_000,
    };
    if range / step_ns > MAX_STEPS {
        return Err(ApiError::bad_request(format!(
            "step: too fine for the window ({} buckets; at most {MAX_STEPS})",
            range / step_ns
        )));
    }
    let f = GenAiFilter { step_ns, ..f };
    Ok(Json(state.store.genai_stats(f).await?))
}
