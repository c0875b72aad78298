//! OTLP in: decode (protobuf or JSON, gzip), convert to model records, hand
//! them to the writer and answer once they are committed.
//!
//! `http` and `grpc` are the two front doors; both end in
//! [`Exporter::export`], so the rules (what is rejected, how GenAI calls are
//! priced, which records are errors, when the answer is sent) exist once.
//! Records qyl makes itself (functions' own spans, its panics) enter through
//! the same [`Exporter`], so they are priced and captured the same way.

pub mod convert;
pub mod enrich;
pub mod grpc;
pub mod grpc_traces;
pub mod http;
pub mod jsonw;
pub mod otlp_json;
pub mod pricing;
pub mod spans;
pub mod view;
pub mod wire;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::errors::capture::Capture;
use crate::model::{Batch, Signal, SpanRecord};
use crate::storage::writer::{Committed, WriteError, WriterHandle};
use pricing::PriceTable;

/// What an accepted export reports back (`partial_success`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub rejected: u64,
    pub error_message: String,
}

impl Outcome {
    /// `partial_success` is set only when something was rejected, as the
    /// OTLP specification asks.
    pub fn trace_response(self) -> ExportTraceServiceResponse {
        ExportTraceServiceResponse {
            partial_success: (self.rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: self.rejected as i64,
                error_message: self.error_message,
            }),
        }
    }

    pub fn logs_response(self) -> ExportLogsServiceResponse {
        ExportLogsServiceResponse {
            partial_success: (self.rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: self.rejected as i64,
                error_message: self.error_message,
            }),
        }
    }

    pub fn metrics_response(self) -> ExportMetricsServiceResponse {
        ExportMetricsServiceResponse {
            partial_success: (self.rejected > 0).then_some(ExportMetricsPartialSuccess {
                rejected_data_points: self.rejected as i64,
                error_message: self.error_message,
            }),
        }
    }
}

/// A decoded export request of any signal.
pub enum ExportRequest {
    Traces(ExportTraceServiceRequest),
    /// A trace export already converted by the direct path
    /// ([`spans::decode_traces`], OTLP/HTTP protobuf bodies).
    Spans(convert::Converted<SpanRecord>),
    Logs(ExportLogsServiceRequest),
    Metrics(ExportMetricsServiceRequest),
}

impl ExportRequest {
    pub fn signal(&self) -> Signal {
        match self {
            ExportRequest::Traces(_) | ExportRequest::Spans(_) => Signal::Span,
            ExportRequest::Logs(_) => Signal::Log,
            ExportRequest::Metrics(_) => Signal::Metric,
        }
    }
}

/// What ingest holds: the writer's queue, and the rules applied to every
/// batch before it is queued (GenAI prices, error capture). Built by the
/// server from `qyl.toml`; the writer only stores what it is given.
#[derive(Clone)]
pub struct Exporter {
    writer: WriterHandle,
    pricing: Arc<PriceTable>,
    capture: Arc<Capture>,
}

impl Exporter {
    pub fn new(writer: WriterHandle, pricing: Arc<PriceTable>, capture: Arc<Capture>) -> Exporter {
        Exporter {
            writer,
            pricing,
            capture,
        }
    }

    /// Built-in prices and default capture rules (tests and benches).
    pub fn with_defaults(writer: WriterHandle) -> Exporter {
        Exporter::new(writer, Arc::new(PriceTable::builtin()), Arc::default())
    }

    pub fn writer(&self) -> &WriterHandle {
        &self.writer
    }

    /// The GenAI price table in force.
    pub fn pricing(&self) -> &Arc<PriceTable> {
        &self.pricing
    }

    /// Converts, queues and waits for the commit. Records that cannot be
    /// stored (invalid ids, metrics without data) are reported in the
    /// outcome; the rest are stored. Returns an error only when nothing was
    /// stored and the exporter should retry.
    pub async fn export(&self, request: ExportRequest) -> Result<Outcome, WriteError> {
        export(self, request).await
    }

    /// Queues a batch qyl made itself, its errors found first; the receiver
    /// resolves at commit. Never waits (panicking threads use it).
    pub fn submit(
        &self,
        mut batch: Batch,
    ) -> Result<oneshot::Receiver<Result<Committed, WriteError>>, WriteError> {
        batch.errors = self.capture.capture(&batch);
        self.writer.submit(batch)
    }

    /// The error capture rules (qyl's own panics are captured by them).
    pub fn capture(&self) -> &Capture {
        &self.capture
    }
}

async fn export(exporter: &Exporter, request: ExportRequest) -> Result<Outcome, WriteError> {
    let mut batch = Batch::default();
    let outcome = match request {
        ExportRequest::Traces(req) => {
            take_spans(exporter, &mut batch, convert::convert_traces(req))
        }
        ExportRequest::Spans(c) => take_spans(exporter, &mut batch, c),
        ExportRequest::Logs(req) => {
            let c = convert::convert_logs(req, crate::model::now_unix_nano());
            let outcome = Outcome {
                rejected: c.rejected,
                error_message: c.error_message("log records"),
            };
            batch.logs = c.records;
            outcome
        }
        ExportRequest::Metrics(req) => {
            let c = convert::convert_metrics(req);
            let outcome = Outcome {
                rejected: c.rejected,
                error_message: c.error_message("data points"),
            };
            batch.metrics = c.records;
            outcome
        }
    };
    if !batch.is_empty() {
        // Found here, on the exporting request's thread, so the writer
        // only counts them.
        batch.errors = exporter.capture.capture(&batch);
        exporter.writer.write(batch).await?;
    }
    Ok(outcome)
}

/// Prices converted spans into the batch; what was rejected goes into the
/// answer.
fn take_spans(
    exporter: &Exporter,
    batch: &mut Batch,
    c: convert::Converted<SpanRecord>,
) -> Outcome {
    let outcome = Outcome {
        rejected: c.rejected,
        error_message: c.error_message("spans"),
    };
    batch.spans = c.records;
    exporter.pricing.price_spans(&mut batch.spans);
    outcome
}
