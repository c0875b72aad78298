//! Plain data that flows from ingest through the writer to the hub.
//!
//! These types carry no I/O and know nothing of DuckDB or OTLP: ingest builds
//! them, the writer appends them, the hub hands them to consumers. Ids are
//! lowercase hex, times are nanoseconds since the Unix epoch, and attribute
//! maps are kept whole as JSON text so nothing the SDK sent is lost.

use std::sync::Arc;

pub mod query;

/// One span, normalised. See DESIGN §3 for the column meanings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanRecord {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub trace_state: Option<String>,
    pub name: String,
    /// `INTERNAL`, `SERVER`, `CLIENT`, `PRODUCER`, `CONSUMER` or `UNSPECIFIED`.
    pub kind: &'static str,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    /// `end - start`, clamped at zero for clocks that ran backwards.
    pub duration_ns: u64,
    /// `UNSET`, `OK` or `ERROR`.
    pub status_code: &'static str,
    pub status_message: Option<String>,
    pub service_name: String,
    pub service_version: Option<String>,
    pub deployment_environment: Option<String>,
    pub scope_name: Option<String>,
    pub scope_version: Option<String>,
    pub session_id: Option<String>,
    pub genai: GenAiFields,
    /// Span attributes as a JSON object.
    pub attributes: String,
    /// Resource attributes as a JSON object.
    pub resource: String,
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
    /// Cost in USD when the application reported one; the price table that
    /// fills it otherwise belongs to the GenAI issue.
    pub cost_usd: Option<f64>,
}

impl GenAiFields {
    pub fn is_empty(&self) -> bool {
        *self == GenAiFields::default()
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
    pub resource: String,
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
    pub resource: String,
    pub flags: u32,
}

/// What one export request carries into the write queue.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub spans: Vec<SpanRecord>,
    pub logs: Vec<LogRecord>,
    pub metrics: Vec<MetricPoint>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.spans.len() + self.logs.len() + self.metrics.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A committed record as the hub hands it out.
#[derive(Debug, Clone)]
pub enum Record {
    Span(Arc<SpanRecord>),
    Log(Arc<LogRecord>),
    Metric(Arc<MetricPoint>),
}

impl Record {
    /// The signal name used by filters and the SSE event type.
    pub fn signal(&self) -> Signal {
        match self {
            Record::Span(_) => Signal::Span,
            Record::Log(_) => Signal::Log,
            Record::Metric(_) => Signal::Metric,
        }
    }

    pub fn service_name(&self) -> &str {
        match self {
            Record::Span(s) => &s.service_name,
            Record::Log(l) => &l.service_name,
            Record::Metric(m) => &m.service_name,
        }
    }
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
