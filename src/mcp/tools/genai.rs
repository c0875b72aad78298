//! The overview and the GenAI tools: how the application is doing in a
//! window (errors, new and regressed groups, spend, SLO burn, the latest
//! release), GenAI statistics, sessions and a session's conversation.

use rmcp::handler::server::tool::schema_for_output;
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::answer::{dashboard_base, Answer, Pairs, Parameters, ToolError, ToolResult};
use super::super::render::{capped, cut, line, ms, or_dash, pct, url_part, usd, Text, MAX_ITEMS};
use super::super::QylMcp;
use super::errors::ErrorBrief;
use crate::errors::slo::status as slo_status;
use crate::model::errors::{ErrorQuery, ErrorSort};
use crate::model::genai::{GenAiSpanQuery, SessionQuery, SessionSort, ACTIVE_WINDOW_NS};
use crate::model::now_unix_nano;
use crate::model::query::{GenAiFilter, GenAiModelStats, GenAiTotals, PageRequest};

/// Groups of each kind the overview lists.
const OVERVIEW_GROUPS: usize = 10;
/// The longest window the overview and GenAI statistics cover.
const MAX_WINDOW_NS: u64 = 90 * 86_400_000_000_000;

/// `1h`, `24h`, `7d` → nanoseconds; the message names `arg`.
fn window_ns(text: &str, arg: &str) -> Result<u64, ToolError> {
    let d = humantime::parse_duration(text.trim()).map_err(|_| {
        ToolError(format!(
            "{arg}: {text:?} is not a duration like 15m, 1h, 24h or 7d"
        ))
    })?;
    let ns = d.as_nanos() as u64;
    if !(60_000_000_000..=MAX_WINDOW_NS).contains(&ns) {
        return Err(ToolError(format!("{arg}: between 1m and 90d")));
    }
    Ok(ns)
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OverviewArgs {
    /// How far back: `15m`, `1h` (default), `24h`, `7d`.
    pub window: Option<String>,
    /// One service only.
    pub service: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ServiceHealth {
    pub name: String,
    pub span_count: u64,
    pub error_count: u64,
    pub error_rate: f64,
    pub p95_ms: Option<f64>,
    pub versions: Vec<String>,
}

/// A model's GenAI calls in the window.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ModelUsage {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    /// Known costs; calls without a price are in `requests_without_cost`.
    pub cost_usd: f64,
    pub requests_without_cost: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
}

impl ModelUsage {
    fn new(provider: Option<String>, model: Option<String>, t: &GenAiTotals) -> ModelUsage {
        ModelUsage {
            provider,
            model,
            requests: t.requests,
            errors: t.errors,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cost_usd: t.cost_usd,
            requests_without_cost: t.requests_without_cost,
            latency_p50_ms: t.latency_p50_ms,
            latency_p95_ms: t.latency_p95_ms,
        }
    }

    fn of(m: &GenAiModelStats) -> ModelUsage {
        ModelUsage::new(m.provider.clone(), m.model.clone(), &m.totals)
    }

    fn line(&self) -> String {
        let who = match (&self.model, &self.provider) {
            (None, None) => "all models".to_string(),
            (m, p) => format!("{} ({})", or_dash(m.as_deref()), or_dash(p.as_deref())),
        };
        format!(
            "{who}: {} calls, {} errors, {} in / {} out tokens, {}{}, p95 {}",
            self.requests,
            self.errors,
            self.input_tokens,
            self.output_tokens,
            usd(Some(self.cost_usd)),
            if self.requests_without_cost > 0 {
                format!(" (+{} unpriced)", self.requests_without_cost)
            } else {
                String::new()
            },
            self.latency_p95_ms.map(ms).unwrap_or_else(|| "-".into())
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SloBurn {
    pub name: String,
    pub service: String,
    pub objective: f64,
    /// Alert tiers firing now (`page`, `warning`), most urgent first.
    pub firing: Vec<String>,
    /// 1 = untouched, 0 = spent, below 0 = overspent.
    pub budget_remaining: Option<f64>,
    /// Burn rate per window (`5m` … `3d`).
    pub burn_rates: Value,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ReleaseBrief {
    pub service_name: String,
    pub environment: Option<String>,
    pub version: String,
    pub first_seen: String,
    pub new_groups: u64,
    pub regressed_groups: u64,
    pub error_rate_before: Option<f64>,
    pub error_rate_after: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Overview {
    pub window: String,
    pub since: String,
    pub until: String,
    pub service: Option<String>,
    pub span_count: u64,
    pub error_count: u64,
    /// Failed spans / spans, over the window.
    pub error_rate: Option<f64>,
    pub services: Vec<ServiceHealth>,
    /// Groups first seen lately with events in the window, most events first.
    pub new_groups: Vec<ErrorBrief>,
    pub regressed_groups: Vec<ErrorBrief>,
    pub escalating_groups: Vec<ErrorBrief>,
    pub genai: ModelUsage,
    pub genai_by_model: Vec<ModelUsage>,
    pub slos: Vec<SloBurn>,
    pub latest_release: Option<ReleaseBrief>,
    pub link: String,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GenAiStatsArgs {
    /// Start: RFC 3339, a duration ago (`24h`, the default), or Unix ms.
    pub since: Option<String>,
    pub until: Option<String>,
    pub service: Option<String>,
    pub provider: Option<String>,
    /// The request or response model.
    pub model: Option<String>,
    pub session_id: Option<String>,
    /// Bucket width of `over_time` (`5m`, `1h`); default about 12 buckets.
    pub step: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GenAiBucketBrief {
    pub time: String,
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub latency_p95_ms: Option<f64>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct GenAiStatsView {
    pub since: String,
    pub until: String,
    pub totals: ModelUsage,
    pub by_model: Vec<ModelUsage>,
    pub over_time: Vec<GenAiBucketBrief>,
    pub link: String,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSessionsArgs {
    /// Only sessions active in the last 30 minutes.
    #[serde(default)]
    pub active: bool,
    pub service: Option<String>,
    /// `user.id` / `enduser.id`.
    pub user: Option<String>,
    /// With activity at or after: RFC 3339, a duration ago, or Unix ms.
    pub since: Option<String>,
    pub until: Option<String>,
    /// `last_seen` (default), `first_seen`, `spans`, `traces`, `errors`,
    /// `requests`, `tokens` or `cost`; descending.
    pub sort: Option<String>,
    pub cursor: Option<String>,
    /// Sessions per answer, 1 to 50 (default 20).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SessionBrief {
    pub session_id: String,
    pub first_seen: String,
    pub last_seen: String,
    pub duration_ms: f64,
    pub active: bool,
    pub trace_count: u64,
    pub span_count: u64,
    pub error_count: u64,
    pub genai_requests: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: Option<f64>,
    pub models: Vec<String>,
    pub users: Vec<String>,
    pub link: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SessionList {
    pub items: Vec<SessionBrief>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationArgs {
    pub session_id: String,
    /// Messages to return, 1 to 200 (default 50); the latest are kept.
    pub max_messages: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct Message {
    /// Position in the whole conversation (0 = first).
    pub index: usize,
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    pub content: Option<String>,
    /// Tool calls and other non-text parts, as recorded.
    pub parts: Option<Value>,
    pub finish_reason: Option<String>,
    pub model: Option<String>,
    pub time: String,
    pub trace_id: String,
    pub span_id: Option<String>,
}

/// One GenAI call (or tool execution) of the session, in order.
#[derive(Debug, Serialize, JsonSchema)]
pub struct CallStep {
    pub time: String,
    pub trace_id: String,
    pub span_id: String,
    pub operation: Option<String>,
    pub model: Option<String>,
    pub tool_name: Option<String>,
    pub duration_ms: f64,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    pub status_code: String,
    pub error_type: Option<String>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ConversationView {
    pub session_id: String,
    /// Messages in the whole conversation, and user messages among them.
    pub message_count: usize,
    pub user_turns: usize,
    /// The latest `max_messages`, in order.
    pub messages: Vec<Message>,
    /// GenAI calls and tool executions in order (up to 50).
    pub calls: Vec<CallStep>,
    pub trace_count: u64,
    pub error_count: u64,
    pub genai_requests: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: Option<f64>,
    pub link: String,
}

#[tool_router(router = genai_tools, vis = "pub(in crate::mcp)")]
impl QylMcp {
    #[tool(
        description = "How the application is doing over a window (default 1h): spans and error rate per service, new, regressed and escalating error groups, GenAI calls, tokens, spend and p95 latency by model, SLO burn and the latest release. Start here.",
        output_schema = schema_for_output::<Overview>(),
        annotations(title = "Overview", read_only_hint = true, open_world_hint = false)
    )]
    async fn overview(
        &self,
        Parameters(a): Parameters<OverviewArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<Overview> {
        let base = dashboard_base(&ctx, &self.fallback_base());
        let window = a.window.unwrap_or_else(|| "1h".into());
        let span = window_ns(&window, "window")?;
        let until = now_unix_nano();
        let since = until.saturating_sub(span);
        let store = &self.state.store;
        let services: Vec<ServiceHealth> = store
            .services(since, until, None)
            .await?
            .into_iter()
            .filter(|s| a.service.as_ref().is_none_or(|want| &s.name == want))
            .map(|s| ServiceHealth {
                error_rate: s.error_rate,
                name: s.name,
                span_count: s.span_count,
                error_count: s.error_count,
                p95_ms: s.p95_ms,
                versions: s.versions,
            })
            .collect();
        let span_count: u64 = services.iter().map(|s| s.span_count).sum();
        let error_count: u64 = services.iter().map(|s| s.error_count).sum();
        let groups = |status: &str| ErrorQuery {
            status: Some(status.into()),
            service: a.service.clone(),
            since: Some(since),
            sort: ErrorSort::Count,
            page: PageRequest {
                limit: OVERVIEW_GROUPS,
                cursor: None,
            },
            now_unix_nano: until,
            ..ErrorQuery::default()
        };
        let brief = |rows: Vec<crate::model::errors::ErrorGroupRow>| -> Vec<ErrorBrief> {
            rows.iter().map(|g| ErrorBrief::new(g, &base)).collect()
        };
        let new_groups = brief(store.list_errors(groups("new")).await?.items);
        let regressed_groups = brief(store.list_errors(groups("regressed")).await?.items);
        let escalating_groups = brief(store.list_errors(groups("escalating")).await?.items);
        let stats = store
            .genai_stats(GenAiFilter {
                since,
                until,
                service: a.service.clone(),
                step_ns: span,
                ..GenAiFilter::default()
            })
            .await?;
        let mut slos = Vec::new();
        for slo in &self.state.config.errors.slo {
            if a.service.as_ref().is_some_and(|s| s != &slo.service) {
                continue;
            }
            let (windows, total) = store
                .slo_counts(slo.name.clone(), until, slo.window_ns())
                .await?;
            let st = slo_status(slo, &windows, total);
            let burn: serde_json::Map<String, Value> = st
                .windows
                .iter()
                .map(|w| {
                    (
                        w.window.to_string(),
                        serde_json::Number::from_f64(w.burn_rate)
                            .map(Value::Number)
                            .unwrap_or(Value::Null),
                    )
                })
                .collect();
            slos.push(SloBurn {
                name: st.name.clone(),
                service: st.service.clone(),
                objective: st.objective,
                firing: st.firing.clone(),
                budget_remaining: Some(st.budget.remaining).filter(|r| r.is_finite()),
                burn_rates: Value::Object(burn),
            });
        }
        let latest_release = store
            .releases(a.service.clone(), None, 1)
            .await?
            .into_iter()
            .next()
            .map(|r| ReleaseBrief {
                service_name: r.service_name,
                environment: r.environment,
                version: r.version,
                first_seen: r.first_seen,
                new_groups: r.new_groups,
                regressed_groups: r.regressed_groups,
                error_rate_before: r.error_rate_before,
                error_rate_after: r.error_rate_after,
            });
        let genai = ModelUsage::new(None, None, &stats.totals);
        let genai_by_model: Vec<ModelUsage> = stats
            .by_model
            .iter()
            .take(MAX_ITEMS)
            .map(ModelUsage::of)
            .collect();
        let error_rate = (span_count > 0).then(|| error_count as f64 / span_count as f64);

        let mut text = Text::new();
        text.line(format!(
            "Last {window}{}: {span_count} spans, {error_count} failed ({}).",
            a.service
                .as_deref()
                .map(|s| format!(" for {s}"))
                .unwrap_or_default(),
            error_rate.map(pct).unwrap_or_else(|| "-".into())
        ));
        for s in services.iter().take(20) {
            text.line(format!(
                "  service {}: {} spans, {} errors ({}), p95 {}",
                s.name,
                s.span_count,
                s.error_count,
                pct(s.error_rate),
                s.p95_ms.map(ms).unwrap_or_else(|| "-".into())
            ));
        }
        for (title, list) in [
            ("New error groups", &new_groups),
            ("Regressed error groups", &regressed_groups),
            ("Escalating error groups", &escalating_groups),
        ] {
            if list.is_empty() {
                text.line(format!("{title}: none."));
            } else {
                text.line(format!("{title}:"));
                for g in list {
                    text.line(format!("  {}", g.line()));
                }
            }
        }
        if genai.requests > 0 {
            text.line(format!("GenAI: {}", genai.line()));
            for m in &genai_by_model {
                text.line(format!("  {}", m.line()));
            }
        } else {
            text.line("GenAI: no calls in the window.");
        }
        for s in &slos {
            text.line(format!(
                "SLO {} ({}, {}%): firing [{}], budget left {}",
                s.name,
                s.service,
                s.objective,
                s.firing.join(", "),
                s.budget_remaining.map(pct).unwrap_or_else(|| "-".into())
            ));
        }
        if let Some(r) = &latest_release {
            text.line(format!(
                "Latest release: {} {} ({}) first seen {}: {} new, {} regressed groups; error rate {} → {}",
                r.service_name,
                r.version,
                or_dash(r.environment.as_deref()),
                r.first_seen,
                r.new_groups,
                r.regressed_groups,
                r.error_rate_before.map(pct).unwrap_or_else(|| "-".into()),
                r.error_rate_after.map(pct).unwrap_or_else(|| "-".into())
            ));
        }
        let link = format!("{base}/");
        text.link(&link);
        Ok(Answer {
            text: text.finish(),
            data: Overview {
                window,
                since: crate::model::query::rfc3339(since),
                until: crate::model::query::rfc3339(until),
                service: a.service,
                span_count,
                error_count,
                error_rate,
                services,
                new_groups,
                regressed_groups,
                escalating_groups,
                genai,
                genai_by_model,
                slos,
                latest_release,
                link,
            },
        })
    }

    #[tool(
        description = "GenAI (LLM) calls over a window (default the last 24h): requests, errors, tokens, cost and latency in total, per model/provider, and over time. Filter by service, provider, model or session.",
        output_schema = schema_for_output::<GenAiStatsView>(),
        annotations(title = "GenAI statistics", read_only_hint = true, open_world_hint = false)
    )]
    pub(in crate::mcp) async fn genai_stats(
        &self,
        Parameters(a): Parameters<GenAiStatsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<GenAiStatsView> {
        let base = dashboard_base(&ctx, &self.fallback_base());
        let mut pairs = Pairs::default();
        pairs.add("since", a.since).add("until", a.until);
        let mut p = pairs.params();
        let until = p.time("until")?.unwrap_or_else(now_unix_nano);
        let since = p
            .time("since")?
            .unwrap_or(until.saturating_sub(86_400_000_000_000));
        if since >= until {
            return Err(ToolError::new("since: must be before until"));
        }
        let step_ns = match &a.step {
            Some(s) => window_ns(s, "step")?,
            // About 12 buckets, in whole minutes.
            None => ((until - since) / 12).div_ceil(60_000_000_000).max(1) * 60_000_000_000,
        };
        if (until - since) / step_ns > MAX_ITEMS as u64 {
            return Err(ToolError(format!(
                "step: at most {MAX_ITEMS} buckets over the window; use a wider step"
            )));
        }
        let stats = self
            .state
            .store
            .genai_stats(GenAiFilter {
                since,
                until,
                service: a.service,
                provider: a.provider,
                model: a.model,
                session_id: a.session_id,
                step_ns,
            })
            .await?;
        let totals = ModelUsage::new(None, None, &stats.totals);
        let by_model: Vec<ModelUsage> = stats
            .by_model
            .iter()
            .take(MAX_ITEMS)
            .map(ModelUsage::of)
            .collect();
        let over_time: Vec<GenAiBucketBrief> = stats
            .over_time
            .iter()
            .map(|b| GenAiBucketBrief {
                time: b.time.clone(),
                requests: b.totals.requests,
                errors: b.totals.errors,
                input_tokens: b.totals.input_tokens,
                output_tokens: b.totals.output_tokens,
                cost_usd: b.totals.cost_usd,
                latency_p95_ms: b.totals.latency_p95_ms,
            })
            .collect();
        let mut text = Text::new();
        text.line(format!("GenAI from {} to {}:", stats.since, stats.until));
        text.line(format!("Total: {}", totals.line()));
        for m in &by_model {
            text.line(format!("  {}", m.line()));
        }
        let busy: Vec<&GenAiBucketBrief> = over_time.iter().filter(|b| b.requests > 0).collect();
        if !busy.is_empty() {
            text.line("Over time (buckets with calls):");
            for b in busy {
                text.line(format!(
                    "  {}: {} calls, {} errors, {} tokens, {}, p95 {}",
                    b.time,
                    b.requests,
                    b.errors,
                    b.input_tokens + b.output_tokens,
                    usd(Some(b.cost_usd)),
                    b.latency_p95_ms.map(ms).unwrap_or_else(|| "-".into())
                ));
            }
        }
        let link = format!("{base}/genai");
        text.link(&link);
        Ok(Answer {
            text: text.finish(),
            data: GenAiStatsView {
                since: stats.since,
                until: stats.until,
                totals,
                by_model,
                over_time,
                link,
            },
        })
    }

    #[tool(
        description = "Sessions (a user's or agent's run: `session.id` or `gen_ai.conversation.id`), most recently active first: traces, errors, GenAI calls, tokens, cost, models, users.",
        output_schema = schema_for_output::<SessionList>(),
        annotations(title = "List sessions", read_only_hint = true, open_world_hint = false)
    )]
    pub(in crate::mcp) async fn list_sessions(
        &self,
        Parameters(a): Parameters<ListSessionsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<SessionList> {
        let base = dashboard_base(&ctx, &self.fallback_base());
        let now = now_unix_nano();
        let sort = match a.sort.as_deref() {
            None => SessionSort::default(),
            Some(s) => SessionSort::parse(s).ok_or_else(|| {
                ToolError(format!(
                    "sort: {s:?} is not one of {}",
                    SessionSort::NAMES.join(", ")
                ))
            })?,
        };
        let mut pairs = Pairs::default();
        pairs
            .add("since", a.since)
            .add("until", a.until)
            .add("cursor", a.cursor)
            .add("limit", Some(a.limit.unwrap_or(20)));
        let mut p = pairs.params();
        let q = SessionQuery {
            active_since: a.active.then(|| now.saturating_sub(ACTIVE_WINDOW_NS)),
            service: a.service,
            user: a.user,
            since: p.time("since")?,
            until: p.time("until")?,
            sort,
            ascending: false,
            page: p.page(MAX_ITEMS)?,
        };
        let found = self.state.store.list_sessions(q, now).await?;
        let items: Vec<SessionBrief> = found
            .items
            .into_iter()
            .map(|s| SessionBrief {
                link: format!("{base}/sessions/{}", url_part(&s.session_id)),
                session_id: s.session_id,
                first_seen: s.first_seen,
                last_seen: s.last_seen,
                duration_ms: s.duration_ms,
                active: s.active,
                trace_count: s.trace_count,
                span_count: s.span_count,
                error_count: s.error_count,
                genai_requests: s.gen_ai_requests,
                input_tokens: s.input_tokens,
                output_tokens: s.output_tokens,
                cost_usd: s.cost_usd,
                models: s.models,
                users: s.users,
            })
            .collect();
        let mut text = Text::new();
        if items.is_empty() {
            text.line("No sessions match.");
        }
        for s in &items {
            text.line(format!(
                "{} last {} — {} traces, {} errors, {} GenAI calls, {} tokens, {}; models {}; users {} {}",
                s.session_id,
                s.last_seen,
                s.trace_count,
                s.error_count,
                s.genai_requests,
                s.input_tokens + s.output_tokens,
                usd(s.cost_usd),
                s.models.join(","),
                s.users.join(","),
                s.link
            ));
        }
        text.more(items.len(), found.next_cursor.as_deref())
            .link(&format!("{base}/sessions"));
        Ok(Answer {
            text: text.finish(),
            data: SessionList {
                items,
                next_cursor: found.next_cursor,
            },
        })
    }

    #[tool(
        description = "A session's agent loop in order: the messages (system, user, assistant, tool) with their models, the GenAI calls and tool executions with tokens, cost, duration and errors, and the session's totals.",
        output_schema = schema_for_output::<ConversationView>(),
        annotations(title = "Get a conversation", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_conversation(
        &self,
        Parameters(a): Parameters<ConversationArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<ConversationView> {
        let max = a.max_messages.unwrap_or(MAX_ITEMS);
        if max == 0 || max > 200 {
            return Err(ToolError::new("max_messages: must be between 1 and 200"));
        }
        let id = a.session_id.trim().to_string();
        if id.is_empty() || id.len() > 512 {
            return Err(ToolError::new("session_id: must be 1 to 512 characters"));
        }
        let base = dashboard_base(&ctx, &self.fallback_base());
        let now = now_unix_nano();
        let store = &self.state.store;
        let no_session = || {
            ToolError(format!(
                "session_id: no session {id:?} (list_sessions shows them)"
            ))
        };
        let detail = store
            .get_session(id.clone(), now)
            .await?
            .ok_or_else(no_session)?;
        let conversation = store
            .conversation(id.clone(), now)
            .await?
            .ok_or_else(no_session)?;
        let calls = store
            .genai_spans(GenAiSpanQuery {
                filter: GenAiFilter {
                    since: 0,
                    until: u64::MAX >> 1,
                    session_id: Some(id.clone()),
                    ..GenAiFilter::default()
                },
                page: PageRequest {
                    limit: MAX_ITEMS,
                    cursor: None,
                },
                ..GenAiSpanQuery::default()
            })
            .await?;
        let total = conversation.turns.len();
        let user_turns = conversation
            .turns
            .iter()
            .filter(|t| t.role == "user")
            .count();
        let messages: Vec<Message> = conversation
            .turns
            .iter()
            .enumerate()
            .skip(total.saturating_sub(max))
            .map(|(index, t)| {
                // Only what the joined text does not already say.
                let parts = t
                    .message
                    .get("parts")
                    .filter(|p| {
                        p.as_array().is_some_and(|ps| {
                            ps.iter()
                                .any(|x| x.get("type").and_then(Value::as_str) != Some("text"))
                        })
                    })
                    .map(capped);
                Message {
                    index,
                    role: t.role.clone(),
                    content: t.content.as_deref().map(|c| cut(c, 4000)),
                    parts,
                    finish_reason: t.finish_reason.clone(),
                    model: t.model.clone(),
                    time: t.time.clone(),
                    trace_id: t.trace_id.clone(),
                    span_id: t.span_id.clone(),
                }
            })
            .collect();
        // The store lists calls newest first; the loop reads oldest first.
        let mut steps: Vec<CallStep> = calls
            .items
            .into_iter()
            .map(|c| CallStep {
                time: c.start_time,
                trace_id: c.trace_id,
                span_id: c.span_id,
                operation: c.operation,
                model: c.response_model.or(c.request_model),
                tool_name: c.tool_name,
                duration_ms: c.duration_ms,
                input_tokens: c.input_tokens,
                output_tokens: c.output_tokens,
                cost_usd: c.cost_usd,
                status_code: c.status_code,
                error_type: c.error_type,
            })
            .collect();
        steps.reverse();
        let s = &detail.session;
        let link = format!("{base}/sessions/{}", url_part(&s.session_id));
        let mut text = Text::new();
        text.line(format!(
            "Session {}: {} messages ({} from the user), {} GenAI calls, {} traces, {} errors, {} in / {} out tokens, {}.",
            s.session_id,
            total,
            user_turns,
            s.gen_ai_requests,
            s.trace_count,
            s.error_count,
            s.input_tokens,
            s.output_tokens,
            usd(s.cost_usd)
        ));
        if total > messages.len() {
            text.line(format!(
                "…[cut {} earlier messages]",
                total - messages.len()
            ));
        }
        for m in &messages {
            text.line(format!(
                "[{}] {}{}: {}",
                m.index,
                m.role,
                m.model
                    .as_deref()
                    .map(|x| format!(" ({x})"))
                    .unwrap_or_default(),
                line(m.content.as_deref().unwrap_or("(no text)"))
            ));
            if let Some(p) = &m.parts {
                text.line(format!("     parts: {}", cut(&p.to_string(), 400)));
            }
        }
        if !steps.is_empty() {
            text.line("Calls in order:");
        }
        for c in &steps {
            text.line(format!(
                "  {} {} {}{} {} in={} out={} {} {}{}",
                c.time,
                or_dash(c.operation.as_deref()),
                or_dash(c.model.as_deref()),
                c.tool_name
                    .as_deref()
                    .map(|t| format!(" tool={t}"))
                    .unwrap_or_default(),
                ms(c.duration_ms),
                c.input_tokens.unwrap_or(0),
                c.output_tokens.unwrap_or(0),
                usd(c.cost_usd),
                c.status_code,
                c.error_type
                    .as_deref()
                    .map(|e| format!(" error={e}"))
                    .unwrap_or_default()
            ));
        }
        text.link(&link);
        Ok(Answer {
            text: text.finish(),
            data: ConversationView {
                session_id: s.session_id.clone(),
                message_count: total,
                user_turns,
                messages,
                calls: steps,
                trace_count: s.trace_count,
                error_count: s.error_count,
                genai_requests: s.gen_ai_requests,
                input_tokens: s.input_tokens,
                output_tokens: s.output_tokens,
                cost_usd: s.cost_usd,
                link,
            },
        })
    }
}
