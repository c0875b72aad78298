//! OTLP/gRPC: the Trace, Logs and Metrics services on the gRPC port (the
//! trace service is `grpc_traces`, over raw bytes for the direct decoder).
//!
//! gzip is accepted, the decode limit is the configured body limit (tonic's
//! default of 4 MiB is too small for real batches), and a full queue or a
//! failed commit answers UNAVAILABLE, the one status every OTLP exporter
//! retries without further hints.

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::metrics_service_server::{
    MetricsService, MetricsServiceServer,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

use super::grpc_traces::RawTraceService;
use super::{ExportRequest, Exporter, Outcome};
use crate::storage::writer::WriteError;

#[derive(Clone)]
pub struct OtlpGrpc {
    exporter: Exporter,
}

fn status(e: WriteError) -> Status {
    Status::unavailable(e.to_string())
}

impl OtlpGrpc {
    async fn run(&self, req: ExportRequest) -> Result<Outcome, Status> {
        self.exporter.export(req).await.map_err(status)
    }
}

#[tonic::async_trait]
impl LogsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let o = self.run(ExportRequest::Logs(request.into_inner())).await?;
        Ok(Response::new(o.logs_response()))
    }
}

#[tonic::async_trait]
impl MetricsService for OtlpGrpc {
    async fn export(
        &self,
        request: Request<ExportMetricsServiceRequest>,
    ) -> Result<Response<ExportMetricsServiceResponse>, Status> {
        let o = self
            .run(ExportRequest::Metrics(request.into_inner()))
            .await?;
        Ok(Response::new(o.metrics_response()))
    }
}

/// The three OTLP services, ready to add to a tonic router.
pub fn services(
    exporter: Exporter,
    max_body: usize,
) -> (
    RawTraceService,
    LogsServiceServer<OtlpGrpc>,
    MetricsServiceServer<OtlpGrpc>,
) {
    let traces = RawTraceService::new(exporter.clone(), max_body);
    let svc = OtlpGrpc { exporter };
    (
        traces,
        LogsServiceServer::new(svc.clone())
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_body),
        MetricsServiceServer::new(svc)
            .accept_compressed(CompressionEncoding::Gzip)
            .max_decoding_message_size(max_body),
    )
}
