"""Sends traces, logs and metrics to qyl with the real OpenTelemetry Python SDK.

Usage: send_otlp.py grpc|http
The endpoint comes from OTEL_EXPORTER_OTLP_ENDPOINT and compression (if any)
from OTEL_EXPORTER_OTLP_COMPRESSION, exactly as an application would set them.
Prints one JSON object describing what was sent (ids included) and exits
non-zero if any export did not succeed.
"""

import json
import logging
import sys

from opentelemetry import metrics, trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from export_check import checked, failures

protocol = sys.argv[1]
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
elif protocol == "http":
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
else:
    sys.exit(f"unknown protocol {protocol!r}")


resource = Resource.create(
    {
        "service.name": f"py-{protocol}",
        "service.version": "1.4.2",
        "deployment.environment.name": "test",
        "host.name": "ci",
    }
)

# Traces: a server span with a GenAI child (legacy and current names), an event, a link.
provider = TracerProvider(resource=resource)
provider.add_span_processor(BatchSpanProcessor(checked(OTLPSpanExporter())))
tracer = provider.get_tracer("qyl.tests", "0.1.0")

with tracer.start_as_current_span("warmup") as warm:
    warm_ctx = warm.get_span_context()

with tracer.start_as_current_span(
    "POST /chat", kind=SpanKind.SERVER, attributes={"http.request.method": "POST", "session.id": "sess-42"}
) as root:
    with tracer.start_as_current_span(
        "chat gpt-4o",
        kind=SpanKind.CLIENT,
        links=[Link(warm_ctx, {"link.reason": "warmup"})],
        attributes={
            "gen_ai.system": "openai",
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": "gpt-4o",
            "gen_ai.response.model": "gpt-4o-2024-08-06",
            "gen_ai.usage.prompt_tokens": 120,
            "gen_ai.usage.output_tokens": 30,
            "gen_ai.response.finish_reasons": ["stop"],
            "temperatures": [0.1, 0.2],
            "retry": False,
        },
    ) as llm:
        llm.add_event("gen_ai.content.prompt", {"gen_ai.prompt": "hello"})
        llm.set_status(Status(StatusCode.ERROR, "rate limited"))
    root_ctx = root.get_span_context()
    llm_ctx = llm.get_span_context()

# Logs: through the logging bridge, inside the root span's context.
log_provider = LoggerProvider(resource=resource)
log_provider.add_log_record_processor(
    BatchLogRecordProcessor(checked(OTLPLogExporter()))
)
set_logger_provider(log_provider)
logger = logging.getLogger("qyl.tests")
logger.setLevel(logging.INFO)
logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=log_provider))
with trace.use_span(root, end_on_exit=False):
    logger.warning("quota at %d%%", 91, extra={"tenant": "acme"})

# Metrics: a counter, a histogram and an observable gauge.
reader = PeriodicExportingMetricReader(
    checked(OTLPMetricExporter()), export_interval_millis=60_000
)
meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
meter = meter_provider.get_meter("qyl.tests")
meter.create_counter("requests", unit="1").add(3, {"route": "/chat"})
meter.create_histogram("latency", unit="ms").record(42.0, {"route": "/chat"})
meter.create_observable_gauge(
    "queue.depth", callbacks=[lambda options: [metrics.Observation(7, {"queue": "a"})]]
)

provider.force_flush()
log_provider.force_flush()
meter_provider.force_flush()
provider.shutdown()
log_provider.shutdown()
meter_provider.shutdown()

print(
    json.dumps(
        {
            "service": f"py-{protocol}",
            "trace_id": format(root_ctx.trace_id, "032x"),
            "root_span_id": format(root_ctx.span_id, "016x"),
            "llm_span_id": format(llm_ctx.span_id, "016x"),
            "warm_trace_id": format(warm_ctx.trace_id, "032x"),
            "warm_span_id": format(warm_ctx.span_id, "016x"),
        }
    )
)
if failures:
    sys.exit("exports failed: " + "; ".join(failures))
