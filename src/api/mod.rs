//! The HTTP API on the main port: REST under `/api/v1`, MCP at `/mcp`
//! ([`crate::mcp`]), health checks and Prometheus text for qyl itself.
//! Handlers are thin: they parse the request into `model::query` types,
//! call the [`Store`], and serialise the answer. Errors are always the JSON
//! of [`ApiError`].

pub mod auth;
pub mod dashboard;
pub mod error;
pub mod errors;
pub mod functions;
pub mod genai;
pub mod health;
pub mod live;
pub mod logs;
pub mod metrics;
pub mod openapi;
pub mod overview;
pub mod params;
pub mod releases;
pub mod sessions;
pub mod slo;
pub mod sql;
pub mod traces;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use axum::http::{header, HeaderValue, Uri};
use axum::Router;

pub use error::ApiError;

use crate::config::Config;
use crate::storage::retention::RetentionStats;
use crate::storage::writer::WriterHandle;
use crate::storage::Store;
use crate::stream::Hub;

/// What every handler may use.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<Store>,
    pub writer: WriterHandle,
    /// The GenAI price table ingest prices with (shown by the GenAI API).
    pub pricing: Arc<crate::ingest::pricing::PriceTable>,
    pub hub: Arc<Hub>,
    /// What the retention thread has done, for `/health`.
    pub retention: Arc<RetentionStats>,
    pub config: Arc<Config>,
    pub started: Instant,
    /// Set once migrations ran and the writer is up.
    pub ready: Arc<AtomicBool>,
    /// Open live streams, against `stream.max_clients`.
    pub live: Arc<live::LiveClients>,
    /// The Lua functions engine.
    pub functions: Arc<crate::functions::engine::Engine>,
    /// Cancelled at shutdown: ends MCP sessions, whose streams would
    /// otherwise hold the HTTP server open.
    pub mcp_stop: tokio_util::sync::CancellationToken,
}

/// `/api/v1/*`, `/mcp`, `/health*`, `/metrics` and the dashboard, with JSON
/// errors for unknown API routes.
pub fn router(state: AppState) -> Router {
    let mcp = crate::mcp::service(state.clone(), state.mcp_stop.clone());
    let api = Router::new()
        .merge(live::routes())
        .merge(traces::routes())
        .merge(logs::routes())
        .merge(metrics::routes())
        .merge(overview::routes())
        .merge(genai::routes())
        .merge(sessions::routes())
        .merge(sql::routes())
        .merge(errors::routes())
        .merge(releases::routes())
        .merge(slo::routes())
        .merge(functions::routes())
        .merge(openapi::routes())
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(axum::middleware::map_response(no_store));
    Router::new()
        .nest("/api/v1", api)
        .nest_service("/mcp", mcp)
        .merge(health::routes())
        .merge(crate::telemetry::routes())
        .fallback(dashboard::serve)
        .with_state(state)
}

/// True when `path` is `prefix` itself or below it (`/api`, `/api/v1`,
/// never `/apix`): how auth scopes and the dashboard's reserved routes read
/// paths.
pub fn is_under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

async fn unknown_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such API route: {}", uri.path()))
}

async fn wrong_method(method: axum::http::Method, uri: Uri) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
}

/// Read answers are live data: never cache them.
async fn no_store(mut resp: axum::response::Response) -> axum::response::Response {
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
