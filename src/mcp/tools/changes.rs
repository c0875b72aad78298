//! `what_changed`: for an error group or a service, which values (release,
//! environment, host, model, prompt version, span, user) are
//! over-represented among the failures of a recent window against a
//! baseline window before it. Computed from samples the store returns
//! (the newest failing events or spans, and the newest spans of the
//! baseline), so it answers quickly on any amount of data.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use serde::{Deserialize, Serialize};

use super::super::answer::{dashboard_base, Answer, Parameters, ToolError, ToolResult};
use super::super::render::{pct, Text};
use super::super::QylMcp;
use crate::errors::analysis::{
    baseline_values, compare, group_failures, span_sample, span_values, ChangedValue, Values,
    GROUP_SERVICES,
};
use crate::model::now_unix_nano;
use crate::model::query::SpanFilter;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatChangedArgs {
    /// An error group: its events in the window are the failures.
    pub id: Option<i64>,
    /// A service: its failed spans in the window are the failures.
    pub service: Option<String>,
    /// The failing window, ending now: `15m`, `1h` (default), `24h`.
    pub window: Option<String>,
    /// The baseline window, right before the failing one (default `24h`).
    pub baseline: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct WhatChanged {
    /// `error group 12` or `service shop`.
    pub subject: String,
    pub window_since: String,
    pub baseline_since: String,
    pub baseline_until: String,
    /// Failures sampled in the window (events or failed spans).
    pub failing_sampled: usize,
    /// Spans sampled in the baseline.
    pub baseline_sampled: usize,
    /// Most over-represented first.
    pub changed: Vec<ChangedValue>,
    pub link: String,
}

fn window_arg(text: Option<&str>, default: &str, arg: &str) -> Result<u64, ToolError> {
    let text = text.unwrap_or(default);
    let d = humantime::parse_duration(text.trim()).map_err(|_| {
        ToolError(format!(
            "{arg}: {text:?} is not a duration like 15m, 1h or 24h"
        ))
    })?;
    let ns = d.as_nanos() as u64;
    if !(60_000_000_000..=30 * 86_400_000_000_000).contains(&ns) {
        return Err(ToolError(format!("{arg}: between 1m and 30d")));
    }
    Ok(ns)
}

#[tool_router(router = change_tools, vis = "pub(in crate::mcp)")]
impl QylMcp {
    #[tool(
        description = "What is different about recent failures: for an error group (id) or a service, which release, environment, host, model, prompt version, span or user is over-represented among the failures of the window (default 1h) against the spans of a baseline window before it (default 24h). Answers \"did the deploy / the new model / one host do this?\"",
        output_schema = schema_for_output::<WhatChanged>(),
        annotations(title = "What changed", read_only_hint = true, open_world_hint = false)
    )]
    async fn what_changed(
        &self,
        Parameters(a): Parameters<WhatChangedArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<WhatChanged> {
        let base = dashboard_base(&ctx, &self.fallback_base());
        let window = window_arg(a.window.as_deref(), "1h", "window")?;
        let baseline = window_arg(a.baseline.as_deref(), "24h", "baseline")?;
        let now = now_unix_nano();
        let since = now.saturating_sub(window);
        let baseline_since = since.saturating_sub(baseline);
        let store = &*self.state.store;
        let (subject, services, failing, link) = match (a.id, a.service) {
            (Some(id), None) => {
                let group = self.group(id).await?.group;
                let failing = group_failures(store, id, since).await?;
                (
                    format!("error group {id}"),
                    group.services.into_iter().take(GROUP_SERVICES).collect(),
                    failing,
                    format!("{base}/errors/{id}"),
                )
            }
            (None, Some(service)) => {
                let spans = span_sample(
                    store,
                    SpanFilter {
                        service: Some(service.clone()),
                        status: Some("ERROR".into()),
                        since: Some(since),
                        until: Some(now),
                        ..SpanFilter::default()
                    },
                )
                .await?;
                let failing: Vec<Values> = spans.iter().map(span_values).collect();
                (
                    format!("service {service}"),
                    vec![service],
                    failing,
                    format!("{base}/traces"),
                )
            }
            _ => return Err(ToolError::new("id, service: give exactly one of them")),
        };
        let baseline_values = baseline_values(store, &services, baseline_since, since).await?;
        let changed = compare(&failing, &baseline_values);
        let mut text = Text::new();
        text.line(format!(
            "{subject}: {} failures in the last {} against {} spans of the {} before.",
            failing.len(),
            a.window.as_deref().unwrap_or("1h"),
            baseline_values.len(),
            a.baseline.as_deref().unwrap_or("24h"),
        ));
        if failing.is_empty() {
            text.line("No failures in the window.");
        } else if changed.is_empty() {
            text.line("Nothing stands out: the failures look like the baseline.");
        }
        for c in &changed {
            text.line(format!(
                "  {}={}: {} of failures ({}) vs {} of baseline ({}){}",
                c.key,
                c.value,
                pct(c.failing_share),
                c.failing_count,
                pct(c.baseline_share),
                c.baseline_count,
                if c.new_value {
                    " — new in the window".to_string()
                } else {
                    c.lift.map(|l| format!(" — {l}×")).unwrap_or_default()
                }
            ));
        }
        if baseline_values.is_empty() {
            text.line(
                "(The baseline window holds no spans of these services: every value looks new.)",
            );
        }
        text.link(&link);
        Ok(Answer {
            text: text.finish(),
            data: WhatChanged {
                subject,
                window_since: crate::model::query::rfc3339(since),
                baseline_since: crate::model::query::rfc3339(baseline_since),
                baseline_until: crate::model::query::rfc3339(since),
                failing_sampled: failing.len(),
                baseline_sampled: baseline_values.len(),
                changed,
                link,
            },
        })
    }
}
