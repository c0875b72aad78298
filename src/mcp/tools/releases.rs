//! `release_health`: what a release (`service.version`) brought — new and
//! regressed error groups and the error rate before and after it.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use serde::{Deserialize, Serialize};

use super::super::answer::{dashboard_base, Answer, Parameters, ToolError, ToolResult};
use super::super::render::{or_dash, pct, url_part, Text, MAX_ITEMS};
use super::super::QylMcp;
use super::errors::ErrorBrief;
use super::genai::ReleaseBrief;
use crate::model::errors::{ErrorQuery, ErrorSort, ReleaseRow};
use crate::model::now_unix_nano;
use crate::model::query::PageRequest;

/// Releases `release_health` looks through for the one asked for.
const RELEASES_SEARCHED: usize = 200;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseHealthArgs {
    /// The release (`service.version`); default: the latest one.
    pub version: Option<String>,
    /// The service it is a release of (needed when several services share
    /// version names).
    pub service: Option<String>,
    /// The deployment environment, exactly.
    pub environment: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReleaseHealth {
    pub release: ReleaseBrief,
    /// Source of the release: `telemetry` (first seen in data) or `deploy`
    /// (recorded by CI).
    pub source: String,
    /// Error spans / all spans of the service in the hour after the release
    /// was first seen, minus the hour before (null without spans).
    pub error_rate_change: Option<f64>,
    /// Groups first seen in this release, most events first.
    pub new_groups: Vec<ErrorBrief>,
    /// Groups this release brought back after they were resolved.
    pub regressed_groups: Vec<ErrorBrief>,
    /// Other groups with events from this release.
    pub other_groups: Vec<ErrorBrief>,
    /// The releases of the same service and environment before it, newest first (up to 5).
    pub previous: Vec<ReleaseBrief>,
    pub link: String,
}

fn brief_release(r: &ReleaseRow) -> ReleaseBrief {
    ReleaseBrief {
        service_name: r.service_name.clone(),
        environment: r.environment.clone(),
        version: r.version.clone(),
        first_seen: r.first_seen.clone(),
        new_groups: r.new_groups,
        regressed_groups: r.regressed_groups,
        error_rate_before: r.error_rate_before,
        error_rate_after: r.error_rate_after,
    }
}

#[tool_router(router = release_tools, vis = "pub(in crate::mcp)")]
impl QylMcp {
    #[tool(
        description = "What a release (service.version) brought: its new and regressed error groups, other groups with events from it, and the service's error rate in the hour before and after it was first seen, against the releases before it. Default: the latest release.",
        output_schema = schema_for_output::<ReleaseHealth>(),
        annotations(title = "Release health", read_only_hint = true, open_world_hint = false)
    )]
    async fn release_health(
        &self,
        Parameters(a): Parameters<ReleaseHealthArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<ReleaseHealth> {
        let base = dashboard_base(&ctx, &self.fallback_base());
        let store = &self.state.store;
        let releases = store
            .releases(a.service.clone(), a.environment.clone(), RELEASES_SEARCHED)
            .await?;
        let at = match &a.version {
            None => 0,
            Some(v) => releases
                .iter()
                .position(|r| &r.version == v)
                .ok_or_else(|| {
                    ToolError(format!(
                        "version: no release {v:?}{} among the latest {RELEASES_SEARCHED}",
                        a.service
                            .as_deref()
                            .map(|s| format!(" of {s}"))
                            .unwrap_or_default()
                    ))
                })?,
        };
        let Some(release) = releases.get(at) else {
            return Err(ToolError::new(
                "no releases are known yet (spans carry none with service.version)",
            ));
        };
        let previous: Vec<ReleaseBrief> = releases[at + 1..]
            .iter()
            .filter(|r| {
                r.service_name == release.service_name && r.environment == release.environment
            })
            .take(5)
            .map(brief_release)
            .collect();
        let groups = store
            .list_errors(ErrorQuery {
                release: Some(release.version.clone()),
                service: Some(release.service_name.clone()),
                sort: ErrorSort::Count,
                page: PageRequest {
                    limit: MAX_ITEMS,
                    cursor: None,
                },
                now_unix_nano: now_unix_nano(),
                ..ErrorQuery::default()
            })
            .await?;
        let (mut new_groups, mut regressed_groups, mut other_groups) = (vec![], vec![], vec![]);
        for g in &groups.items {
            let b = ErrorBrief::new(g, &base);
            if g.first_release.as_deref() == Some(release.version.as_str()) {
                new_groups.push(b);
            } else if g.substatus == "regressed"
                && g.last_release.as_deref() == Some(release.version.as_str())
            {
                regressed_groups.push(b);
            } else {
                other_groups.push(b);
            }
        }
        let error_rate_change = match (release.error_rate_before, release.error_rate_after) {
            (Some(b), Some(a)) => Some(a - b),
            _ => None,
        };
        let link = format!("{base}/errors?q={}", url_part(&release.version));
        let mut text = Text::new();
        text.line(format!(
            "Release {} of {} ({}), first seen {} ({}): {} new and {} regressed error groups; error rate {} in the hour before, {} in the hour after.",
            release.version,
            release.service_name,
            or_dash(release.environment.as_deref()),
            release.first_seen,
            release.source,
            release.new_groups,
            release.regressed_groups,
            release.error_rate_before.map(pct).unwrap_or_else(|| "-".into()),
            release.error_rate_after.map(pct).unwrap_or_else(|| "-".into()),
        ));
        for (title, list) in [
            ("New", &new_groups),
            ("Regressed", &regressed_groups),
            ("Also seen", &other_groups),
        ] {
            if !list.is_empty() {
                text.line(format!("{title}:"));
                for g in list.iter().take(20) {
                    text.line(format!("  {}", g.line()));
                }
            }
        }
        for p in &previous {
            text.line(format!(
                "Before: {} first seen {}: {} new, {} regressed; error rate after {}",
                p.version,
                p.first_seen,
                p.new_groups,
                p.regressed_groups,
                p.error_rate_after.map(pct).unwrap_or_else(|| "-".into())
            ));
        }
        text.link(&link);
        Ok(Answer {
            text: text.finish(),
            data: ReleaseHealth {
                source: release.source.clone(),
                release: brief_release(release),
                error_rate_change,
                new_groups,
                regressed_groups,
                other_groups,
                previous,
                link,
            },
        })
    }
}
