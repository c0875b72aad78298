//! OTLP/HTTP as exporters and hand-made clients use it: JSON and protobuf,
//! gzip, both ports, partial success, bad input, retries and restarts.

mod common;

use std::io::Write;

use common::{count, string, Qyl};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

async fn post(addr: &str, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Reply {
    let client = reqwest::Client::new();
    let mut req = client.post(format!("http://{addr}{path}")).body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.expect("sending the request");
    Reply {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.expect("reading the response").to_vec(),
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");
const PROTO: (&str, &str) = ("content-type", "application/x-protobuf");
const GZIP: (&str, &str) = ("content-encoding", "gzip");

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn data(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

/// A trace export of `n` spans with ids derived from `seed`.
fn trace_request(seed: u8, n: u8) -> ExportTraceServiceRequest {
    let spans = (0..n)
        .map(|i| Span {
            trace_id: [seed; 16].to_vec(),
            span_id: [seed, i, 1, 1, 1, 1, 1, 1].to_vec(),
            name: format!("op-{seed}-{i}"),
            kind: 1,
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_001_000_000,
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue {
                    key: "service.name".into(),
                    value: Some(AnyValue {
                        value: Some(any_value::Value::StringValue("proto-client".into())),
                    }),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn json_and_gzip_on_both_ports_with_partial_success() {
    let dir = tempfile::tempdir().unwrap();
    let mut qyl = Qyl::start(&dir.path().join("qyl.duckdb"), &[]);

    // traces.json has one span with an invalid trace id: the two valid ones
    // are stored and the reply says what was rejected.
    let r = post(&qyl.otlp_http, "/v1/traces", &[JSON], data("traces.json")).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.headers["content-type"], "application/json");
    let partial = &r.json()["partialSuccess"];
    assert_eq!(partial["rejectedSpans"], "1");
    assert!(partial["errorMessage"]
        .as_str()
        .unwrap()
        .contains("rejected: bad trace id"));

    // The same export gzipped, on the main HTTP port: a retry, stored once.
    let r = post(
        &qyl.http,
        "/v1/traces",
        &[JSON, GZIP],
        gzip(&data("traces.json")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let r = post(
        &qyl.http,
        "/v1/logs",
        &[JSON, GZIP],
        gzip(&data("logs.json")),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), serde_json::json!({}));
    let r = post(
        &qyl.otlp_http,
        "/v1/metrics",
        &[("content-type", "application/json; charset=utf-8")],
        data("metrics.json"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    // Protobuf with a partial success answers in protobuf.
    let mut req = trace_request(9, 2);
    req.resource_spans[0].scope_spans[0].spans[1].span_id = vec![1, 2, 3];
    let r = post(&qyl.http, "/v1/traces", &[PROTO], req.encode_to_vec()).await;
    assert_eq!(r.status, 200);
    let resp = ExportTraceServiceResponse::decode(&r.body[..]).unwrap();
    let partial = resp.partial_success.expect("partial_success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("span_id"),
        "{}",
        partial.error_message
    );

    let db = qyl.stop_and_open();
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM spans WHERE service_name = 'checkout'"
        ),
        2
    );
    assert_eq!(
        count(
            &db,
            "SELECT count(*) FROM spans WHERE service_name = 'proto-client'"
        ),
        1
    );
    let llm = |col: &str| {
        string(
            &db,
            &format!("SELECT {col}::VARCHAR FROM spans WHERE span_id = '00f067aa0ba902b7'"),
        )
    };
    assert_eq!(
        llm("trace_id").as_deref(),
        Some("0af7651916cd43dd8448eb211c80319c")
    );
    assert_eq!(llm("parent_span_id").as_deref(), Some("b7ad6b7169203331"));
    assert_eq!(llm("kind").as_deref(), Some("CLIENT"));
    assert_eq!(llm("duration_ns").as_deref(), Some("190000000"));
    assert_eq!(llm("deployment_environment").as_deref(), Some("staging"));
    assert_eq!(llm("gen_ai_provider").as_deref(), Some("anthropic"));
    assert_eq!(llm("gen_ai_input_tokens").as_deref(), Some("1000"));
    assert_eq!(llm("gen_ai_output_tokens").as_deref(), Some("250"));
    assert_eq!(llm("gen_ai_cache_read_tokens").as_deref(), Some("800"));
    assert_eq!(llm("session_id").as_deref(), Some("conv-7"));
    assert_eq!(
        string(
            &db,
            "SELECT session_id FROM spans WHERE span_id = 'b7ad6b7169203331'"
        )
        .as_deref(),
        Some("cart-session")
    );
    assert_eq!(
        string(&db, "SELECT json_extract_string(events, '$[0].attributes.\"exception.type\"') FROM spans WHERE span_id = '00f067aa0ba902b7'").as_deref(),
        Some("RateLimitError")
    );
    assert_eq!(
        count(&db, "SELECT json_extract(attributes, '$.\"http.response.status_code\"')::BIGINT FROM spans WHERE span_id = 'b7ad6b7169203331'"),
        200
    );

    assert_eq!(count(&db, "SELECT count(*) FROM logs"), 2);
    assert_eq!(
        string(&db, "SELECT body FROM logs WHERE severity_number = 17").as_deref(),
        Some("provider refused the request")
    );
    assert_eq!(
        string(&db, "SELECT trace_id FROM logs WHERE severity_number = 17").as_deref(),
        Some("0af7651916cd43dd8448eb211c80319c")
    );
    assert_eq!(
        string(&db, "SELECT body FROM logs WHERE severity_number = 9").as_deref(),
        Some("{\"event\":\"cart.viewed\"}")
    );

    assert_eq!(count(&db, "SELECT count(*) FROM metrics"), 3);
    assert_eq!(
        string(
            &db,
            "SELECT value::VARCHAR || ' ' || temporality FROM metrics WHERE name = 'cart.items'"
        )
        .as_deref(),
        Some("12.0 delta")
    );
    assert_eq!(
        string(
            &db,
            "SELECT histogram FROM metrics WHERE name = 'cart.latency'"
        )
        .as_deref(),
        Some("{\"bounds\":[10,50],\"counts\":[1,2,1]}")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_clear_errors_and_never_touches_stored_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut qyl = Qyl::start(
        &dir.path().join("qyl.duckdb"),
        &[("QYL_INGEST_MAX_BODY_MB", "1")],
    );
    let addr = qyl.http.clone();
    let ok = post(
        &addr,
        "/v1/traces",
        &[PROTO],
        trace_request(1, 5).encode_to_vec(),
    )
    .await;
    assert_eq!(ok.status, 200);

    // Malformed protobuf: 400 with a google.rpc.Status body in protobuf.
    let r = post(
        &addr,
        "/v1/traces",
        &[PROTO],
        b"\xff\xff\xff not protobuf".to_vec(),
    )
    .await;
    assert_eq!(r.status, 400);
    #[derive(Clone, PartialEq, prost::Message)]
    struct RpcStatus {
        #[prost(int32, tag = "1")]
        code: i32,
        #[prost(string, tag = "2")]
        message: String,
    }
    let status = RpcStatus::decode(&r.body[..]).unwrap();
    assert_eq!(status.code, 3);
    assert!(
        status
            .message
            .starts_with("malformed protobuf ExportTraceServiceRequest"),
        "{}",
        status.message
    );

    // Malformed JSON, and well-formed JSON of the wrong shape.
    let r = post(&addr, "/v1/logs", &[JSON], b"{\"resourceLogs\": [".to_vec()).await;
    assert_eq!(r.status, 400);
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .starts_with("malformed JSON"),
        "{}",
        r.text()
    );
    let r = post(
        &addr,
        "/v1/traces",
        &[JSON],
        br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{"startTimeUnixNano":"soon"}]}]}]}"#
            .to_vec(),
    )
    .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json()["message"],
        "invalid OTLP JSON at resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: expected an unsigned integer (number or string of digits), found the string \"soon\""
    );

    // Media types and encodings.
    let r = post(
        &addr,
        "/v1/traces",
        &[("content-type", "text/plain")],
        b"hi".to_vec(),
    )
    .await;
    assert_eq!(r.status, 415);
    assert!(
        r.text().contains("unsupported Content-Type"),
        "{}",
        r.text()
    );
    let r = post(&addr, "/v1/traces", &[], b"{}".to_vec()).await;
    assert_eq!(r.status, 415);
    let r = post(
        &addr,
        "/v1/traces",
        &[JSON, ("content-encoding", "br")],
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(r.status, 415);
    assert!(r.text().contains("Content-Encoding"), "{}", r.text());
    let r = post(&addr, "/v1/traces", &[JSON, GZIP], b"not gzip".to_vec()).await;
    assert_eq!(r.status, 400);

    // Too large: plainly, and as a small gzip body that inflates past the limit.
    let r = post(&addr, "/v1/traces", &[PROTO], vec![0u8; 2 << 20]).await;
    assert_eq!(r.status, 413);
    let bomb = gzip(&vec![b' '; 8 << 20]);
    assert!(bomb.len() < 1 << 20);
    let r = post(&addr, "/v1/traces", &[JSON, GZIP], bomb).await;
    assert_eq!(r.status, 413);
    assert!(r.text().contains("max_body_mb"), "{}", r.text());

    // Unknown routes and methods are not OTLP.
    let r = post(&addr, "/v1/profiles", &[PROTO], Vec::new()).await;
    assert_eq!(r.status, 404);

    let good = post(
        &addr,
        "/v1/traces",
        &[PROTO],
        trace_request(2, 3).encode_to_vec(),
    )
    .await;
    assert_eq!(good.status, 200);

    let db = qyl.stop_and_open();
    assert_eq!(count(&db, "SELECT count(*) FROM spans"), 8);
    assert_eq!(count(&db, "SELECT count(*) FROM logs"), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn retries_are_stored_once_and_data_survives_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let db_path = dir.path().join("qyl.duckdb");
    let first = trace_request(3, 10).encode_to_vec();

    let mut qyl = Qyl::start(&db_path, &[]);
    for _ in 0..2 {
        let r = post(&qyl.otlp_http, "/v1/traces", &[PROTO], first.clone()).await;
        assert_eq!(r.status, 200);
    }
    let r = post(&qyl.http, "/v1/logs", &[JSON], data("logs.json")).await;
    assert_eq!(r.status, 200);
    qyl.stop();

    // Restart on the same file: the data is there, and a late retry of the
    // first export is still recognised.
    let mut qyl = Qyl::start(&db_path, &[]);
    let r = post(&qyl.otlp_http, "/v1/traces", &[PROTO], first.clone()).await;
    assert_eq!(r.status, 200);
    let r = post(
        &qyl.otlp_http,
        "/v1/traces",
        &[PROTO],
        trace_request(4, 5).encode_to_vec(),
    )
    .await;
    assert_eq!(r.status, 200);
    let db = qyl.stop_and_open();

    assert_eq!(count(&db, "SELECT count(*) FROM spans"), 15);
    assert_eq!(
        count(&db, "SELECT count(DISTINCT (trace_id, span_id)) FROM spans"),
        15
    );
    assert_eq!(count(&db, "SELECT count(*) FROM logs"), 2);
    // Each migration recorded once, however many times qyl started.
    assert_eq!(
        count(&db, "SELECT count(*) FROM schema_version"),
        count(&db, "SELECT max(version) FROM schema_version")
    );
    // Sequence numbers continue across the restart.
    assert!(
        count(
            &db,
            "SELECT min(ingest_seq) FROM spans WHERE trace_id = repeat('04', 16)"
        ) > count(&db, "SELECT max(ingest_seq) FROM logs")
    );
    assert_eq!(
        count(&db, "SELECT count(DISTINCT ingest_seq) FROM spans"),
        15
    );
}
