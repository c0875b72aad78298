//! The OTLP/gRPC trace service over raw message bytes.
//!
//! tonic's generated `TraceServiceServer` decodes each request with prost
//! into owned messages before any of our code runs, so gRPC spans paid the
//! ~43 allocations per span that the direct decoder (`ingest::spans`)
//! removes for OTLP/HTTP. This service is the generated one with a codec
//! that hands the (decompressed, size-checked) message bytes through, so
//! both doors share one decoder. Logs and metrics keep the generated
//! services: they are not the hot path.

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use prost::Message;
use tonic::body::Body;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{http, Body as HttpBody, BoxFuture, Service, StdError};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};

use super::{spans, ExportRequest, Exporter};

/// The gRPC service and method OTLP exporters call.
const SERVICE: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Requests as their bytes, answers as prost messages.
#[derive(Default)]
struct RawCodec;

struct RawDecoder;
struct ResponseEncoder;

impl Codec for RawCodec {
    type Encode = ExportTraceServiceResponse;
    type Decode = Bytes;
    type Encoder = ResponseEncoder;
    type Decoder = RawDecoder;

    fn encoder(&mut self) -> ResponseEncoder {
        ResponseEncoder
    }

    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Decoder for RawDecoder {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining())))
    }
}

impl Encoder for ResponseEncoder {
    type Item = ExportTraceServiceResponse;
    type Error = Status;

    fn encode(&mut self, item: Self::Item, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding the export response: {e}")))
    }
}

/// The unary handler: decode, export, answer.
struct Export(Exporter);

impl UnaryService<Bytes> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Response<ExportTraceServiceResponse>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let exporter = self.0.clone();
        Box::pin(async move {
            // The request's bytes go before the wait for the answer, which
            // many exports may share under backpressure.
            let body = request.into_inner();
            let records = spans::decode_traces(&body).map_err(|e| {
                Status::invalid_argument(format!("malformed ExportTraceServiceRequest: {e}"))
            })?;
            drop(body);
            let outcome = exporter
                .export(ExportRequest::Spans(records))
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            Ok(Response::new(outcome.trace_response()))
        })
    }
}

/// The trace service, for a tonic router.
#[derive(Clone)]
pub struct RawTraceService {
    exporter: Exporter,
    max_body: usize,
}

impl RawTraceService {
    pub fn new(exporter: Exporter, max_body: usize) -> RawTraceService {
        RawTraceService { exporter, max_body }
    }
}

impl NamedService for RawTraceService {
    const NAME: &'static str = SERVICE;
}

impl<B> Service<http::Request<B>> for RawTraceService
where
    B: HttpBody<Data = Bytes> + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != EXPORT_PATH {
            return Box::pin(async move {
                Ok(Status::unimplemented("TraceService has one method, Export").into_http())
            });
        }
        let export = Export(self.exporter.clone());
        let max_body = self.max_body;
        Box::pin(async move {
            let mut accept = EnabledCompressionEncodings::default();
            accept.enable(CompressionEncoding::Gzip);
            let mut grpc = Grpc::new(RawCodec)
                .apply_compression_config(accept, EnabledCompressionEncodings::default())
                .apply_max_message_size_config(Some(max_body), None);
            Ok(grpc.unary(export, req).await)
        })
    }
}
