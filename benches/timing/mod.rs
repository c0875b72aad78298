//! Timing helpers shared by the read-side benchmarks (`query`, `genai`):
//! each query runs once to warm caches, then `rounds` timed times, and is
//! reported as p50 / p99 in milliseconds. The database sizes and round
//! counts come from BENCH_SPANS and BENCH_ROUNDS, the data shapes from
//! BENCH_SHAPES, DuckDB's memory limit from QYL_STORAGE_MEMORY_LIMIT_MB.
#![allow(dead_code)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 and p99 of `rounds` runs of `f` (given the round number), after one
/// untimed run that warms caches, as a running server's would be.
pub async fn time<F, Fut>(rounds: usize, mut f: F) -> (Duration, Duration)
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    f(0).await;
    let mut times = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let t = Instant::now();
        f(i + 1).await;
        times.push(t.elapsed());
    }
    times.sort();
    (percentile(&times, 0.5), percentile(&times, 0.99))
}

/// BENCH_SPANS: the database sizes to generate, comma-separated (default
/// 1 M and 10 M spans).
pub fn sizes() -> Vec<u64> {
    std::env::var("BENCH_SPANS")
        .unwrap_or_else(|_| "1000000,10000000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect()
}

/// BENCH_ROUNDS: timed runs per query, else `default`.
pub fn rounds(default: usize) -> usize {
    std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// How the generated spans lie in time: `spread` puts them over the 24 h
/// before the run (~115 spans/s at 10 M), `dense` over its last 10 minutes
/// (~17k spans/s at 10 M, what a busy system writes).
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub name: &'static str,
    /// The time the spans cover, ending at the run's start.
    pub window_ns: u64,
}

pub const SPREAD: Shape = Shape {
    name: "spread",
    window_ns: 86_400_000_000_000,
};
pub const DENSE: Shape = Shape {
    name: "dense",
    window_ns: 600_000_000_000,
};

/// BENCH_SHAPES: the data shapes to generate for each size, comma-separated
/// (`spread`, `dense`; default both).
pub fn shapes() -> Vec<Shape> {
    std::env::var("BENCH_SHAPES")
        .unwrap_or_else(|_| "spread,dense".into())
        .split(',')
        .filter_map(|s| match s.trim() {
            "spread" => Some(SPREAD),
            "dense" => Some(DENSE),
            _ => None,
        })
        .collect()
}

/// BENCH_EXPLAIN: runs each statement of `sqls` (separated by `;;`, with
/// `fill` replacing placeholders) once, timed, and prints DuckDB's
/// EXPLAIN ANALYZE of it.
pub fn explain(conn: &qyl::storage::Conn, sqls: &str, fill: impl Fn(&str) -> String) {
    for sql in sqls.split(";;") {
        let sql = fill(sql);
        let t = Instant::now();
        conn.execute_batch(&sql).expect("running");
        println!("{:.1} ms: {sql}", ms(t.elapsed()));
        let mut stmt = conn
            .prepare(&format!("EXPLAIN ANALYZE {sql}"))
            .expect("explain");
        let plan: Vec<String> = stmt
            .query_map([], |r| r.get::<_, String>(1))
            .expect("explain")
            .filter_map(Result::ok)
            .collect();
        println!("{}", plan.join("\n"));
    }
}

/// A database file in `dir`, under the memory limit QYL_STORAGE_MEMORY_LIMIT_MB
/// gives (as `qyl serve` reads it; DuckDB's default without it), so the
/// queries can be timed as a configured qyl runs them.
pub fn storage_options(dir: &std::path::Path) -> qyl::storage::StorageOptions {
    let mut opts = qyl::storage::StorageOptions::file_in(dir);
    if let Some(mb) = std::env::var("QYL_STORAGE_MEMORY_LIMIT_MB")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        opts.memory_limit_mb = mb;
    }
    opts
}

/// With BENCH_ARCHIVE set: the archive (in `dir`) that the query and GenAI
/// benches move every whole window to after timing the reads once, with
/// windows of an hour for a shape spread over hours and of a minute for a
/// dense one, moved as soon as they end.
pub fn archive_settings(
    dir: &std::path::Path,
    shape: Shape,
) -> Option<qyl::storage::archive::ArchiveSettings> {
    std::env::var_os("BENCH_ARCHIVE")?;
    let window_minutes = if shape.window_ns > 3_600_000_000_000 {
        60
    } else {
        1
    };
    Some(
        qyl::storage::archive::ArchiveSettings::new(
            &dir.join("archive"),
            window_minutes,
            0,
            "bench",
        )
        .expect("the archive directory"),
    )
}
