//! Ingest benchmark: how close end-to-end OTLP ingest gets to DuckDB's raw
//! Appender rate on this machine.
//!
//! In one run it measures
//!   (a) raw: span rows appended straight to a DuckDB file with the Appender
//!       (batches of 8192 rows, one commit each): the ceiling;
//!   (b) end-to-end over OTLP/HTTP protobuf and (c) over OTLP/gRPC: a qyl
//!       server in this process, several concurrent clients each sending
//!       512-span exports and waiting for the answer (sent after commit);
//! and prints spans/s, export latency p50/p99 and the ratio e2e / raw.
//!
//! Clients send pre-encoded requests whose ids are patched in place, so the
//! client side costs little CPU (it shares the machine's cores with qyl).
//! Environment: BENCH_SECS (per e2e phase, default 15), BENCH_CLIENTS
//! (default 8), BENCH_RAW_SPANS (default 600000).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use qyl::config::Config;
use qyl::ingest::convert::convert_traces;
use qyl::server::Server;
use qyl::storage::{self, writer::append_spans, StorageOptions};

// The same allocator as the `qyl` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use common::grpc::RawCodec;
use common::*;

struct Figures {
    spans_per_sec: f64,
    /// Cores busy in qyl (and, for e2e, in the clients) while measuring.
    server_cores: f64,
    client_cores: f64,
    /// The writer thread's share of `server_cores`.
    writer_cores: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: usize,
}

impl Figures {
    fn new(spans_per_sec: f64, mut millis: Vec<f64>) -> Figures {
        millis.sort_by(f64::total_cmp);
        Figures {
            spans_per_sec,
            server_cores: f64::NAN,
            client_cores: f64::NAN,
            writer_cores: f64::NAN,
            p50_ms: percentile(&millis, 0.5),
            p99_ms: percentile(&millis, 0.99),
            requests: millis.len(),
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn raw_appender(dir: &std::path::Path, template: &Template, total: usize) -> Figures {
    let conn = storage::open(&StorageOptions {
        path: dir.join("raw.duckdb").to_string_lossy().into_owned(),
        memory_limit_mb: 0,
        threads: 0,
        archive: None,
    })
    .expect("opening the raw database");
    // Converted records, so the rows are exactly what the server writes.
    let mut records = Vec::with_capacity(total);
    let mut k = 0u32;
    while records.len() < total {
        let req = ExportTraceServiceRequest::decode(template.request(250, k)).unwrap();
        records.extend(convert_traces(req).records);
        k += 1;
    }
    records.truncate(total);
    let raw = conn.raw_connection().expect("a raw connection");
    let mut batch_ms = Vec::new();
    let cpu_before = cpu_seconds().0;
    let started = Instant::now();
    for (b, chunk) in records.chunks(8192).enumerate() {
        let t = Instant::now();
        raw.execute("BEGIN TRANSACTION").unwrap();
        append_spans(&raw, chunk, (b * 8192) as u64 + 1).unwrap();
        raw.execute("COMMIT").unwrap();
        batch_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let secs = started.elapsed().as_secs_f64();
    let mut figures = Figures::new(total as f64 / secs, batch_ms);
    // CPU rather than wall time: steadier on a shared machine.
    figures.server_cores = (cpu_seconds().0 - cpu_before) / secs;
    figures
}

#[derive(Clone, Copy)]
enum Transport {
    Http,
    Grpc,
}

/// CPU seconds used so far by this process's threads, split into the
/// benchmark's clients (threads named `bench-client`) and everything else
/// (qyl). Read from /proc; Linux counts in USER_HZ = 100 ticks per second.
fn cpu_seconds() -> (f64, f64, f64) {
    let (mut server, mut clients, mut writer) = (0u64, 0u64, 0u64);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return (f64::NAN, f64::NAN, f64::NAN);
    };
    for task in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        // After the name: state, then fields 4.., utime and stime are 14 and 15.
        let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
        let ticks = fields
            .get(11)
            .and_then(|u| u.parse::<u64>().ok())
            .unwrap_or(0)
            + fields
                .get(12)
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0);
        if name.starts_with("bench-client") {
            clients += ticks;
        } else {
            server += ticks;
        }
        if name == "qyl-writer" {
            writer += ticks;
        }
    }
    (
        server as f64 / 100.0,
        clients as f64 / 100.0,
        writer as f64 / 100.0,
    )
}

async fn end_to_end(
    transport: Transport,
    dir: &std::path::Path,
    template: Arc<Template>,
    clients: usize,
    secs: u64,
    client_runtime: tokio::runtime::Handle,
) -> Figures {
    // QYL_* variables apply, so settings can be compared: QYL_INGEST_BATCH_MS=1 make bench.
    let db = dir.join(match transport {
        Transport::Http => "http.duckdb",
        Transport::Grpc => "grpc.duckdb",
    });
    let mut config = Config::from_layers(None, std::env::vars())
        .expect("valid QYL_* settings")
        .on_free_ports(&db);
    // Not the repository's example scripts/: the load is ingest alone.
    config.functions.dir = dir.join("no-scripts");
    let server = Server::start(&config).await.expect("starting qyl");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (template, stop, sent) = (template.clone(), stop.clone(), sent.clone());
        let addrs = server.addrs;
        tasks.push(client_runtime.spawn(async move {
            let mut latencies = Vec::new();
            let http = reqwest::Client::new();
            let url = format!("http://{}/v1/traces", addrs.otlp_http);
            let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", addrs.grpc))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let mut grpc = tonic::client::Grpc::new(channel);
            let mut k = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let body = template.request(c as u8 + 1, k);
                k += 1;
                let t = Instant::now();
                match transport {
                    Transport::Http => {
                        let r = http
                            .post(&url)
                            .header("content-type", "application/x-protobuf")
                            .body(body)
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(r.status().as_u16(), 200, "export refused");
                        let _ = r.bytes().await.unwrap();
                    }
                    Transport::Grpc => {
                        grpc.ready().await.unwrap();
                        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
                            "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                        );
                        grpc.unary(tonic::Request::new(body), path, RawCodec)
                            .await
                            .expect("export refused");
                    }
                }
                latencies.push(t.elapsed().as_secs_f64() * 1e3);
                sent.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
            }
            latencies
        }));
    }
    // Warm up, then measure a steady window.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (start_spans, started) = (sent.load(Ordering::Relaxed), Instant::now());
    let cpu_before = cpu_seconds();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let spans = sent.load(Ordering::Relaxed) - start_spans;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_after = cpu_seconds();
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for t in tasks {
        latencies.extend(t.await.unwrap());
    }
    let writer = server.writer();
    let stats = writer.stats();
    let checkpoints = stats.checkpoints.load(Ordering::Relaxed);
    let commits = stats.batches_committed.load(Ordering::Relaxed).max(1);
    println!(
        "               {commits} commits, {:.0} rows per commit on average",
        stats.rows_committed.load(Ordering::Relaxed) as f64 / commits as f64
    );
    let steps: Vec<String> = stats
        .steps
        .snapshot()
        .iter()
        .map(|(step, secs)| format!("{step} {:.2}", secs * 1e3 / commits as f64))
        .collect();
    println!("               writer ms per commit: {}", steps.join(", "));
    let wal = std::fs::metadata(format!("{}.wal", config.storage.path)).map_or(0, |m| m.len());
    println!(
        "               background checkpoints during the run: {checkpoints}; WAL at the end: {:.1} MiB",
        wal as f64 / (1 << 20) as f64
    );
    server.shutdown().await.unwrap();
    let mut figures = Figures::new(spans as f64 / elapsed, latencies);
    figures.server_cores = (cpu_after.0 - cpu_before.0) / elapsed;
    figures.client_cores = (cpu_after.1 - cpu_before.1) / elapsed;
    figures.writer_cores = (cpu_after.2 - cpu_before.2) / elapsed;
    figures
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing
    // useful either way. Run only under `cargo bench`.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ingest benchmark: run with `cargo bench --bench ingest`");
        return;
    }
    let secs = env_or("BENCH_SECS", 15);
    let clients = env_or("BENCH_CLIENTS", 8) as usize;
    let raw_spans = env_or("BENCH_RAW_SPANS", 600_000) as usize;
    let dir = tempfile::tempdir().expect("temporary directory");
    let template = Arc::new(Template::new());
    println!(
        "qyl ingest benchmark: {} cores, {SPANS_PER_REQUEST} spans/export ({} bytes protobuf), {clients} clients, {secs} s per end-to-end phase",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        template.bytes.len()
    );

    let raw = raw_appender(dir.path(), &template, raw_spans);
    println!(
        "raw appender   {:>9.0} spans/s   batch of 8192: p50 {:>6.1} ms  p99 {:>6.1} ms  ({} batches), {:.2} µs CPU per span",
        raw.spans_per_sec,
        raw.p50_ms,
        raw.p99_ms,
        raw.requests,
        raw.server_cores * 1e6 / raw.spans_per_sec
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("qyl")
        .build()
        .expect("tokio runtime");
    // The clients get their own runtime so their CPU can be told apart.
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("bench-client")
        .build()
        .expect("client runtime");
    for (name, transport) in [
        ("otlp/http", Transport::Http),
        ("otlp/grpc", Transport::Grpc),
    ] {
        let e2e = runtime.block_on(end_to_end(
            transport,
            dir.path(),
            template.clone(),
            clients,
            secs,
            client_runtime.handle().clone(),
        ));
        println!(
            "{name:<14} {:>9.0} spans/s   export of 512:  p50 {:>6.1} ms  p99 {:>6.1} ms  ({} exports)   e2e/raw = {:.2}\n{:<14} qyl used {:.2} cores (writer thread {:.2}) = {:.1} µs CPU per span; the clients used {:.2} cores",
            e2e.spans_per_sec,
            e2e.p50_ms,
            e2e.p99_ms,
            e2e.requests,
            e2e.spans_per_sec / raw.spans_per_sec,
            "",
            e2e.server_cores,
            e2e.writer_cores,
            e2e.server_cores * 1e6 / e2e.spans_per_sec,
            e2e.client_cores
        );
    }
}
