//! OTLP/HTTP: `POST /v1/traces`, `/v1/logs`, `/v1/metrics`, mounted on both
//! the main HTTP port and the OTLP/HTTP port.
//!
//! Follows the OTLP/HTTP specification: protobuf or JSON by `Content-Type`,
//! gzip (or deflate) by `Content-Encoding`, the Export response in the
//! request's encoding with `partial_success` when items were rejected, and
//! errors as a `google.rpc.Status` body with a status code exporters act on:
//! 400 (malformed, do not retry), 413 (too large), 415 (media type or
//! encoding), 503 + `Retry-After` (queue full or commit failed: retry).

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message;

use super::{otlp_json, spans, ExportRequest, Exporter, Outcome};
use crate::model::Signal;
use crate::storage::writer::WriteError;

#[derive(Clone)]
pub struct HttpIngest {
    exporter: Exporter,
    max_body: usize,
}

/// The `/v1/*` routes.
pub fn routes(exporter: Exporter, max_body: usize) -> Router {
    let state = HttpIngest { exporter, max_body };
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/logs", post(logs))
        .route("/v1/metrics", post(metrics))
        .with_state(state)
}

async fn traces(State(s): State<HttpIngest>, headers: HeaderMap, body: Body) -> Response {
    handle(&s, Signal::Span, &headers, body).await
}

async fn logs(State(s): State<HttpIngest>, headers: HeaderMap, body: Body) -> Response {
    handle(&s, Signal::Log, &headers, body).await
}

async fn metrics(State(s): State<HttpIngest>, headers: HeaderMap, body: Body) -> Response {
    handle(&s, Signal::Metric, &headers, body).await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// An error answer; rendered in the request's encoding when it is known.
struct Failure {
    status: StatusCode,
    message: String,
    retry_after: Option<u32>,
}

fn fail(status: StatusCode, message: impl Into<String>) -> Failure {
    Failure {
        status,
        message: message.into(),
        retry_after: None,
    }
}

/// `google.rpc.Status`, the error body OTLP/HTTP specifies.
#[derive(Clone, PartialEq, prost::Message)]
struct RpcStatus {
    #[prost(int32, tag = "1")]
    code: i32,
    #[prost(string, tag = "2")]
    message: String,
}

impl Failure {
    fn render(self, encoding: Encoding) -> Response {
        let code = match self.status {
            StatusCode::SERVICE_UNAVAILABLE => 14, // UNAVAILABLE
            StatusCode::TOO_MANY_REQUESTS => 8,    // RESOURCE_EXHAUSTED
            StatusCode::PAYLOAD_TOO_LARGE => 8,
            _ => 3, // INVALID_ARGUMENT
        };
        let mut response = match encoding {
            Encoding::Protobuf => (
                self.status,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                RpcStatus {
                    code,
                    message: self.message,
                }
                .encode_to_vec(),
            )
                .into_response(),
            Encoding::Json => (
                self.status,
                [(header::CONTENT_TYPE, "application/json")],
                serde_json::json!({ "code": code, "message": self.message }).to_string(),
            )
                .into_response(),
        };
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

async fn handle(s: &HttpIngest, signal: Signal, headers: &HeaderMap, body: Body) -> Response {
    let encoding = match content_type(headers) {
        Ok(e) => e,
        Err(f) => return f.render(Encoding::Json),
    };
    let result = async {
        // The body goes before the wait for the answer: under backpressure
        // many exports wait at once, and each would hold its body too.
        let request = {
            let raw = read_body(headers, body, s.max_body).await?;
            let bytes = decompress(headers, raw, s.max_body)?;
            decode(signal, encoding, &bytes)?
        };
        s.exporter.export(request).await.map_err(|e| {
            let retry_after = match e {
                WriteError::QueueFull { .. } => 1,
                WriteError::Closed | WriteError::Commit(_) => 5,
            };
            Failure {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: e.to_string(),
                retry_after: Some(retry_after),
            }
        })
    }
    .await;
    match result {
        Ok(outcome) => success(signal, encoding, outcome),
        Err(f) => f.render(encoding),
    }
}

fn content_type(headers: &HeaderMap) -> Result<Encoding, Failure> {
    let raw = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media = raw
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match media.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        "" => Err(fail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "missing Content-Type: use application/x-protobuf or application/json",
        )),
        other => Err(fail(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("unsupported Content-Type {other:?}: use application/x-protobuf or application/json"),
        )),
    }
}

fn too_large(limit: usize) -> Failure {
    fail(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "request body is larger than the {} MiB limit (ingest.max_body_mb); send smaller batches",
            limit >> 20
        ),
    )
}

/// Reads the body, up to `limit` bytes. A larger body is read to its end
/// (and discarded) up to four times the limit before answering 413, so the
/// client sees the 413 instead of a connection reset mid-upload, which
/// exporters would retry forever.
async fn read_body(headers: &HeaderMap, mut body: Body, limit: usize) -> Result<Bytes, Failure> {
    use http_body_util::BodyExt;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let drain_limit = (limit as u64).saturating_mul(4);
    let mut over = declared.is_some_and(|n| n > limit as u64);
    if declared.is_some_and(|n| n > drain_limit) {
        return Err(too_large(limit));
    }
    let mut buf = bytes::BytesMut::new();
    let mut seen: u64 = 0;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            fail(
                StatusCode::BAD_REQUEST,
                format!("reading the request body: {e}"),
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        seen += data.len() as u64;
        if seen > drain_limit {
            break;
        }
        if !over && buf.len() + data.len() > limit {
            over = true;
            buf = bytes::BytesMut::new();
        }
        if !over {
            buf.extend_from_slice(&data);
        }
    }
    if over || seen > limit as u64 {
        return Err(too_large(limit));
    }
    Ok(buf.freeze())
}

/// Undoes `Content-Encoding`, refusing output beyond `limit` bytes so a small
/// compressed body cannot expand without bound.
fn decompress(headers: &HeaderMap, raw: Bytes, limit: usize) -> Result<Bytes, Failure> {
    let enc = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let mut out = Vec::new();
    let read = match enc.as_str() {
        "" | "identity" => return Ok(raw),
        "gzip" | "x-gzip" => flate2::read::MultiGzDecoder::new(&raw[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out),
        "deflate" => flate2::read::ZlibDecoder::new(&raw[..])
            .take(limit as u64 + 1)
            .read_to_end(&mut out),
        other => {
            return Err(fail(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported Content-Encoding {other:?}: use gzip, deflate or none"),
            ))
        }
    };
    match read {
        Ok(_) if out.len() > limit => Err(too_large(limit)),
        Ok(_) => Ok(Bytes::from(out)),
        Err(e) => Err(fail(
            StatusCode::BAD_REQUEST,
            format!("malformed {enc} body: {e}"),
        )),
    }
}

fn decode(signal: Signal, encoding: Encoding, bytes: &[u8]) -> Result<ExportRequest, Failure> {
    let bad = |m: String| fail(StatusCode::BAD_REQUEST, m);
    match encoding {
        Encoding::Protobuf => {
            let what = match signal {
                Signal::Span => "ExportTraceServiceRequest",
                Signal::Log => "ExportLogsServiceRequest",
                Signal::Metric => "ExportMetricsServiceRequest",
            };
            let malformed = |e: prost::DecodeError| bad(format!("malformed protobuf {what}: {e}"));
            Ok(match signal {
                // Straight from the bytes to records, without prost's types.
                Signal::Span => ExportRequest::Spans(
                    spans::decode_traces(bytes)
                        .map_err(|e| bad(format!("malformed protobuf {what}: {e}")))?,
                ),
                Signal::Log => {
                    ExportRequest::Logs(ExportLogsServiceRequest::decode(bytes).map_err(malformed)?)
                }
                Signal::Metric => ExportRequest::Metrics(
                    ExportMetricsServiceRequest::decode(bytes).map_err(malformed)?,
                ),
            })
        }
        Encoding::Json => {
            let value: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| bad(format!("malformed JSON: {e}")))?;
            let invalid = |e: otlp_json::JsonError| bad(format!("invalid OTLP JSON at {e}"));
            Ok(match signal {
                Signal::Span => ExportRequest::Traces(otlp_json::traces(&value).map_err(invalid)?),
                Signal::Log => ExportRequest::Logs(otlp_json::logs(&value).map_err(invalid)?),
                Signal::Metric => {
                    ExportRequest::Metrics(otlp_json::metrics(&value).map_err(invalid)?)
                }
            })
        }
    }
}

fn success(signal: Signal, encoding: Encoding, o: Outcome) -> Response {
    match encoding {
        Encoding::Protobuf => {
            let body = match signal {
                Signal::Span => o.trace_response().encode_to_vec(),
                Signal::Log => o.logs_response().encode_to_vec(),
                Signal::Metric => o.metrics_response().encode_to_vec(),
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                body,
            )
                .into_response()
        }
        Encoding::Json => {
            let body = if o.rejected > 0 {
                let field = match signal {
                    Signal::Span => "rejectedSpans",
                    Signal::Log => "rejectedLogRecords",
                    Signal::Metric => "rejectedDataPoints",
                };
                // int64 travels as a string in OTLP JSON.
                serde_json::json!({ "partialSuccess": {
                    field: o.rejected.to_string(),
                    "errorMessage": o.error_message,
                }})
            } else {
                serde_json::json!({})
            };
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                body.to_string(),
            )
                .into_response()
        }
    }
}
