//! `GET /api/v1/logs`: log search; `GET /api/v1/logs/histogram`: the same
//! search counted per time bucket and severity level, for charts.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::IntoParams;

use super::error::ErrorBody;
use super::openapi::{LogParams, PageParams};
use super::params::{self, Params, QueryPairs, Steps};
use super::{ApiError, AppState};
use crate::model::now_unix_nano;
use crate::model::query::{LogHistogram, LogQuery, LogRow, Page, PageRequest};
use crate::model::severity_number;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/logs", get(query_logs))
        .route("/logs/histogram", get(log_histogram))
}

/// Log records that match the filters, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/logs",
    tag = "logs",
    params(LogParams, PageParams),
    responses(
        (status = 200, description = "One page of log records", body = Page<LogRow>),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn query_logs(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Page<LogRow>>, ApiError> {
    let mut p = Params::new(pairs);
    let filters = log_filters(&mut p)?;
    let q = LogQuery {
        page: p.page(state.config.query.max_page)?,
        ..filters
    };
    p.reject_unknown()?;
    Ok(Json(state.store.query_logs(q).await?))
}

/// The filters of `/logs` (everything but the page), read the same way for
/// the search and its histogram.
fn log_filters(p: &mut Params) -> Result<LogQuery, ApiError> {
    let severity_min = match p.get("severity_min") {
        None => None,
        Some(s) => Some(severity_number(&s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "severity_min: {s:?} is not a severity (1-24, or TRACE, DEBUG, INFO, WARN, ERROR, FATAL)"
            ))
        })?),
    };
    let trace_id = p
        .get("trace_id")
        .map(|t| params::trace_id(&t))
        .transpose()?;
    let span_id = p.get("span_id").map(|t| params::span_id(&t)).transpose()?;
    Ok(LogQuery {
        service: p.get("service"),
        severity_min,
        trace_id,
        span_id,
        session_id: p.get("session_id"),
        text: p.get("q"),
        since: p.time("since")?,
        until: p.time("until")?,
        attrs: p.attrs()?,
        page: PageRequest::default(),
    })
}

/// The bucket width of `/logs/histogram`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LogHistogramParams {
    /// Bucket width: milliseconds (`60000`) or with a unit (`1m`, `30s`).
    /// Default: about 60 buckets over the range, in whole seconds; at most
    /// 11000 buckets. Buckets start at multiples of the step.
    step: Option<String>,
}

/// How many logs match the filters of `/logs`, per time bucket and severity
/// level (`since` defaults to an hour before `until`, `until` to now).
#[utoipa::path(
    get,
    path = "/api/v1/logs/histogram",
    tag = "logs",
    params(LogParams, LogHistogramParams),
    responses(
        (status = 200, description = "Log counts per bucket for every level", body = LogHistogram),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn log_histogram(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<LogHistogram>, ApiError> {
    let mut p = Params::new(pairs);
    let q = log_filters(&mut p)?;
    let step = p.duration_ms("step")?;
    p.reject_unknown()?;
    let until = q.until.unwrap_or_else(now_unix_nano);
    // The last hour unless asked otherwise, as /services does.
    let since = q.since.unwrap_or(until.saturating_sub(3_600_000_000_000));
    if since >= until {
        return Err(ApiError::bad_request("since: must be before until"));
    }
    let buckets = Steps::SECONDS.buckets(step, since, until)?;
    Ok(Json(
        state.store.log_histogram(q, since, until, buckets).await?,
    ))
}
