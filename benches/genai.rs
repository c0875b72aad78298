//! GenAI and session benchmark: how fast the GenAI statistics and the
//! session list answer on a large database.
//!
//! For each size (default 1 M and 10 M spans: traces of 10 spans across 10
//! services with one priced GenAI call each, ~1% errors, four traces per
//! session) and each data shape (`spread` over the last 24 h; `dense` over
//! the last 10 minutes, as a busy system writes them; the statistics still
//! cover 24 h), it generates a DuckDB file in time order, with
//! `session_traces` and `session_entities` filled as the writer would have
//! left them, then times through the store (the interface REST, MCP and Lua
//! share), in process (`genai_minutes` and `genai_minute_labels` are filled
//! as the writer would, too):
//!   - GenAI stats over 24 h (totals, per model, 60 buckets; latency and
//!     time-to-first-chunk percentiles) — target ≤ 100 ms p50 at 10 M,
//!   - GenAI per-model detail over 24 h, and the newest page of GenAI calls,
//!   - the session list's first page (default sort; active only; by cost)
//!     and its second page by cursor — target ≤ 50 ms p50,
//!   - one session with its traces, and its spans' first page.
//!
//! The baseline, measured in the same run, is a bare
//! `SELECT count(*) FROM spans WHERE start_time_unix_nano >= ?` over the
//! same 24 h on a plain connection: the cost of touching every span once.
//! Environment: BENCH_SPANS (comma list, default "1000000,10000000"),
//! BENCH_SHAPES (comma list, default "spread,dense"),
//! BENCH_ROUNDS (timed repetitions per query, default 20), BENCH_EXPLAIN
//! (SQL statements separated by `;;`, `{t0}` standing for the window's
//! start: each is timed and DuckDB's profile printed, to study a query),
//! QYL_STORAGE_MEMORY_LIMIT_MB (DuckDB's memory limit, as `qyl serve` reads
//! it).

use std::sync::Arc;
use std::time::{Duration, Instant};

mod timing;
use timing::{ms, now_nanos, time, Shape};

use qyl::model::genai::{GenAiSpanQuery, SessionQuery, SessionSort};
use qyl::model::query::{GenAiFilter, PageRequest};
use qyl::storage::{self, Store};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SPANS_PER_TRACE: u64 = 10;
const TRACES_PER_SESSION: u64 = 4;

/// Spans generated inside DuckDB (vectorised) in time order, then the
/// session tables aggregated from them exactly as the writer keeps them.
fn generate(conn: &storage::Conn, spans: u64, t0: u64, window_ns: u64) {
    let traces = spans / SPANS_PER_TRACE;
    let gap = window_ns / traces.max(1);
    let llm = "i % 10 = 5";
    let sql = format!(
        "INSERT INTO span_rows BY NAME SELECT
            md5_number(CAST(i // 10 AS VARCHAR)) AS trace_id,
            md5_number_lower(CAST(i AS VARCHAR)) AS span_id,
            CASE WHEN i % 10 = 0 THEN NULL ELSE md5_number_lower(CAST(i - i % 10 AS VARCHAR)) END AS parent_span_id,
            CASE WHEN i % 10 = 0 THEN 'POST /chat' WHEN {llm} THEN 'chat gpt-4o' ELSE 'op-' || (i % 10) END AS name,
            CASE WHEN i % 10 = 0 THEN 'SERVER' WHEN {llm} THEN 'CLIENT' ELSE 'INTERNAL' END AS kind,
            {t0} + (i // 10) * {gap} + (i % 10) * 1000000 AS start_time_unix_nano,
            {t0} + (i // 10) * {gap} + (i % 10) * 1000000 + ((i * 7919) % 500 + 1) * 1000000 AS end_time_unix_nano,
            ((i * 7919) % 500 + 1) * 1000000 AS duration_ns,
            CASE WHEN i % 97 = 0 THEN 'ERROR' ELSE 'UNSET' END AS status_code,
            'svc-' || ((i // 10) % 10) AS service_name,
            'sess-' || (i // {per_session}) AS session_id,
            CASE WHEN {llm} THEN (['openai', 'anthropic', 'google'])[(i // 10) % 3 + 1] END AS gen_ai_provider,
            CASE WHEN {llm} THEN 'chat' END AS gen_ai_operation,
            CASE WHEN {llm} THEN (['gpt-4o', 'claude-sonnet-4-5', 'gemini-2.5-flash'])[(i // 10) % 3 + 1] END AS gen_ai_request_model,
            CASE WHEN {llm} THEN (['gpt-4o-2024-08-06', 'claude-sonnet-4-5-20250929', 'gemini-2.5-flash'])[(i // 10) % 3 + 1] END AS gen_ai_response_model,
            CASE WHEN {llm} THEN 100 + i % 900 END AS gen_ai_input_tokens,
            CASE WHEN {llm} THEN 10 + i % 300 END AS gen_ai_output_tokens,
            CASE WHEN {llm} THEN (i % 900) // 2 END AS gen_ai_cache_read_tokens,
            CASE WHEN {llm} THEN '[\"stop\"]' END AS gen_ai_finish_reasons,
            CASE WHEN {llm} THEN (100 + i % 900) * 2.5e-6 + (10 + i % 300) * 1e-5 END AS gen_ai_cost_usd,
            CASE WHEN {llm} THEN 'priced' END AS gen_ai_cost_source,
            CASE WHEN {llm} AND i % 20 = 5 THEN 50.0 + i % 400 END AS gen_ai_time_to_first_chunk_ms,
            CASE WHEN {llm} AND i % 97 = 0 THEN 'RateLimitError' END AS error_type,
            '{{\"user.id\":\"u' || ((i // 10) % 1000) || '\"}}' AS attributes,
            '{{\"service.name\":\"svc-' || ((i // 10) % 10) || '\"}}' AS resource,
            NULL AS events, NULL AS links,
            0 AS dropped_attributes_count, 0 AS dropped_events_count, 0 AS dropped_links_count,
            i + 1 AS ingest_seq
         FROM range({spans}) t(i)",
        per_session = SPANS_PER_TRACE * TRACES_PER_SESSION,
    );
    // The generation is not a query qyl makes (string_agg DISTINCT over
    // every span, 1 M groups, does not spill): it runs under a larger
    // memory limit than the one the reads are then timed under.
    let limit: String = conn
        .query_row("SELECT current_setting('memory_limit')", [], |r| r.get(0))
        .expect("the memory limit");
    conn.execute_batch("SET memory_limit = '8GB'")
        .expect("a larger limit for the generation");
    conn.execute_batch("SET threads = 1").expect("one thread");
    conn.execute_batch(&sql).expect("generating spans");
    conn.execute_batch("RESET threads").expect("threads");
    conn.execute_batch(
        "INSERT INTO session_trace_rows
         SELECT session_id, qyl_trace_key(trace_id), min(start_time_unix_nano), max(end_time_unix_nano),
                count(*), count(*) FILTER (WHERE status_code = 'ERROR'),
                count(gen_ai_provider), coalesce(sum(gen_ai_input_tokens), 0),
                coalesce(sum(gen_ai_output_tokens), 0), coalesce(sum(gen_ai_cache_read_tokens), 0),
                0, coalesce(sum(gen_ai_cost_usd), 0), 0,
                coalesce(string_agg(DISTINCT gen_ai_response_model, chr(31)), ''),
                string_agg(DISTINCT service_name, chr(31)),
                'u' || (hash(session_id) % 1000)
         FROM spans GROUP BY session_id, trace_id ORDER BY min(start_time_unix_nano);
         INSERT INTO session_entities
         SELECT session_id, min(first_seen_unix_nano), max(last_seen_unix_nano),
                sum(span_count), count(*), sum(error_count), sum(gen_ai_requests),
                sum(gen_ai_input_tokens), sum(gen_ai_output_tokens),
                sum(gen_ai_cache_read_tokens), 0, sum(gen_ai_cost_usd), 0,
                list_sort(list_distinct(flatten(list(string_split(models, chr(31)))))),
                list_sort(list_distinct(flatten(list(string_split(services, chr(31)))))),
                list_distinct(list(users))
         FROM session_traces GROUP BY session_id ORDER BY min(first_seen_unix_nano);
         INSERT INTO genai_minutes
         SELECT start_time_unix_nano // 60000000000 * 60000000000 AS m, service_name,
                gen_ai_provider, gen_ai_request_model, gen_ai_response_model, 0,
                floor(log2(greatest(duration_ns, 1)) * 8)::INTEGER, gen_ai_response_model, count(*),
                count(*) FILTER (WHERE status_code = 'ERROR'), sum(gen_ai_input_tokens),
                sum(gen_ai_output_tokens), sum(gen_ai_cache_read_tokens), 0, 0,
                sum(gen_ai_cost_usd), 0, min(duration_ns), max(duration_ns)
         FROM spans WHERE gen_ai_provider IS NOT NULL GROUP BY ALL ORDER BY m;
         INSERT INTO genai_minutes
         SELECT start_time_unix_nano // 60000000000 * 60000000000 AS m, service_name,
                gen_ai_provider, gen_ai_request_model, gen_ai_response_model, 1,
                floor(log2(greatest(gen_ai_time_to_first_chunk_ms, 1)) * 8)::INTEGER,
                gen_ai_response_model, count(*), 0, 0, 0, 0, 0, 0, 0, 0,
                min(gen_ai_time_to_first_chunk_ms), max(gen_ai_time_to_first_chunk_ms)
         FROM spans WHERE gen_ai_time_to_first_chunk_ms IS NOT NULL GROUP BY ALL ORDER BY m;",
    )
    .expect("building the session tables");
    conn.execute_batch(storage::writer::derived::genai_rollup::LABELS_FILL_SQL)
        .expect("counting error classes and finish reasons per minute");
    conn.execute_batch("CHECKPOINT").expect("checkpointing");
    conn.execute_batch(&format!("SET memory_limit = '{limit}'"))
        .expect("the configured limit again");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sizes = timing::sizes();
    let rounds = timing::rounds(20);
    println!("GenAI and session benchmark: {rounds} rounds per query, p50 / p99 in ms");
    let shapes = timing::shapes();
    for spans in sizes {
        for shape in &shapes {
            run(spans, *shape, rounds).await;
        }
    }
}

/// Generates one database and times the queries on it.
async fn run(spans: u64, shape: Shape, rounds: usize) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut opts = timing::storage_options(dir.path());
    let archive = timing::archive_settings(dir.path(), shape);
    opts.archive = archive.clone();
    let path = opts.path.clone();
    let db = storage::open(&opts).expect("opening the database");
    let now = now_nanos();
    // The statistics' window: the day before the run, which the
    // generated spans end.
    let t0 = now - 86_400_000_000_000;
    let conn = db.connect().expect("connecting");
    let gen_start = Instant::now();
    generate(&conn, spans, now - shape.window_ns, shape.window_ns);
    let sessions: i64 = conn
        .query_row("SELECT count(*) FROM session_entities", [], |r| r.get(0))
        .expect("counting sessions");
    let count = |table: &str| -> i64 {
        conn.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))
            .expect("counting rows")
    };
    println!(
        "\n== {spans} spans ({} traces, {} GenAI calls, {sessions} sessions), {} ({:.0} min), generated in {:.1} s",
        spans / SPANS_PER_TRACE,
        spans / SPANS_PER_TRACE,
        shape.name,
        shape.window_ns as f64 / 60e9,
        gen_start.elapsed().as_secs_f64(),
    );
    println!(
        "   genai_minutes {} rows, genai_minute_labels {} rows, session_traces {} rows",
        count("genai_minutes"),
        count("genai_minute_labels"),
        count("session_traces"),
    );
    if let Ok(sqls) = std::env::var("BENCH_EXPLAIN") {
        timing::explain(&conn, &sqls, |sql| sql.replace("{t0}", &t0.to_string()));
    }
    let store = Arc::new(Store::new(db.clone(), &path, 4, Duration::from_secs(60)));

    let baseline = {
        let conn = &conn;
        time(rounds, |_| async move {
            let n: i64 = conn
                .query_row(
                    "SELECT count(*) FROM spans WHERE start_time_unix_nano >= ?",
                    [t0],
                    |r| r.get(0),
                )
                .expect("counting");
            assert_eq!(n as u64, spans);
        })
        .await
    };
    let timed = time_queries(&store, spans, sessions as u64, now, t0, rounds).await;
    let line = |name: &str, (p50, p99): (Duration, Duration), target: &str| {
        println!(
            "{name:<40} p50 {:>8.2}  p99 {:>8.2}  ({:.1}× baseline p50){target}",
            ms(p50),
            ms(p99),
            ms(p50) / ms(baseline.0).max(1e-9)
        );
    };
    line("baseline: count(*) over 24 h", baseline, "");
    for (name, took, target) in &timed {
        line(name, *took, target);
    }
    // BENCH_ARCHIVE=1: move every whole window to the Parquet archive and
    // time the same reads over both tiers. The statistics and the session
    // list read rollups kept in the file; calls and session spans read the
    // spans, wherever they are.
    if let Some(settings) = archive {
        let t = Instant::now();
        let moved = storage::archive::archive_due(&conn, &settings, now_nanos(), &|| false)
            .expect("archiving");
        conn.execute_batch("CHECKPOINT").expect("checkpointing");
        println!(
            "archived {} rows in {} files in {:.1} s",
            moved.rows,
            moved.parts,
            t.elapsed().as_secs_f64()
        );
        let cold = time_queries(&store, spans, sessions as u64, now, t0, rounds).await;
        for ((name, took, _), (_, hot, _)) in cold.iter().zip(&timed) {
            println!(
                "{:<40} p50 {:>8.2}  p99 {:>8.2}  ({:.1}× in the file)",
                format!("archived: {name}"),
                ms(took.0),
                ms(took.1),
                ms(took.0) / ms(hot.0).max(1e-9)
            );
        }
    }
    drop(store);
    drop(conn);
}

type Timed = (&'static str, (Duration, Duration), &'static str);

/// The store's GenAI and session reads, timed: name, p50/p99, target.
async fn time_queries(
    store: &Arc<Store>,
    spans: u64,
    sessions: u64,
    now: u64,
    t0: u64,
    rounds: usize,
) -> Vec<Timed> {
    let day = GenAiFilter {
        since: t0,
        until: now + 1,
        step_ns: 86_400_000_000_000 / 60,
        ..Default::default()
    };
    let stats = time(rounds, |_| {
        let store = store.clone();
        let f = day.clone();
        async move {
            let s = store.genai_stats(f).await.expect("stats");
            assert_eq!(s.totals.requests, spans / SPANS_PER_TRACE);
            assert_eq!(s.by_model.len(), 3);
        }
    })
    .await;
    let stats_model = time(rounds, |_| {
        let store = store.clone();
        let f = GenAiFilter {
            model: Some("gpt-4o".into()),
            service: Some("svc-3".into()),
            ..day.clone()
        };
        async move {
            store.genai_stats(f).await.expect("stats");
        }
    })
    .await;
    let models = time(rounds.min(10), |_| {
        let store = store.clone();
        let f = day.clone();
        async move {
            let m = store.genai_models(f).await.expect("models");
            assert_eq!(m.models.len(), 3);
        }
    })
    .await;
    let calls = time(rounds, |_| {
        let store = store.clone();
        let f = day.clone();
        async move {
            let p = store
                .genai_spans(GenAiSpanQuery {
                    filter: f,
                    ..Default::default()
                })
                .await
                .expect("calls");
            assert_eq!(p.items.len(), 50);
        }
    })
    .await;
    let list = |q: SessionQuery| {
        let store = store.clone();
        async move {
            let p = store.list_sessions(q, now_nanos()).await.expect("sessions");
            assert_eq!(p.items.len(), 50);
            p
        }
    };
    let first_page = time(rounds, |_| {
        let l = list(SessionQuery::default());
        async move {
            l.await;
        }
    })
    .await;
    let active = time(rounds, |_| {
        let l = list(SessionQuery {
            active_since: Some(now - 30 * 60 * 1_000_000_000),
            ..Default::default()
        });
        async move {
            l.await;
        }
    })
    .await;
    let by_cost = time(rounds, |_| {
        let l = list(SessionQuery {
            sort: SessionSort::Cost,
            ..Default::default()
        });
        async move {
            l.await;
        }
    })
    .await;
    let cursor = list(SessionQuery::default()).await.next_cursor;
    let second_page = time(rounds, |_| {
        let page = PageRequest {
            limit: 50,
            cursor: cursor
                .as_deref()
                .and_then(qyl::model::query::Cursor::decode),
        };
        let l = list(SessionQuery {
            page,
            ..Default::default()
        });
        async move {
            l.await;
        }
    })
    .await;
    let by_user = time(rounds, |_| {
        let store = store.clone();
        async move {
            let q = SessionQuery {
                user: Some("u7".into()),
                ..Default::default()
            };
            store.list_sessions(q, now_nanos()).await.expect("sessions");
        }
    })
    .await;
    let ids: Vec<String> = (0..=rounds as u64)
        .map(|k| format!("sess-{}", (k * 7_919) % sessions))
        .collect();
    let detail = time(rounds, |i| {
        let store = store.clone();
        let id = ids[i].clone();
        async move {
            let d = store
                .get_session(id, now_nanos())
                .await
                .expect("session")
                .expect("found");
            assert_eq!(d.traces.len() as u64, TRACES_PER_SESSION);
        }
    })
    .await;
    let session_spans = time(rounds, |i| {
        let store = store.clone();
        let id = ids[i].clone();
        async move {
            let p = store
                .session_spans(id, PageRequest::default(), now_nanos())
                .await
                .expect("spans")
                .expect("found");
            assert_eq!(p.items.len(), 40);
        }
    })
    .await;
    vec![
        ("genai stats, 24 h, 60 buckets", stats, "   target ≤ 100 ms"),
        ("genai stats, one model + service", stats_model, ""),
        ("genai models, 24 h", models, ""),
        ("genai calls, newest page", calls, ""),
        ("sessions, first page", first_page, "   target ≤ 50 ms"),
        ("sessions, first page, active only", active, ""),
        ("sessions, first page, by cost", by_cost, ""),
        ("sessions, second page (cursor)", second_page, ""),
        ("sessions, one user", by_user, ""),
        ("session detail (traces)", detail, ""),
        ("session spans, first page", session_spans, ""),
    ]
}
