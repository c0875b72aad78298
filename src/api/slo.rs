//! `GET /api/v1/slo`: every `[[errors.slo]]` with its burn rates over 5m…3d,
//! the alert tiers firing now, its level and the error budget left;
//! `GET /api/v1/slo/transitions`: the level changes the SLO watcher stored
//! (the alert history).

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::error::ErrorBody;
use super::params::{Params, QueryPairs};
use super::{ApiError, AppState};
use crate::errors::slo::{status, SloStatus};
use crate::model::now_unix_nano;
use crate::model::slo::{SloLevel, SloTransitionQuery, SloTransitionRow};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/slo", get(list_slos))
        .route("/slo/transitions", get(list_transitions))
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
        let (windows, total) = state
            .store
            .slo_counts(slo.name.clone(), now, slo.window_ns())
            .await?;
        out.push(status(slo, &windows, total));
    }
    Ok(Json(out))
}

/// Most changes one request lists.
const MAX_TRANSITIONS: usize = 1000;

/// SLO level changes (ok, warning, page), newest first.
#[utoipa::path(
    get,
    path = "/api/v1/slo/transitions",
    tag = "errors",
    params(
        ("slo" = Option<String>, Query, description = "Only this SLO (its name)"),
        ("service" = Option<String>, Query, description = "Only SLOs of this service"),
        ("level" = Option<String>, Query, description = "Only changes to this level: ok, warning or page"),
        ("since" = Option<String>, Query, description = "RFC 3339, a duration ago (24h) or Unix ms"),
        ("until" = Option<String>, Query, description = "RFC 3339, a duration ago or Unix ms"),
        ("limit" = Option<usize>, Query, description = "At most this many (default 100, at most 1000)"),
    ),
    responses(
        (status = 200, description = "Level changes, newest first", body = Vec<SloTransitionRow>),
        (status = 400, description = "A parameter is malformed or unknown", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
    )
)]
async fn list_transitions(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Vec<SloTransitionRow>>, ApiError> {
    let mut p = Params::new(pairs);
    let level = match p.get("level") {
        None => None,
        Some(l) => Some(SloLevel::parse(&l).ok_or_else(|| {
            ApiError::bad_request(format!("level: {l:?} is not one of ok, warning, page"))
        })?),
    };
    let limit = p.parse::<usize>("limit")?.unwrap_or(100);
    if limit == 0 || limit > MAX_TRANSITIONS {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {MAX_TRANSITIONS}"
        )));
    }
    let q = SloTransitionQuery {
        slo: p.get("slo"),
        service: p.get("service"),
        level,
        since: p.time("since")?,
        until: p.time("until")?,
        limit,
    };
    p.reject_unknown()?;
    Ok(Json(state.store.slo_transitions(q).await?))
}
