//! SLO alerts that fire by themselves: spans sent over OTLP/HTTP push an
//! SLO's burn over its tiers, and without anyone asking qyl stores each
//! level change (ok → page → warning → ok), sends it on the live stream as
//! an `slo` event and lists it in `GET /api/v1/slo/transitions`; a restart
//! resumes from the stored level instead of firing again.

mod common;

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Qyl;
use futures_util::StreamExt;
use serde_json::{json, Value};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Sends `n` SERVER spans of service `bot`, failed or not, in exports of
/// at most 1000.
async fn send(q: &Qyl, first_id: u64, n: u64, failed: bool) {
    let client = reqwest::Client::new();
    let mut id = first_id;
    let last = first_id + n;
    while id < last {
        let end = (id + 1000).min(last);
        let t = now() - 2_000_000_000;
        let spans: Vec<Value> = (id..end)
            .map(|k| {
                json!({
                    "traceId": format!("{k:032x}"),
                    "spanId": format!("{k:016x}"),
                    "name": "POST /chat",
                    "kind": 2,
                    "startTimeUnixNano": t.to_string(),
                    "endTimeUnixNano": (t + 5_000_000).to_string(),
                    "status": {"code": if failed { 2 } else { 1 }},
                })
            })
            .collect();
        let body = json!({"resourceSpans": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "bot"}}]},
            "scopeSpans": [{"spans": spans}],
        }]});
        let r = client
            .post(format!("http://{}/v1/traces", q.http))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        id = end;
    }
}

async fn get(q: &Qyl, path: &str) -> (u16, Value) {
    let r = reqwest::get(format!("http://{}{path}", q.http))
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// The live stream of `slo` events.
struct SloEvents {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl SloEvents {
    async fn open(q: &Qyl) -> SloEvents {
        let resp = reqwest::Client::new()
            .get(format!("http://{}/api/v1/live?types=slo", q.http))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        SloEvents {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next `slo` event's data (heartbeats skipped), within `wait`.
    async fn next(&mut self, wait: Duration) -> Option<Value> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if block.starts_with(':') {
                    continue;
                }
                assert!(block.contains("event: slo"), "{block}");
                let data = block
                    .lines()
                    .find_map(|l| l.strip_prefix("data: "))
                    .unwrap();
                return Some(serde_json::from_str(data).unwrap());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let chunk = tokio::time::timeout(left, self.body.next()).await.ok()?;
            self.buf
                .push_str(std::str::from_utf8(&chunk.unwrap().unwrap()).unwrap());
        }
    }
}

fn start(dir: &std::path::Path) -> Qyl {
    let config = dir.join("qyl.toml");
    std::fs::write(
        &config,
        r#"
[errors]
slo_check_every = "1s"

[[errors.slo]]
name = "chat-availability"
service = "bot"
objective = 99.0
"#,
    )
    .unwrap();
    Qyl::start_with(
        &dir.join("qyl.duckdb"),
        &["--config", config.to_str().unwrap()],
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burn_crossing_a_tier_fires_once_is_stored_and_resolves() {
    let dir = tempfile::tempdir().unwrap();
    let mut q = start(dir.path());
    let mut events = SloEvents::open(&q).await;
    let (status, slos) = get(&q, "/api/v1/slo").await;
    assert_eq!(status, 200);
    assert_eq!(slos[0]["level"], "ok");

    // 100 failed requests: 100 % bad at 99 % burns at 100×: a page.
    let sent = Instant::now();
    send(&q, 1, 100, true).await;
    let page = events
        .next(Duration::from_secs(15))
        .await
        .expect("an slo event after the burn crossed the page tier");
    println!(
        "ok → page announced {:?} after the export was acknowledged",
        sent.elapsed()
    );
    assert_eq!(page["slo"], "chat-availability");
    assert_eq!(page["service_name"], "bot");
    assert_eq!((&page["from"], &page["to"]), (&json!("ok"), &json!("page")));
    assert_eq!(page["tier"], "page 14.4x (1h & 5m)");
    assert!(
        (page["burn_rate_long"].as_f64().unwrap() - 100.0).abs() < 1e-6,
        "{page}"
    );
    assert_eq!(page["objective"], 99.0);
    // Still burning: no second event.
    assert_eq!(events.next(Duration::from_secs(3)).await, None);
    let (_, slos) = get(&q, "/api/v1/slo").await;
    assert_eq!(slos[0]["level"], "page");

    // A restart resumes from the stored level: nothing fires again.
    q.stop();
    let q = start(dir.path());
    let mut events = SloEvents::open(&q).await;
    assert_eq!(events.next(Duration::from_secs(4)).await, None);
    let (_, history) = get(&q, "/api/v1/slo/transitions").await;
    assert_eq!(history.as_array().unwrap().len(), 1, "{history}");

    // 3000 good requests: 100 bad of 3100 burns at 3.2×, over the slow
    // tier only: a warning. 10000 more: 0.76 %, below the budget: ok.
    send(&q, 1000, 3000, false).await;
    let warning = events
        .next(Duration::from_secs(15))
        .await
        .expect("page → warning");
    assert_eq!(
        (&warning["from"], &warning["to"]),
        (&json!("page"), &json!("warning"))
    );
    assert_eq!(warning["tier"], "warning 3x (1d & 2h)");
    send(&q, 10_000, 10_000, false).await;
    let ok = events
        .next(Duration::from_secs(15))
        .await
        .expect("warning → ok");
    assert_eq!(
        (&ok["from"], &ok["to"], &ok["tier"]),
        (&json!("warning"), &json!("ok"), &Value::Null)
    );

    // The history, newest first, filtered.
    let (_, history) = get(&q, "/api/v1/slo/transitions").await;
    let levels: Vec<&str> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["to"].as_str().unwrap())
        .collect();
    assert_eq!(levels, ["ok", "warning", "page"]);
    assert!(history[0]["time"].as_str().unwrap().ends_with('Z'));
    let (_, pages) = get(&q, "/api/v1/slo/transitions?level=page&service=bot").await;
    assert_eq!(pages.as_array().unwrap().len(), 1);
    let (_, none) = get(&q, "/api/v1/slo/transitions?slo=other").await;
    assert_eq!(none, json!([]));
    for bad in ["level=loud", "limit=0", "since=yesterday", "x=1"] {
        let (status, body) = get(&q, &format!("/api/v1/slo/transitions?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
}
