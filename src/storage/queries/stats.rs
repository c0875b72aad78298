//! Overviews: the services seen in a window and what the database holds.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::histogram::{bin_sql, Histogram};
use crate::model::query::{
    rfc3339, Buckets, ServiceBucket, ServiceSummary, StorageStats, TableStats,
};
use crate::storage::archive::Signal;
use crate::storage::reader::{QueryError, SqlContext};
use crate::storage::writer::derived::genai_rollup::MINUTE_NS;
use crate::storage::writer::derived::resources::{
    SPANS_WITH_RESOURCES, SPAN_ENVIRONMENT_SQL, SPAN_VERSION_SQL,
};
use crate::storage::{schema, Conn};

/// Services with spans starting in `[since, until)`, with their rates over
/// that window, and with `step` (nanoseconds) their activity per step.
///
/// Whole minutes are read from `service_minutes` (a few dozen rows per
/// service and minute) and only the partial minutes at the window's edges
/// from `spans`, so a day of data costs about what ten minutes do. The
/// latency percentiles come from the rollup's log bins: within a bin's
/// width (9 %) of the exact value, and exact where a bin holds one value.
pub fn services(
    c: &Conn,
    since: u64,
    until: u64,
    step: Option<u64>,
) -> Result<Vec<ServiceSummary>, QueryError> {
    let minutes = (until.saturating_sub(since) as f64 / 60e9).max(1.0 / 60.0);
    let sql = binned_sql(
        since,
        until,
        true,
        "service_name, service_version, environment",
        &span_keys(),
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the service list")?;
    let mut rows = stmt.query([]).ctx("listing services")?;
    let ctx = "reading the service list";
    let mut by_service: BTreeMap<String, ServiceAcc> = BTreeMap::new();
    while let Some(r) = rows.next().ctx(ctx)? {
        let acc = by_service.entry(r.get(0).ctx(ctx)?).or_default();
        let version: String = r.get(1).ctx(ctx)?;
        let environment: String = r.get(2).ctx(ctx)?;
        if !version.is_empty() {
            acc.versions.insert(version);
        }
        if !environment.is_empty() {
            acc.environments.insert(environment);
        }
        acc.bins.add(r, 3).ctx(ctx)?;
    }
    let rows: Vec<ServiceSummary> = by_service
        .into_iter()
        .map(|(name, acc)| {
            let b = &acc.bins;
            ServiceSummary {
                name,
                versions: acc.versions.into_iter().collect(),
                environments: acc.environments.into_iter().collect(),
                span_count: b.spans,
                error_count: b.errors,
                error_rate: if b.spans == 0 {
                    0.0
                } else {
                    b.errors as f64 / b.spans as f64
                },
                spans_per_minute: b.spans as f64 / minutes,
                p50_ms: ms(b.latency.quantile(0.5)),
                p95_ms: ms(b.latency.quantile(0.95)),
                p99_ms: ms(b.latency.quantile(0.99)),
                last_seen: (b.spans > 0).then(|| rfc3339(b.last_start)),
                series: None,
            }
        })
        .collect();
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

fn ms(ns: Option<f64>) -> Option<f64> {
    ns.map(|ns| ns / 1e6)
}

/// Spans summed per key: counts, latest start, latency bins.
#[derive(Default)]
struct Binned {
    spans: u64,
    errors: u64,
    last_start: u64,
    latency: Histogram,
}

impl Binned {
    /// Adds one row of [`binned_sql`]: bin, spans, errors, min, max and
    /// latest start from column `at` on.
    fn add(&mut self, r: &duckdb::Row<'_>, at: usize) -> duckdb::Result<()> {
        let n: u64 = r.get(at + 1)?;
        self.spans += n;
        self.errors += r.get::<_, u64>(at + 2)?;
        self.latency
            .add(r.get(at)?, n, r.get(at + 3)?, r.get(at + 4)?);
        self.last_start = self.last_start.max(r.get(at + 5)?);
        Ok(())
    }
}

#[derive(Default)]
struct ServiceAcc {
    versions: BTreeSet<String>,
    environments: BTreeSet<String>,
    bins: Binned,
}

/// The service overview's keys over [`SPANS_WITH_RESOURCES`], as
/// `service_minutes` stores them.
fn span_keys() -> String {
    format!("service_name, coalesce({SPAN_VERSION_SQL}, ''), coalesce({SPAN_ENVIRONMENT_SQL}, '')")
}

/// `SELECT <keys>, bin, spans, errors, min, max, latest start` for the
/// spans starting in `[since, until)`: whole minutes from
/// `service_minutes` (grouped by `rollup_keys`), the partial minutes at
/// either edge from `spans` (grouped by `span_keys`, the same keys in
/// span columns). Without `whole_minutes` (a step that splits minutes),
/// everything comes from `spans`. The bounds are numbers, so formatting
/// them into the SQL is safe.
fn binned_sql(
    since: u64,
    until: u64,
    whole_minutes: bool,
    rollup_keys: &str,
    span_keys: &str,
) -> String {
    let first = since.div_ceil(MINUTE_NS).saturating_mul(MINUTE_NS);
    let last = until / MINUTE_NS * MINUTE_NS;
    let spans = |cond: String| {
        format!(
            "SELECT {span_keys}, {}, count(*)::UBIGINT, \
             count(*) FILTER (WHERE status_code = 'ERROR')::UBIGINT, \
             min(duration_ns)::DOUBLE, max(duration_ns)::DOUBLE, max(start_time_unix_nano) \
             FROM {SPANS_WITH_RESOURCES} WHERE {cond} GROUP BY ALL",
            bin_sql("duration_ns")
        )
    };
    if !whole_minutes || first >= last {
        return spans(format!(
            "start_time_unix_nano >= {since} AND start_time_unix_nano < {until}"
        ));
    }
    format!(
        "SELECT {rollup_keys}, bin, sum(spans)::UBIGINT, sum(errors)::UBIGINT, \
         min(min_ns), max(max_ns), max(last_start_unix_nano) \
         FROM service_minutes WHERE minute_unix_nano >= {first} AND minute_unix_nano < {last} \
         GROUP BY ALL UNION ALL {} UNION ALL {}",
        // Each edge on its own: a range is checked against the statistics
        // of each row group (and archived file), which skips all but the
        // edge's; an OR of the two ranges read the time of every row of
        // the archive (4.3× the database's time at 10 M spans).
        spans(format!(
            "start_time_unix_nano >= {since} AND start_time_unix_nano < {first}"
        )),
        spans(format!(
            "start_time_unix_nano >= {last} AND start_time_unix_nano < {until}"
        ))
    )
}

/// Per service, one bucket per step from the one holding `since` to the
/// one holding `until - 1`; steps without spans are zeros, so a chart of
/// them shows quiet time as quiet rather than as a line across it. Steps
/// of whole minutes read the rollup; others read the spans.
fn service_steps(
    c: &Conn,
    since: u64,
    until: u64,
    step: u64,
) -> Result<HashMap<String, Vec<ServiceBucket>>, QueryError> {
    let sql = binned_sql(
        since,
        until,
        step % MINUTE_NS == 0,
        &format!("service_name, minute_unix_nano // {step} * {step}"),
        &format!("service_name, start_time_unix_nano // {step} * {step}"),
    );
    let mut stmt = c.prepare(&sql).ctx("preparing the service series")?;
    let mut rows = stmt.query([]).ctx("aggregating the service series")?;
    let ctx = "reading the service series";
    let mut steps: HashMap<(String, u64), Binned> = HashMap::new();
    while let Some(r) = rows.next().ctx(ctx)? {
        let key = (r.get(0).ctx(ctx)?, r.get(1).ctx(ctx)?);
        steps.entry(key).or_default().add(r, 2).ctx(ctx)?;
    }
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
    for ((service, b), binned) in steps {
        let series = out.entry(service).or_insert_with(empty);
        if let Some(slot) = series.get_mut((b.saturating_sub(buckets.start) / step) as usize) {
            slot.span_count = binned.spans;
            slot.error_count = binned.errors;
            slot.p95_ms = ms(binned.latency.quantile(0.95));
        }
    }
    Ok(out)
}

pub fn storage_stats(c: &Conn, path: &str) -> Result<StorageStats, QueryError> {
    let mut tables = Vec::new();
    // Named by their views; counted in the tables and their archived files,
    // which need no resources.
    for signal in Signal::ALL {
        let (table, stored, time) = (signal.name(), signal.rows_all(), signal.time_column());
        let (rows, oldest, newest): (u64, Option<u64>, Option<u64>) = c
            .query_row(
                &format!("SELECT count(*), min({time}), max({time}) FROM {stored}"),
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
        // The write-ahead log is qyl's journal (and a .wal an older qyl
        // may have left, replayed at the next start).
        let journal = crate::storage::writer::journal_bytes(std::path::Path::new(path));
        let wal = size(format!("{path}.wal")).unwrap_or(0) + journal;
        (size(path.to_string()), Some(wal))
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Batch, SpanRecord};
    use crate::storage::writer::{Writer, WriterConfig};
    use crate::storage::{open, StorageOptions};
    use crate::stream::Hub;

    const SEC: u64 = 1_000_000_000;

    /// Without the rollup: every span of the window binned straight from
    /// `spans`, the path steps that split minutes take.
    fn from_spans(c: &Conn, since: u64, until: u64) -> Vec<ServiceSummary> {
        let mut all = Vec::new();
        let sql = binned_sql(since, until, false, "", &span_keys());
        let mut stmt = c.prepare(&sql).unwrap();
        let mut rows = stmt.query([]).unwrap();
        let mut by: BTreeMap<String, (u64, u64, u64, Histogram, BTreeSet<String>)> =
            BTreeMap::new();
        while let Some(r) = rows.next().unwrap() {
            let e = by.entry(r.get(0).unwrap()).or_default();
            let n: u64 = r.get(4).unwrap();
            e.0 += n;
            e.1 += r.get::<_, u64>(5).unwrap();
            e.2 = e.2.max(r.get(8).unwrap());
            e.3.add(r.get(3).unwrap(), n, r.get(6).unwrap(), r.get(7).unwrap());
            let v: String = r.get(1).unwrap();
            if !v.is_empty() {
                e.4.insert(v);
            }
        }
        for (name, (spans, errors, last, h, versions)) in by {
            all.push(ServiceSummary {
                name,
                versions: versions.into_iter().collect(),
                environments: Vec::new(),
                span_count: spans,
                error_count: errors,
                error_rate: 0.0,
                spans_per_minute: 0.0,
                p50_ms: ms(h.quantile(0.5)),
                p95_ms: ms(h.quantile(0.95)),
                p99_ms: ms(h.quantile(0.99)),
                last_seen: Some(rfc3339(last)),
                series: None,
            });
        }
        all
    }

    #[test]
    fn the_rollup_answers_like_the_spans_it_sums() {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let conn = db.connect().unwrap();
        let writer =
            Writer::start(db, Arc::new(Hub::new(16)), WriterConfig::default(), false).unwrap();
        let now = crate::model::now_unix_nano();
        let t0 = (now - 30 * 60 * SEC) / MINUTE_NS * MINUTE_NS;
        // 20 minutes of spans from two services, two versions, errors and
        // latencies spread over many bins, in several commits; a late span
        // for an old minute in a commit of its own.
        for round in 0..4u64 {
            let mut batch = Batch::default();
            for i in 0..1500u64 {
                let at = t0 + (i * 797 + round * 13) % (20 * 60) * SEC + i;
                batch.spans.push(SpanRecord {
                    trace_id: format!("{:032x}", round * 10_000 + i).into(),
                    span_id: format!("{:016x}", round * 10_000 + i + 1).into(),
                    name: "op".into(),
                    kind: "SERVER",
                    start_time_unix_nano: at,
                    end_time_unix_nano: at + (i % 97 + 1) * 1_300_000 * (round + 1),
                    duration_ns: (i % 97 + 1) * 1_300_000 * (round + 1),
                    status_code: if i % 11 == 0 { "ERROR" } else { "OK" },
                    service_name: if i % 3 == 0 { "api" } else { "worker" }.into(),
                    service_version: Some(format!("1.{}", (i + round) % 2).into()),
                    deployment_environment: Some("prod".into()),
                    attributes: "{}".into(),
                    resource: "{}".into(),
                    events: "[]".into(),
                    links: "[]".into(),
                    ..SpanRecord::default()
                });
            }
            let rx = writer.handle().submit(batch).unwrap();
            rx.blocking_recv().unwrap().unwrap();
        }
        writer.handle().summary_sync().settle_blocking();
        // Windows on and off minute boundaries, inside and around the data.
        for (since, until) in [
            (t0, t0 + 20 * 60 * SEC),
            (t0 + 17 * SEC + 3, t0 + 13 * 60 * SEC + 41 * SEC),
            (t0 + 5 * 60 * SEC, t0 + 5 * 60 * SEC + 30 * SEC),
            (t0 - 3600 * SEC, now),
        ] {
            let fast = services(&conn, since, until, None).unwrap();
            let slow = from_spans(&conn, since, until);
            assert_eq!(fast.len(), slow.len());
            for (f, s) in fast.iter().zip(&slow) {
                let what = format!("{} in [{since}, {until})", f.name);
                assert_eq!(f.name, s.name);
                assert_eq!(f.span_count, s.span_count, "{what}");
                assert_eq!(f.error_count, s.error_count, "{what}");
                assert_eq!(f.versions, s.versions, "{what}");
                assert_eq!(f.last_seen, s.last_seen, "{what}");
                assert_eq!(f.environments, vec!["prod".to_string()], "{what}");
                assert_eq!(
                    (f.p50_ms, f.p95_ms, f.p99_ms),
                    (s.p50_ms, s.p95_ms, s.p99_ms),
                    "{what}"
                );
            }
            // Steps of whole minutes (rollup) against steps that split
            // them (spans): the same counts where the buckets coincide.
            let minute_steps = services(&conn, since, until, Some(2 * MINUTE_NS)).unwrap();
            let total: u64 = minute_steps
                .iter()
                .flat_map(|s| s.series.iter().flatten())
                .map(|b| b.span_count)
                .sum();
            assert_eq!(total, fast.iter().map(|s| s.span_count).sum::<u64>());
        }
        let all = services(&conn, t0, t0 + 20 * 60 * SEC, None).unwrap();
        assert_eq!(all.iter().map(|s| s.span_count).sum::<u64>(), 6000);
        let p95 = all[0].p95_ms.unwrap();
        assert!(p95 > 100.0 && p95 < 600.0, "p95 {p95}");
    }
}
