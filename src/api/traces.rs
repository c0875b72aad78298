//! `GET /api/v1/traces`, `/traces/{trace_id}` and `/spans`.

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};

use super::params::{self, Params};
use super::{ApiError, AppState};
use crate::model::query::{Page, SpanQuery, SpanRow, TraceQuery, TraceSummary, TraceTree};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/traces", get(list_traces))
        .route("/traces/{trace_id}", get(get_trace))
        .route("/spans", get(query_spans))
}

async fn list_traces(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Page<TraceSummary>>, ApiError> {
    let mut p = Params::new(pairs);
    let q = TraceQuery {
        filter: p.span_filter()?,
        page: p.page(state.config.query.max_page)?,
    };
    p.reject_unknown()?;
    Ok(Json(state.store.list_traces(q).await?))
}

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

async fn query_spans(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Page<SpanRow>>, ApiError> {
    let mut p = Params::new(pairs);
    let q = SpanQuery {
        filter: p.span_filter()?,
        page: p.page(state.config.query.max_page)?,
    };
    p.reject_unknown()?;
    Ok(Json(state.store.query_spans(q).await?))
}
