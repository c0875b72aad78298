//! Error-engine data that travels with a batch to the writer and back out on
//! the hub: the occurrences capture found in an export, the user's changes to
//! groups (so they go through the one writer like everything else), and the
//! group changes the writer publishes.
//!
//! Plain data only: the rules that fill these live in `errors/`, the tables
//! they end up in in `storage/`.

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
    /// A deploy recorded by CI (`POST /api/v1/releases`).
    RecordRelease {
        service: String,
        environment: String,
        version: String,
        at_unix_nano: u64,
    },
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
}

impl GroupChange {
    pub fn as_str(self) -> &'static str {
        match self {
            GroupChange::New => "new",
            GroupChange::Regressed => "regressed",
            GroupChange::Escalating => "escalating",
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
}
