//! Spans and traces: flat span search, the trace list (one row per trace)
//! and one whole trace.
//!
//! Pages are ordered newest first by start time, ties broken by id, and the
//! cursor is that (time, id) pair, so rows sharing a start time are never
//! repeated or skipped between pages.

use duckdb::types::Value;
use duckdb::Row;

use super::logs::{log_row, LOGS_WITH_RESOURCES, LOG_COLS_RESOLVED};
use super::Where;
use crate::model::query::{
    raw_json, rfc3339, Cursor, GenAiRow, Page, PageRequest, SpanFilter, SpanQuery, SpanRow,
    TraceQuery, TraceSummary, TraceTree,
};
use crate::storage::archive::views::ARCHIVED_SPANS;
use crate::storage::ids;
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::writer::derived::resources::SPANS_WITH_RESOURCES;
use crate::storage::writer::derived::trace_index;
use crate::storage::Conn;

/// The span columns `span_row` reads, with the given expressions for the
/// columns a span may take from its resource row.
macro_rules! span_cols {
    ($version:expr, $environment:expr, $scope_name:expr, $resource:expr) => {
        concat!(
            "trace_id, span_id, parent_span_id, name, kind, service_name, ",
            $version,
            ", ",
            $environment,
            ", ",
            $scope_name,
            ", start_time_unix_nano, end_time_unix_nano, duration_ns, status_code, status_message, \
            session_id, gen_ai_provider, gen_ai_operation, gen_ai_request_model, \
            gen_ai_response_model, gen_ai_input_tokens, gen_ai_output_tokens, \
            gen_ai_cache_read_tokens, gen_ai_finish_reasons, gen_ai_cost_usd, \
            attributes, ",
            $resource,
            ", events, links, ingest_seq"
        )
    };
}

/// As stored in `span_rows` (the resource text only on rows from before
/// migration 16, version, environment and scope before migration 19).
const SPAN_COLS: &str = span_cols!(
    "service_version",
    "deployment_environment",
    "scope_name",
    "resource"
);

/// Over [`SPANS_WITH_RESOURCES`]: every row's values, wherever stored.
pub(crate) const SPAN_COLS_RESOLVED: &str = span_cols!(
    "coalesce(span_rows.service_version, resources.service_version)",
    "coalesce(span_rows.deployment_environment, resources.deployment_environment)",
    "coalesce(span_rows.scope_name, resources.scope_name)",
    "coalesce(span_rows.resource, resources.resource)"
);

/// `SPAN_COLS_RESOLVED` of the first `limit` rows of `span_rows` matching
/// `where_sql` in `order`. The page is cut first and the resources joined
/// to its rows only: joined over the filtered table, DuckDB gave up its
/// top-N path (a service's errors at 10 M spans: 440 ms against 16).
pub(crate) fn span_page_sql(where_sql: &str, order: &str, limit: usize) -> String {
    format!(
        "SELECT {SPAN_COLS_RESOLVED} FROM (SELECT {SPAN_COLS}, resource_id FROM span_rows_all span_rows{where_sql} \
         ORDER BY {order} LIMIT {limit}) span_rows \
         LEFT JOIN resources ON resources.resource_id = span_rows.resource_id ORDER BY {order}"
    )
}

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
    Ok(SpanRow {
        trace_id: ids::trace_id_at(r, 0)?,
        span_id: ids::span_id_at(r, 1)?,
        parent_span_id: ids::parent_id_at(r, 2)?,
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
        gen_ai: Some(gen_ai).filter(GenAiRow::is_shown),
        attributes: raw_json(&r.get::<_, String>(24)?),
        resource: raw_json(&r.get::<_, String>(25)?),
        // Empty lists are stored as NULL (migration 18).
        events: raw_json(r.get::<_, Option<String>>(26)?.as_deref().unwrap_or("[]")),
        links: raw_json(r.get::<_, Option<String>>(27)?.as_deref().unwrap_or("[]")),
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
    w.trace_id(f.trace_id.as_ref());
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

/// A span cursor's key, `trace_id:span_id`, as `span_rows` parameters.
pub(crate) fn span_cursor_key(key: &str, of: &str) -> Result<(Value, Value), QueryError> {
    key.split_once(':')
        .and_then(|(t, s)| Some((ids::trace_id_value(t)?, ids::span_id_value(s)?)))
        .ok_or_else(|| QueryError::Invalid(format!("cursor: not a cursor of {of}")))
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
        let (trace, span) = span_cursor_key(&cur.key, "/spans")?;
        w.cond(
            "(start_time_unix_nano < ? OR (start_time_unix_nano = ? AND (trace_id < ? OR (trace_id = ? AND span_id < ?))))",
            [
                Value::UBigInt(cur.time),
                Value::UBigInt(cur.time),
                trace.clone(),
                trace,
                span,
            ],
        );
    }
    let sql = span_page_sql(
        &w.sql(),
        "start_time_unix_nano DESC, trace_id DESC, span_id DESC",
        q.page.limit + 1,
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
        read: None,
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
        trace_id: ids::trace_id_at(r, 0)?,
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
    let rows = match list_recent_traces(c, q)? {
        Some(rows) => rows,
        None => newest_first(&q.filter, &q.page, |lower| list_traces_since(c, q, lower))?,
    };
    Ok(paginate(rows, q.page.limit, |t| Cursor {
        time: t.start_time_unix_nano.parse().unwrap_or(0),
        key: t.trace_id.clone(),
    }))
}

/// How far back the trace list's fast path looks first. It reads only the
/// trace lookup (one narrow row per trace and commit), so it can start
/// small: at 100k spans/s a second holds thousands of traces.
const RECENT_WINDOWS_NS: [u64; 8] = [
    1_000_000_000,
    10_000_000_000,
    60_000_000_000,
    600_000_000_000,
    3_600_000_000_000,
    21_600_000_000_000,
    86_400_000_000_000,
    604_800_000_000_000,
];

/// Whether `q` is the plain list, newest first over a time range with no
/// other filter: the list the trace lookup can answer.
fn is_plain(q: &TraceQuery) -> bool {
    let f = &q.filter;
    f.service.is_none()
        && f.name.is_none()
        && f.status.is_none()
        && f.kind.is_none()
        && f.min_duration_ns.is_none()
        && f.max_duration_ns.is_none()
        && f.attrs.is_empty()
        && f.session_id.is_none()
        && f.trace_id.is_none()
}

/// The plain list without grouping every recent span: at the density real
/// ingest produces, a minute holds millions of spans, and grouping them
/// cost 0.2–0.5 s per page. The newest traces are picked by where their
/// spans start in the trace lookup (widening through
/// [`RECENT_WINDOWS_NS`]), then only their spans are read and summed.
///
/// `None` when the lookup cannot answer exactly (too few traces even at the
/// widest window or the filter's `since`, rows written before the lookup
/// recorded span starts, ties on the cursor's time): the caller reads spans.
fn list_recent_traces(c: &Conn, q: &TraceQuery) -> Result<Option<Vec<TraceSummary>>, QueryError> {
    if !is_plain(q) {
        return Ok(None);
    }
    let f = &q.filter;
    let limit = q.page.limit;
    let anchor = q
        .page
        .cursor
        .as_ref()
        .map(|cur| cur.time)
        .or(f.until)
        .unwrap_or_else(crate::model::now_unix_nano);
    for window in RECENT_WINDOWS_NS {
        let mut lower = anchor.saturating_sub(window);
        let last = f.since.is_some_and(|since| lower <= since);
        if let Some(since) = f.since {
            lower = lower.max(since);
        }
        let keys = newest_trace_keys(c, q, lower)?;
        if keys.len() > limit {
            let rows = summaries_of(c, q, lower, &keys)?;
            return Ok((rows.len() > limit).then_some(rows));
        }
        if last {
            break;
        }
    }
    Ok(None)
}

/// Trace keys (with where their spans start) of at least `limit + 1` of the
/// newest traces that start at or after `lower`, when the window has that
/// many; fewer otherwise. Twice the page is picked, ties included, and the
/// traces that have spans from before `lower` (within the same look-back as
/// the span path) are dropped, so what remains holds the true page.
fn newest_trace_keys(c: &Conn, q: &TraceQuery, lower: u64) -> Result<Vec<(u64, u64)>, QueryError> {
    let mut keys = match newest_by_rows(c, q, lower)? {
        Some(keys) => keys,
        None => newest_by_grouping(c, q, lower)?,
    };
    if keys.len() <= q.page.limit {
        return Ok(keys);
    }
    let list = key_list(&keys);
    let mut stmt = c
        .prepare(&format!(
            "SELECT DISTINCT trace_key FROM trace_index
             WHERE trace_key IN ({list})
               AND first_span_unix_nano < ? AND first_span_unix_nano >= ?"
        ))
        .ctx("preparing the earlier-spans check")?;
    let earlier = stmt
        .query_map(
            duckdb::params![lower, lower.saturating_sub(EARLIER_SPANS_NS)],
            |r| r.get::<_, u64>(0),
        )
        .ctx("checking for earlier spans")?
        .collect::<Result<std::collections::HashSet<u64>, _>>()
        .ctx("reading the earlier-spans check")?;
    keys.retain(|(k, _)| !earlier.contains(k));
    Ok(keys)
}

/// How many of the trace lookup's newest rows [`newest_by_rows`] starts
/// from, per trace it must find: a trace exported over several commits has
/// several rows.
const ROWS_PER_TRACE: usize = 2;

/// The `2 × limit + 2` newest traces of the window and the ties of the
/// last (what [`newest_by_grouping`] picks), found without grouping every
/// row of the window: in a dense window (a burst of ingest, hundreds of
/// thousands of traces) that grouping cost 0.3 s. The newest rows give a
/// start `c` above which enough traces begin; every trace whose first span
/// in the window is at or after `c` has a row there, so only those traces'
/// rows are grouped, over the whole window (a trace with an older row
/// starts before `c` and is left out). `None` when the window holds too few
/// rows or too few traces start after `c`: then the grouping is cheap or
/// needed.
fn newest_by_rows(
    c: &Conn,
    q: &TraceQuery,
    lower: u64,
) -> Result<Option<Vec<(u64, u64)>>, QueryError> {
    let want = 2 * q.page.limit + 2;
    let mut window = Where::default();
    window.ge("first_span_unix_nano", Some(lower));
    window.lt("first_span_unix_nano", q.filter.until);
    // Rows after the cursor cannot hold the start of a trace before it.
    let mut recent = Where::default();
    recent.ge("first_span_unix_nano", Some(lower));
    recent.lt("first_span_unix_nano", q.filter.until);
    recent.le(
        "first_span_unix_nano",
        q.page.cursor.as_ref().map(|cur| cur.time),
    );
    let mut stmt = c
        .prepare(&format!(
            "SELECT first_span_unix_nano FROM trace_index{}
             ORDER BY first_span_unix_nano DESC LIMIT 1 OFFSET {}",
            recent.sql(),
            want * ROWS_PER_TRACE - 1
        ))
        .ctx("preparing the newest rows")?;
    let cut: Option<u64> = stmt
        .query_map(duckdb::params_from_iter(recent.params.iter()), |r| {
            r.get::<_, u64>(0)
        })
        .ctx("finding the newest rows")?
        .next()
        .transpose()
        .ctx("reading the newest rows")?;
    let Some(cut) = cut else {
        return Ok(None);
    };
    let mut having = Where::default();
    having.ge("s", Some(cut));
    having.le("s", q.page.cursor.as_ref().map(|cur| cur.time));
    let sql = format!(
        "SELECT trace_key, min(first_span_unix_nano) AS s FROM trace_index{}
           AND trace_key IN (SELECT trace_key FROM trace_index{} AND first_span_unix_nano >= ?)
         GROUP BY trace_key HAVING {}",
        window.sql(),
        recent.sql(),
        having.joined()
    );
    let params: Vec<Value> = window
        .params
        .into_iter()
        .chain(recent.params)
        .chain([Value::UBigInt(cut)])
        .chain(having.params)
        .collect();
    let mut stmt = c.prepare(&sql).ctx("preparing the newest traces")?;
    let mut keys = stmt
        .query_map(duckdb::params_from_iter(params.iter()), |r| {
            Ok((r.get::<_, u64>(0)?, r.get::<_, u64>(1)?))
        })
        .ctx("finding the newest traces")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the newest traces")?;
    if keys.len() < want {
        return Ok(None);
    }
    keys.sort_unstable_by_key(|(_, s)| std::cmp::Reverse(*s));
    let last = keys[want - 1].1;
    keys.retain(|(_, s)| *s >= last);
    Ok(Some(keys))
}

/// [`newest_by_rows`] by grouping every row of the window by trace.
fn newest_by_grouping(c: &Conn, q: &TraceQuery, lower: u64) -> Result<Vec<(u64, u64)>, QueryError> {
    let f = &q.filter;
    let mut rows = Where::default();
    rows.ge("first_span_unix_nano", Some(lower));
    rows.lt("first_span_unix_nano", f.until);
    let mut having = Where::default();
    if let Some(cur) = &q.page.cursor {
        // The exact (time, id) comparison needs the id: done on the spans.
        having.le("s", Some(cur.time));
    }
    let having_sql = if having.is_empty() {
        String::new()
    } else {
        format!(" HAVING {}", having.joined())
    };
    let sql = format!(
        "WITH firsts AS (
            SELECT trace_key, min(first_span_unix_nano) AS s FROM trace_index{}
            GROUP BY trace_key{having_sql}
        ), cut AS (
            SELECT s FROM firsts ORDER BY s DESC LIMIT 1 OFFSET {}
        )
        SELECT trace_key, s FROM firsts
        WHERE s >= coalesce((SELECT s FROM cut), 0)",
        rows.sql(),
        2 * q.page.limit + 1
    );
    let params: Vec<Value> = rows.params.into_iter().chain(having.params).collect();
    let mut stmt = c.prepare(&sql).ctx("preparing the newest traces")?;
    let keys = stmt
        .query_map(duckdb::params_from_iter(params.iter()), |r| {
            Ok((r.get::<_, u64>(0)?, r.get::<_, u64>(1)?))
        })
        .ctx("finding the newest traces")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the newest traces")?;
    Ok(keys)
}

fn key_list(keys: &[(u64, u64)]) -> String {
    keys.iter()
        .map(|(k, _)| k.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The summaries of the traces `keys` names, as the span path computes
/// them (same columns, same conditions), reading only spans from the
/// oldest of their starts on.
fn summaries_of(
    c: &Conn,
    q: &TraceQuery,
    lower: u64,
    keys: &[(u64, u64)],
) -> Result<Vec<TraceSummary>, QueryError> {
    let from = keys.iter().map(|(_, s)| *s).min().unwrap_or(lower);
    let having = trace_having(q, Some(lower))?;
    let sql = format!(
        "SELECT {SUMMARY_COLS} FROM span_rows_all span_rows
         WHERE start_time_unix_nano >= {from} AND {} IN ({})
         GROUP BY trace_id HAVING {}
         ORDER BY trace_start DESC, trace_id DESC LIMIT {}",
        trace_index::SPAN_ROWS_KEY_SQL,
        key_list(keys),
        having.joined(),
        q.page.limit + 1
    );
    summaries(c, &sql, &having.params)
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
            format!(
                "trace_id IN (SELECT trace_id FROM span_rows_all span_rows{})",
                hits.sql()
            ),
            hits.params.clone(),
        );
    }
    scope.ge(
        "start_time_unix_nano",
        lower.map(|l| l.saturating_sub(EARLIER_SPANS_NS)),
    );

    let having = trace_having(q, lower)?;
    let sql = format!(
        "SELECT {SUMMARY_COLS} FROM span_rows_all span_rows{} GROUP BY trace_id HAVING {} \
         ORDER BY trace_start DESC, trace_id DESC LIMIT {}",
        scope.sql(),
        having.joined(),
        q.page.limit + 1
    );
    let params: Vec<Value> = scope.params.into_iter().chain(having.params).collect();
    summaries(c, &sql, &params)
}

/// The conditions on a trace's group of spans: its start within the
/// window, the filter's status and durations, and past the cursor.
fn trace_having(q: &TraceQuery, lower: Option<u64>) -> Result<Where, QueryError> {
    let f = &q.filter;
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
        let trace = ids::trace_id_value(&cur.key)
            .ok_or_else(|| QueryError::Invalid("cursor: not a cursor of /traces".into()))?;
        having.cond(
            "(min(start_time_unix_nano) < ? OR (min(start_time_unix_nano) = ? AND trace_id < ?))",
            [Value::UBigInt(cur.time), Value::UBigInt(cur.time), trace],
        );
    }
    Ok(having)
}

fn summaries(c: &Conn, sql: &str, params: &[Value]) -> Result<Vec<TraceSummary>, QueryError> {
    let mut stmt = c.prepare(sql).ctx("preparing the trace list")?;
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
    // The lookup covers this node's spans. An id it lacks is another
    // node's (in the archive they share) or none at all: the archived
    // files are searched by the hex id, which their bloom filters answer
    // for most row groups without reading them, and otherwise only the
    // database file's own table is read.
    // The logs are read over the same range: logs may carry an id no span
    // has, and with no span range known they are searched in both tiers
    // (their files keep ids as text, so the filter reaches the Parquet
    // reader there too).
    let key = ids::parse_trace_id(trace_id);
    let (spans_from, lo, hi) = match (lo, hi, &key) {
        (Some(lo), Some(hi), _) => (SPANS_WITH_RESOURCES, lo, hi),
        (_, _, Some(_)) => match archived_range(c, trace_id)? {
            Some((lo, hi)) => (SPANS_WITH_RESOURCES, lo, hi),
            None => (HOT_SPANS_WITH_RESOURCES, 0, u64::MAX),
        },
        _ => (SPANS_WITH_RESOURCES, 0, u64::MAX),
    };
    // Spans carry only well-formed ids; logs may carry others.
    let spans = match key {
        Some(key) => c
            .prepare_cached(&format!(
                "SELECT {SPAN_COLS_RESOLVED} FROM {spans_from}
                 WHERE trace_id = ? AND start_time_unix_nano BETWEEN ? AND ?"
            ))
            .ctx("preparing the trace lookup")?
            .query_map(duckdb::params![key, lo, hi], span_row)
            .ctx("reading the trace")?
            .collect::<Result<Vec<_>, _>>()
            .ctx("reading the trace's spans")?,
        None => Vec::new(),
    };
    let mut stmt = c
        .prepare_cached(&format!(
            "SELECT {LOG_COLS_RESOLVED} FROM {LOGS_WITH_RESOURCES}
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

/// The database file's spans alone, as [`SPANS_WITH_RESOURCES`] names them.
const HOT_SPANS_WITH_RESOURCES: &str =
    "span_rows LEFT JOIN resources ON resources.resource_id = span_rows.resource_id";

/// The time range of the trace's spans in the archived files, searched by
/// its hex id.
fn archived_range(c: &Conn, trace_id: &str) -> Result<Option<(u64, u64)>, QueryError> {
    c.prepare_cached(&format!(
        "SELECT min(start_time_unix_nano), max(start_time_unix_nano) FROM {ARCHIVED_SPANS}
         WHERE trace_id = ?"
    ))
    .and_then(|mut stmt| {
        stmt.query_row([trace_id.to_ascii_lowercase()], |r| {
            Ok(
                match (r.get::<_, Option<u64>>(0)?, r.get::<_, Option<u64>>(1)?) {
                    (Some(lo), Some(hi)) => Some((lo, hi)),
                    _ => None,
                },
            )
        })
    })
    .ctx("searching the archive for the trace")
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

#[cfg(test)]
mod tests {
    //! The trace list's fast path against the span path it replaces: the
    //! same pages, cursor by cursor, over traces written through the real
    //! writer (so the lookup is what ingest leaves).

    use std::sync::Arc;

    use super::*;
    use crate::model::{Batch, LogRecord, SpanRecord};
    use crate::storage::writer::{Writer, WriterConfig};
    use crate::storage::{open, StorageOptions};
    use crate::stream::Hub;

    const MS: u64 = 1_000_000;
    const SEC: u64 = 1_000_000_000;

    fn span(trace: u64, span: u64, parent: Option<u64>, start: u64, len: u64) -> SpanRecord {
        SpanRecord {
            trace_id: format!("{trace:032x}").into(),
            span_id: format!("{span:016x}").into(),
            parent_span_id: parent.map(|p| format!("{p:016x}").into()),
            name: format!("op-{}", span % 3),
            kind: "INTERNAL",
            status_code: if span % 7 == 0 { "ERROR" } else { "UNSET" },
            start_time_unix_nano: start,
            end_time_unix_nano: start + len,
            duration_ns: len,
            service_name: format!("svc-{}", trace % 3).into(),
            attributes: "{}".into(),
            resource: "{}".into(),
            events: "[]".into(),
            links: "[]".into(),
            ..Default::default()
        }
    }

    /// Every page of the list both ways, following cursors.
    fn pages(c: &Conn, q: &TraceQuery, fast: bool) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let mut q = q.clone();
        loop {
            let rows = if fast {
                match list_recent_traces(c, &q).unwrap() {
                    Some(rows) => rows,
                    None => {
                        newest_first(&q.filter, &q.page, |l| list_traces_since(c, &q, l)).unwrap()
                    }
                }
            } else {
                newest_first(&q.filter, &q.page, |l| list_traces_since(c, &q, l)).unwrap()
            };
            let page = paginate(rows, q.page.limit, |t| Cursor {
                time: t.start_time_unix_nano.parse().unwrap_or(0),
                key: t.trace_id.clone(),
            });
            out.push(
                page.items
                    .iter()
                    .map(|t| {
                        format!(
                            "{} {} {} {} {:?}",
                            t.trace_id,
                            t.start_time_unix_nano,
                            t.span_count,
                            t.error_count,
                            t.root_name
                        )
                    })
                    .collect(),
            );
            match page.next_cursor {
                Some(cur) => q.page.cursor = Some(Cursor::decode(&cur).unwrap()),
                None => return out,
            }
            assert!(out.len() < 2000, "runaway paging");
        }
    }

    /// The newest traces from the lookup's newest rows against grouping
    /// the whole window, on a dense burst where some traces were exported
    /// over two commits seconds apart (so a trace's newest row can be among
    /// the newest rows while its start is older), with ties on start times.
    /// An in-memory database with its writer, as the server runs them.
    fn in_memory_writer() -> (crate::storage::Conn, Writer) {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let conn = db.connect().unwrap();
        let writer =
            Writer::start(db, Arc::new(Hub::new(16)), WriterConfig::default(), false).unwrap();
        (conn, writer)
    }

    /// Submits `batch` and waits for its commit.
    fn commit(writer: &Writer, batch: Batch) {
        let rx = writer.handle().submit(batch).unwrap();
        rx.blocking_recv().unwrap().unwrap();
    }

    #[test]
    fn the_newest_rows_pick_the_traces_grouping_picks() {
        let (conn, writer) = in_memory_writer();
        let write = |batch: Batch| commit(&writer, batch);
        let now = crate::model::now_unix_nano();
        let t0 = now - 60 * SEC;
        let mut id = 1u64;
        let mut batch = Batch::default();
        let mut late = Batch::default();
        for i in 0..800u64 {
            // Two traces per start time, 50 ms apart.
            let start = t0 + (i / 2) * 50 * MS;
            let trace = 5000 + i;
            batch.spans.push(span(trace, id, None, start, 20 * MS));
            let child = span(trace, id + 1, Some(id), start + 3 * SEC, MS);
            if i % 7 == 3 {
                late.spans.push(child);
            } else {
                batch.spans.push(child);
            }
            id += 2;
            if i % 40 == 39 {
                write(std::mem::take(&mut batch));
                // Exported a few seconds later: its rows come after newer
                // traces' rows.
                if i % 80 == 79 {
                    write(std::mem::take(&mut late));
                }
            }
        }
        write(std::mem::take(&mut late));
        let mut answered = 0;
        for limit in [1, 5, 50] {
            for lower in [t0, t0 + 10 * SEC, t0 + 35 * SEC] {
                for cursor in [None, Some(t0 + 30 * SEC), Some(t0 + 17 * SEC + 25 * MS)] {
                    for until in [None, Some(t0 + 38 * SEC)] {
                        let q = TraceQuery {
                            filter: SpanFilter {
                                until,
                                ..SpanFilter::default()
                            },
                            page: PageRequest {
                                limit,
                                cursor: cursor.map(|time| Cursor {
                                    time,
                                    key: String::new(),
                                }),
                            },
                        };
                        let mut grouped = newest_by_grouping(&conn, &q, lower).unwrap();
                        grouped.sort_unstable();
                        let case = format!(
                            "limit {limit} lower {} cursor {cursor:?} until {until:?}",
                            lower - t0
                        );
                        if let Some(mut rows) = newest_by_rows(&conn, &q, lower).unwrap() {
                            rows.sort_unstable();
                            assert_eq!(rows, grouped, "{case}");
                            answered += 1;
                        }
                    }
                }
            }
        }
        assert!(answered >= 15, "the newest rows answered {answered} cases");
    }

    #[test]
    fn the_fast_list_pages_like_the_span_path() {
        let (conn, writer) = in_memory_writer();
        let write = |batch: Batch| commit(&writer, batch);
        let now = crate::model::now_unix_nano();
        let t0 = now - 20 * 60 * SEC;
        let mut id = 1u64;
        // Dense: 600 traces over 20 minutes, some sharing a start time to
        // the nanosecond (ties across page boundaries), each exported in
        // one commit.
        let mut batch = Batch::default();
        for i in 0..600u64 {
            let start = t0 + (i / 3) * 2 * SEC;
            let trace = 1000 + i;
            batch.spans.push(span(trace, id, None, start, 50 * MS));
            for k in 1..4 {
                batch
                    .spans
                    .push(span(trace, id + k, Some(id), start + k * MS, 10 * MS));
            }
            id += 4;
            if i % 50 == 49 {
                write(std::mem::take(&mut batch));
            }
        }
        // A long trace exported over three commits, root last, started
        // before the others' window and still running into the newest one.
        let long = 77;
        write(Batch {
            spans: vec![span(long, 9001, Some(9000), now - 30 * SEC, MS)],
            ..Batch::default()
        });
        write(Batch {
            spans: vec![span(long, 9002, Some(9000), now - 5 * SEC, MS)],
            ..Batch::default()
        });
        write(Batch {
            spans: vec![span(long, 9000, None, t0 + 100 * SEC, 600 * SEC)],
            ..Batch::default()
        });
        // A trace whose log comes before its spans, and one of logs only.
        let log = |trace: u64, at: u64| LogRecord {
            time_unix_nano: at,
            observed_time_unix_nano: at,
            trace_id: Some(format!("{trace:032x}")),
            body: Some("hello".into()),
            service_name: "svc".into(),
            attributes: "{}".into(),
            resource: "{}".into(),
            ..Default::default()
        };
        write(Batch {
            spans: vec![span(88, 9100, None, now - 2 * SEC, MS)],
            logs: vec![log(88, now - 3 * SEC), log(99, now - SEC)],
            ..Batch::default()
        });

        for (limit, since, until) in [
            (50, None, None),
            (7, None, None),
            (1, None, None),
            (20, Some(now - 15 * 60 * SEC), None),
            (25, None, Some(now - 5 * 60 * SEC)),
            (10, Some(t0 + 60 * SEC), Some(t0 + 300 * SEC)),
        ] {
            let q = TraceQuery {
                filter: SpanFilter {
                    since,
                    until,
                    ..SpanFilter::default()
                },
                page: PageRequest {
                    limit,
                    cursor: None,
                },
            };
            let slow = pages(&conn, &q, false);
            let fast = pages(&conn, &q, true);
            assert_eq!(fast, slow, "limit {limit} since {since:?} until {until:?}");
            let listed: usize = slow.iter().map(Vec::len).sum();
            assert!(listed > limit, "the case pages: {listed} traces (limit {limit} since {since:?} until {until:?}, now {now})");
        }
        // The fast path answered the first pages itself rather than falling
        // back every time.
        let q = TraceQuery {
            filter: SpanFilter::default(),
            page: PageRequest {
                limit: 50,
                cursor: None,
            },
        };
        assert!(list_recent_traces(&conn, &q).unwrap().is_some());
    }
}
