//! What readers ask about sessions and GenAI calls and what they get back:
//! the session list and its detail, conversations, per-model statistics and
//! single calls. Shapes shared by REST (and later MCP and Lua), no I/O.

use serde::Serialize;
use serde_json::Value as Json;
use utoipa::ToSchema;

use super::query::{GenAiFilter, GenAiTotals, PageRequest};

/// A session counts as active while it had activity this recently.
pub const ACTIVE_WINDOW_NS: u64 = 30 * 60 * 1_000_000_000;

/// What the session list is ordered by (descending unless asked otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SessionSort {
    #[default]
    LastSeen,
    FirstSeen,
    Spans,
    Traces,
    Errors,
    Requests,
    Tokens,
    Cost,
}

impl SessionSort {
    pub const NAMES: &'static [&'static str] = &[
        "last_seen",
        "first_seen",
        "spans",
        "traces",
        "errors",
        "requests",
        "tokens",
        "cost",
    ];

    pub fn parse(s: &str) -> Option<SessionSort> {
        Some(match s {
            "last_seen" => SessionSort::LastSeen,
            "first_seen" => SessionSort::FirstSeen,
            "spans" => SessionSort::Spans,
            "traces" => SessionSort::Traces,
            "errors" => SessionSort::Errors,
            "requests" => SessionSort::Requests,
            "tokens" => SessionSort::Tokens,
            "cost" => SessionSort::Cost,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The session list: every field narrows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionQuery {
    /// Only sessions with activity at or after this (Unix ns); `active=true`
    /// sets it to 30 minutes ago.
    pub active_since: Option<u64>,
    pub service: Option<String>,
    pub user: Option<String>,
    /// Sessions whose activity overlaps `[since, until)`.
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub sort: SessionSort,
    pub ascending: bool,
    pub page: PageRequest,
}

/// One session: what happened in it, summed at ingest.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionSummary {
    /// `session.id`, else `gen_ai.conversation.id`, else the trace id of a
    /// GenAI trace that named neither.
    pub session_id: String,
    pub first_seen: String,
    pub first_seen_unix_nano: String,
    pub last_seen: String,
    pub last_seen_unix_nano: String,
    pub duration_ms: f64,
    /// Activity in the last 30 minutes.
    pub active: bool,
    pub span_count: u64,
    pub trace_count: u64,
    pub error_count: u64,
    /// GenAI calls (agent and workflow roll-ups not counted).
    pub gen_ai_requests: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    pub cache_write_tokens: i64,
    /// Sum of the known costs; null when no call had one.
    pub cost_usd: Option<f64>,
    /// Calls whose model has no price (not counted in `cost_usd`).
    pub unpriced_requests: u64,
    pub models: Vec<String>,
    pub services: Vec<String>,
    pub users: Vec<String>,
}

/// One trace of a session.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionTrace {
    pub trace_id: String,
    /// The root span's name, when the root is stored.
    pub root_name: Option<String>,
    pub start_time: String,
    pub start_time_unix_nano: String,
    pub end_time_unix_nano: String,
    pub duration_ms: f64,
    pub span_count: u64,
    pub error_count: u64,
    pub gen_ai_requests: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: Option<f64>,
    pub models: Vec<String>,
}

/// A session with its traces in time order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionDetail {
    pub session: SessionSummary,
    pub traces: Vec<SessionTrace>,
    /// True when the session has more traces than the answer holds (the
    /// first ones are kept).
    pub traces_truncated: bool,
}

/// One message of a conversation.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConversationTurn {
    /// `system`, `user`, `assistant` or `tool`.
    pub role: String,
    /// The text parts joined, when there are any.
    pub content: Option<String>,
    /// The message as recorded (parts, tool calls…).
    #[schema(value_type = Object)]
    pub message: Json,
    pub finish_reason: Option<String>,
    pub time: String,
    pub time_unix_nano: String,
    pub trace_id: String,
    pub span_id: Option<String>,
    /// The model of the call that sent or produced it.
    pub model: Option<String>,
    /// `span_attributes`, `span_event` or `log`.
    pub source: String,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Conversation {
    pub session_id: String,
    /// Messages in order. History that later calls send again is shown once.
    pub turns: Vec<ConversationTurn>,
}

/// A value and how often it occurred.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Counted {
    pub value: String,
    pub count: u64,
}

/// One model's calls in a window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenAiModelDetail {
    pub provider: Option<String>,
    pub model: Option<String>,
    #[serde(flatten)]
    pub totals: GenAiTotals,
    /// `error.type` of failed calls, most frequent first.
    pub error_types: Vec<Counted>,
    pub finish_reasons: Vec<Counted>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenAiModels {
    pub since: String,
    pub until: String,
    pub models: Vec<GenAiModelDetail>,
}

/// `/genai/spans`: GenAI calls matching the filter, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenAiSpanQuery {
    pub filter: GenAiFilter,
    pub operation: Option<String>,
    /// Only failed (true) or only successful (false) calls.
    pub error: Option<bool>,
    /// `sent`, `priced` or `missing`.
    pub cost_source: Option<String>,
    pub page: PageRequest,
}

/// One GenAI call.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenAiCall {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub service_name: String,
    pub session_id: Option<String>,
    pub start_time: String,
    pub start_time_unix_nano: String,
    pub duration_ms: f64,
    pub status_code: String,
    pub error_type: Option<String>,
    pub provider: Option<String>,
    pub operation: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    pub cache_write_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    #[schema(value_type = Option<Vec<String>>)]
    pub finish_reasons: Option<Json>,
    pub cost_usd: Option<f64>,
    /// `sent`, `priced` or `missing`.
    pub cost_source: Option<String>,
    pub time_to_first_chunk_ms: Option<f64>,
    pub tool_name: Option<String>,
    pub tool_call_id: Option<String>,
    pub agent_name: Option<String>,
    pub conversation_id: Option<String>,
}

/// A model seen in calls without a price.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UnpricedModel {
    pub provider: Option<String>,
    pub model: Option<String>,
    pub requests: u64,
    pub last_seen: String,
}
