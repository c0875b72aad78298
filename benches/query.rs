//! Query benchmark: how fast the read API answers on a large database.
//!
//! For each size (default 1 M and 10 M spans in traces of 10 spans across 10
//! services, one GenAI call and some errors per trace) and each data shape
//! (`spread` over the last 24 h, ~115 spans/s at 10 M; `dense` over the
//! last 10 minutes, ~17k spans/s, the density a busy system's ingest
//! produces), it generates a DuckDB file with the trace lookup and the
//! service rollup filled as the writer leaves them, then times through the
//! store (the interface REST, MCP and Lua share), in process:
//!   - trace by id (the whole tree with logs),
//!   - the first page of the trace list (no filter, and the last hour),
//!   - a filtered span search (one service's errors),
//!   - the service overview over 24 h (p50/p95/p99 per service),
//!
//! and prints p50/p99 per query. The baseline, measured in the same run, is
//! a bare `SELECT count(*) FROM span_rows WHERE trace_id = qyl_trace_key(?)`
//! on a plain connection: the cost of finding one trace's rows by scanning
//! (and, printed beside it, the same against the `spans` view, which
//! prints each row's id as hex first).
//! The newest span is as old as generating took (printed): the queries
//! run just after a burst of ingest.
//! Environment: BENCH_SPANS (comma list, default "1000000,10000000"),
//! BENCH_SHAPES (comma list, default "spread,dense"),
//! BENCH_ROUNDS (timed repetitions per query, default 30), BENCH_INDEX=1
//! (add an index on trace_id, to compare), BENCH_EXPLAIN=1 (print DuckDB's
//! profile of the trace list's first window on spans) or SQL statements
//! separated by `;;` (`{now}` and `{newest}`, the newest span's start, stand
//! for times: each is timed and profiled), BENCH_KEEP_DB=path (generate
//! the first size and shape there and stop; a file that already holds
//! spans is queried instead, as old as its data has become),
//! BENCH_EXPLAIN_ARCHIVED (the same over both tiers, after archiving;
//! `{trace}`, `{lo}` and `{hi}` stand for a trace's id and time range),
//! QYL_STORAGE_MEMORY_LIMIT_MB (DuckDB's memory limit, as `qyl serve` reads
//! it).

use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
mod timing;
use common::generated::{generate, SPANS_PER_TRACE};
use timing::{ms, now_nanos, time, Shape};

use qyl::model::query::{PageRequest, SpanFilter, SpanQuery, TraceQuery};
use qyl::storage::{self, Store};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes = timing::sizes();
    let rounds = timing::rounds(30);
    println!("query benchmark: {rounds} rounds per query, p50 / p99 in ms");
    let keep = std::env::var("BENCH_KEEP_DB").ok();
    let shapes = timing::shapes();
    for spans in sizes {
        for shape in &shapes {
            run(spans, *shape, rounds, keep.as_deref()).await;
            // One kept file holds one database.
            if keep.is_some() {
                return;
            }
        }
    }
}

/// Generates one database and times the queries on it.
async fn run(spans: u64, shape: Shape, rounds: usize, keep: Option<&str>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = timing::storage_options(dir.path());
    if let Some(keep) = keep {
        opts.path = keep.to_string();
    }
    // BENCH_ARCHIVE=1: after timing the reads, move every whole window
    // (an hour spread, a minute dense) to the Parquet archive and time
    // them again over both tiers.
    let archive = timing::archive_settings(dir.path(), shape);
    opts.archive = archive.clone();
    let path = opts.path.clone();
    let db = storage::open(&opts).expect("opening the database");
    let conn = db.connect().expect("connecting");
    let gen_start = Instant::now();
    // A kept file that already holds spans is queried as it is (its data
    // as old as it has become), to study a query without generating again.
    let (stored, newest): (u64, Option<u64>) = conn
        .query_row(
            "SELECT count(*), max(start_time_unix_nano) FROM spans",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .expect("counting spans");
    let reused = keep.is_some() && stored > 0;
    let (spans, t0) = if reused {
        let newest = newest.unwrap_or(0);
        (stored, newest.saturating_sub(shape.window_ns))
    } else {
        let t0 = now_nanos() - shape.window_ns;
        generate(&conn, spans, t0, shape.window_ns);
        // No writer runs here to fold the spans into the service rollup.
        conn.execute_batch(storage::writer::derived::service_minutes::FILL_SQL)
            .expect("filling the service rollup");
        (spans, t0)
    };
    // BENCH_INDEX=1 adds an ART index on spans.trace_id, to compare: it
    // makes trace-by-id fast but its space is not reused after deletes,
    // so size retention could not keep the file bounded (see
    // BENCHMARKS.md); qyl ships without it.
    if std::env::var_os("BENCH_INDEX").is_some() {
        let t = Instant::now();
        conn.execute_batch("CREATE INDEX IF NOT EXISTS spans_trace_id ON spans (trace_id)")
            .expect("indexing");
        println!("index built in {:.1} s", t.elapsed().as_secs_f64());
    }
    let file = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("counting rows")
    };
    println!(
        "\n== {spans} spans ({} traces), {} ({:.0} min), generated in {:.1} s, file {:.0} MB ({:.0} bytes/span)",
        spans / SPANS_PER_TRACE,
        shape.name,
        shape.window_ns as f64 / 60e9,
        gen_start.elapsed().as_secs_f64(),
        file as f64 / 1e6,
        file as f64 / spans as f64
    );
    println!(
        "   trace_index {} rows, service_minutes {} rows; newest span {:.1} s before the queries",
        count("trace_index"),
        count("service_minutes"),
        (now_nanos() - (t0 + shape.window_ns)) as f64 / 1e9
    );
    if keep.is_some() && !reused {
        drop(conn);
        drop(db);
        println!("kept the database at {path}");
        return;
    }
    // Trace ids to look up, spread over the whole day.
    let ids: Vec<String> = {
        let traces = spans / SPANS_PER_TRACE;
        let mut stmt = conn
            .prepare("SELECT qyl_trace_hex(md5_number(CAST(? AS VARCHAR)))")
            .expect("preparing");
        (0..=rounds as u64)
            .map(|k| {
                let n = (k * 7_919_993) % traces;
                stmt.query_row([n], |r| r.get::<_, String>(0))
                    .expect("an id")
            })
            .collect()
    };
    if let Ok(explain) = std::env::var("BENCH_EXPLAIN") {
        let lower = now_nanos() - 60_000_000_000;
        let first_window = format!(
            "SELECT trace_id, min(start_time_unix_nano) AS s, count(*) FROM spans \
             WHERE start_time_unix_nano >= {} GROUP BY trace_id HAVING min(start_time_unix_nano) >= {} \
             ORDER BY s DESC, trace_id DESC LIMIT 51",
            lower - 120_000_000_000,
            lower
        );
        let sqls = if explain == "1" {
            first_window
        } else {
            explain
        };
        timing::explain(&conn, &sqls, |sql| {
            sql.replace("{now}", &now_nanos().to_string())
                .replace("{newest}", &newest.unwrap_or(0).to_string())
        });
    }
    let store = Arc::new(Store::new(db.clone(), &path, 4, Duration::from_secs(60)));

    // Counts one trace's spans by scanning, `rounds` times.
    let count_trace = |sql: &'static str, rounds: usize| {
        let conn = &conn;
        let ids = &ids;
        time(rounds, move |i| {
            let id = ids[i].clone();
            async move {
                let n: i64 = conn
                    .query_row(sql, [&id], |r| r.get(0))
                    .expect("counting a trace's spans");
                assert_eq!(n, SPANS_PER_TRACE as i64);
            }
        })
    };
    let baseline = count_trace(
        "SELECT count(*) FROM span_rows WHERE trace_id = qyl_trace_key(?)",
        rounds,
    )
    .await;
    // The same search written against the `spans` view, as users' SQL
    // might: the view prints every row's id as hex to compare it.
    let through_view = count_trace(
        "SELECT count(*) FROM spans WHERE trace_id = ?",
        rounds.min(5),
    )
    .await;
    let reads = time_reads(&store, &conn, &ids, rounds).await;
    let line = |name: &str, (p50, p99): (Duration, Duration), target: &str| {
        println!(
            "{name:<34} p50 {:>8.2}  p99 {:>8.2}  ({:.1}× baseline p50){target}",
            ms(p50),
            ms(p99),
            ms(p50) / ms(baseline.0).max(1e-9)
        );
    };
    line("baseline: count by trace_id scan", baseline, "");
    line("  the same through the spans view", through_view, "");
    for (name, took, target) in &reads {
        line(name, *took, target);
    }
    if let Some(settings) = archive {
        let used = |conn: &storage::Conn| -> u64 {
            conn.query_row(
                "SELECT (used_blocks * block_size)::UBIGINT FROM pragma_database_size()
                 WHERE database_name = current_database()",
                [],
                |r| r.get(0),
            )
            .expect("the database size")
        };
        let hot_bytes = used(&conn);
        let t = Instant::now();
        let moved = storage::archive::archive_due(&conn, &settings, now_nanos(), &|| false)
            .expect("archiving");
        let took = t.elapsed().as_secs_f64();
        conn.execute_batch("CHECKPOINT").expect("checkpointing");
        let left = used(&conn);
        println!(
            "archived {} rows in {} files in {took:.1} s ({:.0}k rows/s); Parquet {:.1} bytes/row, \
             the database file {:.1} bytes/row before (used blocks; {:.0} MB left for {} rows)",
            moved.rows,
            moved.parts,
            moved.rows as f64 / took / 1e3,
            moved.bytes as f64 / moved.rows.max(1) as f64,
            hot_bytes as f64 / spans as f64,
            left as f64 / 1e6,
            spans - moved.rows.min(spans),
        );
        // A trace id the lookup does not know (another node's, say) is
        // searched through every archived file.
        let unknown = time(rounds.min(5), |i| {
            let store = store.clone();
            async move {
                let id = format!("{:032x}", 0xfeed_0000_u64 + i as u64);
                assert!(store.get_trace(&id).await.expect("trace").is_none());
            }
        })
        .await;
        println!(
            "{:<34} p50 {:>8.2}  p99 {:>8.2}",
            "archived: an id stored nowhere",
            ms(unknown.0),
            ms(unknown.1)
        );
        let cold = time_reads(&store, &conn, &ids, rounds).await;
        for ((name, took, _), (_, hot, _)) in cold.iter().zip(&reads) {
            println!(
                "{:<34} p50 {:>8.2}  p99 {:>8.2}  ({:.1}× hot p50)",
                format!("archived: {name}"),
                ms(took.0),
                ms(took.1),
                ms(took.0) / ms(hot.0).max(1e-9)
            );
        }
        // BENCH_EXPLAIN_ARCHIVED: SQL statements (`;;` between) profiled
        // over both tiers; `{trace}` stands for a trace's id and `{lo}`,
        // `{hi}` for its time range in the lookup.
        if let Ok(sqls) = std::env::var("BENCH_EXPLAIN_ARCHIVED") {
            let trace = &ids[0];
            let (lo, hi): (u64, u64) = conn
                .query_row(
                    "SELECT min(first_time_unix_nano), max(last_time_unix_nano) FROM trace_index
                     WHERE trace_key = TRY_CAST('0x' || right(?, 16) AS UBIGINT)",
                    [trace],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .expect("the trace's range");
            timing::explain(&conn, &sqls, |sql| {
                sql.replace("{trace}", trace)
                    .replace("{lo}", &lo.to_string())
                    .replace("{hi}", &hi.to_string())
            });
        }
        // Another node's trace: in the archive, not in this node's lookup
        // (its rows removed here to make it so).
        let theirs: Vec<String> = ids.iter().take(rounds.min(5)).cloned().collect();
        for id in &theirs {
            conn.execute(
                "DELETE FROM trace_index WHERE trace_key = TRY_CAST('0x' || right(?, 16) AS UBIGINT)",
                [id],
            )
            .expect("forgetting a trace's lookup rows");
        }
        let foreign = time(theirs.len(), |i| {
            let (store, id) = (store.clone(), theirs[i % theirs.len()].clone());
            async move {
                assert!(store.get_trace(&id).await.expect("trace").is_some());
            }
        })
        .await;
        println!(
            "{:<34} p50 {:>8.2}  p99 {:>8.2}",
            "archived: another node's trace",
            ms(foreign.0),
            ms(foreign.1)
        );
    }
    drop(store);
    drop(conn);
}

type Timed = (&'static str, (Duration, Duration), &'static str);

/// The store's reads, timed: name, p50/p99 and the target.
async fn time_reads(
    store: &Arc<Store>,
    conn: &storage::Conn,
    ids: &[String],
    rounds: usize,
) -> Vec<Timed> {
    let by_id = time(rounds, |i| {
        let store = store.clone();
        let id = ids[i].clone();
        async move {
            let t = store.get_trace(&id).await.expect("trace").expect("found");
            assert_eq!(t.summary.span_count, SPANS_PER_TRACE);
        }
    })
    .await;
    let first_page = time(rounds, |_| {
        let store = store.clone();
        async move {
            let p = store
                .list_traces(TraceQuery::default())
                .await
                .expect("trace list");
            assert_eq!(p.items.len(), 50);
        }
    })
    .await;
    let hour = now_nanos() - 3_600_000_000_000;
    let last_hour = time(rounds, |_| {
        let store = store.clone();
        async move {
            let q = TraceQuery {
                filter: SpanFilter {
                    since: Some(hour),
                    ..Default::default()
                },
                page: PageRequest::default(),
            };
            let p = store.list_traces(q).await.expect("trace list");
            assert_eq!(p.items.len(), 50);
        }
    })
    .await;
    let filtered = time(rounds, |_| {
        let store = store.clone();
        async move {
            let q = SpanQuery {
                filter: SpanFilter {
                    service: Some("svc-3".into()),
                    status: Some("ERROR".into()),
                    ..Default::default()
                },
                page: PageRequest::default(),
            };
            let p = store.query_spans(q).await.expect("span search");
            assert!(!p.items.is_empty());
        }
    })
    .await;
    let now = now_nanos();
    let services = time(rounds.min(10), |_| {
        let store = store.clone();
        async move {
            let s = store
                .services(now - 86_400_000_000_000, now, None)
                .await
                .expect("services");
            assert_eq!(s.len(), 10);
        }
    })
    .await;
    // What the service list cost before `service_minutes`: every span
    // of the day grouped, with t-digest percentiles.
    let services_scan = {
        let conn = &conn;
        time(rounds.min(10), |_| async move {
            let n = conn
                .prepare(
                    "SELECT service_name, count(*), count(*) FILTER (WHERE status_code = 'ERROR'), \
                     approx_quantile(duration_ns, 0.5), approx_quantile(duration_ns, 0.95), \
                     approx_quantile(duration_ns, 0.99), max(start_time_unix_nano) \
                     FROM spans WHERE start_time_unix_nano >= ? AND start_time_unix_nano < ? \
                     GROUP BY service_name",
                )
                .expect("preparing")
                .query_map([now - 86_400_000_000_000, now], |_| Ok(()))
                .expect("scanning")
                .count();
            assert_eq!(n, 10);
        })
        .await
    };
    vec![
        (
            "trace by id (tree + logs)",
            by_id,
            "   target ≤ 10 ms at 10 M",
        ),
        ("trace list, first page", first_page, "   target ≤ 50 ms"),
        ("trace list, first page, last 1 h", last_hour, ""),
        ("spans: service=svc-3 status=error", filtered, ""),
        ("services, 24 h, p50/p95/p99", services, ""),
        ("  before: services straight from spans", services_scan, ""),
    ]
}
