//! `GET /api/v1/metrics` (what metrics exist) and `/metrics/{name}` (a
//! metric's series, bucketed by `step`).

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use super::error::ErrorBody;
use super::openapi::SeriesParams;
use super::params::{Params, QueryPairs, MAX_STEPS};
use super::{ApiError, AppState};
use crate::model::now_unix_nano;
use crate::model::query::{MetricData, MetricInfo, MetricQuery};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(list_metrics))
        .route("/metrics/{name}", get(metric_series))
}

/// Every metric received, with its kind, unit and services.
#[utoipa::path(
    get,
    path = "/api/v1/metrics",
    tag = "metrics",
    responses(
        (status = 200, description = "The metrics", body = Vec<MetricInfo>),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn list_metrics(State(state): State<AppState>) -> Result<Json<Vec<MetricInfo>>, ApiError> {
    Ok(Json(state.store.list_metrics().await?))
}

/// One metric's series over a time range, bucketed by `step`.
#[utoipa::path(
    get,
    path = "/api/v1/metrics/{name}",
    tag = "metrics",
    params(("name" = String, Path, description = "Metric name, as listed by /api/v1/metrics"), SeriesParams),
    responses(
        (status = 200, description = "The metric's series", body = MetricData),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 404, description = "No metric with that name", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn metric_series(
    State(state): State<AppState>,
    Path(name): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<MetricData>, ApiError> {
    // `group_by=` (present, empty) means "merge everything", unlike no
    // `group_by` at all, so presence is read before the value.
    let grouped = pairs.iter().any(|(k, _)| k == "group_by");
    let mut p = Params::new(pairs);
    let since = p.time("since")?;
    let until = p.time("until")?;
    let step_ns = p.duration_ms("step")?;
    let group_by = p.get("group_by").map(|v| {
        v.split(',')
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect::<Vec<_>>()
    });
    let q = MetricQuery {
        name: name.clone(),
        service: p.get("service"),
        attrs: p.attrs()?,
        since,
        until,
        step_ns: 0,
        group_by: if grouped {
            Some(group_by.unwrap_or_default())
        } else {
            None
        },
    };
    p.reject_unknown()?;
    // Without a step, aim at about 120 points over the range asked for (or
    // the last hour).
    let end = until.unwrap_or_else(now_unix_nano);
    let start = since.unwrap_or(end.saturating_sub(3_600_000_000_000));
    let span = end.saturating_sub(start).max(1);
    let step_ns = match step_ns {
        Some(0) => return Err(ApiError::bad_request("step: must be greater than 0")),
        Some(s) => s,
        None => (span / 120).max(1_000_000_000),
    };
    if since.is_some() && span / step_ns > MAX_STEPS {
        return Err(ApiError::bad_request(format!(
            "step: too fine for the range ({} steps; at most {MAX_STEPS})",
            span / step_ns
        )));
    }
    let q = MetricQuery { step_ns, ..q };
    match state.store.metric_series(q).await? {
        Some(data) => Ok(Json(data)),
        None => Err(ApiError::not_found(format!("no metric named {name:?}"))),
    }
}
