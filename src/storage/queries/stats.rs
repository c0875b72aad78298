//! Overviews: the services seen in a window and what the database holds.

use std::collections::HashMap;

use super::texts;
use crate::model::query::{
    rfc3339, Buckets, ServiceBucket, ServiceSummary, StorageStats, TableStats,
};
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::{schema, Conn};

/// Services with spans starting in `[since, until)`, with their rates over
/// that window, and with `step` (nanoseconds) their activity per step.
/// Latency percentiles are DuckDB's t-digest estimates: exact ones sort
/// every span of the window, several times slower on a day of data.
pub fn services(
    c: &Conn,
    since: u64,
    until: u64,
    step: Option<u64>,
) -> Result<Vec<ServiceSummary>, QueryError> {
    let minutes = (until.saturating_sub(since) as f64 / 60e9).max(1.0 / 60.0);
    let mut stmt = c
        .prepare(
            "SELECT service_name, \
             list(DISTINCT service_version ORDER BY service_version) FILTER (WHERE service_version IS NOT NULL), \
             list(DISTINCT deployment_environment ORDER BY deployment_environment) FILTER (WHERE deployment_environment IS NOT NULL), \
             count(*), count(*) FILTER (WHERE status_code = 'ERROR'), \
             approx_quantile(duration_ns, 0.5)::DOUBLE, approx_quantile(duration_ns, 0.95)::DOUBLE, approx_quantile(duration_ns, 0.99)::DOUBLE, \
             max(start_time_unix_nano) \
             FROM spans WHERE start_time_unix_nano >= ? AND start_time_unix_nano < ? \
             GROUP BY service_name ORDER BY service_name",
        )
        .ctx("preparing the service list")?;
    let rows = stmt
        .query_map([since, until], |r| {
            let spans: u64 = r.get(3)?;
            let errors: u64 = r.get(4)?;
            let ms = |v: Option<f64>| v.map(|ns| ns / 1e6);
            Ok(ServiceSummary {
                name: r.get(0)?,
                versions: texts(r.get(1)?),
                environments: texts(r.get(2)?),
                span_count: spans,
                error_count: errors,
                error_rate: if spans == 0 {
                    0.0
                } else {
                    errors as f64 / spans as f64
                },
                spans_per_minute: spans as f64 / minutes,
                p50_ms: ms(r.get(5)?),
                p95_ms: ms(r.get(6)?),
                p99_ms: ms(r.get(7)?),
                last_seen: r.get::<_, Option<u64>>(8)?.map(rfc3339),
                series: None,
            })
        })
        .ctx("listing services")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the service list")?;
    let Some(step) = step.filter(|s| *s > 0) else {
        return Ok(rows);
    };
    let mut series = service_steps(c, since, until, step)?;
    Ok(rows
        .into_iter()
        .map(|mut s| {
            s.series = Some(series.remove(&s.name).unwrap_or_default());
            s
        })
        .collect())
}

/// Per service, one bucket per step from the one holding `since` to the
/// one holding `until - 1`; steps without spans are zeros, so a chart of
/// them shows quiet time as quiet rather than as a line across it.
fn service_steps(
    c: &Conn,
    since: u64,
    until: u64,
    step: u64,
) -> Result<HashMap<String, Vec<ServiceBucket>>, QueryError> {
    let mut stmt = c
        .prepare(&format!(
            "SELECT service_name, (start_time_unix_nano // {step}) * {step} AS b, \
             count(*), count(*) FILTER (WHERE status_code = 'ERROR'), \
             approx_quantile(duration_ns, 0.95)::DOUBLE \
             FROM spans WHERE start_time_unix_nano >= ? AND start_time_unix_nano < ? \
             GROUP BY ALL ORDER BY service_name, b"
        ))
        .ctx("preparing the service series")?;
    let rows = stmt
        .query_map([since, until], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, u64>(1)?,
                r.get::<_, u64>(2)?,
                r.get::<_, u64>(3)?,
                r.get::<_, Option<f64>>(4)?,
            ))
        })
        .ctx("aggregating the service series")?
        .collect::<Result<Vec<_>, _>>()
        .ctx("reading the service series")?;
    let buckets = Buckets::covering(since, until, step);
    let empty = || -> Vec<ServiceBucket> {
        (0..buckets.count)
            .map(|i| {
                let t = buckets.time(i);
                ServiceBucket {
                    time: rfc3339(t),
                    time_unix_nano: t.to_string(),
                    span_count: 0,
                    error_count: 0,
                    p95_ms: None,
                }
            })
            .collect()
    };
    let mut out: HashMap<String, Vec<ServiceBucket>> = HashMap::new();
    for (service, b, spans, errors, p95) in rows {
        let series = out.entry(service).or_insert_with(empty);
        if let Some(slot) = series.get_mut(((b - buckets.start) / step) as usize) {
            slot.span_count = spans;
            slot.error_count = errors;
            slot.p95_ms = p95.map(|ns| ns / 1e6);
        }
    }
    Ok(out)
}

pub fn storage_stats(c: &Conn, path: &str) -> Result<StorageStats, QueryError> {
    let mut tables = Vec::new();
    for (table, time) in [
        ("spans", "start_time_unix_nano"),
        ("logs", "time_unix_nano"),
        ("metrics", "time_unix_nano"),
    ] {
        let (rows, oldest, newest): (u64, Option<u64>, Option<u64>) = c
            .query_row(
                &format!("SELECT count(*), min({time}), max({time}) FROM {table}"),
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .ctx("counting rows")?;
        tables.push(TableStats {
            table: table.to_string(),
            rows,
            oldest: oldest.map(rfc3339),
            newest: newest.map(rfc3339),
        });
    }
    let version: i64 = c
        .query_row(
            "SELECT coalesce(max(version), 0) FROM schema_version",
            [],
            |r| r.get(0),
        )
        .ctx("reading the schema version")?;
    let size = |p: String| std::fs::metadata(p).ok().map(|m| m.len());
    let (file_bytes, wal_bytes) = if path == ":memory:" {
        (None, None)
    } else {
        (size(path.to_string()), size(format!("{path}.wal")))
    };
    debug_assert!(version as u32 <= schema::latest_version());
    Ok(StorageStats {
        path: path.to_string(),
        file_bytes,
        wal_bytes,
        schema_version: version as u32,
        tables,
    })
}
