//! Health checks for orchestrators and people. They say whether qyl can do
//! its job — store what it is sent — not whether it is busy:
//!
//! - `/health/live`: the process answers and the writer thread runs and is
//!   not stuck (no step busy for `writer::STUCK_AFTER`). A failure here is
//!   one a restart fixes.
//! - `/health/ready`: live, migrations ran, shutdown has not begun, and
//!   commits are not failing in a row (`writer::FAILING_AFTER`: a full disk
//!   or a broken file). A failure here means: send data elsewhere for now.
//! - `/health`: both, plus storage, reads, queue, disk and retention
//!   figures; problems that do not stop ingest make it `degraded` (200).
//!
//! Readers never decide live or ready: heavy dashboard or SQL load keeps
//! every read connection busy while ingest goes on untouched, and an
//! orchestrator must not restart (or stop routing to) a server for that. So
//! the read side appears in `/health` only, as figures and a `degraded`
//! problem. None of these routes is behind auth.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use crate::storage::retention::{disk_free_bytes, RetentionStats};
use crate::storage::writer::WriterCondition;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/live", get(live))
        .route("/health/ready", get(ready))
}

/// How long `/health` waits for a read connection before it reports the
/// reads as busy (a problem, never `down`).
const READ_PROBE: Duration = Duration::from_millis(500);

/// Why qyl is not live (`None`: it is).
fn not_live(state: &AppState) -> Option<String> {
    live_problem(state, &state.writer.condition())
}

fn live_problem(state: &AppState, condition: &WriterCondition) -> Option<String> {
    match condition {
        WriterCondition::Stopped => Some("writer: the writer thread has stopped".into()),
        WriterCondition::Stuck(busy) => Some(format!(
            "writer: stuck for {} s on one step (the queue holds {} rows)",
            busy.as_secs(),
            state.writer.queued_rows()
        )),
        WriterCondition::Running | WriterCondition::Failing(_) => None,
    }
}

/// Why qyl is not ready (`None`: it is).
fn not_ready(state: &AppState) -> Option<String> {
    let condition = state.writer.condition();
    if let Some(why) = live_problem(state, &condition) {
        return Some(why);
    }
    if !state.ready.load(Ordering::Acquire) {
        return Some("starting".into());
    }
    if state.writer.is_closed() {
        return Some("stopping".into());
    }
    if let WriterCondition::Failing(n) = condition {
        return Some(format!(
            "writer: the last {n} commits failed (see the log; disk full?)"
        ));
    }
    None
}

/// The process answers and its writer thread runs and is not stuck.
#[utoipa::path(
    get,
    path = "/health/live",
    tag = "health",
    responses(
        (status = 200, description = "`{\"status\": \"ok\"}`", body = Status),
        (status = 503, description = "`{\"status\": \"down\", \"reason\": ...}`: the writer stopped or is stuck; restart qyl", body = Status),
    )
)]
async fn live(State(state): State<AppState>) -> Response {
    status(not_live(&state), "ok", "down")
}

/// Live, started, not stopping, and commits succeed: qyl stores what it is
/// sent. Read load never makes it fail.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "health",
    responses(
        (status = 200, description = "`{\"status\": \"ready\"}`", body = Status),
        (status = 503, description = "`{\"status\": \"not_ready\", \"reason\": ...}`", body = Status),
    )
)]
async fn ready(State(state): State<AppState>) -> Response {
    status(not_ready(&state), "ready", "not_ready")
}

fn status(problem: Option<String>, ok: &'static str, failed: &'static str) -> Response {
    match problem {
        None => (
            StatusCode::OK,
            Json(Status {
                status: ok,
                reason: None,
            }),
        )
            .into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Status {
                status: failed,
                reason: Some(reason),
            }),
        )
            .into_response(),
    }
}

/// Liveness and readiness together, with storage, reads, queue, disk and
/// retention figures.
#[utoipa::path(
    get,
    path = "/health",
    tag = "health",
    responses(
        (status = 200, description = "Up: `ok`, or `degraded` with problems listed", body = Health),
        (status = 503, description = "Down: not ready (starting, stopping, the writer stopped, stuck or failing)", body = Health),
    )
)]
async fn health(State(state): State<AppState>) -> Response {
    let writer = &state.writer;
    let stats = writer.stats();
    let mut problems = Vec::new();
    let down = not_ready(&state);
    if let Some(why) = &down {
        problems.push(why.clone());
    }
    let lane = state.store.sql_lane();
    let reads = state.store.ping_within(READ_PROBE).await;
    if let Err(e) = &reads {
        problems.push(format!(
            "reads: {e} ({} ad-hoc SQL queries running, {} waiting); ingest is unaffected",
            lane.running, lane.waiting
        ));
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
    let status = if down.is_some() {
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
            reachable: reads.is_ok(),
        },
        reads: HealthReads {
            answered: reads.is_ok(),
            sql_running: lane.running,
            sql_waiting: lane.waiting,
            sql_slots: lane.slots,
        },
        queue: HealthQueue {
            rows: queued,
            capacity,
            refused_exports: stats.refused_exports.load(Ordering::Relaxed),
        },
        writer: HealthWriter {
            condition: match writer.condition() {
                WriterCondition::Running => "running",
                WriterCondition::Stopped => "stopped",
                WriterCondition::Stuck(_) => "stuck",
                WriterCondition::Failing(_) => "failing",
            },
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
    /// Why not, when the check fails.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
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
    pub reads: HealthReads,
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

/// The read side: busy readers make `/health` `degraded`, never `down`.
#[derive(Serialize, ToSchema)]
pub struct HealthReads {
    /// A read connection answered within 500 ms.
    pub answered: bool,
    pub sql_running: usize,
    pub sql_waiting: usize,
    pub sql_slots: usize,
}

#[derive(Serialize, ToSchema)]
pub struct HealthQueue {
    pub rows: usize,
    pub capacity: usize,
    pub refused_exports: u64,
}

#[derive(Serialize, ToSchema)]
pub struct HealthWriter {
    /// `running`, `stopped`, `stuck` (one step busy for 30 s) or `failing`
    /// (3 commits failed in a row).
    #[schema(value_type = String)]
    pub condition: &'static str,
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
    /// The cold tier (`[archive]`), after the last pass.
    pub archive: HealthArchive,
}

/// The Parquet archive: what it holds, and what passes moved and dropped
/// since qyl started.
#[derive(Serialize, ToSchema)]
pub struct HealthArchive {
    /// Files the archive holds, and their rows and bytes.
    pub parts: u64,
    pub rows: u64,
    pub bytes: u64,
    /// The start of the oldest archived window (RFC 3339), if any.
    pub oldest: Option<String>,
    /// Windows moved out of the database file since the start, and rows.
    pub archived_parts: u64,
    pub archived_rows: u64,
    /// Archived files dropped by retention since the start.
    pub dropped_parts: u64,
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
        archive: {
            let cold = *stats.cold.lock().unwrap_or_else(|p| p.into_inner());
            HealthArchive {
                parts: cold.parts,
                rows: cold.rows,
                bytes: cold.bytes,
                oldest: cold.oldest.map(crate::model::query::rfc3339),
                archived_parts: n(&stats.archived_parts),
                archived_rows: n(&stats.archived_rows),
                dropped_parts: n(&stats.dropped_parts),
            }
        },
    }
}
