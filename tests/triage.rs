//! Automatic triage against a real qyl: a real Python application's new
//! error group gets a deterministic report (REST, MCP `get_error`, the live
//! stream), a local fake OpenAI-compatible server writes its summary and
//! never sees a secret, and a down or slow model endpoint leaves the
//! deterministic report with `summary_error` while ingest stays prompt.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::{Json, Router};
use common::{run_mcp_client, run_python, Qyl};
use futures_util::StreamExt;
use serde_json::{json, Value};

const API_KEY: &str = "sk-triage-configured-key-0123456789";
const SUMMARY: &str = "The payment gateway rejects charges from charge_card since 3.1.0.";

/// One request the fake model server received.
#[derive(Debug, Clone)]
struct Seen {
    authorization: Option<String>,
    body: String,
}

#[derive(Clone)]
struct Fake {
    seen: Arc<Mutex<Vec<Seen>>>,
    delay: Duration,
}

async fn completions(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Json<Value> {
    fake.seen.lock().unwrap().push(Seen {
        authorization: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        body,
    });
    tokio::time::sleep(fake.delay).await;
    Json(json!({
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": SUMMARY}, "finish_reason": "stop"}],
    }))
}

/// An OpenAI-compatible server answering every chat completion with
/// [`SUMMARY`] after `delay`, recording what it was sent.
async fn fake_openai(delay: Duration) -> (SocketAddr, Arc<Mutex<Vec<Seen>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(Fake {
            seen: seen.clone(),
            delay,
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, seen)
}

fn start(env: &[(&str, &str)]) -> (tempfile::TempDir, Qyl) {
    let dir = tempfile::tempdir().unwrap();
    let q = Qyl::start(&dir.path().join("qyl.duckdb"), env);
    (dir, q)
}

async fn get(q: &Qyl, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("http://{}{path}", q.http))
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Sends the Python application's failures; returns what it printed.
fn send_app(q: &Qyl) -> Value {
    let endpoint = format!("http://{}", q.otlp_http);
    run_python(
        "send_triage.py",
        &[],
        &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
    )
}

/// The group of the application's `PaymentDeclined`.
async fn payment_group(q: &Qyl) -> i64 {
    let (status, list) = get(q, "/api/v1/errors?q=PaymentDeclined").await;
    assert_eq!(status, 200, "{list}");
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list:#}");
    items[0]["id"].as_i64().unwrap()
}

/// The group's report, waiting up to `wait` for it.
async fn wait_report(q: &Qyl, id: i64, wait: Duration) -> Value {
    let deadline = Instant::now() + wait;
    loop {
        let (status, body) = get(q, &format!("/api/v1/errors/{id}/triage")).await;
        if status == 200 {
            return body;
        }
        assert_eq!(status, 404, "{body}");
        assert!(
            Instant::now() < deadline,
            "no triage report on group {id} within {wait:?}: {body}\nqyl:\n{}",
            q.logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Calls MCP `get_error` with the official Python SDK.
fn mcp_get_error(q: &Qyl, id: i64) -> Value {
    let plan = json!({"calls": [{"tool": "get_error", "args": {"id": id}}], "resource": null, "prompts": []});
    let answers = run_mcp_client(q, "", "auto", &plan);
    let r = answers["results"][0].clone();
    assert_eq!(r["is_error"], false, "{r:#}");
    r
}

/// The first `triage` event of the live stream.
async fn triaged_on_live(resp: reqwest::Response) -> Value {
    let mut body = Box::pin(resp.bytes_stream());
    let mut buf = String::new();
    loop {
        while let Some(end) = buf.find("\n\n") {
            let block: String = buf.drain(..end + 2).collect();
            if let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: ")) {
                let v: Value = serde_json::from_str(data).unwrap();
                if block.contains("event: triage") {
                    assert_eq!(v["change"], "triaged", "{block}");
                    return v;
                }
            }
        }
        let chunk = tokio::time::timeout(Duration::from_secs(20), body.next())
            .await
            .expect("a triaged event within 20 s")
            .unwrap()
            .unwrap();
        buf.push_str(std::str::from_utf8(&chunk).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_gets_a_deterministic_report_on_rest_mcp_and_live() {
    let (_dir, q) = start(&[]);
    // CI recorded the deploy the failures come from.
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/releases", q.http))
        .json(&json!({"service": "billing", "version": "3.1.0", "environment": "prod"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let live = reqwest::get(format!("http://{}/api/v1/live?types=error,triage", q.http))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);

    let sent = send_app(&q);
    let id = payment_group(&q).await;
    let report = wait_report(&q, id, Duration::from_secs(20)).await;

    assert_eq!(report["group_id"], id);
    assert_eq!(report["change"], "new");
    let cause = &report["suspected_cause"];
    let line = sent["raise_line"].as_i64().unwrap();
    assert_eq!(cause["function"], "charge_card", "{report:#}");
    assert_eq!(cause["line"], line, "{report:#}");
    assert!(
        cause["frame"]
            .as_str()
            .unwrap()
            .ends_with(&format!("send_triage.py:charge_card:{line}")),
        "{cause:#}"
    );
    assert_eq!(cause["exception_type"], "PaymentDeclined", "{cause:#}");
    assert_eq!(report["first_release"], "3.1.0");
    let deploy = &report["deploy_before_first_event"];
    assert_eq!(deploy["version"], "3.1.0", "{report:#}");
    assert_eq!(deploy["source"], "deploy", "{report:#}");
    assert_eq!(report["affected"]["events"], 3);
    assert_eq!(report["affected"]["users"], 3);
    let steps: Vec<&str> = report["next_steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert!(
        steps[0].contains(&format!("charge_card:{line}")),
        "{steps:#?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| s.contains("Release 3.1.0 of billing was deployed")),
        "{steps:#?}"
    );
    assert!(
        report["text"].as_str().unwrap().contains("**Next steps**"),
        "{report:#}"
    );
    // Every span is from the last hour: no baseline to compare with, so
    // nothing is claimed to have changed.
    assert_eq!(report["baseline_spans"], 0);
    assert_eq!(report["what_changed"], json!([]));
    assert!(report["text"].as_str().unwrap().contains("no baseline"));
    // No endpoint configured: no summary, and no error about one either.
    assert_eq!(report["summary"], Value::Null);
    assert_eq!(report["summary_error"], Value::Null);

    // The stream carried it as a `triage` event.
    let streamed = triaged_on_live(live).await;
    assert_eq!(streamed["group_id"], id);
    assert_eq!(streamed["triage"]["suspected_cause"], *cause);

    // MCP get_error returns it with the group.
    let r = mcp_get_error(&q, id);
    let triage = &r["structured"]["triage"];
    assert_eq!(triage["suspected_cause"]["line"], line, "{r:#}");
    assert_eq!(triage["first_release"], "3.1.0");
    assert!(
        r["text"].as_str().unwrap().contains("suspected cause"),
        "{r:#}"
    );

    // A group that does not exist, and one without a report, are 404s.
    let (status, body) = get(&q, "/api/v1/errors/999999/triage").await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = get(&q, "/api/v1/errors/x/triage").await;
    assert_eq!(status, 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_model_summary_is_written_without_any_secret_reaching_the_model() {
    let (addr, seen) = fake_openai(Duration::ZERO).await;
    let endpoint = format!("http://{addr}/v1");
    let (_dir, q) = start(&[
        ("QYL_TRIAGE_ENDPOINT", endpoint.as_str()),
        ("QYL_TRIAGE_MODEL", "gpt-test"),
        ("QYL_TRIAGE_API_KEY", API_KEY),
    ]);
    let sent = send_app(&q);
    let id = payment_group(&q).await;
    let report = wait_report(&q, id, Duration::from_secs(20)).await;
    assert_eq!(report["summary"], SUMMARY, "{report:#}");
    assert_eq!(report["summary_model"], "gpt-test");
    assert_eq!(report["summary_error"], Value::Null);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    let request = &seen[0];
    assert_eq!(
        request.authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    let body: Value = serde_json::from_str(&request.body).unwrap();
    assert_eq!(body["model"], "gpt-test");
    let prompt = body["messages"][1]["content"].as_str().unwrap();
    assert!(prompt.contains("charge_card"), "{prompt}");
    // What the application leaked into attributes and messages, and qyl's
    // own key, never leave in a request body.
    let mut secrets: Vec<String> = sent["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    secrets.push(API_KEY.to_string());
    for secret in &secrets {
        assert!(
            !request.body.contains(secret.as_str()),
            "{secret} reached the model: {}",
            request.body
        );
    }
    assert!(!request.body.contains("sk-live-"), "{}", request.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_down_endpoint_still_leaves_the_deterministic_report() {
    // Slow: answers after 8 s, past the 500 ms limit.
    let (addr, seen) = fake_openai(Duration::from_secs(8)).await;
    let endpoint = format!("http://{addr}/v1");
    let (_dir, q) = start(&[
        ("QYL_TRIAGE_ENDPOINT", endpoint.as_str()),
        ("QYL_TRIAGE_MODEL", "gpt-test"),
        ("QYL_TRIAGE_TIMEOUT_MS", "500"),
    ]);
    send_app(&q);
    let id = payment_group(&q).await;
    // While the model call hangs, ingest answers promptly.
    for _ in 0..5 {
        let started = Instant::now();
        let r = reqwest::Client::new()
            .post(format!("http://{}/v1/traces", q.otlp_http))
            .header("content-type", "application/json")
            .body(r#"{"resourceSpans":[]}"#)
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "ingest took {:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report = wait_report(&q, id, Duration::from_secs(20)).await;
    assert_eq!(report["suspected_cause"]["function"], "charge_card");
    assert_eq!(report["summary"], Value::Null);
    let error = report["summary_error"].as_str().unwrap_or_default();
    assert!(error.contains("within 500 ms"), "{report:#}");
    assert_eq!(seen.lock().unwrap().len(), 1);

    // Down: nothing listens on the port.
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let endpoint = format!("http://{refused}/v1");
    let (_dir2, q2) = start(&[
        ("QYL_TRIAGE_ENDPOINT", endpoint.as_str()),
        ("QYL_TRIAGE_MODEL", "gpt-test"),
    ]);
    send_app(&q2);
    let id = payment_group(&q2).await;
    let report = wait_report(&q2, id, Duration::from_secs(20)).await;
    assert_eq!(report["suspected_cause"]["function"], "charge_card");
    assert_eq!(report["summary"], Value::Null);
    let error = report["summary_error"].as_str().unwrap_or_default();
    assert!(error.contains("the model endpoint failed"), "{report:#}");
}
