//! Retention and the disk check through the real binary: old data sent over
//! OTLP is deleted by the background thread (whole traces with their logs),
//! and /health turns degraded when free disk space is under the floor.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{count, Qyl};
use serde_json::{json, Value};

async fn health(q: &Qyl) -> Value {
    let resp = reqwest::get(format!("http://{}/health", q.http))
        .await
        .expect("GET /health");
    assert_eq!(resp.status().as_u16(), 200);
    let body = resp.bytes().await.expect("reading /health");
    serde_json::from_slice(&body).expect("/health JSON")
}

async fn post_json(q: &Qyl, path: &str, body: Value) {
    let resp = reqwest::Client::new()
        .post(format!("http://{}{path}", q.otlp_http))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("posting OTLP JSON");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{path}: {text}");
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn span(trace: &str, span: &str, start: u64) -> Value {
    json!({
        "traceId": trace, "spanId": span, "name": "work", "kind": 1,
        "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": (start + 1_000_000).to_string(),
    })
}

fn log(trace: Option<&str>, time: u64, body: &str) -> Value {
    let mut l = json!({
        "timeUnixNano": time.to_string(),
        "severityNumber": 9,
        "body": { "stringValue": body },
    });
    if let Some(t) = trace {
        l["traceId"] = json!(t);
    }
    l
}

fn resource() -> Value {
    json!({ "attributes": [{ "key": "service.name", "value": { "stringValue": "shop" } }] })
}

#[tokio::test(flavor = "multi_thread")]
async fn old_traces_go_whole_with_their_logs() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = Qyl::start(
        &dir.path().join("qyl.duckdb"),
        &[
            ("QYL_STORAGE_RETENTION_HOURS", "1"),
            ("QYL_STORAGE_RETENTION_INTERVAL_SECS", "1"),
        ],
    );
    let now = now_ns();
    let old = now - 48 * 3_600_000_000_000;
    let (a, b, c) = (
        "a".repeat(32), // old: deleted with its log
        "b".repeat(32), // old root, recent child: kept whole
        "c".repeat(32), // recent
    );
    post_json(
        &q,
        "/v1/traces",
        json!({ "resourceSpans": [{ "resource": resource(), "scopeSpans": [{ "spans": [
            span(&a, "a000000000000001", old),
            span(&a, "a000000000000002", old + 1),
            span(&b, "b000000000000001", old),
            span(&b, "b000000000000002", now),
            span(&c, "c000000000000001", now),
        ]}]}]}),
    )
    .await;
    post_json(
        &q,
        "/v1/logs",
        json!({ "resourceLogs": [{ "resource": resource(), "scopeLogs": [{ "logRecords": [
            log(Some(&a), old, "a's log"),
            log(Some(&b), old, "b's old log"),
            log(None, old, "old plain log"),
            log(None, now, "recent plain log"),
        ]}]}]}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let h = health(&q).await;
        let r = &h["retention"];
        assert_eq!(r["enabled"], true);
        assert_eq!(r["last_error"], Value::Null, "{h}");
        if r["deleted"]["spans"].as_u64() == Some(2) && r["deleted"]["logs"].as_u64() == Some(2) {
            assert_eq!(r["deleted"]["traces"], 1);
            assert!(r["used_bytes"].as_u64().unwrap() > 0, "{h}");
            break;
        }
        assert!(Instant::now() < deadline, "retention deleted nothing: {h}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let conn = q.stop_and_open();
    assert_eq!(
        common::string(
            &conn,
            "SELECT string_agg(span_id, ',' ORDER BY span_id) FROM spans"
        )
        .unwrap(),
        "b000000000000001,b000000000000002,c000000000000001"
    );
    assert_eq!(
        common::string(
            &conn,
            "SELECT string_agg(body, ',' ORDER BY body) FROM logs"
        )
        .unwrap(),
        "b's old log,recent plain log"
    );
    assert_eq!(
        count(
            &conn,
            &format!("SELECT count(*) FROM logs WHERE trace_id = '{a}'")
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn health_is_degraded_when_free_disk_is_under_the_floor() {
    let dir = tempfile::tempdir().unwrap();
    // The largest floor config allows: more than any test machine has free.
    let q = Qyl::start(
        &dir.path().join("qyl.duckdb"),
        &[("QYL_STORAGE_MIN_FREE_DISK_MB", "100000000")],
    );
    let h = health(&q).await;
    let disk = &h["disk"];
    let free = disk["free_bytes"].as_u64().expect("free_bytes");
    assert!(free > 0);
    assert_eq!(disk["min_free_bytes"].as_u64(), Some(100_000_000 << 20));
    assert_eq!(disk["low"], true, "{h}");
    assert_eq!(h["status"], "degraded", "{h}");
    let problems = h["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p.as_str().unwrap().starts_with("low disk space")),
        "{h}"
    );
    // Retention runs by default (168 hours), sizes off.
    assert_eq!(h["retention"]["enabled"], true);
    drop(q);

    // With the check off the same disk is no problem.
    let q = Qyl::start(
        &dir.path().join("qyl2.duckdb"),
        &[("QYL_STORAGE_MIN_FREE_DISK_MB", "0")],
    );
    let h = health(&q).await;
    assert_eq!(h["disk"]["low"], false, "{h}");
    assert_eq!(h["status"], "ok", "{h}");
    assert_eq!(h["problems"], json!([]));
}

#[test]
fn an_out_of_range_floor_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_qyl"))
        .args(["serve", "--http-port", "0", "--data"])
        .arg(dir.path().join("qyl.duckdb"))
        .env("QYL_STORAGE_MIN_FREE_DISK_MB", "100000001")
        .output()
        .expect("running qyl");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("storage.min_free_disk_mb: must be at most 100000000"),
        "{stderr}"
    );
}
