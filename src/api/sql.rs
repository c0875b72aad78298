//! `POST /api/v1/sql`: read-only SQL (`{"sql": "...", "limit": 100}`), for
//! power users and tools. The store enforces what "read-only" means.

use axum::extract::{rejection::JsonRejection, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::{ApiError, AppState};
use crate::model::query::SqlResult;
use crate::storage::reader::SqlLaneStatus;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sql", post(run_sql))
        .route("/sql/queue", get(sql_queue))
}

/// Ad-hoc SQL running and waiting for one of its `query.sql_slots` read
/// connections: what a console shows while a query has not started.
#[utoipa::path(
    get,
    path = "/api/v1/sql/queue",
    tag = "sql",
    responses((status = 200, description = "Running and waiting ad-hoc queries", body = SqlLaneStatus))
)]
async fn sql_queue(State(state): State<AppState>) -> Json<SqlLaneStatus> {
    Json(state.store.sql_lane())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    /// One read-only statement (`SELECT`, `WITH`…).
    sql: String,
    /// Rows to return at most; capped by `query.sql_row_limit`.
    limit: Option<usize>,
}

/// Runs one read-only SQL statement over the stored tables.
#[utoipa::path(
    post,
    path = "/api/v1/sql",
    tag = "sql",
    request_body = SqlRequest,
    responses(
        (status = 200, description = "Columns and rows", body = SqlResult),
        (status = 400, description = "Not JSON, not read-only, or not valid SQL", body = ErrorBody),
        (status = 503, description = "Every SQL slot stayed busy past the deadline; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn run_sql(
    State(state): State<AppState>,
    body: Result<Json<SqlRequest>, JsonRejection>,
) -> Result<Json<SqlResult>, ApiError> {
    let Json(req) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a JSON body like {{\"sql\": \"SELECT …\"}}: {}",
            e.body_text()
        ))
    })?;
    let cap = state.config.query.sql_row_limit;
    let limit = req.limit.unwrap_or(cap).min(cap);
    Ok(Json(state.store.sql(req.sql, limit).await?))
}
