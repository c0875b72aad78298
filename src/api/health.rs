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
use serde_json::json;

use super::AppState;

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
        "live_clients": state.hub.subscribers(),
    });
    (code, Json(body)).into_response()
}
