//! A lenient OTLP/JSON decoder: `serde_json::Value` → the prost request types.
//!
//! The OTLP JSON encoding differs from proto3's canonical JSON (hex ids instead
//! of base64, integer enums) and exporters differ among themselves: 64-bit
//! integers arrive as strings from some and as numbers from others, enums as
//! ints or names, field names in lowerCamelCase or the original snake_case.
//! Rather than fight serde derives, this walks the JSON tree by hand, accepts
//! every form a real exporter sends, ignores unknown fields (as the spec
//! requires) and names the exact path of anything it cannot read.

use std::fmt;

use base64::Engine;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    any_value, AnyValue, ArrayValue, InstrumentationScope, KeyValue, KeyValueList,
};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point, metric, number_data_point,
    summary_data_point::ValueAtQuantile, Exemplar, ExponentialHistogram,
    ExponentialHistogramDataPoint, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint,
    ResourceMetrics, ScopeMetrics, Sum, Summary, SummaryDataPoint,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use serde_json::{Map, Value};

/// What was wrong and where, e.g.
/// `resourceSpans[0].scopeSpans[0].spans[2].startTimeUnixNano: expected an integer, found true`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct JsonError {
    pub path: String,
    pub message: String,
}

type Result<T> = std::result::Result<T, JsonError>;

/// A path into the document, built only when an error needs it.
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'static str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => f.write_str("$"),
            Path::Field(Path::Root, name) => f.write_str(name),
            Path::Field(parent, name) => write!(f, "{parent}.{name}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

impl<'a> Path<'a> {
    fn field(&'a self, name: &'static str) -> Path<'a> {
        Path::Field(self, name)
    }
    fn index(&'a self, i: usize) -> Path<'a> {
        Path::Index(self, i)
    }
    fn err<T>(&self, message: impl Into<String>) -> Result<T> {
        Err(JsonError {
            path: self.to_string(),
            message: message.into(),
        })
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON object with lookups that accept both lowerCamelCase and snake_case.
struct Obj<'v, 'p> {
    map: &'v Map<String, Value>,
    path: &'p Path<'p>,
}

fn obj<'v, 'p>(v: &'v Value, path: &'p Path<'p>) -> Result<Obj<'v, 'p>> {
    match v {
        Value::Object(map) => Ok(Obj { map, path }),
        other => path.err(format!("expected an object, found {}", kind(other))),
    }
}

impl<'v> Obj<'v, '_> {
    /// The value under `camel` or its snake_case twin; `null` counts as absent.
    fn get(&self, camel: &'static str) -> Option<&'v Value> {
        let v = self.map.get(camel).or_else(|| {
            if camel.bytes().any(|b| b.is_ascii_uppercase()) {
                self.map.get(&snake(camel))
            } else {
                None
            }
        })?;
        (!v.is_null()).then_some(v)
    }
}

fn snake(camel: &str) -> String {
    let mut s = String::with_capacity(camel.len() + 4);
    for c in camel.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

macro_rules! field {
    ($obj:expr, $name:literal, $conv:ident) => {{
        let p = $obj.path.field($name);
        match $obj.get($name) {
            Some(v) => $conv(v, &p)?,
            None => Default::default(),
        }
    }};
}

fn list<T>(
    v: &Value,
    path: &Path<'_>,
    item: impl Fn(&Value, &Path<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    match v {
        Value::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, v)| item(v, &path.index(i)))
            .collect(),
        other => path.err(format!("expected an array, found {}", kind(other))),
    }
}

macro_rules! list_field {
    ($obj:expr, $name:literal, $conv:expr) => {{
        let p = $obj.path.field($name);
        match $obj.get($name) {
            Some(v) => list(v, &p, $conv)?,
            None => Vec::new(),
        }
    }};
}

fn string(v: &Value, path: &Path<'_>) -> Result<String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        other => path.err(format!("expected a string, found {}", kind(other))),
    }
}

fn boolean(v: &Value, path: &Path<'_>) -> Result<bool> {
    match v {
        Value::Bool(b) => Ok(*b),
        other => path.err(format!("expected a boolean, found {}", kind(other))),
    }
}

/// protobuf.js's `Long` as JSON: `{"low": i32, "high": i32, "unsigned": bool}`,
/// which older OpenTelemetry JS exporters wrote for 64-bit fields.
fn long_bits(v: &Value) -> Option<u64> {
    let o = v.as_object()?;
    let low = o.get("low")?.as_i64()?;
    let high = o.get("high")?.as_i64()?;
    Some(((high as u64 & 0xffff_ffff) << 32) | (low as u64 & 0xffff_ffff))
}

fn u64_(v: &Value, path: &Path<'_>) -> Result<u64> {
    let parsed = match v {
        Value::Object(_) => long_bits(v),
        Value::Number(n) => n.as_u64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f < 1.8446744073709552e19)
                .map(|f| f as u64)
        }),
        Value::String(s) => s.trim().parse::<u64>().ok(),
        _ => None,
    };
    match parsed {
        Some(n) => Ok(n),
        None => path.err(format!(
            "expected an unsigned integer (number or string of digits), found {}",
            describe(v)
        )),
    }
}

fn i64_(v: &Value, path: &Path<'_>) -> Result<i64> {
    let parsed = match v {
        Value::Object(_) => long_bits(v).map(|n| n as i64),
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    };
    match parsed {
        Some(n) => Ok(n),
        None => path.err(format!(
            "expected an integer (number or string of digits), found {}",
            describe(v)
        )),
    }
}

fn u32_(v: &Value, path: &Path<'_>) -> Result<u32> {
    let n = u64_(v, path)?;
    u32::try_from(n).or_else(|_| path.err(format!("{n} does not fit in 32 bits")))
}

fn i32_(v: &Value, path: &Path<'_>) -> Result<i32> {
    let n = i64_(v, path)?;
    i32::try_from(n).or_else(|_| path.err(format!("{n} does not fit in 32 bits")))
}

fn f64_(v: &Value, path: &Path<'_>) -> Result<f64> {
    let parsed = match v {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => match s.as_str() {
            "NaN" => Some(f64::NAN),
            "Infinity" => Some(f64::INFINITY),
            "-Infinity" => Some(f64::NEG_INFINITY),
            other => other.trim().parse::<f64>().ok(),
        },
        _ => None,
    };
    match parsed {
        Some(n) => Ok(n),
        None => path.err(format!("expected a number, found {}", describe(v))),
    }
}

fn opt_f64(v: &Value, path: &Path<'_>) -> Result<Option<f64>> {
    f64_(v, path).map(Some)
}

fn describe(v: &Value) -> String {
    match v {
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::Number(n) => format!("the number {n}"),
        Value::Bool(b) => format!("{b}"),
        other => kind(other).to_string(),
    }
}

/// An enum sent as its number or as its proto name (`SPAN_KIND_SERVER`).
fn enum_(v: &Value, path: &Path<'_>, names: &[&str]) -> Result<i32> {
    match v {
        Value::String(s) if !s.is_empty() && !s.bytes().all(|b| b.is_ascii_digit()) => {
            match names.iter().position(|n| n == s) {
                Some(i) => Ok(i as i32),
                None => path.err(format!("unknown enum value {s:?}")),
            }
        }
        _ => i32_(v, path),
    }
}

const SPAN_KINDS: &[&str] = &[
    "SPAN_KIND_UNSPECIFIED",
    "SPAN_KIND_INTERNAL",
    "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",
    "SPAN_KIND_PRODUCER",
    "SPAN_KIND_CONSUMER",
];
const STATUS_CODES: &[&str] = &["STATUS_CODE_UNSET", "STATUS_CODE_OK", "STATUS_CODE_ERROR"];
const TEMPORALITIES: &[&str] = &[
    "AGGREGATION_TEMPORALITY_UNSPECIFIED",
    "AGGREGATION_TEMPORALITY_DELTA",
    "AGGREGATION_TEMPORALITY_CUMULATIVE",
];
const SEVERITIES: &[&str] = &[
    "SEVERITY_NUMBER_UNSPECIFIED",
    "SEVERITY_NUMBER_TRACE",
    "SEVERITY_NUMBER_TRACE2",
    "SEVERITY_NUMBER_TRACE3",
    "SEVERITY_NUMBER_TRACE4",
    "SEVERITY_NUMBER_DEBUG",
    "SEVERITY_NUMBER_DEBUG2",
    "SEVERITY_NUMBER_DEBUG3",
    "SEVERITY_NUMBER_DEBUG4",
    "SEVERITY_NUMBER_INFO",
    "SEVERITY_NUMBER_INFO2",
    "SEVERITY_NUMBER_INFO3",
    "SEVERITY_NUMBER_INFO4",
    "SEVERITY_NUMBER_WARN",
    "SEVERITY_NUMBER_WARN2",
    "SEVERITY_NUMBER_WARN3",
    "SEVERITY_NUMBER_WARN4",
    "SEVERITY_NUMBER_ERROR",
    "SEVERITY_NUMBER_ERROR2",
    "SEVERITY_NUMBER_ERROR3",
    "SEVERITY_NUMBER_ERROR4",
    "SEVERITY_NUMBER_FATAL",
    "SEVERITY_NUMBER_FATAL2",
    "SEVERITY_NUMBER_FATAL3",
    "SEVERITY_NUMBER_FATAL4",
];

/// Trace and span ids: hex per the OTLP JSON rules. A base64 id of the right
/// length (what generic protobuf JSON printers write) is accepted too. Anything
/// else is passed on as its raw bytes so that the converter rejects just that
/// record and reports it in `partial_success`.
fn id(v: &Value, path: &Path<'_>) -> Result<Vec<u8>> {
    let s = string(v, path)?;
    if s.is_empty() {
        return Ok(Vec::new());
    }
    if s.len() % 2 == 0 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok((0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap_or(0))
            .collect());
    }
    if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(&s) {
        if bytes.len() == 16 || bytes.len() == 8 {
            return Ok(bytes);
        }
    }
    // Not an id: keep a length no id has, so the record is rejected.
    Ok(vec![0xff; 3])
}

fn bytes(v: &Value, path: &Path<'_>) -> Result<Vec<u8>> {
    let s = string(v, path)?;
    base64::engine::general_purpose::STANDARD
        .decode(&s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(&s))
        .or_else(|_| path.err("expected base64 bytes"))
}

fn any_value(v: &Value, path: &Path<'_>) -> Result<AnyValue> {
    let o = obj(v, path)?;
    let value = if let Some(s) = o.get("stringValue") {
        Some(any_value::Value::StringValue(string(
            s,
            &path.field("stringValue"),
        )?))
    } else if let Some(b) = o.get("boolValue") {
        Some(any_value::Value::BoolValue(boolean(
            b,
            &path.field("boolValue"),
        )?))
    } else if let Some(i) = o.get("intValue") {
        Some(any_value::Value::IntValue(i64_(
            i,
            &path.field("intValue"),
        )?))
    } else if let Some(d) = o.get("doubleValue") {
        Some(any_value::Value::DoubleValue(f64_(
            d,
            &path.field("doubleValue"),
        )?))
    } else if let Some(a) = o.get("arrayValue") {
        let p = path.field("arrayValue");
        let a = obj(a, &p)?;
        Some(any_value::Value::ArrayValue(ArrayValue {
            values: list_field!(a, "values", any_value),
        }))
    } else if let Some(kv) = o.get("kvlistValue") {
        let p = path.field("kvlistValue");
        let kv = obj(kv, &p)?;
        Some(any_value::Value::KvlistValue(KeyValueList {
            values: list_field!(kv, "values", key_value),
        }))
    } else if let Some(b) = o.get("bytesValue") {
        Some(any_value::Value::BytesValue(bytes(
            b,
            &path.field("bytesValue"),
        )?))
    } else {
        None
    };
    Ok(AnyValue { value })
}

fn key_value(v: &Value, path: &Path<'_>) -> Result<KeyValue> {
    let o = obj(v, path)?;
    Ok(KeyValue {
        key: field!(o, "key", string),
        value: match o.get("value") {
            Some(v) => Some(any_value(v, &path.field("value"))?),
            None => None,
        },
        ..Default::default()
    })
}

fn resource(v: &Value, path: &Path<'_>) -> Result<Option<Resource>> {
    let o = obj(v, path)?;
    Ok(Some(Resource {
        attributes: list_field!(o, "attributes", key_value),
        dropped_attributes_count: field!(o, "droppedAttributesCount", u32_),
        ..Default::default()
    }))
}

fn scope(v: &Value, path: &Path<'_>) -> Result<Option<InstrumentationScope>> {
    let o = obj(v, path)?;
    Ok(Some(InstrumentationScope {
        name: field!(o, "name", string),
        version: field!(o, "version", string),
        attributes: list_field!(o, "attributes", key_value),
        dropped_attributes_count: field!(o, "droppedAttributesCount", u32_),
    }))
}

pub fn traces(v: &Value) -> Result<ExportTraceServiceRequest> {
    let root = Path::Root;
    let o = obj(v, &root)?;
    Ok(ExportTraceServiceRequest {
        resource_spans: list_field!(o, "resourceSpans", resource_spans),
    })
}

fn resource_spans(v: &Value, path: &Path<'_>) -> Result<ResourceSpans> {
    let o = obj(v, path)?;
    Ok(ResourceSpans {
        resource: field!(o, "resource", resource),
        scope_spans: list_field!(o, "scopeSpans", scope_spans),
        schema_url: field!(o, "schemaUrl", string),
    })
}

fn scope_spans(v: &Value, path: &Path<'_>) -> Result<ScopeSpans> {
    let o = obj(v, path)?;
    Ok(ScopeSpans {
        scope: field!(o, "scope", scope),
        spans: list_field!(o, "spans", span_),
        schema_url: field!(o, "schemaUrl", string),
    })
}

fn kind_enum(v: &Value, p: &Path<'_>) -> Result<i32> {
    enum_(v, p, SPAN_KINDS)
}
fn status_enum(v: &Value, p: &Path<'_>) -> Result<i32> {
    enum_(v, p, STATUS_CODES)
}
fn temporality_enum(v: &Value, p: &Path<'_>) -> Result<i32> {
    enum_(v, p, TEMPORALITIES)
}
fn severity_enum(v: &Value, p: &Path<'_>) -> Result<i32> {
    enum_(v, p, SEVERITIES)
}

fn status(v: &Value, path: &Path<'_>) -> Result<Option<Status>> {
    let o = obj(v, path)?;
    Ok(Some(Status {
        message: field!(o, "message", string),
        code: field!(o, "code", status_enum),
    }))
}

fn span_(v: &Value, path: &Path<'_>) -> Result<Span> {
    let o = obj(v, path)?;
    Ok(Span {
        trace_id: field!(o, "traceId", id),
        span_id: field!(o, "spanId", id),
        trace_state: field!(o, "traceState", string),
        parent_span_id: field!(o, "parentSpanId", id),
        flags: field!(o, "flags", u32_),
        name: field!(o, "name", string),
        kind: field!(o, "kind", kind_enum),
        start_time_unix_nano: field!(o, "startTimeUnixNano", u64_),
        end_time_unix_nano: field!(o, "endTimeUnixNano", u64_),
        attributes: list_field!(o, "attributes", key_value),
        dropped_attributes_count: field!(o, "droppedAttributesCount", u32_),
        events: list_field!(o, "events", event),
        dropped_events_count: field!(o, "droppedEventsCount", u32_),
        links: list_field!(o, "links", link),
        dropped_links_count: field!(o, "droppedLinksCount", u32_),
        status: field!(o, "status", status),
    })
}

fn event(v: &Value, path: &Path<'_>) -> Result<span::Event> {
    let o = obj(v, path)?;
    Ok(span::Event {
        time_unix_nano: field!(o, "timeUnixNano", u64_),
        name: field!(o, "name", string),
        attributes: list_field!(o, "attributes", key_value),
        dropped_attributes_count: field!(o, "droppedAttributesCount", u32_),
    })
}

fn link(v: &Value, path: &Path<'_>) -> Result<span::Link> {
    let o = obj(v, path)?;
    Ok(span::Link {
        trace_id: field!(o, "traceId", id),
        span_id: field!(o, "spanId", id),
        trace_state: field!(o, "traceState", string),
        attributes: list_field!(o, "attributes", key_value),
        dropped_attributes_count: field!(o, "droppedAttributesCount", u32_),
        flags: field!(o, "flags", u32_),
    })
}

pub fn logs(v: &Value) -> Result<ExportLogsServiceRequest> {
    let root = Path::Root;
    let o = obj(v, &root)?;
    Ok(ExportLogsServiceRequest {
        resource_logs: list_field!(o, "resourceLogs", resource_logs),
    })
}

fn resource_logs(v: &Value, path: &Path<'_>) -> Result<ResourceLogs> {
    let o = obj(v, path)?;
    Ok(ResourceLogs {
        resource: field!(o, "resource", resource),
        scope_logs: list_field!(o, "scopeLogs", scope_logs),
        schema_url: field!(o, "schemaUrl", string),
    })
}

fn scope_logs(v: &Value, path: &Path<'_>) -> Result<ScopeLogs> {
    let o = obj(v, path)?;
    Ok(ScopeLogs {
        scope: field!(o, "scope", scope),
        log_records: list_field!(o, "logRecords", log_record),
        schema_url: field!(o, "schemaUrl", string),
    })
}

fn opt_any(v: &Value, path: &Path<'_>) -> Result<Option<AnyValue>> {
    any_value(v, path).map(Some)
}

fn log_record(v: &Value, path: &Path<'_>) -> Result<LogRecord> {
    let o = obj(v, path)?;
    Ok(LogRecord {
        time_unix_nano: field!(o, "timeUnixNano", u64_),
        observed_time_unix_nano: field!(o, "observedTimeUnixNano", u64_),
        severity_number: field!(o, "severityNumber", severity_enum),
        severity_text: field!(o, "severityText", string),
        body: field!(o, "body", opt_any),
        attributes: list_field!(o, "attributes", key_value),
        dropped_attributes_count: field!(o, "droppedAttributesCount", u32_),
        flags: field!(o, "flags", u32_),
        trace_id: field!(o, "traceId", id),
        span_id: field!(o, "spanId", id),
        event_name: field!(o, "eventName", string),
    })
}

pub fn metrics(v: &Value) -> Result<ExportMetricsServiceRequest> {
    let root = Path::Root;
    let o = obj(v, &root)?;
    Ok(ExportMetricsServiceRequest {
        resource_metrics: list_field!(o, "resourceMetrics", resource_metrics),
    })
}

fn resource_metrics(v: &Value, path: &Path<'_>) -> Result<ResourceMetrics> {
    let o = obj(v, path)?;
    Ok(ResourceMetrics {
        resource: field!(o, "resource", resource),
        scope_metrics: list_field!(o, "scopeMetrics", scope_metrics),
        schema_url: field!(o, "schemaUrl", string),
    })
}

fn scope_metrics(v: &Value, path: &Path<'_>) -> Result<ScopeMetrics> {
    let o = obj(v, path)?;
    Ok(ScopeMetrics {
        scope: field!(o, "scope", scope),
        metrics: list_field!(o, "metrics", metric_),
        schema_url: field!(o, "schemaUrl", string),
    })
}

fn metric_(v: &Value, path: &Path<'_>) -> Result<Metric> {
    let o = obj(v, path)?;
    let data = if let Some(g) = o.get("gauge") {
        let p = path.field("gauge");
        let g = obj(g, &p)?;
        Some(metric::Data::Gauge(Gauge {
            data_points: list_field!(g, "dataPoints", number_point),
        }))
    } else if let Some(s) = o.get("sum") {
        let p = path.field("sum");
        let s = obj(s, &p)?;
        Some(metric::Data::Sum(Sum {
            data_points: list_field!(s, "dataPoints", number_point),
            aggregation_temporality: field!(s, "aggregationTemporality", temporality_enum),
            is_monotonic: field!(s, "isMonotonic", boolean),
        }))
    } else if let Some(h) = o.get("histogram") {
        let p = path.field("histogram");
        let h = obj(h, &p)?;
        Some(metric::Data::Histogram(Histogram {
            data_points: list_field!(h, "dataPoints", histogram_point),
            aggregation_temporality: field!(h, "aggregationTemporality", temporality_enum),
        }))
    } else if let Some(h) = o.get("exponentialHistogram") {
        let p = path.field("exponentialHistogram");
        let h = obj(h, &p)?;
        Some(metric::Data::ExponentialHistogram(ExponentialHistogram {
            data_points: list_field!(h, "dataPoints", exp_histogram_point),
            aggregation_temporality: field!(h, "aggregationTemporality", temporality_enum),
        }))
    } else if let Some(s) = o.get("summary") {
        let p = path.field("summary");
        let s = obj(s, &p)?;
        Some(metric::Data::Summary(Summary {
            data_points: list_field!(s, "dataPoints", summary_point),
        }))
    } else {
        None
    };
    Ok(Metric {
        name: field!(o, "name", string),
        description: field!(o, "description", string),
        unit: field!(o, "unit", string),
        metadata: list_field!(o, "metadata", key_value),
        data,
    })
}

fn number_point(v: &Value, path: &Path<'_>) -> Result<NumberDataPoint> {
    let o = obj(v, path)?;
    let value = if let Some(d) = o.get("asDouble") {
        Some(number_data_point::Value::AsDouble(f64_(
            d,
            &path.field("asDouble"),
        )?))
    } else if let Some(i) = o.get("asInt") {
        Some(number_data_point::Value::AsInt(i64_(
            i,
            &path.field("asInt"),
        )?))
    } else {
        None
    };
    Ok(NumberDataPoint {
        attributes: list_field!(o, "attributes", key_value),
        start_time_unix_nano: field!(o, "startTimeUnixNano", u64_),
        time_unix_nano: field!(o, "timeUnixNano", u64_),
        exemplars: list_field!(o, "exemplars", exemplar_),
        flags: field!(o, "flags", u32_),
        value,
    })
}

fn histogram_point(v: &Value, path: &Path<'_>) -> Result<HistogramDataPoint> {
    let o = obj(v, path)?;
    Ok(HistogramDataPoint {
        attributes: list_field!(o, "attributes", key_value),
        start_time_unix_nano: field!(o, "startTimeUnixNano", u64_),
        time_unix_nano: field!(o, "timeUnixNano", u64_),
        count: field!(o, "count", u64_),
        sum: field!(o, "sum", opt_f64),
        bucket_counts: list_field!(o, "bucketCounts", u64_),
        explicit_bounds: list_field!(o, "explicitBounds", f64_),
        exemplars: list_field!(o, "exemplars", exemplar_),
        flags: field!(o, "flags", u32_),
        min: field!(o, "min", opt_f64),
        max: field!(o, "max", opt_f64),
    })
}

fn buckets(
    v: &Value,
    path: &Path<'_>,
) -> Result<Option<exponential_histogram_data_point::Buckets>> {
    let o = obj(v, path)?;
    Ok(Some(exponential_histogram_data_point::Buckets {
        offset: field!(o, "offset", i32_),
        bucket_counts: list_field!(o, "bucketCounts", u64_),
    }))
}

fn exp_histogram_point(v: &Value, path: &Path<'_>) -> Result<ExponentialHistogramDataPoint> {
    let o = obj(v, path)?;
    Ok(ExponentialHistogramDataPoint {
        attributes: list_field!(o, "attributes", key_value),
        start_time_unix_nano: field!(o, "startTimeUnixNano", u64_),
        time_unix_nano: field!(o, "timeUnixNano", u64_),
        count: field!(o, "count", u64_),
        sum: field!(o, "sum", opt_f64),
        scale: field!(o, "scale", i32_),
        zero_count: field!(o, "zeroCount", u64_),
        positive: field!(o, "positive", buckets),
        negative: field!(o, "negative", buckets),
        flags: field!(o, "flags", u32_),
        exemplars: list_field!(o, "exemplars", exemplar_),
        min: field!(o, "min", opt_f64),
        max: field!(o, "max", opt_f64),
        zero_threshold: field!(o, "zeroThreshold", f64_),
    })
}

fn quantile(v: &Value, path: &Path<'_>) -> Result<ValueAtQuantile> {
    let o = obj(v, path)?;
    Ok(ValueAtQuantile {
        quantile: field!(o, "quantile", f64_),
        value: field!(o, "value", f64_),
    })
}

fn summary_point(v: &Value, path: &Path<'_>) -> Result<SummaryDataPoint> {
    let o = obj(v, path)?;
    Ok(SummaryDataPoint {
        attributes: list_field!(o, "attributes", key_value),
        start_time_unix_nano: field!(o, "startTimeUnixNano", u64_),
        time_unix_nano: field!(o, "timeUnixNano", u64_),
        count: field!(o, "count", u64_),
        sum: field!(o, "sum", f64_),
        quantile_values: list_field!(o, "quantileValues", quantile),
        flags: field!(o, "flags", u32_),
    })
}

fn exemplar_(v: &Value, path: &Path<'_>) -> Result<Exemplar> {
    let o = obj(v, path)?;
    let value = if let Some(d) = o.get("asDouble") {
        Some(exemplar::Value::AsDouble(f64_(d, &path.field("asDouble"))?))
    } else if let Some(i) = o.get("asInt") {
        Some(exemplar::Value::AsInt(i64_(i, &path.field("asInt"))?))
    } else {
        None
    };
    Ok(Exemplar {
        filtered_attributes: list_field!(o, "filteredAttributes", key_value),
        time_unix_nano: field!(o, "timeUnixNano", u64_),
        span_id: field!(o, "spanId", id),
        trace_id: field!(o, "traceId", id),
        value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::convert::{convert_logs, convert_metrics, convert_traces};
    use serde_json::json;

    fn one_span(span: Value) -> Value {
        json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
    }

    #[test]
    fn int64_as_string_or_number_and_enums_as_ints_or_names() {
        let a = traces(&one_span(json!({
            "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
            "startTimeUnixNano": "1544712660000000000", "endTimeUnixNano": 1544712661000000000u64,
            "kind": 2, "status": {"code": "STATUS_CODE_ERROR"},
            "attributes": [
                {"key": "s", "value": {"intValue": "-42"}},
                {"key": "n", "value": {"intValue": 42}},
                {"key": "big", "value": {"intValue": "9223372036854775807"}},
                {"key": "d", "value": {"doubleValue": "NaN"}},
                {"key": "e", "value": {"doubleValue": 2.5}},
                {"key": "b", "value": {"bytesValue": "AAEC"}},
                {"key": "arr", "value": {"arrayValue": {"values": [{"boolValue": true}]}}},
                {"key": "kv", "value": {"kvlistValue": {"values": [{"key": "x", "value": {"stringValue": "y"}}]}}},
                {"key": "empty", "value": {}}
            ]
        })))
        .unwrap();
        let span = &a.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.start_time_unix_nano, 1_544_712_660_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_544_712_661_000_000_000);
        assert_eq!(span.kind, 2);
        assert_eq!(span.status.as_ref().unwrap().code, 2);
        let b = traces(&one_span(json!({
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "kind": "SPAN_KIND_SERVER"
        })))
        .unwrap();
        assert_eq!(b.resource_spans[0].scope_spans[0].spans[0].kind, 2);

        let c = convert_traces(a);
        assert_eq!(c.rejected, 0);
        let s = &c.records[0];
        assert_eq!(s.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(s.span_id, "eee19b7ec3c1b174");
        assert_eq!(s.kind, "SERVER");
        assert_eq!(s.status_code, "ERROR");
        assert_eq!(s.duration_ns, 1_000_000_000);
        let attrs: Value = serde_json::from_str(&s.attributes).unwrap();
        assert_eq!(attrs["s"], -42);
        assert_eq!(attrs["n"], 42);
        assert_eq!(attrs["big"].as_i64(), Some(i64::MAX));
        assert_eq!(attrs["d"], "NaN");
        assert_eq!(attrs["e"], 2.5);
        assert_eq!(attrs["b"], "AAEC");
        assert_eq!(attrs["arr"], json!([true]));
        assert_eq!(attrs["kv"], json!({"x": "y"}));
        assert!(attrs["empty"].is_null());
    }

    #[test]
    fn protobufjs_long_objects_are_accepted() {
        let req = traces(&one_span(json!({
            "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
            "startTimeUnixNano": {"low": -1_073_741_824, "high": 396_140_061, "unsigned": true},
            "endTimeUnixNano": {"low": 0, "high": 396_140_062},
            "attributes": [{"key": "neg", "value": {"intValue": {"low": -1, "high": -1}}}]
        })))
        .unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(
            span.start_time_unix_nano,
            (396_140_061u64 << 32) | 0xc000_0000
        );
        assert_eq!(span.end_time_unix_nano, 396_140_062u64 << 32);
        let c = convert_traces(req);
        let attrs: Value = serde_json::from_str(&c.records[0].attributes).unwrap();
        assert_eq!(attrs["neg"], -1);
    }

    #[test]
    fn snake_case_names_and_base64_ids_are_accepted() {
        let req = traces(&json!({"resource_spans": [{"scope_spans": [{"spans": [{
            "trace_id": "W47/95gDgQPSabYzgT/GDA==", "span_id": "7uGbfsPBsXQ=",
            "start_time_unix_nano": 5, "end_time_unix_nano": 7
        }]}]}]}))
        .unwrap();
        let c = convert_traces(req);
        assert_eq!(c.rejected, 0, "{}", c.error_message("spans"));
        assert_eq!(c.records[0].trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(c.records[0].span_id, "eee19b7ec3c1b174");
        assert_eq!(c.records[0].duration_ns, 2);
    }

    #[test]
    fn invalid_ids_reject_only_their_record() {
        let req = traces(&json!({"resourceSpans": [{"scopeSpans": [{"spans": [
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174", "name": "ok"},
            {"traceId": "not-hex", "spanId": "eee19b7ec3c1b174", "name": "bad trace"},
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "", "name": "no span id"},
            {"traceId": "00000000000000000000000000000000", "spanId": "eee19b7ec3c1b174", "name": "zero"},
            {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7e", "name": "short"}
        ]}]}]}))
        .unwrap();
        let c = convert_traces(req);
        assert_eq!(c.records.len(), 1);
        assert_eq!(c.records[0].name, "ok");
        assert_eq!(c.rejected, 4);
        let msg = c.error_message("spans");
        assert!(msg.starts_with("4 spans rejected"), "{msg}");
        assert!(
            msg.contains("bad trace") && msg.contains("trace_id"),
            "{msg}"
        );
    }

    #[test]
    fn wrong_types_name_the_path() {
        let err = traces(&json!({"resourceSpans": 5})).unwrap_err();
        assert_eq!(
            err.to_string(),
            "resourceSpans: expected an array, found a number"
        );
        let err = traces(&one_span(
            json!({"traceId": "5b8efff798038103d269b633813fc60c",
            "startTimeUnixNano": true}),
        ))
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: expected an unsigned integer (number or string of digits), found true"
        );
        let err = traces(&one_span(json!({"kind": "SPAN_KIND_BOGUS"}))).unwrap_err();
        assert!(err.to_string().contains("unknown enum value"), "{err}");
        let err = logs(&json!([])).unwrap_err();
        assert_eq!(err.to_string(), "$: expected an object, found an array");
        let err = metrics(&json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "m", "gauge": {"dataPoints": [{"asDouble": "fast"}]}}]}]}]}))
        .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "resourceMetrics[0].scopeMetrics[0].metrics[0].gauge.dataPoints[0].asDouble"
            ),
            "{err}"
        );
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let req = traces(&json!({"resourceSpans": [], "somethingNew": {"a": 1}})).unwrap();
        assert!(req.resource_spans.is_empty());
    }

    #[test]
    fn logs_keep_body_severity_and_fall_back_to_observed_time() {
        let req = logs(&json!({"resourceLogs": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
            "scopeLogs": [{"scope": {"name": "lib"}, "logRecords": [
                {"observedTimeUnixNano": "1700000000000000000", "severityNumber": "SEVERITY_NUMBER_ERROR",
                 "severityText": "ERROR", "body": {"stringValue": "boom"},
                 "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
                 "eventName": "app.crash", "attributes": [{"key": "session.id", "value": {"stringValue": "s1"}}]},
                {"body": {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": 1}}]}}},
                {"traceId": "abcd"}
            ]}]}]}))
        .unwrap();
        let c = convert_logs(req, 42);
        assert_eq!(c.rejected, 1);
        let a = &c.records[0];
        assert_eq!(a.time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(a.severity_number, 17);
        assert_eq!(a.body.as_deref(), Some("boom"));
        assert_eq!(a.service_name, "svc");
        assert_eq!(a.scope_name.as_deref(), Some("lib"));
        assert_eq!(a.event_name.as_deref(), Some("app.crash"));
        assert_eq!(a.session_id.as_deref(), Some("s1"));
        assert_eq!(
            a.trace_id.as_deref(),
            Some("5b8efff798038103d269b633813fc60c")
        );
        let b = &c.records[1];
        assert_eq!(b.time_unix_nano, 42);
        assert_eq!(b.observed_time_unix_nano, 42);
        assert_eq!(b.body.as_deref(), Some("{\"k\":1}"));
        assert_eq!(b.trace_id, None);
    }

    #[test]
    fn every_metric_kind_becomes_rows() {
        let req = metrics(&json!({"resourceMetrics": [{"scopeMetrics": [{"metrics": [
            {"name": "g", "unit": "1", "gauge": {"dataPoints": [{"asDouble": 1.5, "timeUnixNano": "10"}]}},
            {"name": "s", "sum": {"aggregationTemporality": 2, "isMonotonic": true,
                "dataPoints": [{"asInt": "7"}, {"asInt": 8}]}},
            {"name": "h", "histogram": {"aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA",
                "dataPoints": [{"count": "3", "sum": 6, "bucketCounts": ["1", 2], "explicitBounds": [5],
                    "min": 1, "max": 4, "exemplars": [{"asDouble": 4, "traceId": "5b8efff798038103d269b633813fc60c"}]}]}},
            {"name": "e", "exponentialHistogram": {"dataPoints": [{"count": 2, "scale": 3, "zeroCount": 1,
                "positive": {"offset": -1, "bucketCounts": [1]}}]}},
            {"name": "q", "summary": {"dataPoints": [{"count": 4, "sum": 10,
                "quantileValues": [{"quantile": 0.5, "value": 2}]}]}},
            {"name": "nodata"}
        ]}]}]}))
        .unwrap();
        let c = convert_metrics(req);
        assert_eq!(c.rejected, 1);
        let by = |n: &str| c.records.iter().filter(|m| m.name == n).collect::<Vec<_>>();
        assert_eq!(by("g")[0].value, Some(1.5));
        assert_eq!(by("g")[0].kind, "gauge");
        assert_eq!(by("g")[0].unit.as_deref(), Some("1"));
        assert_eq!(by("s").len(), 2);
        assert_eq!(by("s")[0].value, Some(7.0));
        assert_eq!(by("s")[0].temporality, Some("cumulative"));
        assert_eq!(by("s")[0].is_monotonic, Some(true));
        let h = by("h")[0];
        assert_eq!(
            (h.count, h.sum, h.min, h.max),
            (Some(3), Some(6.0), Some(1.0), Some(4.0))
        );
        assert_eq!(h.temporality, Some("delta"));
        assert_eq!(
            h.histogram.as_deref(),
            Some("{\"bounds\":[5],\"counts\":[1,2]}")
        );
        assert!(h
            .exemplars
            .as_deref()
            .unwrap()
            .contains("5b8efff798038103d269b633813fc60c"));
        let e: Value = serde_json::from_str(by("e")[0].histogram.as_deref().unwrap()).unwrap();
        assert_eq!(e["scale"], 3);
        assert_eq!(e["positive"]["offset"], -1);
        let q: Value = serde_json::from_str(by("q")[0].histogram.as_deref().unwrap()).unwrap();
        assert_eq!(q["quantiles"][0]["value"], 2.0);
    }
}
