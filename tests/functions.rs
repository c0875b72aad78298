//! Lua functions against the real binary: scripts dropped into a watched
//! directory, telemetry exported over OTLP/HTTP, results read back through
//! REST, SQL, the live stream and qyl's own spans, as a user would.

mod common;

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::Qyl;
use futures_util::{Stream, StreamExt};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

fn repo_scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts")
}

fn start(scripts: &Path, env: &[(&str, &str)]) -> (tempfile::TempDir, Qyl) {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start_with(
        &dir.path().join("qyl.duckdb"),
        &["--scripts", scripts.to_str().unwrap()],
        env,
    );
    (dir, qyl)
}

async fn get(addr: &str, path: &str) -> (u16, Value) {
    let resp = reqwest::get(format!("http://{addr}{path}"))
        .await
        .expect("GET");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

async fn get_ok(addr: &str, path: &str) -> Value {
    let (status, body) = get(addr, path).await;
    assert_eq!(status, 200, "{path}: {body}");
    body
}

async fn post(addr: &str, path: &str, body: &Value) -> Value {
    let resp = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert_eq!(status, 200, "{path}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

async fn sql(addr: &str, query: &str) -> Vec<Vec<Value>> {
    let r = post(addr, "/api/v1/sql", &json!({ "sql": query })).await;
    r["rows"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|row| row.as_array().cloned().unwrap_or_default())
        .collect()
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn attr(key: &str, value: Value) -> Value {
    let v = match value {
        Value::String(s) => json!({ "stringValue": s }),
        Value::Number(n) if n.is_i64() => json!({ "intValue": n.to_string() }),
        Value::Number(n) => json!({ "doubleValue": n }),
        other => json!({ "stringValue": other.to_string() }),
    };
    json!({ "key": key, "value": v })
}

/// One span for [`export`].
struct Span<'a> {
    trace: &'a str,
    id: &'a str,
    parent: Option<&'a str>,
    name: &'a str,
    ms: u64,
    error: Option<&'a str>,
    attrs: Vec<(&'a str, Value)>,
}

impl<'a> Span<'a> {
    fn new(trace: &'a str, id: &'a str, name: &'a str, ms: u64) -> Span<'a> {
        Span {
            trace,
            id,
            parent: None,
            name,
            ms,
            error: None,
            attrs: Vec::new(),
        }
    }
}

async fn export(addr: &str, service: &str, spans: &[Span<'_>]) {
    let start = now_nanos() - 10_000_000_000;
    let spans: Vec<Value> = spans
        .iter()
        .map(|s| {
            let mut span = json!({
                "traceId": s.trace,
                "spanId": s.id,
                "name": s.name,
                "kind": 3,
                "startTimeUnixNano": start.to_string(),
                "endTimeUnixNano": (start + s.ms * 1_000_000).to_string(),
                "attributes": s.attrs.iter().map(|(k, v)| attr(k, v.clone())).collect::<Vec<_>>(),
                "status": match s.error { Some(m) => json!({ "code": 2, "message": m }), None => json!({ "code": 1 }) },
            });
            if let Some(p) = s.parent {
                span["parentSpanId"] = json!(p);
            }
            span
        })
        .collect();
    post(
        addr,
        "/v1/traces",
        &json!({ "resourceSpans": [{
            "resource": { "attributes": [attr("service.name", json!(service))] },
            "scopeSpans": [{ "scope": { "name": "test" }, "spans": spans }]
        }]}),
    )
    .await;
}

async fn wait_for<T>(what: &str, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn function(addr: &str, name: &str) -> Option<Value> {
    let list = get_ok(addr, "/api/v1/functions").await;
    list["functions"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .cloned()
}

async fn invocations(addr: &str, name: &str, query: &str) -> Vec<Value> {
    get_ok(
        addr,
        &format!("/api/v1/functions/{name}/invocations?{query}"),
    )
    .await["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

type Body = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The `function` events of a live stream.
struct FunctionEvents {
    body: Body,
    buf: String,
}

impl FunctionEvents {
    async fn open(addr: &str) -> FunctionEvents {
        let resp = reqwest::get(format!("http://{addr}/api/v1/live?types=function"))
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        FunctionEvents {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    async fn next(&mut self) -> Value {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if block.starts_with(':') {
                    continue;
                }
                let event = block
                    .lines()
                    .find_map(|l| l.strip_prefix("event: "))
                    .unwrap_or_default();
                assert_eq!(event, "function", "{block}");
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap_or_default();
                return serde_json::from_str(data).unwrap();
            }
            let chunk = tokio::time::timeout(WAIT, self.body.next())
                .await
                .expect("a function event in time")
                .expect("the stream is open")
                .unwrap();
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_script_fires_on_exported_spans_end_to_end() {
    let scripts = tempfile::tempdir().unwrap();
    let (_dir, mut qyl) = start(scripts.path(), &[]);
    let addr = qyl.http.clone();
    let mut events = FunctionEvents::open(&addr).await;

    // Drop the DESIGN's example into the running server's folder.
    std::fs::copy(
        repo_scripts().join("alert-high-latency.lua"),
        scripts.path().join("slow_genai.lua"),
    )
    .unwrap();
    let f = wait_for("the script to load", async || {
        function(&addr, "alert-high-latency").await
    })
    .await;
    assert_eq!(f["state"], "active");
    assert_eq!(
        f["trigger"],
        "span where duration_ms > 5000, gen_ai.provider.name exists (+ when)"
    );
    assert_eq!(f["limits"]["rate_limit"], "20/1s");

    let mut llm = Span::new(TRACE, "b7ad6b7169203331", "chat gpt-4o", 6200);
    llm.parent = Some("00f067aa0ba902b7");
    llm.attrs = vec![
        ("gen_ai.provider.name", json!("openai")),
        ("gen_ai.request.model", json!("gpt-4o")),
    ];
    let mut fast = Span::new(TRACE, "b7ad6b7169203332", "chat fast", 300);
    fast.parent = Some("00f067aa0ba902b7");
    fast.attrs = vec![("gen_ai.provider.name", json!("openai"))];
    let mut test_model = Span::new(TRACE, "b7ad6b7169203333", "chat test", 7000);
    test_model.parent = Some("00f067aa0ba902b7");
    test_model.attrs = vec![
        ("gen_ai.provider.name", json!("openai")),
        ("gen_ai.request.model", json!("test")),
    ];
    export(
        &addr,
        "chat-app",
        &[
            Span::new(TRACE, "00f067aa0ba902b7", "POST /chat", 7500),
            llm,
            fast,
            test_model,
        ],
    )
    .await;

    // The live stream carries the result.
    let event = events.next().await;
    assert_eq!(event["kind"], "invocation");
    assert_eq!(event["function"], "alert-high-latency");
    assert_eq!(event["status"], "completed");
    assert_eq!(
        event["result"],
        "Slow GenAI call: chat gpt-4o (6200 ms), root: POST /chat"
    );
    assert_eq!(event["triggered_by_span_id"], "b7ad6b7169203331");

    // The REST history and the table have the same single invocation: the
    // fast call never matched `where`, the test model was refused by `when`.
    let rows = wait_for("the invocation row", async || {
        let rows = invocations(&addr, "alert-high-latency", "").await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["status"], "completed");
    assert_eq!(rows[0]["triggered_by_trace_id"], TRACE);
    assert_eq!(
        rows[0]["result"],
        "Slow GenAI call: chat gpt-4o (6200 ms), root: POST /chat"
    );
    let table = sql(
        &addr,
        "SELECT function_id, status, result, triggered_by_span_id FROM function_invocations",
    )
    .await;
    assert_eq!(
        table,
        vec![vec![
            json!("alert-high-latency"),
            json!("completed"),
            json!("\"Slow GenAI call: chat gpt-4o (6200 ms), root: POST /chat\""),
            json!("b7ad6b7169203331"),
        ]]
    );
    let defs = sql(&addr, "SELECT name, file, enabled FROM qyl_functions").await;
    assert_eq!(defs.len(), 1);
    assert_eq!(defs[0][2], json!(true));

    // qyl's own span of the invocation, linked to the span that fired it.
    let own = wait_for("qyl's execute_tool span", async || {
        let page = get_ok(&addr, "/api/v1/spans?service=qyl").await;
        page["items"].as_array()?.first().cloned()
    })
    .await;
    assert_eq!(own["name"], "execute_tool alert-high-latency");
    assert_eq!(own["attributes"]["gen_ai.operation.name"], "execute_tool");
    assert_eq!(own["attributes"]["gen_ai.tool.name"], "alert-high-latency");
    assert_eq!(own["links"][0]["span_id"], "b7ad6b7169203331");

    // Counters in the API and on /metrics.
    let f = function(&addr, "alert-high-latency").await.unwrap();
    assert_eq!(
        (f["invocation_count"].as_u64(), f["error_count"].as_u64()),
        (Some(1), Some(0))
    );
    assert!(f["last_invoked_at"].is_string());
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"qyl_function_invocations_total{function="alert-high-latency",status="completed"} 1"#
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"qyl_function_duration_seconds_count{function="alert-high-latency"} 1"#)
    );

    // Bad requests are clear errors.
    let (status, body) = get(
        &addr,
        "/api/v1/functions/alert-high-latency/invocations?status=odd",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = get(
        &addr,
        "/api/v1/functions/alert-high-latency/invocations?color=red",
    )
    .await;
    assert_eq!(status, 400);
    let (status, _) = get(&addr, "/api/v1/functions/no-such/invocations").await;
    assert_eq!(status, 404);
    qyl.stop();
}

const V1: &str = r#"
return qyl.fn {
  name = "tagger",
  trigger = { on = "span", where = { service = "svc" } },
  handler = function(span) return "v1 " .. span.name end,
}
"#;

async fn results(addr: &str, name: &str, n: usize) -> Vec<String> {
    wait_for("invocations", async || {
        let rows = invocations(addr, name, "").await;
        (rows.len() >= n).then(|| {
            rows.iter()
                .map(|r| r["result"].as_str().unwrap_or("").to_string())
                .collect()
        })
    })
    .await
}

async fn names(addr: &str) -> Vec<String> {
    let list = get_ok(addr, "/api/v1/functions").await;
    list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap().to_string())
        .collect()
}

/// A Kubernetes ConfigMap (or Secret) mounted as the scripts folder: each
/// script is a symlink through `..data`, and an update writes a new
/// timestamped folder and renames a new `..data` link over the old one, so
/// no event ever names a script.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configmap_volume_update_reloads_its_scripts() {
    use std::os::unix::fs::symlink;
    let scripts = tempfile::tempdir().unwrap();
    let dir = scripts.path();
    std::fs::create_dir(dir.join("..2026_12_02_10_00_00.1")).unwrap();
    std::fs::write(dir.join("..2026_12_02_10_00_00.1/tagger.lua"), V1).unwrap();
    symlink("..2026_12_02_10_00_00.1", dir.join("..data")).unwrap();
    symlink("..data/tagger.lua", dir.join("tagger.lua")).unwrap();
    let (_dir, qyl) = start(dir, &[]);
    let addr = qyl.http.clone();
    assert_eq!(names(&addr).await, ["tagger"]);

    // What the kubelet's atomic writer does on an update.
    std::fs::create_dir(dir.join("..2026_12_02_10_05_00.2")).unwrap();
    std::fs::write(
        dir.join("..2026_12_02_10_05_00.2/tagger.lua"),
        V1.replace("\"v1 \"", "\"cm2 \""),
    )
    .unwrap();
    symlink("..2026_12_02_10_05_00.2", dir.join("..data_tmp")).unwrap();
    std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
    std::fs::remove_dir_all(dir.join("..2026_12_02_10_00_00.1")).unwrap();

    wait_for("the ConfigMap update", async || {
        export(
            &addr,
            "svc",
            &[Span::new(TRACE, &format!("{:016x}", now_nanos()), "cm", 1)],
        )
        .await;
        let r = invocations(&addr, "tagger", "limit=1").await;
        r.first()?["result"]
            .as_str()?
            .starts_with("cm2 ")
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edit_break_fix_delete_rename_and_vim_saves_against_a_running_server() {
    let scripts = tempfile::tempdir().unwrap();
    let path = scripts.path().join("tagger.lua");
    std::fs::write(&path, V1).unwrap();
    let (_dir, mut qyl) = start(scripts.path(), &[]);
    let addr = qyl.http.clone();
    assert_eq!(names(&addr).await, ["tagger"]);
    export(
        &addr,
        "svc",
        &[Span::new(TRACE, "0000000000000001", "a", 1)],
    )
    .await;
    assert_eq!(results(&addr, "tagger", 1).await, ["v1 a"]);

    // Edit: the new version replaces the old.
    std::fs::write(&path, V1.replace("\"v1 \"", "\"v2 \"")).unwrap();
    wait_for("v2", async || {
        export(
            &addr,
            "svc",
            &[Span::new(TRACE, &format!("{:016x}", now_nanos()), "b", 1)],
        )
        .await;
        let r = invocations(&addr, "tagger", "limit=1").await;
        r.first()
            .and_then(|r| r["result"].as_str().map(|s| s.starts_with("v2")))
            .filter(|v| *v)
    })
    .await;

    // Break it: the old version keeps running; the error is in the API.
    std::fs::write(&path, "return qyl.fn {\n  name = 'tagger',\n  trigger = { on = 'span', where = { bogus_field = 1 } },\n  handler = function() end,\n}\n").unwrap();
    // (A syntax error is reported at its own line.)
    let f = wait_for("the load error", async || {
        function(&addr, "tagger")
            .await
            .filter(|f| f["state"] == "error")
    })
    .await;
    let err = f["load_error"].as_str().unwrap();
    // The line of the definition the bad field is in.
    assert!(
        err.contains("tagger.lua:1:") && err.contains("bogus_field"),
        "{err}"
    );
    let list = get_ok(&addr, "/api/v1/functions").await;
    assert_eq!(list["load_errors"][0]["line"], 1);
    let diags = get_ok(&addr, "/api/v1/functions/diagnostics").await;
    assert!(
        diags["diagnostics"].as_array().unwrap().iter().any(
            |d| d["severity"] == "error" && d["file"].as_str().unwrap().ends_with("tagger.lua")
        ),
        "{diags}"
    );
    export(
        &addr,
        "svc",
        &[Span::new(TRACE, "00000000000000c1", "c", 1)],
    )
    .await;
    wait_for("the old version to answer", async || {
        let r = invocations(&addr, "tagger", "limit=1").await;
        (r.first()?["result"] == "v2 c").then_some(())
    })
    .await;
    assert!(
        qyl.logs().contains("function script not loaded"),
        "{}",
        qyl.logs()
    );

    // Fix it.
    std::fs::write(&path, V1.replace("\"v1 \"", "\"v3 \"")).unwrap();
    wait_for("the fix", async || {
        function(&addr, "tagger")
            .await
            .filter(|f| f["state"] == "active")
    })
    .await;
    export(
        &addr,
        "svc",
        &[Span::new(TRACE, "00000000000000d1", "d", 1)],
    )
    .await;
    wait_for("v3", async || {
        let r = invocations(&addr, "tagger", "limit=1").await;
        (r.first()?["result"] == "v3 d").then_some(())
    })
    .await;

    // Rename: the same function from a new file.
    let renamed = scripts.path().join("renamed.lua");
    std::fs::rename(&path, &renamed).unwrap();
    wait_for("the rename", async || {
        let f = function(&addr, "tagger").await?;
        f["file"].as_str()?.ends_with("renamed.lua").then_some(())
    })
    .await;

    // vim: probe file 4913, backup `~`, write the new text to a temp file
    // and rename it over the original.
    std::fs::write(scripts.path().join("4913"), "").unwrap();
    std::fs::remove_file(scripts.path().join("4913")).unwrap();
    std::fs::copy(&renamed, scripts.path().join("renamed.lua~")).unwrap();
    std::fs::write(scripts.path().join(".renamed.lua.swp"), "binary junk").unwrap();
    let tmp = scripts.path().join(".renamed.lua.tmp");
    std::fs::write(&tmp, V1.replace("\"v1 \"", "\"vim \"")).unwrap();
    std::fs::rename(&tmp, &renamed).unwrap();
    export(&addr, "svc", &[]).await;
    wait_for("the vim save", async || {
        export(
            &addr,
            "svc",
            &[Span::new(TRACE, &format!("{:016x}", now_nanos()), "e", 1)],
        )
        .await;
        let r = invocations(&addr, "tagger", "limit=1").await;
        r.first()?["result"]
            .as_str()?
            .starts_with("vim ")
            .then_some(())
    })
    .await;
    assert_eq!(names(&addr).await, ["tagger"]);
    assert!(get_ok(&addr, "/api/v1/functions").await["load_errors"]
        .as_array()
        .unwrap()
        .is_empty());

    // Delete: its functions stop; its history stays readable.
    std::fs::remove_file(&renamed).unwrap();
    wait_for("the delete", async || {
        names(&addr).await.is_empty().then_some(())
    })
    .await;
    export(
        &addr,
        "svc",
        &[Span::new(TRACE, "00000000000000f1", "f", 1)],
    )
    .await;
    // Rows of spans sent before the delete may still be arriving; none may
    // be for this one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rows = invocations(&addr, "tagger", "limit=1000").await;
    assert!(!rows.is_empty());
    assert!(
        rows.iter()
            .all(|r| r["triggered_by_span_id"] != "00000000000000f1"),
        "a deleted function ran"
    );
    let enabled = sql(
        &addr,
        "SELECT enabled FROM qyl_functions WHERE name = 'tagger'",
    )
    .await;
    assert_eq!(enabled, vec![vec![json!(false)]]);
    qyl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_functions_do_not_stop_ingest_or_other_functions() {
    let scripts = tempfile::tempdir().unwrap();
    std::fs::write(
        scripts.path().join("spin.lua"),
        r#"return qyl.fn { name = "spin", trigger = { on = "span" },
             handler = function() while true do pcall(function() while true do end end) end end,
             timeout_ms = 200 }"#,
    )
    .unwrap();
    std::fs::write(
        scripts.path().join("bomb.lua"),
        r#"return qyl.fn { name = "bomb", trigger = { on = "span" },
             handler = function() local t = {} for i = 1, 1e9 do t[i] = string.rep("x", 100) .. i end end,
             memory_mb = 4 }"#,
    )
    .unwrap();
    std::fs::write(
        scripts.path().join("good.lua"),
        r#"return qyl.fn { name = "good", trigger = { on = "span" },
             handler = function(span) return span.name end }"#,
    )
    .unwrap();
    let (_dir, mut qyl) = start(scripts.path(), &[("QYL_FUNCTIONS_BREAKER_FAILURES", "3")]);
    let addr = qyl.http.clone();
    for i in 0..10u64 {
        export(
            &addr,
            "svc",
            &[Span::new(
                TRACE,
                &format!("{:016x}", i + 1),
                &format!("s{i}"),
                1,
            )],
        )
        .await;
    }
    // Every export was stored, and the good function ran for each span.
    let good = results(&addr, "good", 10).await;
    assert_eq!(good.len(), 10);
    let stored = sql(
        &addr,
        "SELECT count(*) FROM spans WHERE service_name = 'svc'",
    )
    .await;
    assert_eq!(stored, vec![vec![json!(10)]]);
    // The hostile ones failed until the breaker paused them.
    let spin = wait_for("spin paused", async || {
        function(&addr, "spin")
            .await
            .filter(|f| f["state"] == "paused")
    })
    .await;
    assert_eq!(spin["timed_out"], 3);
    let bomb = wait_for("bomb paused", async || {
        function(&addr, "bomb")
            .await
            .filter(|f| f["state"] == "paused")
    })
    .await;
    assert!(
        bomb["last_error"].as_str().unwrap().contains("memory"),
        "{bomb}"
    );
    // Jobs queued before the breaker tripped were skipped, not run.
    wait_for("three timed-out rows", async || {
        (invocations(&addr, "spin", "status=timed_out").await.len() == 3).then_some(())
    })
    .await;
    let skipped = invocations(&addr, "spin", "status=skipped").await;
    assert_eq!(skipped[0]["error"], "paused by the circuit breaker");
    qyl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_scripts_load_and_work_and_state_survives_a_restart() {
    let (dir, mut qyl) = start(&repo_scripts(), &[]);
    let addr = qyl.http.clone();
    let list = get_ok(&addr, "/api/v1/functions").await;
    let mut loaded: Vec<&str> = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    loaded.sort();
    assert_eq!(
        loaded,
        [
            "alert-high-latency",
            "daily-genai-spend",
            "error-pattern-detector",
            "hourly-genai-report",
            "notify-genai-errors",
            "page-on-slo-burn",
            "token-milestones"
        ]
    );
    assert!(list["load_errors"].as_array().unwrap().is_empty(), "{list}");
    let diags = get_ok(&addr, "/api/v1/functions/diagnostics").await;
    assert!(
        !diags["diagnostics"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["severity"] == "error"),
        "{diags}"
    );

    // error-pattern-detector: twelve failures with one message in an hour.
    let ids: Vec<String> = (1..=12).map(|i| format!("{i:016x}")).collect();
    let spans: Vec<Span> = ids
        .iter()
        .map(|id| {
            let mut s = Span::new("1111111111111111111111111111111a", id, "charge", 5);
            s.error = Some("card declined");
            s
        })
        .collect();
    export(&addr, "payments", &spans).await;
    let found = wait_for("a recurring-error result", async || {
        let rows = invocations(&addr, "error-pattern-detector", "status=completed").await;
        rows.into_iter()
            .find_map(|r| r["result"].as_str().map(str::to_string))
    })
    .await;
    assert_eq!(
        found,
        "Recurring error: 'card declined' (12 times in the last hour)"
    );

    // token-milestones: 1.2M tokens crosses the first million.
    let mut call = Span::new(
        "2222222222222222222222222222222b",
        "00000000000000a1",
        "chat",
        5,
    );
    call.attrs = vec![
        ("gen_ai.request.model", json!("gpt-4o")),
        ("gen_ai.usage.input_tokens", json!(1_150_000)),
        ("gen_ai.usage.output_tokens", json!(50_000)),
    ];
    export(&addr, "chat", &[call]).await;
    let r = wait_for("the first milestone", async || {
        let rows = invocations(&addr, "token-milestones", "").await;
        rows.into_iter().find(|r| !r["result"].is_null())
    })
    .await;
    assert_eq!(
        r["result"],
        json!({ "model": "gpt-4o", "total_tokens": 1_200_000 })
    );
    // runtime.log wrote a log record of qyl's own.
    wait_for("the milestone log", async || {
        let logs = get_ok(&addr, "/api/v1/logs?service=qyl").await;
        logs["items"]
            .as_array()?
            .iter()
            .find(|l| l["body"] == "gpt-4o passed 1200000 tokens")
            .cloned()
    })
    .await;
    qyl.stop();

    // Restart on the same database: the count continues from 1.2M.
    let mut qyl = Qyl::start_with(
        &dir.path().join("qyl.duckdb"),
        &["--scripts", repo_scripts().to_str().unwrap()],
        &[],
    );
    let addr = qyl.http.clone();
    let mut call = Span::new(
        "3333333333333333333333333333333c",
        "00000000000000b1",
        "chat",
        5,
    );
    call.attrs = vec![
        ("gen_ai.request.model", json!("gpt-4o")),
        ("gen_ai.usage.input_tokens", json!(900_000)),
    ];
    export(&addr, "chat", &[call]).await;
    let r = wait_for("the second milestone", async || {
        let rows = invocations(&addr, "token-milestones", "limit=1").await;
        rows.into_iter()
            .find(|r| r["triggered_by_span_id"] == "00000000000000b1")
    })
    .await;
    assert_eq!(
        r["result"],
        json!({ "model": "gpt-4o", "total_tokens": 2_100_000 })
    );
    let state = sql(
        &addr,
        "SELECT key, value FROM function_state WHERE function_id = 'token-milestones'",
    )
    .await;
    assert_eq!(state, vec![vec![json!("tokens:gpt-4o"), json!("2100000")]]);
    qyl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_and_store_sql_from_lua() {
    let scripts = tempfile::tempdir().unwrap();
    std::fs::write(
        scripts.path().join("tick.lua"),
        r#"return qyl.fn { name = "tick", trigger = { on = "schedule", every = "1s" },
             handler = function(_, runtime)
               local rows = runtime.store.sql("SELECT count(*) AS n FROM spans WHERE service_name = ?", { "svc" })
               runtime.stream.publish("ticks", { spans = rows[1].n })
               return rows[1].n
             end }"#,
    )
    .unwrap();
    let (_dir, mut qyl) = start(scripts.path(), &[]);
    let addr = qyl.http.clone();
    let mut events = FunctionEvents::open(&addr).await;
    export(
        &addr,
        "svc",
        &[Span::new(TRACE, "0000000000000001", "a", 1)],
    )
    .await;
    let publish = loop {
        let e = events.next().await;
        if e["kind"] == "publish" && e["value"]["spans"] == 1 {
            break e;
        }
    };
    assert_eq!(publish["topic"], "ticks");
    assert_eq!(publish["function"], "tick");
    qyl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opentelemetry_sdk_export_fires_a_function() {
    let scripts = tempfile::tempdir().unwrap();
    std::fs::write(
        scripts.path().join("errors.lua"),
        r#"return qyl.fn { name = "sdk-errors",
             trigger = { on = "span", where = { status = "ERROR", ["gen_ai.request.model"] = qyl.exists } },
             handler = function(span) return { message = span.status_message, model = span:attr("gen_ai.request.model") } end }"#,
    )
    .unwrap();
    let (_dir, mut qyl) = start(scripts.path(), &[]);
    let addr = qyl.http.clone();
    let endpoint = format!("http://{}", qyl.otlp_http);
    // The real OpenTelemetry Python SDK, over OTLP/HTTP protobuf.
    let sent = tokio::task::spawn_blocking(move || {
        common::run_python(
            "send_otlp.py",
            &["http"],
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str())],
        )
    })
    .await
    .unwrap();
    let rows = wait_for("the SDK span's invocation", async || {
        let rows = invocations(&addr, "sdk-errors", "").await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["triggered_by_span_id"], sent["llm_span_id"]);
    assert_eq!(
        rows[0]["result"],
        json!({ "message": "rate limited", "model": "gpt-4o" })
    );
    qyl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_triggers_fire_on_new_error_groups() {
    let scripts = tempfile::tempdir().unwrap();
    std::fs::write(
        scripts.path().join("new_errors.lua"),
        r#"return qyl.fn { name = "new-errors",
             trigger = {
               on = "error",
               where = { change = "new", service = { one_of = { "checkout", "billing" } } },
               when = function(group) return group.category ~= "ignored" end,
             },
             handler = function(group, runtime)
               local t = group:table()
               return string.format("%s %s in %s (%s x%d) trace %s",
                 group.change, group.error_type or "?", group.service,
                 t.category, group.count, group.trace_id)
             end }"#,
    )
    .unwrap();
    let (_dir, mut qyl) = start(scripts.path(), &[]);
    let addr = qyl.http.clone();
    wait_for("the function to load", async || {
        function(&addr, "new-errors")
            .await
            .filter(|f| f["state"] == "active" && f["on"] == "error")
    })
    .await;
    // A failing span in another service: a new group, but filtered out.
    let mut other = Span::new(TRACE, "00000000000000a1", "GET /health", 3);
    other.error = Some("down");
    export(&addr, "frontend", &[other]).await;
    let mut failing = Span::new(
        "1af7651916cd43dd8448eb211c80319c",
        "00000000000000b1",
        "POST /checkout",
        5,
    );
    failing.error = Some("card declined");
    failing.attrs.push(("error.type", json!("CardDeclined")));
    export(&addr, "checkout", &[failing]).await;
    let rows = wait_for("the error invocation", async || {
        let rows = invocations(&addr, "new-errors", "").await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(rows[0]["status"], "completed", "{rows:?}");
    let result = rows[0]["result"].as_str().unwrap_or_default();
    assert!(
        result.starts_with("new CardDeclined in checkout (")
            && result.ends_with("x1) trace 1af7651916cd43dd8448eb211c80319c"),
        "{result}"
    );
    assert_eq!(
        rows[0]["triggered_by_trace_id"],
        "1af7651916cd43dd8448eb211c80319c"
    );
    // The same error again is not new: no second invocation.
    let mut again = Span::new(
        "2af7651916cd43dd8448eb211c80319c",
        "00000000000000c1",
        "POST /checkout",
        5,
    );
    again.error = Some("card declined");
    again.attrs.push(("error.type", json!("CardDeclined")));
    export(&addr, "checkout", &[again]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(invocations(&addr, "new-errors", "").await.len(), 1);

    // A function that fails is an error of qyl's own, grouped as a GenAI
    // tool error by the function's name.
    std::fs::write(
        scripts.path().join("broken.lua"),
        r#"return qyl.fn { name = "broken", trigger = { on = "schedule", every = "1s" },
             handler = function() error("boom") end }"#,
    )
    .unwrap();
    let group = wait_for("qyl's own error group", async || {
        let list = get_ok(&addr, "/api/v1/errors?service=qyl").await;
        list["items"].as_array().and_then(|g| g.first().cloned())
    })
    .await;
    assert_eq!(group["services"], json!(["qyl"]), "{group}");
    assert!(
        group.to_string().contains("broken"),
        "the group names the function: {group}"
    );

    // Handlers read error groups through runtime.store.errors.
    std::fs::write(
        scripts.path().join("groups.lua"),
        r#"return {
             qyl.fn { name = "groups", trigger = { on = "schedule", every = "1s" },
               handler = function(_, runtime)
                 local out = {}
                 for _, g in runtime.store.errors { service = "checkout", status = "unresolved", sort = "count", limit = 5 } do
                   table.insert(out, g.error_type .. " x" .. g.count)
                 end
                 return out
               end },
             qyl.fn { name = "groups-bad", trigger = { on = "schedule", every = "1s" },
               handler = function(_, runtime) return runtime.store.errors { sort = "loudest" } end },
           }"#,
    )
    .unwrap();
    wait_for("the functions to load", async || {
        function(&addr, "groups-bad").await
    })
    .await;
    let rows = wait_for("runtime.store.errors results", async || {
        let rows = invocations(&addr, "groups", "").await;
        rows.into_iter().find(|r| r["status"] != "running")
    })
    .await;
    assert_eq!(rows["status"], "completed", "{rows}");
    assert_eq!(rows["result"], json!(["CardDeclined x2"]));
    let bad = wait_for("the bad call's invocation", async || {
        invocations(&addr, "groups-bad", "")
            .await
            .into_iter()
            .next()
    })
    .await;
    assert_eq!(bad["status"], "failed");
    assert!(
        bad["error"].as_str().unwrap_or_default().contains(
            "runtime.store.errors: sort \"loudest\" is not one of last_seen, count, users"
        ),
        "{bad}"
    );
    qyl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_invocation_shows_as_running_then_as_its_final_row() {
    let scripts = tempfile::tempdir().unwrap();
    std::fs::write(
        scripts.path().join("slow.lua"),
        r#"return qyl.fn { name = "slow", trigger = { on = "span", where = { name = "batch job" } },
             handler = function(span)
               local t = os.clock()
               while os.clock() - t < 2 do end
               return "finished " .. span.name
             end }"#,
    )
    .unwrap();
    let (_dir, mut qyl) = start(scripts.path(), &[]);
    let addr = qyl.http.clone();
    wait_for("the function to load", async || {
        function(&addr, "slow").await
    })
    .await;
    let mut events = FunctionEvents::open(&addr).await;
    export(
        &addr,
        "worker",
        &[Span::new(TRACE, "00000000000000e1", "batch job", 40)],
    )
    .await;

    // While the handler runs: one row, `running`, in the REST history…
    let running = wait_for("a running row", async || {
        let rows = invocations(&addr, "slow", "").await;
        rows.first()
            .filter(|r| r["status"] == "running")
            .cloned()
            .map(|r| (r, rows.len()))
    })
    .await;
    let (running, n) = running;
    assert_eq!(n, 1, "{running}");
    assert_eq!(running["triggered_by_span_id"], "00000000000000e1");
    assert_eq!(running["finished_unix_nano"], Value::Null);
    assert!(running["result"].is_null());
    assert!(running["duration_ms"].as_f64().unwrap() >= 1000.0);
    let filtered = invocations(&addr, "slow", "status=running").await;
    assert_eq!(filtered.len(), 1);
    // …and on the live stream.
    let event = events.next().await;
    assert_eq!(event["status"], "running", "{event}");
    assert_eq!(event["invocation_id"], running["invocation_id"]);

    // Once it ends: still one row, the same invocation, now completed.
    let event = events.next().await;
    assert_eq!(event["status"], "completed", "{event}");
    assert_eq!(event["invocation_id"], running["invocation_id"]);
    let rows = wait_for("the final row", async || {
        let rows = invocations(&addr, "slow", "").await;
        rows.iter()
            .any(|r| r["status"] == "completed")
            .then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let done = &rows[0];
    assert_eq!(done["invocation_id"], running["invocation_id"]);
    assert_eq!(done["started_unix_nano"], running["started_unix_nano"]);
    assert_eq!(done["result"], "finished batch job");
    assert!(done["finished_unix_nano"].is_string());
    assert!(done["duration_ms"].as_f64().unwrap() >= 2000.0);
    assert_eq!(
        sql(
            &addr,
            "SELECT status, count(*) FROM function_invocations GROUP BY status"
        )
        .await,
        vec![vec![json!("completed"), json!(1)]]
    );
    assert!(invocations(&addr, "slow", "status=running")
        .await
        .is_empty());
    qyl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scripts_folder_made_after_start_is_watched_and_loaded() {
    let parent = tempfile::tempdir().unwrap();
    // Two levels that do not exist yet.
    let scripts = parent.path().join("later").join("scripts");
    let (_dir, mut qyl) = start(&scripts, &[]);
    let addr = qyl.http.clone();
    let list = get_ok(&addr, "/api/v1/functions").await;
    assert_eq!(list["functions"], json!([]));

    const SCRIPT: &str = r#"return qyl.fn { name = "late", trigger = { on = "span", where = { service = "late-svc" } },
             handler = function(span) return "seen " .. span.name end }"#;
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(scripts.join("late.lua"), SCRIPT).unwrap();
    let f = wait_for("the script in the new folder to load", async || {
        function(&addr, "late").await
    })
    .await;
    assert_eq!(f["state"], "active");
    export(
        &addr,
        "late-svc",
        &[Span::new(TRACE, "00000000000000f1", "first", 1)],
    )
    .await;
    let rows = wait_for("an invocation", async || {
        let rows = invocations(&addr, "late", "").await;
        (!rows.is_empty()).then_some(rows)
    })
    .await;
    assert_eq!(rows[0]["result"], "seen first");

    // Removing the folder stops its functions; making it again (a new
    // directory under the old name) and saving a script loads it again.
    std::fs::remove_dir_all(parent.path().join("later")).unwrap();
    wait_for("the functions of the removed folder to stop", async || {
        function(&addr, "late").await.is_none().then_some(())
    })
    .await;
    std::fs::create_dir_all(&scripts).unwrap();
    std::fs::write(
        scripts.join("again.lua"),
        SCRIPT.replace("\"late\"", "\"late-again\""),
    )
    .unwrap();
    let f = wait_for("the script in the re-created folder to load", async || {
        function(&addr, "late-again").await
    })
    .await;
    assert_eq!(f["state"], "active");
    // Edits in the re-created folder are seen too (it is watched, not just
    // scanned once).
    std::fs::write(
        scripts.join("again.lua"),
        SCRIPT.replace("\"late\"", "\"late-edited\""),
    )
    .unwrap();
    wait_for("the edit to load", async || {
        let edited = function(&addr, "late-edited").await.is_some();
        let old = function(&addr, "late-again").await.is_some();
        (edited && !old).then_some(())
    })
    .await;
    let logs = qyl.logs();
    assert!(
        logs.contains("the scripts directory appeared"),
        "the log says what happened:\n{logs}"
    );
    assert!(logs.contains("the scripts directory was removed"), "{logs}");
    qyl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_rows_refused_by_a_full_write_queue_are_counted_on_metrics() {
    use qyl::config::Config;
    use qyl::server::Server;

    let dir = tempfile::tempdir().unwrap();
    let scripts = dir.path().join("scripts");
    std::fs::create_dir(&scripts).unwrap();
    std::fs::write(
        scripts.join("slow.lua"),
        r#"return qyl.fn { name = "slow", trigger = { on = "span", where = { name = "work" } },
             handler = function()
               local t = os.clock()
               while os.clock() - t < 1.5 do end
               return "done"
             end }"#,
    )
    .unwrap();
    let mut config = Config::defaults().on_free_ports(&dir.path().join("qyl.duckdb"));
    config.ingest.queue_rows = 1;
    config.ingest.batch_ms = 1;
    config.functions.dir = scripts;
    let server = Server::start(&config).await.unwrap();
    let addr = server.addrs.http.to_string();
    let writer = server.writer();
    // Loaded, and its definition row committed: the queue is empty.
    wait_for("the function to load", async || {
        let defs = sql(&addr, "SELECT name FROM qyl_functions").await;
        (!defs.is_empty() && writer.queued_rows() == 0).then_some(())
    })
    .await;

    // The span commits and starts the handler (1.5 s); meanwhile the writer
    // is held and its one-row queue filled, so every row the function hands
    // over is refused: its `running` row at 1 s (1 row), then its final
    // invocation row and execute_tool span (2 rows).
    export(
        &addr,
        "app",
        &[Span::new(TRACE, "00000000000000d1", "work", 1)],
    )
    .await;
    // Answered once journaled: its row leaves the queue at the commit.
    wait_for("the span's commit", async || {
        (writer.queued_rows() == 0).then_some(())
    })
    .await;
    let pause = writer.pause();
    let filler = writer.submit(qyl::model::Batch {
        logs: vec![qyl::model::LogRecord {
            service_name: "app".into(),
            body: Some("fills the queue".into()),
            attributes: "{}".into(),
            resource: "{}".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    let filler = filler.expect("the queue takes the one row");
    let metric = |text: &str| -> Option<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix("qyl_function_dropped_rows_total "))
            .and_then(|v| v.parse().ok())
    };
    let dropped = wait_for("the function's rows to be refused", async || {
        let text = reqwest::get(format!("http://{addr}/metrics"))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let f = function(&addr, "slow").await?;
        (f["completed"] == 1)
            .then(|| metric(&text))
            .flatten()
            .filter(|n| *n >= 3)
    })
    .await;
    assert_eq!(dropped, 3);
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains("# TYPE qyl_function_dropped_rows_total counter"),
        "{text}"
    );
    assert_eq!(get_ok(&addr, "/api/v1/functions").await["dropped_rows"], 3);

    // Once the writer moves on, nothing more is lost and nothing of the
    // refused invocation was stored.
    drop(pause);
    filler.await.unwrap().unwrap();
    assert!(invocations(&addr, "slow", "").await.is_empty());
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(metric(&text), Some(3));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_query_is_stopped_at_the_handlers_deadline() {
    let scripts = tempfile::tempdir().unwrap();
    std::fs::write(
        scripts.path().join("heavy.lua"),
        r#"return qyl.fn { name = "heavy", trigger = { on = "span", where = { name = "go" } },
             timeout_ms = 500,
             handler = function(_, runtime)
               return runtime.store.sql("SELECT count(*) AS n FROM range(100000000000) a, range(100000) b", {})
             end }"#,
    )
    .unwrap();
    // The query pool's own limit is far away: only the handler's applies.
    let (_dir, mut qyl) = start(scripts.path(), &[("QYL_QUERY_TIMEOUT_MS", "600000")]);
    let addr = qyl.http.clone();
    wait_for("the function to load", async || {
        function(&addr, "heavy").await
    })
    .await;
    export(
        &addr,
        "svc",
        &[Span::new(TRACE, "00000000000000a7", "go", 1)],
    )
    .await;
    let rows = wait_for("the invocation to end", async || {
        let rows = invocations(&addr, "heavy", "").await;
        rows.into_iter().find(|r| r["status"] != "running")
    })
    .await;
    assert!(
        rows["status"] == "failed" || rows["status"] == "timed_out",
        "{rows}"
    );
    assert!(
        rows["error"]
            .as_str()
            .unwrap_or_default()
            .contains("runtime.store.sql: stopped at the invocation's deadline"),
        "{rows}"
    );
    // The read connection came back: the API still answers from the store.
    let (status, _) = get(&addr, "/api/v1/traces?limit=1").await;
    assert_eq!(status, 200);
    qyl.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_logs_the_diagnostics_of_the_saved_file() {
    let scripts = tempfile::tempdir().unwrap();
    let (_dir, mut qyl) = start(scripts.path(), &[]);
    let addr = qyl.http.clone();
    std::fs::write(
        scripts.path().join("noisy.lua"),
        r#"return qyl.fn { name = "noisy",
             trigger = { on = "span", where = { service = "svc" },
                         when = function(span) return runtime ~= nil end },
             timeout_ms = 120000,
             handler = function(span) return span.name end }"#,
    )
    .unwrap();
    wait_for("the function to load", async || {
        function(&addr, "noisy").await
    })
    .await;
    let logs = wait_for("the diagnostics in the log", async || {
        let logs = qyl.logs();
        logs.contains("QYL2002").then_some(logs)
    })
    .await;
    for expected in [
        "noisy.lua:3:",
        "warning[QYL2001]: trigger `when` of 'noisy' uses `runtime`",
        "warning[QYL2002]: handler timeout of 'noisy' is 120000 ms",
        "info[QYL2004]: function 'noisy' registered: triggers on span where service = \"svc\"",
    ] {
        assert!(logs.contains(expected), "{expected:?} not in:\n{logs}");
    }
    qyl.stop();
}
