//! `/api/v1/releases`: the releases qyl has seen (`service.version` per
//! service and environment) with what each brought (new and regressed
//! error groups, error rate before and after), and a way for CI to record a
//! deploy before its first span arrives.

use axum::extract::{rejection::JsonRejection, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::params::{Params, QueryPairs};
use super::{ApiError, AppState};
use crate::model::errors::{ErrorCommand, ReleaseRow};
use crate::model::now_unix_nano;

pub fn routes() -> Router<AppState> {
    Router::new().route("/releases", get(list_releases).post(record_release))
}

/// The filters of `/releases`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ReleaseParams {
    /// Service name, exactly.
    service: Option<String>,
    /// Deployment environment, exactly.
    environment: Option<String>,
    /// Releases to return, newest first (default 50).
    #[param(minimum = 1, default = 50)]
    limit: Option<u32>,
}

/// Releases, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/releases",
    tag = "errors",
    params(ReleaseParams),
    responses(
        (status = 200, description = "Releases with their new and regressed groups and error rates", body = Vec<ReleaseRow>),
        (status = 400, description = "A parameter is unknown or malformed", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
    )
)]
async fn list_releases(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Vec<ReleaseRow>>, ApiError> {
    let mut p = Params::new(pairs);
    let service = p.get("service");
    let environment = p.get("environment");
    let max = state.config.query.max_page;
    let limit = p.parse::<usize>("limit")?.unwrap_or(50);
    if limit == 0 || limit > max {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {max}"
        )));
    }
    p.reject_unknown()?;
    Ok(Json(
        state.store.releases(service, environment, limit).await?,
    ))
}

/// A deploy, as CI reports it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRelease {
    /// `service.name` of the deployed service.
    service: String,
    /// `service.version` it now runs.
    version: String,
    /// `deployment.environment.name`, if the service sets one.
    #[serde(default)]
    environment: Option<String>,
}

/// Records a deploy (a release seen now), so regressions and error rates
/// are measured from the deploy rather than from the first span.
#[utoipa::path(
    post,
    path = "/api/v1/releases",
    tag = "errors",
    request_body = NewRelease,
    responses(
        (status = 201, description = "The release as recorded", body = ReleaseRow),
        (status = 400, description = "Not JSON, or an empty service or version", body = ErrorBody),
        (status = 503, description = "The write queue is full or qyl is stopping; retry", body = ErrorBody),
    )
)]
async fn record_release(
    State(state): State<AppState>,
    body: Result<Json<NewRelease>, JsonRejection>,
) -> Result<(StatusCode, Json<ReleaseRow>), ApiError> {
    let Json(req) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a JSON body like {{\"service\": \"api\", \"version\": \"1.4.0\", \"environment\": \"prod\"}}: {}",
            e.body_text()
        ))
    })?;
    let service = req.service.trim().to_string();
    let version = req.version.trim().to_string();
    let environment = req
        .environment
        .map(|e| e.trim().to_string())
        .filter(|e| !e.is_empty());
    if service.is_empty() || version.is_empty() {
        return Err(ApiError::bad_request(
            "service and version may not be empty",
        ));
    }
    super::errors::write(
        &state,
        ErrorCommand::RecordRelease {
            service: service.clone(),
            environment: environment.clone().unwrap_or_default(),
            version: version.clone(),
            at_unix_nano: now_unix_nano(),
        },
    )
    .await?;
    let rows = state
        .store
        .releases(Some(service.clone()), environment.clone(), usize::MAX >> 1)
        .await?;
    rows.into_iter()
        .find(|r| r.version == version && r.environment == environment)
        .map(|r| (StatusCode::CREATED, Json(r)))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the release was recorded but cannot be read back",
            )
        })
}
