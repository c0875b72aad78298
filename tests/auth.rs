//! Auth, rate limits and CORS against the real binary over real sockets:
//! every class of route (API, dashboard, OTLP/HTTP on both ports, OTLP/gRPC)
//! without a token, with a wrong one and with the right one; the `?t=` cookie
//! login; the ingest token; the generated token on a non-loopback bind.

mod common;

use common::{count, Qyl};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use tonic::Code;

const TOKEN: &str = "s3cret-Token_1";
const INGEST: &str = "send-only";

fn spans(id: u8) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans: vec![Span {
                    trace_id: [id; 16].to_vec(),
                    span_id: [id; 8].to_vec(),
                    name: "work".into(),
                    start_time_unix_nano: 1,
                    end_time_unix_nano: 2,
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn error_code(&self) -> String {
        let v: serde_json::Value =
            serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body));
        v["error"]["code"].as_str().unwrap_or_default().to_string()
    }
}

fn client() -> reqwest::Client {
    // Redirects are what the cookie login answers; look at them, do not follow.
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn send(req: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> Reply {
    let mut req = req;
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("sending the request");
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.text().await.expect("reading the response"),
    }
}

async fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(client().get(format!("http://{addr}{path}")), headers).await
}

async fn post_spans(addr: &str, id: u8, headers: &[(&str, &str)]) -> Reply {
    let req = client()
        .post(format!("http://{addr}/v1/traces"))
        .header("content-type", "application/x-protobuf")
        .body(spans(id).encode_to_vec());
    send(req, headers).await
}

async fn grpc_export(addr: &str, id: u8, metadata: &[(&'static str, &str)]) -> Result<(), Code> {
    let mut client = TraceServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connecting to the gRPC port");
    let mut req = tonic::Request::new(spans(id));
    for (k, v) in metadata {
        req.metadata_mut().insert(*k, v.parse().unwrap());
    }
    client.export(req).await.map(|_| ()).map_err(|s| s.code())
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn assert_unauthorized(r: &Reply, what: &str) {
    assert_eq!(r.status, 401, "{what}: {}", r.body);
    assert_eq!(r.error_code(), "unauthorized", "{what}");
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{what}: {:?}",
        r.headers
    );
}

/// With the address printed as 0.0.0.0:PORT, the port to dial locally.
fn local(addr: &str) -> String {
    addr.replace("0.0.0.0", "127.0.0.1")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_guards_every_route_class_but_health() {
    let dir = tempfile::tempdir().unwrap();
    let mut qyl = Qyl::start(
        &dir.path().join("qyl.duckdb"),
        &[("QYL_AUTH_TOKEN", TOKEN), ("QYL_AUTH_INGEST_TOKEN", INGEST)],
    );
    let right = bearer(TOKEN);
    let wrong = bearer("nope");
    let ingest = bearer(INGEST);

    // The API, MCP and Prometheus text: everything with data on the main port.
    for path in ["/api/v1/anything", "/mcp", "/metrics"] {
        assert_unauthorized(&get(&qyl.http, path, &[]).await, path);
        assert_unauthorized(
            &get(&qyl.http, path, &[("authorization", &wrong)]).await,
            path,
        );
        assert_unauthorized(
            &get(&qyl.http, path, &[("authorization", &ingest)]).await,
            path,
        );
        assert_unauthorized(
            &get(&qyl.http, path, &[("cookie", "qyl_token=nope")]).await,
            path,
        );
    }
    let r = get(&qyl.http, "/api/v1/anything", &[("authorization", &right)]).await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_eq!(r.error_code(), "not_found");
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = get(&qyl.http, "/api/v1/anything", &[]).await;
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let r = get(&qyl.http, "/api/v1/anything", &[("x-qyl-token", TOKEN)]).await;
    assert_eq!(r.status, 404, "{}", r.body);

    // The dashboard's pages hold no data: a visitor without a token gets
    // the app, whose API calls answer 401 and show the login page.
    for path in ["/", "/traces", "/login"] {
        let r = get(&qyl.http, path, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(
            r.header("content-type")
                .is_some_and(|c| c.starts_with("text/html")),
            "{path}: {:?}",
            r.header("content-type")
        );
    }

    // Health stays open.
    for path in ["/health", "/health/live", "/health/ready"] {
        let r = get(&qyl.http, path, &[]).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }

    // OTLP/HTTP on both ports: the full token and the ingest token work.
    let mut id = 0u8;
    for addr in [qyl.http.clone(), qyl.otlp_http.clone()] {
        assert_unauthorized(&post_spans(&addr, 200, &[]).await, "no token");
        assert_unauthorized(
            &post_spans(&addr, 201, &[("authorization", &wrong)]).await,
            "wrong token",
        );
        for auth in [&right, &ingest] {
            id += 1;
            let r = post_spans(&addr, id, &[("authorization", auth)]).await;
            assert_eq!(r.status, 200, "{addr}: {}", r.body);
        }
    }

    // OTLP/gRPC: bearer or x-qyl-token metadata.
    assert_eq!(
        grpc_export(&qyl.grpc, 202, &[]).await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(
        grpc_export(&qyl.grpc, 203, &[("authorization", &wrong)]).await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(
        grpc_export(&qyl.grpc, 204, &[("x-qyl-token", "nope")]).await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(
        grpc_export(&qyl.grpc, 10, &[("authorization", &right)]).await,
        Ok(())
    );
    assert_eq!(
        grpc_export(&qyl.grpc, 11, &[("x-qyl-token", INGEST)]).await,
        Ok(())
    );
    assert_eq!(
        grpc_export(&qyl.grpc, 12, &[("authorization", &ingest)]).await,
        Ok(())
    );

    // Exactly the accepted exports were stored.
    let conn = qyl.stop_and_open();
    assert_eq!(count(&conn, "SELECT count(*) FROM spans"), 7);
}

#[tokio::test(flavor = "multi_thread")]
async fn query_token_sets_a_strict_cookie_and_redirects_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start(&dir.path().join("qyl.duckdb"), &[("QYL_AUTH_TOKEN", TOKEN)]);

    let r = get(
        &qyl.http,
        &format!("/api/v1/anything?a=1&t={TOKEN}&b=x%20y"),
        &[],
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.body);
    assert_eq!(r.header("location"), Some("/api/v1/anything?a=1&b=x%20y"));
    let cookie = r.header("set-cookie").expect("a cookie").to_string();
    for part in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_string();
    assert_eq!(pair, format!("qyl_token={TOKEN}"));

    // The cookie alone opens everything the token opens.
    let r = get(
        &qyl.http,
        "/api/v1/anything?a=1&b=x%20y",
        &[("cookie", &pair)],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    let r = post_spans(&qyl.http, 1, &[("cookie", &pair)]).await;
    assert_eq!(r.status, 200, "{}", r.body);

    let r = get(&qyl.http, &format!("/?t={TOKEN}"), &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/"));

    // A wrong `?t=` on a page lands on the login page, saying so.
    let r = get(&qyl.http, "/?t=wrong", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login?error=invalid"));
    assert!(r.header("set-cookie").is_none());
    let r = get(&qyl.http, "/api/v1/storage?t=wrong", &[]).await;
    assert_unauthorized(&r, "wrong ?t= on the API");
    assert!(r.header("set-cookie").is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn loopback_without_token_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    assert_eq!(get(&qyl.http, "/api/v1/anything", &[]).await.status, 404);
    assert_eq!(post_spans(&qyl.otlp_http, 1, &[]).await.status, 200);
    assert_eq!(grpc_export(&qyl.grpc, 2, &[]).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread")]
async fn non_loopback_without_token_generates_one_and_prints_the_login_url() {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start_with(&dir.path().join("qyl.duckdb"), &["--bind", "0.0.0.0"], &[]);
    let logs = qyl.logs();
    let url_start = logs
        .find("http://")
        .and_then(|i| logs[i..].find("/?t=").map(|j| i + j))
        .unwrap_or_else(|| panic!("no login URL in the log:\n{logs}"));
    let token: String = logs[url_start + 4..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    assert_eq!(token.len(), 64, "{logs}");
    assert!(logs[..url_start].ends_with(&qyl.http), "{logs}");

    let http = local(&qyl.http);
    assert_unauthorized(&get(&http, "/api/v1/anything", &[]).await, "no token");
    let r = get(
        &http,
        "/api/v1/anything",
        &[("authorization", &bearer(&token))],
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.body);
    assert_unauthorized(&post_spans(&local(&qyl.otlp_http), 1, &[]).await, "ingest");
    assert_eq!(
        grpc_export(&local(&qyl.grpc), 2, &[]).await,
        Err(Code::Unauthenticated)
    );
    assert_eq!(
        grpc_export(&local(&qyl.grpc), 3, &[("authorization", &bearer(&token))]).await,
        Ok(())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn insecure_no_auth_starts_open_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start_with(
        &dir.path().join("qyl.duckdb"),
        &["--bind", "0.0.0.0", "--insecure-no-auth"],
        &[],
    );
    let logs = qyl.logs();
    assert!(!logs.contains("?t="), "{logs}");
    assert!(logs.contains("auth is off"), "{logs}");
    assert_eq!(
        get(&local(&qyl.http), "/api/v1/anything", &[]).await.status,
        404
    );
    assert_eq!(post_spans(&local(&qyl.otlp_http), 1, &[]).await.status, 200);
    assert_eq!(grpc_export(&local(&qyl.grpc), 2, &[]).await, Ok(()));
}

#[tokio::test(flavor = "multi_thread")]
async fn api_rate_limit_answers_429_with_retry_after_and_spares_health() {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start(
        &dir.path().join("qyl.duckdb"),
        &[
            ("QYL_LIMITS_API_PER_SECOND", "1"),
            ("QYL_LIMITS_BURST", "2"),
        ],
    );
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let r = get(&qyl.http, "/api/v1/anything", &[]).await;
        statuses.push(r.status);
        if r.status == 429 {
            limited = Some(r);
        }
    }
    assert_eq!(&statuses[..2], &[404, 404], "{statuses:?}");
    let r = limited.unwrap_or_else(|| panic!("never limited: {statuses:?}"));
    assert_eq!(r.error_code(), "rate_limited");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(retry >= 1, "{retry}");

    // Health is never limited; ingest has its own limit (off here).
    for _ in 0..5 {
        assert_eq!(get(&qyl.http, "/health/live", &[]).await.status, 200);
    }
    for id in 1..=5 {
        assert_eq!(post_spans(&qyl.http, id, &[]).await.status, 200);
    }

    // The bucket refills at the configured rate.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(get(&qyl.http, "/api/v1/anything", &[]).await.status, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn ingest_rate_limit_covers_http_and_grpc() {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start(
        &dir.path().join("qyl.duckdb"),
        &[
            ("QYL_LIMITS_INGEST_PER_SECOND", "1"),
            ("QYL_LIMITS_BURST", "1"),
        ],
    );
    assert_eq!(grpc_export(&qyl.grpc, 1, &[]).await, Ok(()));
    assert_eq!(
        grpc_export(&qyl.grpc, 2, &[]).await,
        Err(Code::ResourceExhausted)
    );
    // One bucket per client for both protocols and both ports.
    let r = post_spans(&qyl.otlp_http, 3, &[]).await;
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.header("retry-after").is_some());
    // The API has its own limit (off here).
    for _ in 0..3 {
        assert_eq!(get(&qyl.http, "/api/v1/anything", &[]).await.status, 404);
    }
}

async fn preflight(addr: &str, path: &str, origin: &str) -> Reply {
    let req = client()
        .request(reqwest::Method::OPTIONS, format!("http://{addr}{path}"))
        .header("origin", origin)
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization");
    send(req, &[]).await
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_only_when_configured_and_preflight_needs_no_token() {
    let dir = tempfile::tempdir().unwrap();
    let origin = "https://app.example";
    let qyl = Qyl::start(
        &dir.path().join("qyl.duckdb"),
        &[
            ("QYL_AUTH_TOKEN", TOKEN),
            (
                "QYL_LIMITS_CORS_ORIGINS",
                "https://app.example, http://localhost:3000",
            ),
        ],
    );
    let r = preflight(&qyl.http, "/api/v1/anything", origin).await;
    assert!(r.status < 300, "{}: {}", r.status, r.body);
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    assert!(r
        .header("access-control-allow-headers")
        .is_some_and(|h| h.to_ascii_lowercase().contains("authorization")));
    // Browser exporters post OTLP cross-origin too.
    let r = preflight(&qyl.otlp_http, "/v1/traces", origin).await;
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));

    let r = preflight(&qyl.http, "/api/v1/anything", "https://evil.example").await;
    assert!(r.header("access-control-allow-origin").is_none());

    let right = bearer(TOKEN);
    let r = get(
        &qyl.http,
        "/api/v1/anything",
        &[("origin", origin), ("authorization", &right)],
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
    // A refusal carries the header too, so the page can read the 401.
    let r = get(&qyl.http, "/api/v1/anything", &[("origin", origin)]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("access-control-allow-origin"), Some(origin));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_cors_headers_without_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let qyl = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);
    let r = preflight(&qyl.http, "/api/v1/anything", "https://app.example").await;
    assert!(
        r.headers
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        r.headers
    );
    let r = get(
        &qyl.http,
        "/api/v1/anything",
        &[("origin", "https://app.example")],
    )
    .await;
    assert_eq!(r.status, 404);
    assert!(r.header("access-control-allow-origin").is_none());
}
