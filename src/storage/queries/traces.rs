//! Spans and traces: flat span search, the trace list (one row per trace)
//! and one whole trace.
//!
//! Pages are ordered newest first by start time, ties broken by id, and the
//! cursor is that (time, id) pair, so rows sharing a start time are never
//! repeated or skipped between pages.

use duckdb::types::Value;
use duckdb::Row;

use super::logs::{log_row, LOG_COLS};
use super::Where;
use crate::model::query::{
    raw_json, rfc3339, Cursor, GenAiRow, Page, PageRequest, SpanFilter, SpanQuery, SpanRow,
    TraceQuery, TraceSummary, TraceTree,
};
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::writer::derived::trace_index;
use crate::storage::Conn;

pub(crate) const SPAN_COLS: &str = "trace_id, span_id, parent_span_id, name, kind, \
    service_name, service_version, deployment_environment, scope_name, \
    start_time_unix_nano, end_time_unix_nano, duration_ns, status_code, status_message, \
    session_id, gen_ai_provider, gen_ai_operation, gen_ai_request_model, \
    gen_ai_response_model, gen_ai_input_tokens, gen_ai_output_tokens, \
    gen_ai_cache_read_tokens, gen_ai_finish_reasons, gen_ai_cost_usd, \
    attributes, resource, events, links, ingest_seq";

pub(crate) fn span_row(r: &Row<'_>) -> duckdb::Result<SpanRow> {
    let start: u64 = r.get(9)?;
    let end: u64 = r.get(10)?;
    let duration: u64 = r.get(11)?;
    let gen_ai = GenAiRow {
        provider: r.get(15)?,
        operation: r.get(16)?,
        request_model: r.get(17)?,
        response_model: r.get(18)?,
        input_tokens: r.get(19)?,
        output_tokens: r.get(20)?,
        cache_read_tokens: r.get(21)?,
        finish_reasons: r.get::<_, Option<String>>(22)?.as_deref().map(raw_json),
        cost_usd: r.get(23)?,
    };
    let has_gen_ai = gen_ai.provider.is_some()
        || gen_ai.operation.is_some()
        || gen_ai.request_model.is_some()
        || gen_ai.response_model.is_some()
        || gen_ai.input_tokens.is_some()
        || gen_ai.output_tokens.is_some()
        || gen_ai.cost_usd.is_some();
    Ok(SpanRow {
        trace_id: r.get(0)?,
        span_id: r.get(1)?,
        parent_span_id: r.get(2)?,
        name: r.get(3)?,
        kind: r.get(4)?,
        service_name: r.get(5)?,
        service_version: r.get(6)?,
        deployment_environment: r.get(7)?,
        scope_name: r.get(8)?,
        start_time: rfc3339(start),
        start_time_unix_nano: start.to_string(),
        end_time_unix_nano: end.to_string(),
        duration_ms: duration as f64 / 1e6,
        status_code: r.get(12)?,
        status_message: r.get(13)?,
        session_id: r.get(14)?,
        gen_ai: has_gen_ai.then_some(gen_ai),
        attributes: raw_json(&r.get::<_, String>(24)?),
        resource: raw_json(&r.get::<_, String>(25)?),
        events: raw_json(&r.get::<_, String>(26)?),
        links: raw_json(&r.get::<_, String>(27)?),
        ingest_seq: r.get(28)?,
    })
}

/// Conditions on single spans. `per_span` adds the status and duration
/// filters, which the trace list applies to whole traces instead.
fn span_where(f: &SpanFilter, per_span: bool) -> Where {
    let mut w = Where::default();
    w.eq("service_name", f.service.as_ref());
    w.eq("name", f.name.as_ref());
    w.eq("kind", f.kind.as_ref());
    w.eq("session_id", f.session_id.as_ref());
    w.eq("trace_id", f.trace_id.as_ref());
    w.ge("start_time_unix_nano", f.since);
    w.lt("start_time_unix_nano", f.until);
    w.attrs(&f.attrs);
    if per_span {
        w.eq("status_code", f.status.as_ref());
        w.ge("duration_ns", f.min_duration_ns);
        w.le("duration_ns", f.max_duration_ns);
    }
    w
}

fn split_span_key(key: &str) -> Result<(String, String), QueryError> {
    key.split_once(':')
        .map(|(t, s)| (t.to_string(), s.to_string()))
        .ok_or_else(|| QueryError::Invalid("cursor: not a cursor of /spans".into()))
}

/// How far back the span and trace lists look first, widening until a page
/// is full: data arrives in time order, so DuckDB skips every row group
/// older than the window and the newest page costs the same on 1 M spans as
/// on 100 M.
const WINDOWS_NS: [u64; 6] = [
    60_000_000_000,
    600_000_000_000,
    3_600_000_000_000,
    21_600_000_000_000,
    86_400_000_000_000,
    604_800_000_000_000,
];

/// One page (plus the row that says another exists), newest first: `fetch`
/// is asked for the rows at or after a lower time bound, first through the
/// windows of [`WINDOWS_NS`] back from the cursor (or `until`, or now),
/// then with the filter's own `since` (or none).
fn newest_first<T>(
    f: &SpanFilter,
    page: &PageRequest,
    mut fetch: impl FnMut(Option<u64>) -> Result<Vec<T>, QueryError>,
) -> Result<Vec<T>, QueryError> {
    let anchor = page
        .cursor
        .as_ref()
        .map(|cur| cur.time)
        .or(f.until)
        .unwrap_or_else(crate::model::now_unix_nano);
    for window in WINDOWS_NS {
        let lower = anchor.saturating_sub(window);
        if f.since.is_some_and(|since| lower <= since) {
            break;
        }
        let rows = fetch(Some(lower))?;
        if rows.len() > page.limit {
            return Ok(rows);
        }
    }
    fetch(f.since)
}

pub fn query_spans(c: &Conn, q: &SpanQuery) -> Result<Page<SpanRow>, QueryError> {
    let rows = newest_first(&q.filter, &q.page, |lower| query_spans_since(c, q, lower))?;
    Ok(paginate(rows, q.page.limit, |s| Cursor {
        time: s.start_unix_nano(),
        key: format!("{}:{}", s.trace_id, s.span_id),
    }))
}

fn query_spans_since(
    c: &Conn,
    q: &SpanQuery,
    lower: Option<u64>,
) -> Result<Vec<SpanRow>, QueryError> {
    let mut w = span_where(
        &SpanFilter {
            since: lower,
            ..q.filter.clone()
        },
        true,
    );
    if let Some(cur) = &q.page.cursor {
        let (trace, span) = split_span_key(&cur.key)?;
        w.cond(
            "(start_time_unix_nano < ? OR (start_time_unix_nano = ? AND (trace_id < ? OR (trace_id = ? AND span_id < ?))))",
            [
                Value::UBigInt(cur.time),
                Value::UBigInt(cur.time),
                Value::Text(trace.clone()),
                Value::Text(trace),
                Value::Text(span),
            ],
        );
    }
    let sql = format!(
        "SELECT {SPAN_COLS} FROM spans{} ORDER BY start_time_unix_nano DESC, trace_id DESC, span_id DESC LIMIT {}",
        w.sql(),
        q.page.limit + 1
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the span search")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), span_row)
        .ctx("searching spans")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading spans")?;
    Ok(rows)
}

/// Cuts the extra row a query fetched to learn whether another page exists.
pub(crate) fn paginate<T>(
    mut rows: Vec<T>,
    limit: usize,
    cursor: impl Fn(&T) -> Cursor,
) -> Page<T> {
    let next_cursor = if rows.len() > limit {
        rows.truncate(limit);
        rows.last().map(|r| cursor(r).encode())
    } else {
        None
    };
    Page {
        items: rows,
        next_cursor,
    }
}

const SUMMARY_COLS: &str = "trace_id, \
    min(start_time_unix_nano) AS trace_start, \
    max(end_time_unix_nano) AS trace_end, \
    count(*) AS span_count, \
    count(*) FILTER (WHERE status_code = 'ERROR') AS error_count, \
    arg_min(name, (parent_span_id IS NOT NULL, start_time_unix_nano)) AS root_name, \
    arg_min(service_name, (parent_span_id IS NOT NULL, start_time_unix_nano)) AS root_service, \
    list(DISTINCT service_name ORDER BY service_name) AS services, \
    coalesce(sum(gen_ai_input_tokens), 0)::BIGINT AS input_tokens, \
    coalesce(sum(gen_ai_output_tokens), 0)::BIGINT AS output_tokens, \
    sum(gen_ai_cost_usd) AS cost";

fn summary_row(r: &Row<'_>) -> duckdb::Result<TraceSummary> {
    let start: u64 = r.get(1)?;
    let end: u64 = r.get(2)?;
    let services = super::texts(r.get(7)?);
    Ok(TraceSummary {
        trace_id: r.get(0)?,
        start_time: rfc3339(start),
        start_time_unix_nano: start.to_string(),
        duration_ms: end.saturating_sub(start) as f64 / 1e6,
        span_count: r.get(3)?,
        error_count: r.get(4)?,
        root_name: r.get(5)?,
        root_service: r.get(6)?,
        services,
        gen_ai_input_tokens: r.get(8)?,
        gen_ai_output_tokens: r.get(9)?,
        gen_ai_cost_usd: r.get(10)?,
    })
}

/// How much earlier than a window's start the aggregation also reads, so a
/// trace that began before the window (a span within this much earlier) is
/// recognised and left out rather than shown without its first spans. A
/// trace with a silence longer than this just before the window is listed
/// from its first span inside it. Every window reads this much extra data,
/// so it is the main cost of the newest page.
const EARLIER_SPANS_NS: u64 = 120_000_000_000;

pub fn list_traces(c: &Conn, q: &TraceQuery) -> Result<Page<TraceSummary>, QueryError> {
    let rows = newest_first(&q.filter, &q.page, |lower| list_traces_since(c, q, lower))?;
    Ok(paginate(rows, q.page.limit, |t| Cursor {
        time: t.start_time_unix_nano.parse().unwrap_or(0),
        key: t.trace_id.clone(),
    }))
}

/// One page (plus one row) of traces starting at or after `lower`.
fn list_traces_since(
    c: &Conn,
    q: &TraceQuery,
    lower: Option<u64>,
) -> Result<Vec<TraceSummary>, QueryError> {
    let f = &q.filter;
    // A matching span belongs to a trace that started at or after `lower`,
    // so it starts at or after `lower` too.
    let mut hits = span_where(
        &SpanFilter {
            since: None,
            ..f.clone()
        },
        false,
    );
    let mut scope = Where::default();
    if !hits.is_empty() {
        hits.ge("start_time_unix_nano", lower);
        scope.cond(
            format!("trace_id IN (SELECT trace_id FROM spans{})", hits.sql()),
            hits.params.clone(),
        );
    }
    scope.ge(
        "start_time_unix_nano",
        lower.map(|l| l.saturating_sub(EARLIER_SPANS_NS)),
    );

    let mut having = Where::default();
    having.ge("min(start_time_unix_nano)", lower);
    having.lt("min(start_time_unix_nano)", f.until);
    match f.status.as_deref() {
        Some("ERROR") => having.cond("count(*) FILTER (WHERE status_code = 'ERROR') > 0", []),
        Some("OK") | Some("UNSET") => {
            having.cond("count(*) FILTER (WHERE status_code = 'ERROR') = 0", [])
        }
        _ => {}
    }
    having.ge(
        "max(end_time_unix_nano) - min(start_time_unix_nano)",
        f.min_duration_ns,
    );
    having.le(
        "max(end_time_unix_nano) - min(start_time_unix_nano)",
        f.max_duration_ns,
    );
    if let Some(cur) = &q.page.cursor {
        having.cond(
            "(min(start_time_unix_nano) < ? OR (min(start_time_unix_nano) = ? AND trace_id < ?))",
            [
                Value::UBigInt(cur.time),
                Value::UBigInt(cur.time),
                Value::Text(cur.key.clone()),
            ],
        );
    }
    let sql = format!(
        "SELECT {SUMMARY_COLS} FROM spans{} GROUP BY trace_id HAVING {} \
         ORDER BY trace_start DESC, trace_id DESC LIMIT {}",
        scope.sql(),
        having.joined(),
        q.page.limit + 1
    );
    let params: Vec<Value> = scope.params.into_iter().chain(having.params).collect();
    let mut stmt = c.prepare(&sql).ctx("preparing the trace list")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(params.iter()), summary_row)
        .ctx("listing traces")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the trace list")?;
    Ok(rows)
}

/// The whole trace, or `None` when no span or log carries the id.
///
/// The trace lookup (`trace_index`) gives the trace's time range, so spans
/// and logs are read only from the row groups that can hold it; an id the
/// lookup does not know is searched in full (see `storage::writer::derived::trace_index`).
pub fn get_trace(c: &Conn, trace_id: &str) -> Result<Option<TraceTree>, QueryError> {
    let (lo, hi) = match trace_index::trace_key(trace_id) {
        Some(key) => c
            .prepare_cached(
                "SELECT min(first_time_unix_nano), max(last_time_unix_nano)
                 FROM trace_index WHERE trace_key = ?",
            )
            .and_then(|mut stmt| {
                stmt.query_row([key], |r| {
                    Ok((r.get::<_, Option<u64>>(0)?, r.get::<_, Option<u64>>(1)?))
                })
            })
            .ctx("looking the trace up")?,
        None => (None, None),
    };
    let (lo, hi) = match (lo, hi) {
        (Some(lo), Some(hi)) => (lo, hi),
        _ => (0, u64::MAX),
    };
    let mut stmt = c
        .prepare_cached(&format!(
            "SELECT {SPAN_COLS} FROM spans
             WHERE trace_id = ? AND start_time_unix_nano BETWEEN ? AND ?"
        ))
        .ctx("preparing the trace lookup")?;
    let spans = stmt
        .query_map(duckdb::params![trace_id, lo, hi], span_row)
        .ctx("reading the trace")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the trace's spans")?;
    let mut stmt = c
        .prepare_cached(&format!(
            "SELECT {LOG_COLS} FROM logs
             WHERE trace_id = ? AND time_unix_nano BETWEEN ? AND ?
             ORDER BY time_unix_nano, ingest_seq"
        ))
        .ctx("preparing the trace's logs")?;
    let logs = stmt
        .query_map(duckdb::params![trace_id, lo, hi], log_row)
        .ctx("reading the trace's logs")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the trace's logs")?;
    if spans.is_empty() && logs.is_empty() {
        return Ok(None);
    }
    let summary = summarize(trace_id, &spans);
    Ok(Some(TraceTree::build(summary, spans, logs)))
}

fn summarize(trace_id: &str, spans: &[SpanRow]) -> TraceSummary {
    let start = spans
        .iter()
        .map(SpanRow::start_unix_nano)
        .min()
        .unwrap_or(0);
    let end = spans
        .iter()
        .map(|s| s.end_time_unix_nano.parse::<u64>().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let root = spans
        .iter()
        .min_by_key(|s| (s.parent_span_id.is_some(), s.start_unix_nano()));
    let mut services: Vec<String> = spans.iter().map(|s| s.service_name.clone()).collect();
    services.sort();
    services.dedup();
    let sum = |f: fn(&GenAiRow) -> Option<i64>| -> i64 {
        spans
            .iter()
            .filter_map(|s| s.gen_ai.as_ref().and_then(f))
            .sum()
    };
    let costs: Vec<f64> = spans
        .iter()
        .filter_map(|s| s.gen_ai.as_ref().and_then(|g| g.cost_usd))
        .collect();
    TraceSummary {
        trace_id: trace_id.to_string(),
        root_name: root.map(|s| s.name.clone()).unwrap_or_default(),
        root_service: root.map(|s| s.service_name.clone()).unwrap_or_default(),
        services,
        start_time: rfc3339(start),
        start_time_unix_nano: start.to_string(),
        duration_ms: end.saturating_sub(start) as f64 / 1e6,
        span_count: spans.len() as u64,
        error_count: spans.iter().filter(|s| s.status_code == "ERROR").count() as u64,
        gen_ai_input_tokens: sum(|g| g.input_tokens),
        gen_ai_output_tokens: sum(|g| g.output_tokens),
        gen_ai_cost_usd: (!costs.is_empty()).then(|| costs.iter().sum()),
    }
}
