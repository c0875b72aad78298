//! What the health checks say under load: heavy reads keep every read
//! connection and core busy, yet qyl still stores what it is sent, so
//! `/health/live` and `/health/ready` must stay 200 (an orchestrator would
//! otherwise restart or stop routing to a working server), while `/health`
//! reports the busy reads as `degraded`. Also `qyl healthcheck`, the
//! container HEALTHCHECK, as an exit code.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::Qyl;
use serde_json::{json, Value};

const HEAVY_SQL: &str =
    "SELECT sum(hash(a.range * 31 + b.range)) AS h FROM range(13000) a, range(13000) b";

async fn status(client: &reqwest::Client, url: String) -> (u16, Value) {
    let resp = client.get(url).send().await.expect("GET");
    let code = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(Value::Null);
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn live_and_ready_stay_up_while_heavy_sql_saturates_the_readers() {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start(
        &dir.path().join("q.duckdb"),
        // One read connection, which the heavy queries keep busy: the
        // reads are saturated for certain, as a busy dashboard can make them.
        &[
            ("QYL_QUERY_TIMEOUT_MS", "60000"),
            ("QYL_QUERY_POOL_SIZE", "1"),
        ],
    );
    let client = reqwest::Client::new();
    let base = format!("http://{}", qyl.http);

    let heavy: Vec<_> = (0..4)
        .map(|_| {
            let (client, url) = (client.clone(), format!("{base}/api/v1/sql"));
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .json(&json!({ "sql": HEAVY_SQL }))
                    .send()
                    .await
                    .expect("POST /api/v1/sql");
                resp.status().as_u16()
            })
        })
        .collect();

    // Until the queries end: the checks answer, ingest commits.
    let traces = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/traces.json"
    ))
    .unwrap();
    let started = Instant::now();
    let (mut polls, mut saw_busy_sql, mut saw_degraded) = (0, false, false);
    while !heavy.iter().all(|h| h.is_finished()) && started.elapsed() < Duration::from_secs(60) {
        for path in ["/health/live", "/health/ready"] {
            let (code, body) = status(&client, format!("{base}{path}")).await;
            assert_eq!(code, 200, "{path} under read load answered {code}: {body}");
        }
        let (code, body) = status(&client, format!("{base}/health")).await;
        assert_eq!(code, 200, "/health under read load answered {code}: {body}");
        saw_degraded |=
            body["status"] == "degraded" && !body["reads"]["answered"].as_bool().unwrap_or(true);
        let (_, lane) = status(&client, format!("{base}/api/v1/sql/queue")).await;
        saw_busy_sql |= lane["running"].as_u64().unwrap_or(0) >= 1;
        let export = client
            .post(format!("{base}/v1/traces"))
            .header("content-type", "application/json")
            .body(traces.clone())
            .send()
            .await
            .expect("POST /v1/traces");
        assert_eq!(export.status().as_u16(), 200, "ingest under read load");
        polls += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for h in heavy {
        let code = h.await.unwrap();
        assert!(
            code == 200 || code == 503 || code == 504,
            "heavy SQL answered {code}"
        );
    }
    assert!(
        saw_busy_sql,
        "the heavy queries never held the SQL slots: the test proves nothing"
    );
    assert!(
        polls >= 5,
        "the load ended too soon to tell ({polls} polls)"
    );
    assert!(saw_degraded, "/health never reported the busy reads");
    // After the load, /health is itself again.
    let (code, body) = status(&client, format!("{base}/health")).await;
    assert_eq!(code, 200);
    assert_eq!(body["reads"]["answered"], true, "{body}");
    assert_eq!(body["writer"]["condition"], "running", "{body}");
}

#[test]
fn qyl_healthcheck_exits_0_when_ready_and_1_when_nothing_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut qyl = Qyl::start(&dir.path().join("q.duckdb"), &[]);
    let run = |url: &str| {
        Command::new(env!("CARGO_BIN_EXE_qyl"))
            .args(["healthcheck", "--url", url])
            .output()
            .expect("running qyl healthcheck")
    };
    let up = run(&format!("http://{}", qyl.http));
    assert_eq!(
        up.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    // The port from the configuration, as a container's HEALTHCHECK runs it.
    let port = qyl.http.rsplit(':').next().unwrap().to_string();
    let by_config = Command::new(env!("CARGO_BIN_EXE_qyl"))
        .arg("healthcheck")
        .env("QYL_SERVER_HTTP_PORT", &port)
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(
        by_config.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&by_config.stderr)
    );
    qyl.stop();
    let down = run(&format!("http://127.0.0.1:{port}"));
    assert_eq!(down.status.code(), Some(1));
    let said = String::from_utf8_lossy(&down.stderr);
    assert!(said.contains("cannot reach"), "{said}");
}
