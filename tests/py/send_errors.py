"""Reports errors to qyl the way a Python application does, with the real
OpenTelemetry SDK over OTLP/HTTP: exceptions recorded on spans, the same
exceptions logged with logger.exception() (so each reaches qyl twice, as a
span event and as a log record: the logs/dup case), and a span that only
sets an ERROR status.

Usage: send_errors.py (endpoint from OTEL_EXPORTER_OTLP_ENDPOINT).
Prints what was sent as JSON; exits non-zero if an export failed.
"""

import json
import logging
import sys

from opentelemetry import trace
from opentelemetry._logs import set_logger_provider
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from export_check import checked, failures


resource = Resource.create(
    {
        "service.name": "shop",
        "service.version": "2.0.0",
        "deployment.environment.name": "prod",
    }
)
provider = TracerProvider(resource=resource)
provider.add_span_processor(BatchSpanProcessor(checked(OTLPSpanExporter())))
tracer = provider.get_tracer("shop")

log_provider = LoggerProvider(resource=resource)
log_provider.add_log_record_processor(BatchLogRecordProcessor(checked(OTLPLogExporter())))
set_logger_provider(log_provider)
logger = logging.getLogger("shop")
logger.setLevel(logging.INFO)
logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=log_provider))

USERS = {"u-1": "ann"}


def load_user(user_id):
    return USERS[user_id]


def handle(user_id):
    with tracer.start_as_current_span(
        "GET /users/{id}", kind=SpanKind.SERVER, attributes={"enduser.id": user_id}
    ) as span:
        with tracer.start_as_current_span(
            "SELECT users",
            kind=SpanKind.CLIENT,
            attributes={"db.system": "postgresql", "db.statement": "SELECT * FROM users WHERE id = $1"},
        ):
            pass
        logger.info("fetching user %s", user_id)
        try:
            load_user(user_id)
        except KeyError as e:
            # Both: the span records the exception, the log handler sends it
            # again as a log record carrying exception.* attributes.
            span.record_exception(e)
            span.set_status(Status(StatusCode.ERROR, str(e)))
            logger.exception("lookup of %s failed", user_id)
        return span.get_span_context()


contexts = [handle(u) for u in ["u-7", "u-8", "u-9"]]

with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER) as span:
    span.set_attribute("error.type", "OrderRejected")
    span.set_status(Status(StatusCode.ERROR))
    order_ctx = span.get_span_context()

provider.force_flush()
log_provider.force_flush()
provider.shutdown()
log_provider.shutdown()

print(
    json.dumps(
        {
            "trace_ids": [format(c.trace_id, "032x") for c in contexts],
            "span_ids": [format(c.span_id, "016x") for c in contexts],
            "order_trace_id": format(order_ctx.trace_id, "032x"),
        }
    )
)
if failures:
    sys.exit("exports failed: " + "; ".join(failures))
