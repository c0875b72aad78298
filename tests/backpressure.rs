//! With a tiny write queue and the writer held, exports are refused with the
//! statuses exporters retry on, and every acknowledged span is stored.

use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use qyl::config::Config;
use qyl::server::Server;

fn request(seed: u8, n: u16) -> ExportTraceServiceRequest {
    let spans = (0..n)
        .map(|i| {
            let [hi, lo] = i.to_be_bytes();
            Span {
                trace_id: [seed; 16].to_vec(),
                span_id: [seed, hi, lo, 1, 1, 1, 1, 1].to_vec(),
                name: "work".into(),
                start_time_unix_nano: 1,
                end_time_unix_nano: 2,
                ..Default::default()
            }
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn post(
    client: &reqwest::Client,
    url: &str,
    body: ExportTraceServiceRequest,
) -> reqwest::Response {
    client
        .post(url)
        .header("content-type", "application/x-protobuf")
        .body(body.encode_to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn full_queue_refuses_with_retryable_codes_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("qyl.duckdb");
    let mut config = Config::defaults().on_free_ports(&db);
    config.ingest.queue_rows = 600;
    config.functions.dir = dir.path().join("no-scripts");
    config.ingest.batch_ms = 1;
    let server = Server::start(&config).await.unwrap();
    let writer = server.writer();
    let http = format!("http://{}/v1/traces", server.addrs.otlp_http);
    let client = reqwest::Client::new();

    let pause = writer.pause();
    // A fits in the queue and waits for the held writer.
    let pending = tokio::spawn({
        let (client, http) = (client.clone(), http.clone());
        async move { post(&client, &http, request(1, 512)).await.status() }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while writer.queued_rows() < 512 {
        assert!(
            Instant::now() < deadline,
            "the first export never reached the queue"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // B does not fit: 503 with Retry-After, at once.
    let refused = post(&client, &http, request(2, 512)).await;
    assert_eq!(refused.status().as_u16(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(refused
        .text()
        .await
        .unwrap()
        .contains("write queue is full"));

    // C over gRPC: UNAVAILABLE, which every OTLP exporter retries.
    let mut grpc = TraceServiceClient::connect(format!("http://{}", server.addrs.grpc))
        .await
        .unwrap();
    let err = grpc.export(request(3, 512)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unavailable, "{err}");

    assert!(
        !pending.is_finished(),
        "an export was answered before its commit"
    );
    drop(pause);
    assert_eq!(pending.await.unwrap().as_u16(), 200);

    // The retries of B and C go through once there is room: A is answered
    // once journaled, and its rows leave the queue at its commit, just after.
    let deadline = Instant::now() + Duration::from_secs(10);
    while writer.queued_rows() > 0 {
        assert!(Instant::now() < deadline, "A was never committed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let retried = post(&client, &http, request(2, 512)).await;
    assert_eq!(retried.status().as_u16(), 200);
    while writer.queued_rows() > 0 {
        assert!(Instant::now() < deadline, "B was never committed");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    grpc.export(request(3, 512)).await.unwrap();

    assert_eq!(
        writer
            .stats()
            .refused_exports
            .load(std::sync::atomic::Ordering::Relaxed),
        2
    );
    server.shutdown().await.unwrap();

    let conn = duckdb::Connection::open(&db).unwrap();
    let per_trace: Vec<(String, i64)> = conn
        .prepare("SELECT trace_id, count(*) FROM spans GROUP BY 1 ORDER BY 1")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        per_trace,
        vec![
            ("01".repeat(16), 512),
            ("02".repeat(16), 512),
            ("03".repeat(16), 512)
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_accepts_gzip_and_refuses_oversized_messages() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::defaults().on_free_ports(&dir.path().join("qyl.duckdb"));
    config.ingest.max_body_mb = 1;
    let server = Server::start(&config).await.unwrap();
    let mut grpc = TraceServiceClient::connect(format!("http://{}", server.addrs.grpc))
        .await
        .unwrap()
        .send_compressed(tonic::codec::CompressionEncoding::Gzip);
    let resp = grpc.export(request(7, 100)).await.unwrap().into_inner();
    assert_eq!(resp.partial_success, None);

    let mut big = request(8, 1);
    big.resource_spans[0].scope_spans[0].spans[0].name = "x".repeat(2 << 20);
    let err = grpc.export(big).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::ResourceExhausted, "{err}");

    // Bytes that are no ExportTraceServiceRequest (a length running past
    // the end): INVALID_ARGUMENT, which exporters do not retry.
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addrs.grpc))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut raw = tonic::client::Grpc::new(channel);
    raw.ready().await.unwrap();
    let err = raw
        .unary::<_, ExportTraceServiceResponse, _>(
            tonic::Request::new(bytes::Bytes::from_static(&[0x0a, 0xff, 0x01, 0x0a])),
            tonic::codegen::http::uri::PathAndQuery::from_static(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
            ),
            RawBytes,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err}");
    assert!(err.message().contains("malformed"), "{err}");

    let hub = server.hub();
    assert_eq!(hub.recent(1000, |_| true).len(), 100);
    server.shutdown().await.unwrap();
}

/// A client codec sending raw bytes as the request message.
#[derive(Default)]
struct RawBytes;

impl tonic::codec::Codec for RawBytes {
    type Encode = bytes::Bytes;
    type Decode = ExportTraceServiceResponse;
    type Encoder = RawBytes;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawBytes {
        RawBytes
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

impl tonic::codec::Encoder for RawBytes {
    type Item = bytes::Bytes;
    type Error = tonic::Status;

    fn encode(
        &mut self,
        item: bytes::Bytes,
        buf: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(buf, &item);
        Ok(())
    }
}

struct ResponseDecoder;

impl tonic::codec::Decoder for ResponseDecoder {
    type Item = ExportTraceServiceResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        buf: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<ExportTraceServiceResponse>, tonic::Status> {
        ExportTraceServiceResponse::decode(buf)
            .map(Some)
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }
}
