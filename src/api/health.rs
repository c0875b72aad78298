//! Health checks for orchestrators and people: `/health/live` (the process
//! answers), `/health/ready` (migrations ran, the writer runs, a read
//! connection answers) and `/health` (both, plus storage, queue, disk and
//! retention figures). They are never behind auth.

use std::path::Path;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::AppState;
use crate::storage::retention::{disk_free_bytes, RetentionStats};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

async fn live() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(state): State<AppState>) -> Response {
    let ok = state.ready.load(Ordering::Acquire) && state.store.ping().await.is_ok();
    let (status, text) = if ok {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    };
    (status, Json(json!({ "status": text }))).into_response()
}

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
    let body = json!({
        "status": status,
        "problems": problems,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs(),
        "storage": {
            "path": state.store.path(),
            "reachable": storage.is_ok(),
        },
        "queue": {
            "rows": queued,
            "capacity": capacity,
            "refused_exports": stats.refused_exports.load(Ordering::Relaxed),
        },
        "writer": {
            "rows_committed": stats.rows_committed.load(Ordering::Relaxed),
            "commit_failures": stats.commit_failures.load(Ordering::Relaxed),
            "last_commit_ms": stats.last_commit_micros.load(Ordering::Relaxed) as f64 / 1000.0,
        },
        "disk": disk,
        "retention": retention,
        "live_clients": state.hub.subscribers(),
    });
    (code, Json(body)).into_response()
}

/// Free space on the filesystem holding the database (null for
/// `:memory:`); low space is a problem before it becomes a failed commit.
fn disk(state: &AppState, problems: &mut Vec<String>) -> serde_json::Value {
    let path = state.store.path();
    if path == ":memory:" {
        return serde_json::Value::Null;
    }
    let dir = match Path::new(path).parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let min_free_mb = state.config.storage.min_free_disk_mb;
    let min_free_bytes = min_free_mb.saturating_mul(1 << 20);
    match disk_free_bytes(dir) {
        Ok(free) => {
            let low = min_free_mb > 0 && free < min_free_bytes;
            if low {
                problems.push(format!(
                    "low disk space: {} MiB free on {}, below storage.min_free_disk_mb = {min_free_mb}",
                    free >> 20,
                    dir.display()
                ));
            }
            json!({
                "path": dir.display().to_string(),
                "free_bytes": free,
                "min_free_bytes": min_free_bytes,
                "low": low,
            })
        }
        Err(e) => {
            if min_free_mb > 0 {
                problems.push(format!(
                    "disk: cannot read the free space of {}: {e}",
                    dir.display()
                ));
            }
            json!({ "path": dir.display().to_string(), "error": e.to_string() })
        }
    }
}

/// What retention has deleted; a failed last pass is a problem (the
/// database may grow past its limits until a pass succeeds).
fn retention(stats: &RetentionStats, problems: &mut Vec<String>) -> serde_json::Value {
    let last_error = stats.last_error();
    if let Some(e) = &last_error {
        problems.push(format!("retention: the last pass failed: {e}"));
    }
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    json!({
        "enabled": stats.enabled.load(Ordering::Relaxed),
        "passes": n(&stats.passes),
        "failed_passes": n(&stats.failed_passes),
        "deleted": {
            "traces": n(&stats.traces_deleted),
            "spans": n(&stats.spans_deleted),
            "logs": n(&stats.logs_deleted),
            "metrics": n(&stats.metrics_deleted),
        },
        "last_pass_ms": n(&stats.last_pass_micros) as f64 / 1000.0,
        "last_pass_unix_ms": n(&stats.last_pass_unix_ms),
        "used_bytes": n(&stats.used_bytes),
        "free_bytes": n(&stats.free_bytes),
        "last_error": last_error,
    })
}
