//! Deploys: a release of a service seen for the first time (in telemetry or
//! recorded by CI), and what changed around it. The shapes the writer
//! stores and the REST API answers; `errors::deploys` holds the rules and
//! `storage::queries::releases` the reads.

use serde::Serialize;

use super::errors::ReleaseRow;

/// A deploy as CI reports it (`POST /api/v1/releases`): stored in the
/// `deploys` table next to the release it marks.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeployRecord {
    pub service: String,
    pub environment: Option<String>,
    pub version: String,
    /// The VCS revision deployed.
    pub commit: Option<String>,
    /// Where to read about it (CI run, changelog, pull request).
    pub url: Option<String>,
    /// When the deploy happened (default: when it was recorded).
    pub deployed_unix_nano: u64,
    pub recorded_unix_nano: u64,
}

/// The window after a deploy in which new and regressed groups, error rates
/// and latency are laid at its door: `[errors] deploy_window` long, or
/// shorter when the service's next deploy comes first. "Before" is the
/// window of the same length just before the deploy.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeployWindow {
    pub start: String,
    pub end: String,
    pub start_unix_nano: String,
    pub end_unix_nano: String,
    /// True when the next deploy of the service (same environment) cut the
    /// window short.
    pub ends_at_next_deploy: bool,
    /// Groups first seen in the window (in the service and environment).
    pub new_groups: u64,
    /// Groups that regressed in the window.
    pub regressed_groups: u64,
}

/// A release with its deploy: one row of `GET /api/v1/releases`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeployRow {
    #[serde(flatten)]
    pub release: ReleaseRow,
    /// From the newest `POST /api/v1/releases` of this release, if any.
    pub commit: Option<String>,
    pub url: Option<String>,
    pub window: DeployWindow,
}

/// An error group that changed because of, or just after, a deploy.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeployGroup {
    pub id: i64,
    /// `new` or `regressed` in the window after the deploy; `fixed` (marked
    /// resolved in the next release, and this is that release) or `quiet`
    /// (no event since the deploy for `[errors] auto_resolve_after_deploy`).
    pub change: String,
    pub at: String,
    pub at_unix_nano: String,
    pub error_type: Option<String>,
    pub message_template: Option<String>,
    pub culprit: Option<String>,
    pub status: String,
    pub substatus: String,
    pub count: u64,
    pub gen_ai_error_class: Option<String>,
}

/// Events of one GenAI error class before and after a deploy.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GenAiClassChange {
    pub error_class: String,
    pub before: u64,
    pub after: u64,
}

/// What the service did in the window after a deploy against the window of
/// the same length before it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeployCorrelation {
    /// Spans of the service and environment.
    pub spans_before: u64,
    pub spans_after: u64,
    /// Error spans / all spans (null without spans).
    pub error_rate_before: Option<f64>,
    pub error_rate_after: Option<f64>,
    /// 95th percentile duration of the service's requests (SERVER and
    /// CONSUMER spans and root spans), in milliseconds (null without any).
    pub latency_p95_ms_before: Option<f64>,
    pub latency_p95_ms_after: Option<f64>,
    /// GenAI error events per class, most events after first.
    pub genai_error_classes: Vec<GenAiClassChange>,
    /// Groups first seen or regressed in the window, in time order.
    pub groups: Vec<DeployGroup>,
}

/// Burn of one SLO window.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SloSpan {
    pub from: String,
    pub until: String,
    pub good: u64,
    pub total: u64,
    /// (bad / total) / (1 − objective); 0 without requests.
    pub burn_rate: f64,
}

/// An `[[errors.slo]]` of the service: its burn since the deploy (until the
/// next deploy or now) against the same length of time before it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeploySlo {
    pub name: String,
    pub objective: f64,
    pub before: SloSpan,
    pub since: SloSpan,
    /// `since.burn_rate / before.burn_rate`: 2 means the release burns the
    /// error budget twice as fast (null when nothing burned before).
    pub burn_ratio: Option<f64>,
}

/// `GET /api/v1/releases/{version}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReleaseDetail {
    #[serde(flatten)]
    pub deploy: DeployRow,
    /// The deploy window against the window before it.
    pub correlation: DeployCorrelation,
    /// One entry per `[[errors.slo]]` of the service.
    pub slo: Vec<DeploySlo>,
    /// Groups this deploy resolved (`fixed` or `quiet`).
    pub resolved_groups: Vec<DeployGroup>,
}

/// On an error group: the deploy whose window its first event (or its
/// latest regression) fell in — "started with 1.5.0" — or the deploy that
/// resolved it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct GroupDeploy {
    /// `new`, `regressed`, `fixed` or `quiet` (see [`DeployGroup::change`]).
    pub change: String,
    /// When the group changed.
    pub at: String,
    pub at_unix_nano: String,
    pub service_name: String,
    pub environment: Option<String>,
    pub version: String,
    pub deployed_at: String,
    pub deployed_unix_nano: String,
    pub commit: Option<String>,
    pub url: Option<String>,
}

/// An `[[errors.slo]]` as the release answer needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct SloObjective {
    pub name: String,
    pub service: String,
    /// Percent of good requests.
    pub objective: f64,
}
