//! `GET /api/v1/services` and `/storage`: what is being observed, and what
//! the database holds.

use std::sync::atomic::Ordering;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::params::Params;
use super::{ApiError, AppState};
use crate::model::query::ServiceSummary;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/services", get(services))
        .route("/storage", get(storage))
}

async fn services(
    State(state): State<AppState>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Vec<ServiceSummary>>, ApiError> {
    let mut p = Params::new(pairs);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let until = p.time("until")?.unwrap_or(now);
    // The last hour unless asked otherwise, as service overviews usually show.
    let since = p
        .time("since")?
        .unwrap_or(until.saturating_sub(3_600_000_000_000));
    p.reject_unknown()?;
    if since >= until {
        return Err(ApiError::bad_request("since: must be before until"));
    }
    Ok(Json(state.store.services(since, until).await?))
}

async fn storage(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let stats = state.store.storage_stats().await?;
    let w = state.writer.stats();
    Ok(Json(json!({
        "path": stats.path,
        "file_bytes": stats.file_bytes,
        "wal_bytes": stats.wal_bytes,
        "schema_version": stats.schema_version,
        "tables": stats.tables,
        "queue": {
            "rows": state.writer.queued_rows(),
            "capacity": state.writer.queue_capacity(),
        },
        "rows_committed": w.rows_committed.load(Ordering::Relaxed),
        "refused_exports": w.refused_exports.load(Ordering::Relaxed),
        "duplicate_spans": w.duplicate_spans.load(Ordering::Relaxed),
        // Nothing accepted is ever dropped: a full queue refuses instead.
        "dropped": 0,
    })))
}
