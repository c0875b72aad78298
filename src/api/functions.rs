//! `GET /api/v1/functions…`: the Lua functions that are loaded, what the
//! linter says about the scripts, and each function's invocation history.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::openapi::PageParams;
use super::params::{Params, QueryPairs};
use super::{ApiError, AppState};
use crate::functions::engine::FunctionInfo;
use crate::functions::lint::{check_dir_with, Diagnostic};
use crate::model::function::{InvocationQuery, InvocationRow, InvocationStatus};
use crate::model::query::Page;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/functions", get(list_functions))
        .route("/functions/diagnostics", get(diagnostics))
        .route("/functions/{name}/invocations", get(invocations))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FunctionList {
    /// The scripts directory.
    pub dir: String,
    pub functions: Vec<FunctionInfo>,
    /// Result rows (invocations, their spans and logs, state changes) lost
    /// because the write queue was full when they were handed over; also
    /// `qyl_function_dropped_rows_total` on `/metrics`.
    pub dropped_rows: u64,
    /// Files whose last save did not load (their previous functions, if
    /// any, keep running and are listed with state `error`).
    pub load_errors: Vec<LoadErrorInfo>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoadErrorInfo {
    pub file: String,
    pub line: Option<u32>,
    pub message: String,
}

/// Every loaded function: trigger, state, limits and counters.
#[utoipa::path(
    get,
    path = "/api/v1/functions",
    tag = "functions",
    responses((status = 200, description = "The loaded functions", body = FunctionList))
)]
async fn list_functions(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<FunctionList>, ApiError> {
    Params::new(pairs).reject_unknown()?;
    let engine = &state.functions;
    Ok(Json(FunctionList {
        dir: engine.config.dir.display().to_string(),
        functions: engine.list(),
        dropped_rows: engine
            .executor()
            .outbox()
            .dropped_rows
            .load(std::sync::atomic::Ordering::Relaxed),
        load_errors: engine
            .load_errors()
            .into_iter()
            .map(|(_, e)| LoadErrorInfo {
                file: e.file.display().to_string(),
                line: e.line,
                message: e.message,
            })
            .collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnosticList {
    pub files: usize,
    pub functions: usize,
    pub diagnostics: Vec<DiagnosticInfo>,
}

/// One `qyl check` finding.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiagnosticInfo {
    pub file: String,
    pub line: u32,
    pub col: u32,
    /// `error`, `warning` or `info`.
    pub severity: String,
    /// `QYL2001`…; absent for load errors.
    pub code: Option<String>,
    pub message: String,
    /// `path:line:col: severity[CODE]: message`, as `qyl check` prints it.
    pub text: String,
}

impl From<Diagnostic> for DiagnosticInfo {
    fn from(d: Diagnostic) -> Self {
        DiagnosticInfo {
            text: d.to_string(),
            file: d.path.display().to_string(),
            line: d.line,
            col: d.col,
            severity: d.severity.as_str().to_string(),
            code: d.code.map(str::to_string),
            message: d.message,
        }
    }
}

/// `qyl check` over the scripts directory as it is on disk now.
#[utoipa::path(
    get,
    path = "/api/v1/functions/diagnostics",
    tag = "functions",
    responses(
        (status = 200, description = "Diagnostics of every script", body = DiagnosticList),
        (status = 500, description = "The directory could not be read", body = ErrorBody),
    )
)]
async fn diagnostics(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<DiagnosticList>, ApiError> {
    Params::new(pairs).reject_unknown()?;
    let dir = state.functions.config.dir.clone();
    let allow = state.functions.registry.http_allow().clone();
    if !dir.is_dir() {
        return Ok(Json(DiagnosticList {
            files: 0,
            functions: 0,
            diagnostics: Vec::new(),
        }));
    }
    // Loading each script runs Lua: not on a tokio worker.
    let report = tokio::task::spawn_blocking(move || check_dir_with(&dir, &allow))
        .await
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the check task failed: {e}"),
            )
        })?
        .map_err(|e| {
            ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("reading the scripts directory: {e}"),
            )
        })?;
    Ok(Json(DiagnosticList {
        files: report.files,
        functions: report.functions,
        diagnostics: report.diagnostics.into_iter().map(Into::into).collect(),
    }))
}

/// The filters of `/functions/{name}/invocations`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct InvocationParams {
    /// `running`, `completed`, `failed`, `skipped` or `timed_out`.
    status: Option<String>,
}

/// A function's invocations, newest first (skipped ones are sampled: at
/// most one row per second; `GET /functions` has the exact counts).
#[utoipa::path(
    get,
    path = "/api/v1/functions/{name}/invocations",
    tag = "functions",
    params(("name" = String, Path, description = "Function name"), InvocationParams, PageParams),
    responses(
        (status = 200, description = "One page of invocations", body = Page<InvocationRow>),
        (status = 400, description = "A parameter is unknown or malformed", body = ErrorBody),
        (status = 404, description = "No such function, loaded or stored", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn invocations(
    State(state): State<AppState>,
    Path(name): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Page<InvocationRow>>, ApiError> {
    let mut p = Params::new(pairs);
    let status = match p.get("status") {
        None => None,
        Some(s) => Some(
            InvocationStatus::parse(&s.to_ascii_lowercase()).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "status: {s:?} is not one of running, completed, failed, skipped, timed_out"
                ))
            })?,
        ),
    };
    let page = p.page(state.config.query.max_page)?;
    p.reject_unknown()?;
    let loaded = state
        .functions
        .registry
        .snapshot()
        .functions
        .contains_key(&name);
    let first_page = page.cursor.is_none();
    let result = state
        .store
        .function_invocations(InvocationQuery {
            function: name.clone(),
            status,
            page,
        })
        .await?;
    // A deleted function still has its history; a name never seen is a typo.
    if !loaded && first_page && result.items.is_empty() {
        return Err(ApiError::not_found(format!("no function named {name:?}")));
    }
    Ok(Json(result))
}
