//! Health checks for orchestrators and people: `/health/live` (the process
//! answers), `/health/ready` (migrations ran, the writer runs, a read
//! connection answers) and `/health` (both, plus storage, queue, disk and
//! retention figures). They are never behind auth.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::storage::retention::{disk_free_bytes, RetentionStats};

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
    let disk = disk(&state, &mut problems);
    let retention = retention(&state.retention, &mut problems);
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
        disk,
        retention,
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
    /// The filesystem holding the database; null for `:memory:`.
    pub disk: Option<HealthDisk>,
    pub retention: HealthRetention,
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

#[derive(Serialize, ToSchema)]
pub struct HealthDisk {
    /// The directory of the database file.
    pub path: String,
    /// Bytes available to qyl there; null when they cannot be read.
    pub free_bytes: Option<u64>,
    /// `storage.min_free_disk_mb` in bytes (0: the check is off).
    pub min_free_bytes: u64,
    /// Free space is under the floor (status `degraded`).
    pub low: bool,
    /// Why the free space could not be read.
    pub error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthRetention {
    /// False when neither retention_hours nor max_db_size_mb is set.
    pub enabled: bool,
    pub passes: u64,
    pub failed_passes: u64,
    pub deleted: HealthDeleted,
    /// How long the last pass took.
    pub last_pass_ms: f64,
    /// When the last pass ended (0: none yet).
    pub last_pass_unix_ms: u64,
    /// Used blocks plus WAL (memory use for `:memory:`) after the last pass.
    pub used_bytes: u64,
    /// Free, reusable blocks inside the file after the last pass.
    pub free_bytes: u64,
    /// The error of the last pass, if it failed (status `degraded`).
    pub last_error: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct HealthDeleted {
    pub traces: u64,
    pub spans: u64,
    pub logs: u64,
    pub metrics: u64,
}

/// Free space on the filesystem holding the database (none for
/// `:memory:`); low space is a problem before it becomes a failed commit.
fn disk(state: &AppState, problems: &mut Vec<String>) -> Option<HealthDisk> {
    let path = state.store.path();
    if path == ":memory:" {
        return None;
    }
    let dir = match Path::new(path).parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let min_free_mb = state.config.storage.min_free_disk_mb;
    let min_free_bytes = min_free_mb.saturating_mul(1 << 20);
    let mut disk = HealthDisk {
        path: dir.display().to_string(),
        free_bytes: None,
        min_free_bytes,
        low: false,
        error: None,
    };
    match disk_free_bytes(dir) {
        Ok(free) => {
            disk.free_bytes = Some(free);
            disk.low = min_free_mb > 0 && free < min_free_bytes;
            if disk.low {
                problems.push(format!(
                    "low disk space: {} MiB free on {}, below storage.min_free_disk_mb = {min_free_mb}",
                    free >> 20,
                    dir.display()
                ));
            }
        }
        Err(e) => {
            if min_free_mb > 0 {
                problems.push(format!(
                    "disk: cannot read the free space of {}: {e}",
                    dir.display()
                ));
            }
            disk.error = Some(e.to_string());
        }
    }
    Some(disk)
}

/// What retention has deleted; a failed last pass is a problem (the
/// database may grow past its limits until a pass succeeds).
fn retention(stats: &RetentionStats, problems: &mut Vec<String>) -> HealthRetention {
    let last_error = stats.last_error();
    if let Some(e) = &last_error {
        problems.push(format!("retention: the last pass failed: {e}"));
    }
    let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
    HealthRetention {
        enabled: stats.enabled.load(Ordering::Relaxed),
        passes: n(&stats.passes),
        failed_passes: n(&stats.failed_passes),
        deleted: HealthDeleted {
            traces: n(&stats.traces_deleted),
            spans: n(&stats.spans_deleted),
            logs: n(&stats.logs_deleted),
            metrics: n(&stats.metrics_deleted),
        },
        last_pass_ms: n(&stats.last_pass_micros) as f64 / 1000.0,
        last_pass_unix_ms: n(&stats.last_pass_unix_ms),
        used_bytes: n(&stats.used_bytes),
        free_bytes: n(&stats.free_bytes),
        last_error,
    }
}
