//! Automatic triage's cost to ingest: the same OTLP/HTTP load against qyl
//! with `[triage] enabled = false` and `= true`, in one run, while a side
//! client keeps creating new error groups (a new exception type every
//! 200 ms), each of which triage reports on. Prints spans/s of both phases
//! and their ratio (target ≥ 0.95), and how many reports were written.
//!
//! Environment: BENCH_SECS (per phase, default 15), BENCH_CLIENTS
//! (default 8), BENCH_NEW_GROUP_MS (default 200).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use qyl::config::Config;
use qyl::model::now_unix_nano;
use qyl::server::Server;

// The same allocator as the `qyl` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod common;

use common::*;

/// One failing span whose exception type is new for every `n`: a new group.
fn new_group_request(n: u64) -> Vec<u8> {
    let now = now_unix_nano();
    let mut trace_id = [7u8; 16];
    trace_id[8..].copy_from_slice(&n.to_be_bytes());
    let mut span_id = [9u8; 8];
    span_id.copy_from_slice(&n.to_be_bytes());
    span_id[0] = 9;
    let stack = format!(
        "Traceback (most recent call last):\n  File \"/srv/app/jobs/step{n}.py\", line {}, in run_{n}\n    do()\nBenchError{n}: failed\n",
        10 + n % 90
    );
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    s("service.name", "bench-jobs"),
                    s("service.version", "1.0.0"),
                    s("telemetry.sdk.language", "python"),
                ],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: trace_id.to_vec(),
                    span_id: span_id.to_vec(),
                    name: "job".into(),
                    kind: span::SpanKind::Internal as i32,
                    start_time_unix_nano: now - 1_000_000,
                    end_time_unix_nano: now,
                    status: Some(Status {
                        code: 2,
                        message: "failed".into(),
                    }),
                    events: vec![span::Event {
                        name: "exception".into(),
                        time_unix_nano: now,
                        attributes: vec![
                            s("exception.type", &format!("BenchError{n}")),
                            s("exception.message", "failed"),
                            s("exception.stacktrace", &stack),
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

struct Phase {
    spans_per_sec: f64,
    new_groups: u64,
    reports: u64,
}

async fn phase(
    triage: bool,
    dir: &std::path::Path,
    template: Arc<Template>,
    clients: usize,
    secs: u64,
    new_group_every: Duration,
    client_runtime: tokio::runtime::Handle,
) -> Phase {
    let db = dir.join(if triage { "on.duckdb" } else { "off.duckdb" });
    let mut config = Config::from_layers(None, std::env::vars())
        .expect("valid QYL_* settings")
        .on_free_ports(&db);
    config.functions.dir = dir.join("no-scripts");
    config.triage.enabled = triage;
    let server = Server::start(&config).await.expect("starting qyl");
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let new_groups = Arc::new(AtomicU64::new(0));
    let url = format!("http://{}/v1/traces", server.addrs.otlp_http);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let (template, stop, sent, url) =
            (template.clone(), stop.clone(), sent.clone(), url.clone());
        tasks.push(client_runtime.spawn(async move {
            let http = reqwest::Client::new();
            let mut k = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let r = http
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(template.request(c as u8 + 1, k))
                    .send()
                    .await
                    .expect("export sent");
                assert_eq!(r.status().as_u16(), 200, "export refused");
                let _ = r.bytes().await;
                k += 1;
                sent.fetch_add(SPANS_PER_REQUEST as u64, Ordering::Relaxed);
            }
        }));
    }
    {
        let (stop, new_groups, url) = (stop.clone(), new_groups.clone(), url.clone());
        tasks.push(client_runtime.spawn(async move {
            let http = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = http
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(new_group_request(n))
                    .send()
                    .await
                    .expect("export sent");
                assert_eq!(r.status().as_u16(), 200, "export refused");
                n += 1;
                new_groups.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(new_group_every).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (start_spans, started) = (sent.load(Ordering::Relaxed), Instant::now());
    tokio::time::sleep(Duration::from_secs(secs)).await;
    let spans = sent.load(Ordering::Relaxed) - start_spans;
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("client task");
    }
    // Reports written by the end of the phase (a few may still be queued).
    let reports = stored_reports(&format!("http://{}/api/v1/sql", server.addrs.http)).await;
    server.shutdown().await.expect("stopping qyl");
    Phase {
        spans_per_sec: spans as f64 / elapsed,
        new_groups: new_groups.load(Ordering::Relaxed),
        reports: reports.unwrap_or(0),
    }
}

/// Rows of `error_triage`, through `/api/v1/sql`.
async fn stored_reports(url: &str) -> Option<u64> {
    let v: serde_json::Value = reqwest::Client::new()
        .post(url)
        .json(&serde_json::json!({"sql": "SELECT count(*) AS n FROM error_triage"}))
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    let n = v.get("rows")?.get(0)?.get(0)?;
    n.as_u64().or_else(|| n.as_str()?.parse().ok())
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("triage benchmark: run with `cargo bench --bench triage`");
        return;
    }
    let secs = env_or("BENCH_SECS", 15);
    let clients = env_or("BENCH_CLIENTS", 8) as usize;
    let every = Duration::from_millis(env_or("BENCH_NEW_GROUP_MS", 200));
    let dir = tempfile::tempdir().expect("temporary directory");
    let template = Arc::new(Template::new());
    println!(
        "qyl triage benchmark: {} cores, {clients} clients of {SPANS_PER_REQUEST}-span exports, a new error group every {every:?}, {secs} s per phase",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("qyl")
        .build()
        .expect("tokio runtime");
    let client_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("bench-client")
        .build()
        .expect("client runtime");
    let mut figures = Vec::new();
    for triage in [false, true] {
        let p = runtime.block_on(phase(
            triage,
            dir.path(),
            template.clone(),
            clients,
            secs,
            every,
            client_runtime.handle().clone(),
        ));
        println!(
            "triage {:<4} {:>9.0} spans/s   new groups sent {:>4}, triage reports stored {:>4}",
            if triage { "on" } else { "off" },
            p.spans_per_sec,
            p.new_groups,
            p.reports
        );
        figures.push(p);
    }
    println!(
        "on / off = {:.3} (target >= 0.95)",
        figures[1].spans_per_sec / figures[0].spans_per_sec
    );
}
