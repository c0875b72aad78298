//! `/api/v1/errors`: error groups, their events (with frames and
//! breadcrumbs), and the user's changes to them (status, merge).
//!
//! Changes are writes: they go through the writer as a batch item, so they
//! are ordered with the events being counted and land in the same kind of
//! transaction; the answer is read back after the commit.

use axum::extract::{rejection::JsonRejection, Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::openapi::PageParams;
use super::params::{Params, QueryPairs, Steps};
use super::{ApiError, AppState};
use crate::model::errors::{
    ErrorCommand, ErrorEventDetail, ErrorEventRow, ErrorGroupDetail, ErrorGroupRow, ErrorHistogram,
    ErrorNote, ErrorQuery, ErrorSort, StatusChange,
};
use crate::model::now_unix_nano;
use crate::model::query::Page;
use crate::model::Batch;
use crate::storage::queries::errors::is_status_filter;
use crate::storage::writer::WriteError;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/errors", get(list_errors))
        .route("/errors/merge", post(merge_errors))
        .route("/errors/histogram", get(error_histogram))
        .route("/errors/{id}", get(get_error).patch(patch_error))
        .route("/errors/{id}/events", get(list_events))
        .route("/errors/{id}/triage", get(get_triage))
        .route("/errors/{id}/notes", post(add_note))
        .route("/errors/{id}/events/{event_id}", get(get_event))
}

/// The filters of `/errors`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ErrorListParams {
    /// `unresolved`, `resolved`, `archived`, `merged`, or an unresolved
    /// substatus: `new`, `ongoing`, `regressed`, `escalating`. Default: all
    /// but merged.
    status: Option<String>,
    /// Groups with events from this service.
    service: Option<String>,
    /// Groups first or last seen in this release, or with stored events from it.
    release: Option<String>,
    /// `exception`, `status`, `genai` or `genai_soft`.
    category: Option<String>,
    /// Last seen at or after: RFC 3339, a duration ago like `24h`, `now`,
    /// or Unix milliseconds.
    since: Option<String>,
    /// `last_seen` (default), `count` or `users`; always descending.
    sort: Option<String>,
    /// Text to find, whatever its case, in the error type, message
    /// template, culprit, a service, or the first or last release.
    q: Option<String>,
}

/// The longest text `q` may search for.
const MAX_SEARCH_CHARS: usize = 500;

/// Error groups, most recently seen (or most frequent) first.
#[utoipa::path(
    get,
    path = "/api/v1/errors",
    tag = "errors",
    params(ErrorListParams, PageParams),
    responses(
        (status = 200, description = "One page of error groups", body = Page<ErrorGroupRow>),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn list_errors(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Page<ErrorGroupRow>>, ApiError> {
    let mut p = Params::new(pairs);
    let status = p.get("status").map(|s| s.to_ascii_lowercase());
    if let Some(s) = &status {
        if !is_status_filter(s) {
            return Err(ApiError::bad_request(format!(
                "status: {s:?} is not one of unresolved, resolved, archived, merged, new, ongoing, regressed, escalating"
            )));
        }
    }
    let sort = match p.get("sort").as_deref() {
        None | Some("last_seen") => ErrorSort::LastSeen,
        Some("count") => ErrorSort::Count,
        Some("users") => ErrorSort::Users,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "sort: {other:?} is not one of last_seen, count, users"
            )))
        }
    };
    // Blank text searches for nothing: the list unfiltered.
    let search = p
        .get("q")
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if search
        .as_ref()
        .is_some_and(|t| t.chars().count() > MAX_SEARCH_CHARS)
    {
        return Err(ApiError::bad_request(format!(
            "q: at most {MAX_SEARCH_CHARS} characters"
        )));
    }
    let q = ErrorQuery {
        status,
        service: p.get("service"),
        release: p.get("release"),
        category: p.get("category"),
        since: p.time("since")?,
        q: search,
        sort,
        page: p.page(state.config.query.max_page)?,
        now_unix_nano: now_unix_nano(),
    };
    p.reject_unknown()?;
    Ok(Json(state.store.list_errors(q).await?))
}

/// The parameters of `/errors/histogram`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct HistogramParams {
    /// Group ids, comma-separated (1 to 200).
    ids: String,
    /// Start: RFC 3339, a duration ago like `24h`, `now`, or Unix
    /// milliseconds. Default: 24 hours ago.
    since: Option<String>,
    /// End, as `since`. Default: now.
    until: Option<String>,
    /// Bucket width (`1h`, `5m`, or milliseconds). Default: about 24
    /// buckets over the range. Buckets start at multiples of the step.
    step: Option<String>,
}

/// Groups one histogram may ask for, and buckets it may hold.
const HISTOGRAM_MAX_IDS: usize = 200;
const HISTOGRAM_MAX_BUCKETS: u64 = 1000;

/// Counts over time of several groups at once (the list's sparklines).
#[utoipa::path(
    get,
    path = "/api/v1/errors/histogram",
    tag = "errors",
    params(HistogramParams),
    responses(
        (status = 200, description = "Events per bucket per group", body = ErrorHistogram),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn error_histogram(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<ErrorHistogram>, ApiError> {
    let mut p = Params::new(pairs);
    let ids_text = p
        .get("ids")
        .ok_or_else(|| ApiError::bad_request("ids: give group ids, comma-separated"))?;
    let ids = ids_text
        .split(',')
        .map(|t| {
            group_id(t).map_err(|_| ApiError::bad_request(format!("ids: {t:?} is not a group id")))
        })
        .collect::<Result<Vec<i64>, ApiError>>()?;
    if ids.len() > HISTOGRAM_MAX_IDS {
        return Err(ApiError::bad_request(format!(
            "ids: at most {HISTOGRAM_MAX_IDS} groups at once"
        )));
    }
    let now = now_unix_nano();
    let until = p.time("until")?.unwrap_or(now);
    let since = p
        .time("since")?
        .unwrap_or(until.saturating_sub(24 * 3_600_000_000_000));
    let step = p.duration_ms("step")?;
    p.reject_unknown()?;
    if since >= until {
        return Err(ApiError::bad_request("since: must be before until"));
    }
    // About 24 buckets in whole minutes: a day of hourly bars by default.
    let buckets = Steps {
        about: 24,
        unit_ns: 60_000_000_000,
        min_ns: 1_000_000_000,
        max_buckets: HISTOGRAM_MAX_BUCKETS,
    }
    .buckets(step, since, until)?;
    Ok(Json(
        state.store.error_histogram(ids, buckets, until).await?,
    ))
}

fn group_id(text: &str) -> Result<i64, ApiError> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| ApiError::bad_request(format!("{text:?} is not an error group id")))
}

fn no_group(id: i64) -> ApiError {
    ApiError::not_found(format!("no error group {id}"))
}

/// One error group, with why its events are grouped together.
#[utoipa::path(
    get,
    path = "/api/v1/errors/{id}",
    tag = "errors",
    params(("id" = i64, Path, description = "Error group id")),
    responses(
        (status = 200, description = "The group", body = ErrorGroupDetail),
        (status = 400, description = "Not a group id", body = ErrorBody),
        (status = 404, description = "No group with that id", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
    )
)]
async fn get_error(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<ErrorGroupDetail>, ApiError> {
    Params::new(pairs).reject_unknown()?;
    group_detail(&state, group_id(&id)?).await
}

/// The newest automatic triage report on a group (`[triage]`): written in
/// the background when the group became new, regressed or escalating.
#[utoipa::path(
    get,
    path = "/api/v1/errors/{id}/triage",
    tag = "errors",
    params(("id" = i64, Path, description = "Error group id")),
    responses(
        (status = 200, description = "The newest report", body = crate::errors::triage::TriageReport),
        (status = 400, description = "Not a group id", body = ErrorBody),
        (status = 404, description = "No group with that id, or no report on it yet", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
    )
)]
async fn get_triage(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<crate::errors::triage::TriageReport>, ApiError> {
    Params::new(pairs).reject_unknown()?;
    let id = group_id(&id)?;
    if let Some(report) = state.store.triage_report(id).await? {
        return Ok(Json(report));
    }
    match state.store.error_status(id).await? {
        None => Err(no_group(id)),
        Some(_) => Err(ApiError::not_found(format!(
            "error group {id} has no triage report yet"
        ))),
    }
}

/// The group as it is now, or 404.
async fn group_detail(state: &AppState, id: i64) -> Result<Json<ErrorGroupDetail>, ApiError> {
    state
        .store
        .get_error(id, now_unix_nano())
        .await?
        .map(Json)
        .ok_or_else(|| no_group(id))
}

/// Refuses a change to a group that does not exist (404) or that is merged
/// into another (400, the message ending with `merged`).
async fn require_unmerged(state: &AppState, id: i64, merged: &str) -> Result<(), ApiError> {
    match state.store.error_status(id).await?.as_deref() {
        None => Err(no_group(id)),
        Some("merged") => Err(ApiError::bad_request(format!(
            "error group {id} is {merged}"
        ))),
        Some(_) => Ok(()),
    }
}

/// A group's events, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/errors/{id}/events",
    tag = "errors",
    params(("id" = i64, Path, description = "Error group id"), PageParams),
    responses(
        (status = 200, description = "One page of events", body = Page<ErrorEventRow>),
        (status = 400, description = "A parameter is unknown or malformed", body = ErrorBody),
        (status = 404, description = "No group with that id", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
    )
)]
async fn list_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Page<ErrorEventRow>>, ApiError> {
    let mut p = Params::new(pairs);
    let page = p.page(state.config.query.max_page)?;
    p.reject_unknown()?;
    let id = group_id(&id)?;
    if state.store.error_status(id).await?.is_none() {
        return Err(no_group(id));
    }
    Ok(Json(state.store.error_events(id, page).await?))
}

/// One event: stack frames and up to 100 breadcrumbs, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/errors/{id}/events/{event_id}",
    tag = "errors",
    params(
        ("id" = i64, Path, description = "Error group id"),
        ("event_id" = String, Path, description = "Event id (32 hex digits)"),
    ),
    responses(
        (status = 200, description = "The event", body = ErrorEventDetail),
        (status = 400, description = "Not a group or event id", body = ErrorBody),
        (status = 404, description = "No such event in that group", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
    )
)]
async fn get_event(
    State(state): State<AppState>,
    Path((id, event_id)): Path<(String, String)>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<ErrorEventDetail>, ApiError> {
    Params::new(pairs).reject_unknown()?;
    let id = group_id(&id)?;
    let event_id = event_id.trim().to_ascii_lowercase();
    if event_id.len() != 32 || !event_id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(ApiError::bad_request(format!(
            "{event_id:?} is not an event id (32 hex digits)"
        )));
    }
    state
        .store
        .error_event(id, event_id.clone())
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no event {event_id} in error group {id}")))
}

/// `PATCH /api/v1/errors/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorPatch {
    /// `unresolved`, `resolved` or `archived`.
    status: String,
    /// With `resolved`: resolve only for the group's current release; an
    /// event from a newer release in the same environment regresses it.
    #[serde(default)]
    in_next_release: bool,
    /// With `archived`: archive until the group escalates rather than forever.
    #[serde(default)]
    until_escalating: bool,
}

/// Resolves, archives or reopens a group.
#[utoipa::path(
    patch,
    path = "/api/v1/errors/{id}",
    tag = "errors",
    params(("id" = i64, Path, description = "Error group id")),
    request_body = ErrorPatch,
    responses(
        (status = 200, description = "The group after the change", body = ErrorGroupDetail),
        (status = 400, description = "Not JSON, an unknown status, or a merged group", body = ErrorBody),
        (status = 404, description = "No group with that id", body = ErrorBody),
        (status = 503, description = "The write queue is full or qyl is stopping; retry", body = ErrorBody),
    )
)]
async fn patch_error(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<ErrorPatch>, JsonRejection>,
) -> Result<Json<ErrorGroupDetail>, ApiError> {
    let id = group_id(&id)?;
    let Json(patch) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a JSON body like {{\"status\": \"resolved\", \"in_next_release\": true}}: {}",
            e.body_text()
        ))
    })?;
    let change = match (
        patch.status.as_str(),
        patch.in_next_release,
        patch.until_escalating,
    ) {
        ("unresolved", false, false) => StatusChange::Unresolve,
        ("resolved", false, false) => StatusChange::ResolveNow,
        ("resolved", true, false) => StatusChange::ResolveInNextRelease,
        ("archived", false, false) => StatusChange::ArchiveForever,
        ("archived", false, true) => StatusChange::ArchiveUntilEscalating,
        ("unresolved" | "resolved" | "archived", _, _) => {
            return Err(ApiError::bad_request(
                "in_next_release goes with status resolved, until_escalating with archived",
            ))
        }
        (other, _, _) => {
            return Err(ApiError::bad_request(format!(
                "status: {other:?} is not one of unresolved, resolved, archived"
            )))
        }
    };
    require_unmerged(&state, id, "merged into another; change that one").await?;
    write(
        &state,
        ErrorCommand::SetStatus {
            group_id: id,
            change,
            at_unix_nano: now_unix_nano(),
        },
    )
    .await?;
    group_detail(&state, id).await
}

/// `POST /api/v1/errors/{id}/notes`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// The note, up to 10,000 characters (Markdown is shown as written).
    text: String,
    /// Who wrote it, up to 100 characters. Default: `api`.
    #[serde(default)]
    author: String,
}

/// Leaves a note on a group (Sentry's issue comment).
#[utoipa::path(
    post,
    path = "/api/v1/errors/{id}/notes",
    tag = "errors",
    params(("id" = i64, Path, description = "Error group id")),
    request_body = NoteRequest,
    responses(
        (status = 201, description = "The note as stored", body = ErrorNote),
        (status = 400, description = "Not JSON, empty or too long, or a merged group", body = ErrorBody),
        (status = 404, description = "No group with that id", body = ErrorBody),
        (status = 503, description = "The write queue is full or qyl is stopping; retry", body = ErrorBody),
    )
)]
async fn add_note(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Result<Json<NoteRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<ErrorNote>), ApiError> {
    let id = group_id(&id)?;
    let Json(req) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a JSON body like {{\"text\": \"Caused by the 1.4 prompt change\"}}: {}",
            e.body_text()
        ))
    })?;
    let at = now_unix_nano();
    let command =
        ErrorCommand::add_note(id, &req.author, &req.text, at).map_err(ApiError::bad_request)?;
    require_unmerged(&state, id, "merged into another; leave the note there").await?;
    write(&state, command).await?;
    let note = state
        .store
        .error_notes(id)
        .await?
        .into_iter()
        .rev()
        .find(|n| n.created_unix_nano == at.to_string())
        .ok_or_else(|| no_group(id))?;
    Ok((StatusCode::CREATED, Json(note)))
}

/// `POST /api/v1/errors/merge`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeRequest {
    /// The group that stays.
    target: i64,
    /// Groups folded into it: their counts, events and fingerprints (future
    /// events with their fingerprints join the target).
    sources: Vec<i64>,
}

/// Merges groups into one.
#[utoipa::path(
    post,
    path = "/api/v1/errors/merge",
    tag = "errors",
    request_body = MergeRequest,
    responses(
        (status = 200, description = "The target group after the merge", body = ErrorGroupDetail),
        (status = 400, description = "Not JSON, no sources, or a group already merged", body = ErrorBody),
        (status = 404, description = "A group does not exist", body = ErrorBody),
        (status = 503, description = "The write queue is full or qyl is stopping; retry", body = ErrorBody),
    )
)]
async fn merge_errors(
    State(state): State<AppState>,
    body: Result<Json<MergeRequest>, JsonRejection>,
) -> Result<Json<ErrorGroupDetail>, ApiError> {
    let Json(req) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a JSON body like {{\"target\": 1, \"sources\": [2, 3]}}: {}",
            e.body_text()
        ))
    })?;
    let mut sources = req.sources.clone();
    sources.sort_unstable();
    sources.dedup();
    if sources.is_empty() || sources.contains(&req.target) {
        return Err(ApiError::bad_request(
            "sources: give at least one group other than the target",
        ));
    }
    for id in std::iter::once(req.target).chain(sources.iter().copied()) {
        require_unmerged(&state, id, "already merged into another").await?;
    }
    write(
        &state,
        ErrorCommand::Merge {
            target: req.target,
            sources,
        },
    )
    .await?;
    group_detail(&state, req.target).await
}

/// Sends a command through the writer and waits for its commit.
pub(super) async fn write(state: &AppState, command: ErrorCommand) -> Result<(), ApiError> {
    let batch = Batch {
        error_commands: vec![command],
        ..Batch::default()
    };
    write_batch(state, batch).await
}

/// Sends a batch of changes through the writer and waits for its commit.
pub(super) async fn write_batch(state: &AppState, batch: Batch) -> Result<(), ApiError> {
    state
        .writer
        .write(batch)
        .await
        .map(|_| ())
        .map_err(|e| match e {
            WriteError::Commit(m) => ApiError::new(
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                format!("the change was not stored: {m}"),
            ),
            other => ApiError::unavailable(other.to_string()),
        })
}
