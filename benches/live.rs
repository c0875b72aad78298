//! Live-stream benchmark: what 100 connected SSE clients cost ingest.
//!
//! The hub promises that consumers never slow the writer; this measures the
//! whole cost instead (the streams share the machine's cores with ingest). In
//! one run it starts a fresh in-process qyl twice and drives OTLP/HTTP
//! protobuf ingest the same way `benches/ingest.rs` does (several clients,
//! 512-span exports, ids patched into a pre-encoded request) and alternates
//! windows (a) with no live stream open and (b) with BENCH_SSE (default 100)
//! clients on `GET /api/v1/live`, each reading everything it is sent and
//! reconnecting with Last-Event-ID when its stream ends (as EventSource
//! does), e.g. after `lagged`. Alternating on one server gives both the same
//! database size and the same background load. It prints both ingest rates,
//! their ratio (target ≥ 0.95), what the streams delivered, and the CPU used
//! by qyl, the ingest clients and the SSE readers.
//!
//! This runs once per query in BENCH_SSE_QUERIES (`;`-separated, default
//! `;status=error`: every span and log, then only error spans).
//!
//! With BENCH_RATE (spans/s) the clients send at that rate instead of as
//! fast as they can, and the figure to read is export latency (p50/p99, timed
//! from when each export was due) with and without the streams: at a rate
//! ingest can sustain, the ratio of rates is 1 by construction.
//!
//! It also prints qyl's CPU by thread in both kinds of window, and how long
//! each thread was ready to run but waited for a core (schedstat): a thread
//! can lose time to a busy machine without doing more work itself. With
//! BENCH_READERS_IDLE set, the SSE readers run at the lowest CPU priority
//! (`SCHED_IDLE`), standing in for clients on other machines, so that what
//! is left of the cost is qyl's own.
//!
//! Environment: BENCH_SECS (measured seconds per query, default 24),
//! BENCH_CLIENTS (ingest clients, default 8), BENCH_SSE (default 100),
//! BENCH_SSE_QUERIES, BENCH_RATE, BENCH_READERS_IDLE.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use qyl::config::Config;
use qyl::server::Server;

// The same allocator as the `qyl` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use common::*;

/// What the SSE readers saw, summed over all of them.
#[derive(Default)]
struct Delivered {
    events: AtomicU64,
    bytes: AtomicU64,
    lagged: AtomicU64,
    gaps: AtomicU64,
    reconnects: AtomicU64,
    /// Events per stream, to see whether every stream is served.
    per_stream: Vec<AtomicU64>,
}

/// One EventSource-like reader: reads everything, remembers the last id,
/// reconnects with it when the stream ends.
async fn sse_reader(url: String, stop: Arc<AtomicBool>, seen: Arc<Delivered>, me: usize) {
    let http = reqwest::Client::new();
    let mut last_id: Option<String> = None;
    while !stop.load(Ordering::Relaxed) {
        let mut req = http.get(&url);
        if let Some(id) = &last_id {
            req = req.header("last-event-id", id.as_str());
        }
        let resp = match req.send().await {
            Ok(r) if r.status().is_success() => r,
            _ => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let mut body = resp.bytes_stream();
        // Only the tail after the last complete line is kept between chunks.
        let mut carry = Vec::new();
        while let Some(Ok(chunk)) = body.next().await {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            seen.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            carry.extend_from_slice(&chunk);
            let Some(end) = carry.iter().rposition(|b| *b == b'\n') else {
                continue;
            };
            for line in carry[..end].split(|b| *b == b'\n') {
                if let Some(id) = line.strip_prefix(b"id: ") {
                    seen.events.fetch_add(1, Ordering::Relaxed);
                    seen.per_stream[me].fetch_add(1, Ordering::Relaxed);
                    last_id = Some(String::from_utf8_lossy(id).into_owned());
                } else if line == b"event: lagged" {
                    seen.lagged.fetch_add(1, Ordering::Relaxed);
                } else if line == b"event: gap" {
                    seen.gaps.fetch_add(1, Ordering::Relaxed);
                }
            }
            carry.drain(..=end);
        }
        seen.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// CPU seconds so far of this process's threads, by thread name (threads
/// of one name summed). Linux counts in 100 ticks/s.
fn cpu_by_thread() -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let ticks = field(11) + field(12);
        *by_name.entry(name.to_string()).or_insert(0.0) += ticks as f64 / 100.0;
    }
    by_name
}

/// Seconds so far that this process's threads spent runnable but waiting
/// for a core (the kernel's schedstat), by thread name: where a thread that
/// wants CPU does not get it.
fn waits_by_thread() -> std::collections::BTreeMap<String, f64> {
    let mut by_name = std::collections::BTreeMap::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return by_name;
    };
    for task in tasks.flatten() {
        let (Ok(name), Ok(sched)) = (
            std::fs::read_to_string(task.path().join("comm")),
            std::fs::read_to_string(task.path().join("schedstat")),
        ) else {
            continue;
        };
        let waited = sched
            .split(' ')
            .nth(1)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        *by_name.entry(name.trim_end().to_string()).or_insert(0.0) += waited as f64 / 1e9;
    }
    by_name
}

/// (qyl, ingest clients, SSE readers) from [`cpu_by_thread`].
fn cpu_seconds(by_name: &std::collections::BTreeMap<String, f64>) -> (f64, f64, f64) {
    let (mut server, mut clients, mut readers) = (0.0, 0.0, 0.0);
    for (name, secs) in by_name {
        if name.starts_with("bench-client") {
            clients += secs;
        } else if name.starts_with("bench-sse") {
            readers += secs;
        } else {
            server += secs;
        }
    }
    (server, clients, readers)
}

/// What one kind of window (streams off, or on) measured, summed over cycles.
#[derive(Default)]
struct Window {
    spans: u64,
    secs: f64,
    events: u64,
    bytes: u64,
    lagged: u64,
    gaps: u64,
    reconnects: u64,
    /// Fewest and most events one stream received in a window.
    per_stream: Option<(u64, u64)>,
    cpu: (f64, f64, f64),
    /// CPU seconds by qyl thread name.
    threads: std::collections::BTreeMap<String, f64>,
    /// Seconds waiting for a core, by qyl thread name.
    waits: std::collections::BTreeMap<String, f64>,
    /// Export latencies in ms, of exports answered in the window.
    latencies: Vec<f64>,
}

impl Window {
    /// The `p` quantile of export latency in ms (sorts the latencies).
    fn latency(&mut self, p: f64) -> f64 {
        self.latencies.sort_by(f64::total_cmp);
        let n = self.latencies.len();
        if n == 0 {
            return f64::NAN;
        }
        self.latencies[((n - 1) as f64 * p).round() as usize]
    }
    fn rate(&self, n: u64) -> f64 {
        n as f64 / self.secs
    }
    fn cores(&self) -> (f64, f64, f64) {
        (
            self.cpu.0 / self.secs,
            self.cpu.1 / self.secs,
            self.cpu.2 / self.secs,
        )
    }
}

/// `name off/on` for each qyl thread name, in seconds per second of each
/// kind of window, from one of the windows' by-name tallies; names under
/// 0.01 in both are left out.
fn per_thread(
    off: &Window,
    on: &Window,
    tally: impl Fn(&Window) -> &std::collections::BTreeMap<String, f64>,
) -> String {
    let mut names: Vec<_> = tally(on).keys().chain(tally(off).keys()).collect();
    names.sort();
    names.dedup();
    let per_sec = |w: &Window, n: &str| tally(w).get(n).copied().unwrap_or(0.0) / w.secs;
    names
        .into_iter()
        .filter(|n| per_sec(on, n).max(per_sec(off, n)) >= 0.01)
        .map(|n| format!("{n} {:.2}/{:.2}", per_sec(off, n), per_sec(on, n)))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Runtimes {
    server: tokio::runtime::Runtime,
    clients: tokio::runtime::Runtime,
    readers: tokio::runtime::Runtime,
}

/// Counters read at the start of a window.
struct Mark {
    spans: u64,
    events: u64,
    bytes: u64,
    lagged: u64,
    gaps: u64,
    reconnects: u64,
    cpu: (f64, f64, f64),
    threads: std::collections::BTreeMap<String, f64>,
    waits: std::collections::BTreeMap<String, f64>,
    /// How many export latencies were recorded.
    answered: usize,
    at: Instant,
}

fn mark(sent: &AtomicU64, seen: &Delivered, latencies: &Mutex<Vec<f64>>) -> Mark {
    let threads = cpu_by_thread();
    Mark {
        answered: latencies.lock().expect("latencies").len(),
        spans: sent.load(Ordering::Relaxed),
        events: seen.events.load(Ordering::Relaxed),
        bytes: seen.bytes.load(Ordering::Relaxed),
        lagged: seen.lagged.load(Ordering::Relaxed),
        gaps: seen.gaps.load(Ordering::Relaxed),
        reconnects: seen.reconnects.load(Ordering::Relaxed),
        cpu: cpu_seconds(&threads),
        threads,
        waits: waits_by_thread(),
        at: Instant::now(),
    }
}

fn add(w: &mut Window, from: &Mark, to: &Mark, latencies: &Mutex<Vec<f64>>) {
    w.latencies
        .extend_from_slice(&latencies.lock().expect("latencies")[from.answered..to.answered]);
    w.spans += to.spans - from.spans;
    w.secs += (to.at - from.at).as_secs_f64();
    w.events += to.events - from.events;
    w.bytes += to.bytes - from.bytes;
    w.lagged += to.lagged - from.lagged;
    w.gaps += to.gaps - from.gaps;
    w.reconnects += to.reconnects - from.reconnects;
    w.cpu.0 += to.cpu.0 - from.cpu.0;
    w.cpu.1 += to.cpu.1 - from.cpu.1;
    w.cpu.2 += to.cpu.2 - from.cpu.2;
    add_by_name(&mut w.threads, &from.threads, &to.threads);
    add_by_name(&mut w.waits, &from.waits, &to.waits);
}

/// Adds what each qyl thread name's tally grew by from `from` to `to`.
fn add_by_name(
    into: &mut std::collections::BTreeMap<String, f64>,
    from: &std::collections::BTreeMap<String, f64>,
    to: &std::collections::BTreeMap<String, f64>,
) {
    for (name, secs) in to {
        if !name.starts_with("bench-") {
            let before = from.get(name).copied().unwrap_or(0.0);
            *into.entry(name.clone()).or_insert(0.0) += secs - before;
        }
    }
}

/// One qyl under steady ingest, alternating windows without and with `sse`
/// streams (`cycles` of each, off first), so both see the same database
/// size and the same background load from the rest of the machine.
#[allow(clippy::too_many_arguments)]
fn alternate(
    rt: &Runtimes,
    dir: &std::path::Path,
    name: &str,
    template: Arc<Template>,
    clients: usize,
    sse: usize,
    query: &str,
    window: Duration,
    cycles: usize,
    rate: Option<f64>,
) -> (Window, Window) {
    rt.server.block_on(async {
        // QYL_* variables apply, as in benches/ingest.rs.
        let mut config = Config::from_layers(None, std::env::vars()).expect("valid QYL_* settings");
        config.server.http_port = 0;
        config.server.otlp_http_port = 0;
        config.server.grpc_port = 0;
        config.stream.max_clients = config.stream.max_clients.max(sse);
        // Not the repository's example scripts/: the load is ingest alone.
        config.functions.dir = dir.join("no-scripts");
        config.storage.path = dir
            .join(format!("{name}.duckdb"))
            .to_string_lossy()
            .into_owned();
        let server = Server::start(&config).await.expect("starting qyl");
        let addrs = server.addrs;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let latencies = Arc::new(Mutex::new(Vec::new()));
        // Paced: each client sends one export every `every`, the clients
        // spread evenly over that interval.
        let every =
            rate.map(|r| Duration::from_secs_f64(clients as f64 * SPANS_PER_REQUEST as f64 / r));
        let first = Instant::now();
        let mut tasks = Vec::new();
        for c in 0..clients {
            let (template, stop, sent) = (template.clone(), stop.clone(), sent.clone());
            let latencies = latencies.clone();
            tasks.push(rt.clients.spawn(async move {
                let http = reqwest::Client::new();
                let url = format!("http://{}/v1/traces", addrs.otlp_http);
                let mut k = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    // Latency counts from when an export was due, so a
                    // stalled server shows in it even if the client waited.
                    let due = match every {
                        Some(every) => {
                            let at = first + every.mul_f64(k as f64 + c as f64 / clients as f64);
                            tokio::time::sleep_until(at.into()).await;
                            at
                        }
                        None => Instant::now(),
                    };
                    let body = template.request(c as u8 + 1, k);
                    k += 1;
                    let r = http
                        .post(&url)
                        .header("content-type", "application/x-protobuf")
                        .body(body)
                        .send()
                        .await
                        .expect("sending an export");
                    assert_eq!(r.status().as_u16(), 200, "export refused");
                    let _ = r.bytes().await;
                    latencies
                        .lock()
                        .expect("latencies")
                        .push(due.elapsed().as_secs_f64() * 1e3);
                    sent.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
                }
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let (mut off, mut on) = (Window::default(), Window::default());
        for _ in 0..cycles {
            let idle = Arc::new(Delivered::default());
            let start = mark(&sent, &idle, &latencies);
            tokio::time::sleep(window).await;
            add(
                &mut off,
                &start,
                &mark(&sent, &idle, &latencies),
                &latencies,
            );

            let seen = Arc::new(Delivered {
                per_stream: (0..sse).map(|_| AtomicU64::new(0)).collect(),
                ..Delivered::default()
            });
            let reading = Arc::new(AtomicBool::new(false));
            let readers: Vec<_> = (0..sse)
                .map(|me| {
                    let url = format!("http://{}/api/v1/live?{query}", addrs.http);
                    rt.readers
                        .spawn(sse_reader(url, reading.clone(), seen.clone(), me))
                })
                .collect();
            // Every stream is open before the window starts.
            let opened = Instant::now();
            while server.hub().subscribers() < sse && opened.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let start = mark(&sent, &seen, &latencies);
            tokio::time::sleep(window).await;
            add(&mut on, &start, &mark(&sent, &seen, &latencies), &latencies);
            let counts = seen.per_stream.iter().map(|n| n.load(Ordering::Relaxed));
            let (lo, hi) = counts.fold((u64::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
            let (lo0, hi0) = on.per_stream.unwrap_or((u64::MAX, 0));
            on.per_stream = Some((lo.min(lo0), hi.max(hi0)));
            reading.store(true, Ordering::Relaxed);
            for r in readers {
                r.abort();
            }
            // The streams are gone before the next window without them.
            let closed = Instant::now();
            while server.hub().subscribers() > 0 && closed.elapsed() < Duration::from_secs(10) {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            t.await.expect("an ingest client panicked");
        }
        server.shutdown().await.expect("stopping qyl");
        (off, on)
    })
}

fn main() {
    // Run only under `cargo bench` (which passes --bench), not `cargo test --benches`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("live benchmark: run with `cargo bench --bench live`");
        return;
    }
    let secs = env_or("BENCH_SECS", 24);
    let clients = env_or("BENCH_CLIENTS", 8) as usize;
    let sse = env_or("BENCH_SSE", 100) as usize;
    let queries = std::env::var("BENCH_SSE_QUERIES").unwrap_or_else(|_| ";status=error".into());
    let rate = std::env::var("BENCH_RATE")
        .ok()
        .and_then(|r| r.parse::<f64>().ok())
        .filter(|r| *r > 0.0);
    let cycles = 3;
    let window = Duration::from_secs_f64(secs as f64 / (2 * cycles) as f64);
    let dir = tempfile::tempdir().expect("temporary directory");
    let template = Arc::new(Template::new());
    let runtime = |name: &str, threads: usize| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .thread_name(name)
            .on_thread_start({
                let idle = name == "bench-sse" && std::env::var("BENCH_READERS_IDLE").is_ok();
                move || {
                    if idle {
                        // SAFETY: no memory effects; pid 0 is this thread.
                        unsafe {
                            let param = libc::sched_param { sched_priority: 0 };
                            libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
                        }
                    }
                }
            })
            .build()
            .expect("tokio runtime")
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    // Separate runtimes so each side's CPU can be told apart.
    let rt = Runtimes {
        server: runtime("qyl", cores),
        clients: runtime("bench-client", 2),
        readers: runtime("bench-sse", 2),
    };
    println!(
        "qyl live benchmark: {cores} cores, {clients} ingest clients × {SPANS_PER_REQUEST}-span OTLP/HTTP protobuf exports ({}); per query {cycles} × ({:.1} s without streams, {:.1} s with {sse}{})",
        rate.map_or("as fast as qyl answers".to_string(), |r| format!("paced at {r:.0} spans/s")),
        window.as_secs_f64(),
        window.as_secs_f64(),
        if std::env::var("BENCH_READERS_IDLE").is_ok() { ", readers at SCHED_IDLE" } else { "" }
    );
    for (i, query) in queries.split(';').enumerate() {
        let (mut off, mut on) = alternate(
            &rt,
            dir.path(),
            &format!("q{i}"),
            template.clone(),
            clients,
            sse,
            query,
            window,
            cycles,
            rate,
        );
        println!("?{query}");
        for (label, w) in [
            ("  no streams", &mut off),
            (&*format!("  {sse} streams"), &mut on),
        ] {
            let cores = w.cores();
            println!(
                "{label:<14} {:>7.0} spans/s ingested   export p50 {:.1} ms, p99 {:.1} ms   qyl {:.2} cores ({:.2} µs per span), ingest clients {:.2}, SSE readers {:.2}",
                w.rate(w.spans),
                w.latency(0.5),
                w.latency(0.99),
                cores.0,
                cores.0 * 1e6 / w.rate(w.spans),
                cores.1,
                cores.2
            );
        }
        // Where qyl's CPU went, by thread, in both kinds of window.
        println!(
            "  qyl threads    cores without/with streams: {}",
            per_thread(&off, &on, |w| &w.threads)
        );
        // Time a thread was ready to run but had no core: a busy machine
        // delays the writer even when qyl's own work per span is unchanged.
        println!(
            "  run queue      s waited for a core per s, without/with streams: {}",
            per_thread(&off, &on, |w| &w.waits)
        );
        let (lo, hi) = on.per_stream.unwrap_or((0, 0));
        println!(
            "  delivered      {:.0} events/s in all ({:.0} per stream, {:.1} MiB/s; one stream in one window: {lo}..{hi}); {} lagged, {} gap events, {} reconnects",
            on.rate(on.events),
            on.rate(on.events) / sse.max(1) as f64,
            on.rate(on.bytes) / (1 << 20) as f64,
            on.lagged,
            on.gaps,
            on.reconnects
        );
        println!(
            "  ratio          {:.3} (ingest with streams / without; target ≥ 0.95)",
            on.rate(on.spans) / off.rate(off.spans)
        );
    }
}
