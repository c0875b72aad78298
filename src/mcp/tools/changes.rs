//! `what_changed`: for an error group or a service, which values (release,
//! environment, host, model, prompt version, span, user) are
//! over-represented among the failures of a recent window against a
//! baseline window before it. Computed from samples the store returns
//! (the newest failing events or spans, and the newest spans of the
//! baseline), so it answers quickly on any amount of data.

use std::collections::BTreeMap;

use rmcp::handler::server::tool::schema_for_output;
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::answer::{dashboard_base, Answer, Parameters, ToolError, ToolResult};
use super::super::render::{pct, Text};
use super::super::QylMcp;
use crate::ingest::convert::now_unix_nano;
use crate::model::errors::{ErrorEventRow, ErrorGroupRow};
use crate::model::query::{PageRequest, SpanFilter, SpanQuery, SpanRow};
use crate::storage::{QueryError, Store};

/// Largest sample on each side.
const SAMPLE: usize = 1000;
/// Services of a group whose spans make its baseline.
const GROUP_SERVICES: usize = 3;
/// A value counts as changed when its share among failures is at least
/// this much above its share in the baseline...
const MIN_SHARE_GAIN: f64 = 0.2;
/// ...and it occurs in at least this many failures.
const MIN_FAILURES: u64 = 2;

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

/// A value over-represented among the failures.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ChangedValue {
    /// `release`, `environment`, `service`, `host`, `model`,
    /// `prompt_version`, `span` or `user`.
    pub key: String,
    pub value: String,
    pub failing_count: u64,
    /// Share of the failures that have this value.
    pub failing_share: f64,
    pub baseline_count: u64,
    pub baseline_share: f64,
    /// failing_share / baseline_share; null when the baseline never had it.
    pub lift: Option<f64>,
    /// True when the baseline never had the value: new in the window.
    pub new_value: bool,
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

/// The values of one failure or baseline span, by key.
type Values = Vec<(&'static str, String)>;

/// The model without a snapshot date (`gpt-4o-mini-2024-07-18` →
/// `gpt-4o-mini`), as error groups keep it.
fn model_family(model: &str) -> String {
    let b = model.as_bytes();
    let dated = b.len() > 11
        && b[b.len() - 11] == b'-'
        && model[b.len() - 10..].bytes().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if dated {
        model[..b.len() - 11].to_string()
    } else {
        model.to_string()
    }
}

fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn span_values(s: &SpanRow) -> Values {
    let mut out: Values = Vec::new();
    out.push(("service", s.service_name.clone()));
    out.push(("span", s.name.clone()));
    if let Some(v) = &s.service_version {
        out.push(("release", v.clone()));
    }
    if let Some(e) = &s.deployment_environment {
        out.push(("environment", e.clone()));
    }
    if let Some(g) = &s.gen_ai {
        if let Some(m) = g.response_model.as_ref().or(g.request_model.as_ref()) {
            out.push(("model", model_family(m)));
        }
    }
    let resource: Value = serde_json::from_str(s.resource.get()).unwrap_or(Value::Null);
    if let Some(h) = resource.get("host.name").and_then(text_of) {
        out.push(("host", h));
    }
    let attrs: Value = serde_json::from_str(s.attributes.get()).unwrap_or(Value::Null);
    for k in ["user.id", "enduser.id"] {
        if let Some(u) = attrs.get(k).and_then(text_of) {
            out.push(("user", u));
            break;
        }
    }
    // Prompt versions go by several names; any attribute that names one.
    if let Value::Object(map) = &attrs {
        if let Some(v) = map.iter().find_map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            (k.contains("prompt") && k.contains("version"))
                .then(|| text_of(v))
                .flatten()
        }) {
            out.push(("prompt_version", v));
        }
    }
    out
}

fn event_values(e: &ErrorEventRow) -> Values {
    let mut out: Values = vec![("service", e.service_name.clone())];
    if let Some(v) = &e.release {
        out.push(("release", v.clone()));
    }
    if let Some(v) = &e.environment {
        out.push(("environment", v.clone()));
    }
    if let Some(v) = &e.gen_ai_model {
        out.push(("model", model_family(v)));
    }
    if let Some(v) = &e.user {
        out.push(("user", v.clone()));
    }
    out
}

fn count(sample: &[Values]) -> BTreeMap<(&'static str, String), u64> {
    let mut out = BTreeMap::new();
    for values in sample {
        for (k, v) in values {
            *out.entry((*k, v.clone())).or_default() += 1;
        }
    }
    out
}

/// Values whose share among failures rose by at least [`MIN_SHARE_GAIN`],
/// over the keys both samples can have.
fn compare(failing: &[Values], baseline: &[Values]) -> Vec<ChangedValue> {
    if failing.is_empty() {
        return Vec::new();
    }
    let f = count(failing);
    let b = count(baseline);
    let (nf, nb) = (failing.len() as f64, baseline.len().max(1) as f64);
    let mut out: Vec<ChangedValue> = f
        .iter()
        .filter_map(|((key, value), &fc)| {
            let bc = b.get(&(*key, value.clone())).copied().unwrap_or(0);
            let (fs, bs) = (fc as f64 / nf, bc as f64 / nb);
            (fc >= MIN_FAILURES && fs - bs >= MIN_SHARE_GAIN).then(|| ChangedValue {
                key: key.to_string(),
                value: value.clone(),
                failing_count: fc,
                failing_share: (fs * 1000.0).round() / 1000.0,
                baseline_count: bc,
                baseline_share: (bs * 1000.0).round() / 1000.0,
                lift: (bc > 0).then(|| ((fs / bs) * 100.0).round() / 100.0),
                new_value: bc == 0 && !baseline.is_empty(),
            })
        })
        .collect();
    out.sort_by(|x, y| {
        (y.failing_share - y.baseline_share).total_cmp(&(x.failing_share - x.baseline_share))
    });
    out.truncate(20);
    out
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

/// The newest spans matching `filter`, at most [`SAMPLE`].
async fn span_sample(store: &Store, filter: SpanFilter) -> Result<Vec<SpanRow>, QueryError> {
    Ok(store
        .query_spans(SpanQuery {
            filter,
            page: PageRequest {
                limit: SAMPLE,
                cursor: None,
            },
        })
        .await?
        .items)
}

/// The values of group `id`'s events since `since`, newest first, at most
/// [`SAMPLE`].
async fn group_failures(store: &Store, id: i64, since: u64) -> Result<Vec<Values>, QueryError> {
    let mut events: Vec<ErrorEventRow> = Vec::new();
    let mut cursor = None;
    // Newest first: read until the window's start.
    'pages: loop {
        let page = store
            .error_events(id, PageRequest { limit: 200, cursor })
            .await?;
        for e in page.items {
            if e.time_unix_nano.parse::<u64>().unwrap_or(0) < since || events.len() >= SAMPLE {
                break 'pages;
            }
            events.push(e);
        }
        match page
            .next_cursor
            .and_then(|c| crate::model::query::Cursor::decode(&c))
        {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    Ok(events.iter().map(event_values).collect())
}

/// The values of the spans of `services` between `since` and `until`.
async fn baseline_values(
    store: &Store,
    services: &[String],
    since: u64,
    until: u64,
) -> Result<Vec<Values>, QueryError> {
    let mut out: Vec<Values> = Vec::new();
    for service in services {
        let spans = span_sample(
            store,
            SpanFilter {
                service: Some(service.clone()),
                since: Some(since),
                until: Some(until),
                ..SpanFilter::default()
            },
        )
        .await?;
        out.extend(spans.iter().map(span_values));
    }
    Ok(out)
}

/// What changed for one error group over the `window_ns` before `now`
/// against the `baseline_ns` before that: the tool's answer, shared with
/// automatic triage (`errors::triage`). Returns the changed values and the
/// failing and baseline sample sizes.
pub(crate) async fn group_changes(
    store: &Store,
    group: &ErrorGroupRow,
    window_ns: u64,
    baseline_ns: u64,
    now: u64,
) -> Result<(Vec<ChangedValue>, usize, usize), QueryError> {
    let since = now.saturating_sub(window_ns);
    let failing = group_failures(store, group.id, since).await?;
    let services: Vec<String> = group
        .services
        .iter()
        .take(GROUP_SERVICES)
        .cloned()
        .collect();
    let baseline =
        baseline_values(store, &services, since.saturating_sub(baseline_ns), since).await?;
    Ok((compare(&failing, &baseline), failing.len(), baseline.len()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_dates_are_dropped() {
        assert_eq!(model_family("gpt-4o-mini-2024-07-18"), "gpt-4o-mini");
        assert_eq!(model_family("gpt-4o-mini"), "gpt-4o-mini");
        assert_eq!(
            model_family("claude-3-5-sonnet-20241022"),
            "claude-3-5-sonnet-20241022"
        );
    }

    #[test]
    fn over_represented_values_are_found() {
        let v = |release: &str, host: &str| -> Values {
            vec![("release", release.into()), ("host", host.into())]
        };
        let failing = vec![v("2.0", "a"), v("2.0", "b"), v("2.0", "a"), v("1.9", "b")];
        let baseline = vec![v("1.9", "a"), v("1.9", "b"), v("1.9", "a"), v("1.9", "b")];
        let changed = compare(&failing, &baseline);
        assert_eq!(changed.len(), 1, "{changed:?}");
        assert_eq!(
            (changed[0].key.as_str(), changed[0].value.as_str()),
            ("release", "2.0")
        );
        assert!(changed[0].new_value);
        assert_eq!(changed[0].failing_share, 0.75);
    }
}
