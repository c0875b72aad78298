//! Plain data that flows from ingest through the writer to the hub.
//!
//! These types carry no I/O and know nothing of DuckDB or OTLP: ingest builds
//! them, the writer appends them, the hub hands them to consumers. Ids are
//! lowercase hex, times are nanoseconds since the Unix epoch, and attribute
//! maps are kept whole as JSON text so nothing the SDK sent is lost.

use std::sync::Arc;

pub mod deploys;
pub mod errors;
pub mod function;
pub mod genai;
mod hex_id;
pub mod query;
mod shared;
pub mod slo;

pub use hex_id::{HexId, SpanId, TraceId};
pub use shared::Shared;

/// Span kinds, each at its OTLP number (`SpanKind`).
pub const SPAN_KINDS: [&str; 6] = [
    "UNSPECIFIED",
    "INTERNAL",
    "SERVER",
    "CLIENT",
    "PRODUCER",
    "CONSUMER",
];

/// Span status codes at their OTLP numbers (`Status.StatusCode`).
pub const STATUS_CODES: [&str; 3] = ["UNSET", "OK", "ERROR"];

/// One span, normalised. See DESIGN §3 for the column meanings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanRecord {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    pub parent_span_id: Option<SpanId>,
    pub trace_state: Option<String>,
    pub name: String,
    /// One of [`SPAN_KINDS`].
    pub kind: &'static str,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// `end - start`, clamped at zero for clocks that ran backwards.
    pub duration_ns: u64,
    /// One of [`STATUS_CODES`].
    pub status_code: &'static str,
    pub status_message: Option<String>,
    // The resource's and the scope's values are shared by the spans of an
    // export (one allocation each, not one per span).
    pub service_name: Arc<str>,
    pub service_version: Option<Arc<str>>,
    pub deployment_environment: Option<Arc<str>>,
    pub scope_name: Option<Arc<str>>,
    pub scope_version: Option<Arc<str>>,
    /// Shared by the spans of a session (see `ingest::enrich`).
    pub session_id: Option<Arc<str>>,
    pub genai: GenAi,
    /// `user.id` (or the older `enduser.id`): not a column of its own, it
    /// feeds the session summaries.
    pub user_id: Option<Arc<str>>,
    /// Span attributes as a JSON object.
    pub attributes: String,
    /// Resource attributes as a JSON object, shared by the spans of one
    /// resource (an export's spans mostly share one).
    pub resource: Arc<str>,
    /// Span events as a JSON array of `{time_unix_nano, name, attributes}`.
    pub events: String,
    /// Span links as a JSON array of `{trace_id, span_id, trace_state, attributes}`.
    pub links: String,
    pub dropped_attributes_count: u32,
    pub dropped_events_count: u32,
    pub dropped_links_count: u32,
}

/// The GenAI columns pulled out of `gen_ai.*` attributes (current and legacy
/// names) so that cost and token queries do not have to parse JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenAiFields {
    pub provider: Option<String>,
    pub operation: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    /// JSON array of strings, as sent in `gen_ai.response.finish_reasons`.
    pub finish_reasons: Option<String>,
    /// Cost in USD: as the application reported it, else from the price
    /// table (`ingest::pricing`).
    pub cost_usd: Option<f64>,
    /// Tokens written to the provider's prompt cache (a subset of input).
    pub cache_write_tokens: Option<i64>,
    /// Reasoning tokens (a subset of output).
    pub reasoning_tokens: Option<i64>,
    pub tool_name: Option<String>,
    pub tool_call_id: Option<String>,
    pub agent_name: Option<String>,
    pub conversation_id: Option<String>,
    /// Time from the request to the first streamed chunk, in milliseconds.
    pub time_to_first_chunk_ms: Option<f64>,
    /// `error.type` as sent (an exception type or a provider error class).
    pub error_type: Option<String>,
    /// Where `cost_usd` came from: `sent`, `priced`, or `missing` (a call
    /// with tokens whose model has no price; never counted as $0). `None`
    /// for spans that are not priceable calls.
    pub cost_source: Option<&'static str>,
}

/// A span's GenAI columns, boxed: most spans are not GenAI calls, and a
/// span waiting in the write queue or the hub's ring then carries one
/// pointer instead of ~370 bytes of empty fields. Reads see an empty set
/// when there is none (`Deref`); the first write makes the box.
#[derive(Clone, Default)]
pub struct GenAi(Option<Box<GenAiFields>>);

static NO_GENAI: GenAiFields = GenAiFields::NONE;

impl std::ops::Deref for GenAi {
    type Target = GenAiFields;
    fn deref(&self) -> &GenAiFields {
        self.0.as_deref().unwrap_or(&NO_GENAI)
    }
}

impl std::ops::DerefMut for GenAi {
    fn deref_mut(&mut self) -> &mut GenAiFields {
        self.0.get_or_insert_with(Default::default)
    }
}

impl From<GenAiFields> for GenAi {
    fn from(fields: GenAiFields) -> GenAi {
        GenAi((!fields.is_empty()).then(|| Box::new(fields)))
    }
}

impl PartialEq for GenAi {
    fn eq(&self, other: &GenAi) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for GenAi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

/// GenAI operations that wrap other calls (agents, workflows): their
/// tokens and cost are already counted in the calls inside them.
pub const GENAI_ROLLUP_OPERATIONS: &[&str] = &["invoke_agent", "invoke_workflow", "create_agent"];

impl GenAiFields {
    /// No GenAI fields at all (what `Default` gives, as a constant).
    pub const NONE: GenAiFields = GenAiFields {
        provider: None,
        operation: None,
        request_model: None,
        response_model: None,
        input_tokens: None,
        output_tokens: None,
        cache_read_tokens: None,
        finish_reasons: None,
        cost_usd: None,
        cache_write_tokens: None,
        reasoning_tokens: None,
        tool_name: None,
        tool_call_id: None,
        agent_name: None,
        conversation_id: None,
        time_to_first_chunk_ms: None,
        error_type: None,
        cost_source: None,
    };

    pub fn is_empty(&self) -> bool {
        *self == GenAiFields::NONE
    }

    /// A GenAI call that counts in totals: it names a provider or an
    /// operation, and is not an agent or workflow roll-up.
    pub fn is_call(&self) -> bool {
        (self.provider.is_some() || self.operation.is_some())
            && !self
                .operation
                .as_deref()
                .is_some_and(|op| GENAI_ROLLUP_OPERATIONS.contains(&op))
    }

    /// The model that served the call: the response model, else the
    /// requested one.
    pub fn model(&self) -> Option<&str> {
        self.response_model
            .as_deref()
            .or(self.request_model.as_deref())
    }
}

/// One log record, normalised.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogRecord {
    /// The event time; when the SDK sent 0, the observed time, and when both
    /// are 0, the time qyl received it.
    pub time_unix_nano: u64,
    pub observed_time_unix_nano: u64,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub severity_number: i32,
    pub severity_text: Option<String>,
    /// A string body as sent; any other body as JSON text.
    pub body: Option<String>,
    pub service_name: String,
    pub service_version: Option<String>,
    pub deployment_environment: Option<String>,
    pub scope_name: Option<String>,
    pub session_id: Option<String>,
    pub event_name: Option<String>,
    pub flags: u32,
    pub attributes: String,
    pub resource: Arc<str>,
    pub dropped_attributes_count: u32,
}

/// One metric data point: a row per point, whatever the metric type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricPoint {
    pub time_unix_nano: u64,
    pub start_time_unix_nano: u64,
    pub name: String,
    pub description: Option<String>,
    pub unit: Option<String>,
    /// `gauge`, `sum`, `histogram`, `exponential_histogram` or `summary`.
    pub kind: &'static str,
    /// `cumulative` or `delta` for sums and histograms.
    pub temporality: Option<&'static str>,
    pub is_monotonic: Option<bool>,
    /// The value of a gauge or sum point.
    pub value: Option<f64>,
    pub count: Option<u64>,
    pub sum: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    /// Buckets or quantiles as JSON, for histogram and summary points.
    pub histogram: Option<String>,
    /// Exemplars as a JSON array, when the point had any.
    pub exemplars: Option<String>,
    pub service_name: String,
    pub scope_name: Option<String>,
    pub attributes: String,
    pub resource: Arc<str>,
    pub flags: u32,
}

/// What one export request carries into the write queue.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub spans: Vec<SpanRecord>,
    pub logs: Vec<LogRecord>,
    pub metrics: Vec<MetricPoint>,
    /// Errors capture found in the records above (not rows of their own:
    /// the writer folds them into the error tables).
    pub errors: Vec<errors::ErrorOccurrence>,
    /// Changes to error groups asked for through the API or by a periodic
    /// job, applied in the commit's transaction.
    pub error_commands: Vec<errors::ErrorCommand>,
    /// Invocation rows and the like from the functions engine.
    pub functions: function::FunctionRows,
    /// Reports of automatic triage (`errors::triage`), stored in the
    /// commit and published on the hub as `triaged` error records.
    pub triage: Vec<Arc<errors::ErrorGroupEvent>>,
    /// SLO alert level changes (`errors::slo_watch`), stored in
    /// `slo_transitions` and published on the hub as `slo` records.
    pub slo_transitions: Vec<Arc<slo::SloTransition>>,
    /// Deploys recorded by CI (`POST /api/v1/releases`): their commit and
    /// URL, stored next to the release.
    pub deploys: Vec<deploys::DeployRecord>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.spans.len() + self.logs.len() + self.metrics.len() + self.functions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A committed record as the hub hands it out.
#[derive(Debug, Clone)]
pub enum Record {
    Span(Shared<SpanRecord>),
    Log(Shared<LogRecord>),
    Metric(Shared<MetricPoint>),
    /// An error group became new, regressed or escalating.
    Error(Arc<errors::ErrorGroupEvent>),
    /// A function invocation or `runtime.stream.publish` (functions engine).
    Function(Arc<function::FunctionEvent>),
    /// An SLO's alert level changed (`errors::slo_watch`).
    Slo(Arc<slo::SloTransition>),
}

impl Record {
    /// The SSE event type: the signal's name (`span`, `log`, `metric`),
    /// `error` for an error group change, `triage` for a triage report on
    /// a group, `function` for the functions engine's results, `slo` for an
    /// SLO's alert level changing.
    pub fn event_type(&self) -> &'static str {
        match self {
            Record::Span(_) => Signal::Span.as_str(),
            Record::Log(_) => Signal::Log.as_str(),
            Record::Metric(_) => Signal::Metric.as_str(),
            Record::Error(e) if e.change == errors::GroupChange::Triaged => "triage",
            Record::Error(_) => "error",
            Record::Function(_) => "function",
            Record::Slo(_) => "slo",
        }
    }

    /// This record holding only itself: spans, logs and metric points in
    /// a batch of their own (see [`Shared::detached`]), the rest as is.
    pub fn detached(&self) -> Record {
        match self {
            Record::Span(s) => Record::Span(s.detached()),
            Record::Log(l) => Record::Log(l.detached()),
            Record::Metric(m) => Record::Metric(m.detached()),
            other => other.clone(),
        }
    }

    /// The service a record came from; function records are qyl's own.
    pub fn service_name(&self) -> &str {
        match self {
            Record::Span(s) => &s.service_name,
            Record::Log(l) => &l.service_name,
            Record::Metric(m) => &m.service_name,
            Record::Error(e) => &e.service_name,
            Record::Function(_) => OWN_SERVICE,
            Record::Slo(t) => &t.service_name,
        }
    }
}

/// `service.name` of the telemetry qyl produces about itself (function
/// invocations' spans, `runtime.log` records).
pub const OWN_SERVICE: &str = "qyl";

/// `1`–`24`, or an OpenTelemetry severity name (`WARN`, `error`, `INFO2`,
/// and the common `WARNING` and `CRITICAL`).
pub fn severity_number(text: &str) -> Option<i32> {
    let t = text.trim().to_ascii_uppercase();
    if let Ok(n) = t.parse::<i32>() {
        return (0..=24).contains(&n).then_some(n);
    }
    let digits = t.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let name = &t[..t.len() - digits.len()];
    let step = match digits {
        "" => 0,
        d => match d.parse::<i32>() {
            Ok(n @ 1..=4) => n - 1,
            _ => return None,
        },
    };
    let base = match name {
        "TRACE" => 1,
        "DEBUG" => 5,
        "INFO" => 9,
        "WARN" | "WARNING" => 13,
        "ERROR" => 17,
        "FATAL" | "CRITICAL" => 21,
        _ => return None,
    };
    Some(base + step)
}

/// The three OTLP signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    Span,
    Log,
    Metric,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Span => "span",
            Signal::Log => "log",
            Signal::Metric => "metric",
        }
    }
}

/// A 64-bit hash of `value` with keys chosen at random once per process:
/// what the writer and the error engine remember recent things by. Senders
/// cannot make two values collide on purpose, and nothing keyed with it
/// outlives the process (the sets are rebuilt at start).
pub fn keyed_hash(value: impl std::hash::Hash) -> u64 {
    use std::hash::BuildHasher;
    static KEYS: std::sync::OnceLock<std::hash::RandomState> = std::sync::OnceLock::new();
    KEYS.get_or_init(std::hash::RandomState::new)
        .hash_one(value)
}

/// Nanoseconds since the Unix epoch, now: the clock every module stamps
/// and windows with (ingest, the error engine, readers' default ranges).
pub fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::{severity_number, GenAi, GenAiFields, SpanRecord};

    #[test]
    fn genai_fields_are_boxed_only_when_a_span_has_some() {
        let none = GenAi::default();
        assert!(none.is_empty() && none.0.is_none());
        assert!(GenAi::from(GenAiFields::default()).0.is_none());
        let mut set = GenAi::default();
        // The first write through `DerefMut` makes the box.
        let fields: &mut GenAiFields = &mut set;
        fields.provider = Some("openai".into());
        assert!(set.0.is_some());
        assert_eq!(set.provider.as_deref(), Some("openai"));
        assert_eq!(
            set,
            GenAi::from(GenAiFields {
                provider: Some("openai".into()),
                ..GenAiFields::default()
            })
        );
        // Equal by value, boxed or not.
        assert_eq!(GenAi(Some(Box::default())), GenAi::default());
        // What a span waiting in the write queue or the ring costs inline
        // (the GenAI fields alone were ~390 bytes).
        assert!(
            std::mem::size_of::<SpanRecord>() <= 512,
            "{}",
            std::mem::size_of::<SpanRecord>()
        );
    }

    #[test]
    fn severities_by_name_and_number() {
        assert_eq!(severity_number("1"), Some(1));
        assert_eq!(severity_number("17"), Some(17));
        assert_eq!(severity_number("INFO"), Some(9));
        assert_eq!(severity_number("warn"), Some(13));
        assert_eq!(severity_number("info3"), Some(11));
        assert_eq!(severity_number("info4"), Some(12));
        assert_eq!(severity_number("Warning"), Some(13));
        assert_eq!(severity_number("FATAL"), Some(21));
        assert_eq!(severity_number("INFO5"), None);
        assert_eq!(severity_number("info5"), None);
        assert_eq!(severity_number("-1"), None);
        assert_eq!(severity_number("25"), None);
        assert_eq!(severity_number("loud"), None);
    }
}
