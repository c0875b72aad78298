//! Health checks for orchestrators and people: `/health/live` (the process
//! answers), `/health/ready` (migrations ran, the writer runs, a read
//! connection answers) and `/health` (both, plus storage and queue figures).
//! They are never behind auth.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

/// The process answers.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    responses((status = 200, description = "Always `{\"status\": \"ok\"}`", body = Status))
)]
async fn live() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Migrations ran, the writer runs and a read connection answers.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = Status),
        (status = 503, description = "`{\"status\": \"not_ready\"}`", body = Status),
    )
)]
async fn ready(State(state): State<AppState>) -> Response {
    let ok = state.ready.load(Ordering::Acquire) && state.store.ping().await.is_ok();
    let (status, text) = if ok {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    (status, Json(Status { status: text })).into_response()
}

/// Liveness and readiness together, with storage and queue figures.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses(
        (status = 200, description = "Up: `ok`, or `degraded` with problems listed", body = Health),
        (status = 503, description = "Down: starting, or the storage does not answer", body = Health),
    )
)]
async fn health(State(state): State<AppState>) -> Response {
    let ready = state.ready.load(Ordering::Acquire);
    let storage = state.store.ping().await;
    let writer = &state.writer;
    let stats = writer.stats();
    let mut problems = Vec::new();
    if !ready {
        problems.push("starting".to_string());
    }
    if let Err(e) = &storage {
        problems.push(format!("storage: {e}"));
    }
    let queued = writer.queued_rows();
    let capacity = writer.queue_capacity();
    if queued * 10 >= capacity * 9 {
        problems.push(format!(
            "write queue nearly full ({queued}/{capacity} rows)"
        ));
    }
    let status = if !ready || storage.is_err() {
        "down"
    } else if problems.is_empty() {
        "ok"
    } else {
        "degraded"
    };
    let code = if status == "down" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = Health {
        status,
        problems,
        version: env!("CARGO_PKG_VERSION"),
        uptime_secs: state.started.elapsed().as_secs(),
        storage: HealthStorage {
            path: state.store.path().to_string(),
            reachable: storage.is_ok(),
        },
        queue: HealthQueue {
            rows: queued,
            capacity,
            refused_exports: stats.refused_exports.load(Ordering::Relaxed),
        },
        writer: HealthWriter {
            rows_committed: stats.rows_committed.load(Ordering::Relaxed),
            commit_failures: stats.commit_failures.load(Ordering::Relaxed),
            last_commit_ms: stats.last_commit_micros.load(Ordering::Relaxed) as f64 / 1000.0,
        },
        live_clients: state.hub.subscribers(),
    };
    (code, Json(body)).into_response()
}

// Typed (rather than `json!`) so the OpenAPI document describes exactly
// what is sent.

#[derive(Serialize, ToSchema)]
pub struct Status {
    #[schema(value_type = String)]
    pub status: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`, `degraded` or `down`.
    #[schema(value_type = String)]
    pub status: &'static str,
    pub problems: Vec<String>,
    #[schema(value_type = String)]
    pub version: &'static str,
    pub uptime_secs: u64,
    pub storage: HealthStorage,
    pub queue: HealthQueue,
    pub writer: HealthWriter,
    /// Clients of the live stream.
    pub live_clients: usize,
}

#[derive(Serialize, ToSchema)]
pub struct HealthStorage {
    pub path: String,
    pub reachable: bool,
}

#[derive(Serialize, ToSchema)]
pub struct HealthQueue {
    pub rows: usize,
    pub capacity: usize,
    pub refused_exports: u64,
}

#[derive(Serialize, ToSchema)]
pub struct HealthWriter {
    pub rows_committed: u64,
    pub commit_failures: u64,
    /// How long the last commit took.
    pub last_commit_ms: f64,
}
