//! OTLP protobuf types → qyl's model records.
//!
//! JSON bodies (decoded by `otlp_json` into prost's types), gRPC requests
//! and all logs and metrics end here; OTLP/HTTP protobuf trace bodies take
//! the direct path in `spans`, which must give the same records. A record
//! with an invalid trace or span id is rejected on its own and counted for
//! the response's `partial_success`; the rest of the request is kept.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value::Value, InstrumentationScope};
use opentelemetry_proto::tonic::metrics::v1::{
    exemplar, exponential_histogram_data_point::Buckets, metric::Data, number_data_point, Exemplar,
};

use super::enrich::{record_info, resource_info};
use super::jsonw;
use crate::model::{HexId, LogRecord, MetricPoint, SpanRecord, SPAN_KINDS, STATUS_CODES};

/// The records that survived conversion and what was rejected.
#[derive(Debug, Default, PartialEq)]
pub struct Converted<T> {
    pub records: Vec<T>,
    pub rejected: u64,
    /// The first few reasons, for `partial_success.error_message`.
    reasons: Vec<String>,
}

const MAX_REASONS: usize = 5;

impl<T> Converted<T> {
    pub(super) fn reject(&mut self, count: u64, reason: impl FnOnce() -> String) {
        self.rejected += count;
        if self.reasons.len() < MAX_REASONS {
            self.reasons.push(reason());
        }
    }

    /// The `partial_success.error_message`, empty when nothing was rejected.
    pub fn error_message(&self, noun: &str) -> String {
        if self.rejected == 0 {
            return String::new();
        }
        let mut msg = format!(
            "{} {noun} rejected: {}",
            self.rejected,
            self.reasons.join("; ")
        );
        if self.rejected as usize > self.reasons.len() {
            msg.push_str("; …");
        }
        msg
    }
}

/// A required id: exactly `N / 2` bytes, not all zero.
pub(super) fn required_id<const N: usize>(bytes: &[u8], what: &str) -> Result<HexId<N>, String> {
    let len = N / 2;
    if bytes.len() != len {
        return Err(format!(
            "invalid {what} (expected {len} bytes: {N} hex characters in JSON)"
        ));
    }
    if bytes.iter().all(|b| *b == 0) {
        return Err(format!("invalid {what} (all zero)"));
    }
    Ok(HexId::from_bytes(bytes))
}

/// An optional id: empty (or all zero) means absent, otherwise as required.
pub(super) fn optional_id<const N: usize>(
    bytes: &[u8],
    what: &str,
) -> Result<Option<HexId<N>>, String> {
    if bytes.is_empty() || bytes.iter().all(|b| *b == 0) {
        return Ok(None);
    }
    required_id(bytes, what).map(Some)
}

pub(super) fn non_empty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_string())
}

fn scope_parts(scope: Option<&InstrumentationScope>) -> (Option<String>, Option<String>) {
    match scope {
        Some(s) => (non_empty(&s.name), non_empty(&s.version)),
        None => (None, None),
    }
}

pub fn span_kind_name(kind: i32) -> &'static str {
    usize::try_from(kind)
        .ok()
        .and_then(|k| SPAN_KINDS.get(k).copied())
        .unwrap_or(SPAN_KINDS[0])
}

pub fn status_code_name(code: i32) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|c| STATUS_CODES.get(c).copied())
        .unwrap_or(STATUS_CODES[0])
}

pub fn convert_traces(req: ExportTraceServiceRequest) -> Converted<SpanRecord> {
    let mut out = Converted::default();
    for rs in req.resource_spans {
        let res_attrs = rs
            .resource
            .as_ref()
            .map(|r| &r.attributes[..])
            .unwrap_or(&[]);
        let res = resource_info(res_attrs);
        for ss in rs.scope_spans {
            let (scope_name, scope_version) = scope_parts(ss.scope.as_ref());
            let scope_name: Option<Arc<str>> = scope_name.map(Arc::from);
            let scope_version: Option<Arc<str>> = scope_version.map(Arc::from);
            out.records.reserve(ss.spans.len());
            for span in ss.spans {
                let ids = required_id::<32>(&span.trace_id, "trace_id").and_then(|t| {
                    let s = required_id::<16>(&span.span_id, "span_id")?;
                    let p = optional_id::<16>(&span.parent_span_id, "parent_span_id")?;
                    Ok((t, s, p))
                });
                let (trace_id, span_id, parent_span_id) = match ids {
                    Ok(ids) => ids,
                    Err(e) => {
                        out.reject(1, || format!("span {:?}: {e}", span.name));
                        continue;
                    }
                };
                let mut info = record_info(&span.attributes);
                let (status_code, status_message) = match &span.status {
                    Some(s) => (status_code_name(s.code), non_empty(&s.message)),
                    None => ("UNSET", None),
                };
                let mut events = String::from("[");
                for (i, e) in span.events.iter().enumerate() {
                    if i > 0 {
                        events.push(',');
                    }
                    events.push_str("{\"time_unix_nano\":");
                    jsonw::push_u64(&mut events, e.time_unix_nano);
                    events.push_str(",\"name\":");
                    jsonw::push_str(&mut events, &e.name);
                    events.push_str(",\"attributes\":");
                    jsonw::push_attrs(&mut events, &e.attributes);
                    if e.dropped_attributes_count > 0 {
                        events.push_str(",\"dropped_attributes_count\":");
                        jsonw::push_u64(&mut events, e.dropped_attributes_count.into());
                    }
                    events.push('}');
                }
                events.push(']');
                let mut links = String::from("[");
                for (i, l) in span.links.iter().enumerate() {
                    if i > 0 {
                        links.push(',');
                    }
                    links.push_str("{\"trace_id\":");
                    jsonw::push_hex(&mut links, &l.trace_id);
                    links.push_str(",\"span_id\":");
                    jsonw::push_hex(&mut links, &l.span_id);
                    if !l.trace_state.is_empty() {
                        links.push_str(",\"trace_state\":");
                        jsonw::push_str(&mut links, &l.trace_state);
                    }
                    links.push_str(",\"attributes\":");
                    jsonw::push_attrs(&mut links, &l.attributes);
                    links.push('}');
                }
                links.push(']');
                out.records.push(SpanRecord {
                    trace_id,
                    span_id,
                    parent_span_id,
                    trace_state: non_empty(&span.trace_state),
                    kind: span_kind_name(span.kind),
                    start_time_unix_nano: span.start_time_unix_nano,
                    end_time_unix_nano: span.end_time_unix_nano,
                    duration_ns: span
                        .end_time_unix_nano
                        .saturating_sub(span.start_time_unix_nano),
                    status_code,
                    status_message,
                    service_name: res.service_name.clone(),
                    service_version: res.service_version.clone(),
                    deployment_environment: res.deployment_environment.clone(),
                    scope_name: scope_name.clone(),
                    scope_version: scope_version.clone(),
                    session_id: info.session(&res),
                    genai: std::mem::take(&mut info.genai).into(),
                    user_id: info.user_id.take(),
                    attributes: jsonw::attrs_json(&span.attributes),
                    resource: res.json.clone(),
                    events,
                    links,
                    dropped_attributes_count: span.dropped_attributes_count,
                    dropped_events_count: span.dropped_events_count,
                    dropped_links_count: span.dropped_links_count,
                    name: span.name,
                });
            }
        }
    }
    out
}

pub fn convert_logs(
    req: ExportLogsServiceRequest,
    received_unix_nano: u64,
) -> Converted<LogRecord> {
    let mut out = Converted::default();
    for rl in req.resource_logs {
        let res_attrs = rl
            .resource
            .as_ref()
            .map(|r| &r.attributes[..])
            .unwrap_or(&[]);
        let res = resource_info(res_attrs);
        for sl in rl.scope_logs {
            let (scope_name, _) = scope_parts(sl.scope.as_ref());
            for log in sl.log_records {
                let ids = optional_id::<32>(&log.trace_id, "trace_id").and_then(|t| {
                    let s = optional_id::<16>(&log.span_id, "span_id")?;
                    Ok((t.map(String::from), s.map(String::from)))
                });
                let (trace_id, span_id) = match ids {
                    Ok(ids) => ids,
                    Err(e) => {
                        out.reject(1, || format!("log record: {e}"));
                        continue;
                    }
                };
                let mut info = record_info(&log.attributes);
                let body = log.body.as_ref().and_then(|b| match &b.value {
                    None => None,
                    Some(Value::StringValue(s)) => Some(s.clone()),
                    Some(_) => Some(jsonw::any_json(b)),
                });
                let time = [
                    log.time_unix_nano,
                    log.observed_time_unix_nano,
                    received_unix_nano,
                ]
                .into_iter()
                .find(|t| *t != 0)
                .unwrap_or(received_unix_nano);
                out.records.push(LogRecord {
                    time_unix_nano: time,
                    observed_time_unix_nano: if log.observed_time_unix_nano == 0 {
                        received_unix_nano
                    } else {
                        log.observed_time_unix_nano
                    },
                    trace_id,
                    span_id,
                    severity_number: log.severity_number,
                    severity_text: non_empty(&log.severity_text),
                    body,
                    service_name: res.service_name.to_string(),
                    service_version: res.service_version.as_deref().map(str::to_owned),
                    deployment_environment: res
                        .deployment_environment
                        .as_deref()
                        .map(str::to_owned),
                    scope_name: scope_name.clone(),
                    session_id: info.session(&res).as_deref().map(str::to_owned),
                    event_name: non_empty(&log.event_name).or(info.event_name.take()),
                    flags: log.flags,
                    attributes: jsonw::attrs_json(&log.attributes),
                    resource: res.json.clone(),
                    dropped_attributes_count: log.dropped_attributes_count,
                });
            }
        }
    }
    out
}

fn temporality(t: i32) -> Option<&'static str> {
    match t {
        1 => Some("delta"),
        2 => Some("cumulative"),
        _ => None,
    }
}

fn exemplars_json(ex: &[Exemplar]) -> Option<String> {
    if ex.is_empty() {
        return None;
    }
    let mut s = String::from("[");
    for (i, e) in ex.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str("{\"time_unix_nano\":");
        jsonw::push_u64(&mut s, e.time_unix_nano);
        s.push_str(",\"value\":");
        match e.value {
            Some(exemplar::Value::AsDouble(d)) => jsonw::push_f64(&mut s, d),
            Some(exemplar::Value::AsInt(i)) => jsonw::push_i64(&mut s, i),
            None => s.push_str("null"),
        }
        if !e.trace_id.is_empty() {
            s.push_str(",\"trace_id\":");
            jsonw::push_hex(&mut s, &e.trace_id);
        }
        if !e.span_id.is_empty() {
            s.push_str(",\"span_id\":");
            jsonw::push_hex(&mut s, &e.span_id);
        }
        s.push_str(",\"attributes\":");
        jsonw::push_attrs(&mut s, &e.filtered_attributes);
        s.push('}');
    }
    s.push(']');
    Some(s)
}

fn push_f64_list(s: &mut String, v: &[f64]) {
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        jsonw::push_f64(s, *x);
    }
    s.push(']');
}

fn push_u64_list(s: &mut String, v: &[u64]) {
    s.push('[');
    for (i, x) in v.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        jsonw::push_u64(s, *x);
    }
    s.push(']');
}

fn push_buckets(s: &mut String, b: Option<&Buckets>) {
    match b {
        None => s.push_str("null"),
        Some(b) => {
            s.push_str("{\"offset\":");
            jsonw::push_i64(s, b.offset.into());
            s.push_str(",\"counts\":");
            push_u64_list(s, &b.bucket_counts);
            s.push('}');
        }
    }
}

pub fn convert_metrics(req: ExportMetricsServiceRequest) -> Converted<MetricPoint> {
    let mut out = Converted::default();
    for rm in req.resource_metrics {
        let res_attrs = rm
            .resource
            .as_ref()
            .map(|r| &r.attributes[..])
            .unwrap_or(&[]);
        let res = resource_info(res_attrs);
        for sm in rm.scope_metrics {
            let (scope_name, _) = scope_parts(sm.scope.as_ref());
            for metric in sm.metrics {
                let base = MetricPoint {
                    name: metric.name.clone(),
                    description: non_empty(&metric.description),
                    unit: non_empty(&metric.unit),
                    service_name: res.service_name.to_string(),
                    scope_name: scope_name.clone(),
                    resource: res.json.clone(),
                    ..Default::default()
                };
                let points = match &metric.data {
                    None => 1,
                    Some(Data::Gauge(g)) => g.data_points.len(),
                    Some(Data::Sum(s)) => s.data_points.len(),
                    Some(Data::Histogram(h)) => h.data_points.len(),
                    Some(Data::ExponentialHistogram(h)) => h.data_points.len(),
                    Some(Data::Summary(s)) => s.data_points.len(),
                } as u64;
                if metric.name.is_empty() {
                    out.reject(points, || "metric with an empty name".to_string());
                    continue;
                }
                let Some(data) = metric.data else {
                    out.reject(1, || format!("metric {:?} has no data", metric.name));
                    continue;
                };
                match data {
                    Data::Gauge(g) => {
                        for p in g.data_points {
                            out.records
                                .push(number_point(&base, "gauge", None, None, p));
                        }
                    }
                    Data::Sum(sum) => {
                        let t = temporality(sum.aggregation_temporality);
                        for p in sum.data_points {
                            out.records.push(number_point(
                                &base,
                                "sum",
                                t,
                                Some(sum.is_monotonic),
                                p,
                            ));
                        }
                    }
                    Data::Histogram(h) => {
                        let t = temporality(h.aggregation_temporality);
                        for p in h.data_points {
                            let mut hist = String::from("{\"bounds\":");
                            push_f64_list(&mut hist, &p.explicit_bounds);
                            hist.push_str(",\"counts\":");
                            push_u64_list(&mut hist, &p.bucket_counts);
                            hist.push('}');
                            out.records.push(MetricPoint {
                                kind: "histogram",
                                temporality: t,
                                time_unix_nano: p.time_unix_nano,
                                start_time_unix_nano: p.start_time_unix_nano,
                                count: Some(p.count),
                                sum: p.sum,
                                min: p.min,
                                max: p.max,
                                histogram: Some(hist),
                                exemplars: exemplars_json(&p.exemplars),
                                attributes: jsonw::attrs_json(&p.attributes),
                                flags: p.flags,
                                ..base.clone()
                            });
                        }
                    }
                    Data::ExponentialHistogram(h) => {
                        let t = temporality(h.aggregation_temporality);
                        for p in h.data_points {
                            let mut hist = String::from("{\"scale\":");
                            jsonw::push_i64(&mut hist, p.scale.into());
                            hist.push_str(",\"zero_count\":");
                            jsonw::push_u64(&mut hist, p.zero_count);
                            hist.push_str(",\"zero_threshold\":");
                            jsonw::push_f64(&mut hist, p.zero_threshold);
                            hist.push_str(",\"positive\":");
                            push_buckets(&mut hist, p.positive.as_ref());
                            hist.push_str(",\"negative\":");
                            push_buckets(&mut hist, p.negative.as_ref());
                            hist.push('}');
                            out.records.push(MetricPoint {
                                kind: "exponential_histogram",
                                temporality: t,
                                time_unix_nano: p.time_unix_nano,
                                start_time_unix_nano: p.start_time_unix_nano,
                                count: Some(p.count),
                                sum: p.sum,
                                min: p.min,
                                max: p.max,
                                histogram: Some(hist),
                                exemplars: exemplars_json(&p.exemplars),
                                attributes: jsonw::attrs_json(&p.attributes),
                                flags: p.flags,
                                ..base.clone()
                            });
                        }
                    }
                    Data::Summary(sm) => {
                        for p in sm.data_points {
                            let mut q = String::from("{\"quantiles\":[");
                            for (i, v) in p.quantile_values.iter().enumerate() {
                                if i > 0 {
                                    q.push(',');
                                }
                                q.push_str("{\"quantile\":");
                                jsonw::push_f64(&mut q, v.quantile);
                                q.push_str(",\"value\":");
                                jsonw::push_f64(&mut q, v.value);
                                q.push('}');
                            }
                            q.push_str("]}");
                            out.records.push(MetricPoint {
                                kind: "summary",
                                time_unix_nano: p.time_unix_nano,
                                start_time_unix_nano: p.start_time_unix_nano,
                                count: Some(p.count),
                                sum: Some(p.sum),
                                histogram: Some(q),
                                attributes: jsonw::attrs_json(&p.attributes),
                                flags: p.flags,
                                ..base.clone()
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

fn number_point(
    base: &MetricPoint,
    kind: &'static str,
    temporality: Option<&'static str>,
    is_monotonic: Option<bool>,
    p: opentelemetry_proto::tonic::metrics::v1::NumberDataPoint,
) -> MetricPoint {
    let value = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => Some(d),
        Some(number_data_point::Value::AsInt(i)) => Some(i as f64),
        None => None,
    };
    MetricPoint {
        kind,
        temporality,
        is_monotonic,
        time_unix_nano: p.time_unix_nano,
        start_time_unix_nano: p.start_time_unix_nano,
        value,
        exemplars: exemplars_json(&p.exemplars),
        attributes: jsonw::attrs_json(&p.attributes),
        flags: p.flags,
        ..base.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_status_codes_are_named_by_their_otlp_numbers() {
        let kinds: Vec<&str> = (-1..=6).map(span_kind_name).collect();
        assert_eq!(
            kinds,
            [
                "UNSPECIFIED",
                "UNSPECIFIED",
                "INTERNAL",
                "SERVER",
                "CLIENT",
                "PRODUCER",
                "CONSUMER",
                "UNSPECIFIED"
            ]
        );
        let codes: Vec<&str> = (-1..=3).map(status_code_name).collect();
        assert_eq!(codes, ["UNSET", "UNSET", "OK", "ERROR", "UNSET"]);
        assert_eq!(span_kind_name(i32::MAX), "UNSPECIFIED");
    }
}
