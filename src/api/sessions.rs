//! `GET /api/v1/sessions` and `/sessions/{id}` (with `/spans` and
//! `/conversation`): what users of an LLM application did, one session at a
//! time — the list comes from the `session_entities` table the writer keeps
//! current, so it stays fast however many spans are stored.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use utoipa::IntoParams;

use super::error::ErrorBody;
use super::openapi::PageParams;
use super::params::{Params, QueryPairs};
use super::{ApiError, AppState};
use crate::model::genai::{
    Conversation, SessionDetail, SessionQuery, SessionSort, SessionSummary, ACTIVE_WINDOW_NS,
};
use crate::model::now_unix_nano;
use crate::model::query::{Page, SpanRow};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/sessions", get(list_sessions))
        .route("/sessions/{session_id}", get(get_session))
        .route("/sessions/{session_id}/spans", get(session_spans))
        .route("/sessions/{session_id}/conversation", get(conversation))
}

#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SessionListParams {
    /// `true`: only sessions with activity in the last 30 minutes.
    active: Option<bool>,
    /// Sessions in which this service took part.
    service: Option<String>,
    /// Sessions of this user (`user.id` / `enduser.id`).
    user: Option<String>,
    /// Sessions with activity at or after this time.
    since: Option<String>,
    /// Sessions that started before this time.
    until: Option<String>,
    /// `last_seen` (default), `first_seen`, `spans`, `traces`, `errors`,
    /// `requests`, `tokens` or `cost`.
    sort: Option<String>,
    /// `desc` (default) or `asc`.
    order: Option<String>,
}

fn session_id(raw: &str) -> Result<String, ApiError> {
    let id = raw.trim();
    if id.is_empty() || id.len() > 512 {
        return Err(ApiError::bad_request(
            "session_id: must be 1 to 512 characters",
        ));
    }
    Ok(id.to_string())
}

/// Sessions, most recently active first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions",
    tag = "sessions",
    params(SessionListParams, PageParams),
    responses(
        (status = 200, description = "One page of sessions", body = Page<SessionSummary>),
        (status = 400, description = "A parameter is unknown or malformed; the message names it", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn list_sessions(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Page<SessionSummary>>, ApiError> {
    let mut p = Params::new(pairs);
    let now = now_unix_nano();
    let active = p.parse::<bool>("active")?.unwrap_or(false);
    let sort = match p.get("sort") {
        None => SessionSort::default(),
        Some(s) => SessionSort::parse(&s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "sort: {s:?} is not one of {}",
                SessionSort::NAMES.join(", ")
            ))
        })?,
    };
    let ascending = match p.get("order").as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(o) => {
            return Err(ApiError::bad_request(format!(
                "order: {o:?} is not asc or desc"
            )))
        }
    };
    let q = SessionQuery {
        active_since: active.then(|| now.saturating_sub(ACTIVE_WINDOW_NS)),
        service: p.get("service"),
        user: p.get("user"),
        since: p.time("since")?,
        until: p.time("until")?,
        sort,
        ascending,
        page: p.page(state.config.query.max_page)?,
    };
    p.reject_unknown()?;
    if let (Some(s), Some(u)) = (q.since, q.until) {
        if s >= u {
            return Err(ApiError::bad_request("since: must be before until"));
        }
    }
    Ok(Json(state.store.list_sessions(q, now).await?))
}

/// One session: its summary and its traces in time order.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{session_id}",
    tag = "sessions",
    params(("session_id" = String, Path, description = "The session id")),
    responses(
        (status = 200, description = "The session", body = SessionDetail),
        (status = 400, description = "Not a session id", body = ErrorBody),
        (status = 404, description = "No session with that id", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn get_session(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<SessionDetail>, ApiError> {
    let id = session_id(&raw)?;
    Params::new(pairs).reject_unknown()?;
    match state.store.get_session(id.clone(), now_unix_nano()).await? {
        Some(s) => Ok(Json(s)),
        None => Err(ApiError::not_found(format!("no session {id:?}"))),
    }
}

/// The spans of a session's traces, oldest first.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{session_id}/spans",
    tag = "sessions",
    params(("session_id" = String, Path, description = "The session id"), PageParams),
    responses(
        (status = 200, description = "One page of the session's spans", body = Page<SpanRow>),
        (status = 400, description = "A parameter is unknown or malformed", body = ErrorBody),
        (status = 404, description = "No session with that id", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn session_spans(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Page<SpanRow>>, ApiError> {
    let id = session_id(&raw)?;
    let mut p = Params::new(pairs);
    let page = p.page(state.config.query.max_page)?;
    p.reject_unknown()?;
    match state
        .store
        .session_spans(id.clone(), page, now_unix_nano())
        .await?
    {
        Some(s) => Ok(Json(s)),
        None => Err(ApiError::not_found(format!("no session {id:?}"))),
    }
}

/// The session's conversation: the messages of its GenAI calls in order,
/// from `gen_ai.input.messages` / `gen_ai.output.messages` span attributes
/// or the matching span or log events. Empty when content was not recorded.
#[utoipa::path(
    get,
    path = "/api/v1/sessions/{session_id}/conversation",
    tag = "sessions",
    params(("session_id" = String, Path, description = "The session id")),
    responses(
        (status = 200, description = "The turns in order", body = Conversation),
        (status = 400, description = "Not a session id", body = ErrorBody),
        (status = 404, description = "No session with that id", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
        (status = 504, description = "The query ran past its deadline", body = ErrorBody),
    )
)]
async fn conversation(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Conversation>, ApiError> {
    let id = session_id(&raw)?;
    Params::new(pairs).reject_unknown()?;
    match state
        .store
        .conversation(id.clone(), now_unix_nano())
        .await?
    {
        Some(c) => Ok(Json(c)),
        None => Err(ApiError::not_found(format!("no session {id:?}"))),
    }
}
