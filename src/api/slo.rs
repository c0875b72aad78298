//! `GET /api/v1/slo`: every `[[errors.slo]]` with its burn rates over 5m…3d,
//! the alert tiers firing now and the error budget left.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::error::ErrorBody;
use super::params::{Params, QueryPairs};
use super::{ApiError, AppState};
use crate::errors::slo::{status, SloStatus};
use crate::model::now_unix_nano;

pub fn routes() -> Router<AppState> {
    Router::new().route("/slo", get(list_slos))
}

/// Each configured SLO: burn per window, firing tiers, budget left.
#[utoipa::path(
    get,
    path = "/api/v1/slo",
    tag = "errors",
    responses(
        (status = 200, description = "One entry per configured SLO", body = Vec<SloStatus>),
        (status = 400, description = "A parameter was given (there are none)", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
    )
)]
async fn list_slos(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Vec<SloStatus>>, ApiError> {
    Params::new(pairs).reject_unknown()?;
    let now = now_unix_nano();
    let mut out = Vec::new();
    for slo in &state.config.errors.slo {
        // Validated at start: the window parses.
        let whole = humantime::parse_duration(slo.window.trim())
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(30 * 86_400 * 1_000_000_000);
        let (windows, total) = state.store.slo_counts(slo.name.clone(), now, whole).await?;
        out.push(status(slo, &windows, total));
    }
    Ok(Json(out))
}
