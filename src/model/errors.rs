//! Error-engine data that travels with a batch to the writer and back out on
//! the hub: the occurrences capture found in an export, the user's changes to
//! groups (so they go through the one writer like everything else), and the
//! group changes the writer publishes.
//!
//! Plain data only: the rules that fill these live in `errors/`, the tables
//! they end up in in `storage/`.

use std::sync::Arc;

use serde::Serialize;

/// One error found in an export: an `exception` span event, an exception
/// log record, an ERROR span without exception, or a GenAI failure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorOccurrence {
    /// Stable for the same record, so a retried export is recognisable.
    pub event_id: String,
    /// `span_event`, `log`, `span_status`, `genai` or `genai_soft`.
    pub source: &'static str,
    /// The span (index into `Batch::spans`) it came from, so that a span
    /// skipped as a retried duplicate does not count its errors twice.
    pub span_index: Option<usize>,
    pub time_unix_nano: u64,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub service_name: String,
    /// `service.version`: the release.
    pub release: Option<String>,
    pub environment: Option<String>,
    pub session_id: Option<String>,
    /// `enduser.id` / `user.id`.
    pub user: Option<String>,
    pub exception_type: Option<String>,
    /// The message with secrets redacted.
    pub message: Option<String>,
    pub message_template: Option<String>,
    /// The grouping key, and the frame hashes that may also find a group.
    pub fingerprint: String,
    pub in_app_hash: Option<String>,
    pub full_stack_hash: Option<String>,
    /// `errors::FingerprintRule` as text.
    pub fingerprint_rule: &'static str,
    pub fingerprint_version: u32,
    /// What went into the fingerprint, as JSON array text.
    pub components: String,
    /// The parsed stack trace (`errors::StackTrace`) as JSON, if any.
    pub frames: Option<String>,
    /// `module function` of the first in-app frame, else the span name.
    pub culprit: Option<String>,
    /// `exception`, `status`, `genai` or `genai_soft`.
    pub category: &'static str,
    pub handled: bool,
    pub genai: Option<ErrorGenAi>,
    /// Redacted stack trace text as sent, for display.
    pub stacktrace: Option<String>,
}

/// The GenAI tags of an error group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorGenAi {
    pub provider: Option<String>,
    pub operation: Option<String>,
    /// The model without its snapshot date.
    pub model: Option<String>,
    pub error_class: &'static str,
    pub tool: Option<String>,
}

/// A change to error groups, made by a user or a periodic job, applied by
/// the writer in its transaction so it is ordered with the events.
#[derive(Debug, Clone, PartialEq)]
pub enum ErrorCommand {
    SetStatus {
        group_id: i64,
        change: StatusChange,
        at_unix_nano: u64,
    },
    /// Folds `sources` into `target`: their hashes, counts and events.
    Merge { target: i64, sources: Vec<i64> },
    /// Resolves unresolved groups last seen before `before_unix_nano`.
    AutoResolve {
        before_unix_nano: u64,
        at_unix_nano: u64,
    },
    /// Resolves unresolved groups with no event since the latest deploy of
    /// their service, once that release has run for `quiet_ns`
    /// (`errors::deploys`).
    ResolveQuietAfterDeploy { quiet_ns: u64, at_unix_nano: u64 },
    /// A note left on a group (`POST /api/v1/errors/{id}/notes`, MCP).
    AddNote {
        group_id: i64,
        author: String,
        text: String,
        at_unix_nano: u64,
    },
    /// A deploy recorded by CI (`POST /api/v1/releases`).
    RecordRelease {
        service: String,
        environment: String,
        version: String,
        at_unix_nano: u64,
    },
}

/// The longest note and author name a group takes, in characters.
pub const MAX_NOTE_CHARS: usize = 10_000;
pub const MAX_NOTE_AUTHOR_CHARS: usize = 100;

impl ErrorCommand {
    /// A note, checked the same way for REST and MCP: the error names the
    /// field at fault.
    pub fn add_note(
        group_id: i64,
        author: &str,
        text: &str,
        at_unix_nano: u64,
    ) -> Result<ErrorCommand, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("text: a note needs some text".into());
        }
        if text.chars().count() > MAX_NOTE_CHARS {
            return Err(format!("text: at most {MAX_NOTE_CHARS} characters"));
        }
        let author = author.trim();
        if author.chars().count() > MAX_NOTE_AUTHOR_CHARS {
            return Err(format!(
                "author: at most {MAX_NOTE_AUTHOR_CHARS} characters"
            ));
        }
        if author.chars().any(char::is_control) {
            return Err("author: one line of text, without control characters".into());
        }
        Ok(ErrorCommand::AddNote {
            group_id,
            author: if author.is_empty() { "api" } else { author }.to_string(),
            text: text.to_string(),
            at_unix_nano,
        })
    }
}

/// What `PATCH /api/v1/errors/{id}` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusChange {
    Unresolve,
    ResolveNow,
    /// Resolved until an event from a release newer than the group's
    /// current one (in the same environment).
    ResolveInNextRelease,
    ArchiveForever,
    ArchiveUntilEscalating,
}

/// Why a group was published on the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupChange {
    New,
    Regressed,
    Escalating,
    /// Automatic triage wrote a report on the group (`triage` carries it);
    /// the record is published again rather than as a new kind, so the
    /// live stream's `error` events and `on = "error"` functions get it.
    Triaged,
}

impl GroupChange {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupChange::New => "new",
            GroupChange::Regressed => "regressed",
            GroupChange::Escalating => "escalating",
            GroupChange::Triaged => "triaged",
        }
    }
}

/// A group that became new, regressed or escalating in a commit: what the
/// SSE `error` event and `on = "error"` triggers receive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorGroupEvent {
    pub change: GroupChange,
    pub group_id: i64,
    pub fingerprint: String,
    pub status: &'static str,
    pub substatus: &'static str,
    pub error_type: Option<String>,
    pub message_template: Option<String>,
    pub culprit: Option<String>,
    pub category: &'static str,
    pub service_name: String,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub count: u64,
    pub first_seen_unix_nano: u64,
    pub last_seen_unix_nano: u64,
    pub trace_id: Option<String>,
    pub event_id: String,
    pub genai_error_class: Option<&'static str>,
    pub genai_model: Option<String>,
    /// With `change: triaged`: the report written on the group.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triage: Option<Arc<crate::errors::triage::TriageReport>>,
}

/// How `GET /api/v1/errors` orders groups.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ErrorSort {
    #[default]
    LastSeen,
    Count,
    Users,
}

/// `GET /api/v1/errors`: every field narrows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ErrorQuery {
    /// `unresolved`, `resolved`, `archived`, `merged`, or a substatus
    /// (`new`, `ongoing`, `regressed`, `escalating`). None: all but merged.
    pub status: Option<String>,
    pub service: Option<String>,
    pub release: Option<String>,
    pub category: Option<String>,
    /// Last seen at or after (Unix ns).
    pub since: Option<u64>,
    /// Text found, whatever its case, in the type, message template,
    /// culprit, a service or the first or last release.
    pub q: Option<String>,
    pub sort: ErrorSort,
    pub page: super::query::PageRequest,
    /// "Now", for the `new` → `ongoing` transition after a week.
    pub now_unix_nano: u64,
}

/// The GenAI tags of a group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorGenAiRow {
    pub provider: Option<String>,
    pub operation: Option<String>,
    /// The model of the latest event, without its snapshot date.
    pub model: Option<String>,
    /// `rate_limited`, `context_length_exceeded`, `content_filtered`, `auth`,
    /// `timeout`, `overloaded`, `invalid_request`, `tool_error`,
    /// `output_parse_error`, `truncated` or `other`.
    pub error_class: Option<String>,
    pub tool: Option<String>,
}

/// One error group as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorGroupRow {
    pub id: i64,
    pub fingerprint: String,
    pub error_type: Option<String>,
    pub message_template: Option<String>,
    /// Where to start reading: the first in-app frame, else the span name.
    pub culprit: Option<String>,
    /// `exception`, `status`, `genai` or `genai_soft`.
    pub category: String,
    /// `unresolved`, `resolved`, `archived` or `merged`.
    pub status: String,
    /// `new`, `ongoing`, `regressed`, `escalating` (unresolved); `now`,
    /// `in_next_release`, `auto` (resolved); `forever`, `until_escalating`
    /// (archived).
    pub substatus: String,
    pub first_seen: String,
    pub last_seen: String,
    pub first_seen_unix_nano: String,
    pub last_seen_unix_nano: String,
    pub first_release: Option<String>,
    pub last_release: Option<String>,
    pub last_environment: Option<String>,
    pub count: u64,
    pub unhandled_count: u64,
    pub user_count: u64,
    pub services: Vec<String>,
    /// A sample of the affected users.
    pub users: Vec<String>,
    pub sample_trace_ids: Vec<String>,
    pub resolved_at: Option<String>,
    pub resolved_in_release: Option<String>,
    pub resolved_environment: Option<String>,
    pub merged_into: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gen_ai: Option<ErrorGenAiRow>,
}

/// Why events land in this group.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FingerprintExplanation {
    /// `explicit`, `in_app_frames`, `all_frames`, `type_message`,
    /// `span_name` or `genai`.
    pub rule: String,
    /// What the rule means, in words.
    pub description: String,
    pub version: i32,
    pub hash: String,
    pub in_app_hash: Option<String>,
    pub full_stack_hash: Option<String>,
    /// Hashes of groups merged into this one, and the group's keys under
    /// earlier fingerprint versions; a match on any joins it.
    pub merged_hashes: Vec<String>,
    /// What was hashed, in order (`type:…`, `frame:…`, `message:…`, …).
    pub components: Vec<String>,
}

/// `GET /api/v1/errors/{id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorGroupDetail {
    #[serde(flatten)]
    pub group: ErrorGroupRow,
    pub fingerprint_explanation: FingerprintExplanation,
    /// The newest automatic triage report (`[triage]`), if one was written.
    pub triage: Option<crate::errors::triage::TriageReport>,
    /// Notes people and assistants left on the group, oldest first.
    pub notes: Vec<ErrorNote>,
    /// The deploy whose window the group's first event, or its latest
    /// regression, fell in ("started with 1.5.0"); null when none did.
    pub deploy: Option<super::deploys::GroupDeploy>,
    /// The deploy that resolved the group, while it stays resolved: the
    /// next release it was marked resolved in (`fixed`), or the one it
    /// went quiet after (`quiet`).
    pub resolved_by_deploy: Option<super::deploys::GroupDeploy>,
}

/// A note on an error group: Sentry's issue comment.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ErrorNote {
    pub note_id: i64,
    pub group_id: i64,
    pub created_at: String,
    pub created_unix_nano: String,
    /// Who wrote it: what the REST caller said (default `api`), or the MCP
    /// client's name.
    pub author: String,
    pub text: String,
}

/// One occurrence in a list.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorEventRow {
    pub event_id: String,
    pub group_id: i64,
    pub time: String,
    pub time_unix_nano: String,
    /// `span_event`, `log`, `span_status`, `genai` or `genai_soft`.
    pub source: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub service_name: String,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub session_id: Option<String>,
    pub user: Option<String>,
    pub error_type: Option<String>,
    pub message: Option<String>,
    pub culprit: Option<String>,
    pub handled: bool,
    pub gen_ai_model: Option<String>,
    pub gen_ai_error_class: Option<String>,
}

/// Something that happened before an error: the trail that led to it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Breadcrumb {
    pub time: String,
    pub time_unix_nano: String,
    /// `http`, `db`, `genai`, `tool`, `log` or `error`.
    pub category: String,
    pub message: String,
    /// `info`, `warning` or `error`.
    pub level: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// Details by category (method and status, model and tokens, …).
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

/// `GET /api/v1/errors/{id}/events/{event_id}`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorEventDetail {
    #[serde(flatten)]
    pub event: ErrorEventRow,
    /// The stack trace as sent (secrets redacted).
    pub stacktrace: Option<String>,
    /// The parsed trace: `{language, exceptions: [{type_name, message,
    /// frames: [{module, function, path, line, column, in_app}]}]}`,
    /// innermost frame first.
    #[schema(value_type = Object)]
    pub frames: Option<serde_json::Value>,
    /// Up to 100, oldest first.
    pub breadcrumbs: Vec<Breadcrumb>,
}

/// A release of a service in an environment.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReleaseRow {
    pub service_name: String,
    pub environment: Option<String>,
    pub version: String,
    pub first_seen: String,
    pub last_seen: String,
    pub first_seen_unix_nano: String,
    pub last_seen_unix_nano: String,
    /// `telemetry` (first seen in data) or `deploy` (recorded by CI).
    pub source: String,
    /// Groups first seen in this release.
    pub new_groups: u64,
    /// Groups that regressed with an event from this release.
    pub regressed_groups: u64,
    /// Error spans / all spans of the service and environment in the
    /// window after the release was first seen (`[errors] deploy_window`,
    /// cut short by the next release), and in as long before it (null
    /// without spans).
    pub error_rate_before: Option<f64>,
    pub error_rate_after: Option<f64>,
}

/// Events per time bucket of several error groups (the list's sparklines).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ErrorHistogram {
    /// Start of the first bucket (Unix ns, decimal string).
    pub start_unix_nano: String,
    pub step_ms: u64,
    /// Buckets per group.
    pub buckets: usize,
    /// One entry per id asked for, in that order (all zeros for a group
    /// without events in the range, or that does not exist).
    pub groups: Vec<GroupCounts>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GroupCounts {
    pub id: i64,
    /// Events per bucket, oldest first.
    pub counts: Vec<u64>,
}
