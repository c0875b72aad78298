//! The Parquet archive through the real binary: old windows leave the
//! database file, every answer stays the same, other engines (DuckDB and
//! ClickHouse) read the files and agree with qyl, and SIGKILL in the middle
//! of archiving neither loses nor repeats a row.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::api::{get_ok, i, now, post, s};
use common::{run_python, Qyl};
use serde_json::{json, Value};

const MINUTE: u64 = 60_000_000_000;

/// Windows of 5 minutes that move 10 minutes after they end, checked
/// every second, in `root` under the node name `node-a`.
fn archive_env(root: &Path) -> Vec<(String, String)> {
    vec![
        (
            "QYL_ARCHIVE_PATH".into(),
            root.to_string_lossy().into_owned(),
        ),
        ("QYL_ARCHIVE_WINDOW_MINUTES".into(), "5".into()),
        ("QYL_ARCHIVE_AFTER_MINUTES".into(), "10".into()),
        ("QYL_ARCHIVE_NODE".into(), "node-a".into()),
        ("QYL_STORAGE_RETENTION_INTERVAL_SECS".into(), "1".into()),
    ]
}

fn start(db: &Path, env: &[(String, String)]) -> Qyl {
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Qyl::start(db, &env)
}

fn span(trace: &str, id: u64, parent: Option<u64>, start: u64, n: u64) -> Value {
    let mut attributes = vec![i("n", n as i64)];
    if n % 3 == 0 {
        attributes.extend([
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.provider.name", "openai"),
            s("gen_ai.request.model", "gpt-4o"),
            i("gen_ai.usage.input_tokens", 1000 + n as i64),
            i("gen_ai.usage.output_tokens", 100),
        ]);
    }
    let mut v = json!({
        "traceId": trace, "spanId": format!("{id:016x}"), "name": format!("op-{}", n % 4),
        "kind": 2, "startTimeUnixNano": start.to_string(),
        "endTimeUnixNano": (start + 2_000_000).to_string(),
        "status": {"code": if n % 5 == 0 { 2 } else { 1 }},
        "attributes": attributes,
    });
    if let Some(p) = parent {
        v["parentSpanId"] = json!(format!("{p:016x}"));
    }
    v
}

fn traces_export(service: &str, spans: Vec<Value>) -> Value {
    json!({"resourceSpans": [{
        "resource": {"attributes": [s("service.name", service), s("service.version", "2.0.1")]},
        "scopeSpans": [{"scope": {"name": "archive-test"}, "spans": spans}],
    }]})
}

fn logs_export(service: &str, trace: &str, times: &[u64]) -> Value {
    let records: Vec<Value> = times
        .iter()
        .map(|t| {
            json!({"timeUnixNano": t.to_string(), "severityNumber": 13,
                   "body": {"stringValue": format!("warned at {t}")}, "traceId": trace})
        })
        .collect();
    json!({"resourceLogs": [{
        "resource": {"attributes": [s("service.name", service)]},
        "scopeLogs": [{"logRecords": records}],
    }]})
}

async fn export(q: &Qyl, path: &str, body: Value) {
    let r = post(q, path, body).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
}

async fn sql(q: &Qyl, query: &str) -> Value {
    let r = post(q, "/api/v1/sql", json!({ "sql": query })).await;
    assert_eq!(r.status, 200, "{query}: {}", r.body);
    r.body["rows"].clone()
}

fn trace_id(n: u64) -> String {
    format!("{:032x}", 0xa4c0_0000_u64 + n)
}

/// Traces 1–12 of 5 spans (services svc-0..2), one every 5 minutes from
/// 80 minutes ago, each with two logs; trace 12 also has a span a minute
/// old (service svc-live), so it lies across the database and the archive.
async fn fill(q: &Qyl, t0: u64) {
    let mut id = 0x7000;
    for t in 1..=12u64 {
        let start = t0 - 80 * MINUTE + t * 5 * MINUTE - 2 * MINUTE;
        let trace = trace_id(t);
        let root = id + 1;
        let spans: Vec<Value> = (0..5)
            .map(|k| {
                id += 1;
                span(
                    &trace,
                    id,
                    (k > 0).then_some(root),
                    start + k * 1_000_000,
                    t * 5 + k,
                )
            })
            .collect();
        export(
            q,
            "/v1/traces",
            traces_export(&format!("svc-{}", t % 3), spans),
        )
        .await;
        export(
            q,
            "/v1/logs",
            logs_export("svc-0", &trace, &[start + 10, start + 20]),
        )
        .await;
    }
    id += 1;
    let live = vec![span(&trace_id(12), id, Some(id - 5), t0 - MINUTE, 1)];
    export(q, "/v1/traces", traces_export("svc-live", live)).await;
}

/// What qyl answers about the data, through REST and SQL (without the
/// tiers each answer says it read, which archiving changes).
async fn answers(q: &Qyl) -> Vec<Value> {
    let mut out = Vec::new();
    for path in [
        format!("/api/v1/traces/{}", trace_id(3)),
        format!("/api/v1/traces/{}", trace_id(12)),
        "/api/v1/spans?status=ERROR&since=3h&limit=100".into(),
        "/api/v1/traces?since=3h&limit=100".into(),
        "/api/v1/logs?since=3h&limit=100".into(),
    ] {
        let mut answer = get_ok(q, &path).await;
        let read = answer.as_object_mut().unwrap().remove("read");
        assert!(read.is_some(), "{path} says what it read");
        out.push(answer);
    }
    out.push(
        sql(
            q,
            "SELECT count(*), count(DISTINCT span_id), sum(gen_ai_input_tokens),
                    round(sum(gen_ai_cost_usd), 9), min(start_time_unix_nano)
             FROM spans",
        )
        .await,
    );
    out.push(sql(q, "SELECT count(*), min(body), max(body) FROM logs").await);
    out
}

async fn health_archive(q: &Qyl) -> Value {
    get_ok(q, "/health").await["retention"]["archive"].clone()
}

async fn wait_archived(q: &Qyl, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let a = health_archive(q).await;
        if done(&a) {
            return a;
        }
        assert!(Instant::now() < deadline, "{what}: not within 60 s: {a}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_windows_move_to_parquet_and_every_reader_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.duckdb");
    let root = dir.path().join("archive");
    let t0 = now();
    // First without the archive: the answers to keep.
    let mut q = Qyl::start(&db, &[]);
    fill(&q, t0).await;
    let before = answers(&q).await;
    q.stop();

    let mut q = start(&db, &archive_env(&root));
    let archive = wait_archived(&q, "windows archived", |a| a["parts"].as_u64() > Some(0)).await;
    // Every window ended 10 minutes ago moved; the one-minute-old span
    // stays in the database file.
    let hot = sql(&q, "SELECT count(*) FROM span_rows").await;
    assert_eq!(hot, json!([[1]]), "{archive}");
    assert_eq!(answers(&q).await, before);
    let files = parquet_files(&root);
    assert!(
        files.iter().all(|f| f.contains("/node=node-a/part-")),
        "{files:?}"
    );
    assert!(files.iter().any(|f| f.starts_with("signal=spans/date=")));
    assert!(files.iter().any(|f| f.starts_with("signal=logs/date=")));
    // Answers say which tiers their time range spans.
    let read = |v: Value| v["read"].clone();
    let all = read(get_ok(&q, "/api/v1/traces?since=3h").await);
    assert_eq!(all["tiers"], json!(["database", "archive"]), "{all}");
    let span_files = files
        .iter()
        .filter(|f| f.starts_with("signal=spans/"))
        .count();
    assert_eq!(all["archive_files"].as_u64(), Some(span_files as u64));
    assert!(
        all["since"].as_str().is_some_and(|s| s.ends_with('Z')),
        "{all}"
    );
    let recent = read(get_ok(&q, "/api/v1/spans?since=5m").await);
    assert_eq!(recent["tiers"], json!(["database"]), "{recent}");
    assert_eq!(recent["archive_files"], 0);
    let old_trace = read(get_ok(&q, &format!("/api/v1/traces/{}", trace_id(3))).await);
    assert_eq!(
        old_trace["tiers"],
        json!(["database", "archive"]),
        "{old_trace}"
    );
    assert_eq!(old_trace["archive_files"], 1, "one window holds trace 3");
    let logs_read = read(get_ok(&q, "/api/v1/logs?since=3h").await);
    assert_eq!(
        logs_read["tiers"],
        json!(["database", "archive"]),
        "{logs_read}"
    );

    // Other engines read the files as they lie, and agree with qyl.
    let trace = trace_id(3);
    let qyl_trace: Vec<String> = sql(
        &q,
        &format!("SELECT span_id FROM spans WHERE trace_id = '{trace}' ORDER BY span_id"),
    )
    .await
    .as_array()
    .unwrap()
    .iter()
    .map(|r| r[0].as_str().unwrap().to_string())
    .collect();
    assert_eq!(qyl_trace.len(), 5);
    let qyl_errors = sql(
        &q,
        "SELECT count(*) FROM spans WHERE service_name = 'svc-1' AND status_code = 'ERROR'",
    )
    .await[0][0]
        .clone();
    assert!(qyl_errors.as_u64() > Some(0));
    let qyl_cost = sql(
        &q,
        "SELECT round(sum(gen_ai_cost_usd), 9) FROM spans WHERE gen_ai_request_model = 'gpt-4o'",
    )
    .await[0][0]
        .clone();
    assert!(qyl_cost.as_f64() > Some(0.0), "{qyl_cost}");
    let others = run_python(
        "archive_readers.py",
        &[&root.to_string_lossy(), &trace, "svc-1", "gpt-4o"],
        &[],
    );
    for engine in ["duckdb", "clickhouse"] {
        let a = &others[engine];
        assert_eq!(a["trace"], json!(qyl_trace), "{engine}: {a}");
        assert_eq!(a["errors"], qyl_errors, "{engine}: {a}");
        assert_eq!(a["cost"].as_f64(), qyl_cost.as_f64(), "{engine}: {a}");
    }
    assert_eq!(others["duckdb"]["nodes"], json!(["node-a"]));

    // Retention drops archived windows whole: 45 minutes keeps the
    // windows that ended since.
    q.stop();
    let mut env = archive_env(&root);
    env.push(("QYL_STORAGE_RETENTION_HOURS".into(), "1".into()));
    let q = start(&db, &env);
    let a = wait_archived(&q, "an hour of archive kept", |a| {
        a["dropped_parts"].as_u64() > Some(0)
    })
    .await;
    let oldest = sql(&q, "SELECT min(start_time_unix_nano) FROM spans").await[0][0]
        .as_u64()
        .unwrap();
    assert!(oldest >= t0 - 65 * MINUTE, "{a}");
    assert_eq!(
        parquet_files(&root).len() as u64,
        a["parts"].as_u64().unwrap()
    );
    // Trace 12, across both tiers, is still whole.
    let tree = get_ok(&q, &format!("/api/v1/traces/{}", trace_id(12))).await;
    assert_eq!(tree["summary"]["span_count"], 6);
}

/// An answer without the tiers it says it read: each node counts the
/// archived files in range its own way (another node's by the hour).
fn without_read(mut answer: Value) -> Value {
    if let Some(o) = answer.as_object_mut() {
        o.remove("read");
    }
    answer
}

/// Every file under `root`, relative to it, sorted.
fn parquet_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.parent() != Some(root) {
                // Not the node locks beside the signals.
                out.push(
                    path.strip_prefix(root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        }
    }
    out.sort();
    out
}

/// SIGKILL lands at random moments while qyl moves many windows: after
/// the last start every span and log is there exactly once, and the
/// archive holds exactly the files the database lists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_archiving_loses_and_repeats_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("q.duckdb");
    let root = dir.path().join("archive");
    let t0 = now();
    // One-minute windows over two hours: 120 windows of spans and as many
    // of logs, a transaction each.
    let mut env = archive_env(&root);
    env[1].1 = "1".into();
    let mut quiet = env.clone();
    quiet[4].1 = "3600".into();
    let mut q = start(&db, &quiet);
    let (spans, logs) = fill_minutes(&q, "svc-k", t0, 120, 40, 0xdead_0000).await;
    q.stop();
    // The first pass starts a second after the start and takes seconds
    // (about 3 here; it checkpoints every 2): kills land before its first
    // checkpoint, after it, and after the pass, between transactions or
    // inside one.
    let interrupted = kill_while_archiving(&db, &env, &quiet, 5, 1500, 1000).await;
    let mut q = start(&db, &env);
    let listed = check_stored_once(&q, "svc-k", spans, logs).await;
    assert_eq!(parquet_files(&root), listed);
    q.stop();
    eprintln!(
        "{spans} spans and {logs} logs; {interrupted} of 5 kills left a file no commit listed"
    );
}

/// Minutes `0..minutes` of an hour-plus before `t0`, oldest first: a trace
/// of `per_minute` spans and a quarter as many logs in each, for `service`.
/// Returns the spans and logs sent.
async fn fill_minutes(
    q: &Qyl,
    service: &str,
    t0: u64,
    minutes: u64,
    per_minute: u64,
    trace_base: u64,
) -> (u64, u64) {
    let (mut spans, mut logs) = (0u64, 0u64);
    for m in 0..minutes {
        let start = t0 - (minutes + 10 - m) * MINUTE;
        let trace = format!("{:032x}", trace_base + m);
        let batch: Vec<Value> = (0..per_minute)
            .map(|k| {
                span(
                    &trace,
                    (trace_base << 8) + m * 100 + k,
                    None,
                    start + k * 1000,
                    k,
                )
            })
            .collect();
        spans += batch.len() as u64;
        export(q, "/v1/traces", traces_export(service, batch)).await;
        let times: Vec<u64> = (0..per_minute / 4).map(|k| start + k * 777).collect();
        logs += times.len() as u64;
        export(q, "/v1/logs", logs_export(service, &trace, &times)).await;
    }
    (spans, logs)
}

/// Starts qyl with `env` and SIGKILLs it `rounds` times, the first after
/// `first_ms` and each later one `step_ms` later (plus up to 300 ms), with
/// a start under `quiet` (no passes) after each kill to settle what the
/// kill left. Returns how many kills left a file (or an upload) no commit
/// listed.
async fn kill_while_archiving(
    db: &Path,
    env: &[(String, String)],
    quiet: &[(String, String)],
    rounds: u64,
    first_ms: u64,
    step_ms: u64,
) -> u64 {
    let mut interrupted = 0;
    for round in 0..rounds {
        let mut q = start(db, env);
        let at = first_ms + round * step_ms + now() / 1000 % 300;
        tokio::time::sleep(Duration::from_millis(at)).await;
        q.kill();
        drop(q);
        let mut q = start(db, quiet);
        if q.logs().contains("no commit recorded") {
            interrupted += 1;
        }
        q.stop();
    }
    interrupted
}

/// Waits until every span and log of `service` is archived, checks each is
/// stored exactly once, and returns the files `archive_parts` lists.
async fn check_stored_once(q: &Qyl, service: &str, spans: u64, logs: u64) -> Vec<String> {
    wait_archived(q, "every old window archived", |a| {
        a["rows"].as_u64() == Some(spans + logs)
    })
    .await;
    let stored = sql(
        q,
        &format!(
            "SELECT count(*), count(DISTINCT span_id) FROM spans WHERE service_name = '{service}'"
        ),
    )
    .await;
    assert_eq!(stored, json!([[spans, spans]]));
    let stored_logs = sql(
        q,
        &format!(
            "SELECT count(*), count(DISTINCT (body, trace_id)) FROM logs
             WHERE service_name = '{service}'"
        ),
    )
    .await;
    assert_eq!(stored_logs, json!([[logs, logs]]));
    sql(q, "SELECT path FROM archive_parts ORDER BY path")
        .await
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect()
}

/// Two nodes share one archive directory: a trace node B archived is
/// found by a query on node A, which never received it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_reads_what_another_node_archived() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let env_for = |node: &str| {
        let mut env = archive_env(&root);
        env[3].1 = node.into();
        env
    };
    let a = start(&dir.path().join("a.duckdb"), &env_for("node-a"));
    let b = start(&dir.path().join("b.duckdb"), &env_for("node-b"));
    // A second qyl cannot take a node name in use.
    let taken = std::process::Command::new(env!("CARGO_BIN_EXE_qyl"))
        .args([
            "serve",
            "--http-port",
            "0",
            "--otlp-http-port",
            "0",
            "--grpc-port",
            "0",
        ])
        .arg("--data")
        .arg(dir.path().join("c.duckdb"))
        .env("QYL_ARCHIVE_PATH", &root)
        .env("QYL_ARCHIVE_NODE", "node-b")
        .output()
        .unwrap();
    assert!(!taken.status.success());
    assert!(
        String::from_utf8_lossy(&taken.stderr).contains("another qyl uses the node name"),
        "{}",
        String::from_utf8_lossy(&taken.stderr)
    );
    // Node B: traces 1–12 (in windows from 80 to 20 minutes ago). A node
    // leaves out another's oldest window (its retention drops that next).
    let t0 = now();
    fill(&b, t0).await;
    // 12 windows of spans and 12 of logs.
    wait_archived(&b, "node B archived", |a| a["parts"].as_u64() == Some(24)).await;
    let from_b = without_read(get_ok(&b, &format!("/api/v1/traces/{}", trace_id(5))).await);
    // Node A mirrors node B's files one by one: a trace may show its logs'
    // window before its spans' (seen under a loaded full run), and is
    // whole once both are there.
    let on_a = common::api::eventually_for("node A sees node B's whole trace", || async {
        let r = common::api::get(&a, &format!("/api/v1/traces/{}", trace_id(5))).await;
        let body = without_read(r.body);
        (r.status == 200 && body == from_b).then_some(body)
    })
    .await;
    assert_eq!(on_a, from_b);
    // What node A sees of node B is its archive: every span but those of
    // its oldest window and of its database file.
    let b_cold: u64 = sql(
        &b,
        "SELECT count(*) FROM spans WHERE start_time_unix_nano >=
            (SELECT min(window_end_unix_nano) FROM archive_parts WHERE signal = 'spans')
          AND span_id NOT IN (SELECT qyl_span_hex(span_id) FROM span_rows)",
    )
    .await[0][0]
        .as_u64()
        .unwrap();
    assert!(b_cold >= 50, "{b_cold}");
    common::api::eventually_for("node A sees node B's archive", || async {
        let a_sees = sql(&a, "SELECT count(*) FROM spans").await[0][0].as_u64();
        (a_sees == Some(b_cold)).then_some(())
    })
    .await;
}

/// Another node drops files this node's views still name (its retention
/// ran between this node's passes): a read fails once, asks for new views,
/// and the next reads succeed without waiting for the next pass.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_another_node_dropped_fails_one_read_not_every_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("archive");
    let mut env_b = archive_env(&root);
    env_b[3].1 = "node-b".into();
    let b = start(&dir.path().join("b.duckdb"), &env_b);
    fill(&b, now()).await;
    wait_archived(&b, "node B archived", |a| a["parts"].as_u64() == Some(24)).await;
    // Node A lists B's files when it starts, and would not look again for
    // an hour.
    let mut env_a = archive_env(&root);
    env_a[3].1 = "node-a".into();
    env_a[4].1 = "3600".into();
    let a = start(&dir.path().join("a.duckdb"), &env_a);
    let before = sql(&a, "SELECT count(*) FROM spans").await[0][0]
        .as_u64()
        .unwrap();
    assert!(before >= 50, "{before}");
    // A span file of B's newest archived window disappears.
    let newest = parquet_files(&root)
        .into_iter()
        .filter(|f| f.starts_with("signal=spans/") && f.contains("/node=node-b/"))
        .max_by_key(|f| f.rsplit('/').next().unwrap_or("").to_string())
        .unwrap();
    std::fs::remove_file(root.join(&newest)).unwrap();
    let failed = post(
        &a,
        "/api/v1/sql",
        json!({"sql": "SELECT count(*) FROM spans"}),
    )
    .await;
    assert_ne!(failed.status, 200, "{}", failed.body);
    let after = common::api::eventually_for("node A reads again", || async {
        let r = post(
            &a,
            "/api/v1/sql",
            json!({"sql": "SELECT count(*) FROM spans"}),
        )
        .await;
        (r.status == 200).then(|| r.body["rows"][0][0].as_u64().unwrap())
    })
    .await;
    assert_eq!(after, before - 5, "one trace of 5 spans went with the file");
    assert!(
        a.logs().contains("replaced the archive's views"),
        "{}",
        a.logs()
    );
}

/// An S3 server (moto's, from PyPI) on a free port of 127.0.0.1, with one
/// empty bucket; stopped when dropped.
struct S3Server {
    child: std::process::Child,
    endpoint: String,
}

impl S3Server {
    async fn start(bucket: &str) -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let python = common::python();
        let child = std::process::Command::new(python.with_file_name("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting moto_server (make venv installs it)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let server = S3Server { child, endpoint };
        let client = reqwest::Client::new();
        let url = format!("{}/{bucket}", server.endpoint);
        common::api::eventually_for("the S3 server answers", || async {
            let r = client.put(&url).send().await.ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        server
    }

    /// The keys under `prefix` in `bucket`, sorted (ListObjectsV2, pages
    /// followed).
    async fn keys(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let client = reqwest::Client::new();
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!("{}/{bucket}?list-type=2&prefix={prefix}", self.endpoint);
            if let Some(t) = &token {
                url.push_str(&format!("&continuation-token={t}"));
            }
            let body = client.get(&url).send().await.unwrap().text().await.unwrap();
            let tag = |name: &str, from: &str| -> Vec<String> {
                from.split(&format!("<{name}>"))
                    .skip(1)
                    .filter_map(|s| s.split(&format!("</{name}>")).next())
                    .map(str::to_string)
                    .collect()
            };
            keys.extend(tag("Key", &body));
            token = tag("NextContinuationToken", &body).pop();
            if token.is_none() {
                break;
            }
        }
        keys.sort();
        keys
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn bucket_env(root: &Path, node: &str, s3: &S3Server) -> Vec<(String, String)> {
    let mut env = archive_env(root);
    env[3].1 = node.into();
    env.extend([
        ("QYL_ARCHIVE_URL".into(), "s3://qyl-archive/prod".into()),
        ("AWS_ENDPOINT_URL".into(), s3.endpoint.clone()),
        ("AWS_ACCESS_KEY_ID".into(), "qyl-test".into()),
        ("AWS_SECRET_ACCESS_KEY".into(), "qyl-test-secret".into()),
        ("AWS_REGION".into(), "us-east-1".into()),
    ]);
    env
}

/// The archive in an S3 bucket: SIGKILL during uploads loses and repeats
/// nothing, and the bucket holds exactly the files the database lists; a
/// node on another machine (its own directory) answers from the bucket;
/// ClickHouse reads the bucket and agrees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_bucket_survives_sigkill_and_serves_another_node() {
    let s3 = S3Server::start("qyl-archive").await;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.duckdb");
    let root = dir.path().join("b-archive");
    let t0 = now();
    // Node B, one-minute windows over an hour: 60 windows of spans and as
    // many of logs, an upload each.
    let mut env = bucket_env(&root, "node-b", &s3);
    env[1].1 = "1".into();
    let mut quiet = env.clone();
    quiet[4].1 = "3600".into();
    let mut q = start(&db, &quiet);
    let (spans, logs) = fill_minutes(&q, "svc-s3", t0, 60, 20, 0xb0c4_0000).await;
    q.stop();
    let in_flight = kill_while_archiving(&db, &env, &quiet, 3, 1300, 700).await;
    eprintln!("{in_flight} of 3 kills left a file or an upload no commit listed");
    let q = start(&db, &env);
    let listed = check_stored_once(&q, "svc-s3", spans, logs).await;
    assert_eq!(parquet_files(&root), listed);
    let in_bucket: Vec<String> = s3
        .keys("qyl-archive", "prod/")
        .await
        .into_iter()
        .map(|k| k["prod/".len()..].to_string())
        .collect();
    assert_eq!(
        in_bucket, listed,
        "the bucket holds exactly the listed files"
    );

    // Node A shares no directory with B, only the bucket.
    let a = start(
        &dir.path().join("a.duckdb"),
        &bucket_env(&dir.path().join("a-archive"), "node-a", &s3),
    );
    let trace = format!("{:032x}", 0xb0c4_0000_u64 + 30);
    let from_b = get_ok(&q, &format!("/api/v1/traces/{trace}")).await;
    let on_a = common::api::eventually_for("node A sees node B's trace", || async {
        let r = common::api::get(&a, &format!("/api/v1/traces/{trace}")).await;
        (r.status == 200).then_some(r.body)
    })
    .await;
    assert_eq!(without_read(on_a), without_read(from_b));

    // ClickHouse reads the bucket as it is.
    let spans_in_bucket: u64 = sql(
        &q,
        "SELECT sum(rows) FROM archive_parts WHERE signal = 'spans'",
    )
    .await[0][0]
        .as_u64()
        .unwrap();
    let ch = run_python(
        "bucket_reader.py",
        &[&s3.endpoint, "qyl-archive", "prod"],
        &[],
    );
    assert_eq!(ch["spans"].as_u64(), Some(spans_in_bucket), "{ch}");
    assert_eq!(
        ch["distinct_span_ids"].as_u64(),
        Some(spans_in_bucket),
        "{ch}"
    );
}

/// A file bigger than one PUT goes up in parts against a real S3 server,
/// and comes back byte for byte.
#[test]
fn a_big_file_uploads_in_parts_and_downloads_whole() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let s3 = rt.block_on(S3Server::start("big"));
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("part-1-2-3.parquet");
    // 40 MiB that do not compress: three parts.
    let mut bytes = vec![0u8; 40 << 20];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for chunk in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes()[..chunk.len()]);
    }
    std::fs::write(&local, &bytes).unwrap();
    let store = object_store::aws::AmazonS3Builder::new()
        .with_bucket_name("big")
        .with_endpoint(&s3.endpoint)
        .with_allow_http(true)
        .with_region("us-east-1")
        .with_access_key_id("k")
        .with_secret_access_key("s")
        .build()
        .unwrap();
    let bucket = qyl::storage::archive::bucket::Bucket::new(
        std::sync::Arc::new(store),
        "x",
        "s3://big/x".into(),
    )
    .unwrap();
    let rel = "signal=spans/date=2026-12-04/hour=11/node=n1/part-1-2-3.parquet";
    bucket.upload(&local, rel).unwrap();
    let back = dir.path().join("back.parquet");
    bucket.download(rel, &back).unwrap();
    assert!(std::fs::read(&back).unwrap() == bytes);
    assert_eq!(bucket.list().unwrap(), vec![(rel.to_string(), 40 << 20)]);
}
