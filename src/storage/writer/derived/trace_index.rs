//! The trace lookup: where in time each trace's rows are.
//!
//! Trace ids are random, so DuckDB's per-row-group min/max cannot skip
//! anything for `WHERE trace_id = ?`, and finding one trace among 10 M spans
//! meant reading every trace id (~40 ms). An ART index on `trace_id` would
//! fix that, but its space is not reused after deletes, so size retention
//! could not keep the file bounded. Instead the writer appends, in each
//! commit's transaction, one small row per trace it touched: a 64-bit key
//! (the id's last 16 hex digits: the random
//! part for W3C ids, and all of a zero-padded 64-bit Jaeger or Zipkin id) and the time range of that commit's rows
//! of the trace. A lookup scans these narrow integer rows (a tenth of the
//! spans, one column), then reads spans and logs only inside the trace's
//! time range, where the min/max of `start_time_unix_nano` and
//! `time_unix_nano` skip all other row groups.
//!
//! Each row also keeps the earliest start of the commit's spans of the
//! trace (`first_span_unix_nano`, NULL for a row of logs only), so the
//! newest traces are found here rather than by grouping every recent span
//! (`queries::traces::list_traces`).
//!
//! The table is append-only (a trace exported in five commits has five
//! rows), so keeping it costs the writer one Appender call per commit.
//! Retention removes a key's rows once all of them are older than its
//! cutoff. A lookup that finds no row falls back to the full scan, so an
//! incomplete table can make a lookup slow, never wrong.

use std::collections::HashMap;

use super::{Committing, Derived};
use crate::storage::duck::{Chunk, ChunkBuilder, Col, RawConn};
use crate::storage::DuckError;

/// The lookup key of a trace id, or `None` for an id that is not hex. The
/// SQL twin is [`SPAN_ROWS_KEY_SQL`]; the two must agree.
pub fn trace_key(trace_id: &str) -> Option<u64> {
    let tail = trace_id
        .get(trace_id.len().saturating_sub(16)..)
        .unwrap_or(trace_id);
    u64::from_str_radix(tail, 16).ok()
}

/// [`trace_key`] in SQL, over the `trace_id` column of `span_rows`, which
/// holds the id as a number (`storage::ids`): its low 64 bits.
pub const SPAN_ROWS_KEY_SQL: &str = "(trace_id & 18446744073709551615::UHUGEINT)::UBIGINT";

/// Creates the table and fills it from whatever spans and logs exist (a
/// database from before the lookup, or rows loaded by other means).
pub const CREATE_AND_FILL_SQL: &str = "
CREATE TABLE IF NOT EXISTS trace_index (
    trace_key           UBIGINT NOT NULL,
    first_time_unix_nano UBIGINT NOT NULL,
    last_time_unix_nano  UBIGINT NOT NULL
);
INSERT INTO trace_index
SELECT key, min(t), max(t) FROM (
    SELECT TRY_CAST('0x' || right(trace_id, 16) AS UBIGINT) AS key,
           start_time_unix_nano AS t
    FROM spans
    UNION ALL
    SELECT TRY_CAST('0x' || right(trace_id, 16) AS UBIGINT), time_unix_nano
    FROM logs WHERE trace_id IS NOT NULL)
WHERE key IS NOT NULL
GROUP BY key;
";

/// Migration 10: where each row's spans start (see the module comment).
/// Rows written before it have NULL there, and the trace list falls back
/// to reading spans for them.
pub const FIRST_SPAN_MIGRATION_SQL: &str =
    "ALTER TABLE trace_index ADD COLUMN first_span_unix_nano UBIGINT;";

/// Fills the table, all columns, from spans and logs loaded by other means
/// than the writer (the benchmarks generate rows in SQL).
pub const FILL_SQL: &str = "
INSERT INTO trace_index
SELECT key, min(t), max(t), min(t) FILTER (WHERE is_span) FROM (
    SELECT (trace_id & 18446744073709551615::UHUGEINT)::UBIGINT AS key,
           start_time_unix_nano AS t, true AS is_span
    FROM span_rows
    UNION ALL
    SELECT TRY_CAST('0x' || right(trace_id, 16) AS UBIGINT), time_unix_nano, false
    FROM log_rows WHERE trace_id IS NOT NULL)
WHERE key IS NOT NULL
GROUP BY key;
";

const COLS: &[Col] = &[Col::UBigint, Col::UBigint, Col::UBigint, Col::UBigint];

/// One commit's rows of one trace: all of them, and its spans.
struct Range {
    first: u64,
    last: u64,
    first_span: Option<u64>,
}

/// Keeps `trace_index` current; see the module comment.
pub struct TraceIndex;

impl Derived for TraceIndex {
    fn name(&self) -> &'static str {
        "the trace lookup"
    }

    fn apply(&mut self, raw: &RawConn, rows: &Committing<'_>) -> Result<(), DuckError> {
        let mut ranges: HashMap<u64, Range, foldhash::fast::RandomState> = HashMap::default();
        let mut add = |id: &str, t: u64, is_span: bool| {
            if let Some(key) = trace_key(id) {
                let r = ranges.entry(key).or_insert(Range {
                    first: t,
                    last: t,
                    first_span: None,
                });
                r.first = r.first.min(t);
                r.last = r.last.max(t);
                if is_span {
                    r.first_span = Some(r.first_span.map_or(t, |f| f.min(t)));
                }
            }
        };
        for s in rows.spans() {
            add(&s.trace_id, s.start_time_unix_nano, true);
        }
        for l in rows.logs() {
            if let Some(id) = &l.trace_id {
                add(id, l.time_unix_nano, false);
            }
        }
        if ranges.is_empty() {
            return Ok(());
        }
        let rows: Vec<(u64, Range)> = ranges.into_iter().collect();
        let chunks = Chunk::fill(COLS, &rows, |b: &mut ChunkBuilder<'_>, (key, r)| {
            b.u64(*key);
            b.u64(r.first);
            b.u64(r.last);
            b.opt_u64(r.first_span);
        });
        raw.append_chunks("trace_index", &chunks)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::model::{Batch, LogRecord, SpanRecord};
    use crate::storage::queries::traces::get_trace;
    use crate::storage::writer::{Writer, WriterConfig};
    use crate::storage::{open, StorageOptions};
    use crate::stream::Hub;

    const HOUR: u64 = 3_600_000_000_000;

    fn span(trace: &str, span: &str, start: u64) -> SpanRecord {
        SpanRecord {
            trace_id: trace.into(),
            span_id: span.into(),
            name: "work".into(),
            kind: "INTERNAL",
            status_code: "UNSET",
            start_time_unix_nano: start,
            end_time_unix_nano: start + 1000,
            duration_ns: 1000,
            service_name: "svc".into(),
            attributes: "{}".into(),
            resource: "{}".into(),
            events: "[]".into(),
            links: "[]".into(),
            ..Default::default()
        }
    }

    fn log(trace: &str, time: u64) -> LogRecord {
        LogRecord {
            time_unix_nano: time,
            observed_time_unix_nano: time,
            trace_id: Some(trace.into()),
            body: Some("hello".into()),
            service_name: "svc".into(),
            attributes: "{}".into(),
            resource: "{}".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_trace_written_over_several_commits_is_found_whole() {
        let db = open(&StorageOptions::in_memory()).unwrap();
        let conn = db.connect().unwrap();
        let writer =
            Writer::start(db, Arc::new(Hub::new(16)), WriterConfig::default(), false).unwrap();
        let write = |batch: Batch| {
            let rx = writer.handle().submit(batch).unwrap();
            rx.blocking_recv().unwrap().unwrap();
        };
        let t0 = 100 * HOUR;
        let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
        // Another trace whose id shares the lookup key: the range widens,
        // the answer does not mix them.
        let twin = "0123456789abcdefa3ce929d0e0e4736".to_string();
        assert_eq!(trace_key(&twin), trace_key(trace));
        write(Batch {
            spans: vec![
                span(trace, "00f067aa0ba902b7", t0),
                span(&twin, "0000000000000001", t0),
            ],
            ..Default::default()
        });
        // Filler in between, so the trace's rows sit in different places.
        for i in 0..5u64 {
            write(Batch {
                spans: (0..100u64)
                    .map(|j| {
                        span(
                            &format!("{:032x}", 1_000 + i * 100 + j),
                            "0000000000000002",
                            t0 + HOUR + i,
                        )
                    })
                    .collect(),
                ..Default::default()
            });
        }
        write(Batch {
            spans: vec![span(trace, "00f067aa0ba902b8", t0 + 2 * HOUR)],
            logs: vec![log(trace, t0 + 3 * HOUR)],
            ..Default::default()
        });
        let rows: i64 = conn
            .query_row(
                "SELECT count(*) FROM trace_index WHERE trace_key = ?",
                [trace_key(trace).unwrap()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(rows, 2, "one lookup row per commit that touched the trace");
        let check = |what: &str| {
            let tree = get_trace(&conn, trace).unwrap().expect("found");
            assert_eq!(tree.summary.span_count, 2, "{what}");
            assert_eq!(tree.logs.len(), 1, "{what}");
            let twin_tree = get_trace(&conn, &twin).unwrap().expect("found");
            assert_eq!(twin_tree.summary.span_count, 1, "{what}");
            assert!(get_trace(&conn, "ffffffffffffffffffffffffffffffff")
                .unwrap()
                .is_none());
        };
        check("through the lookup");
        // Without lookup rows (a database filled by other means), the full
        // search still finds everything.
        conn.execute_batch("DELETE FROM trace_index").unwrap();
        check("without the lookup");
        writer.shutdown();
    }

    #[test]
    fn keys_are_the_last_sixteen_hex_digits() {
        for (id, key) in [
            (
                "0000000000000001ffe9a3c4d5b6a798",
                Some(0xffe9_a3c4_d5b6_a798),
            ),
            ("00000000000000000000000000000001", Some(1)),
            ("ABC", Some(0xabc)),
            ("", None),
            ("not-a-trace-id-at-all", None),
            ("é0123456789abcdef", Some(0x0123_4567_89ab_cdef)),
            ("0123456789abcdeéf", None),
            // A multi-byte character at the cut does not panic.
            ("aéééééééé", None),
        ] {
            assert_eq!(trace_key(id), key, "{id}");
            // The SQL twin agrees on every id a span can carry.
            if let Some(stored) = crate::storage::ids::parse_trace_id(id) {
                let conn = duckdb::Connection::open_in_memory().unwrap();
                let sql =
                    format!("SELECT {SPAN_ROWS_KEY_SQL} FROM (SELECT ?::UHUGEINT AS trace_id)");
                let in_sql: Option<u64> = conn.query_row(&sql, [stored], |r| r.get(0)).unwrap();
                assert_eq!(in_sql, key, "{id} in SQL");
            }
        }
    }
}
