//! `GET /api/v1/logs`: log search.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};

use super::error::ErrorBody;
use super::openapi::{LogParams, PageParams};
use super::params::{self, Params, QueryPairs};
use super::{ApiError, AppState};
use crate::model::query::{LogQuery, LogRow, Page};
use crate::model::severity_number;

pub fn routes() -> Router<AppState> {
    Router::new().route("/logs", get(query_logs))
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
    let q = LogQuery {
        service: p.get("service"),
        severity_min,
        trace_id,
        span_id,
        session_id: p.get("session_id"),
        text: p.get("q"),
        since: p.time("since")?,
        until: p.time("until")?,
        attrs: p.attrs()?,
        page: p.page(state.config.query.max_page)?,
    };
    p.reject_unknown()?;
    Ok(Json(state.store.query_logs(q).await?))
}
