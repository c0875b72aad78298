//! What the functions engine hands the writer: invocation rows, function
//! definitions, `runtime.state` changes and `runtime.stream.publish` events.
//! They travel in [`super::Batch::functions`] so that the one writer stores
//! them (no second write connection) and publishes them on the hub after
//! the commit, like every other record.

use serde::Serialize;

/// How one invocation ended (`function_invocations.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvocationStatus {
    /// Still running after `functions::running::RUNNING_AFTER`: a row is
    /// written then, and the final row replaces it when the invocation ends.
    Running,
    Completed,
    Failed,
    Skipped,
    TimedOut,
}

impl InvocationStatus {
    pub const ALL: [InvocationStatus; 5] = [
        InvocationStatus::Running,
        InvocationStatus::Completed,
        InvocationStatus::Failed,
        InvocationStatus::Skipped,
        InvocationStatus::TimedOut,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InvocationStatus::Running => "running",
            InvocationStatus::Completed => "completed",
            InvocationStatus::Failed => "failed",
            InvocationStatus::Skipped => "skipped",
            InvocationStatus::TimedOut => "timed_out",
        }
    }

    pub fn parse(text: &str) -> Option<InvocationStatus> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One row of `function_invocations`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Invocation {
    pub invocation_id: String,
    pub function: String,
    pub status: InvocationStatus,
    /// The handler's return value as JSON; `None` for nil.
    pub result: Option<String>,
    pub error: Option<String>,
    pub duration_ms: f64,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub started_unix_nano: u64,
    /// 0 while `running`.
    pub finished_unix_nano: u64,
    /// This final row ends an invocation that already has a `running` row:
    /// storage replaces that row instead of adding a second one. False for
    /// nearly all invocations (those that end within a second), so their
    /// rows are plain appends.
    #[serde(skip)]
    pub replaces_running: bool,
}

/// One row of `qyl_functions`: a function as last loaded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FunctionDefinition {
    pub name: String,
    pub file: String,
    pub description: Option<String>,
    pub trigger: String,
    pub max_concurrency: u32,
    pub timeout_ms: u64,
    pub memory_mb: u32,
    pub rate_limit: Option<String>,
    /// False once its file is deleted or it no longer defines it.
    pub enabled: bool,
    pub updated_unix_nano: u64,
}

/// A `runtime.state` change; `value` is JSON, `None` deletes the key.
#[derive(Debug, Clone, PartialEq)]
pub struct StateWrite {
    pub function: String,
    pub key: String,
    pub value: Option<String>,
}

/// What a function put on the live stream with `runtime.stream.publish`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Published {
    pub function: String,
    pub topic: String,
    /// JSON text.
    pub value: String,
    pub time_unix_nano: u64,
}

/// The functions engine's share of a batch.
#[derive(Debug, Clone, Default)]
pub struct FunctionRows {
    pub invocations: Vec<Invocation>,
    pub definitions: Vec<FunctionDefinition>,
    pub state: Vec<StateWrite>,
    pub published: Vec<Published>,
}

impl FunctionRows {
    pub fn len(&self) -> usize {
        self.invocations.len() + self.definitions.len() + self.state.len() + self.published.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A committed function record on the hub (SSE event `function`).
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionEvent {
    Invocation(Invocation),
    Published(Published),
}

/// Which invocations `GET /api/v1/functions/{name}/invocations` lists.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationQuery {
    pub function: String,
    pub status: Option<InvocationStatus>,
    pub page: super::query::PageRequest,
}

/// One stored invocation as the API returns it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct InvocationRow {
    pub invocation_id: String,
    pub function: String,
    /// `running` (the invocation has run for over a second and has not
    /// ended yet; this row is replaced when it does), `completed`, `failed`,
    /// `skipped` or `timed_out`.
    pub status: String,
    /// The handler's return value (any JSON); absent when it returned nil.
    #[schema(value_type = Option<Object>)]
    pub result: Option<Box<serde_json::value::RawValue>>,
    pub error: Option<String>,
    /// How long it ran (so far, while `running`).
    pub duration_ms: f64,
    /// The span or log record that triggered it (none for schedules).
    pub triggered_by_trace_id: Option<String>,
    pub triggered_by_span_id: Option<String>,
    pub started_at: String,
    pub started_unix_nano: String,
    /// Null while `running`.
    pub finished_unix_nano: Option<String>,
}

/// A value for a `?` placeholder of `runtime.store.sql`.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlParam {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
}
