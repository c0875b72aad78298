//! `GET /api/v1/services` and `/storage`: what is being observed, and what
//! the database holds.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::sync::atomic::Ordering;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::openapi::WindowParams;
use super::params::{Params, QueryPairs, Steps};
use super::{ApiError, AppState};
use crate::model::now_unix_nano;
use crate::model::query::{ServiceSummary, StorageStats};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services", get(services))
        .route("/storage", get(storage))
}

/// The services seen in a window (the last hour by default), with rates and
/// latency percentiles; with `step`, also their spans, errors and p95 per
/// step (for sparklines).
#[utoipa::path(
    get,
    path = "/api/v1/services",
    tag = "overview",
    params(WindowParams),
    responses(
        (status = 200, description = "The services", body = Vec<ServiceSummary>),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn services(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Vec<ServiceSummary>>, ApiError> {
    let mut p = Params::new(pairs);
    let until = p.time("until")?.unwrap_or_else(now_unix_nano);
    // The last hour unless asked otherwise, as service overviews usually show.
    let since = p
        .time("since")?
        .unwrap_or(until.saturating_sub(3_600_000_000_000));
    let step = p.duration_ms("step")?;
    p.reject_unknown()?;
    if since >= until {
        return Err(ApiError::bad_request("since: must be before until"));
    }
    // No step: no series (the overview's totals alone).
    let step = match step {
        Some(s) => Some(Steps::SECONDS.width(Some(s), since, until)?),
        None => None,
    };
    Ok(Json(state.store.services(since, until, step).await?))
}

/// What the database holds, and the write queue.
#[utoipa::path(
    get,
    path = "/api/v1/storage",
    tag = "overview",
    responses(
        (status = 200, description = "Database and queue figures", body = StorageOverview),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn storage(State(state): State<AppState>) -> Result<Json<StorageOverview>, ApiError> {
    let stats = state.store.storage_stats().await?;
    let w = state.writer.stats();
    Ok(Json(StorageOverview {
        stats,
        queue: QueueFigures {
            rows: state.writer.queued_rows(),
            capacity: state.writer.queue_capacity(),
        },
        rows_committed: w.rows_committed.load(Ordering::Relaxed),
        refused_exports: w.refused_exports.load(Ordering::Relaxed),
        duplicate_spans: w.duplicate_spans.load(Ordering::Relaxed),
        dropped: 0,
        retention: RetentionSettings {
            hours: state.config.storage.retention_hours,
            max_db_size_mb: state.config.storage.max_db_size_mb,
        },
    }))
}

/// The answer of `/storage`: the database's figures and the writer's.
#[derive(Serialize, ToSchema)]
pub struct StorageOverview {
    #[serde(flatten)]
    pub stats: StorageStats,
    pub queue: QueueFigures,
    /// Rows committed since qyl started.
    pub rows_committed: u64,
    /// Exports refused because the write queue was full.
    pub refused_exports: u64,
    /// Spans received again and stored once.
    pub duplicate_spans: u64,
    /// Always 0: nothing accepted is ever dropped; a full queue refuses
    /// instead.
    pub dropped: u64,
    /// How long data is kept, as configured.
    pub retention: RetentionSettings,
}

/// The retention limits in force (`storage.retention_hours` and
/// `storage.max_db_size_mb`; 0 means no limit).
#[derive(Serialize, ToSchema)]
pub struct RetentionSettings {
    pub hours: u64,
    pub max_db_size_mb: u64,
}

/// Rows waiting for the writer, and how many fit.
#[derive(Serialize, ToSchema)]
pub struct QueueFigures {
    pub rows: usize,
    pub capacity: usize,
}
