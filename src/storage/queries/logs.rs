//! Log search: by service, severity, trace, session, attributes, time and a
//! case-insensitive substring of the body, newest first; and the same
//! search counted per time bucket and severity level, for histograms.

use duckdb::types::Value;
use duckdb::Row;

use super::traces::paginate;
use super::Where;
use crate::model::query::{
    raw_json, rfc3339, Buckets, Cursor, LevelCounts, LogHistogram, LogQuery, LogRow, Page,
};
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::Conn;

/// The log columns `log_row` reads, with the given expressions for the
/// columns a log may take from its resource row.
macro_rules! log_cols {
    ($version:expr, $environment:expr, $scope_name:expr, $resource:expr) => {
        concat!(
            "time_unix_nano, observed_time_unix_nano, trace_id, span_id, \
            severity_number, severity_text, body, service_name, ",
            $version,
            ", ",
            $environment,
            ", ",
            $scope_name,
            ", session_id, event_name, attributes, ",
            $resource,
            ", ingest_seq"
        )
    };
}

/// As stored in `log_rows` (see `traces::SPAN_COLS`).
const LOG_COLS: &str = log_cols!(
    "service_version",
    "deployment_environment",
    "scope_name",
    "resource"
);

/// Over [`LOGS_WITH_RESOURCES`]: every row's values, wherever stored.
pub(crate) const LOG_COLS_RESOLVED: &str = log_cols!(
    "coalesce(log_rows.service_version, resources.service_version)",
    "coalesce(log_rows.deployment_environment, resources.deployment_environment)",
    "coalesce(log_rows.scope_name, resources.scope_name)",
    "coalesce(log_rows.resource, resources.resource)"
);

/// `log_rows` with each row's resource.
pub(crate) const LOGS_WITH_RESOURCES: &str =
    "log_rows_all log_rows LEFT JOIN resources ON resources.resource_id = log_rows.resource_id";

pub(crate) fn log_row(r: &Row<'_>) -> duckdb::Result<LogRow> {
    let time: u64 = r.get(0)?;
    let observed: u64 = r.get(1)?;
    Ok(LogRow {
        time: rfc3339(time),
        time_unix_nano: time.to_string(),
        observed_time_unix_nano: observed.to_string(),
        trace_id: r.get(2)?,
        span_id: r.get(3)?,
        severity_number: r.get(4)?,
        severity_text: r.get(5)?,
        body: r.get(6)?,
        service_name: r.get(7)?,
        service_version: r.get(8)?,
        deployment_environment: r.get(9)?,
        scope_name: r.get(10)?,
        session_id: r.get(11)?,
        event_name: r.get(12)?,
        attributes: raw_json(&r.get::<_, String>(13)?),
        resource: raw_json(&r.get::<_, String>(14)?),
        ingest_seq: r.get(15)?,
    })
}

/// `text` as a LIKE pattern matching it literally anywhere.
fn contains_pattern(text: &str) -> String {
    let mut p = String::with_capacity(text.len() + 2);
    p.push('%');
    for ch in text.chars() {
        if matches!(ch, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(ch);
    }
    p.push('%');
    p
}

/// The records a log search's filters keep (its page aside), so the search
/// and the histogram count the same records.
fn log_filter(q: &LogQuery) -> Where {
    let mut w = Where::default();
    w.eq("service_name", q.service.as_ref());
    w.eq("trace_id", q.trace_id.as_ref());
    w.eq("span_id", q.span_id.as_ref());
    w.eq("session_id", q.session_id.as_ref());
    if let Some(min) = q.severity_min {
        w.cond("severity_number >= ?", [Value::Int(min)]);
    }
    w.ge("time_unix_nano", q.since);
    w.lt("time_unix_nano", q.until);
    w.attrs(&q.attrs);
    if let Some(text) = &q.text {
        w.cond(
            "body ILIKE ? ESCAPE '\\'",
            [Value::Text(contains_pattern(text))],
        );
    }
    w
}

pub fn query_logs(c: &Conn, q: &LogQuery) -> Result<Page<LogRow>, QueryError> {
    let mut w = log_filter(q);
    if let Some(cur) = &q.page.cursor {
        let seq: u64 = cur
            .key
            .parse()
            .map_err(|_| QueryError::Invalid("cursor: not a cursor of /logs".into()))?;
        w.cond(
            "(time_unix_nano < ? OR (time_unix_nano = ? AND ingest_seq < ?))",
            [
                Value::UBigInt(cur.time),
                Value::UBigInt(cur.time),
                Value::UBigInt(seq),
            ],
        );
    }
    // The page is cut before the resources are joined, as for spans
    // (`traces::span_page_sql`).
    let order = "time_unix_nano DESC, ingest_seq DESC";
    let sql = format!(
        "SELECT {LOG_COLS_RESOLVED} FROM (SELECT {LOG_COLS}, resource_id FROM log_rows_all log_rows{} \
         ORDER BY {order} LIMIT {}) log_rows \
         LEFT JOIN resources ON resources.resource_id = log_rows.resource_id ORDER BY {order}",
        w.sql(),
        q.page.limit + 1
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the log search")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(w.params.iter()), log_row)
        .ctx("searching logs")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading logs")?;
    Ok(paginate(rows, q.page.limit, |l| Cursor {
        time: l.time_unix_nano.parse().unwrap_or(0),
        key: l.ingest_seq.to_string(),
    }))
}

/// The histogram's levels, in the order of its answer; the index is what
/// [`LEVEL_SQL`] yields.
const LEVELS: [&str; 7] = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "UNSET"];

/// A record's index in [`LEVELS`]: by severity number in OpenTelemetry's
/// groups of four; without a number, by the level its text names (as the
/// dashboard's list badges show it), else UNSET.
const LEVEL_SQL: &str = "CASE
    WHEN severity_number BETWEEN 1 AND 24 THEN (severity_number - 1) // 4
    ELSE CASE upper(regexp_replace(coalesce(severity_text, ''), '[0-9]+$', ''))
        WHEN 'TRACE' THEN 0
        WHEN 'DEBUG' THEN 1
        WHEN 'INFO' THEN 2 WHEN 'INFORMATION' THEN 2
        WHEN 'WARN' THEN 3 WHEN 'WARNING' THEN 3
        WHEN 'ERROR' THEN 4
        WHEN 'FATAL' THEN 5 WHEN 'CRITICAL' THEN 5
        ELSE 6 END
    END";

/// The records `q` finds (its page aside) in `[since, until)`, counted per
/// level and per bucket of `buckets`.
pub fn log_histogram(
    c: &Conn,
    q: &LogQuery,
    since: u64,
    until: u64,
    buckets: Buckets,
) -> Result<LogHistogram, QueryError> {
    let w = log_filter(&LogQuery {
        since: Some(since),
        until: Some(until),
        ..q.clone()
    });
    // BIGINT: Unix ns fit (until 2262), and the subtraction cannot wrap.
    let sql = format!(
        "SELECT ((time_unix_nano::BIGINT - ?) // ?)::UBIGINT AS bucket,
                ({LEVEL_SQL})::UTINYINT AS level, count(*)::UBIGINT
         FROM log_rows_all log_rows{} GROUP BY 1, 2",
        w.sql()
    );
    let mut params = vec![
        Value::BigInt(buckets.start as i64),
        Value::BigInt(buckets.step as i64),
    ];
    params.extend(w.params);
    let mut stmt = c.prepare(&sql).ctx("preparing the log histogram")?;
    let rows = stmt
        .query_map(duckdb::params_from_iter(params.iter()), |r| {
            Ok((r.get::<_, u64>(0)?, r.get::<_, u8>(1)?, r.get::<_, u64>(2)?))
        })
        .ctx("counting logs per bucket")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the log histogram")?;
    let mut levels: Vec<LevelCounts> = LEVELS
        .iter()
        .map(|name| LevelCounts {
            severity: name.to_string(),
            total: 0,
            counts: vec![0; buckets.count],
        })
        .collect();
    let mut total = 0;
    for (bucket, level, count) in rows {
        let Some(l) = levels.get_mut(level as usize) else {
            continue;
        };
        if let Some(slot) = l.counts.get_mut(bucket as usize) {
            *slot += count;
            l.total += count;
            total += count;
        }
    }
    Ok(LogHistogram {
        start_unix_nano: buckets.start.to_string(),
        step_ms: buckets.step as f64 / 1e6,
        buckets: buckets.count,
        levels,
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns_match_literally() {
        assert_eq!(contains_pattern("50%_off\\"), "%50\\%\\_off\\\\%");
    }
}
