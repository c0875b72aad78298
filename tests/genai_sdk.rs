//! A real instrumented LLM application: the `openai` Python client with
//! OpenTelemetry's `opentelemetry-instrumentation-openai-v2`, talking to a
//! small OpenAI-compatible server (tests/py/openai_app.py) and exporting
//! over OTLP/HTTP to qyl. What qyl's REST API then reports — requests,
//! tokens, cost, sessions and the conversation — must match what the
//! server answered.

mod common;

use common::{run_python, Qyl};
use serde_json::Value;

async fn get_ok(q: &Qyl, path: &str) -> Value {
    let resp = reqwest::get(format!("http://{}{path}", q.http))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "{path}");
    serde_json::from_slice(&resp.bytes().await.unwrap()).unwrap()
}

/// gpt-4o-mini's list price (USD per million tokens: input, output).
const GPT_4O_MINI: (f64, f64) = (0.15, 0.60);

async fn check_session(q: &Qyl, sent: &Value, content_source: &str) {
    let session = sent["session"].as_str().unwrap();
    let usage = sent["usage"].as_array().unwrap();
    let prompt: i64 = usage.iter().map(|u| u["prompt"].as_i64().unwrap()).sum();
    let completion: i64 = usage
        .iter()
        .map(|u| u["completion"].as_i64().unwrap())
        .sum();
    let priced: f64 = usage
        .iter()
        .filter(|u| u["model"] == "gpt-4o-mini")
        .map(|u| {
            (u["prompt"].as_f64().unwrap() * GPT_4O_MINI.0
                + u["completion"].as_f64().unwrap() * GPT_4O_MINI.1)
                / 1e6
        })
        .sum();

    let stats = get_ok(
        q,
        &format!("/api/v1/genai/stats?since=1h&session_id={session}"),
    )
    .await;
    let t = &stats["totals"];
    assert_eq!(t["requests"], 3, "{stats}");
    assert_eq!(t["input_tokens"], prompt);
    assert_eq!(t["output_tokens"], completion);
    assert_eq!(t["requests_without_cost"], 1, "mystery-model has no price");
    let cost = t["cost_usd"].as_f64().unwrap();
    assert!((cost - priced).abs() < 1e-12, "{cost} vs {priced}");

    let detail = get_ok(q, &format!("/api/v1/sessions/{session}")).await;
    let s = &detail["session"];
    assert_eq!(s["trace_count"], 3, "{detail}");
    // The request span names the session; the instrumentation's span
    // joins it through the trace.
    assert_eq!(s["span_count"], 6);
    assert_eq!(s["gen_ai_requests"], 3);
    assert_eq!(s["input_tokens"], prompt);
    assert_eq!(s["unpriced_requests"], 1);
    assert!((s["cost_usd"].as_f64().unwrap() - priced).abs() < 1e-12);
    assert_eq!(
        s["models"],
        serde_json::json!(["gpt-4o-mini-2024-07-18", "mystery-model"])
    );
    assert_eq!(s["users"], serde_json::json!(["py-user"]));
    let traces: Vec<&str> = detail["traces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap())
        .collect();
    let sent_traces: Vec<&str> = sent["trace_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(traces, sent_traces);

    let conv = get_ok(q, &format!("/api/v1/sessions/{session}/conversation")).await;
    let turns: Vec<(String, String)> = conv["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            assert_eq!(t["source"], content_source, "{t}");
            (
                t["role"].as_str().unwrap().to_string(),
                t["content"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let want: Vec<(String, String)> = [
        ("system", "You are an echo."),
        ("user", "hi"),
        ("assistant", "echo: hi"),
        ("user", "more"),
        ("assistant", "echo: more"),
        ("user", "?"),
        ("assistant", "echo: ?"),
    ]
    .iter()
    .map(|(r, c)| (r.to_string(), c.to_string()))
    .collect();
    assert_eq!(turns, want, "{conv}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openai_instrumentation_sessions_tokens_and_cost() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    let endpoint = format!("http://{}", q.otlp_http);
    let run = |session: &str, capture: &str| {
        run_python(
            "openai_app.py",
            &[session],
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
                (
                    "OTEL_SEMCONV_STABILITY_OPT_IN",
                    "gen_ai_latest_experimental",
                ),
                (
                    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
                    capture,
                ),
            ],
        )
    };
    // Messages as span attributes, and as log events.
    let on_spans = run("py-spans", "SPAN_ONLY");
    let as_events = run("py-events", "EVENT_ONLY");
    check_session(&q, &on_spans, "span_attributes").await;
    check_session(&q, &as_events, "log").await;

    let pricing = get_ok(&q, "/api/v1/genai/pricing").await;
    assert_eq!(pricing["unpriced_models"][0]["model"], "mystery-model");
    assert_eq!(pricing["unpriced_models"][0]["requests"], 2);
    let list = get_ok(&q, "/api/v1/sessions?user=py-user&sort=cost").await;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    q.stop();
}
