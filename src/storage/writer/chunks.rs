//! Rows to DuckDB data chunks: the column layout of `span_rows`, `log_rows`
//! and `metric_rows`, and how a record fills its row. A row's resource is
//! stored as its id (see `derived::resources`); the `resource` text column
//! stays NULL, and so do a span's or log's version, environment and scope,
//! which its resource row holds.

use super::derived::resources::ResourceIds;
use crate::model::{LogRecord, MetricPoint, SpanRecord};
use crate::storage::duck::{ChunkBuilder, Col, RawConn};
use crate::storage::ids::{parse_span_id, parse_trace_id};
use crate::storage::DuckError;

/// Appends span rows (numbered from `first_seq`) in the open transaction of
/// `raw`; used by the benchmark to measure the raw Appender rate.
pub fn append_spans(raw: &RawConn, spans: &[SpanRecord], first_seq: u64) -> Result<(), DuckError> {
    let mut ids = ResourceIds::default();
    let mut app = raw.appender("span_rows")?;
    app.append_rows(SPAN_COLS, spans.iter().zip(first_seq..), |b, (s, seq)| {
        put_span(b, s, seq, &mut ids);
    })?;
    app.flush()
}

use Col::{Bigint, Boolean, Double, Integer, UBigint, UHugeint, UInteger, Varchar};

/// The `span_rows` columns in table order (migrations 1, 2, 16 and 17).
pub(super) const SPAN_COLS: &[Col] = &[
    UHugeint, UBigint, UBigint, // ids (see `storage::ids`)
    Varchar, Varchar, Varchar, // state, name, kind
    UBigint, UBigint, UBigint, // start, end, duration
    Varchar, Varchar, Varchar, Varchar, Varchar, Varchar, Varchar,
    Varchar, // status…session
    Varchar, Varchar, Varchar, Varchar, // gen_ai provider, operation, models
    Bigint, Bigint, Bigint, // tokens
    Varchar, Double, // finish reasons, cost
    Varchar, Varchar, Varchar, Varchar, // attributes, resource, events, links
    UInteger, UInteger, UInteger, // dropped counts
    UBigint,  // ingest_seq
    Bigint, Bigint, // gen_ai cache write, reasoning tokens (migration 2)
    Varchar, Varchar, Varchar, Varchar, // tool name, tool call id, agent, conversation
    Double, Varchar, Varchar, // time to first chunk, error.type, cost source
    UBigint, // resource_id (migration 16)
];

/// Writes the span's row, numbered `seq`.
pub(super) fn put_span(b: &mut ChunkBuilder<'_>, s: &SpanRecord, seq: u64, ids: &mut ResourceIds) {
    let g = &s.genai;
    // Ingest let through only well-formed ids (`ingest::convert`).
    let trace_id = parse_trace_id(&s.trace_id).unwrap_or(0);
    let span_id = parse_span_id(&s.span_id).unwrap_or(0);
    b.u128(trace_id);
    b.u64(span_id);
    b.opt_u64(s.parent_span_id.as_deref().and_then(parse_span_id));
    b.opt_str(s.trace_state.as_deref());
    b.str(&s.name);
    b.str(s.kind);
    b.u64(s.start_time_unix_nano);
    b.u64(s.end_time_unix_nano);
    b.u64(s.duration_ns);
    b.str(s.status_code);
    b.opt_str(s.status_message.as_deref());
    b.str(&s.service_name);
    // Version, environment and scope: stored with the resource (migration
    // 19, `derived::resources::Origin`).
    b.null();
    b.null();
    b.null();
    b.null();
    b.opt_str(s.session_id.as_deref());
    b.opt_str(g.provider.as_deref());
    b.opt_str(g.operation.as_deref());
    b.opt_str(g.request_model.as_deref());
    b.opt_str(g.response_model.as_deref());
    b.opt_i64(g.input_tokens);
    b.opt_i64(g.output_tokens);
    b.opt_i64(g.cache_read_tokens);
    b.opt_str(g.finish_reasons.as_deref());
    b.opt_f64(g.cost_usd);
    b.str(&s.attributes);
    b.null(); // resource: stored as resource_id

    // Most spans have neither: NULL costs DuckDB nothing per row, where
    // the text `[]` was hashed, measured and compressed (migration 18).
    b.opt_str(Some(s.events.as_str()).filter(|e| *e != "[]"));
    b.opt_str(Some(s.links.as_str()).filter(|l| *l != "[]"));
    b.u32(s.dropped_attributes_count);
    b.u32(s.dropped_events_count);
    b.u32(s.dropped_links_count);
    b.u64(seq); // ingest_seq, the last column of migration 1
    b.opt_i64(g.cache_write_tokens);
    b.opt_i64(g.reasoning_tokens);
    b.opt_str(g.tool_name.as_deref());
    b.opt_str(g.tool_call_id.as_deref());
    b.opt_str(g.agent_name.as_deref());
    b.opt_str(g.conversation_id.as_deref());
    b.opt_f64(g.time_to_first_chunk_ms);
    b.opt_str(g.error_type.as_deref());
    b.opt_str(g.cost_source);
    b.u64(ids.span(s));
}

/// The `log_rows` columns in table order (migrations 1 and 16).
pub(super) const LOG_COLS: &[Col] = &[
    UBigint, UBigint, Varchar, Varchar, Integer, Varchar, Varchar, // time…body
    Varchar, Varchar, Varchar, Varchar, Varchar, Varchar, // service…event_name
    UInteger, Varchar, Varchar, UInteger, UBigint, // flags…ingest_seq
    UBigint, // resource_id
];

pub(super) fn put_log(b: &mut ChunkBuilder<'_>, l: &LogRecord, seq: u64, ids: &mut ResourceIds) {
    b.u64(l.time_unix_nano);
    b.u64(l.observed_time_unix_nano);
    b.opt_str(l.trace_id.as_deref());
    b.opt_str(l.span_id.as_deref());
    b.i32(l.severity_number);
    b.opt_str(l.severity_text.as_deref());
    b.opt_str(l.body.as_deref());
    b.str(&l.service_name);
    // Version, environment and scope: with the resource (migration 20).
    b.null();
    b.null();
    b.null();
    b.opt_str(l.session_id.as_deref());
    b.opt_str(l.event_name.as_deref());
    b.u32(l.flags);
    b.str(&l.attributes);
    b.null(); // resource: stored as resource_id
    b.u32(l.dropped_attributes_count);
    b.u64(seq); // ingest_seq
    b.u64(ids.log(l));
}

/// The `metric_rows` columns in table order (migrations 1 and 16).
pub(super) const METRIC_COLS: &[Col] = &[
    UBigint, UBigint, Varchar, Varchar, Varchar, Varchar, Varchar,
    Boolean, // time…is_monotonic
    Double, UBigint, Double, Double, Double, Varchar, Varchar, // value…exemplars
    Varchar, Varchar, Varchar, Varchar, UInteger, UBigint, // service…ingest_seq
    UBigint, // resource_id
];

pub(super) fn put_metric(
    b: &mut ChunkBuilder<'_>,
    m: &MetricPoint,
    seq: u64,
    ids: &mut ResourceIds,
) {
    b.u64(m.time_unix_nano);
    b.u64(m.start_time_unix_nano);
    b.str(&m.name);
    b.opt_str(m.description.as_deref());
    b.opt_str(m.unit.as_deref());
    b.str(m.kind);
    b.opt_str(m.temporality);
    b.opt_bool(m.is_monotonic);
    b.opt_f64(m.value);
    b.opt_u64(m.count);
    b.opt_f64(m.sum);
    b.opt_f64(m.min);
    b.opt_f64(m.max);
    b.opt_str(m.histogram.as_deref());
    b.opt_str(m.exemplars.as_deref());
    b.str(&m.service_name);
    b.opt_str(m.scope_name.as_deref());
    b.str(&m.attributes);
    b.null(); // resource: stored as resource_id
    b.u32(m.flags);
    b.u64(seq); // ingest_seq
    b.u64(ids.id(&m.resource));
}
