//! The read API as a user drives it: telemetry goes in over OTLP/HTTP, then
//! every /api/v1 endpoint is queried over a real socket with its filters,
//! paging and error cases.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::Qyl;
use serde_json::{json, Value};

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("sending the request");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.expect("reading the body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "status {status}: body is not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(q: &Qyl, path: &str) -> Reply {
    send(reqwest::Client::new().get(format!("http://{}{path}", q.http))).await
}

async fn get_ok(q: &Qyl, path: &str) -> Value {
    let r = get(q, path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

async fn post_json(q: &Qyl, path: &str, body: Value) -> Reply {
    send(
        reqwest::Client::new()
            .post(format!("http://{}{path}", q.http))
            .header("content-type", "application/json")
            .body(body.to_string()),
    )
    .await
}

fn str_attr(k: &str, v: &str) -> Value {
    json!({"key": k, "value": {"stringValue": v}})
}

fn int_attr(k: &str, v: i64) -> Value {
    json!({"key": k, "value": {"intValue": v.to_string()}})
}

fn id(byte: &str, len: usize) -> String {
    byte.repeat(len)
}

struct SpanSpec<'a> {
    trace: String,
    span: String,
    parent: Option<String>,
    name: &'a str,
    kind: u32,
    start: u64,
    dur_ms: u64,
    error: bool,
    attrs: Vec<Value>,
}

fn span(s: SpanSpec) -> Value {
    let mut v = json!({
        "traceId": s.trace,
        "spanId": s.span,
        "name": s.name,
        "kind": s.kind,
        "startTimeUnixNano": s.start.to_string(),
        "endTimeUnixNano": (s.start + s.dur_ms * 1_000_000).to_string(),
        "attributes": s.attrs,
        "status": {"code": if s.error { 2 } else { 1 }},
    });
    if let Some(p) = s.parent {
        v["parentSpanId"] = json!(p);
    }
    v
}

fn resource_spans(service: &str, spans: Vec<Value>) -> Value {
    json!({
        "resource": {"attributes": [str_attr("service.name", service), str_attr("service.version", "1.2.3")]},
        "scopeSpans": [{"scope": {"name": "test"}, "spans": spans}]
    })
}

const A: &str = "a";

/// Seven traces: A (checkout, 3 spans, an LLM call that failed), B
/// (search), and five one-span batch traces sharing one start time.
async fn load(q: &Qyl, t0: u64) {
    let ta = id(A, 32);
    let root = id("1", 16);
    let spans_a = vec![
        span(SpanSpec {
            trace: ta.clone(),
            span: root.clone(),
            parent: None,
            name: "POST /checkout",
            kind: 2,
            start: t0,
            dur_ms: 200,
            error: false,
            attrs: vec![str_attr("session.id", "sess-1")],
        }),
        span(SpanSpec {
            trace: ta.clone(),
            span: id("2", 16),
            parent: Some(root.clone()),
            name: "db.query",
            kind: 3,
            start: t0 + 10_000_000,
            dur_ms: 50,
            error: false,
            attrs: vec![str_attr("db.system", "postgres")],
        }),
        span(SpanSpec {
            trace: ta.clone(),
            span: id("3", 16),
            parent: Some(root),
            name: "chat gpt-4o",
            kind: 3,
            start: t0 + 70_000_000,
            dur_ms: 100,
            error: true,
            attrs: vec![
                str_attr("gen_ai.provider.name", "openai"),
                str_attr("gen_ai.operation.name", "chat"),
                str_attr("gen_ai.request.model", "gpt-4o"),
                int_attr("gen_ai.usage.input_tokens", 100),
                int_attr("gen_ai.usage.output_tokens", 20),
            ],
        }),
    ];
    let spans_b = vec![span(SpanSpec {
        trace: id("b", 32),
        span: id("4", 16),
        parent: None,
        name: "GET /search",
        kind: 2,
        start: t0 + 1_000_000_000,
        dur_ms: 30,
        error: false,
        attrs: vec![],
    })];
    let batch: Vec<Value> = (1..=5)
        .map(|i| {
            span(SpanSpec {
                trace: format!("c{i:031x}"),
                span: format!("{:016x}", 0x100 + i),
                parent: None,
                name: "job",
                kind: 1,
                start: t0 + 2_000_000_000,
                dur_ms: 10,
                error: false,
                attrs: vec![],
            })
        })
        .collect();
    let traces = json!({"resourceSpans": [
        resource_spans("checkout", spans_a),
        resource_spans("search", spans_b),
        resource_spans("batch", batch),
    ]});
    let r = post_json(q, "/v1/traces", traces).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let logs = json!({"resourceLogs": [
        {"resource": {"attributes": [str_attr("service.name", "checkout")]},
         "scopeLogs": [{"logRecords": [
            {"timeUnixNano": (t0 + 80_000_000).to_string(), "severityNumber": 17, "severityText": "ERROR",
             "body": {"stringValue": "payment failed: card declined (50% of retries used)"},
             "traceId": ta, "spanId": id("3", 16),
             "attributes": [str_attr("payment.provider", "stripe")]},
            {"timeUnixNano": (t0 + 5_000_000).to_string(), "severityNumber": 9,
             "body": {"stringValue": "checkout started"}}
         ]}]},
        {"resource": {"attributes": [str_attr("service.name", "search")]},
         "scopeLogs": [{"logRecords": [
            {"timeUnixNano": (t0 + 1_000_000_000).to_string(), "severityNumber": 9,
             "body": {"stringValue": "searching for Shoes"}}
         ]}]}
    ]});
    let r = post_json(q, "/v1/logs", logs).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let s = |k: u64| (t0 + k * 10_000_000_000).to_string();
    let metrics = json!({"resourceMetrics": [{
        "resource": {"attributes": [str_attr("service.name", "checkout")]},
        "scopeMetrics": [{"metrics": [
            {"name": "queue.depth", "unit": "{item}", "gauge": {"dataPoints": [
                {"asDouble": 2.0, "timeUnixNano": s(0)},
                {"asDouble": 4.0, "timeUnixNano": s(1)},
                {"asDouble": 9.0, "timeUnixNano": s(6)}
            ]}},
            {"name": "requests", "sum": {"aggregationTemporality": 2, "isMonotonic": true, "dataPoints": [
                {"asInt": "10", "startTimeUnixNano": s(0), "timeUnixNano": s(0)},
                {"asInt": "25", "startTimeUnixNano": s(0), "timeUnixNano": s(6)},
                {"asInt": "40", "startTimeUnixNano": s(0), "timeUnixNano": s(12)}
            ]}},
            {"name": "latency", "unit": "ms", "histogram": {"aggregationTemporality": 1, "dataPoints": [
                {"timeUnixNano": s(0), "count": "20", "sum": 300,
                 "bucketCounts": ["10", "10", "0"], "explicitBounds": [10, 20]},
                {"timeUnixNano": s(1), "count": "20", "sum": 300,
                 "bucketCounts": ["0", "20", "0"], "explicitBounds": [10, 20]}
            ]}}
        ]}]
    }]});
    let r = post_json(q, "/v1/metrics", metrics).await;
    assert_eq!(r.status, 200, "{}", r.body);
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn trace_ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_endpoint_with_filters_paging_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    // Ten minutes ago, on a whole minute so metric steps of 60 s align.
    let t0 = (now_nanos() - 600_000_000_000) / 60_000_000_000 * 60_000_000_000;
    load(&q, t0).await;
    let ta = id(A, 32);

    // --- /traces: everything, newest first, then paged without gaps.
    let all = get_ok(&q, "/api/v1/traces").await;
    let ids = trace_ids(&all);
    assert_eq!(ids.len(), 7, "{all}");
    assert_eq!(ids[6], ta);
    assert_eq!(ids[5], id("b", 32));
    assert!(all["next_cursor"].is_null());
    let a = &all["items"][6];
    assert_eq!(a["root_name"], "POST /checkout");
    assert_eq!(a["span_count"], 3);
    assert_eq!(a["error_count"], 1);
    assert_eq!(a["gen_ai_input_tokens"], 100);
    assert_eq!(a["gen_ai_output_tokens"], 20);
    assert_eq!(a["duration_ms"], 200.0);
    assert_eq!(a["services"], json!(["checkout"]));

    let mut paged = Vec::new();
    let mut path = "/api/v1/traces?limit=3".to_string();
    loop {
        let page = get_ok(&q, &path).await;
        paged.extend(trace_ids(&page));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/traces?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(paged, ids, "pages must neither repeat nor skip traces");

    for (query, expect) in [
        ("service=checkout", vec![ta.clone()]),
        ("status=error", vec![ta.clone()]),
        ("min_duration_ms=100", vec![ta.clone()]),
        ("name=db.query", vec![ta.clone()]),
        ("attr.db.system=postgres", vec![ta.clone()]),
        (
            "attr.service.version=1.2.3&service=search",
            vec![id("b", 32)],
        ),
        ("session_id=sess-1", vec![ta.clone()]),
        ("max_duration_ms=20&limit=1", vec![format!("c{:031x}", 5)]),
        ("since=1h&service=search", vec![id("b", 32)]),
        ("since=1m", vec![]),
    ] {
        let page = get_ok(&q, &format!("/api/v1/traces?{query}")).await;
        assert_eq!(trace_ids(&page), expect, "{query}");
    }
    let until = humantime::format_rfc3339_nanos(
        UNIX_EPOCH + std::time::Duration::from_nanos(t0 + 500_000_000),
    );
    let page = get_ok(&q, &format!("/api/v1/traces?until={until}")).await;
    assert_eq!(trace_ids(&page), vec![ta.clone()]);

    // --- /traces/{id}: the tree with its logs.
    let tree = get_ok(&q, &format!("/api/v1/traces/{}", ta.to_uppercase())).await;
    assert_eq!(tree["summary"]["span_count"], 3);
    let roots = tree["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 1);
    assert_eq!(roots[0]["name"], "POST /checkout");
    let children = roots[0]["children"].as_array().unwrap();
    assert_eq!(children.len(), 2);
    assert_eq!(children[0]["name"], "db.query");
    assert_eq!(children[1]["gen_ai"]["input_tokens"], 100);
    assert_eq!(children[1]["status_code"], "ERROR");
    assert_eq!(children[0]["attributes"]["db.system"], "postgres");
    assert_eq!(tree["logs"].as_array().unwrap().len(), 1);

    let r = get(&q, &format!("/api/v1/traces/{}", id("f", 32))).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "not_found");
    let r = get(&q, "/api/v1/traces/not-a-trace").await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("trace id"));

    // --- /spans: flat search with per-span filters and paging.
    let page = get_ok(&q, "/api/v1/spans?service=checkout&kind=client").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let page = get_ok(&q, "/api/v1/spans?status=error").await;
    assert_eq!(page["items"][0]["name"], "chat gpt-4o");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let page = get_ok(&q, "/api/v1/spans?min_duration_ms=40&max_duration_ms=100").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 2);
    let mut seen = Vec::new();
    let mut path = "/api/v1/spans?name=job&limit=2".to_string();
    loop {
        let page = get_ok(&q, &path).await;
        for s in page["items"].as_array().unwrap() {
            seen.push(s["span_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/spans?name=job&limit=2&cursor={c}"),
            None => break,
        }
    }
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 5);

    // --- /logs
    let page = get_ok(&q, "/api/v1/logs?severity_min=error").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["items"][0]["trace_id"], ta);
    let page = get_ok(&q, "/api/v1/logs?q=shoes").await;
    assert_eq!(page["items"][0]["service_name"], "search");
    let page = get_ok(&q, "/api/v1/logs?q=50%25").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let page = get_ok(&q, "/api/v1/logs?service=checkout&limit=1").await;
    assert_eq!(
        page["items"][0]["body"],
        json!("payment failed: card declined (50% of retries used)")
    );
    let c = page["next_cursor"].as_str().unwrap().to_string();
    let page = get_ok(
        &q,
        &format!("/api/v1/logs?service=checkout&limit=1&cursor={c}"),
    )
    .await;
    assert_eq!(page["items"][0]["body"], "checkout started");
    assert!(page["next_cursor"].is_null());
    let page = get_ok(&q, "/api/v1/logs?attr.payment.provider=stripe").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let r = get(&q, "/api/v1/logs?severity_min=loud").await;
    assert_eq!(r.status, 400);

    // --- /metrics
    let list = get_ok(&q, "/api/v1/metrics").await;
    let names: Vec<_> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        vec![
            ("latency", "histogram"),
            ("queue.depth", "gauge"),
            ("requests", "sum")
        ]
    );
    let since = t0 / 1_000_000;
    let gauge = get_ok(
        &q,
        &format!("/api/v1/metrics/queue.depth?since={since}&step=60s"),
    )
    .await;
    let points = gauge["series"][0]["points"].as_array().unwrap();
    assert_eq!(points[0]["avg"], 3.0);
    assert_eq!(points[0]["value"], 4.0);
    assert_eq!(points[1]["value"], 9.0);
    let sum = get_ok(
        &q,
        &format!("/api/v1/metrics/requests?since={since}&step=60s"),
    )
    .await;
    let points = sum["series"][0]["points"].as_array().unwrap();
    let increases: Vec<f64> = points
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .collect();
    // A cumulative counter's first point has nothing before it to
    // increase from.
    assert_eq!(increases, vec![0.0, 15.0, 15.0], "{sum}");
    let hist = get_ok(
        &q,
        &format!("/api/v1/metrics/latency?since={since}&step=60s"),
    )
    .await;
    let p = &hist["series"][0]["points"][0];
    assert_eq!(p["count"], 40);
    // 10 values in (0, 10], 30 in (10, 20]: the median lies in the second
    // bucket, a third of the way in.
    let p50 = p["p50"].as_f64().unwrap();
    assert!((p50 - 13.333).abs() < 0.01, "{p}");
    let r = get(&q, "/api/v1/metrics/nope").await;
    assert_eq!(r.status, 404);
    let r = get(
        &q,
        &format!("/api/v1/metrics/latency?since={since}&step=1ms"),
    )
    .await;
    assert_eq!(r.status, 400);

    // --- /services and /storage
    let services = get_ok(&q, "/api/v1/services").await;
    let checkout = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "checkout")
        .unwrap();
    assert_eq!(checkout["span_count"], 3);
    assert_eq!(checkout["error_count"], 1);
    assert_eq!(checkout["versions"], json!(["1.2.3"]));
    assert_eq!(services.as_array().unwrap().len(), 3);

    let storage = get_ok(&q, "/api/v1/storage").await;
    let rows: Vec<_> = storage["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["rows"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, vec![9, 3, 8]);
    assert_eq!(storage["dropped"], 0);
    assert!(storage["file_bytes"].as_u64().unwrap() > 0);

    // --- errors and headers common to the API
    let r = get(&q, "/api/v1/traces?servce=checkout").await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("servce"));
    let r = get(&q, "/api/v1/traces?cursor=bogus").await;
    assert_eq!(r.status, 400);
    let r = get(&q, "/api/v1/traces?since=soon").await;
    assert_eq!(r.status, 400);
    let r = get(&q, "/api/v1/nothing-here").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["error"]["code"], "not_found");
    assert_eq!(r.headers["cache-control"], "no-store");
    let r = get(&q, "/api/v1/traces").await;
    assert_eq!(r.headers["cache-control"], "no-store");
    let r = send(reqwest::Client::new().delete(format!("http://{}/api/v1/traces", q.http))).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.body["error"]["code"], "method_not_allowed");

    q.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_is_read_only_capped_and_explains_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Qyl::start(
        &dir.path().join("qyl.duckdb"),
        &[("QYL_QUERY_SQL_ROW_LIMIT", "5")],
    );
    load(&q, now_nanos() - 60_000_000_000).await;

    let r = post_json(
        &q,
        "/api/v1/sql",
        json!({"sql": "SELECT service_name, count(*) AS n FROM spans GROUP BY 1 ORDER BY 1"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["columns"][1]["name"], "n");
    assert_eq!(r.body["rows"][0], json!(["batch", 5]));
    assert_eq!(r.body["truncated"], false);

    let r = post_json(&q, "/api/v1/sql", json!({"sql": "FROM range(100)"})).await;
    assert_eq!(r.body["rows"].as_array().unwrap().len(), 5);
    assert_eq!(r.body["truncated"], true);
    let r = post_json(
        &q,
        "/api/v1/sql",
        json!({"sql": "FROM range(100)", "limit": 2}),
    )
    .await;
    assert_eq!(r.body["rows"].as_array().unwrap().len(), 2);

    for (sql, word) in [
        ("INSERT INTO logs SELECT * FROM logs", "INSERT"),
        ("COPY spans TO '/tmp/qyl-leak.csv'", "COPY"),
        ("ATTACH '/tmp/qyl-other.duckdb' AS other", "ATTACH"),
        ("PRAGMA database_size", "PRAGMA"),
        ("SELECT 1; DELETE FROM spans", "one statement"),
        ("SELECT * FROM read_text('/etc/hostname')", "disabled"),
        ("SELECT nope FROM spans", "nope"),
    ] {
        let r = post_json(&q, "/api/v1/sql", json!({ "sql": sql })).await;
        assert_eq!(r.status, 400, "{sql}: {}", r.body);
        let msg = r.body["error"]["message"].as_str().unwrap();
        assert!(msg.contains(word), "{sql}: {msg}");
    }
    let r = send(
        reqwest::Client::new()
            .post(format!("http://{}/api/v1/sql", q.http))
            .header("content-type", "application/json")
            .body("{not json"),
    )
    .await;
    assert_eq!(r.status, 400);

    // A query past the deadline is interrupted (504), and the server goes
    // on answering: the connection went back to the pool.
    let started = std::time::Instant::now();
    let r = post_json(
        &q,
        "/api/v1/sql",
        json!({"sql": "SELECT count(*) FROM range(1000000000000) a, range(1000) b"}),
    )
    .await;
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.body["error"]["code"], "timeout");
    assert!(started.elapsed() < std::time::Duration::from_secs(30));

    // Nothing above changed the data.
    let r = post_json(
        &q,
        "/api/v1/sql",
        json!({"sql": "SELECT count(*) FROM spans"}),
    )
    .await;
    assert_eq!(r.body["rows"][0][0], 9);

    // Health is JSON and reports the writer and storage.
    let h = get_ok(&q, "/health").await;
    assert_eq!(h["status"], "ok");
    assert_eq!(get_ok(&q, "/health/live").await["status"], "ok");
    assert_eq!(get_ok(&q, "/health/ready").await["status"], "ready");
    q.stop();
}

fn float_attr(k: &str, v: f64) -> Value {
    json!({"key": k, "value": {"doubleValue": v}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn genai_stats_count_calls_once_and_never_price_unknowns_as_zero() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    let t0 = now_nanos() - 120_000_000_000;
    let trace = id("d", 32);
    let agent = id("5", 16);
    let call = |sid: &str, model: &str, input: i64, output: i64, cost: Option<f64>, error: bool| {
        let mut attrs = vec![
            str_attr("gen_ai.system", "openai"),
            str_attr("gen_ai.operation.name", "chat"),
            str_attr("gen_ai.request.model", "gpt-4o"),
            str_attr("gen_ai.response.model", model),
            int_attr("gen_ai.usage.prompt_tokens", input),
            int_attr("gen_ai.usage.completion_tokens", output),
        ];
        if let Some(c) = cost {
            attrs.push(float_attr("gen_ai.usage.cost", c));
        }
        span(SpanSpec {
            trace: trace.clone(),
            span: id(sid, 16),
            parent: Some(agent.clone()),
            name: "chat gpt-4o",
            kind: 3,
            start: t0 + 1_000_000,
            dur_ms: 400,
            error,
            attrs,
        })
    };
    let spans = vec![
        // The agent span repeats its calls' token totals; counting it
        // would double them.
        span(SpanSpec {
            trace: trace.clone(),
            span: agent.clone(),
            parent: None,
            name: "invoke_agent planner",
            kind: 1,
            start: t0,
            dur_ms: 1000,
            error: false,
            attrs: vec![
                str_attr("gen_ai.provider.name", "openai"),
                str_attr("gen_ai.operation.name", "invoke_agent"),
                int_attr("gen_ai.usage.input_tokens", 300),
                int_attr("gen_ai.usage.output_tokens", 60),
            ],
        }),
        call("6", "gpt-4o-2024-08-06", 100, 20, Some(0.002), false),
        call("7", "gpt-4o-2024-08-06", 200, 40, None, true),
        // Not a GenAI call at all.
        span(SpanSpec {
            trace: trace.clone(),
            span: id("8", 16),
            parent: Some(agent.clone()),
            name: "db.query",
            kind: 3,
            start: t0 + 2_000_000,
            dur_ms: 5,
            error: false,
            attrs: vec![],
        }),
    ];
    let body = json!({"resourceSpans": [resource_spans("planner", spans)]});
    let r = post_json(&q, "/v1/traces", body).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let s = get_ok(&q, "/api/v1/genai/stats?since=1h&step=1m").await;
    let t = &s["totals"];
    assert_eq!(t["requests"], 2, "{s}");
    assert_eq!(t["errors"], 1);
    assert_eq!(t["input_tokens"], 300);
    assert_eq!(t["output_tokens"], 60);
    // The call without a cost is priced at ingest (gpt-4o: $2.50 in,
    // $10 out per million tokens); the sent cost wins for the other.
    let cost = t["cost_usd"].as_f64().unwrap();
    assert!(
        (cost - (0.002 + (200.0 * 2.5 + 40.0 * 10.0) / 1e6)).abs() < 1e-12,
        "{t}"
    );
    assert_eq!(t["requests_without_cost"], 0);
    assert_eq!(t["latency_p50_ms"], 400.0);
    assert_eq!(s["by_model"][0]["model"], "gpt-4o-2024-08-06");
    assert_eq!(s["by_model"][0]["provider"], "openai");
    let buckets = s["over_time"].as_array().unwrap();
    assert_eq!(buckets.len(), 1);
    assert_eq!(buckets[0]["requests"], 2);

    let s = get_ok(
        &q,
        "/api/v1/genai/stats?since=1h&model=gpt-4o&service=planner",
    )
    .await;
    assert_eq!(s["totals"]["requests"], 2);
    let s = get_ok(&q, "/api/v1/genai/stats?since=1h&provider=anthropic").await;
    assert_eq!(s["totals"]["requests"], 0);
    assert!(s["by_model"].as_array().unwrap().is_empty());
    let r = get(&q, "/api/v1/genai/stats?since=1h&step=1ms").await;
    assert_eq!(r.status, 400);
    let r = get(&q, "/api/v1/genai/stats?modle=x").await;
    assert_eq!(r.status, 400);
    q.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_with_a_step_give_every_step_and_storage_names_retention() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    load(&q, now_nanos() - 60_000_000_000).await;

    let storage = get_ok(&q, "/api/v1/storage").await;
    assert_eq!(
        storage["retention"],
        json!({"hours": 168, "max_db_size_mb": 0})
    );

    let plain = get_ok(&q, "/api/v1/services?since=10m").await;
    assert!(plain[0].get("series").is_none(), "{plain}");

    let services = get_ok(&q, "/api/v1/services?since=10m&step=1m").await;
    let services = services.as_array().unwrap();
    assert_eq!(services.len(), 3);
    let lengths: Vec<usize> = services
        .iter()
        .map(|s| s["series"].as_array().unwrap().len())
        .collect();
    // Ten minutes in one-minute steps: 10 steps, or 11 when the window
    // does not start on a minute.
    assert!(
        lengths
            .iter()
            .all(|n| *n == lengths[0] && (10..=11).contains(n)),
        "{lengths:?}"
    );
    let checkout = services.iter().find(|s| s["name"] == "checkout").unwrap();
    let steps = checkout["series"].as_array().unwrap();
    let total = |k: &str| steps.iter().map(|b| b[k].as_u64().unwrap()).sum::<u64>();
    assert_eq!(total("span_count"), 3);
    assert_eq!(total("error_count"), 1);
    for b in steps {
        assert_eq!(b["p95_ms"].is_null(), b["span_count"] == 0, "{b}");
    }
    let times: Vec<u64> = steps
        .iter()
        .map(|b| b["time_unix_nano"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[1] - w[0] == 60_000_000_000));

    for bad in ["step=0", "step=1ms", "step=soon"] {
        let r = get(&q, &format!("/api/v1/services?since=10m&{bad}")).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("step"));
    }
    q.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_series_merge_per_group_by() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    let at = (now_nanos() - 60_000_000_000).to_string();
    let attrs = |region: &str, method: &str| {
        json!([str_attr("region", region), str_attr("method", method)])
    };
    // Three series: eu/GET all ≤ 10, eu/POST all in (10, 20], us/GET all > 20.
    let hist = |region: &str, method: &str, counts: [&str; 3], sum: f64| {
        json!({"timeUnixNano": at, "attributes": attrs(region, method), "count": "10",
               "sum": sum, "bucketCounts": counts, "explicitBounds": [10, 20]})
    };
    let num = |region: &str, method: &str, v: f64| json!({"timeUnixNano": at, "startTimeUnixNano": at, "attributes": attrs(region, method), "asDouble": v});
    let metrics = json!({"resourceMetrics": [{
        "resource": {"attributes": [str_attr("service.name", "api")]},
        "scopeMetrics": [{"metrics": [
            {"name": "latency", "unit": "ms", "histogram": {"aggregationTemporality": 1, "dataPoints": [
                hist("eu", "GET", ["10", "0", "0"], 50.0),
                hist("eu", "POST", ["0", "10", "0"], 150.0),
                hist("us", "GET", ["0", "0", "10"], 300.0)
            ]}},
            {"name": "requests", "sum": {"aggregationTemporality": 1, "isMonotonic": true, "dataPoints": [
                num("eu", "GET", 5.0), num("eu", "POST", 7.0), num("us", "GET", 11.0)
            ]}},
            {"name": "queue", "gauge": {"dataPoints": [
                num("eu", "GET", 2.0), num("eu", "POST", 4.0), num("us", "GET", 9.0)
            ]}}
        ]}]
    }]});
    let r = post_json(&q, "/v1/metrics", metrics).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let series = |body: &Value| body["series"].as_array().unwrap().clone();
    let path =
        |metric: &str, group: &str| format!("/api/v1/metrics/{metric}?since=10m&step=1h{group}");

    // The list names the keys group_by can use.
    let list = get_ok(&q, "/api/v1/metrics").await;
    for m in list.as_array().unwrap() {
        assert_eq!(m["attribute_keys"], json!(["method", "region"]), "{m}");
    }

    // Without group_by: one series per attribute set, as sent.
    let plain = get_ok(&q, &path("latency", "")).await;
    assert_eq!(series(&plain).len(), 3);

    // group_by= (empty): everything merged; buckets merge, so the p50 of
    // the 30 values is exact (the middle of (10, 20]).
    let total = get_ok(&q, &path("latency", "&group_by=")).await;
    let total = series(&total);
    assert_eq!(total.len(), 1);
    assert_eq!(total[0]["attributes"], json!({}));
    assert_eq!(total[0]["service_name"], "api");
    let p = &total[0]["points"][0];
    assert_eq!(p["count"], 30);
    assert_eq!(p["p50"].as_f64().unwrap(), 15.0);
    assert_eq!(p["avg"].as_f64().unwrap(), 500.0 / 30.0);

    // group_by=region: two series, each from its own buckets.
    let by_region = get_ok(&q, &path("latency", "&group_by=region")).await;
    let by_region = series(&by_region);
    let regions: Vec<_> = by_region.iter().map(|s| s["attributes"].clone()).collect();
    assert_eq!(
        regions,
        vec![json!({"region": "eu"}), json!({"region": "us"})]
    );
    assert_eq!(by_region[0]["points"][0]["count"], 20);
    assert_eq!(by_region[0]["points"][0]["p50"].as_f64().unwrap(), 10.0);
    assert_eq!(by_region[1]["points"][0]["p50"].as_f64().unwrap(), 20.0);

    // Sums add up per group.
    let sums = get_ok(&q, &path("requests", "&group_by=region")).await;
    let values: Vec<f64> = series(&sums)
        .iter()
        .map(|s| s["points"][0]["value"].as_f64().unwrap())
        .collect();
    assert_eq!(values, vec![12.0, 11.0]);

    // Gauges: last values add up, averages weigh every point, min/max span the group.
    let gauge = get_ok(&q, &path("queue", "&group_by=service.name")).await;
    let gauge = series(&gauge);
    assert_eq!(gauge.len(), 1);
    assert_eq!(gauge[0]["service_name"], "api");
    let p = &gauge[0]["points"][0];
    assert_eq!(p["value"].as_f64().unwrap(), 15.0);
    assert_eq!(p["avg"].as_f64().unwrap(), 5.0);
    assert_eq!(
        (p["min"].as_f64().unwrap(), p["max"].as_f64().unwrap()),
        (2.0, 9.0)
    );
    q.stop();
}

/// One OTLP/JSON log record: at `t` (Unix ns), with a severity number and
/// text (0 / "" for none), a body and attributes.
fn log_record(t: u64, number: i32, text: &str, body: &str, attrs: Vec<Value>) -> Value {
    let mut r = json!({"timeUnixNano": t.to_string(), "body": {"stringValue": body},
                       "attributes": attrs});
    if number != 0 {
        r["severityNumber"] = json!(number);
    }
    if !text.is_empty() {
        r["severityText"] = json!(text);
    }
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_histogram_counts_levels_per_bucket_with_the_search_filters() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    // Ten minutes ago, on a whole minute, so one-minute buckets start at t0.
    let t0 = (now_nanos() - 600_000_000_000) / 60_000_000_000 * 60_000_000_000;
    let at = |s: u64| t0 + s * 1_000_000_000;
    let none = Vec::new;
    let logs = json!({"resourceLogs": [
        {"resource": {"attributes": [str_attr("service.name", "api")]},
         "scopeLogs": [{"logRecords": [
            // Minute 0: two INFO (9 and 12), one DEBUG.
            log_record(at(5), 9, "INFO", "request served", none()),
            log_record(at(20), 12, "INFO4", "request served slowly", none()),
            log_record(at(40), 5, "DEBUG", "cache lookup", none()),
            // Minute 1: WARN, ERROR.
            log_record(at(65), 13, "WARN", "retrying payment", vec![str_attr("payment.provider", "stripe")]),
            log_record(at(90), 17, "ERROR", "payment failed", vec![str_attr("payment.provider", "stripe")]),
            // Minute 2: FATAL, TRACE, a text-only WARNING, one without any level.
            log_record(at(125), 21, "FATAL", "out of memory", none()),
            log_record(at(130), 1, "TRACE", "entering handler", none()),
            log_record(at(140), 0, "WARNING", "deprecated call", none()),
            log_record(at(150), 0, "", "plain print", none())
         ]}]},
        {"resource": {"attributes": [str_attr("service.name", "worker")]},
         "scopeLogs": [{"logRecords": [
            log_record(at(10), 17, "ERROR", "disk full", none()),
            // After the range asked for: never counted.
            log_record(at(200), 17, "ERROR", "disk still full", none())
         ]}]}
    ]});
    let r = post_json(&q, "/v1/logs", logs).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let range = format!("since={}&until={}", t0 / 1_000_000, at(180) / 1_000_000);
    let hist = |extra: &str| format!("/api/v1/logs/histogram?{range}{extra}");
    // counts[level] per bucket, in the answer's fixed level order.
    let counts = |body: &Value| -> Vec<(String, Vec<u64>)> {
        body["levels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let c: Vec<u64> = l["counts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_u64().unwrap())
                    .collect();
                assert_eq!(l["total"].as_u64().unwrap(), c.iter().sum::<u64>(), "{l}");
                (l["severity"].as_str().unwrap().to_string(), c)
            })
            .collect()
    };
    let level = |body: &Value, name: &str| -> Vec<u64> {
        counts(body).into_iter().find(|(n, _)| n == name).unwrap().1
    };

    // Everything, in one-minute buckets.
    let all = get_ok(&q, &hist("&step=1m")).await;
    assert_eq!(all["start_unix_nano"], t0.to_string());
    assert_eq!(all["step_ms"].as_f64().unwrap(), 60_000.0);
    assert_eq!(all["buckets"], 3);
    assert_eq!(all["total"], 10, "{all}");
    let names: Vec<String> = counts(&all).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "UNSET"]
    );
    assert_eq!(level(&all, "TRACE"), [0, 0, 1]);
    assert_eq!(level(&all, "DEBUG"), [1, 0, 0]);
    assert_eq!(level(&all, "INFO"), [2, 0, 0]);
    // The text-only WARNING counts as WARN, as the list shows it.
    assert_eq!(level(&all, "WARN"), [0, 1, 1]);
    assert_eq!(level(&all, "ERROR"), [1, 1, 0]);
    assert_eq!(level(&all, "FATAL"), [0, 0, 1]);
    assert_eq!(level(&all, "UNSET"), [0, 0, 1]);

    // The search's filters narrow the counts exactly as they narrow the
    // search: every total equals the number of records /logs returns.
    for filter in [
        "&service=api",
        "&severity_min=warn",
        "&q=PAYMENT",
        "&attr.payment.provider=stripe",
        "&service=worker&severity_min=17",
    ] {
        let h = get_ok(&q, &hist(&format!("&step=1m{filter}"))).await;
        let page = get_ok(&q, &format!("/api/v1/logs?{range}{filter}&limit=100")).await;
        let found = page["items"].as_array().unwrap().len() as u64;
        assert_eq!(h["total"].as_u64().unwrap(), found, "{filter}: {h}");
    }
    let errors_up = get_ok(&q, &hist("&step=1m&severity_min=error")).await;
    assert_eq!(errors_up["total"], 3);
    assert_eq!(level(&errors_up, "ERROR"), [1, 1, 0]);
    assert_eq!(level(&errors_up, "FATAL"), [0, 0, 1]);
    assert_eq!(level(&errors_up, "WARN"), [0, 0, 0]);
    let stripe = get_ok(&q, &hist("&step=1m&attr.payment.provider=stripe")).await;
    assert_eq!(level(&stripe, "WARN"), [0, 1, 0]);
    assert_eq!(level(&stripe, "ERROR"), [0, 1, 0]);

    // A range that does not start on the step: buckets still start on a
    // multiple of it, and records before `since` are left out.
    let late = format!(
        "/api/v1/logs/histogram?since={}&until={}&step=1m",
        at(30) / 1_000_000,
        at(180) / 1_000_000
    );
    let late = get_ok(&q, &late).await;
    assert_eq!(late["start_unix_nano"], t0.to_string());
    assert_eq!(late["buckets"], 3);
    assert_eq!(level(&late, "INFO"), [0, 0, 0]);
    assert_eq!(level(&late, "DEBUG"), [1, 0, 0]);
    assert_eq!(late["total"], 7);

    // Without a step: about 60 buckets over the range (3 s here).
    let auto = get_ok(&q, &hist("")).await;
    assert_eq!(auto["step_ms"].as_f64().unwrap(), 3_000.0);
    assert_eq!(auto["buckets"], 60);
    assert_eq!(auto["total"], 10);

    // Bad input is a 400 naming the parameter; unknown ones too.
    for (bad, name) in [
        ("&step=soon", "step"),
        ("&step=0", "step"),
        ("&step=1ms", "step"),
        ("&severity_min=loud", "severity_min"),
        ("&trace_id=xyz", "trace id"),
        ("&limit=10", "limit"),
        ("&stepp=1m", "stepp"),
    ] {
        let r = get(&q, &hist(bad)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(name), "{bad}: {message}");
    }
    let r = get(
        &q,
        &format!(
            "/api/v1/logs/histogram?since={}&until={}",
            at(60) / 1_000_000,
            t0 / 1_000_000
        ),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .starts_with("since"));
    q.stop();
}
