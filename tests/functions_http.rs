//! Functions that notify: the real binary with a scripts folder and a
//! qyl.toml allowing one loopback HTTP server the test runs, standing in
//! for Slack, PagerDuty and a webhook. What arrives there, what a slow or
//! failing endpoint does to the invocation (and not to ingest), a host
//! that is not allowed, and a secret that must not reach the database.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::Qyl;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(30);
/// How long the server's `/slow` path waits before answering: longer than
/// the test function's per-call timeout.
const SLOW: Duration = Duration::from_secs(6);

/// One request the server got.
#[derive(Debug, Clone)]
struct Received {
    method: String,
    /// Path and query.
    target: String,
    headers: HashMap<String, String>,
    body: String,
    at: Instant,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// A loopback HTTP/1.1 server: `/slow` answers after [`SLOW`], `/fail`
/// with a 500, `/pd` with PagerDuty's 202, anything else 200 "ok". One
/// thread per connection, so a slow request holds no other.
struct Endpoint {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
}

impl Endpoint {
    fn start() -> Endpoint {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let all = got.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let all = all.clone();
                std::thread::spawn(move || serve(conn, &all));
            }
        });
        Endpoint { port, got }
    }

    fn received(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.target.split('?').next() == Some(path))
            .cloned()
            .collect()
    }

    async fn wait_for(&self, path: &str, n: usize) -> Vec<Received> {
        let deadline = Instant::now() + WAIT;
        loop {
            let got = self.received(path);
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "{path}: {} of {n} requests",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn serve(mut conn: TcpStream, all: &Mutex<Vec<Received>>) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let (head, body_start, len) = loop {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            break (head, end + 4, len);
        }
    };
    while buf.len() < body_start + len {
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let mut lines = head.lines();
    let mut first = lines.next().unwrap_or_default().split_whitespace();
    let method = first.next().unwrap_or_default().to_string();
    let target = first.next().unwrap_or_default().to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let end = buf.len().min(body_start + len);
    let body = String::from_utf8_lossy(&buf[body_start..end]).to_string();
    let path = target.split('?').next().unwrap_or_default().to_string();
    all.lock().unwrap().push(Received {
        method,
        target,
        headers,
        body,
        at: Instant::now(),
    });
    let (status, body) = match path.as_str() {
        "/slow" => {
            std::thread::sleep(SLOW);
            ("200 OK", "late".to_string())
        }
        "/fail" => ("500 Internal Server Error", "boom".to_string()),
        "/pd" => (
            "202 Accepted",
            json!({ "status": "success", "message": "Event processed", "dedup_key": "x" })
                .to_string(),
        ),
        _ => ("200 OK", "ok".to_string()),
    };
    let _ = write!(
        conn,
        "HTTP/1.1 {status}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
}

fn repo_script(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("scripts")
            .join(name),
    )
    .unwrap()
}

async fn get(addr: &str, path: &str) -> Value {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

async fn post(addr: &str, path: &str, body: &Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn sql(addr: &str, query: &str) -> Vec<Vec<Value>> {
    post(addr, "/api/v1/sql", &json!({ "sql": query })).await["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|r| r.as_array().cloned().unwrap_or_default())
        .collect()
}

async fn invocations(addr: &str, name: &str) -> Vec<Value> {
    get(addr, &format!("/api/v1/functions/{name}/invocations")).await["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The finished invocations of `name`, once there are `n`.
async fn finished(addr: &str, name: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let rows: Vec<Value> = invocations(addr, name)
            .await
            .into_iter()
            .filter(|r| r["status"] != "running")
            .collect();
        if rows.len() >= n {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "{name}: {} of {n} rows",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn attr(key: &str, value: &str) -> Value {
    json!({ "key": key, "value": { "stringValue": value } })
}

/// Exports `spans` (name, error message, attributes) of `service` in one
/// OTLP/HTTP JSON request; returns how long the answer took.
async fn export(
    addr: &str,
    service: &str,
    spans: &[(String, Option<&str>, Vec<Value>)],
) -> Duration {
    let start = now_nanos() - 1_000_000_000;
    let spans: Vec<Value> = spans
        .iter()
        .enumerate()
        .map(|(i, (name, error, attrs))| {
            json!({
                "traceId": format!("{:032x}", now_nanos() as u128 * 1000 + i as u128),
                "spanId": format!("{:016x}", now_nanos().wrapping_add(i as u64)),
                "name": name,
                "kind": 3,
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + 5_000_000).to_string(),
                "attributes": attrs,
                "status": match error { Some(m) => json!({ "code": 2, "message": m }), None => json!({ "code": 1 }) },
            })
        })
        .collect();
    let started = Instant::now();
    post(
        addr,
        "/v1/traces",
        &json!({ "resourceSpans": [{
            "resource": { "attributes": [attr("service.name", service)] },
            "scopeSpans": [{ "scope": { "name": "test" }, "spans": spans }]
        }]}),
    )
    .await;
    started.elapsed()
}

fn span(name: &str) -> (String, Option<&'static str>, Vec<Value>) {
    (name.to_string(), None, Vec::new())
}

/// qyl with `scripts` and a qyl.toml allowing only the endpoint, plus the
/// secrets the scripts read.
fn start(
    endpoint: &Endpoint,
    scripts: &[(&str, String)],
    env: &[(&str, &str)],
) -> (tempfile::TempDir, Qyl) {
    let dir = tempfile::tempdir().unwrap();
    let scripts_dir = dir.path().join("scripts");
    std::fs::create_dir(&scripts_dir).unwrap();
    for (name, src) in scripts {
        std::fs::write(scripts_dir.join(name), src).unwrap();
    }
    let port = endpoint.port;
    let config = dir.path().join("qyl.toml");
    std::fs::write(
        &config,
        format!(
            r#"[functions]
http_allow = ["127.0.0.1:{port}"]
http_timeout_ms = 5000

[functions.secrets]
slack_webhook = "env:QYL_TEST_SLACK_WEBHOOK"
alert_webhook = "http://127.0.0.1:{port}/webhook?token=W3BH00K-T0KEN-9f8e7d"
pd_key = "env:QYL_TEST_PD_KEY"
"#
        ),
    )
    .unwrap();
    let qyl = Qyl::start_with(
        &dir.path().join("qyl.duckdb"),
        &[
            "--scripts",
            scripts_dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        env,
    );
    (dir, qyl)
}

async fn wait_loaded(addr: &str, names: &[&str]) {
    let deadline = Instant::now() + WAIT;
    loop {
        let list = get(addr, "/api/v1/functions").await;
        let loaded = list["functions"].as_array().unwrap();
        if names.iter().all(|n| {
            loaded
                .iter()
                .any(|f| f["name"] == *n && f["state"] == "active")
        }) {
            return;
        }
        assert!(Instant::now() < deadline, "not loaded: {list}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A GenAI call that failed with a rate limit: a new `genai` error group.
fn rate_limited() -> (String, Option<&'static str>, Vec<Value>) {
    (
        "chat gpt-4o".into(),
        Some("Rate limit reached for gpt-4o"),
        vec![
            attr("gen_ai.operation.name", "chat"),
            attr("gen_ai.provider.name", "openai"),
            attr("gen_ai.request.model", "gpt-4o"),
            attr("error.type", "openai.RateLimitError"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_arrive_in_slack_webhook_and_pagerduty_shapes() {
    let ep = Endpoint::start();
    let port = ep.port;
    let pd = format!(
        r#"return qyl.fn {{ name = "pd-test", trigger = {{ on = "span", where = {{ name = "pd-test" }} }},
  handler = function(span, runtime)
    local alert = qyl.alert.from_slo({{ slo = "chat-availability", service_name = "chat", objective = 99.9,
      from = "ok", to = "page", tier = "page 14.4x (1h & 5m)", burn_rate_long = 20, burn_rate_short = 31,
      budget_remaining = 0.5, at_unix_nano = 1700000000000000000 }})
    local r = runtime.http.post("http://127.0.0.1:{port}/pd", qyl.pagerduty.event(alert, runtime.secret("pd_key")))
    return {{ status = r.status, accepted = r:json().status }}
  end }}"#
    );
    let slack_url = format!("http://127.0.0.1:{port}/slack/T000/B000/XXXX");
    let (_dir, mut qyl) = start(
        &ep,
        &[
            (
                "notify-genai-errors.lua",
                repo_script("notify-genai-errors.lua"),
            ),
            ("pd.lua", pd),
        ],
        &[
            ("QYL_TEST_SLACK_WEBHOOK", slack_url.as_str()),
            ("QYL_TEST_PD_KEY", "R0UT1NGKEY0000000000000000000000"),
        ],
    );
    let addr = qyl.http.clone();
    wait_loaded(&addr, &["notify-genai-errors", "pd-test"]).await;

    // The shipped script, on a new GenAI error group: Slack and the webhook.
    export(&addr, "chat", &[rate_limited()]).await;
    let slack = ep.wait_for("/slack/T000/B000/XXXX", 1).await;
    let msg = slack[0].json();
    assert_eq!(slack[0].method, "POST");
    assert_eq!(slack[0].headers["content-type"], "application/json");
    assert!(
        msg["text"]
            .as_str()
            .unwrap()
            .starts_with("new GenAI error in chat: openai.RateLimitError"),
        "{msg}"
    );
    let blocks = msg["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    assert!(
        blocks.iter().any(|b| b["type"] == "section"
            && b["fields"]
                .as_array()
                .is_some_and(|f| f.iter().any(|f| f["text"] == "*Service*\nchat"))),
        "{msg}"
    );
    let hook = ep.wait_for("/webhook", 1).await;
    assert_eq!(hook[0].target, "/webhook?token=W3BH00K-T0KEN-9f8e7d");
    let payload = hook[0].json();
    assert_eq!(payload["source"], "qyl");
    assert_eq!(payload["service"], "chat");
    assert_eq!(payload["severity"], "error");
    assert_eq!(payload["resolved"], false);
    assert!(payload["dedup_key"]
        .as_str()
        .unwrap()
        .starts_with("qyl-error-"));
    assert_eq!(payload["fields"]["GenAI class"], "rate_limited");
    assert_eq!(payload["details"]["category"], "genai");
    let rows = finished(&addr, "notify-genai-errors", 1).await;
    assert_eq!(rows[0]["status"], "completed", "{rows:?}");
    assert_eq!(rows[0]["result"]["sent"], json!(["slack", "webhook"]));

    // PagerDuty Events v2.
    export(&addr, "chat", &[span("pd-test")]).await;
    let pd = ep.wait_for("/pd", 1).await;
    let event = pd[0].json();
    assert_eq!(event["routing_key"], "R0UT1NGKEY0000000000000000000000");
    assert_eq!(event["event_action"], "trigger");
    assert_eq!(event["dedup_key"], "qyl-slo-chat-availability-chat");
    assert_eq!(event["payload"]["severity"], "critical");
    assert_eq!(event["payload"]["source"], "chat");
    assert_eq!(
        event["payload"]["summary"],
        "SLO chat-availability of chat: page level burn"
    );
    assert_eq!(event["payload"]["timestamp"], "2023-11-14T22:13:20Z");
    let rows = finished(&addr, "pd-test", 1).await;
    assert_eq!(
        rows[0]["result"],
        json!({ "status": 202, "accepted": "success" })
    );

    // The calls are on the invocation's own span (span id = invocation id).
    let id = rows[0]["invocation_id"].as_str().unwrap();
    let own = sql(
        &addr,
        &format!("SELECT attributes, events FROM spans WHERE span_id = '{id}'"),
    )
    .await;
    assert_eq!(own.len(), 1, "{own:?}");
    let attrs: Value = serde_json::from_str(own[0][0].as_str().unwrap()).unwrap();
    assert_eq!(attrs["qyl.function.http.calls"], 1);
    assert_eq!(attrs["qyl.function.http.failed"], 0);
    assert_eq!(attrs["qyl.function.http.statuses"], json!([202]));
    assert_eq!(
        attrs["qyl.function.http.origins"],
        json!([format!("http://127.0.0.1:{port}")])
    );
    let list = get(&addr, "/api/v1/functions").await;
    let f = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "pd-test")
        .unwrap()
        .clone();
    assert_eq!(
        (f["http_calls"].as_u64(), f["http_failed"].as_u64()),
        (Some(1), Some(0))
    );
    qyl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_and_failing_endpoints_fail_the_invocation_and_ingest_keeps_flowing() {
    let ep = Endpoint::start();
    let port = ep.port;
    let script = format!(
        r#"return {{
  qyl.fn {{ name = "slow-a", trigger = {{ on = "span", where = {{ name = "slow-test" }} }},
    handler = function(span, runtime)
      runtime.http.post("http://127.0.0.1:{port}/slow", {{ n = 1 }}, {{ timeout = "2s" }})
    end }},
  qyl.fn {{ name = "slow-b", trigger = {{ on = "span", where = {{ name = "slow-test" }} }},
    handler = function(span, runtime)
      runtime.http.get("http://127.0.0.1:{port}/slow", {{ timeout = "2s" }})
    end }},
  qyl.fn {{ name = "failing-hook", trigger = {{ on = "span", where = {{ name = "fail-test" }} }},
    handler = function(span, runtime)
      runtime.http.post("http://127.0.0.1:{port}/fail", {{ n = 1 }}, {{ retries = 1 }})
    end }},
}}"#
    );
    let (_dir, mut qyl) = start(&ep, &[("hooks.lua", script)], &[]);
    let addr = qyl.http.clone();
    wait_loaded(&addr, &["slow-a", "slow-b", "failing-hook"]).await;

    // Both function workers (two by default) end up waiting on the slow
    // endpoint, one function each.
    export(&addr, "shop", &[span("slow-test")]).await;
    let slow = ep.wait_for("/slow", 2).await;
    // Meanwhile ingest answers and stores as usual.
    let mut took = Vec::new();
    for batch in 0..5 {
        let spans: Vec<_> = (0..50).map(|i| span(&format!("op-{batch}-{i}"))).collect();
        took.push(export(&addr, "ingest-check", &spans).await);
    }
    let stored = sql(
        &addr,
        "SELECT count(*) FROM spans WHERE service_name = 'ingest-check'",
    )
    .await;
    assert_eq!(stored[0][0], 250, "{stored:?}");
    let done = Instant::now();
    // All of that happened while the handlers were still waiting (each
    // waits 2 s for an answer that comes after 6).
    let last_began = slow[0].at.max(slow[1].at);
    assert!(
        done < last_began + Duration::from_secs(2),
        "ingest took {:?} after the slow calls began ({took:?}); it must not wait for them",
        done - last_began
    );
    for (name, method) in [("slow-a", "post"), ("slow-b", "get")] {
        let rows = finished(&addr, name, 1).await;
        assert_eq!(rows[0]["status"], "failed", "{rows:?}");
        assert_eq!(
            rows[0]["error"],
            format!("runtime.http.{method}: http://127.0.0.1:{port}: no answer within 2000 ms")
        );
        assert!(
            rows[0]["duration_ms"].as_f64().unwrap() >= 1900.0,
            "{rows:?}"
        );
    }

    // A 500, retried once as asked, then the invocation fails.
    export(&addr, "shop", &[span("fail-test")]).await;
    let rows = finished(&addr, "failing-hook", 1).await;
    assert_eq!(rows[0]["status"], "failed");
    assert_eq!(
        rows[0]["error"],
        format!("runtime.http.post: http://127.0.0.1:{port} answered 500: boom")
    );
    assert_eq!(ep.received("/fail").len(), 2, "one try and one retry");
    let list = get(&addr, "/api/v1/functions").await;
    let f = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "failing-hook")
        .unwrap()
        .clone();
    assert_eq!(f["failed"], 1);
    assert_eq!(
        (f["http_calls"].as_u64(), f["http_failed"].as_u64()),
        (Some(2), Some(2))
    );
    qyl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_not_allowed_is_refused_and_secrets_never_reach_the_database() {
    let ep = Endpoint::start();
    let script = r#"return {
  qyl.fn { name = "refused", trigger = { on = "span", where = { name = "refused-test" } },
    handler = function(span, runtime)
      runtime.http.post("https://hooks.not-allowed.example.com/services/T/B/abc", { text = "x" })
    end },
  qyl.fn { name = "leaky", trigger = { on = "span", where = { name = "leak-test" } },
    handler = function(span, runtime)
      local url = runtime.secret("alert_webhook")
      runtime.log.warn("posting to " .. url)
      runtime.state.set("last_url", url)
      runtime.http.post(url, { text = "hello" })
      error("posted, but failing anyway: " .. url)
    end },
}"#;
    let (_dir, mut qyl) = start(&ep, &[("hooks.lua", script.to_string())], &[]);
    let addr = qyl.http.clone();
    wait_loaded(&addr, &["refused", "leaky"]).await;

    export(&addr, "shop", &[span("refused-test")]).await;
    let rows = finished(&addr, "refused", 1).await;
    assert_eq!(rows[0]["status"], "failed");
    assert_eq!(
        rows[0]["error"],
        format!(
            "runtime.http.post: host hooks.not-allowed.example.com is not in [functions] http_allow of qyl.toml (allowed: 127.0.0.1:{})",
            ep.port
        )
    );
    let id = rows[0]["invocation_id"].as_str().unwrap();
    let own = sql(
        &addr,
        &format!("SELECT attributes, events FROM spans WHERE span_id = '{id}'"),
    )
    .await;
    let attrs: Value = serde_json::from_str(own[0][0].as_str().unwrap()).unwrap();
    assert_eq!(attrs["qyl.function.http.calls"], 1);
    assert_eq!(attrs["qyl.function.http.failed"], 1);
    assert!(own[0][1]
        .as_str()
        .unwrap()
        .contains("is not in [functions] http_allow"));
    assert!(
        !own[0][1].as_str().unwrap().contains("services/T/B"),
        "{own:?}"
    );

    export(&addr, "shop", &[span("leak-test")]).await;
    // The call itself carried the secret URL, as it should.
    let hook = ep.wait_for("/webhook", 1).await;
    assert_eq!(hook[0].target, "/webhook?token=W3BH00K-T0KEN-9f8e7d");
    let rows = finished(&addr, "leaky", 1).await;
    assert_eq!(rows[0]["status"], "failed");
    let e = rows[0]["error"].as_str().unwrap();
    assert!(
        e.ends_with("hooks.lua:12: posted, but failing anyway: [secret alert_webhook]"),
        "{e}"
    );
    // Its log record arrived, scrubbed.
    let deadline = Instant::now() + WAIT;
    while sql(
        &addr,
        "SELECT count(*) FROM logs WHERE body = 'posting to [secret alert_webhook]'",
    )
    .await[0][0]
        != 1
    {
        assert!(Instant::now() < deadline, "the scrubbed log never arrived");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    qyl.stop();

    // Nothing in the database holds the token: invocations, logs, spans
    // (qyl's own, with their events), state, function definitions.
    let conn = duckdb::Connection::open(&qyl.db).unwrap();
    for (table, columns) in [
        (
            "function_invocations",
            "coalesce(result, '') || coalesce(error, '')",
        ),
        ("logs", "coalesce(body, '') || attributes"),
        (
            "spans",
            "attributes || events || coalesce(status_message, '')",
        ),
        ("function_state", "value"),
    ] {
        let n = common::count(
            &conn,
            &format!("SELECT count(*) FROM {table} WHERE ({columns}) LIKE '%W3BH00K%'"),
        );
        assert_eq!(n, 0, "{table} holds the secret");
    }
    assert_eq!(
        common::string(
            &conn,
            "SELECT value FROM function_state WHERE key = 'last_url'"
        ),
        Some("\"[secret alert_webhook]\"".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_notification_scripts_stay_quiet_without_secrets() {
    // The repository's scripts with the default configuration: nothing is
    // allowed and no secret is set.
    let dir = tempfile::tempdir().unwrap();
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let mut qyl = Qyl::start_with(
        &dir.path().join("qyl.duckdb"),
        &["--scripts", scripts.to_str().unwrap()],
        &[],
    );
    let addr = qyl.http.clone();
    wait_loaded(
        &addr,
        &[
            "notify-genai-errors",
            "page-on-slo-burn",
            "daily-genai-spend",
        ],
    )
    .await;
    export(&addr, "chat", &[rate_limited()]).await;
    let rows = finished(&addr, "notify-genai-errors", 1).await;
    assert_eq!(rows[0]["status"], "completed", "{rows:?}");
    assert_eq!(
        rows[0]["result"],
        "not sent: set slack_webhook or alert_webhook in [functions.secrets]"
    );
    let logs = qyl.logs();
    assert!(!logs.contains("QYL2005"), "{logs}");
    qyl.stop();
}

/// From a burn crossing the page tier to the alert arriving: spans fail,
/// the SLO watcher (every second here; 15 s by default) announces `page`,
/// an `on = "slo"` function posts the webhook payload. Prints the latency.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_slo_page_reaches_the_webhook_by_itself() {
    let endpoint = Endpoint::start();
    let port = endpoint.port;
    let dir = tempfile::tempdir().unwrap();
    let scripts_dir = dir.path().join("scripts");
    std::fs::create_dir(&scripts_dir).unwrap();
    std::fs::write(
        scripts_dir.join("page.lua"),
        format!(
            r#"return qyl.fn {{
  name = "page",
  trigger = {{ on = "slo", where = {{ level = "page", service = "shop" }} }},
  handler = function(slo, runtime)
    local r = runtime.http.post("http://127.0.0.1:{port}/alert", qyl.webhook.payload(qyl.alert.from_slo(slo)))
    return r.status
  end,
}}
"#
        ),
    )
    .unwrap();
    let config = dir.path().join("qyl.toml");
    std::fs::write(
        &config,
        format!(
            r#"[functions]
http_allow = ["127.0.0.1:{port}"]

[errors]
slo_check_every = "1s"

[[errors.slo]]
name = "checkout"
service = "shop"
objective = 99.5
"#
        ),
    )
    .unwrap();
    let q = Qyl::start_with(
        &dir.path().join("qyl.duckdb"),
        &[
            "--scripts",
            scripts_dir.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
        &[],
    );
    wait_loaded(&q.http, &["page"]).await;
    // Healthy traffic first: no alert.
    let ok: Vec<_> = (0..50).map(|i| span(&format!("GET /cart {i}"))).collect();
    export(&q.http, "shop", &ok).await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(endpoint.received("/alert").is_empty());
    // 30 failures in 80 requests: 37.5 % bad at 99.5 % burns at 75×.
    let failing: Vec<_> = (0..30)
        .map(|i| (format!("POST /checkout {i}"), Some("boom"), Vec::new()))
        .collect();
    export(&q.http, "shop", &failing).await;
    let acked = Instant::now();
    let got = endpoint.wait_for("/alert", 1).await;
    println!(
        "alert latency: {:?} from the failing export's acknowledgement to the webhook call (SLO checked every 1 s)",
        got[0].at.duration_since(acked)
    );
    let body: Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["severity"], "critical", "{body}");
    assert_eq!(body["service"], "shop");
    assert_eq!(body["dedup_key"], "qyl-slo-checkout-shop");
    assert_eq!(body["resolved"], false);
    assert!(body["title"].as_str().unwrap().contains("page"), "{body}");
    // One alert per change, not one per check.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(endpoint.received("/alert").len(), 1);
    let done = finished(&q.http, "page", 1).await;
    assert_eq!(done[0]["status"], "completed", "{}", done[0]);
}
