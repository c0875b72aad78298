//! HTTP helpers the REST tests share: requests that keep the status and a
//! JSON body, OTLP JSON attributes, polling until a condition holds, and
//! the error stream read as SSE.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::{json, Value};

use super::Qyl;

pub struct Reply {
    pub status: u16,
    pub body: Value,
}

/// Sends `req`; the body must be JSON whatever the status.
pub async fn send(req: reqwest::RequestBuilder) -> Reply {
    let resp = req.send().await.expect("sending the request");
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("reading the body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "status {status}: not JSON ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Reply { status, body }
}

pub async fn get(q: &Qyl, path: &str) -> Reply {
    send(reqwest::Client::new().get(format!("http://{}{path}", q.http))).await
}

/// `GET path`, which must answer 200.
pub async fn get_ok(q: &Qyl, path: &str) -> Value {
    let r = get(q, path).await;
    assert_eq!(r.status, 200, "{path}: {}", r.body);
    r.body
}

/// A JSON `body` sent with `method`, with a bearer `token` when given.
pub async fn with_body(
    q: &Qyl,
    method: reqwest::Method,
    path: &str,
    body: Value,
    token: Option<&str>,
) -> Reply {
    let mut req = reqwest::Client::new()
        .request(method, format!("http://{}{path}", q.http))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    send(req).await
}

pub async fn post(q: &Qyl, path: &str, body: Value) -> Reply {
    with_body(q, reqwest::Method::POST, path, body, None).await
}

pub async fn patch(q: &Qyl, path: &str, body: Value) -> Reply {
    with_body(q, reqwest::Method::PATCH, path, body, None).await
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// An OTLP JSON string attribute.
pub fn s(k: &str, v: &str) -> Value {
    json!({"key": k, "value": {"stringValue": v}})
}

/// An OTLP JSON integer attribute.
pub fn i(k: &str, v: i64) -> Value {
    json!({"key": k, "value": {"intValue": v.to_string()}})
}

/// Polls `f` until it returns Some, for at most 15 s.
pub async fn eventually<T, F, Fut>(f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    eventually_for("condition", f).await
}

/// [`eventually`], naming what is waited for when it does not come.
pub async fn eventually_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not met within 15 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `GET /api/v1/live?types=error`, read as SSE.
pub struct Live {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buf: String,
}

impl Live {
    pub async fn open(q: &Qyl) -> Live {
        let resp = reqwest::Client::new()
            .get(format!("http://{}/api/v1/live?types=error", q.http))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        Live {
            body: Box::pin(resp.bytes_stream()),
            buf: String::new(),
        }
    }

    /// The next event's block of `field: value` lines (heartbeats skipped).
    pub async fn next_block(&mut self) -> String {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                if block.starts_with(':') {
                    continue;
                }
                return block;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(15), self.body.next())
                .await
                .expect("an SSE event within 15 s")
                .unwrap()
                .unwrap();
            self.buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }
}

impl Live {
    /// The next event's data; it must be an `error` event.
    pub async fn next_error(&mut self) -> Value {
        let block = self.next_block().await;
        assert!(block.contains("event: error"), "{block}");
        serde_json::from_str(sse_field(&block, "data: ")).unwrap()
    }

    /// The next `error` event's id and data, other events skipped.
    pub async fn next_error_with_id(&mut self) -> (u64, Value) {
        loop {
            let block = self.next_block().await;
            if !block.contains("event: error") {
                continue;
            }
            let id = sse_field(&block, "id: ").parse().unwrap();
            return (
                id,
                serde_json::from_str(sse_field(&block, "data: ")).unwrap(),
            );
        }
    }
}

/// The value of `name` (e.g. `"data: "`) in an SSE event block.
pub fn sse_field<'b>(block: &'b str, name: &str) -> &'b str {
    block
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {block}"))
}
