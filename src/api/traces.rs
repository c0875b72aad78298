//! `GET /api/v1/traces`, `/traces/{trace_id}` and `/spans`.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use super::error::ErrorBody;
use super::openapi::{PageParams, SpanFilterParams};
use super::params::{self, Params, QueryPairs};
use super::{ApiError, AppState};
use crate::model::query::{Page, SpanQuery, SpanRow, TraceQuery, TraceSummary, TraceTree};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/traces", get(list_traces))
        .route("/traces/{trace_id}", get(get_trace))
        .route("/spans", get(query_spans))
}

/// Traces holding a span that matches the filters, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/traces",
    tag = "traces",
    params(SpanFilterParams, PageParams),
    responses(
        (status = 200, description = "One page of traces", body = Page<TraceSummary>),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn list_traces(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Page<TraceSummary>>, ApiError> {
    let mut p = Params::new(pairs);
    let q = TraceQuery {
        filter: p.span_filter()?,
        page: p.page(state.config.query.max_page)?,
    };
    p.reject_unknown()?;
    Ok(Json(state.store.list_traces(q).await?))
}

/// One trace: its spans as a tree and the logs that carry its id.
#[utoipa::path(
    get,
    path = "/api/v1/traces/{trace_id}",
    tag = "traces",
    params(("trace_id" = String, Path, description = "Trace id: 32 hex digits")),
    responses(
        (status = 200, description = "The trace", body = TraceTree),
        (status = 400, description = "Not a trace id", body = ErrorBody),
        (status = 404, description = "No trace with that id", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn get_trace(
    State(state): State<AppState>,
    Path(trace_id): Path<String>,
) -> Result<Json<TraceTree>, ApiError> {
    let id = params::trace_id(&trace_id)?;
    match state.store.get_trace(&id).await? {
        Some(tree) => Ok(Json(tree)),
        None => Err(ApiError::not_found(format!("no trace {id}"))),
    }
}

/// Spans that match the filters, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/spans",
    tag = "traces",
    params(SpanFilterParams, PageParams),
    responses(
        (status = 200, description = "One page of spans", body = Page<SpanRow>),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn query_spans(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Page<SpanRow>>, ApiError> {
    let mut p = Params::new(pairs);
    let q = SpanQuery {
        filter: p.span_filter()?,
        page: p.page(state.config.query.max_page)?,
    };
    p.reject_unknown()?;
    Ok(Json(state.store.query_spans(q).await?))
}
