//! The live stream and `/metrics` over real sockets against the real binary:
//! what a dashboard, `curl -N` or a Prometheus scraper sees.

mod common;

use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use common::Qyl;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(15);

/// One message of an SSE stream.
#[derive(Debug, Clone, PartialEq)]
enum Msg {
    Event {
        event: String,
        id: Option<String>,
        data: Value,
    },
    Comment(String),
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// A minimal EventSource: reads the body as bytes and splits messages.
struct Sse {
    body: Body,
    buf: String,
}

impl Sse {
    async fn open(addr: &str, query: &str, last_event_id: Option<&str>) -> Sse {
        let resp = get_live(addr, query, last_event_id).await;
        assert_eq!(resp.status(), 200, "{query}");
        assert_eq!(
            resp.headers()["content-type"],
            "text/event-stream",
            "{query}"
        );
        Sse {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next message, or `None` when the stream ended.
    async fn next(&mut self) -> Option<Msg> {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                return Some(parse_block(&block));
            }
            match tokio::time::timeout(WAIT, self.body.next()).await {
                Err(_) => panic!("no SSE message within {WAIT:?}; have {:?}", self.buf),
                Ok(None) => return None,
                Ok(Some(chunk)) => self
                    .buf
                    .push_str(std::str::from_utf8(&chunk.expect("reading the stream")).unwrap()),
            }
        }
    }

    /// The next event, skipping heartbeats.
    async fn event(&mut self) -> (String, Option<String>, Value) {
        loop {
            match self.next().await {
                Some(Msg::Event { event, id, data }) => return (event, id, data),
                Some(Msg::Comment(_)) => {}
                None => panic!("the stream ended"),
            }
        }
    }

    /// `n` events as (event, name) where name is the span or metric name or
    /// the log body.
    async fn names(&mut self, n: usize) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for _ in 0..n {
            let (event, _, data) = self.event().await;
            let name = data["name"]
                .as_str()
                .or(data["body"].as_str())
                .unwrap_or_default()
                .to_string();
            out.push((event, name));
        }
        out
    }
}

fn parse_block(block: &str) -> Msg {
    let (mut event, mut id, mut data) = ("message".to_string(), None, String::new());
    for line in block.lines().filter(|l| !l.is_empty()) {
        if let Some(c) = line.strip_prefix(':') {
            return Msg::Comment(c.trim().to_string());
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = value.to_string(),
            "id" => id = Some(value.to_string()),
            "data" => data.push_str(value),
            other => panic!("unexpected SSE field {other:?} in {block:?}"),
        }
    }
    let data = serde_json::from_str(&data).unwrap_or_else(|e| panic!("{e}: {data:?}"));
    Msg::Event { event, id, data }
}

async fn get_live(addr: &str, query: &str, last_event_id: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(format!("http://{addr}/api/v1/live?{query}"));
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.expect("opening the live stream")
}

async fn post(addr: &str, path: &str, body: &Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("posting OTLP JSON");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{path}: {text}");
}

fn attr(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

fn resource(service: &str) -> Value {
    json!({ "attributes": [attr("service.name", service)] })
}

/// A span for [`traces`]: service, name, status code (0 unset, 1 ok, 2
/// error), duration in ms, trace id byte.
struct S<'a>(&'a str, &'a str, u8, u64, u8);

static NEXT_SPAN: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn traces(spans: &[S], big_attr: usize) -> Value {
    let resource_spans: Vec<Value> = spans
        .iter()
        .map(|S(service, name, status, ms, trace)| {
            let n = NEXT_SPAN.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let start = 1_700_000_000_000_000_000u64 + n * 1_000_000;
            let mut attributes = vec![attr("n", &n.to_string())];
            if big_attr > 0 {
                attributes.push(attr("payload", &"x".repeat(big_attr)));
            }
            json!({
                "resource": resource(service),
                "scopeSpans": [{ "spans": [{
                    "traceId": format!("{trace:02x}").repeat(16),
                    "spanId": format!("{n:016x}"),
                    "name": name,
                    "kind": 2,
                    "startTimeUnixNano": start.to_string(),
                    "endTimeUnixNano": (start + ms * 1_000_000).to_string(),
                    "attributes": attributes,
                    "status": { "code": status },
                }]}]
            })
        })
        .collect();
    json!({ "resourceSpans": resource_spans })
}

/// Logs for [`post`]: (service, severity number, body, trace id byte or 0).
fn logs(records: &[(&str, i32, &str, u8)]) -> Value {
    let resource_logs: Vec<Value> = records
        .iter()
        .map(|(service, severity, body, trace)| {
            let mut record = json!({
                "timeUnixNano": "1700000000150000000",
                "severityNumber": severity,
                "body": { "stringValue": body },
            });
            if *trace != 0 {
                record["traceId"] = json!(format!("{trace:02x}").repeat(16));
            }
            json!({ "resource": resource(service), "scopeLogs": [{ "logRecords": [record] }] })
        })
        .collect();
    json!({ "resourceLogs": resource_logs })
}

fn gauge(service: &str, name: &str) -> Value {
    json!({ "resourceMetrics": [{
        "resource": resource(service),
        "scopeMetrics": [{ "metrics": [{
            "name": name,
            "gauge": { "dataPoints": [{ "timeUnixNano": "1700000000000000000", "asDouble": 1.5 }] }
        }]}]
    }]})
}

fn start(env: &[(&str, &str)]) -> (tempfile::TempDir, Qyl) {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start(&dir.path().join("qyl.duckdb"), env);
    (dir, qyl)
}

fn seq(id: &Option<String>) -> u64 {
    id.as_deref()
        .and_then(|i| i.parse().ok())
        .unwrap_or_else(|| panic!("event id {id:?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_spans_and_logs_arrive_as_rest_rows() {
    let (_dir, qyl) = start(&[]);
    let mut live = Sse::open(&qyl.http, "", None).await;

    post(
        &qyl.otlp_http,
        "/v1/traces",
        &traces(&[S("checkout", "GET /cart", 2, 12, 0xab)], 0),
    )
    .await;
    post(
        &qyl.http,
        "/v1/logs",
        &logs(&[("checkout", 17, "boom", 0xab)]),
    )
    .await;
    // Metrics are not streamed unless asked for: the next event is the span
    // posted after the metric.
    post(&qyl.http, "/v1/metrics", &gauge("checkout", "queue.depth")).await;
    post(
        &qyl.http,
        "/v1/traces",
        &traces(&[S("checkout", "after", 0, 1, 0xac)], 0),
    )
    .await;

    let (event, id, span) = live.event().await;
    assert_eq!(event, "span");
    assert_eq!(span["ingest_seq"].as_u64(), Some(seq(&id)));
    assert_eq!(span["trace_id"], "ab".repeat(16));
    assert_eq!(span["name"], "GET /cart");
    assert_eq!(span["service_name"], "checkout");
    assert_eq!(span["status_code"], "ERROR");
    assert_eq!(span["kind"], "SERVER");
    assert_eq!(span["duration_ms"], 12.0);
    assert!(span["attributes"].is_object(), "{span}");
    assert!(span["start_time"]
        .as_str()
        .unwrap()
        .starts_with("2023-11-14T"));

    let (event, log_id, log) = live.event().await;
    assert_eq!(event, "log");
    assert_eq!(log["ingest_seq"].as_u64(), Some(seq(&log_id)));
    assert!(seq(&log_id) > seq(&id));
    assert_eq!(log["severity_number"], 17);
    assert_eq!(log["body"], "boom");
    assert_eq!(log["trace_id"], "ab".repeat(16));

    let (event, _, next) = live.event().await;
    assert_eq!(
        (event.as_str(), next["name"].as_str()),
        ("span", Some("after"))
    );

    // Exactly what the REST API returns for the same records.
    let query = format!("trace_id={}&since=1699999999000", "ab".repeat(16));
    let stored = get_json(&qyl.http, &format!("/api/v1/spans?{query}")).await;
    assert_eq!(stored["items"], json!([span]));
    let stored = get_json(&qyl.http, &format!("/api/v1/logs?{query}")).await;
    assert_eq!(stored["items"], json!([log]));
}

async fn get_json(addr: &str, path: &str) -> Value {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn each_client_gets_what_its_filters_ask_for() {
    let (_dir, qyl) = start(&[]);
    let t_err = 0x0e;
    let mut clients = Vec::new();
    for query in [
        "service=b",
        "status=error",
        "min_duration_ms=100",
        "severity_min=WARN",
        "types=metric",
        &format!("trace_id={}", "0E".repeat(16)),
        "types=span,log,metric&service=a",
    ] {
        clients.push((query.to_string(), Sse::open(&qyl.http, query, None).await));
    }

    post(
        &qyl.http,
        "/v1/traces",
        &traces(
            &[
                S("a", "a-ok", 1, 10, 1),
                S("a", "a-err", 2, 10, t_err),
                S("b", "b-slow", 0, 200, 2),
            ],
            0,
        ),
    )
    .await;
    post(
        &qyl.http,
        "/v1/logs",
        &logs(&[("a", 9, "a-info", 0), ("b", 17, "b-error", 0)]),
    )
    .await;
    post(&qyl.http, "/v1/metrics", &gauge("a", "a-gauge")).await;
    // Last, records every client matches: anything a filter let through
    // wrongly would show up before them.
    post(
        &qyl.http,
        "/v1/traces",
        &traces(&[S("b", "end", 2, 500, t_err)], 0),
    )
    .await;
    post(&qyl.http, "/v1/logs", &logs(&[("b", 21, "end", t_err)])).await;
    post(&qyl.http, "/v1/metrics", &gauge("b", "end")).await;

    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let expected = [
        pairs(&[
            ("span", "b-slow"),
            ("log", "b-error"),
            ("span", "end"),
            ("log", "end"),
        ]),
        pairs(&[("span", "a-err"), ("span", "end")]),
        pairs(&[("span", "b-slow"), ("span", "end")]),
        pairs(&[("log", "b-error"), ("log", "end")]),
        pairs(&[("metric", "a-gauge"), ("metric", "end")]),
        pairs(&[("span", "a-err"), ("span", "end"), ("log", "end")]),
        pairs(&[
            ("span", "a-ok"),
            ("span", "a-err"),
            ("log", "a-info"),
            ("metric", "a-gauge"),
        ]),
    ];
    for ((query, client), want) in clients.iter_mut().zip(expected) {
        let got = client.names(want.len()).await;
        assert_eq!(got, want, "?{query}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn last_event_id_replays_exactly_what_followed_it() {
    let (_dir, qyl) = start(&[]);
    let mut first = Sse::open(&qyl.http, "", None).await;
    let three: Vec<S> = (0..3).map(|_| S("svc", "before", 0, 1, 1)).collect();
    post(&qyl.http, "/v1/traces", &traces(&three, 0)).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(seq(&first.event().await.1));
    }
    drop(first);
    let two: Vec<S> = (0..2).map(|_| S("svc", "while away", 0, 1, 1)).collect();
    post(&qyl.http, "/v1/traces", &traces(&two, 0)).await;

    let mut resumed = Sse::open(&qyl.http, "", Some(&ids[0].to_string())).await;
    let mut got = Vec::new();
    for _ in 0..4 {
        let (event, id, data) = resumed.event().await;
        assert_eq!(event, "span");
        got.push((seq(&id), data["name"].as_str().unwrap_or("").to_string()));
    }
    assert_eq!(
        got[..2],
        [(ids[1], "before".into()), (ids[2], "before".into())]
    );
    assert_eq!(got[2].1, "while away");
    assert!(got[2].0 > ids[2] && got[3].0 > got[2].0);
    // Then it goes on live.
    post(
        &qyl.http,
        "/v1/traces",
        &traces(&[S("svc", "live", 0, 1, 1)], 0),
    )
    .await;
    assert_eq!(resumed.event().await.2["name"], "live");

    // The query parameter does the same for clients that cannot set headers.
    let mut by_query = Sse::open(&qyl.http, &format!("last_event_id={}", got[2].0), None).await;
    assert_eq!(seq(&by_query.event().await.1), got[3].0);
    assert_eq!(by_query.event().await.2["name"], "live");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_id_older_than_the_ring_gets_a_gap_event_first() {
    let (_dir, qyl) = start(&[("QYL_STREAM_RING_SIZE", "8")]);
    let mut watcher = Sse::open(&qyl.http, "", None).await;
    // One at a time: a watcher more than eight events behind would lag too.
    let mut ids = Vec::new();
    for _ in 0..10 {
        post(
            &qyl.http,
            "/v1/traces",
            &traces(&[S("svc", "x", 0, 1, 1)], 0),
        )
        .await;
        ids.push(seq(&watcher.event().await.1));
    }

    let mut late = Sse::open(&qyl.http, "", Some(&ids[0].to_string())).await;
    let (event, id, gap) = late.event().await;
    assert_eq!(event, "gap");
    assert_eq!(id, None);
    // ids[1] left the ring (it keeps the newest eight).
    assert_eq!(gap, json!({ "missed": 1, "oldest_available": ids[2] }));
    for want in &ids[2..] {
        let (event, id, _) = late.event().await;
        assert_eq!((event.as_str(), seq(&id)), ("span", *want));
    }
    // Resuming from inside the ring has no gap.
    let mut recent = Sse::open(&qyl.http, "", Some(&ids[6].to_string())).await;
    assert_eq!(seq(&recent.event().await.1), ids[7]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_stops_reading_is_told_it_lagged_and_ingest_goes_on() {
    let (_dir, qyl) = start(&[("QYL_STREAM_RING_SIZE", "4")]);
    let mut slow = Sse::open(&qyl.http, "", None).await;
    // 24 MB of events while the client reads nothing: more than the socket
    // buffers between us hold, so qyl must drop this client's backlog (the
    // ring keeps 4) rather than wait. Every export is still answered. Each
    // is committed before the next is sent: a subscriber's inbox keeps the
    // newest commit whole, so one group commit of all four (a slow writer
    // gathers exports that queue up) would fit and never lag.
    for n in 1..=4 {
        let spans: Vec<S> = (0..100).map(|_| S("svc", "big", 0, 1, 1)).collect();
        post(&qyl.http, "/v1/traces", &traces(&spans, 60_000)).await;
        let committed = format!("qyl_ingest_rows_total{{signal=\"span\"}} {}\n", n * 100);
        scrape_when(&qyl.http, &[&committed]).await;
    }
    let mut spans = 0;
    let skipped = loop {
        match slow.next().await {
            Some(Msg::Event { event, data, .. }) if event == "lagged" => {
                break data["skipped"].as_u64().unwrap();
            }
            Some(Msg::Event { event, .. }) => {
                assert_eq!(event, "span");
                spans += 1;
            }
            Some(Msg::Comment(_)) => {}
            None => panic!("the stream ended without a lagged event"),
        }
    };
    assert!(skipped > 0 && spans + skipped <= 400, "{spans} + {skipped}");
    assert_eq!(slow.next().await, None, "the stream ends after lagged");
    scrape_when(
        &qyl.http,
        &[
            "qyl_live_lagged_streams_total 1\n",
            "qyl_ingest_rows_total{signal=\"span\"} 400\n",
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn past_max_clients_new_streams_get_503_until_one_closes() {
    let (_dir, qyl) = start(&[("QYL_STREAM_MAX_CLIENTS", "2")]);
    let a = Sse::open(&qyl.http, "", None).await;
    let _b = Sse::open(&qyl.http, "service=x", None).await;
    let refused = get_live(&qyl.http, "", None).await;
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = serde_json::from_slice(&refused.bytes().await.unwrap()).unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 2"));
    assert!(scrape(&qyl.http).await.contains("qyl_live_clients 2\n"));

    drop(a);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let resp = get_live(&qyl.http, "", None).await;
        if resp.status() == 200 {
            break;
        }
        assert_eq!(resp.status(), 503);
        assert!(tokio::time::Instant::now() < deadline, "slot never freed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_streams_get_heartbeats() {
    let (_dir, qyl) = start(&[("QYL_STREAM_HEARTBEAT_SECS", "1")]);
    let mut live = Sse::open(&qyl.http, "", None).await;
    let started = std::time::Instant::now();
    for _ in 0..2 {
        assert_eq!(live.next().await, Some(Msg::Comment("heartbeat".into())));
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_parameters_are_400_json_naming_them() {
    let (_dir, qyl) = start(&[]);
    for (query, header, names) in [
        ("servce=a", None, "servce"),
        ("status=broken", None, "status"),
        ("severity_min=LOUD", None, "severity_min"),
        ("types=span,traces", None, "types"),
        ("min_duration_ms=soon", None, "min_duration_ms"),
        ("trace_id=xyz", None, "trace id"),
        ("last_event_id=-1", None, "last_event_id"),
        ("", Some("abc"), "Last-Event-ID"),
    ] {
        let resp = get_live(&qyl.http, query, header).await;
        assert_eq!(resp.status(), 400, "?{query}");
        let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "bad_request", "?{query}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(names), "?{query}: {message}");
    }
}

async fn scrape(addr: &str) -> String {
    let resp = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    resp.text().await.unwrap()
}

/// Scrapes until the text holds every line of `lines`. Counters move when
/// the writer commits, a few milliseconds after an export is answered, and
/// a scrape does not wait for that.
async fn scrape_when(addr: &str, lines: &[&str]) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let text = scrape(addr).await;
        if lines.iter().all(|l| text.contains(l)) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {lines:?} in\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A parsed sample: metric name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

/// A sample line of the text format: `name{k="v",...} value`.
fn parse_sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut chars = name.chars();
    let first = chars.next()?;
    if !(first.is_ascii_alphabetic() || first == '_' || first == ':')
        || !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let mut s = inner;
        loop {
            if let Some(after) = s.strip_prefix('}') {
                rest = after;
                break;
            }
            let eq = s.find("=\"")?;
            let key = &s[..eq];
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            let mut value = String::new();
            let mut it = s[eq + 2..].char_indices();
            let end = loop {
                match it.next()? {
                    (_, '\\') => match it.next()?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        _ => return None,
                    },
                    (i, '"') => break eq + 2 + i + 1,
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            s = &s[end..];
            s = s.strip_prefix(',').unwrap_or(s);
        }
    }
    let value = rest.strip_prefix(' ')?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().ok()?,
    };
    Some((name.to_string(), labels, value))
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_endpoint_counts_ingest_in_prometheus_text() {
    let (_dir, qyl) = start(&[]);
    let three: Vec<S> = (0..3).map(|_| S("svc", "x", 0, 1, 1)).collect();
    post(&qyl.otlp_http, "/v1/traces", &traces(&three, 0)).await;
    post(&qyl.http, "/v1/logs", &logs(&[("svc", 9, "hello", 0)])).await;

    let text = scrape_when(
        &qyl.http,
        &[
            "qyl_ingest_rows_total{signal=\"span\"} 3\n",
            "qyl_ingest_rows_total{signal=\"log\"} 1\n",
        ],
    )
    .await;
    let mut samples = Vec::new();
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(t) = line.strip_prefix("# TYPE ") {
            typed.push(t.split(' ').next().unwrap_or("").to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let sample = parse_sample(line).unwrap_or_else(|| panic!("not a sample: {line:?}"));
        samples.push(sample);
    }
    let value = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.contains(&(k.to_string(), v.to_string())))
            })
            .map(|(_, _, v)| *v)
            .unwrap_or_else(|| panic!("no {name}{labels:?} in\n{text}"))
    };
    assert_eq!(value("qyl_ingest_rows_total", &[("signal", "span")]), 3.0);
    assert_eq!(value("qyl_ingest_rows_total", &[("signal", "log")]), 1.0);
    assert_eq!(value("qyl_ingest_rows_total", &[("signal", "metric")]), 0.0);
    assert_eq!(value("qyl_write_queue_rows", &[]), 0.0);
    assert_eq!(value("qyl_write_queue_capacity_rows", &[]), 100_000.0);
    // The writer may commit both exports in one group.
    let commits = value("qyl_commits_total", &[]);
    assert!(commits >= 1.0, "{commits}");
    assert_eq!(value("qyl_commit_duration_seconds_count", &[]), commits);
    assert_eq!(
        value("qyl_commit_duration_seconds_bucket", &[("le", "+Inf")]),
        commits
    );
    assert!(value("qyl_uptime_seconds", &[]) > 0.0);
    assert_eq!(
        value("qyl_build_info", &[("version", env!("CARGO_PKG_VERSION"))]),
        1.0
    );
    // Every sample belongs to a declared family.
    for (name, _, _) in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.iter().any(|t| t == f))
            })
            .unwrap_or(name);
        assert!(typed.iter().any(|t| t == family), "{name} has no # TYPE");
    }
    assert!(parse_sample("bad name 1").is_none());
    assert!(parse_sample("x{a=\"1\"} notanumber").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn open_streams_do_not_hold_up_shutdown() {
    let (_dir, mut qyl) = start(&[]);
    let mut live = Sse::open(&qyl.http, "", None).await;
    let started = std::time::Instant::now();
    tokio::task::spawn_blocking(move || {
        qyl.stop();
        qyl
    })
    .await
    .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(live.next().await, None, "the stream ends when qyl stops");
}
