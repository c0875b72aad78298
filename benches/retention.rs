//! Retention benchmark: does the database file stay bounded under steady
//! ingest with a size limit, and does retention leave ingest alone?
//!
//! Runs a qyl server in this process with `storage.max_db_size_mb` small
//! (default 64) and retention every few seconds, feeds its writer a steady
//! stream of traces (spans shaped like real HTTP / DB / GenAI spans, a log
//! per trace, metric points) for BENCH_SECS, and prints every few seconds the
//! file and WAL size, the used bytes retention measured, and what it deleted;
//! then the plateau, the totals and the commit latency seen by the
//! producers while retention was deleting.
//!
//! Environment: BENCH_SECS (default 60), BENCH_MAX_MB (64; 0 runs without
//! any retention, as a baseline), BENCH_RATE (spans per second, default
//! 10000, below what this 2-core machine sustains), BENCH_INTERVAL (retention seconds, 5),
//! BENCH_ARCHIVE=N (move windows of one minute to the Parquet archive N
//! minutes after they end; the limit then counts the archive too, and the
//! table shows it and the disk in use: file, journal and archive).

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use qyl::config::Config;
use qyl::model::{Batch, LogRecord, MetricPoint, SpanRecord};
use qyl::server::Server;
use qyl::storage::writer::WriterHandle;

// The same allocator as the `qyl` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SPANS_PER_TRACE: u64 = 8;
const SPANS_PER_BATCH: u64 = 1024;
const PRODUCERS: u64 = 4;
const AGENTS: &[&str] = &[
    "python-requests/2.32.3",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0",
    "OpenAI/Python 1.54.4",
    "curl/8.5.0",
];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// A cheap, well-mixed number per (a, b), so ids and values do not repeat
/// and DuckDB cannot compress them away.
fn mix(a: u64, b: u64) -> u64 {
    let mut x = a.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ b.wrapping_add(0x632b_e59b_d9b4_e019);
    x ^= x >> 31;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^ (x >> 29)
}

fn batch(producer: u64, n: u64) -> Batch {
    let now = now_ns();
    let mut b = Batch::default();
    for i in 0..SPANS_PER_BATCH / SPANS_PER_TRACE {
        let t = n * SPANS_PER_BATCH + i * SPANS_PER_TRACE;
        let trace_id = format!("{:016x}{:016x}", mix(producer, t), mix(t, producer));
        for s in 0..SPANS_PER_TRACE {
            let r = mix(t + s, 7);
            let (name, kind, extra) = match s {
                0 => ("POST /v1/chat", "SERVER", String::new()),
                1 => (
                    "chat gpt-4o",
                    "CLIENT",
                    format!(
                        r#","gen_ai.request.model":"gpt-4o","gen_ai.usage.input_tokens":{},"gen_ai.usage.output_tokens":{}"#,
                        r % 4000,
                        r % 900
                    ),
                ),
                _ => (
                    "SELECT orders",
                    "CLIENT",
                    format!(
                        r#","db.system":"postgresql","db.statement":"SELECT * FROM orders WHERE id = {}""#,
                        r % 100_000
                    ),
                ),
            };
            let start = now - 50_000_000 + s * 1_000_000;
            let duration = 100_000 + r % 40_000_000;
            b.spans.push(SpanRecord {
                trace_id: trace_id.as_str().into(),
                span_id: format!("{:016x}", mix(t + s, producer)).into(),
                parent_span_id: (s > 0).then(|| format!("{:016x}", mix(t, producer)).into()),
                name: name.into(),
                kind,
                start_time_unix_nano: start,
                end_time_unix_nano: start + duration,
                duration_ns: duration,
                status_code: if r % 50 == 0 { "ERROR" } else { "UNSET" },
                service_name: format!("svc-{}", r % 5).into(),
                attributes: format!(
                    r#"{{"http.request.method":"POST","url.path":"/v1/chat/{}","http.response.status_code":200,"user.id":"u-{:x}","session.id":"s-{:x}","request.id":"{:016x}{:016x}","client.address":"10.{}.{}.{}","user_agent.original":"{}"{extra}}}"#,
                    r % 1000,
                    r % 50_000,
                    mix(t, 3) % 10_000,
                    mix(r, 1),
                    mix(r, 2),
                    r % 256,
                    (r >> 8) % 256,
                    (r >> 16) % 256,
                    AGENTS[(r % AGENTS.len() as u64) as usize],
                ),
                resource: r#"{"service.name":"svc","telemetry.sdk.language":"python","host.name":"node-3"}"#.into(),
                events: "[]".into(),
                links: "[]".into(),
                ..Default::default()
            });
        }
        b.logs.push(LogRecord {
            time_unix_nano: now,
            observed_time_unix_nano: now,
            trace_id: Some(trace_id),
            span_id: Some(format!("{:016x}", mix(t, producer))),
            severity_number: 9,
            body: Some(format!("handled request {} in {} ms", mix(t, 5), t % 997)),
            service_name: "svc-0".into(),
            attributes: "{}".into(),
            resource: "{}".into(),
            ..Default::default()
        });
        b.metrics.push(MetricPoint {
            time_unix_nano: now,
            start_time_unix_nano: now - 1_000_000_000,
            name: "http.server.duration".into(),
            kind: "gauge",
            value: Some((mix(t, 9) % 10_000) as f64),
            service_name: "svc-0".into(),
            attributes: format!(r#"{{"route":"/v1/chat/{}"}}"#, t % 100),
            resource: "{}".into(),
            ..Default::default()
        });
    }
    b
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

/// The bytes of the files under `dir`, recursively (0 if it is missing).
fn dir_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| {
            let path = e.path();
            if path.is_dir() {
                dir_size(&path)
            } else {
                file_len(&path)
            }
        })
        .sum()
}

fn mib(b: u64) -> f64 {
    b as f64 / (1 << 20) as f64
}

fn produce(
    writer: WriterHandle,
    producer: u64,
    per_sec: u64,
    stop: Arc<AtomicBool>,
    spans: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<Duration>>>,
) {
    let every = Duration::from_secs_f64(SPANS_PER_BATCH as f64 / per_sec.max(1) as f64);
    let mut next = Instant::now();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let b = batch(producer, n);
        n += 1;
        let started = Instant::now();
        match writer.submit(b) {
            Ok(rx) => match rx.blocking_recv() {
                Ok(Ok(done)) => {
                    spans.fetch_add(done.spans as u64, Ordering::Relaxed);
                    latencies
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(started.elapsed());
                }
                other => eprintln!("commit failed: {other:?}"),
            },
            Err(e) => eprintln!("refused: {e}"),
        }
        next += every;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            // Behind schedule (the machine is saturated): do not burst.
            next = now;
        }
    }
}

fn main() -> anyhow::Result<()> {
    let secs = env_or("BENCH_SECS", 60);
    let max_mb = env_or("BENCH_MAX_MB", 64);
    let rate = env_or("BENCH_RATE", 10_000);
    let interval = env_or("BENCH_INTERVAL", 5);
    let dir = tempfile::tempdir()?;
    let db = dir.path().join("qyl.duckdb");
    let wal = dir.path().join("qyl.duckdb.wal");
    let mut config = Config::defaults().on_free_ports(&db);
    config.storage.max_db_size_mb = max_mb;
    // Not the repository's example scripts/: the load is ingest alone.
    config.functions.dir = dir.path().join("no-scripts");
    if max_mb == 0 {
        config.storage.retention_hours = 0;
    }
    config.storage.retention_interval_secs = interval;
    let archive = std::env::var("BENCH_ARCHIVE")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let archive_dir = dir.path().join("archive");
    let journal_dir = dir.path().join("qyl.duckdb.journal");
    if let Some(after) = archive {
        config.archive.path = archive_dir.to_string_lossy().into_owned();
        config.archive.window_minutes = 1;
        config.archive.after_minutes = after;
    }
    let rt = tokio::runtime::Runtime::new()?;
    let server = rt.block_on(Server::start(&config))?;
    let stats = server.retention_stats();
    let wanted_spans = rate * secs;
    println!(
        "retention bench: {secs} s at {rate} spans/s (+1 log and 1 metric point per {SPANS_PER_TRACE} spans), \
         max_db_size_mb = {max_mb}, retention every {interval} s, checkpoint every {} s",
        config.storage.checkpoint_interval_secs
    );
    let stop = Arc::new(AtomicBool::new(false));
    let spans = Arc::new(AtomicU64::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (w, stop, spans, lat) = (
                server.writer(),
                stop.clone(),
                spans.clone(),
                latencies.clone(),
            );
            std::thread::spawn(move || produce(w, p, rate / PRODUCERS, stop, spans, lat))
        })
        .collect();

    println!(
        "{:>5} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7} {:>11} {:>11} {:>9}",
        "t(s)",
        "spans in",
        "file MiB",
        "wal MiB",
        "arch MiB",
        "disk MiB",
        "used MiB",
        "free MiB",
        "passes",
        "spans del",
        "logs del",
        "pass ms"
    );
    let started = Instant::now();
    let mut samples = Vec::new();
    let tick = Duration::from_secs(5);
    let mut next = started + tick;
    while started.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next += tick;
        let (file, w) = (file_len(&db), file_len(&wal));
        let cold = dir_size(&archive_dir);
        let disk = file + w + cold + dir_size(&journal_dir);
        let t = started.elapsed().as_secs_f64();
        samples.push((t, file, disk));
        println!(
            "{:>5.0} {:>10} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7} {:>11} {:>11} {:>9.0}",
            t,
            spans.load(Ordering::Relaxed),
            mib(file),
            mib(w),
            mib(cold),
            mib(disk),
            mib(stats.used_bytes.load(Ordering::Relaxed)),
            mib(stats.free_bytes.load(Ordering::Relaxed)),
            stats.passes.load(Ordering::Relaxed),
            stats.spans_deleted.load(Ordering::Relaxed),
            stats.logs_deleted.load(Ordering::Relaxed),
            stats.last_pass_micros.load(Ordering::Relaxed) as f64 / 1000.0,
        );
    }
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        let _ = p.join();
    }
    let ingested = spans.load(Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let mut lat = latencies.lock().unwrap_or_else(|p| p.into_inner()).clone();
    lat.sort();
    let pct = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    let half = samples.len() / 2;
    let max_first = samples[..half].iter().map(|s| s.1).max().unwrap_or(0);
    let max_second = samples[half..].iter().map(|s| s.1).max().unwrap_or(0);
    let disk_second = samples[half..].iter().map(|s| s.2).max().unwrap_or(0);
    println!();
    println!(
        "ingested {ingested} spans in {elapsed:.0} s ({:.0}/s; {wanted_spans} wanted)",
        ingested as f64 / elapsed,
    );
    println!(
        "deleted: {} traces, {} spans, {} logs, {} metric points in {} passes ({} failed, last error {:?})",
        stats.traces_deleted.load(Ordering::Relaxed),
        stats.spans_deleted.load(Ordering::Relaxed),
        stats.logs_deleted.load(Ordering::Relaxed),
        stats.metrics_deleted.load(Ordering::Relaxed),
        stats.passes.load(Ordering::Relaxed),
        stats.failed_passes.load(Ordering::Relaxed),
        stats.last_error()
    );
    println!(
        "file: max {:.1} MiB in the first half, {:.1} MiB in the second (limit {max_mb} MiB); \
         disk (file, journal, archive): max {:.1} MiB in the second half",
        mib(max_first),
        mib(max_second),
        mib(disk_second)
    );
    if archive.is_some() {
        println!(
            "archive: {} windows moved ({} rows), {} dropped",
            stats.archived_parts.load(Ordering::Relaxed),
            stats.archived_rows.load(Ordering::Relaxed),
            stats.dropped_parts.load(Ordering::Relaxed)
        );
    }
    println!(
        "commit latency per {SPANS_PER_BATCH}-span batch: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms ({} batches)",
        pct(0.5),
        pct(0.99),
        lat.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        lat.len()
    );
    rt.block_on(server.shutdown())?;
    Ok(())
}
