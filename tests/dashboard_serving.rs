//! What the HTTP port serves around the dashboard, checked over a real
//! socket: the app at `/` and its page routes, cache and compression
//! headers, 404s that never fall back to the app, and ad-hoc SQL kept to its
//! share of the read connections so the pages stay interactive while heavy
//! SQL runs. (The pages themselves are tested in Chromium: dashboard/tests.)

mod common;

use std::io::Read;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::Qyl;
use serde_json::{json, Value};

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn client() -> reqwest::Client {
    // No automatic decompression: the test looks at what goes on the wire.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client")
}

async fn get(q: &Qyl, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = client().get(format!("http://{}{path}", q.http));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("sending the request");
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.expect("reading the body").to_vec(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_app_is_served_at_every_page_route_and_machine_routes_stay_404() {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);

    let index = get(&qyl, "/", &[]).await;
    assert_eq!(index.status, 200);
    assert!(index
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    let etag = index.header("etag").expect("an ETag").to_string();
    let html = index.text();
    assert!(html.contains("<html"), "{html}");

    // Page routes (deep links, reloads) get the same app.
    for path in [
        "/traces",
        "/traces/0af7651916cd43dd8448eb211c80319c",
        "/errors/12?x=1",
        "/login",
    ] {
        let r = get(&qyl, path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.text(), html, "{path}");
    }
    // Revalidation: unchanged, so 304 with no body.
    let r = get(&qyl, "/", &[("if-none-match", &etag)]).await;
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());

    // Machine routes and missing files never get the app.
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/v1/unknown",
        "/health/unknown",
        "/assets/index-00000000.js",
        "/favicon.ico",
        // Nothing outside the built files, however the path is spelled.
        "/..%2fpackage.json",
        "/assets/..%2f..%2fpackage.json",
        "/..%2f..%2fCargo.toml",
    ] {
        let r = get(&qyl, path, &[]).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(!r.text().contains("<html"), "{path}");
    }
    let r = get(&qyl, "/api/v1/unknown", &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"]["code"], "not_found");
    // /mcp is the MCP endpoint: never the app, whatever it tells a browser
    // (which does not accept its event stream).
    let r = get(&qyl, "/mcp", &[]).await;
    assert_eq!(r.status, 406, "{}", r.text());
    assert!(!r.text().contains("<html"));

    // When the dashboard was built (make dashboard), its hashed assets are
    // immutable and gzipped for clients that take gzip; a qyl built without
    // it serves the page saying how to build it instead.
    let assets: Vec<&str> = html
        .split('"')
        .filter(|s| s.starts_with("/assets/"))
        .collect();
    if assets.is_empty() {
        assert!(html.contains("make dashboard"), "{html}");
        return;
    }
    for asset in assets {
        let plain = get(&qyl, asset, &[]).await;
        assert_eq!(plain.status, 200, "{asset}");
        assert_eq!(
            plain.header("cache-control"),
            Some("public, max-age=31536000, immutable")
        );
        assert!(plain.header("content-encoding").is_none());
        let gz = get(&qyl, asset, &[("accept-encoding", "gzip, br")]).await;
        assert_eq!(gz.status, 200);
        assert_eq!(gz.header("content-encoding"), Some("gzip"), "{asset}");
        assert_eq!(gz.header("vary"), Some("accept-encoding"));
        assert!(gz.body.len() < plain.body.len(), "{asset}");
        let mut unzipped = Vec::new();
        flate2::read::GzDecoder::new(&gz.body[..])
            .read_to_end(&mut unzipped)
            .expect("valid gzip");
        assert_eq!(unzipped, plain.body, "{asset}");
        let ctype = plain.header("content-type").unwrap_or_default();
        if asset.ends_with(".js") {
            assert!(ctype.contains("javascript"), "{asset}: {ctype}");
        } else if asset.ends_with(".css") {
            assert!(ctype.starts_with("text/css"), "{asset}: {ctype}");
        }
    }
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

async fn post_json(q: &Qyl, path: &str, body: Value) -> (u16, Value) {
    let resp = client()
        .post(format!("http://{}{path}", q.http))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sending");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("reading the body");
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, body)
}

#[tokio::test(flavor = "multi_thread")]
async fn heavy_sql_waits_in_its_own_lane_while_trace_lookups_go_through() {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start(
        &dir.path().join("qyl.duckdb"),
        &[
            ("QYL_QUERY_POOL_SIZE", "4"),
            ("QYL_QUERY_SQL_SLOTS", "2"),
            ("QYL_QUERY_TIMEOUT_MS", "6000"),
        ],
    );
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let t0 = now_nanos();
    let spans = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "shop"}}]},
        "scopeSpans": [{"spans": [{
            "traceId": trace_id, "spanId": "00f067aa0ba902b7", "name": "GET /cart", "kind": 2,
            "startTimeUnixNano": t0.to_string(), "endTimeUnixNano": (t0 + 5_000_000).to_string()
        }]}]
    }]});
    let (status, body) = post_json(&qyl, "/v1/traces", spans).await;
    assert_eq!(status, 200, "{body}");

    let queue = get(&qyl, "/api/v1/sql/queue", &[]).await.json();
    assert_eq!(queue, json!({"running": 0, "waiting": 0, "slots": 2}));

    // Four console-style queries that run until the deadline stops them.
    let heavy: Vec<_> = (0..4)
        .map(|_| {
            let http = qyl.http.clone();
            tokio::spawn(async move {
                let resp = client()
                    .post(format!("http://{http}/api/v1/sql"))
                    .header("content-type", "application/json")
                    .body(json!({"sql": "select count(*) from range(100000000000)"}).to_string())
                    .send()
                    .await
                    .expect("sending");
                resp.status().as_u16()
            })
        })
        .collect();

    // Two hold the lane's slots, two wait in line, visibly.
    let mut seen = Value::Null;
    for _ in 0..200 {
        seen = get(&qyl, "/api/v1/sql/queue", &[]).await.json();
        if seen == json!({"running": 2, "waiting": 2, "slots": 2}) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(seen, json!({"running": 2, "waiting": 2, "slots": 2}));

    // The trace view's lookup does not wait for them: it is answered while
    // the heavy queries still hold their slots.
    let trace = get(&qyl, &format!("/api/v1/traces/{trace_id}"), &[]).await;
    assert_eq!(trace.status, 200, "{}", trace.text());
    assert_eq!(trace.json()["summary"]["root_name"], "GET /cart");
    let after = get(&qyl, "/api/v1/sql/queue", &[]).await.json();
    assert_eq!(after["running"], 2, "{after}");

    // The heavy queries end at the deadline (504) or, for those that waited
    // past it for a slot, with 503; none runs unbounded.
    for h in heavy {
        let status = h.await.expect("the request task");
        assert!(status == 504 || status == 503, "{status}");
    }
    let done = get(&qyl, "/api/v1/sql/queue", &[]).await.json();
    assert_eq!(done, json!({"running": 0, "waiting": 0, "slots": 2}));
}
