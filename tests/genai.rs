//! GenAI accounting and sessions as a user sees them: an LLM application's
//! traces and log events go in over OTLP/HTTP (current and legacy attribute
//! names, agent roll-ups, a model without a price, spans that name their
//! session and spans that only share a trace with one), then the sessions
//! and GenAI endpoints are read over a real socket.

mod common;

use std::collections::HashSet;
use std::time::{SystemTime, UNIX_EPOCH};

use common::Qyl;
use serde_json::{json, Value};

async fn get(q: &Qyl, path: &str) -> (u16, Value) {
    let resp = reqwest::get(format!("http://{}{path}", q.http))
        .await
        .expect("sending the request");
    let status = resp.status().as_u16();
    let body = serde_json::from_slice(&resp.bytes().await.unwrap()).expect("a JSON body");
    (status, body)
}

async fn get_ok(q: &Qyl, path: &str) -> Value {
    let (status, body) = get(q, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn post(q: &Qyl, path: &str, body: Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}{path}", q.http))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("exporting");
    let status = resp.status().as_u16();
    assert_eq!(status, 200, "{}", resp.text().await.unwrap_or_default());
}

fn s(k: &str, v: &str) -> Value {
    json!({"key": k, "value": {"stringValue": v}})
}
fn i(k: &str, v: i64) -> Value {
    json!({"key": k, "value": {"intValue": v.to_string()}})
}
fn f(k: &str, v: f64) -> Value {
    json!({"key": k, "value": {"doubleValue": v}})
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn span(
    trace: &str,
    id: &str,
    parent: Option<&str>,
    name: &str,
    start: u64,
    error: bool,
    attrs: Vec<Value>,
) -> Value {
    let mut v = json!({
        "traceId": trace, "spanId": id, "name": name, "kind": 3,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": (start + 250_000_000).to_string(),
        "attributes": attrs,
        "status": {"code": if error { 2 } else { 1 }},
    });
    if let Some(p) = parent {
        v["parentSpanId"] = json!(p);
    }
    v
}

fn traces(service: &str, spans: Vec<Value>) -> Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [s("service.name", service)]},
        "scopeSpans": [{"scope": {"name": "app"}, "spans": spans}]
    }]})
}

fn tid(c: char) -> String {
    c.to_string().repeat(32)
}
fn sid(c: char, n: u8) -> String {
    format!("{}{n:02}", c.to_string().repeat(14))
}

fn messages(v: Value) -> String {
    v.to_string()
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

/// The chat application's data: session `chat-1` over three traces, a
/// GenAI trace without a session, an old session, and twelve one-span
/// sessions for paging.
async fn load(q: &Qyl, t0: u64) {
    let (a, b, c, d) = (tid('a'), tid('b'), tid('c'), tid('d'));
    // Trace A: the request names the session; the agent repeats its
    // call's tokens (a roll-up); the call itself arrives in a later export
    // without a session id and joins through its trace.
    post(
        q,
        "/v1/traces",
        traces(
            "chat-api",
            vec![
                span(
                    &a,
                    &sid('a', 1),
                    None,
                    "POST /chat",
                    t0,
                    false,
                    vec![s("session.id", "chat-1"), s("user.id", "u-7")],
                ),
                span(
                    &a,
                    &sid('a', 2),
                    Some(&sid('a', 1)),
                    "invoke_agent helper",
                    t0 + 1,
                    false,
                    vec![
                        s("gen_ai.provider.name", "openai"),
                        s("gen_ai.operation.name", "invoke_agent"),
                        s("gen_ai.agent.name", "helper"),
                        i("gen_ai.usage.input_tokens", 1000),
                        i("gen_ai.usage.output_tokens", 200),
                    ],
                ),
            ],
        ),
    )
    .await;
    post(
        q,
        "/v1/traces",
        traces(
            "chat-api",
            vec![span(&a, &sid('a', 3), Some(&sid('a', 2)), "chat gpt-4o-mini", t0 + 2, false, vec![
                s("gen_ai.provider.name", "openai"),
                s("gen_ai.operation.name", "chat"),
                s("gen_ai.request.model", "gpt-4o-mini"),
                s("gen_ai.response.model", "gpt-4o-mini-2024-07-18"),
                i("gen_ai.usage.input_tokens", 1000),
                i("gen_ai.usage.output_tokens", 200),
                i("gen_ai.usage.cache_read.input_tokens", 400),
                f("gen_ai.response.time_to_first_chunk", 0.12),
                json!({"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}}),
                s("gen_ai.input.messages", &messages(json!([
                    {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
                    {"role": "user", "parts": [{"type": "text", "content": "hi"}]}
                ]))),
                s("gen_ai.output.messages", &messages(json!([
                    {"role": "assistant", "parts": [{"type": "text", "content": "hello!"}], "finish_reason": "stop"}
                ]))),
            ])],
        ),
    )
    .await;
    // Trace B: legacy attribute names (gen_ai.system, prompt/completion
    // tokens, cache creation) and a date-suffixed Anthropic model; it
    // resends the history.
    post(
        q,
        "/v1/traces",
        traces(
            "chat-api",
            vec![
                span(&b, &sid('b', 1), None, "POST /chat", t0 + 60_000_000_000, false, vec![
                    s("session.id", "chat-1"),
                ]),
                span(&b, &sid('b', 2), Some(&sid('b', 1)), "chat claude", t0 + 60_000_000_001, false, vec![
                    s("gen_ai.system", "anthropic"),
                    s("gen_ai.operation.name", "chat"),
                    s("gen_ai.request.model", "claude-3-5-sonnet-20241022"),
                    i("gen_ai.usage.prompt_tokens", 500),
                    i("gen_ai.usage.completion_tokens", 50),
                    i("gen_ai.usage.cache_creation_input_tokens", 100),
                    s("gen_ai.input.messages", &messages(json!([
                        {"role": "system", "parts": [{"type": "text", "content": "You are terse."}]},
                        {"role": "user", "parts": [{"type": "text", "content": "hi"}]},
                        {"role": "assistant", "parts": [{"type": "text", "content": "hello!"}]},
                        {"role": "user", "parts": [{"type": "text", "content": "how are you?"}]}
                    ]))),
                    s("gen_ai.output.messages", &messages(json!([
                        {"role": "assistant", "parts": [{"type": "text", "content": "fine"}], "finish_reason": "stop"}
                    ]))),
                ]),
            ],
        ),
    )
    .await;
    // Trace C: a model without a price that failed, and a tool call; its
    // messages are log events (the Events API).
    let c_call = sid('c', 2);
    post(
        q,
        "/v1/traces",
        traces(
            "tools",
            vec![
                span(
                    &c,
                    &sid('c', 1),
                    None,
                    "POST /chat",
                    t0 + 120_000_000_000,
                    false,
                    vec![s("session.id", "chat-1")],
                ),
                span(
                    &c,
                    &c_call,
                    Some(&sid('c', 1)),
                    "chat local-llama",
                    t0 + 120_000_000_001,
                    true,
                    vec![
                        s("gen_ai.provider.name", "ollama"),
                        s("gen_ai.operation.name", "chat"),
                        s("gen_ai.request.model", "local-llama"),
                        i("gen_ai.usage.input_tokens", 10),
                        i("gen_ai.usage.output_tokens", 5),
                        s("error.type", "RateLimitError"),
                    ],
                ),
                span(
                    &c,
                    &sid('c', 3),
                    Some(&sid('c', 1)),
                    "execute_tool lookup",
                    t0 + 120_000_000_002,
                    false,
                    vec![
                        s("gen_ai.operation.name", "execute_tool"),
                        s("gen_ai.tool.name", "lookup"),
                        s("gen_ai.tool.call.id", "call_1"),
                    ],
                ),
            ],
        ),
    )
    .await;
    let log = |name: &str, body: Value, t: u64| {
        json!({
            "timeUnixNano": t.to_string(), "traceId": c, "spanId": c_call,
            "eventName": name, "body": body, "severityNumber": 9
        })
    };
    post(
        q,
        "/v1/logs",
        json!({"resourceLogs": [{
            "resource": {"attributes": [s("service.name", "tools")]},
            "scopeLogs": [{"scope": {"name": "app"}, "logRecords": [
                log("gen_ai.user.message", json!({"kvlistValue": {"values": [
                    {"key": "content", "value": {"stringValue": "bye"}}]}}), t0 + 120_000_000_001),
                log("gen_ai.choice", json!({"kvlistValue": {"values": [
                    {"key": "index", "value": {"intValue": "0"}},
                    {"key": "finish_reason", "value": {"stringValue": "stop"}},
                    {"key": "message", "value": {"kvlistValue": {"values": [
                        {"key": "role", "value": {"stringValue": "assistant"}},
                        {"key": "content", "value": {"stringValue": "see you"}}]}}}]}}), t0 + 120_000_000_002),
            ]}]
        }]}),
    )
    .await;
    // Trace D: a GenAI call without a session (a session of its own) whose
    // application sent the cost; and a plain trace, which is no session.
    post(
        q,
        "/v1/traces",
        traces(
            "batch",
            vec![
                span(
                    &d,
                    &sid('d', 1),
                    None,
                    "chat gpt-4o",
                    t0 + 180_000_000_000,
                    false,
                    vec![
                        s("gen_ai.provider.name", "openai"),
                        s("gen_ai.operation.name", "chat"),
                        s("gen_ai.request.model", "gpt-4o"),
                        i("gen_ai.usage.input_tokens", 10),
                        i("gen_ai.usage.output_tokens", 10),
                        f("gen_ai.usage.cost", 0.5),
                    ],
                ),
                span(
                    &tid('e'),
                    &sid('e', 1),
                    None,
                    "GET /health",
                    t0 + 180_000_000_000,
                    false,
                    vec![],
                ),
            ],
        ),
    )
    .await;
    // An old session (not active) and twelve small ones for paging.
    let mut spans = vec![span(
        &tid('f'),
        &sid('f', 1),
        None,
        "old",
        t0 - 7_200_000_000_000,
        false,
        vec![s("session.id", "old-1")],
    )];
    for n in 0..12u8 {
        let trace = format!("{:032x}", 0x1000 + u32::from(n));
        spans.push(span(
            &trace,
            &sid('9', n),
            None,
            "page",
            t0 + 200_000_000_000 + u64::from(n) * 1_000_000_000,
            false,
            vec![s("session.id", &format!("s-{n:02}"))],
        ));
    }
    post(q, "/v1/traces", traces("pager", spans)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_tokens_cost_and_conversations() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    let t0 = now_nanos() - 600_000_000_000;
    load(&q, t0).await;

    let cost_a = (600.0 * 0.15 + 400.0 * 0.075 + 200.0 * 0.60) / 1e6;
    let cost_b = (400.0 * 3.0 + 100.0 * 3.75 + 50.0 * 15.0) / 1e6;

    // Stats: the agent's roll-up is not counted again; the unknown model is
    // flagged, not $0; legacy names count like current ones.
    let st = get_ok(&q, "/api/v1/genai/stats?since=3h").await;
    let t = &st["totals"];
    assert_eq!(t["requests"], 5, "{st}");
    assert_eq!(t["errors"], 1);
    assert_eq!(t["input_tokens"], 1520);
    assert_eq!(t["output_tokens"], 265);
    assert_eq!(t["cache_read_tokens"], 400);
    assert_eq!(t["cache_write_tokens"], 100);
    assert_eq!(t["requests_without_cost"], 1);
    assert!(close(&t["cost_usd"], cost_a + cost_b + 0.5), "{t}");
    assert!(close(&t["time_to_first_chunk_p50_ms"], 120.0), "{t}");
    assert_eq!(
        st["over_time"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["requests"].as_u64().unwrap())
            .sum::<u64>(),
        5
    );
    // Per model and bucket: the same calls again, split by model.
    let per_model = st["by_model_over_time"].as_array().unwrap();
    for k in ["requests", "input_tokens", "output_tokens"] {
        assert_eq!(
            per_model
                .iter()
                .map(|b| b[k].as_i64().unwrap())
                .sum::<i64>(),
            t[k].as_i64().unwrap(),
            "{k}: {st}"
        );
    }
    let sonnet: i64 = per_model
        .iter()
        .filter(|b| b["model"] == "claude-3-5-sonnet-20241022")
        .map(|b| b["input_tokens"].as_i64().unwrap())
        .sum();
    let sonnet_total = st["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["model"] == "claude-3-5-sonnet-20241022")
        .map(|m| m["input_tokens"].as_i64().unwrap());
    assert_eq!(Some(sonnet), sonnet_total, "{st}");
    let models: Vec<&str> = st["by_model"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["model"].as_str())
        .collect();
    assert!(models.contains(&"claude-3-5-sonnet-20241022"), "{models:?}");

    // Whole-minute steps read the per-minute rollup, other steps the spans:
    // the same answer either way.
    let rollup = get_ok(&q, "/api/v1/genai/stats?since=3h&step=1m").await;
    let spans = get_ok(&q, "/api/v1/genai/stats?since=3h&step=59s").await;
    for k in [
        "requests",
        "errors",
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "requests_without_cost",
        "latency_p50_ms",
        "latency_p99_ms",
        "time_to_first_chunk_p50_ms",
    ] {
        assert_eq!(
            rollup["totals"][k], spans["totals"][k],
            "{k}: {rollup} vs {spans}"
        );
    }
    assert!(close(&rollup["totals"]["cost_usd"], cost_a + cost_b + 0.5));
    assert_eq!(rollup["totals"]["latency_p50_ms"], 250.0);
    assert_eq!(rollup["by_model"].as_array().unwrap().len(), 5, "{rollup}");
    let one = get_ok(
        &q,
        "/api/v1/genai/stats?since=3h&step=1m&model=gpt-4o-mini&service=chat-api",
    )
    .await;
    assert_eq!(one["totals"]["requests"], 1, "{one}");

    // A session's calls include the one that only shares its trace.
    let st = get_ok(&q, "/api/v1/genai/stats?since=3h&session_id=chat-1").await;
    assert_eq!(st["totals"]["requests"], 4, "{st}");
    assert!(close(&st["totals"]["cost_usd"], cost_a + cost_b));
    let st = get_ok(&q, "/api/v1/genai/stats?since=3h&provider=anthropic").await;
    assert_eq!(st["totals"]["input_tokens"], 500);

    // Per model: error classes and finish reasons.
    let m = get_ok(&q, "/api/v1/genai/models?since=3h").await;
    let by = |name: &str| {
        m["models"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["model"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} in {m}"))
    };
    assert_eq!(
        by("local-llama")["error_types"],
        json!([{"value": "RateLimitError", "count": 1}])
    );
    assert_eq!(
        by("gpt-4o-mini-2024-07-18")["finish_reasons"],
        json!([{"value": "stop", "count": 1}])
    );
    assert!(close(&by("gpt-4o-mini-2024-07-18")["cost_usd"], cost_a));

    // Calls: filters and paging.
    let calls = get_ok(&q, "/api/v1/genai/spans?since=3h&cost_source=missing").await;
    assert_eq!(calls["items"].as_array().unwrap().len(), 1);
    assert_eq!(calls["items"][0]["request_model"], "local-llama");
    assert_eq!(calls["items"][0]["error_type"], "RateLimitError");
    let agent = get_ok(&q, "/api/v1/genai/spans?since=3h&operation=invoke_agent").await;
    assert_eq!(agent["items"][0]["agent_name"], "helper");
    let tool = get_ok(&q, "/api/v1/genai/spans?since=3h&operation=execute_tool").await;
    assert_eq!(tool["items"][0]["tool_name"], "lookup");
    assert_eq!(tool["items"][0]["tool_call_id"], "call_1");
    let legacy = get_ok(&q, "/api/v1/genai/spans?since=3h&provider=anthropic").await;
    let l = &legacy["items"][0];
    assert_eq!(
        (l["input_tokens"].as_i64(), l["cache_write_tokens"].as_i64()),
        (Some(500), Some(100))
    );
    assert_eq!(l["cost_source"], "priced");
    assert!(close(&l["cost_usd"], cost_b));
    let sent = get_ok(&q, "/api/v1/genai/spans?since=3h&cost_source=sent").await;
    assert!(close(&sent["items"][0]["cost_usd"], 0.5));
    let mut seen = Vec::new();
    let mut path = "/api/v1/genai/spans?since=3h&limit=2".to_string();
    loop {
        let page = get_ok(&q, &path).await;
        for c in page["items"].as_array().unwrap() {
            seen.push(c["span_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/genai/spans?since=3h&limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 5);
    assert_eq!(get(&q, "/api/v1/genai/spans?cost_source=free").await.0, 400);
    assert_eq!(get(&q, "/api/v1/genai/models?colour=red").await.0, 400);

    // Pricing: the table in force and the model that lacks a price.
    let p = get_ok(&q, "/api/v1/genai/pricing").await;
    assert!(p["prices"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["model"] == "gpt-4o" && e["input_per_mtok"] == 2.5));
    assert_eq!(
        p["unpriced_models"],
        json!([{
            "provider": "ollama", "model": "local-llama", "requests": 1,
            "last_seen": p["unpriced_models"][0]["last_seen"].clone()
        }])
    );

    // The session: three traces, the inherited call counted, the roll-up not.
    let list = get_ok(&q, "/api/v1/sessions?user=u-7").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1, "{list}");
    let chat = &list["items"][0];
    assert_eq!(chat["session_id"], "chat-1");
    assert_eq!(chat["trace_count"], 3);
    assert_eq!(chat["span_count"], 8);
    assert_eq!(chat["error_count"], 1);
    assert_eq!(chat["gen_ai_requests"], 4);
    assert_eq!(chat["input_tokens"], 1510);
    assert_eq!(chat["unpriced_requests"], 1);
    assert!(close(&chat["cost_usd"], cost_a + cost_b), "{chat}");
    assert_eq!(
        chat["models"],
        json!([
            "claude-3-5-sonnet-20241022",
            "gpt-4o-mini-2024-07-18",
            "local-llama"
        ])
    );
    assert_eq!(chat["services"], json!(["chat-api", "tools"]));
    assert_eq!(chat["active"], true);
    // The session-less GenAI trace is a session keyed by its trace id; the
    // plain trace is none.
    let d = get_ok(&q, &format!("/api/v1/sessions/{}", tid('d'))).await;
    assert!(close(&d["session"]["cost_usd"], 0.5));
    assert_eq!(
        get(&q, &format!("/api/v1/sessions/{}", tid('e'))).await.0,
        404
    );
    assert_eq!(
        get_ok(&q, "/api/v1/sessions?service=tools").await["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Detail: traces in order with their root names.
    let detail = get_ok(&q, "/api/v1/sessions/chat-1").await;
    let ts: Vec<&str> = detail["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap())
        .collect();
    assert_eq!(ts, vec![tid('a'), tid('b'), tid('c')]);
    assert_eq!(detail["traces"][0]["root_name"], "POST /chat");
    assert_eq!(detail["traces"][0]["span_count"], 3);
    assert_eq!(detail["traces_truncated"], false);

    // Its spans, oldest first, in pages.
    let mut spans = Vec::new();
    let mut path = "/api/v1/sessions/chat-1/spans?limit=3".to_string();
    loop {
        let page = get_ok(&q, &path).await;
        for s in page["items"].as_array().unwrap() {
            spans.push(s["span_id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/sessions/chat-1/spans?limit=3&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(spans.len(), 8);
    assert_eq!(spans[0], sid('a', 1));
    assert_eq!(spans[7], sid('c', 3));

    // The conversation: resent history shown once; log events used where
    // the span recorded no messages.
    let conv = get_ok(&q, "/api/v1/sessions/chat-1/conversation").await;
    let turns: Vec<(String, String, String)> = conv["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["role"].as_str().unwrap().to_string(),
                t["content"].as_str().unwrap_or_default().to_string(),
                t["source"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("system", "You are terse.", "span_attributes"),
        ("user", "hi", "span_attributes"),
        ("assistant", "hello!", "span_attributes"),
        ("user", "how are you?", "span_attributes"),
        ("assistant", "fine", "span_attributes"),
        ("user", "bye", "log"),
        ("assistant", "see you", "log"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(turns, want, "{conv}");
    assert_eq!(conv["turns"][2]["finish_reason"], "stop");
    assert_eq!(conv["turns"][6]["finish_reason"], "stop");
    assert_eq!(conv["turns"][3]["model"], "claude-3-5-sonnet-20241022");

    // Active only: the old session is left out, but listed otherwise.
    let all = get_ok(&q, "/api/v1/sessions?limit=100").await;
    let active = get_ok(&q, "/api/v1/sessions?limit=100&active=true").await;
    let ids = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["session_id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids(&all).len(), 15, "{all}");
    assert!(ids(&all).contains(&"old-1".to_string()));
    assert_eq!(ids(&active).len(), 14);
    assert!(!ids(&active).contains(&"old-1".to_string()));
    let old = get_ok(&q, "/api/v1/sessions?until=1h").await;
    assert_eq!(ids(&old), vec!["old-1"]);

    // Paging: every session once, in order, whatever the sort.
    for (sort, order) in [
        ("last_seen", "desc"),
        ("spans", "asc"),
        ("cost", "desc"),
        ("first_seen", "asc"),
    ] {
        let mut got = Vec::new();
        let base = format!("/api/v1/sessions?limit=4&sort={sort}&order={order}");
        let mut path = base.clone();
        loop {
            let page = get_ok(&q, &path).await;
            got.extend(ids(&page));
            match page["next_cursor"].as_str() {
                Some(c) => path = format!("{base}&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(got.len(), 15, "{sort} {order}: {got:?}");
        assert_eq!(
            got.iter().collect::<HashSet<_>>().len(),
            15,
            "{sort} {order}: {got:?}"
        );
        let full = get_ok(
            &q,
            &format!("/api/v1/sessions?limit=100&sort={sort}&order={order}"),
        )
        .await;
        assert_eq!(got, ids(&full), "{sort} {order}");
    }
    let last = ids(&all);
    assert_eq!(&last[..2], &["s-11", "s-10"]);

    // Bad input is a clear 400; a cursor of another sort is refused.
    for bad in [
        "sort=price",
        "order=up",
        "active=maybe",
        "colour=red",
        "since=1h&until=2h",
        "limit=0",
    ] {
        let (status, body) = get(&q, &format!("/api/v1/sessions?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(body["error"]["message"].is_string());
    }
    let page = get_ok(&q, "/api/v1/sessions?limit=2").await;
    let cursor = page["next_cursor"].as_str().unwrap();
    assert_eq!(
        get(
            &q,
            &format!("/api/v1/sessions?limit=2&sort=spans&cursor={cursor}")
        )
        .await
        .0,
        400
    );
    assert_eq!(get(&q, "/api/v1/sessions/nope/conversation").await.0, 404);
    assert_eq!(get(&q, "/api/v1/sessions/nope/spans").await.0, 404);

    // Everything survives a restart: the session tables are in the file.
    let db = q.stop_and_open();
    let n: i64 = db
        .query_row(
            "SELECT trace_count FROM session_entities WHERE session_id = 'chat-1'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn price_overrides_from_qyl_toml() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("qyl.toml");
    std::fs::write(
        &config,
        "[genai]\n[[genai.prices]]\nmodel = \"local-llama\"\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n",
    )
    .unwrap();
    let mut q = Qyl::start_with(
        &dir.path().join("qyl.duckdb"),
        &["--config", config.to_str().unwrap()],
        &[],
    );
    let t0 = now_nanos() - 60_000_000_000;
    post(
        &q,
        "/v1/traces",
        traces(
            "svc",
            vec![span(
                &tid('a'),
                &sid('a', 1),
                None,
                "chat",
                t0,
                false,
                vec![
                    s("gen_ai.provider.name", "ollama"),
                    s("gen_ai.request.model", "local-llama"),
                    i("gen_ai.usage.input_tokens", 1_000_000),
                    i("gen_ai.usage.output_tokens", 1_000_000),
                ],
            )],
        ),
    )
    .await;
    let st = get_ok(&q, "/api/v1/genai/stats?since=1h").await;
    assert!(close(&st["totals"]["cost_usd"], 3.0), "{st}");
    assert_eq!(st["totals"]["requests_without_cost"], 0);
    let p = get_ok(&q, "/api/v1/genai/pricing").await;
    let entry = p["prices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["model"] == "local-llama")
        .cloned()
        .unwrap();
    assert_eq!(entry["source"], "config");
    assert_eq!(p["unpriced_models"], json!([]));
    q.stop();
}

/// The summary tables after a crash: qyl is killed (SIGKILL) while
/// exports stream in, so sums it held in memory are lost with it; on the
/// next start they are rebuilt from the stored spans, and the sessions and
/// GenAI figures agree with the spans exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn summaries_agree_with_the_spans_after_a_kill_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qyl.duckdb");
    let mut q = Qyl::start(&db, &[]);
    let t0 = now_nanos() - 60_000_000_000;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let acked = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut senders = Vec::new();
    // Client numbers from 1: an all-zero trace or span id is invalid.
    for c in 1..=4u64 {
        let (url, stop, acked) = (q.http.clone(), stop.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let spans: Vec<Value> = (0..20u64)
                    .map(|k| {
                        let trace = format!("{c:08x}{n:016x}{k:08x}");
                        span(
                            &trace,
                            &format!("{c:04x}{n:08x}{k:04x}"),
                            None,
                            "chat gpt-4o",
                            t0 + n * 1_000_000,
                            false,
                            vec![
                                s("session.id", &format!("crash-{}", (n + k) % 7)),
                                s("gen_ai.provider.name", "openai"),
                                s("gen_ai.operation.name", "chat"),
                                s("gen_ai.request.model", "gpt-4o"),
                                i("gen_ai.usage.input_tokens", 10),
                                i("gen_ai.usage.output_tokens", 2),
                                json!({"key": "gen_ai.response.finish_reasons",
                                       "value": {"arrayValue": {"values": [{"stringValue": "stop"}]}}}),
                            ],
                        )
                    })
                    .collect();
                let sent = client
                    .post(format!("http://{url}/v1/traces"))
                    .header("content-type", "application/json")
                    .body(traces("chat-api", spans).to_string())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => {
                        acked.fetch_add(20, std::sync::atomic::Ordering::Relaxed);
                    }
                    _ => return, // qyl is gone
                }
                n += 1;
            }
        }));
    }
    // Let the load run past a few flushes, then crash in the middle of it.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    q.kill();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for s in senders {
        let _ = s.await;
    }
    let acked = acked.load(std::sync::atomic::Ordering::Relaxed);
    assert!(acked > 0);

    let q = Qyl::start(&db, &[]);
    let sql = |query: &'static str| {
        let url = format!("http://{}/api/v1/sql", q.http);
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/json")
                .body(json!({ "sql": query }).to_string())
                .send()
                .await
                .unwrap();
            let body: Value = serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap();
            body["rows"][0][0]
                .as_i64()
                .unwrap_or_else(|| panic!("{body}"))
        }
    };
    let stored = sql("SELECT count(*) FROM spans WHERE session_id LIKE 'crash-%'").await;
    assert!(
        stored as u64 >= acked,
        "{stored} stored, {acked} acknowledged"
    );
    let sessions = get_ok(&q, "/api/v1/sessions?limit=100").await;
    let summed: i64 = sessions["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["span_count"].as_i64().unwrap())
        .sum();
    assert_eq!(summed, stored, "{sessions}");
    assert_eq!(
        sql("SELECT sum(trace_count)::BIGINT FROM session_entities").await,
        sql("SELECT count(DISTINCT trace_id) FROM spans").await
    );
    assert_eq!(
        sql("SELECT sum(requests)::BIGINT FROM genai_minutes").await,
        stored
    );
    let stats = get_ok(&q, "/api/v1/genai/stats?since=2h").await;
    assert_eq!(
        stats["totals"]["requests"].as_i64(),
        Some(stored),
        "{stats}"
    );
    let models = get_ok(&q, "/api/v1/genai/models?since=2h").await;
    assert_eq!(
        models["models"][0]["finish_reasons"],
        json!([{"value": "stop", "count": stored}]),
        "{models}"
    );
}
