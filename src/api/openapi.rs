//! `GET /api/v1/openapi.json`: the REST API described as OpenAPI 3.1, so
//! clients can be generated and tools can explore the API without reading
//! our source. The document is built from the handlers' `#[utoipa::path]`
//! annotations and the response types themselves, so it cannot drift far
//! from what the router serves; `tests/openapi.rs` checks the two agree.
//!
//! The query parameters are read by hand in [`super::params`] (to reject
//! unknown ones and name the bad one), so the structs below exist only to
//! describe them.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi};

use super::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "qyl",
        description = "Self-hosted observability for LLM applications: query the traces, \
spans, logs and metrics qyl received over OTLP.\n\n\
Times in parameters are RFC 3339 (`2026-11-23T10:00:00Z`), a duration ago (`15m`, `2h`, \
`7d`), `now`, or Unix milliseconds. Times in answers are RFC 3339 with nanoseconds, plus \
Unix nanoseconds as decimal strings. Durations are milliseconds. An unknown query \
parameter is a 400, never silently ignored. Every error is \
`{\"error\": {\"code\", \"message\"}}`."
    ),
    paths(
        super::traces::list_traces,
        super::traces::get_trace,
        super::traces::query_spans,
        super::logs::query_logs,
        super::logs::log_histogram,
        super::metrics::list_metrics,
        super::metrics::metric_series,
        super::overview::services,
        super::genai::genai_stats,
        super::genai::genai_models,
        super::genai::genai_spans,
        super::genai::genai_pricing,
        super::sessions::list_sessions,
        super::sessions::get_session,
        super::sessions::session_spans,
        super::sessions::conversation,
        super::overview::storage,
        super::sql::run_sql,
        super::sql::sql_queue,
        super::errors::list_errors,
        super::errors::get_error,
        super::errors::patch_error,
        super::errors::merge_errors,
        super::errors::error_histogram,
        super::errors::list_events,
        super::errors::get_event,
        super::errors::get_triage,
        super::errors::add_note,
        super::releases::list_releases,
        super::releases::record_release,
        super::releases::get_release,
        super::slo::list_slos,
        super::slo::list_transitions,
        super::functions::list_functions,
        super::functions::diagnostics,
        super::functions::invocations,
        openapi_json,
        super::live::live,
        crate::telemetry::metrics,
        super::health::health,
        super::health::live,
        super::health::ready,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "traces", description = "Traces and spans"),
        (name = "logs", description = "Log records"),
        (name = "metrics", description = "Metrics and their series"),
        (name = "overview", description = "Services seen and what the database holds"),
        (name = "genai", description = "LLM calls: tokens, cost, latency, errors"),
        (name = "sessions", description = "Sessions and conversations of LLM applications"),
        (name = "sql", description = "Read-only SQL over the stored tables"),
        (name = "errors", description = "Error groups, their events and breadcrumbs, releases and SLOs"),
        (name = "functions", description = "Lua functions: what is loaded, diagnostics, invocations"),
        (name = "live", description = "Committed records as they arrive (Server-Sent Events)"),
        (name = "meta", description = "This document, and qyl's own metrics for Prometheus"),
        (name = "health", description = "Liveness and readiness; never behind auth"),
    )
)]
pub struct ApiDoc;

/// Declares the bearer scheme the global `security` refers to, and lifts it
/// from the health checks, which orchestrators call without a token.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "`Authorization: Bearer <token>`, the token set as `auth.token`.",
                    ))
                    .build(),
            ),
        );
        for (path, item) in doc.paths.paths.iter_mut() {
            if path == "/health" || path.starts_with("/health/") {
                if let Some(op) = item.get.as_mut() {
                    op.security = Some(Vec::new());
                }
            }
        }
    }
}

/// The document is fixed for the life of the process: build it once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_json()
        .expect("the OpenAPI document serialises")
});

pub fn routes() -> Router<AppState> {
    Router::new().route("/openapi.json", get(openapi_json))
}

/// This OpenAPI document.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "The OpenAPI 3.1 document", body = Object))
)]
async fn openapi_json() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

/// The span filters of `/traces` and `/spans`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SpanFilterParams {
    /// Service name (`service.name`), exactly.
    service: Option<String>,
    /// Span name, exactly.
    name: Option<String>,
    /// Span status: `ok`, `error` or `unset` (any case). For `/traces`, the
    /// status of the trace as a whole (`error` if any span failed).
    status: Option<String>,
    /// Span kind: `server`, `client`, `internal`, `producer`, `consumer` or
    /// `unspecified` (any case, `SPAN_KIND_` prefix allowed).
    kind: Option<String>,
    /// Shortest duration: milliseconds (`250`, `1.5`) or with a unit (`2s`).
    min_duration_ms: Option<String>,
    /// Longest duration: milliseconds (`250`, `1.5`) or with a unit (`2s`).
    max_duration_ms: Option<String>,
    /// Earliest start time, inclusive: RFC 3339, a duration ago like `15m`,
    /// `now`, or Unix milliseconds.
    since: Option<String>,
    /// Latest start time, exclusive: RFC 3339, a duration ago like `15m`,
    /// `now`, or Unix milliseconds.
    until: Option<String>,
    /// Session id (`session.id`), exactly.
    session_id: Option<String>,
    /// Trace id: 32 hex digits.
    trace_id: Option<String>,
    /// A pattern, not a literal name: `attr.KEY=VALUE` keeps spans whose
    /// attribute (or, failing that, resource attribute) KEY has the text
    /// VALUE. Repeat for several; all must match.
    #[param(rename = "attr.KEY")]
    attr: Option<String>,
}

/// Paging of the list endpoints.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Items per page, 1 to `query.max_page` (1000 unless configured).
    #[param(minimum = 1, default = 50)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page, as returned.
    cursor: Option<String>,
}

/// The filters of `/logs`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LogParams {
    /// Service name (`service.name`), exactly.
    service: Option<String>,
    /// Lowest severity: a number 1-24 or a name (`TRACE`, `DEBUG`, `INFO`,
    /// `WARN`, `ERROR`, `FATAL`, optionally with 2-4 as in `INFO2`).
    severity_min: Option<String>,
    /// Trace id: 32 hex digits.
    trace_id: Option<String>,
    /// Span id: 16 hex digits.
    span_id: Option<String>,
    /// Session id (`session.id`), exactly.
    session_id: Option<String>,
    /// Text the body contains (case-insensitive).
    q: Option<String>,
    /// Earliest time, inclusive: RFC 3339, a duration ago like `15m`, `now`,
    /// or Unix milliseconds.
    since: Option<String>,
    /// Latest time, exclusive: RFC 3339, a duration ago like `15m`, `now`,
    /// or Unix milliseconds.
    until: Option<String>,
    /// A pattern, not a literal name: `attr.KEY=VALUE` keeps records whose
    /// attribute (or resource attribute) KEY has the text VALUE. Repeat for
    /// several; all must match.
    #[param(rename = "attr.KEY")]
    attr: Option<String>,
}

/// The filters and resume point of `/live`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct LiveParams {
    /// Service name (`service.name`), exactly.
    service: Option<String>,
    /// Trace id: 32 hex digits. Excludes metric points.
    trace_id: Option<String>,
    /// Span status: `ok`, `error` or `unset`. Spans only; without `types`,
    /// also means spans only.
    status: Option<String>,
    /// Shortest span duration: milliseconds (`250`, `1.5`) or with a unit
    /// (`2s`). Spans only; without `types`, also means spans only.
    min_duration_ms: Option<String>,
    /// Lowest log severity: a number 1-24 or a name (`TRACE`, `DEBUG`,
    /// `INFO`, `WARN`, `ERROR`, `FATAL`). Logs only; without `types`, also
    /// means logs only.
    severity_min: Option<String>,
    /// Comma list of `span`, `log`, `metric`, `error` (error groups that
    /// became new, regressed or escalating), `function` (function
    /// invocations and `runtime.stream.publish` events). Default `span,log`.
    types: Option<String>,
    /// Resume after this event id, for clients that cannot send the
    /// `Last-Event-ID` header (which wins when both are given).
    last_event_id: Option<u64>,
}

/// The parameters of `/metrics/{name}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SeriesParams {
    /// Start of the range: RFC 3339, a duration ago like `15m`, `now`, or
    /// Unix milliseconds. Default: an hour before `until`.
    since: Option<String>,
    /// End of the range: RFC 3339, a duration ago like `15m`, `now`, or Unix
    /// milliseconds. Default: now.
    until: Option<String>,
    /// Bucket width: milliseconds (`60000`) or with a unit (`1m`). Default:
    /// about 120 buckets over the range, at least 1 s; at most 11000 buckets.
    step: Option<String>,
    /// Service name (`service.name`), exactly.
    service: Option<String>,
    /// Merge series per value of these attribute keys (comma-separated;
    /// `service.name` is the service); empty (`group_by=`) merges all into
    /// one. Sums and counts add up, histogram buckets merge (percentiles
    /// stay exact), gauges add their last values, weight their averages and
    /// keep min/max. Not for summaries. Default: one series per attribute set.
    group_by: Option<String>,
    /// A pattern, not a literal name: `attr.KEY=VALUE` keeps series whose
    /// attribute KEY has the text VALUE. Repeat for several.
    #[param(rename = "attr.KEY")]
    attr: Option<String>,
}

/// The window of `/services`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct WindowParams {
    /// Start of the window: RFC 3339, a duration ago like `15m`, `now`, or
    /// Unix milliseconds. Default: an hour before `until`.
    since: Option<String>,
    /// End of the window: RFC 3339, a duration ago like `15m`, `now`, or
    /// Unix milliseconds. Default: now.
    until: Option<String>,
    /// Adds `series` to each service: spans, errors and p95 per step of this
    /// width (milliseconds, or with a unit like `1m`); at most 11000 steps.
    step: Option<String>,
}

/// The filters of `/genai/stats`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct GenAiParams {
    /// Start of the window: RFC 3339, a duration ago like `15m`, `now`, or
    /// Unix milliseconds. Default: 24 hours before `until`.
    since: Option<String>,
    /// End of the window. Default: now.
    until: Option<String>,
    /// Bucket width of `over_time`: milliseconds or with a unit (`5m`).
    /// Default: about 60 buckets over the window.
    step: Option<String>,
    /// Service name (`service.name`), exactly.
    service: Option<String>,
    /// Provider (`gen_ai.provider.name`, or the older `gen_ai.system`).
    provider: Option<String>,
    /// Request or response model, exactly.
    model: Option<String>,
    /// Session (`session.id`, else `gen_ai.conversation.id`).
    session_id: Option<String>,
}
