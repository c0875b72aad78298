//! Trace, span and log tools: a trace collapsed to what matters (errors,
//! the slowest spans, GenAI calls), its critical path or its errors; one
//! span in full; span and log search, logs grouped into message patterns.

use std::collections::{BTreeMap, HashMap};

use rmcp::handler::server::tool::schema_for_output;
use rmcp::schemars::{self, JsonSchema};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_router, RoleServer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::super::answer::{dashboard_base, Answer, Pairs, Parameters, ToolError, ToolResult};
use super::super::render::{capped, cut, line, ms, or_dash, usd, Text, MAX_ITEMS};
use super::super::QylMcp;
use crate::api::params;
use crate::model::query::{LogQuery, LogRow, SpanNode, SpanQuery, SpanRow, TraceTree};
use crate::model::severity_number;

/// Spans `get_trace` shows unless asked otherwise, and at most.
const DEFAULT_SPANS: usize = 30;
const MAX_SPANS: usize = 200;
/// Of the slowest spans, how many count as interesting in a summary.
const SLOWEST: usize = 5;

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TraceMode {
    /// The tree collapsed to the paths to errors, the slowest spans and GenAI calls.
    #[default]
    Summary,
    /// The chain of spans that decided the trace's duration.
    CriticalPath,
    /// Only failed spans, each with its path from the root.
    Errors,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetTraceArgs {
    /// 32 hex digits.
    pub trace_id: String,
    /// `summary` (default), `critical_path` or `errors`.
    #[serde(default)]
    pub mode: TraceMode,
    /// Spans to show, 1 to 200 (default 30).
    pub max_spans: Option<usize>,
}

/// A span in a trace answer.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SpanBrief {
    pub span_id: String,
    pub parent_span_id: Option<String>,
    /// Depth in the tree (0 = a root).
    pub depth: usize,
    pub name: String,
    pub service_name: String,
    pub kind: String,
    /// Milliseconds after the trace started.
    pub offset_ms: f64,
    pub duration_ms: f64,
    pub status_code: String,
    pub status_message: Option<String>,
    pub genai_model: Option<String>,
    pub genai_operation: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cost_usd: Option<f64>,
    /// Why it is shown: `error`, `slow`, `genai`, `critical`, `root`, or
    /// `path` (an ancestor of one of those).
    pub why: Vec<String>,
    /// Descendants left out below it.
    pub hidden_descendants: usize,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct TraceView {
    pub trace_id: String,
    pub root_name: String,
    pub root_service: String,
    pub services: Vec<String>,
    pub start_time: String,
    pub duration_ms: f64,
    pub span_count: u64,
    pub error_count: u64,
    pub genai_input_tokens: i64,
    pub genai_output_tokens: i64,
    pub genai_cost_usd: Option<f64>,
    pub mode: String,
    /// Tree order (a parent before its children).
    pub spans: Vec<SpanBrief>,
    /// Spans of the trace not in `spans`.
    pub omitted_spans: usize,
    pub log_count: usize,
    /// The trace's logs at WARN or above (up to 20).
    pub problem_logs: Vec<Value>,
    pub link: String,
}

/// A span with its place in the tree.
struct Flat<'a> {
    span: &'a SpanRow,
    depth: usize,
    parent: Option<usize>,
    descendants: usize,
}

fn flatten(roots: &[SpanNode]) -> Vec<Flat<'_>> {
    let mut out: Vec<Flat> = Vec::new();
    // Iterative pre-order: (node, depth, parent index).
    let mut stack: Vec<(&SpanNode, usize, Option<usize>)> =
        roots.iter().rev().map(|n| (n, 0, None)).collect();
    while let Some((node, depth, parent)) = stack.pop() {
        let idx = out.len();
        out.push(Flat {
            span: &node.span,
            depth,
            parent,
            descendants: 0,
        });
        for c in node.children.iter().rev() {
            stack.push((c, depth + 1, Some(idx)));
        }
    }
    // Pre-order: every descendant comes after its ancestor, so one reverse
    // pass sums subtree sizes.
    for i in (0..out.len()).rev() {
        if let Some(p) = out[i].parent {
            let d = out[i].descendants + 1;
            out[p].descendants += d;
        }
    }
    out
}

fn end_ns(s: &SpanRow) -> u64 {
    s.end_time_unix_nano.parse().unwrap_or(0)
}

/// Indexes to show for `mode`, each with why; at most `max`.
fn pick(flat: &[Flat], mode: TraceMode, max: usize) -> BTreeMap<usize, Vec<String>> {
    let mut why: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut reasons: Vec<(usize, &str)> = Vec::new();
    match mode {
        TraceMode::CriticalPath => {
            // From the longest root, always into the child that ended last:
            // the work the parent waited for.
            let roots = flat.iter().enumerate().filter(|(_, f)| f.parent.is_none());
            let mut at = roots
                .max_by(|a, b| a.1.span.duration_ms.total_cmp(&b.1.span.duration_ms))
                .map(|(i, _)| i);
            while let Some(i) = at {
                reasons.push((i, "critical"));
                at = flat
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f.parent == Some(i))
                    .max_by_key(|(_, f)| end_ns(f.span))
                    .map(|(j, _)| j);
            }
        }
        TraceMode::Errors => {
            for (i, f) in flat.iter().enumerate() {
                if f.span.status_code == "ERROR" {
                    reasons.push((i, "error"));
                }
            }
        }
        TraceMode::Summary => {
            for (i, f) in flat.iter().enumerate() {
                if f.parent.is_none() {
                    reasons.push((i, "root"));
                }
            }
            for (i, f) in flat.iter().enumerate() {
                if f.span.status_code == "ERROR" {
                    reasons.push((i, "error"));
                }
            }
            for (i, f) in flat.iter().enumerate() {
                if f.span.gen_ai.is_some() {
                    reasons.push((i, "genai"));
                }
            }
            let mut by_time: Vec<usize> = (0..flat.len()).collect();
            by_time.sort_by(|a, b| {
                flat[*b]
                    .span
                    .duration_ms
                    .total_cmp(&flat[*a].span.duration_ms)
            });
            for i in by_time.into_iter().take(SLOWEST) {
                reasons.push((i, "slow"));
            }
        }
    }
    // Each reason brings its path from the root, while the budget lasts.
    for (i, reason) in reasons {
        let mut path = vec![i];
        let mut at = flat[i].parent;
        while let Some(p) = at {
            path.push(p);
            at = flat[p].parent;
        }
        let new = path.iter().filter(|p| !why.contains_key(p)).count();
        if why.len() + new > max {
            if why.contains_key(&i) {
                why.entry(i).or_default().push(reason.to_string());
            }
            continue;
        }
        for p in path.into_iter().skip(1) {
            why.entry(p).or_default();
        }
        why.entry(i).or_default().push(reason.to_string());
    }
    for v in why.values_mut() {
        if v.is_empty() {
            v.push("path".into());
        }
        v.dedup();
    }
    why
}

fn brief(
    flat: &[Flat],
    i: usize,
    why: Vec<String>,
    shown: &BTreeMap<usize, Vec<String>>,
    t0: u64,
) -> SpanBrief {
    let f = &flat[i];
    let s = f.span;
    // Descendants not shown: the subtree minus shown members of it.
    let shown_below = shown
        .keys()
        .filter(|&&j| j > i && j <= i + f.descendants)
        .count();
    let g = s.gen_ai.as_ref();
    SpanBrief {
        span_id: s.span_id.clone(),
        parent_span_id: s.parent_span_id.clone(),
        depth: f.depth,
        name: s.name.clone(),
        service_name: s.service_name.clone(),
        kind: s.kind.clone(),
        offset_ms: s.start_unix_nano().saturating_sub(t0) as f64 / 1e6,
        duration_ms: s.duration_ms,
        status_code: s.status_code.clone(),
        status_message: s.status_message.as_deref().map(|m| cut(m, 500)),
        genai_model: g.and_then(|g| g.response_model.clone().or(g.request_model.clone())),
        genai_operation: g.and_then(|g| g.operation.clone()),
        input_tokens: g.and_then(|g| g.input_tokens),
        output_tokens: g.and_then(|g| g.output_tokens),
        cost_usd: g.and_then(|g| g.cost_usd),
        why,
        hidden_descendants: f.descendants - shown_below,
    }
}

fn span_line(s: &SpanBrief) -> String {
    let mut out = format!(
        "{}{} {} ({}) +{} {}",
        "  ".repeat(s.depth),
        if s.status_code == "ERROR" {
            "✗"
        } else {
            "·"
        },
        line(&s.name),
        s.service_name,
        ms(s.offset_ms),
        ms(s.duration_ms)
    );
    if let Some(m) = &s.genai_model {
        out.push_str(&format!(
            " [{} {m} in={} out={} {}]",
            or_dash(s.genai_operation.as_deref()),
            s.input_tokens.unwrap_or(0),
            s.output_tokens.unwrap_or(0),
            usd(s.cost_usd)
        ));
    }
    if let Some(m) = &s.status_message {
        out.push_str(&format!(" error: {}", line(m)));
    }
    if s.hidden_descendants > 0 {
        out.push_str(&format!(" (+{} spans below)", s.hidden_descendants));
    }
    out.push_str(&format!(" span={}", s.span_id));
    out
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetSpanArgs {
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SpanDetail {
    /// The span: ids, name, kind, times, status, service, GenAI fields,
    /// attributes, resource, events and links (long values cut).
    pub span: Value,
    /// `gen_ai.input.messages` / `gen_ai.output.messages` (or the
    /// instructions), when the application recorded them.
    pub genai_input: Option<Value>,
    pub genai_output: Option<Value>,
    /// Logs written inside the span (up to 50).
    pub logs: Vec<Value>,
    pub link: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchSpansArgs {
    pub service: Option<String>,
    /// Span name, exactly.
    pub name: Option<String>,
    /// `ok`, `error` or `unset`.
    pub status: Option<String>,
    /// `server`, `client`, `internal`, `producer` or `consumer`.
    pub kind: Option<String>,
    pub min_duration_ms: Option<f64>,
    pub max_duration_ms: Option<f64>,
    /// Start at or after: RFC 3339, a duration ago (`1h`), or Unix ms.
    pub since: Option<String>,
    pub until: Option<String>,
    pub session_id: Option<String>,
    pub trace_id: Option<String>,
    /// Attribute (or resource attribute) values, exactly: `{"http.route": "/users/{id}"}`.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    pub cursor: Option<String>,
    /// Spans per answer, 1 to 50 (default 20).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SpanHit {
    pub trace_id: String,
    pub span_id: String,
    pub name: String,
    pub service_name: String,
    pub kind: String,
    pub start_time: String,
    pub duration_ms: f64,
    pub status_code: String,
    pub status_message: Option<String>,
    pub session_id: Option<String>,
    pub genai_model: Option<String>,
    pub link: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct SpanList {
    pub items: Vec<SpanHit>,
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchLogsArgs {
    pub service: Option<String>,
    /// Lowest severity: `DEBUG`, `INFO`, `WARN`, `ERROR`, `FATAL` or 1-24.
    pub severity_min: Option<String>,
    /// Text in the body, whatever its case.
    pub text: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub session_id: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    /// Attribute values, exactly.
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
    pub cursor: Option<String>,
    /// Records per answer, 1 to 50 (default 50).
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogHit {
    pub time: String,
    pub severity: String,
    pub service_name: String,
    pub body: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
}

/// Records whose bodies differ only in numbers, ids and quoted values.
#[derive(Debug, Serialize, JsonSchema)]
pub struct LogPattern {
    /// The body with variable parts as `<*>`.
    pub pattern: String,
    pub count: u64,
    pub example: String,
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct LogList {
    pub items: Vec<LogHit>,
    /// The records of this answer grouped by message pattern, most frequent first.
    pub patterns: Vec<LogPattern>,
    pub next_cursor: Option<String>,
    pub link: String,
}

/// A log body with its variable parts (anything holding a digit, quoted
/// text) replaced, so `user 17 not found` and `user 42 not found` match.
fn pattern_of(body: &str) -> String {
    body.split_whitespace()
        .map(|w| {
            let quoted = (w.starts_with('\'') || w.starts_with('"')) && w.len() > 1;
            if quoted || w.bytes().any(|b| b.is_ascii_digit()) {
                "<*>"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn patterns(logs: &[LogRow]) -> Vec<LogPattern> {
    let mut by: HashMap<String, (u64, String)> = HashMap::new();
    for l in logs {
        let body = l.body.as_deref().unwrap_or("");
        let e = by
            .entry(pattern_of(body))
            .or_insert_with(|| (0, cut(body, 300)));
        e.0 += 1;
    }
    let mut out: Vec<LogPattern> = by
        .into_iter()
        .map(|(pattern, (count, example))| LogPattern {
            pattern: cut(&pattern, 300),
            count,
            example,
        })
        .collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then(a.pattern.cmp(&b.pattern)));
    out.truncate(20);
    out
}

fn json_of(raw: &serde_json::value::RawValue) -> Value {
    serde_json::from_str(raw.get()).unwrap_or(Value::Null)
}

/// A GenAI message attribute: stored as JSON text inside the attribute.
fn message_attr(attrs: &Value, keys: &[&str]) -> Option<Value> {
    keys.iter().find_map(|k| {
        let v = attrs.get(*k)?;
        let mut v = match v {
            Value::String(s) => serde_json::from_str(s).unwrap_or_else(|_| v.clone()),
            other => other.clone(),
        };
        super::super::render::cap_json(&mut v);
        Some(v)
    })
}

impl QylMcp {
    async fn trace(&self, trace_id: &str) -> Result<TraceTree, ToolError> {
        let id = params::trace_id(trace_id)
            .map_err(|e| ToolError(format!("trace_id: {}", e.message)))?;
        self.state
            .store
            .get_trace(&id)
            .await?
            .ok_or_else(|| ToolError(format!("trace_id: no trace {id}")))
    }
}

#[tool_router(router = trace_tools, vis = "pub(in crate::mcp)")]
impl QylMcp {
    #[tool(
        description = "One trace. mode=summary (default): the span tree collapsed to the paths leading to errors, the slowest spans and GenAI calls, with counts of what is hidden; mode=critical_path: the chain of spans that decided the duration; mode=errors: failed spans with their paths. max_spans caps the answer (default 30).",
        output_schema = schema_for_output::<TraceView>(),
        annotations(title = "Get a trace", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_trace(
        &self,
        Parameters(a): Parameters<GetTraceArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<TraceView> {
        let max = a.max_spans.unwrap_or(DEFAULT_SPANS);
        if max == 0 || max > MAX_SPANS {
            return Err(ToolError(format!(
                "max_spans: must be between 1 and {MAX_SPANS}"
            )));
        }
        let base = dashboard_base(&ctx, &self.fallback_base());
        let tree = self.trace(&a.trace_id).await?;
        let flat = flatten(&tree.roots);
        let t0 = flat
            .iter()
            .map(|f| f.span.start_unix_nano())
            .min()
            .unwrap_or(0);
        let chosen = pick(&flat, a.mode, max);
        let spans: Vec<SpanBrief> = chosen
            .iter()
            .map(|(&i, why)| brief(&flat, i, why.clone(), &chosen, t0))
            .collect();
        let problem_logs: Vec<Value> = tree
            .logs
            .iter()
            .filter(|l| l.severity_number >= 13)
            .take(20)
            .map(capped)
            .collect();
        let s = &tree.summary;
        let link = format!("{base}/traces/{}", s.trace_id);
        let mode = match a.mode {
            TraceMode::Summary => "summary",
            TraceMode::CriticalPath => "critical_path",
            TraceMode::Errors => "errors",
        };
        let mut text = Text::new();
        text.line(format!(
            "Trace {}: {} ({}) {} — {} spans, {} errors, services {}{}",
            s.trace_id,
            line(&s.root_name),
            s.root_service,
            ms(s.duration_ms),
            s.span_count,
            s.error_count,
            s.services.join(", "),
            if s.gen_ai_input_tokens + s.gen_ai_output_tokens > 0 {
                format!(
                    "; GenAI {} in / {} out tokens, {}",
                    s.gen_ai_input_tokens,
                    s.gen_ai_output_tokens,
                    usd(s.gen_ai_cost_usd)
                )
            } else {
                String::new()
            }
        ));
        text.line(format!(
            "Mode {mode}: {} of {} spans shown.",
            spans.len(),
            flat.len()
        ));
        if spans.is_empty() && a.mode == TraceMode::Errors {
            text.line("No failed spans.");
        }
        for sp in &spans {
            text.line(span_line(sp));
        }
        for l in &problem_logs {
            text.line(format!(
                "log {} {}: {}",
                l["severity_text"].as_str().unwrap_or(""),
                l["service_name"].as_str().unwrap_or(""),
                line(l["body"].as_str().unwrap_or(""))
            ));
        }
        text.link(&link);
        Ok(Answer {
            text: text.finish(),
            data: TraceView {
                trace_id: s.trace_id.clone(),
                root_name: s.root_name.clone(),
                root_service: s.root_service.clone(),
                services: s.services.clone(),
                start_time: s.start_time.clone(),
                duration_ms: s.duration_ms,
                span_count: s.span_count,
                error_count: s.error_count,
                genai_input_tokens: s.gen_ai_input_tokens,
                genai_output_tokens: s.gen_ai_output_tokens,
                genai_cost_usd: s.gen_ai_cost_usd,
                mode: mode.to_string(),
                omitted_spans: flat.len() - spans.len(),
                spans,
                log_count: tree.logs.len(),
                problem_logs,
                link,
            },
        })
    }

    #[tool(
        description = "One span in full: attributes, resource, events (exceptions), links, GenAI input and output messages when recorded, and the logs written inside it.",
        output_schema = schema_for_output::<SpanDetail>(),
        annotations(title = "Get a span", read_only_hint = true, open_world_hint = false)
    )]
    async fn get_span(
        &self,
        Parameters(a): Parameters<GetSpanArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<SpanDetail> {
        let span_id = params::span_id(&a.span_id)
            .map_err(|e| ToolError(format!("span_id: {}", e.message)))?;
        let base = dashboard_base(&ctx, &self.fallback_base());
        let tree = self.trace(&a.trace_id).await?;
        let flat = flatten(&tree.roots);
        let Some(f) = flat.iter().find(|f| f.span.span_id == span_id) else {
            return Err(ToolError(format!(
                "span_id: trace {} has no span {span_id}",
                tree.summary.trace_id
            )));
        };
        let s = f.span;
        let attrs = json_of(&s.attributes);
        let genai_input = message_attr(
            &attrs,
            &[
                "gen_ai.input.messages",
                "gen_ai.system_instructions",
                "gen_ai.prompt",
            ],
        );
        let genai_output = message_attr(&attrs, &["gen_ai.output.messages", "gen_ai.completion"]);
        let logs: Vec<Value> = tree
            .logs
            .iter()
            .filter(|l| l.span_id.as_deref() == Some(span_id.as_str()))
            .take(MAX_ITEMS)
            .map(capped)
            .collect();
        let link = format!("{base}/traces/{}?span={span_id}", s.trace_id);
        let mut text = Text::new();
        text.line(format!(
            "Span {} {} ({}, {}) {} status {}{}",
            s.span_id,
            line(&s.name),
            s.service_name,
            s.kind,
            ms(s.duration_ms),
            s.status_code,
            s.status_message
                .as_deref()
                .map(|m| format!(": {}", line(m)))
                .unwrap_or_default()
        ));
        if let Value::Object(map) = &attrs {
            text.line(format!("Attributes ({}):", map.len()));
            for (k, v) in map.iter().take(40) {
                let v = match v {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                text.line(format!("  {k} = {}", line(&v)));
            }
            if map.len() > 40 {
                text.line(format!("  …[cut {} attributes]", map.len() - 40));
            }
        }
        if let Value::Array(events) = json_of(&s.events) {
            for e in events.iter().take(10) {
                text.line(format!(
                    "event {}: {}",
                    e["name"].as_str().unwrap_or("?"),
                    line(&e["attributes"].to_string())
                ));
            }
        }
        if let Some(v) = &genai_input {
            text.line(format!("GenAI input: {}", cut(&v.to_string(), 1500)));
        }
        if let Some(v) = &genai_output {
            text.line(format!("GenAI output: {}", cut(&v.to_string(), 1500)));
        }
        for l in &logs {
            text.line(format!(
                "log {}: {}",
                l["severity_text"].as_str().unwrap_or(""),
                line(l["body"].as_str().unwrap_or(""))
            ));
        }
        text.link(&link);
        Ok(Answer {
            text: text.finish(),
            data: SpanDetail {
                span: capped(s),
                genai_input,
                genai_output,
                logs,
                link,
            },
        })
    }

    #[tool(
        description = "Finds spans by service, name, status, kind, duration, time, session, trace or attribute values; newest first.",
        output_schema = schema_for_output::<SpanList>(),
        annotations(title = "Search spans", read_only_hint = true, open_world_hint = false)
    )]
    async fn search_spans(
        &self,
        Parameters(a): Parameters<SearchSpansArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<SpanList> {
        let base = dashboard_base(&ctx, &self.fallback_base());
        let mut pairs = Pairs::default();
        pairs
            .add("service", a.service)
            .add("name", a.name)
            .add("status", a.status)
            .add("kind", a.kind)
            .add("min_duration_ms", a.min_duration_ms)
            .add("max_duration_ms", a.max_duration_ms)
            .add("since", a.since)
            .add("until", a.until)
            .add("session_id", a.session_id)
            .add("trace_id", a.trace_id)
            .add("cursor", a.cursor)
            .add("limit", Some(a.limit.unwrap_or(20)));
        for (k, v) in a.attributes {
            pairs.0.push((format!("attr.{k}"), v));
        }
        let mut p = pairs.params();
        let q = SpanQuery {
            filter: p.span_filter()?,
            page: p.page(MAX_ITEMS)?,
        };
        let found = self.state.store.query_spans(q).await?;
        let items: Vec<SpanHit> = found
            .items
            .iter()
            .map(|s| SpanHit {
                trace_id: s.trace_id.clone(),
                span_id: s.span_id.clone(),
                name: s.name.clone(),
                service_name: s.service_name.clone(),
                kind: s.kind.clone(),
                start_time: s.start_time.clone(),
                duration_ms: s.duration_ms,
                status_code: s.status_code.clone(),
                status_message: s.status_message.as_deref().map(|m| cut(m, 500)),
                session_id: s.session_id.clone(),
                genai_model: s
                    .gen_ai
                    .as_ref()
                    .and_then(|g| g.response_model.clone().or(g.request_model.clone())),
                link: format!("{base}/traces/{}?span={}", s.trace_id, s.span_id),
            })
            .collect();
        let mut text = Text::new();
        if items.is_empty() {
            text.line("No spans match.");
        }
        for s in &items {
            text.line(format!(
                "{} {} ({}) {} {}{} trace={} span={}",
                s.start_time,
                line(&s.name),
                s.service_name,
                ms(s.duration_ms),
                s.status_code,
                s.status_message
                    .as_deref()
                    .map(|m| format!(": {}", line(m)))
                    .unwrap_or_default(),
                s.trace_id,
                s.span_id
            ));
        }
        text.more(items.len(), found.next_cursor.as_deref())
            .link(&format!("{base}/traces"));
        Ok(Answer {
            text: text.finish(),
            data: SpanList {
                items,
                next_cursor: found.next_cursor,
            },
        })
    }

    #[tool(
        description = "Finds log records by service, lowest severity, body text, trace, span, session, time or attribute values; newest first, with the records grouped into message patterns (numbers and ids as <*>).",
        output_schema = schema_for_output::<LogList>(),
        annotations(title = "Search logs", read_only_hint = true, open_world_hint = false)
    )]
    async fn search_logs(
        &self,
        Parameters(a): Parameters<SearchLogsArgs>,
        ctx: RequestContext<RoleServer>,
    ) -> ToolResult<LogList> {
        let base = dashboard_base(&ctx, &self.fallback_base());
        let severity_min = match a.severity_min.as_deref() {
            None => None,
            Some(s) => Some(severity_number(s).ok_or_else(|| {
                ToolError(format!(
                    "severity_min: {s:?} is not a severity (1-24, or TRACE, DEBUG, INFO, WARN, ERROR, FATAL)"
                ))
            })?),
        };
        let trace_id = a
            .trace_id
            .as_deref()
            .map(params::trace_id)
            .transpose()
            .map_err(|e| ToolError(format!("trace_id: {}", e.message)))?;
        let span_id = a
            .span_id
            .as_deref()
            .map(params::span_id)
            .transpose()
            .map_err(|e| ToolError(format!("span_id: {}", e.message)))?;
        let mut pairs = Pairs::default();
        pairs
            .add("since", a.since)
            .add("until", a.until)
            .add("cursor", a.cursor)
            .add("limit", Some(a.limit.unwrap_or(MAX_ITEMS)));
        for (k, v) in a.attributes {
            pairs.0.push((format!("attr.{k}"), v));
        }
        let mut p = pairs.params();
        let q = LogQuery {
            service: a.service,
            severity_min,
            trace_id,
            span_id,
            session_id: a.session_id,
            text: a.text,
            since: p.time("since")?,
            until: p.time("until")?,
            attrs: p.attrs()?,
            page: p.page(MAX_ITEMS)?,
        };
        let found = self.state.store.query_logs(q).await?;
        let patterns = patterns(&found.items);
        let items: Vec<LogHit> = found
            .items
            .iter()
            .map(|l| LogHit {
                time: l.time.clone(),
                severity: l
                    .severity_text
                    .clone()
                    .unwrap_or_else(|| l.severity_number.to_string()),
                service_name: l.service_name.clone(),
                body: l.body.as_deref().map(|b| cut(b, 2000)),
                trace_id: l.trace_id.clone(),
                span_id: l.span_id.clone(),
            })
            .collect();
        let mut text = Text::new();
        if items.is_empty() {
            text.line("No log records match.");
        } else {
            text.line(format!("Patterns among these {} records:", items.len()));
            for pt in patterns.iter().take(10) {
                text.line(format!("  {}× {}", pt.count, line(&pt.pattern)));
            }
            text.line("Records (newest first):");
        }
        for l in items.iter().take(30) {
            text.line(format!(
                "{} {} {} {}{}",
                l.time,
                l.severity,
                l.service_name,
                line(l.body.as_deref().unwrap_or("")),
                l.trace_id
                    .as_deref()
                    .map(|t| format!(" trace={t}"))
                    .unwrap_or_default()
            ));
        }
        if items.len() > 30 {
            text.line(format!(
                "…[cut {} records; see structuredContent]",
                items.len() - 30
            ));
        }
        let link = format!("{base}/logs");
        text.more(items.len(), found.next_cursor.as_deref())
            .link(&link);
        Ok(Answer {
            text: text.finish(),
            data: LogList {
                items,
                patterns,
                next_cursor: found.next_cursor,
                link,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_hide_numbers_and_quoted_values() {
        assert_eq!(pattern_of("user 17 not found"), "user <*> not found");
        assert_eq!(pattern_of("lookup of 'u-7' failed"), "lookup of <*> failed");
        assert_eq!(pattern_of("fetching user u-8"), "fetching user <*>");
    }
}
