//! What readers ask the store for and what they get back.
//!
//! REST, MCP and the Lua runtime build these, the store answers with them, so
//! a filter or a field means the same thing on every surface. Times going out
//! are RFC 3339 plus nanoseconds as a decimal string (JSON numbers lose
//! precision past 2^53); durations are milliseconds as numbers.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

/// Filters shared by span search and the trace list. Every field narrows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanFilter {
    pub service: Option<String>,
    pub name: Option<String>,
    /// `OK`, `ERROR` or `UNSET`.
    pub status: Option<String>,
    /// `SERVER`, `CLIENT`, `INTERNAL`, `PRODUCER` or `CONSUMER`.
    pub kind: Option<String>,
    pub min_duration_ns: Option<u64>,
    pub max_duration_ns: Option<u64>,
    /// Inclusive lower bound on the start time, in Unix nanoseconds.
    pub since: Option<u64>,
    /// Exclusive upper bound on the start time, in Unix nanoseconds.
    pub until: Option<u64>,
    /// `attr.KEY=VALUE` pairs: the span attribute (or, failing that, the
    /// resource attribute) KEY has the text VALUE.
    pub attrs: Vec<(String, String)>,
    pub session_id: Option<String>,
    pub trace_id: Option<String>,
}

/// A page request: how many, and where the previous page stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRequest {
    pub limit: usize,
    pub cursor: Option<Cursor>,
}

impl Default for PageRequest {
    fn default() -> Self {
        PageRequest {
            limit: 50,
            cursor: None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanQuery {
    pub filter: SpanFilter,
    pub page: PageRequest,
}

/// Trace list: span filters pick the traces that hold a matching span;
/// `status`, durations and the time range apply to the trace as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceQuery {
    pub filter: SpanFilter,
    pub page: PageRequest,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogQuery {
    pub service: Option<String>,
    pub severity_min: Option<i32>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub session_id: Option<String>,
    /// Case-insensitive substring of the body.
    pub text: Option<String>,
    pub since: Option<u64>,
    pub until: Option<u64>,
    pub attrs: Vec<(String, String)>,
    pub page: PageRequest,
}

/// Where a page stopped: the sort time and a tie-breaker unique within it, so
/// rows sharing a start time are neither repeated nor skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub time: u64,
    pub key: String,
}

impl Cursor {
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(format!("{}:{}", self.time, self.key))
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let raw = URL_SAFE_NO_PAD.decode(text.trim()).ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (time, key) = raw.split_once(':')?;
        Some(Cursor {
            time: time.parse().ok()?,
            key: key.to_string(),
        })
    }
}

/// One page of results; `next_cursor` is null on the last page. Pass it
/// back as `cursor` for the next one.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
    /// The time range read and the storage tiers it spans (answers over
    /// spans, traces, logs and GenAI calls).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<TiersRead>,
}

/// Which storage tiers an answer's time range covers: the database file
/// (recent windows, always read) and the Parquet archive (older windows,
/// `[archive]`), with the number of archived files whose windows overlap
/// the range. Narrow `since`/`until` to read fewer.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct TiersRead {
    /// The range's start (RFC 3339); null when unbounded.
    pub since: Option<String>,
    /// The range's end (RFC 3339, exclusive); null when unbounded.
    pub until: Option<String>,
    /// `database`, and `archive` when archived windows fall in the range.
    pub tiers: Vec<String>,
    /// Archived files (this node's and other nodes') in the range; another
    /// node's window length is not known here, so its files count for
    /// the whole hour they lie in.
    pub archive_files: u64,
}

impl TiersRead {
    pub fn new(since: Option<u64>, until: Option<u64>, archive_files: u64) -> TiersRead {
        let mut tiers = vec!["database".to_string()];
        if archive_files > 0 {
            tiers.push("archive".to_string());
        }
        TiersRead {
            since: since.map(rfc3339),
            until: until.map(rfc3339),
            tiers,
            archive_files,
        }
    }
}

/// A stored span as readers see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpanRow {
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: Option<String>,
    pub name: String,
    pub kind: String,
    pub service_name: String,
    pub service_version: Option<String>,
    pub deployment_environment: Option<String>,
    pub scope_name: Option<String>,
    pub start_time: String,
    pub start_time_unix_nano: String,
    pub end_time_unix_nano: String,
    pub duration_ms: f64,
    pub status_code: String,
    pub status_message: Option<String>,
    pub session_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gen_ai: Option<GenAiRow>,
    /// The span's attributes as a JSON object.
    #[schema(value_type = Object)]
    pub attributes: Box<RawValue>,
    /// The resource's attributes as a JSON object.
    #[schema(value_type = Object)]
    pub resource: Box<RawValue>,
    #[schema(value_type = Vec<Object>)]
    pub events: Box<RawValue>,
    #[schema(value_type = Vec<Object>)]
    pub links: Box<RawValue>,
    pub ingest_seq: u64,
}

impl SpanRow {
    pub fn start_unix_nano(&self) -> u64 {
        self.start_time_unix_nano.parse().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Serialize, Default, ToSchema)]
pub struct GenAiRow {
    pub provider: Option<String>,
    pub operation: Option<String>,
    pub request_model: Option<String>,
    pub response_model: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub cache_read_tokens: Option<i64>,
    #[schema(value_type = Option<Vec<String>>)]
    pub finish_reasons: Option<Box<RawValue>>,
    pub cost_usd: Option<f64>,
}

impl GenAiRow {
    /// Whether a span shows this object: it names a provider, operation or
    /// model, or has token counts or a cost. The store's rows and the live
    /// ones (`SpanRow::from_record`) decide alike.
    pub fn is_shown(&self) -> bool {
        self.provider.is_some()
            || self.operation.is_some()
            || self.request_model.is_some()
            || self.response_model.is_some()
            || self.input_tokens.is_some()
            || self.output_tokens.is_some()
            || self.cost_usd.is_some()
    }
}

/// One row of the trace list.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TraceSummary {
    pub trace_id: String,
    pub root_name: String,
    pub root_service: String,
    pub services: Vec<String>,
    pub start_time: String,
    pub start_time_unix_nano: String,
    pub duration_ms: f64,
    pub span_count: u64,
    pub error_count: u64,
    pub gen_ai_input_tokens: i64,
    pub gen_ai_output_tokens: i64,
    pub gen_ai_cost_usd: Option<f64>,
}

/// A span with its children, for the trace view.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SpanNode {
    #[serde(flatten)]
    pub span: SpanRow,
    // The tree is recursive; without this the schema walk would never end.
    #[schema(no_recursion)]
    pub children: Vec<SpanNode>,
}

/// A whole trace: its spans as a tree (several roots when parents are
/// missing) and the logs that carry its id.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TraceTree {
    pub summary: TraceSummary,
    pub roots: Vec<SpanNode>,
    pub logs: Vec<LogRow>,
    /// The trace's time range and the tiers it lies in.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<TiersRead>,
}

impl TraceTree {
    /// Builds the tree from a trace's spans (any order). A span whose parent
    /// is absent becomes a root, so nothing stored is hidden.
    pub fn build(summary: TraceSummary, mut spans: Vec<SpanRow>, logs: Vec<LogRow>) -> TraceTree {
        use std::collections::HashMap;
        spans.sort_by(|a, b| {
            a.start_unix_nano()
                .cmp(&b.start_unix_nano())
                .then_with(|| a.span_id.cmp(&b.span_id))
        });
        let index: HashMap<String, usize> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id.clone(), i))
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); spans.len()];
        let mut roots = Vec::new();
        for (i, s) in spans.iter().enumerate() {
            match s.parent_span_id.as_ref().and_then(|p| index.get(p)) {
                Some(&p) if p != i => children[p].push(i),
                _ => roots.push(i),
            }
        }
        let mut slots: Vec<Option<SpanRow>> = spans.into_iter().map(Some).collect();
        // Iterative post-order so a deep (or cyclic) parent chain cannot
        // overflow the stack; a cycle's members are never reached from a
        // root and are attached as roots afterwards.
        fn take(
            i: usize,
            slots: &mut [Option<SpanRow>],
            children: &[Vec<usize>],
        ) -> Option<SpanNode> {
            let mut stack: Vec<(usize, Vec<SpanNode>, usize)> = Vec::new();
            let span = slots[i].take()?;
            let mut pending = vec![span];
            stack.push((i, Vec::new(), 0));
            loop {
                let (node, built, next) = stack.last_mut()?;
                if let Some(&child) = children[*node].get(*next) {
                    *next += 1;
                    if let Some(s) = slots[child].take() {
                        pending.push(s);
                        stack.push((child, Vec::new(), 0));
                    }
                    continue;
                }
                let built = std::mem::take(built);
                stack.pop();
                let span = pending.pop()?;
                let done = SpanNode {
                    span,
                    children: built,
                };
                match stack.last_mut() {
                    Some((_, parent_built, _)) => parent_built.push(done),
                    None => return Some(done),
                }
            }
        }
        let mut out: Vec<SpanNode> = roots
            .into_iter()
            .filter_map(|i| take(i, &mut slots, &children))
            .collect();
        for i in 0..slots.len() {
            if let Some(node) = take(i, &mut slots, &children) {
                out.push(node);
            }
        }
        TraceTree {
            read: None,
            summary,
            roots: out,
            logs,
        }
    }
}

/// A stored log record as readers see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogRow {
    pub time: String,
    pub time_unix_nano: String,
    pub observed_time_unix_nano: String,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    pub severity_number: i32,
    pub severity_text: Option<String>,
    pub body: Option<String>,
    pub service_name: String,
    pub service_version: Option<String>,
    pub deployment_environment: Option<String>,
    pub scope_name: Option<String>,
    pub session_id: Option<String>,
    pub event_name: Option<String>,
    #[schema(value_type = Object)]
    pub attributes: Box<RawValue>,
    #[schema(value_type = Object)]
    pub resource: Box<RawValue>,
    pub ingest_seq: u64,
}

/// The time buckets of a series over `[since, until)`: `count` buckets of
/// `step` nanoseconds from `start`, which is `since` rounded down to a
/// multiple of the step, so bucket `k` covers `[start + k·step,
/// start + (k+1)·step)` and the last one holds `until - 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Buckets {
    pub start: u64,
    pub step: u64,
    pub count: usize,
}

impl Buckets {
    /// `step` must be greater than 0 and `since` before `until`.
    pub fn covering(since: u64, until: u64, step: u64) -> Buckets {
        let start = since - since % step;
        Buckets {
            start,
            step,
            count: until.saturating_sub(start).div_ceil(step) as usize,
        }
    }

    /// The start of bucket `i`.
    pub fn time(&self, i: usize) -> u64 {
        self.start + i as u64 * self.step
    }
}

/// Log counts per time bucket and severity level: a histogram of the records
/// a log search with the same filters finds.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LogHistogram {
    /// Start of the first bucket: `since` rounded down to a multiple of the
    /// step (Unix ns, decimal string). Bucket `k` covers
    /// `[start + k·step, start + (k+1)·step)`; the first and last buckets
    /// count only records within `[since, until)`.
    pub start_unix_nano: String,
    pub step_ms: f64,
    /// Buckets per level.
    pub buckets: usize,
    /// Every level, always all seven in this order: `TRACE`, `DEBUG`,
    /// `INFO`, `WARN`, `ERROR`, `FATAL`, `UNSET`.
    pub levels: Vec<LevelCounts>,
    /// Records counted, all levels and buckets together.
    pub total: u64,
}

/// One severity level's records per bucket. Levels group severity numbers
/// as OpenTelemetry does (1-4 `TRACE`, 5-8 `DEBUG`, 9-12 `INFO`, 13-16
/// `WARN`, 17-20 `ERROR`, 21-24 `FATAL`); a record without a number (0)
/// counts under the level its severity text names (`WARNING`, `INFO2`…),
/// else under `UNSET`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LevelCounts {
    pub severity: String,
    pub total: u64,
    /// Records per bucket, oldest first.
    pub counts: Vec<u64>,
}

/// A metric name and what is known about it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricInfo {
    pub name: String,
    pub kind: String,
    pub unit: Option<String>,
    pub description: Option<String>,
    pub temporality: Option<String>,
    pub services: Vec<String>,
    pub points: u64,
    pub series: u64,
    pub last_time: String,
    /// The attribute keys its points carry (what `group_by` can use).
    pub attribute_keys: Vec<String>,
}

/// Which points of one metric to aggregate, and into what step.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricQuery {
    pub name: String,
    pub service: Option<String>,
    pub attrs: Vec<(String, String)>,
    pub since: Option<u64>,
    pub until: Option<u64>,
    /// Bucket width in nanoseconds.
    pub step_ns: u64,
    /// `None`: one series per attribute set, as sent. `Some(keys)`: series
    /// merged per value of these attribute keys (`service.name`: the
    /// service); an empty list merges everything into one.
    pub group_by: Option<Vec<String>>,
}

/// One time series (one attribute set) of a metric, bucketed by step.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricSeries {
    pub service_name: String,
    #[schema(value_type = Object)]
    pub attributes: Box<RawValue>,
    pub points: Vec<MetricBucket>,
}

/// One step of a series. Gauges: last/avg/min/max of the values in the step.
/// Sums: `value` is the sum of deltas, or for cumulative sums the increase
/// over the step. Histograms: count, sum and percentiles from the buckets.
#[derive(Debug, Clone, Serialize, Default, ToSchema)]
pub struct MetricBucket {
    pub time: String,
    pub time_unix_nano: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub avg: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sum: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p90: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p95: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MetricData {
    pub name: String,
    pub kind: String,
    pub unit: Option<String>,
    pub step_ms: u64,
    pub series: Vec<MetricSeries>,
    /// The time range read and the tiers it spans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub read: Option<TiersRead>,
}

/// One service seen in the window.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceSummary {
    pub name: String,
    pub versions: Vec<String>,
    pub environments: Vec<String>,
    pub span_count: u64,
    pub error_count: u64,
    pub error_rate: f64,
    pub spans_per_minute: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub last_seen: Option<String>,
    /// Per `step` over the window, oldest first, every step present (zeros
    /// where the service was quiet); only when `step` is asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub series: Option<Vec<ServiceBucket>>,
}

/// One step of a service's activity: spans starting in it, how many failed,
/// and their p95 latency (none in a quiet step).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ServiceBucket {
    pub time: String,
    pub time_unix_nano: String,
    pub span_count: u64,
    pub error_count: u64,
    pub p95_ms: Option<f64>,
}

/// Rows and time range of one table.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TableStats {
    pub table: String,
    pub rows: u64,
    pub oldest: Option<String>,
    pub newest: Option<String>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StorageStats {
    pub path: String,
    pub file_bytes: Option<u64>,
    /// The write-ahead log: qyl's journal of batches not yet checkpointed
    /// into the file.
    pub wal_bytes: Option<u64>,
    pub schema_version: u32,
    pub tables: Vec<TableStats>,
}

/// The result of a read-only SQL query.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SqlResult {
    pub columns: Vec<SqlColumn>,
    pub rows: Vec<Vec<serde_json::Value>>,
    /// True when the row cap cut the result.
    pub truncated: bool,
    pub elapsed_ms: f64,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SqlColumn {
    pub name: String,
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Which GenAI calls [`GenAiStats`] covers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GenAiFilter {
    pub since: u64,
    pub until: u64,
    pub service: Option<String>,
    pub provider: Option<String>,
    /// Matches the request or the response model.
    pub model: Option<String>,
    pub session_id: Option<String>,
    /// Width of the time buckets, in nanoseconds.
    pub step_ns: u64,
}

/// Totals of a set of GenAI calls.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct GenAiTotals {
    pub requests: u64,
    pub errors: u64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cache_read_tokens: i64,
    /// Input tokens written to the prompt cache (part of `input_tokens`).
    pub cache_write_tokens: i64,
    /// Reasoning tokens (part of `output_tokens`).
    pub reasoning_tokens: i64,
    /// Sum of the known costs (sent by the application or priced at
    /// ingest); calls with tokens but no price are counted in
    /// `requests_without_cost`, never as $0.
    pub cost_usd: f64,
    pub requests_without_cost: u64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Time to the first streamed chunk, of the calls that report it.
    pub time_to_first_chunk_p50_ms: Option<f64>,
    pub time_to_first_chunk_p95_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenAiModelStats {
    pub provider: Option<String>,
    /// The response model, else the requested one.
    pub model: Option<String>,
    #[serde(flatten)]
    pub totals: GenAiTotals,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenAiBucket {
    pub time: String,
    pub time_unix_nano: String,
    #[serde(flatten)]
    pub totals: GenAiTotals,
}

/// One model's calls in one bucket, for charts of tokens or cost by model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenAiModelBucket {
    pub provider: Option<String>,
    /// The response model, else the requested one (as in `by_model`).
    pub model: Option<String>,
    pub time: String,
    pub time_unix_nano: String,
    #[serde(flatten)]
    pub totals: GenAiTotals,
}

/// GenAI calls (spans with a `gen_ai.*` provider or operation) in a window:
/// totals, per model and over time. Agent and workflow roll-up spans
/// (`invoke_agent`, `invoke_workflow`, `create_agent`) are left out, since
/// the calls inside them are already counted.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct GenAiStats {
    pub since: String,
    pub until: String,
    pub step_ms: u64,
    pub totals: GenAiTotals,
    pub by_model: Vec<GenAiModelStats>,
    pub over_time: Vec<GenAiBucket>,
    /// Per model and bucket (buckets without calls left out), by time then
    /// model.
    pub by_model_over_time: Vec<GenAiModelBucket>,
}

/// Stored JSON text as a raw JSON value (text that is not JSON becomes a
/// JSON string, so a reader never fails on one odd row).
pub fn raw_json(text: &str) -> Box<RawValue> {
    RawValue::from_string(text.to_string()).unwrap_or_else(|_| {
        let quoted = serde_json::to_string(text).unwrap_or_else(|_| "null".into());
        RawValue::from_string(quoted).unwrap_or_else(|_| null_json())
    })
}

fn null_json() -> Box<RawValue> {
    // "null" is valid JSON; the fallback can only be reached by a bug.
    RawValue::from_string("null".into()).unwrap_or_default()
}

impl SpanRow {
    /// The reader's view of a span fresh from the hub (as SSE and functions
    /// see it), identical to what the store returns for the same span.
    pub fn from_record(s: &super::SpanRecord, ingest_seq: u64) -> SpanRow {
        let g = &s.genai;
        SpanRow {
            trace_id: s.trace_id.to_string(),
            span_id: s.span_id.to_string(),
            parent_span_id: s.parent_span_id.map(String::from),
            name: s.name.clone(),
            kind: s.kind.to_string(),
            service_name: s.service_name.to_string(),
            service_version: s.service_version.as_deref().map(str::to_owned),
            deployment_environment: s.deployment_environment.as_deref().map(str::to_owned),
            scope_name: s.scope_name.as_deref().map(str::to_owned),
            start_time: rfc3339(s.start_time_unix_nano),
            start_time_unix_nano: s.start_time_unix_nano.to_string(),
            end_time_unix_nano: s.end_time_unix_nano.to_string(),
            duration_ms: s.duration_ns as f64 / 1e6,
            status_code: s.status_code.to_string(),
            status_message: s.status_message.clone(),
            session_id: s.session_id.as_deref().map(str::to_owned),
            gen_ai: Some(GenAiRow {
                provider: g.provider.clone(),
                operation: g.operation.clone(),
                request_model: g.request_model.clone(),
                response_model: g.response_model.clone(),
                input_tokens: g.input_tokens,
                output_tokens: g.output_tokens,
                cache_read_tokens: g.cache_read_tokens,
                finish_reasons: g.finish_reasons.as_deref().map(raw_json),
                cost_usd: g.cost_usd,
            })
            .filter(GenAiRow::is_shown),
            attributes: raw_json(&s.attributes),
            resource: raw_json(&s.resource),
            events: raw_json(&s.events),
            links: raw_json(&s.links),
            ingest_seq,
        }
    }
}

impl LogRow {
    /// The reader's view of a log record fresh from the hub.
    pub fn from_record(l: &super::LogRecord, ingest_seq: u64) -> LogRow {
        LogRow {
            time: rfc3339(l.time_unix_nano),
            time_unix_nano: l.time_unix_nano.to_string(),
            observed_time_unix_nano: l.observed_time_unix_nano.to_string(),
            trace_id: l.trace_id.clone(),
            span_id: l.span_id.clone(),
            severity_number: l.severity_number,
            severity_text: l.severity_text.clone(),
            body: l.body.clone(),
            service_name: l.service_name.clone(),
            service_version: l.service_version.clone(),
            deployment_environment: l.deployment_environment.clone(),
            scope_name: l.scope_name.clone(),
            session_id: l.session_id.clone(),
            event_name: l.event_name.clone(),
            attributes: raw_json(&l.attributes),
            resource: raw_json(&l.resource),
            ingest_seq,
        }
    }
}

/// RFC 3339 with nanoseconds, UTC.
pub fn rfc3339(unix_nano: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(unix_nano);
    humantime::format_rfc3339_nanos(t).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        let c = Cursor {
            time: 1_700_000_000_123_456_789,
            key: "abc:def".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("!!!"), None);
        assert_eq!(Cursor::decode(&URL_SAFE_NO_PAD.encode("x:y")), None);
    }

    fn span(id: &str, parent: Option<&str>, start: u64) -> SpanRow {
        let raw = || RawValue::from_string("{}".into()).unwrap();
        SpanRow {
            trace_id: "t".into(),
            span_id: id.into(),
            parent_span_id: parent.map(Into::into),
            name: id.into(),
            kind: "INTERNAL".into(),
            service_name: "s".into(),
            service_version: None,
            deployment_environment: None,
            scope_name: None,
            start_time: rfc3339(start),
            start_time_unix_nano: start.to_string(),
            end_time_unix_nano: start.to_string(),
            duration_ms: 0.0,
            status_code: "UNSET".into(),
            status_message: None,
            session_id: None,
            gen_ai: None,
            attributes: raw(),
            resource: raw(),
            events: raw(),
            links: raw(),
            ingest_seq: 0,
        }
    }

    #[test]
    fn tree_nests_children_and_keeps_orphans_and_cycles() {
        let summary = TraceSummary {
            trace_id: "t".into(),
            root_name: "a".into(),
            root_service: "s".into(),
            services: vec![],
            start_time: String::new(),
            start_time_unix_nano: "0".into(),
            duration_ms: 0.0,
            span_count: 6,
            error_count: 0,
            gen_ai_input_tokens: 0,
            gen_ai_output_tokens: 0,
            gen_ai_cost_usd: None,
        };
        let spans = vec![
            span("c", Some("b"), 3),
            span("a", None, 1),
            span("b", Some("a"), 2),
            span("orphan", Some("missing"), 4),
            span("x", Some("y"), 5),
            span("y", Some("x"), 6),
        ];
        let tree = TraceTree::build(summary, spans, vec![]);
        let names: Vec<_> = tree.roots.iter().map(|n| n.span.span_id.as_str()).collect();
        assert_eq!(names[..2], ["a", "orphan"]);
        assert_eq!(tree.roots[0].children[0].span.span_id, "b");
        assert_eq!(tree.roots[0].children[0].children[0].span.span_id, "c");
        // The x↔y cycle has no root; both spans are still shown.
        fn count(n: &SpanNode) -> usize {
            1 + n.children.iter().map(count).sum::<usize>()
        }
        assert_eq!(tree.roots.iter().map(count).sum::<usize>(), 6);
    }
}
