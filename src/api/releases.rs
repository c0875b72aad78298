//! `/api/v1/releases`: the releases qyl has seen (`service.version` per
//! service and environment) with their deploys: what each brought (new and
//! regressed error groups in the window after it, error rate, latency and
//! GenAI errors before and after, SLO burn since it), and a way for CI to
//! record a deploy (with its commit and URL) before its first span arrives.

use std::time::SystemTime;

use axum::extract::{rejection::JsonRejection, Path, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::params::{parse_time, Params, QueryPairs};
use super::{ApiError, AppState};
use crate::model::deploys::{DeployRecord, DeployRow, ReleaseDetail, SloObjective};
use crate::model::errors::ErrorCommand;
use crate::model::now_unix_nano;
use crate::model::Batch;
use crate::storage::queries::releases::ReleaseLookup;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/releases", get(list_releases).post(record_release))
        .route("/releases/{version}", get(get_release))
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
        (status = 200, description = "Releases with their deploy windows, new and regressed groups and error rates", body = Vec<DeployRow>),
        (status = 400, description = "A parameter is unknown or malformed", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
    )
)]
async fn list_releases(
    State(state): State<AppState>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<Vec<DeployRow>>, ApiError> {
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
        state.store.deploys(service, environment, limit).await?,
    ))
}

/// The filters of `/releases/{version}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ReleaseDetailParams {
    /// The service the version is a release of (needed when several
    /// services or environments have that version).
    service: Option<String>,
    /// Deployment environment, exactly.
    environment: Option<String>,
}

/// One release and what changed around its deploy: the groups first seen
/// or regressed in the window after it, error rate, latency p95 and GenAI
/// error classes against the window before, each SLO's burn since the
/// deploy against before it, and the groups the deploy resolved.
#[utoipa::path(
    get,
    path = "/api/v1/releases/{version}",
    tag = "errors",
    params(("version" = String, Path, description = "The release (`service.version`)"), ReleaseDetailParams),
    responses(
        (status = 200, description = "The release with its deploy correlation", body = ReleaseDetail),
        (status = 400, description = "A parameter is unknown, or several services or environments have this version (the message lists them)", body = ErrorBody),
        (status = 404, description = "No such release", body = ErrorBody),
        (status = 503, description = "Too many queries at once; retry (see Retry-After)", body = ErrorBody),
    )
)]
async fn get_release(
    State(state): State<AppState>,
    Path(version): Path<String>,
    QueryPairs(pairs): QueryPairs,
) -> Result<Json<ReleaseDetail>, ApiError> {
    let mut p = Params::new(pairs);
    let service = p.get("service");
    let environment = p.get("environment");
    p.reject_unknown()?;
    let slos = state
        .config
        .errors
        .slo
        .iter()
        .map(|s| SloObjective {
            name: s.name.clone(),
            service: s.service.clone(),
            objective: s.objective,
        })
        .collect();
    let lookup = state
        .store
        .release_detail(
            version.clone(),
            service.clone(),
            environment,
            slos,
            now_unix_nano(),
        )
        .await?;
    match lookup {
        ReleaseLookup::Found(detail) => Ok(Json(*detail)),
        ReleaseLookup::Missing => Err(ApiError::not_found(format!(
            "no release {version:?}{}",
            service.map(|s| format!(" of {s}")).unwrap_or_default()
        ))),
        ReleaseLookup::Ambiguous(which) => Err(ApiError::bad_request(format!(
            "{version:?} is a release of several services or environments ({}): say which with service= and environment=",
            which.join(", ")
        ))),
    }
}

/// The longest texts a deploy record takes.
const MAX_NAME_CHARS: usize = 200;
const MAX_COMMIT_CHARS: usize = 100;
const MAX_URL_CHARS: usize = 2000;
/// How far in the future `deployed_at` may be (clock skew between CI and qyl).
const FUTURE_SLACK_NS: u64 = 5 * 60 * 1_000_000_000;

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
    /// The VCS revision deployed (up to 100 characters).
    #[serde(default)]
    commit: Option<String>,
    /// An http(s) link about the deploy: the CI run, a changelog, a pull request.
    #[serde(default)]
    url: Option<String>,
    /// When it was deployed: RFC 3339, Unix milliseconds (number or text),
    /// or a duration ago like `5m`. Default: now.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    deployed_at: Option<serde_json::Value>,
}

/// One line of text of at most `max` characters, or a 400 naming `field`.
fn one_line(field: &str, text: &str, max: usize) -> Result<String, ApiError> {
    let t = text.trim();
    if t.chars().count() > max {
        return Err(ApiError::bad_request(format!(
            "{field}: at most {max} characters"
        )));
    }
    if t.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{field}: one line of text, without control characters"
        )));
    }
    Ok(t.to_string())
}

fn optional(field: &str, text: Option<String>, max: usize) -> Result<Option<String>, ApiError> {
    text.map(|t| one_line(field, &t, max))
        .transpose()
        .map(|t| t.filter(|t| !t.is_empty()))
}

/// `deployed_at` as Unix nanoseconds.
fn deployed_at(value: Option<serde_json::Value>, now: u64) -> Result<u64, ApiError> {
    let bad = |v: &serde_json::Value| {
        ApiError::bad_request(format!(
            "deployed_at: {v} is not a time (use RFC 3339, Unix milliseconds, or a duration ago like 5m)"
        ))
    };
    let at = match value {
        None | Some(serde_json::Value::Null) => return Ok(now),
        Some(serde_json::Value::Number(n)) => {
            n.as_u64()
                .and_then(|ms| ms.checked_mul(1_000_000))
                .ok_or_else(|| bad(&serde_json::Value::Number(n.clone())))?
        }
        Some(serde_json::Value::String(s)) => {
            let clock = SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(now);
            parse_time(s.trim(), clock).ok_or_else(|| bad(&serde_json::Value::String(s)))?
        }
        Some(other) => return Err(bad(&other)),
    };
    if at > now.saturating_add(FUTURE_SLACK_NS) {
        return Err(ApiError::bad_request(
            "deployed_at: more than 5 minutes in the future",
        ));
    }
    Ok(at)
}

/// Records a deploy (a release seen at `deployed_at`), so regressions and
/// error rates are measured from the deploy rather than from the first span.
#[utoipa::path(
    post,
    path = "/api/v1/releases",
    tag = "errors",
    request_body = NewRelease,
    responses(
        (status = 201, description = "The release as recorded", body = DeployRow),
        (status = 400, description = "Not JSON, an empty service or version, a bad commit, URL or time; the message names the field", body = ErrorBody),
        (status = 503, description = "The write queue is full or qyl is stopping; retry", body = ErrorBody),
    )
)]
async fn record_release(
    State(state): State<AppState>,
    body: Result<Json<NewRelease>, JsonRejection>,
) -> Result<(StatusCode, Json<DeployRow>), ApiError> {
    let Json(req) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "expected a JSON body like {{\"service\": \"api\", \"version\": \"1.4.0\", \"environment\": \"prod\", \"commit\": \"9f1c2e7\"}}: {}",
            e.body_text()
        ))
    })?;
    let service = one_line("service", &req.service, MAX_NAME_CHARS)?;
    let version = one_line("version", &req.version, MAX_NAME_CHARS)?;
    if service.is_empty() || version.is_empty() {
        return Err(ApiError::bad_request(
            "service and version may not be empty",
        ));
    }
    let environment = optional("environment", req.environment, MAX_NAME_CHARS)?;
    let commit = optional("commit", req.commit, MAX_COMMIT_CHARS)?;
    let url = optional("url", req.url, MAX_URL_CHARS)?;
    if let Some(u) = &url {
        if !(u.starts_with("https://") || u.starts_with("http://")) {
            return Err(ApiError::bad_request(
                "url: must start with http:// or https://",
            ));
        }
    }
    let now = now_unix_nano();
    let at = deployed_at(req.deployed_at, now)?;
    let batch = Batch {
        error_commands: vec![ErrorCommand::RecordRelease {
            service: service.clone(),
            environment: environment.clone().unwrap_or_default(),
            version: version.clone(),
            at_unix_nano: at,
        }],
        deploys: vec![DeployRecord {
            service: service.clone(),
            environment: environment.clone(),
            version: version.clone(),
            commit,
            url,
            deployed_unix_nano: at,
            recorded_unix_nano: now,
        }],
        ..Batch::default()
    };
    super::errors::write_batch(&state, batch).await?;
    let rows = state
        .store
        .deploys(Some(service.clone()), environment.clone(), usize::MAX >> 1)
        .await?;
    rows.into_iter()
        .find(|r| r.release.version == version && r.release.environment == environment)
        .map(|r| (StatusCode::CREATED, Json(r)))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the release was recorded but cannot be read back",
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deployed_at_reads_times_and_refuses_the_far_future() {
        let now = 1_700_000_000_000_000_000u64;
        assert_eq!(deployed_at(None, now).unwrap(), now);
        assert_eq!(
            deployed_at(Some(serde_json::json!(1_699_999_000_000u64)), now).unwrap(),
            1_699_999_000_000_000_000
        );
        assert_eq!(
            deployed_at(Some(serde_json::json!("2023-11-14T22:13:20Z")), now).unwrap(),
            now
        );
        assert_eq!(
            deployed_at(Some(serde_json::json!("10m")), now).unwrap(),
            now - 600_000_000_000
        );
        for bad in [
            serde_json::json!("yesterday-ish"),
            serde_json::json!(-5),
            serde_json::json!(true),
            serde_json::json!(1_800_000_000_000u64),
        ] {
            assert!(deployed_at(Some(bad.clone()), now).is_err(), "{bad}");
        }
    }

    #[test]
    fn fields_are_one_trimmed_line() {
        assert_eq!(one_line("commit", " 9f1c ", 10).unwrap(), "9f1c");
        assert!(one_line("commit", "a\nb", 10).is_err());
        assert!(one_line("commit", "abcdefghijk", 10).is_err());
        assert_eq!(optional("url", Some("  ".into()), 10).unwrap(), None);
    }
}
