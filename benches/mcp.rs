//! MCP tool latency on a large database: how long a coding assistant waits
//! for `overview`, `get_error`, `get_trace`, `what_changed` (and
//! `list_errors`, `search_spans`) when qyl holds millions of spans.
//!
//! It generates a DuckDB file of BENCH_SPANS spans (default 10 M) the way
//! `benches/query.rs` does, starts the real qyl server on it (in process,
//! 127.0.0.1, free ports; its writer folds the generated spans into the
//! session and GenAI summary tables at start, as after a crash), then sends
//! error traces through OTLP/HTTP so the error engine builds real groups
//! and events: exceptions as span events with type, message and a Python
//! stack trace, most in the last hour from a new release on another host,
//! the rest spread over the day before. Then, over streamable HTTP at
//! `/mcp` (JSON-RPC `initialize` with a session, then `tools/call`), it
//! times each tool BENCH_ROUNDS times (default 30) after a warm-up and
//! prints p50 / p99.
//!
//! Baselines, measured in the same run: the store calls each tool makes,
//! in process (after the server has stopped, on the same file), so the
//! ratio is what MCP, HTTP and rendering add; and, where one exists, the
//! REST equivalent over HTTP on the same running server.
//!
//! Environment: BENCH_SPANS (default 10000000), BENCH_ROUNDS (default 30),
//! BENCH_ERROR_TRACES (error traces sent, default 4000), BENCH_KEEP_DB=path
//! (generate there once and reuse it on later runs; the generated day ends
//! at generation time, so reuse it within an hour or two), BENCH_SHOW=1
//! (print each tool's text answer once).

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use prost::Message;
use serde_json::{json, Value};

use qyl::config::Config;
use qyl::errors::analysis;
use qyl::model::errors::{ErrorQuery, ErrorSort};
use qyl::model::query::{GenAiFilter, PageRequest, SpanFilter, SpanQuery};
use qyl::server::Server;
use qyl::storage::{self, StorageOptions, Store};

mod common;
mod timing;
use common::generated::{generate, SPANS_PER_TRACE};
use common::{env_or, i, s};
use timing::{ms, now_nanos, time};

// The same allocator as the `qyl` binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The revision with the `initialize` handshake and a session, which the
/// assistants in use today speak.
const PROTOCOL: &str = "2025-11-25";
/// Distinct exceptions among the error traces: the error groups.
const GROUPS: u64 = 12;
/// Error traces per OTLP export.
const TRACES_PER_EXPORT: u64 = 200;
const HOUR_NS: u64 = 3_600_000_000_000;
/// As the `overview` tool asks for (its OVERVIEW_GROUPS).
const OVERVIEW_GROUPS: usize = 10;
/// As `get_error` reads to count tag values (its TAG_SAMPLE).
const TAG_SAMPLE: usize = 100;

/// A minimal MCP client over streamable HTTP: one session, requests
/// answered as JSON or as a server-sent event stream.
struct McpClient {
    http: reqwest::Client,
    url: String,
    session: String,
    next_id: AtomicU64,
}

impl McpClient {
    async fn connect(url: String) -> McpClient {
        let http = reqwest::Client::new();
        let init = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {
                "protocolVersion": PROTOCOL,
                "capabilities": {},
                "clientInfo": {"name": "qyl-bench", "version": "1"}
            }
        });
        let r = http
            .post(&url)
            .header("accept", "application/json, text/event-stream")
            .json(&init)
            .send()
            .await
            .expect("sending initialize");
        assert_eq!(r.status().as_u16(), 200, "initialize refused");
        let session = r
            .headers()
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
            .expect("a session id")
            .to_string();
        let (answer, _) = answer_to(r, 0).await;
        let version = &answer["result"]["protocolVersion"];
        assert_eq!(version, PROTOCOL, "negotiated {answer}");
        let client = McpClient {
            http,
            url,
            session,
            next_id: AtomicU64::new(1),
        };
        let r = client
            .post(json!({"jsonrpc": "2.0", "method": "notifications/initialized"}))
            .await;
        assert_eq!(r.status().as_u16(), 202, "initialized notification refused");
        client
    }

    async fn post(&self, body: Value) -> reqwest::Response {
        self.http
            .post(&self.url)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-session-id", &self.session)
            .header("mcp-protocol-version", PROTOCOL)
            .json(&body)
            .send()
            .await
            .expect("sending an MCP request")
    }

    /// Calls `tool`; panics unless it answered with structured content.
    /// Returns the answer's size in bytes.
    async fn call(&self, tool: &str, arguments: Value) -> usize {
        self.answer(tool, arguments).await.1
    }

    /// The answer of a successful call of `tool`, and its size in bytes.
    async fn answer(&self, tool: &str, arguments: Value) -> (Value, usize) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let r = self
            .post(json!({
                "jsonrpc": "2.0", "id": id, "method": "tools/call",
                "params": {"name": tool, "arguments": arguments}
            }))
            .await;
        assert_eq!(r.status().as_u16(), 200, "{tool}: HTTP {}", r.status());
        let (answer, bytes) = answer_to(r, id).await;
        let result = &answer["result"];
        assert!(
            result["isError"] != true && result["structuredContent"].is_object(),
            "{tool} failed: {answer}"
        );
        (answer, bytes)
    }
}

/// The JSON-RPC answer with `id` in `r`: the body itself, or the first
/// event of the stream carrying it (the stream is not read further).
async fn answer_to(mut r: reqwest::Response, id: u64) -> (Value, usize) {
    let sse = r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/event-stream"));
    if !sse {
        let body = r.bytes().await.expect("reading the answer");
        let v: Value = serde_json::from_slice(&body).expect("a JSON answer");
        return (v, body.len());
    }
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Complete events end with a blank line; data lines hold JSON.
        while let Some(end) = find(&buf, b"\n\n") {
            let event: Vec<u8> = buf.drain(..end + 2).collect();
            let text = String::from_utf8_lossy(&event);
            let data: String = text
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            if data.is_empty() {
                continue;
            }
            if let Ok(v) = serde_json::from_str::<Value>(&data) {
                if v["id"] == id {
                    return (v, data.len());
                }
            }
        }
        match r.chunk().await.expect("reading the event stream") {
            // SSE allows CRLF line ends; dropping CRs leaves LFs to split on.
            Some(c) => buf.extend(c.iter().copied().filter(|&b| b != b'\r')),
            None => panic!("the stream ended without an answer to {id}"),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One export of error traces `first..first + n` (of `total`). Each trace
/// is a server span (500) over a handler span that raised: exception type
/// by group, message with an order id, a Python stack trace whose frames
/// differ by group. Three in four are in the last hour, in release 1.0.9
/// on host bench-2 (a bad deploy); the rest are spread over the day before
/// in the releases and host of the generated spans.
fn error_export(run: u64, first: u64, n: u64, total: u64, now: u64) -> Vec<u8> {
    let mut by_service: Vec<(String, String, String, Vec<Span>)> = Vec::new();
    for k in first..first + n {
        let g = k % GROUPS;
        // Per group, three traces in four are recent.
        let recent = (k / GROUPS) % 4 != 0;
        let start = if recent {
            now - 60_000_000_000
                - (k * 3_500_000_000_000 / total.max(1)) % (HOUR_NS - 90_000_000_000)
        } else {
            now - HOUR_NS - 60_000_000_000 - (k * 7_919 % 1_380) * 60_000_000_000
        };
        let service = format!("svc-{}", g % 10);
        let (release, host) = if recent {
            ("1.0.9".to_string(), "bench-2")
        } else {
            (format!("1.0.{}", k % 5), "bench-1")
        };
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&run.to_be_bytes());
        trace_id[8..].copy_from_slice(&k.to_be_bytes());
        let root_id = {
            let mut id = [1u8; 8];
            id[2..].copy_from_slice(&k.to_be_bytes()[2..]);
            id
        };
        let child_id = {
            let mut id = [2u8; 8];
            id[2..].copy_from_slice(&k.to_be_bytes()[2..]);
            id
        };
        let route = format!("/api/{g}");
        let user = format!("u{}", k % 1000);
        let attributes = vec![
            s("http.request.method", "POST"),
            s("http.route", &route),
            i("http.response.status_code", 500),
            s("user.id", &user),
        ];
        let error_type = format!("bench.errors.Bench{g}Error");
        let message = format!("order ord-{k} could not be placed: step {g} failed");
        let stack = format!(
            "Traceback (most recent call last):\n  File \"/srv/app/api/routes.py\", line {}, in handle_{g}\n    return service.run(order)\n  File \"/srv/app/orders/step{g}.py\", line {}, in run\n    self.repo.save(order)\n  File \"/usr/lib/python3.12/site-packages/psycopg/cursor.py\", line 732, in execute\n    raise ex.with_traceback(None)\n{error_type}: {message}\n",
            40 + g,
            10 + g * 3
        );
        let spans = vec![
            Span {
                trace_id: trace_id.to_vec(),
                span_id: root_id.to_vec(),
                name: format!("POST {route}"),
                kind: span::SpanKind::Server as i32,
                start_time_unix_nano: start,
                end_time_unix_nano: start + 40_000_000,
                attributes: attributes.clone(),
                status: Some(Status {
                    code: 2,
                    message: String::new(),
                }),
                ..Default::default()
            },
            Span {
                trace_id: trace_id.to_vec(),
                span_id: child_id.to_vec(),
                parent_span_id: root_id.to_vec(),
                name: format!("step{g}.run"),
                kind: span::SpanKind::Internal as i32,
                start_time_unix_nano: start + 5_000_000,
                end_time_unix_nano: start + 35_000_000,
                attributes,
                events: vec![span::Event {
                    name: "exception".into(),
                    time_unix_nano: start + 34_000_000,
                    attributes: vec![
                        s("exception.type", &error_type),
                        s("exception.message", &message),
                        s("exception.stacktrace", &stack),
                        s("exception.escaped", "True"),
                    ],
                    ..Default::default()
                }],
                status: Some(Status {
                    code: 2,
                    message: message.clone(),
                }),
                ..Default::default()
            },
        ];
        match by_service
            .iter_mut()
            .find(|(sv, r, h, _)| *sv == service && *r == release && h == host)
        {
            Some(entry) => entry.3.extend(spans),
            None => by_service.push((service, release, host.to_string(), spans)),
        }
    }
    ExportTraceServiceRequest {
        resource_spans: by_service
            .into_iter()
            .map(|(service, release, host, spans)| ResourceSpans {
                resource: Some(Resource {
                    attributes: vec![
                        s("service.name", &service),
                        s("service.version", &release),
                        s("deployment.environment.name", "prod"),
                        s("host.name", &host),
                        s("telemetry.sdk.language", "python"),
                    ],
                    ..Default::default()
                }),
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
    }
    .encode_to_vec()
}

/// `sql` through `POST /api/v1/sql`: its rows.
async fn sql(http: &reqwest::Client, base: &str, sql: &str) -> Vec<Value> {
    let v: Value = http
        .post(format!("{base}/api/v1/sql"))
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .expect("sending SQL")
        .json()
        .await
        .expect("a SQL answer");
    v["rows"]
        .as_array()
        .unwrap_or_else(|| panic!("no rows in {v}"))
        .clone()
}

fn number(v: &Value) -> i64 {
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// What is measured: a tool with its arguments per round, the REST route
/// that answers the same question (when there is one) and the store calls
/// the tool makes.
#[derive(Clone, Copy)]
enum Case {
    Overview,
    Overview24h,
    ListErrors,
    GetError,
    GetTrace,
    WhatChangedGroup,
    WhatChangedService,
    SearchSpans,
}

const CASES: [Case; 8] = [
    Case::Overview,
    Case::Overview24h,
    Case::GetError,
    Case::GetTrace,
    Case::WhatChangedGroup,
    Case::WhatChangedService,
    Case::ListErrors,
    Case::SearchSpans,
];

/// What the rounds look up: error groups and trace ids, rotated through.
struct Targets {
    groups: Vec<i64>,
    traces: Vec<String>,
}

impl Targets {
    fn group(&self, round: usize) -> i64 {
        self.groups[round % self.groups.len()]
    }
    fn trace(&self, round: usize) -> &str {
        &self.traces[round % self.traces.len()]
    }
}

impl Case {
    fn label(self) -> &'static str {
        match self {
            Case::Overview => "overview (1h)",
            Case::Overview24h => "overview window=24h",
            Case::ListErrors => "list_errors",
            Case::GetError => "get_error",
            Case::GetTrace => "get_trace (summary)",
            Case::WhatChangedGroup => "what_changed id (1h vs 24h)",
            Case::WhatChangedService => "what_changed service=svc-3",
            Case::SearchSpans => "search_spans svc-3 errors",
        }
    }

    fn tool(self) -> &'static str {
        match self {
            Case::Overview | Case::Overview24h => "overview",
            Case::ListErrors => "list_errors",
            Case::GetError => "get_error",
            Case::GetTrace => "get_trace",
            Case::WhatChangedGroup | Case::WhatChangedService => "what_changed",
            Case::SearchSpans => "search_spans",
        }
    }

    fn args(self, t: &Targets, round: usize) -> Value {
        match self {
            Case::Overview | Case::ListErrors => json!({}),
            Case::Overview24h => json!({"window": "24h"}),
            Case::GetError | Case::WhatChangedGroup => json!({"id": t.group(round)}),
            Case::GetTrace => json!({"trace_id": t.trace(round)}),
            Case::WhatChangedService => json!({"service": "svc-3"}),
            Case::SearchSpans => json!({"service": "svc-3", "status": "error"}),
        }
    }

    /// The REST route answering the same question; for the overview only
    /// its service table has one.
    fn rest(self, t: &Targets, round: usize) -> Option<String> {
        match self {
            Case::Overview => Some("/api/v1/services".into()),
            Case::Overview24h => Some("/api/v1/services?since=24h".into()),
            Case::ListErrors => Some("/api/v1/errors?limit=20".into()),
            Case::GetError => Some(format!("/api/v1/errors/{}", t.group(round))),
            Case::GetTrace => Some(format!("/api/v1/traces/{}", t.trace(round))),
            Case::SearchSpans => Some("/api/v1/spans?service=svc-3&status=error&limit=20".into()),
            Case::WhatChangedGroup | Case::WhatChangedService => None,
        }
    }

    /// The store calls the tool makes, in the same order, without the
    /// rendering.
    async fn store(self, store: &Store, t: &Targets, round: usize) {
        let now = now_nanos();
        match self {
            Case::Overview => {
                for part in OVERVIEW_PARTS {
                    overview_part(store, part, HOUR_NS, now).await;
                }
            }
            Case::Overview24h => {
                for part in OVERVIEW_PARTS {
                    overview_part(store, part, 24 * HOUR_NS, now).await;
                }
            }
            Case::ListErrors => {
                let page = store
                    .list_errors(ErrorQuery {
                        page: PageRequest {
                            limit: 20,
                            cursor: None,
                        },
                        now_unix_nano: now,
                        ..ErrorQuery::default()
                    })
                    .await
                    .expect("error groups");
                assert!(!page.items.is_empty());
            }
            Case::GetError => {
                let id = t.group(round);
                store
                    .get_error(id, now)
                    .await
                    .expect("error group")
                    .expect("found");
                let events = store
                    .error_events(
                        id,
                        PageRequest {
                            limit: TAG_SAMPLE,
                            cursor: None,
                        },
                    )
                    .await
                    .expect("events");
                let latest = events.items.first().expect("an event");
                // The group's detail brings its triage report and notes.
                store
                    .error_event(id, latest.event_id.clone())
                    .await
                    .expect("the latest event");
            }
            Case::GetTrace => {
                let tree = store
                    .get_trace(t.trace(round))
                    .await
                    .expect("trace")
                    .expect("found");
                assert_eq!(tree.summary.span_count, SPANS_PER_TRACE);
            }
            Case::WhatChangedGroup => {
                let id = t.group(round);
                let group = store
                    .get_error(id, now)
                    .await
                    .expect("error group")
                    .expect("found")
                    .group;
                let (_, failing, _) =
                    analysis::group_changes(store, &group, HOUR_NS, 24 * HOUR_NS, now)
                        .await
                        .expect("what changed");
                assert!(failing > 0);
            }
            Case::WhatChangedService => {
                let since = now - HOUR_NS;
                let failing = analysis::span_sample(
                    store,
                    SpanFilter {
                        service: Some("svc-3".into()),
                        status: Some("ERROR".into()),
                        since: Some(since),
                        until: Some(now),
                        ..SpanFilter::default()
                    },
                )
                .await
                .expect("failed spans");
                let failing: Vec<analysis::Values> =
                    failing.iter().map(analysis::span_values).collect();
                let baseline = analysis::baseline_values(
                    store,
                    &["svc-3".to_string()],
                    since - 24 * HOUR_NS,
                    since,
                )
                .await
                .expect("baseline");
                analysis::compare(&failing, &baseline);
            }
            Case::SearchSpans => {
                let page = store
                    .query_spans(SpanQuery {
                        filter: SpanFilter {
                            service: Some("svc-3".into()),
                            status: Some("ERROR".into()),
                            ..SpanFilter::default()
                        },
                        page: PageRequest {
                            limit: 20,
                            cursor: None,
                        },
                    })
                    .await
                    .expect("span search");
                assert!(!page.items.is_empty());
            }
        }
    }
}

/// The reads `overview` makes, for the breakdown of its time.
const OVERVIEW_PARTS: [&str; 4] = ["services", "error lists", "GenAI stats", "latest release"];

/// One of the overview's reads over `window` before `now`.
async fn overview_part(store: &Store, part: &str, window: u64, now: u64) {
    let since = now - window;
    match part {
        "services" => {
            let services = store.services(since, now, None).await.expect("services");
            assert!(!services.is_empty());
        }
        "error lists" => {
            for status in ["new", "regressed", "escalating"] {
                store
                    .list_errors(ErrorQuery {
                        status: Some(status.into()),
                        since: Some(since),
                        sort: ErrorSort::Count,
                        page: PageRequest {
                            limit: OVERVIEW_GROUPS,
                            cursor: None,
                        },
                        now_unix_nano: now,
                        ..ErrorQuery::default()
                    })
                    .await
                    .expect("error groups");
            }
        }
        "GenAI stats" => {
            store
                .genai_stats(GenAiFilter {
                    since,
                    until: now,
                    step_ns: window,
                    ..GenAiFilter::default()
                })
                .await
                .expect("GenAI stats");
        }
        _ => {
            store.releases(None, None, 1).await.expect("releases");
        }
    }
}

type P = (Duration, Duration);

struct Figures {
    mcp: P,
    answer_bytes: usize,
    rest: Option<P>,
    store: Option<P>,
}

/// BENCH_SPANS, one size (the other read benchmarks take a list).
fn spans_wanted() -> u64 {
    let raw = std::env::var("BENCH_SPANS").unwrap_or_else(|_| "10000000".into());
    raw.trim()
        .parse()
        .unwrap_or_else(|_| panic!("BENCH_SPANS: one number of spans, not {raw:?}"))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("mcp benchmark: run with `cargo bench --bench mcp`");
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let spans = spans_wanted();
    let rounds = timing::rounds(30);
    let error_traces = env_or("BENCH_ERROR_TRACES", 4000).max(GROUPS);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = std::env::var("BENCH_KEEP_DB")
        .unwrap_or_else(|_| dir.path().join("qyl.duckdb").to_string_lossy().into_owned());
    println!(
        "MCP tool latency: {spans} spans, {error_traces} error traces in {GROUPS} groups, {rounds} rounds per call, p50 / p99 in ms"
    );

    // The generated spans (or the kept file's), and the traces to read.
    let traces: Vec<String> = {
        let db = storage::open(&StorageOptions {
            path: path.clone(),
            memory_limit_mb: 0,
            threads: 0,
            archive: None,
        })
        .expect("opening the database");
        let conn = db.connect().expect("connecting");
        let stored: u64 = conn
            .query_row("SELECT count(*) FROM spans", [], |r| r.get(0))
            .expect("counting spans");
        if stored == 0 {
            let t = Instant::now();
            generate(&conn, spans, now_nanos() - 24 * HOUR_NS, 24 * HOUR_NS);
            println!(
                "generated {spans} spans in {:.1} s",
                t.elapsed().as_secs_f64()
            );
        } else {
            assert!(
                stored >= spans,
                "{path} holds {stored} spans, fewer than BENCH_SPANS={spans}"
            );
            println!("reusing {path} ({stored} spans)");
        }
        let newest: u64 = conn
            .query_row("SELECT max(start_time_unix_nano) FROM spans", [], |r| {
                r.get(0)
            })
            .expect("newest span");
        println!(
            "newest span {:.0} min old",
            now_nanos().saturating_sub(newest) as f64 / 6e10
        );
        let generated_traces = (spans / SPANS_PER_TRACE).max(1);
        let mut stmt = conn
            .prepare("SELECT qyl_trace_hex(md5_number(CAST(? AS VARCHAR)))")
            .expect("preparing");
        (0..=rounds as u64)
            .map(|k| {
                stmt.query_row([(k * 7_919_993) % generated_traces], |r| {
                    r.get::<_, String>(0)
                })
                .expect("a trace id")
            })
            .collect()
    };
    let file_mb = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0) as f64 / 1e6;

    let mut config = Config::from_layers(None, std::env::vars())
        .expect("valid QYL_* settings")
        .on_free_ports(std::path::Path::new(&path));
    config.functions.dir = dir.path().join("no-scripts");
    let t = Instant::now();
    let server = Server::start(&config).await.expect("starting qyl");
    println!(
        "qyl started on the {file_mb:.0} MB file in {:.1} s (the writer folds spans past the summary watermark into the summary tables)",
        t.elapsed().as_secs_f64()
    );
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addrs.http);

    // Error traces through the real ingest path and error engine.
    let t = Instant::now();
    let now = now_nanos();
    let mut first = 0;
    while first < error_traces {
        let n = TRACES_PER_EXPORT.min(error_traces - first);
        let r = http
            .post(format!("http://{}/v1/traces", server.addrs.otlp_http))
            .header("content-type", "application/x-protobuf")
            .body(error_export(now, first, n, error_traces, now))
            .send()
            .await
            .expect("sending errors");
        assert_eq!(r.status().as_u16(), 200, "export refused");
        first += n;
    }
    let sent_in = t.elapsed();
    let groups: Vec<i64> = sql(
        &http,
        &base,
        "SELECT id FROM errors WHERE error_type LIKE 'bench.errors.%' AND status <> 'merged' ORDER BY id",
    )
    .await
    .iter()
    .map(|r| number(&r[0]))
    .collect();
    assert!(!groups.is_empty(), "the error engine made no groups");
    let events = number(&sql(&http, &base, "SELECT count(*) FROM error_events").await[0][0]);
    // Automatic triage writes a report on each new group; wait for them so
    // get_error reads one, as it would on a running server.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut reports = 0;
    while config.triage.enabled && Instant::now() < deadline {
        reports = number(
            &sql(
                &http,
                &base,
                "SELECT count(*) FROM error_triage t JOIN errors e ON e.id = t.group_id \
                 WHERE e.error_type LIKE 'bench.errors.%'",
            )
            .await[0][0],
        );
        if reports >= groups.len() as i64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "sent {error_traces} error traces in {:.1} s: {} groups, {events} error events in the database; {reports} triage reports after {:.1} s (at most one a second)",
        sent_in.as_secs_f64(),
        groups.len(),
        t.elapsed().as_secs_f64()
    );
    let targets = Targets { groups, traces };

    // Over MCP, then the REST equivalents, on the running server.
    let client = McpClient::connect(format!("{base}/mcp")).await;
    let mut figures: Vec<Figures> = Vec::new();
    let show = std::env::var_os("BENCH_SHOW").is_some();
    for case in CASES {
        if show {
            let (answer, _) = client.answer(case.tool(), case.args(&targets, 0)).await;
            println!(
                "--- {}:\n{}",
                case.label(),
                answer["result"]["content"][0]["text"]
                    .as_str()
                    .unwrap_or("")
            );
        }
        let size = Cell::new(0usize);
        let mcp = time(rounds, |round| {
            let args = case.args(&targets, round);
            let (client, size) = (&client, &size);
            async move {
                size.set(client.call(case.tool(), args).await);
            }
        })
        .await;
        let rest = match case.rest(&targets, 0) {
            Some(_) => Some(
                time(rounds, |round| {
                    let url = format!("{base}{}", case.rest(&targets, round).unwrap_or_default());
                    let http = &http;
                    async move {
                        let r = http.get(&url).send().await.expect("REST request");
                        assert_eq!(r.status().as_u16(), 200, "{url}");
                        r.bytes().await.expect("REST answer");
                    }
                })
                .await,
            ),
            None => None,
        };
        figures.push(Figures {
            mcp,
            answer_bytes: size.get(),
            rest,
            store: None,
        });
    }
    drop(client);
    server.shutdown().await.expect("stopping qyl");

    // The same store calls in process, on the same file.
    let mut breakdown = Vec::new();
    {
        let db = storage::open(&StorageOptions {
            path: path.clone(),
            memory_limit_mb: config.storage.memory_limit_mb,
            threads: config.storage.threads,
            archive: None,
        })
        .expect("reopening the database");
        let store = Store::new(
            db,
            &path,
            config.query.pool_size,
            Duration::from_millis(config.query.timeout_ms),
        );
        for (case, f) in CASES.iter().zip(figures.iter_mut()) {
            let (store, targets) = (&store, &targets);
            f.store = Some(time(rounds, |round| case.store(store, targets, round)).await);
        }
        for (label, window) in [("1h", HOUR_NS), ("24h", 24 * HOUR_NS)] {
            let mut parts = Vec::new();
            for part in OVERVIEW_PARTS {
                let store = &store;
                let (p50, _) =
                    time(rounds, |_| overview_part(store, part, window, now_nanos())).await;
                parts.push(format!("{part} {:.2}", ms(p50)));
            }
            breakdown.push(format!(
                "overview {label}, store p50 ms: {}",
                parts.join(", ")
            ));
        }
    }

    println!(
        "\n{:<30} {:>17} {:>8} {:>17} {:>8} {:>17} {:>8}",
        "tool",
        "MCP p50 / p99",
        "answer",
        "store p50 / p99",
        "MCP/st",
        "REST p50 / p99",
        "MCP/REST"
    );
    let pair = |p: Option<P>| match p {
        Some((p50, p99)) => format!("{:>7.2} / {:>7.2}", ms(p50), ms(p99)),
        None => format!("{:>17}", "-"),
    };
    let ratio = |mcp: P, base: Option<P>| match base {
        Some((p50, _)) => format!("{:>7.1}×", ms(mcp.0) / ms(p50).max(1e-9)),
        None => format!("{:>8}", "-"),
    };
    for (case, f) in CASES.iter().zip(&figures) {
        println!(
            "{:<30} {} {:>6.1}kB {} {} {} {}",
            case.label(),
            pair(Some(f.mcp)),
            f.answer_bytes as f64 / 1e3,
            pair(f.store),
            ratio(f.mcp, f.store),
            pair(f.rest),
            ratio(f.mcp, f.rest)
        );
    }
    for line in breakdown {
        println!("{line}");
    }
}
