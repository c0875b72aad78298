//! Error-group tools: list, inspect (exception chain, breadcrumbs, tag
//! distributions, linked trace and session), their events, and the two
//! changes a triager makes: status and merge.

use std::collections::BTreeMap;

use rmcp::handler::server::tool::schema_for_output;
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::answer::{
    dashboard_base, read_only, Answer, Pairs, Parameters, ToolError, ToolResult,
};
use super::super::render::{capped, cut, line, or_dash, Text, LINE_CHARS, MAX_ITEMS};
use super::super::QylMcp;
use crate::errors::analysis::{self, Exception, Frame, SIMILAR_CANDIDATES};
use crate::model::errors::{
    ErrorCommand, ErrorEventRow, ErrorGroupDetail, ErrorGroupRow, ErrorQuery, ErrorSort,
    StatusChange,
};
use crate::model::now_unix_nano;
use crate::model::query::PageRequest;
use crate::model::Batch;
use crate::storage::queries::errors::is_status_filter;

/// Events `get_error` reads to count tag values.
const TAG_SAMPLE: usize = 100;
/// Breadcrumbs `get_error` keeps: the ones right before the error.
const BREADCRUMBS: usize = 30;
/// Notes `get_error` shows: the latest ones (a long thread is on the page).
const NOTES: usize = 20;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListErrorsArgs {
    /// `unresolved`, `resolved`, `archived`, `merged`, or an unresolved
    /// substatus: `new`, `ongoing`, `regressed`, `escalating`. Default: all but merged.
    pub status: Option<String>,
    /// Groups with events from this service.
    pub service: Option<String>,
    /// Groups first or last seen in this release (`service.version`).
    pub release: Option<String>,
    /// Only failed GenAI calls (category `genai`).
    #[serde(default)]
    pub genai_only: bool,
    /// `exception`, `status` (an ERROR span without exception), `genai` (a
    /// failed GenAI call) or `genai_soft` (an answer cut off or filtered).
    pub category: Option<String>,
    /// Last seen at or after: RFC 3339, a duration ago (`24h`), or Unix ms.
    pub since: Option<String>,
    /// Text found in the type, message, culprit, service or release.
    pub query: Option<String>,
    /// `last_seen` (default), `count` or `users`.
    pub sort: Option<String>,
    /// `next_cursor` of the previous answer.
    pub cursor: Option<String>,
    /// Groups per answer, 1 to 50 (default 20).
    pub limit: Option<usize>,
}

/// One error group, short.
#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorBrief {
    pub id: i64,
    pub error_type: Option<String>,
    pub message_template: Option<String>,
    /// Where to start reading: the first in-app frame, else the span name.
    pub culprit: Option<String>,
    /// `exception`, `status`, `genai` or `genai_soft`.
    pub category: String,
    pub status: String,
    pub substatus: String,
    pub count: u64,
    pub user_count: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub first_release: Option<String>,
    pub last_release: Option<String>,
    pub services: Vec<String>,
    /// The GenAI failure class (`rate_limited`, `context_length_exceeded`…).
    pub genai_class: Option<String>,
    pub genai_model: Option<String>,
    pub genai_provider: Option<String>,
    /// The group in the dashboard.
    pub link: String,
}

impl ErrorBrief {
    pub fn new(g: &ErrorGroupRow, base: &str) -> ErrorBrief {
        let genai = g.gen_ai.as_ref();
        ErrorBrief {
            id: g.id,
            error_type: g.error_type.clone(),
            message_template: g.message_template.as_deref().map(|m| cut(m, LINE_CHARS)),
            culprit: g.culprit.clone(),
            category: g.category.clone(),
            status: g.status.clone(),
            substatus: g.substatus.clone(),
            count: g.count,
            user_count: g.user_count,
            first_seen: g.first_seen.clone(),
            last_seen: g.last_seen.clone(),
            first_release: g.first_release.clone(),
            last_release: g.last_release.clone(),
            services: g.services.clone(),
            genai_class: genai.and_then(|x| x.error_class.clone()),
            genai_model: genai.and_then(|x| x.model.clone()),
            genai_provider: genai.and_then(|x| x.provider.clone()),
            link: format!("{base}/errors/{}", g.id),
        }
    }

    /// One line: `#12 KeyError: 'u-7' (shop; 3 events, 1 user; regressed) …`.
    pub fn line(&self) -> String {
        let what = match (&self.error_type, &self.message_template) {
            (Some(t), Some(m)) => format!("{t}: {m}"),
            (Some(t), None) => t.clone(),
            (None, Some(m)) => m.clone(),
            (None, None) => "(no message)".into(),
        };
        let genai = match (&self.genai_class, &self.genai_model) {
            (Some(c), Some(m)) => format!("; GenAI {c} on {m}"),
            (Some(c), None) => format!("; GenAI {c}"),
            _ => String::new(),
        };
        format!(
            "#{} {} — in {} ({}; {} events, {} users; {}/{}; last {}{genai}) {}",
            self.id,
            line(&what),
            or_dash(self.culprit.as_deref()),
            self.services.join(","),
            self.count,
            self.user_count,
            self.status,
            self.substatus,
            self.last_seen,
            self.link
        )
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorList {
    pub items: Vec<ErrorBrief>,
    /// Pass back as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
    pub link: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorIdArgs {
    /// The error group id (`id` in `list_errors`).
    pub id: i64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorEventsArgs {
    /// The error group id.
    pub id: i64,
    pub cursor: Option<String>,
    /// Events per answer, 1 to 50 (default 20).
    pub limit: Option<usize>,
}

/// How often each value of a tag occurred in the group's recent events.
#[derive(Debug, Serialize, JsonSchema)]
pub struct TagCounts {
    pub tag: String,
    /// Most frequent first.
    pub values: Vec<TagValue>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TagValue {
    pub value: String,
    pub count: u64,
}

/// The latest event of a group, with what led to it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LatestEvent {
    pub event_id: String,
    pub time: String,
    pub service_name: String,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub message: Option<String>,
    pub handled: bool,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub session_id: Option<String>,
    pub user: Option<String>,
    /// The stack trace as sent (secrets redacted), cut when long.
    pub stacktrace: Option<String>,
    /// Oldest first, up to 30: the ones right before the error.
    pub breadcrumbs: Vec<Value>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorReport {
    pub group: ErrorBrief,
    /// Why events land in this group: the fingerprint rule and its parts.
    pub fingerprint: Value,
    pub resolved_in_release: Option<String>,
    pub merged_into: Option<i64>,
    /// A sample of affected users and traces.
    pub users: Vec<String>,
    pub sample_trace_ids: Vec<String>,
    /// The exception chain of the latest event (outermost first), each with
    /// its in-app frames first; `index` keeps the order as sent.
    pub exceptions: Vec<Exception>,
    pub latest_event: Option<LatestEvent>,
    /// Value counts over the group's latest events (up to 100).
    pub tags: Vec<TagCounts>,
    pub events_sampled: usize,
    pub trace_link: Option<String>,
    pub session_link: Option<String>,
    /// The newest automatic triage report (suspected cause, what changed,
    /// next steps, model summary), when one was written.
    pub triage: Option<crate::errors::triage::TriageReport>,
    /// The latest notes people and assistants left, oldest first.
    pub notes: Vec<NoteBrief>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct NoteBrief {
    pub time: String,
    pub author: String,
    pub text: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct ErrorEvents {
    /// Newest first: event_id, time, service, release, trace and span, user,
    /// message, GenAI model and class.
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
    pub link: String,
}

/// The new status of a group.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NewStatus {
    Unresolved,
    Resolved,
    Archived,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateErrorArgs {
    /// The error group id.
    pub id: i64,
    /// The new status; leave out to only add a note.
    pub status: Option<NewStatus>,
    /// A note to leave on the group (what you found, the suspected cause,
    /// the fix): shown on the group's page and to the next `get_error`.
    pub note: Option<String>,
    /// With `resolved`: resolved only until an event from a newer release
    /// (resolve in next release).
    #[serde(default)]
    pub in_next_release: bool,
    /// With `archived`: until the group escalates, rather than forever.
    #[serde(default)]
    pub until_escalating: bool,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MergeErrorsArgs {
    /// The group that stays.
    pub target: i64,
    /// Groups folded into it (their events, counts and fingerprints).
    pub sources: Vec<i64>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SimilarArgs {
    /// The error group to compare others with.
    pub id: i64,
    /// Groups to return, 1 to 20 (default 10).
    pub limit: Option<usize>,
}

/// A group like the one asked about, and why.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SimilarGroup {
    pub group: ErrorBrief,
    /// 0 to 1: fingerprint parts shared (weight 0.6) and message template
    /// words shared (weight 0.4).
    pub score: f64,
    /// Fingerprint parts (type, frames, message…) both groups have.
    pub shared_parts: Vec<String>,
    /// Word overlap of the message templates (Jaccard, 0 to 1).
    pub message_similarity: f64,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SimilarErrors {
    pub of: ErrorBrief,
    /// Most similar first.
    pub similar: Vec<SimilarGroup>,
    /// Groups compared (found by type, culprit and message words).
    pub candidates: usize,
}

fn no_group(id: i64) -> ToolError {
    ToolError(format!(
        "id: no error group {id} (list_errors shows the ids)"
    ))
}

fn refuse_read_only(ctx: &RequestContext<RoleServer>, tool: &str) -> Result<(), ToolError> {
    if read_only(ctx) {
        return Err(ToolError(format!(
            "{tool} changes error groups, and this token is read-only: use the full auth token (auth.token) to make changes"
        )));
    }
    Ok(())
}

fn tag_counts(events: &[ErrorEventRow]) -> Vec<TagCounts> {
    type Pick = fn(&ErrorEventRow) -> Option<String>;
    let tags: [(&str, Pick); 8] = [
        ("release", |e| e.release.clone()),
        ("environment", |e| e.environment.clone()),
        ("service", |e| Some(e.service_name.clone())),
        ("user", |e| e.user.clone()),
        ("handled", |e| Some(e.handled.to_string())),
        ("source", |e| Some(e.source.clone())),
        ("gen_ai.model", |e| e.gen_ai_model.clone()),
        ("gen_ai.error_class", |e| e.gen_ai_error_class.clone()),
    ];
    tags.iter()
        .filter_map(|(tag, pick)| {
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for e in events {
                if let Some(v) = pick(e) {
                    *counts.entry(v).or_default() += 1;
                }
            }
            if counts.is_empty() {
                return None;
            }
            let mut values: Vec<TagValue> = counts
                .into_iter()
                .map(|(value, count)| TagValue { value, count })
                .collect();
            values.sort_by(|a, b| b.count.cmp(&a.count).then(a.value.cmp(&b.value)));
            values.truncate(10);
            Some(TagCounts {
                tag: tag.to_string(),
                values,
            })
        })
        .collect()
}

fn frame_line(f: &Frame) -> String {
    let place = match (&f.path, f.line) {
        (Some(p), Some(l)) => format!("{p}:{l}"),
        (Some(p), None) => p.clone(),
        _ => "?".into(),
    };
    let func = [f.module.as_deref(), f.function.as_deref()]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(".");
    format!(
        "    {}#{} {} at {}",
        if f.in_app { "[app] " } else { "" },
        f.index,
        or_dash(Some(func.as_str()).filter(|s| !s.is_empty())),
        place
    )
}

/// The exception chain capped for a model's reading: at most
/// [`MAX_ITEMS`] frames each, long messages cut.
fn exception_chain(frames: Option<&Value>) -> Vec<Exception> {
    analysis::exception_chain(frames)
        .into_iter()
        .map(|mut e| {
            e.frames.truncate(MAX_ITEMS);
            e.message = e.message.map(|m| cut(&m, 2000));
            e
        })
        .collect()
}

impl QylMcp {
    /// Sends a change through the writer and waits for its commit, as the
    /// REST handlers do.
    async fn change(&self, command: ErrorCommand) -> Result<(), ToolError> {
        let batch = Batch {
            error_commands: vec![command],
            ..Batch::default()
        };
        self.state
            .writer
            .write(batch)
            .await
            .map(|_| ())
            .map_err(|e| ToolError(format!("the change was not stored: {e}")))
    }

    /// Refuses a group that does not exist or is merged into another.
    async fn require_unmerged(&self, id: i64, arg: &str) -> Result<(), ToolError> {
        match self.state.store.error_status(id).await?.as_deref() {
            None => Err(ToolError(format!("{arg}: no error group {id}"))),
            Some("merged") => Err(ToolError(format!(
                "{arg}: error group {id} is merged into another; change that one"
            ))),
            Some(_) => Ok(()),
        }
    }

    pub(in crate::mcp) async fn group(&self, id: i64) -> Result<ErrorGroupDetail, ToolError> {
        self.state
            .store
            .get_error(id, now_unix_nano())
            .await?
            .ok_or_else(|| no_group(id))
    }
}

#[tool_router(router = error_tools, vis = "pub(in crate::mcp)")]
impl QylMcp {
    #[tool(
        description = "Error groups (exceptions, failed spans, failed or cut-off GenAI calls), most recently seen first. Filter by status, service, release, GenAI-only, text; sort by last_seen, count or users.",
        output_schema = schema_for_output::<ErrorList>(),
        annotations(title = "List error groups", read_only_hint = true, open_world_hint = false)
    )]
    async fn list_errors(
        &self,
        Parameters(a): Parameters<ListErrorsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<ErrorList> {
        let base = dashboard_base(&ctx, &self.fallback_base());
        let status = a.status.map(|s| s.trim().to_ascii_lowercase());
        if let Some(s) = &status {
            if !is_status_filter(s) {
                return Err(ToolError(format!(
                    "status: {s:?} is not one of unresolved, resolved, archived, merged, new, ongoing, regressed, escalating"
                )));
            }
        }
        let sort = match a.sort.as_deref() {
            None | Some("last_seen") => ErrorSort::LastSeen,
            Some("count") => ErrorSort::Count,
            Some("users") => ErrorSort::Users,
            Some(other) => {
                return Err(ToolError(format!(
                    "sort: {other:?} is not one of last_seen, count, users"
                )))
            }
        };
        let mut pairs = Pairs::default();
        pairs
            .add("since", a.since)
            .add("cursor", a.cursor)
            .add("limit", Some(a.limit.unwrap_or(20)));
        let mut p = pairs.params();
        let page = p.page(MAX_ITEMS)?;
        let since = p.time("since")?;
        let category = match (a.genai_only, a.category) {
            (true, Some(c)) if c != "genai" => {
                return Err(ToolError(format!(
                    "category: {c:?} contradicts genai_only (which is category genai)"
                )))
            }
            (true, _) => Some("genai".to_string()),
            (false, Some(c))
                if !["exception", "status", "genai", "genai_soft"].contains(&c.as_str()) =>
            {
                return Err(ToolError(format!(
                    "category: {c:?} is not one of exception, status, genai, genai_soft"
                )))
            }
            (false, c) => c,
        };
        let q = ErrorQuery {
            status,
            service: a.service,
            release: a.release,
            category,
            since,
            q: a.query
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
            sort,
            page,
            now_unix_nano: now_unix_nano(),
        };
        let found = self.state.store.list_errors(q).await?;
        let items: Vec<ErrorBrief> = found
            .items
            .iter()
            .map(|g| ErrorBrief::new(g, &base))
            .collect();
        let mut text = Text::new();
        if items.is_empty() {
            text.line("No error groups match.");
        }
        for g in &items {
            text.line(g.line());
        }
        text.more(items.len(), found.next_cursor.as_deref())
            .link(&format!("{base}/errors"));
        Ok(Answer {
            text: text.finish(),
            data: ErrorList {
                items,
                next_cursor: found.next_cursor,
                link: format!("{base}/errors"),
            },
        })
    }

    #[tool(
        description = "One error group in depth: exception chain with in-app frames first, message template, fingerprint, the latest event's breadcrumbs and stack trace, tag distributions (release, environment, user, model…) over recent events, first/last release, GenAI class, and the linked trace and session.",
        output_schema = schema_for_output::<ErrorReport>(),
        annotations(title = "Get an error group", read_only_hint = true, open_world_hint = false)
    )]
    pub(in crate::mcp) async fn get_error(
        &self,
        Parameters(a): Parameters<ErrorIdArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<ErrorReport> {
        let base = dashboard_base(&ctx, &self.fallback_base());
        let detail = self.group(a.id).await?;
        let events = self
            .state
            .store
            .error_events(
                a.id,
                PageRequest {
                    limit: TAG_SAMPLE,
                    cursor: None,
                },
            )
            .await?;
        let latest = match events.items.first() {
            Some(e) => {
                self.state
                    .store
                    .error_event(a.id, e.event_id.clone())
                    .await?
            }
            None => None,
        };
        let exceptions = exception_chain(latest.as_ref().and_then(|e| e.frames.as_ref()));
        let g = &detail.group;
        let brief = ErrorBrief::new(g, &base);
        let latest_event = latest.map(|d| {
            let skip = d.breadcrumbs.len().saturating_sub(BREADCRUMBS);
            LatestEvent {
                event_id: d.event.event_id.clone(),
                time: d.event.time.clone(),
                service_name: d.event.service_name.clone(),
                release: d.event.release.clone(),
                environment: d.event.environment.clone(),
                message: d.event.message.as_deref().map(|m| cut(m, 2000)),
                handled: d.event.handled,
                trace_id: d.event.trace_id.clone(),
                span_id: d.event.span_id.clone(),
                session_id: d.event.session_id.clone(),
                user: d.event.user.clone(),
                stacktrace: d.stacktrace.as_deref().map(|s| cut(s, 4000)),
                breadcrumbs: d.breadcrumbs.iter().skip(skip).map(capped).collect(),
            }
        });
        let trace_link = latest_event
            .as_ref()
            .and_then(|e| e.trace_id.as_ref())
            .map(|t| format!("{base}/traces/{t}"));
        let session_link = latest_event
            .as_ref()
            .and_then(|e| e.session_id.as_ref())
            .map(|s| format!("{base}/sessions/{s}"));
        let tags = tag_counts(&events.items);
        let skip = detail.notes.len().saturating_sub(NOTES);
        let notes: Vec<NoteBrief> = detail
            .notes
            .iter()
            .skip(skip)
            .map(|n| NoteBrief {
                time: n.created_at.clone(),
                author: n.author.clone(),
                text: cut(&n.text, 2000),
            })
            .collect();

        let mut text = Text::new();
        text.line(brief.line());
        text.line(format!(
            "First seen {} (release {}), last seen {} (release {}).",
            g.first_seen,
            or_dash(g.first_release.as_deref()),
            g.last_seen,
            or_dash(g.last_release.as_deref())
        ));
        text.line(format!(
            "Grouped by {}: {}",
            detail.fingerprint_explanation.rule, detail.fingerprint_explanation.description
        ));
        for e in &exceptions {
            text.line(format!(
                "Exception {}: {}",
                or_dash(e.type_name.as_deref()),
                line(or_dash(e.message.as_deref()))
            ));
            for f in e.frames.iter().take(15) {
                text.line(frame_line(f));
            }
            if e.frames.len() > 15 {
                text.line(format!("    …[cut {} frames]", e.frames.len() - 15));
            }
        }
        if let Some(e) = &latest_event {
            text.line(format!(
                "Latest event {} at {} in {} (release {}, user {}): {}",
                e.event_id,
                e.time,
                e.service_name,
                or_dash(e.release.as_deref()),
                or_dash(e.user.as_deref()),
                line(or_dash(e.message.as_deref()))
            ));
            if !e.breadcrumbs.is_empty() {
                text.line("Breadcrumbs (oldest first):");
                for b in e.breadcrumbs.iter().rev().take(10).rev() {
                    text.line(format!(
                        "  {} [{}] {}",
                        b["time"].as_str().unwrap_or(""),
                        b["category"].as_str().unwrap_or(""),
                        line(b["message"].as_str().unwrap_or(""))
                    ));
                }
            }
        }
        for t in &tags {
            let values: Vec<String> = t
                .values
                .iter()
                .take(5)
                .map(|v| format!("{} ({})", v.value, v.count))
                .collect();
            text.line(format!("{}: {}", t.tag, values.join(", ")));
        }
        if let Some(l) = &trace_link {
            text.line(format!("Trace: {l}"));
        }
        if let Some(l) = &session_link {
            text.line(format!("Session: {l}"));
        }
        if !notes.is_empty() {
            text.line(format!(
                "Notes ({} of {}):",
                notes.len(),
                detail.notes.len()
            ));
            for n in &notes {
                text.line(format!("  {} {}: {}", n.time, n.author, line(&n.text)));
            }
        }
        if let Some(r) = &detail.triage {
            text.line(format!("Triage ({}, {}):", r.change, r.created_at));
            if let Some(c) = &r.suspected_cause {
                text.line(format!("  suspected cause {}", c.frame));
            }
            if let Some(s) = &r.summary {
                text.line(format!("  summary: {}", line(s)));
            }
            for (i, s) in r.next_steps.iter().take(5).enumerate() {
                text.line(format!("  {}. {}", i + 1, line(s)));
            }
        }
        text.link(&brief.link);
        Ok(Answer {
            text: text.finish(),
            data: ErrorReport {
                fingerprint: capped(&detail.fingerprint_explanation),
                resolved_in_release: g.resolved_in_release.clone(),
                merged_into: g.merged_into,
                users: g.users.iter().take(MAX_ITEMS).cloned().collect(),
                sample_trace_ids: g.sample_trace_ids.iter().take(MAX_ITEMS).cloned().collect(),
                group: brief,
                exceptions,
                latest_event,
                tags,
                events_sampled: events.items.len(),
                trace_link,
                session_link,
                triage: detail.triage.clone(),
                notes,
            },
        })
    }

    #[tool(
        description = "The events (occurrences) of an error group, newest first: time, service, release, trace and span, user, message.",
        output_schema = schema_for_output::<ErrorEvents>(),
        annotations(title = "List an error group's events", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_error_events(
        &self,
        Parameters(a): Parameters<ErrorEventsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<ErrorEvents> {
        let base = dashboard_base(&ctx, &self.fallback_base());
        let mut pairs = Pairs::default();
        pairs
            .add("cursor", a.cursor)
            .add("limit", Some(a.limit.unwrap_or(20)));
        let page = pairs.params().page(MAX_ITEMS)?;
        if self.state.store.error_status(a.id).await?.is_none() {
            return Err(no_group(a.id));
        }
        let found = self.state.store.error_events(a.id, page).await?;
        let mut text = Text::new();
        if found.items.is_empty() {
            text.line(format!("Error group {} has no stored events.", a.id));
        }
        for e in &found.items {
            text.line(format!(
                "{} {} {} release={} user={} trace={} {}",
                e.time,
                e.event_id,
                e.service_name,
                or_dash(e.release.as_deref()),
                or_dash(e.user.as_deref()),
                or_dash(e.trace_id.as_deref()),
                line(or_dash(e.message.as_deref()))
            ));
        }
        let link = format!("{base}/errors/{}", a.id);
        text.more(found.items.len(), found.next_cursor.as_deref())
            .link(&link);
        Ok(Answer {
            text: text.finish(),
            data: ErrorEvents {
                items: found.items.iter().map(capped).collect(),
                next_cursor: found.next_cursor,
                link,
            },
        })
    }

    #[tool(
        description = "Error groups like this one: sharing fingerprint parts (exception type, in-app frames, message) or message-template words, most similar first. Candidates to merge, or the same bug in another place.",
        output_schema = schema_for_output::<SimilarErrors>(),
        annotations(title = "Find similar error groups", read_only_hint = true, open_world_hint = false)
    )]
    async fn find_similar_errors(
        &self,
        Parameters(a): Parameters<SimilarArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<SimilarErrors> {
        let limit = a.limit.unwrap_or(10);
        if limit == 0 || limit > 20 {
            return Err(ToolError::new("limit: must be between 1 and 20"));
        }
        let base = dashboard_base(&ctx, &self.fallback_base());
        let target = self.group(a.id).await?;
        let t = &target.group;
        let (similar, candidates) =
            analysis::similar_groups(&self.state.store, &target, limit, SIMILAR_CANDIDATES).await?;
        let similar: Vec<SimilarGroup> = similar
            .into_iter()
            .map(|s| SimilarGroup {
                group: ErrorBrief::new(&s.group, &base),
                score: s.score,
                shared_parts: s.shared_parts.into_iter().take(MAX_ITEMS).collect(),
                message_similarity: s.message_similarity,
            })
            .collect();
        let of = ErrorBrief::new(t, &base);
        let mut text = Text::new();
        text.line(format!("Similar to {}", of.line()));
        if similar.is_empty() {
            text.line(format!(
                "No similar groups among {} candidates.",
                candidates.len()
            ));
        }
        for s in &similar {
            text.line(format!(
                "  score {:.2} (message {:.2}; shared {}): {}",
                s.score,
                s.message_similarity,
                if s.shared_parts.is_empty() {
                    "-".to_string()
                } else {
                    line(&s.shared_parts.join(", "))
                },
                s.group.line()
            ));
        }
        text.link(&of.link);
        Ok(Answer {
            text: text.finish(),
            data: SimilarErrors {
                of,
                similar,
                candidates: candidates.len(),
            },
        })
    }

    #[tool(
        description = "Changes an error group's status: resolved (optionally only until a newer release: in_next_release), archived (optionally until it escalates), or unresolved again; and/or leaves a note on it (your findings, for the people reading the group's page). Needs the full token.",
        output_schema = schema_for_output::<ErrorBrief>(),
        annotations(title = "Update an error group", read_only_hint = false, destructive_hint = false, idempotent_hint = true, open_world_hint = false)
    )]
    async fn update_error(
        &self,
        Parameters(a): Parameters<UpdateErrorArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<ErrorBrief> {
        refuse_read_only(&ctx, "update_error")?;
        let change = match (a.status, a.in_next_release, a.until_escalating) {
            (None, false, false) => None,
            (Some(NewStatus::Unresolved), false, false) => Some(StatusChange::Unresolve),
            (Some(NewStatus::Resolved), false, false) => Some(StatusChange::ResolveNow),
            (Some(NewStatus::Resolved), true, false) => Some(StatusChange::ResolveInNextRelease),
            (Some(NewStatus::Archived), false, false) => Some(StatusChange::ArchiveForever),
            (Some(NewStatus::Archived), false, true) => Some(StatusChange::ArchiveUntilEscalating),
            _ => {
                return Err(ToolError::new(
                    "in_next_release goes with status resolved, until_escalating with archived",
                ))
            }
        };
        let at = now_unix_nano();
        // A note is signed by the assistant that called, as its client
        // names itself: in each request's `_meta` (stateless protocol), or
        // at initialize (sessions). Stateless peers get rmcp's default
        // name, which says nothing about the caller.
        let unnamed = rmcp::model::Implementation::default().name;
        let author = ctx
            .meta
            .client_info()
            .map(|c| c.name)
            .or_else(|| ctx.peer.peer_info().map(|p| p.client_info.name.clone()))
            .filter(|n| !n.trim().is_empty() && *n != unnamed)
            .unwrap_or_else(|| "mcp".to_string());
        let note = match &a.note {
            Some(text) => Some(
                ErrorCommand::add_note(a.id, &author, text, at)
                    .map_err(|e| ToolError::new(format!("note: {e}")))?,
            ),
            None => None,
        };
        if change.is_none() && note.is_none() {
            return Err(ToolError::new("status: give a status, a note, or both"));
        }
        self.require_unmerged(a.id, "id").await?;
        if let Some(change) = change {
            self.change(ErrorCommand::SetStatus {
                group_id: a.id,
                change,
                at_unix_nano: at,
            })
            .await?;
        }
        if let Some(note) = note {
            self.change(note).await?;
        }
        let base = dashboard_base(&ctx, &self.fallback_base());
        let brief = ErrorBrief::new(&self.group(a.id).await?.group, &base);
        let what = match (change.is_some(), a.note.is_some()) {
            (true, true) => "Updated; note added.",
            (false, true) => "Note added.",
            _ => "Updated.",
        };
        let text = format!("{what}\n{}\n", brief.line());
        Ok(Answer { data: brief, text })
    }

    #[tool(
        description = "Merges error groups into one (target stays; sources' events, counts and fingerprints join it, and future events with their fingerprints too). Cannot be undone. Needs the full token.",
        output_schema = schema_for_output::<ErrorBrief>(),
        annotations(title = "Merge error groups", read_only_hint = false, destructive_hint = true, idempotent_hint = false, open_world_hint = false)
    )]
    async fn merge_errors(
        &self,
        Parameters(a): Parameters<MergeErrorsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<ErrorBrief> {
        refuse_read_only(&ctx, "merge_errors")?;
        let mut sources = a.sources.clone();
        sources.sort_unstable();
        sources.dedup();
        if sources.is_empty() || sources.contains(&a.target) {
            return Err(ToolError::new(
                "sources: give at least one group other than the target",
            ));
        }
        self.require_unmerged(a.target, "target").await?;
        for id in &sources {
            self.require_unmerged(*id, "sources").await?;
        }
        self.change(ErrorCommand::Merge {
            target: a.target,
            sources: sources.clone(),
        })
        .await?;
        let base = dashboard_base(&ctx, &self.fallback_base());
        let brief = ErrorBrief::new(&self.group(a.target).await?.group, &base);
        let text = format!(
            "Merged {} into #{}.\n{}\n",
            sources
                .iter()
                .map(|s| format!("#{s}"))
                .collect::<Vec<_>>()
                .join(", "),
            a.target,
            brief.line()
        );
        Ok(Answer { data: brief, text })
    }
}
