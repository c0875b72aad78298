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
