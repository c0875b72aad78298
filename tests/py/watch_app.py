"""An application as `qyl watch` sees it, with the real OpenTelemetry SDK
over OTLP/HTTP: per call, one request trace (a server span with a database
child), a failed payment whose exception becomes an error group, a GenAI
chat call with token usage, an INFO log and an ERROR log. Every name
carries TAG so a test can tell the records of one call from another's.

Usage: watch_app.py SERVICE TAG (endpoint from OTEL_EXPORTER_OTLP_ENDPOINT).
Prints the trace ids as JSON; exits non-zero if an export failed.
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

service, tag = sys.argv[1], sys.argv[2]


resource = Resource.create({"service.name": service})
provider = TracerProvider(resource=resource)
provider.add_span_processor(BatchSpanProcessor(checked(OTLPSpanExporter())))
tracer = provider.get_tracer("watch")
log_provider = LoggerProvider(resource=resource)
log_provider.add_log_record_processor(BatchLogRecordProcessor(checked(OTLPLogExporter())))
set_logger_provider(log_provider)
logger = logging.getLogger(f"watch.{tag}")
logger.setLevel(logging.INFO)
logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=log_provider))

# Explicit times: a 300 ms request without sleeping for it.
start = 1_000_000_000 * (__import__("time").time_ns() // 1_000_000_000)
# A user id gives the row a `gen_ai` object of nulls: still not a GenAI call.
root = tracer.start_span(
    f"checkout {tag}", kind=SpanKind.SERVER, start_time=start, attributes={"user.id": "ann"}
)
root.set_status(Status(StatusCode.OK))
with trace.use_span(root, end_on_exit=False):
    db = tracer.start_span(f"SELECT orders {tag}", kind=SpanKind.CLIENT, start_time=start + 20_000_000)
    db.end(end_time=start + 120_000_000)
    logger.info("cart ready %s", tag, extra={"cart.items": 3})
root.end(end_time=start + 300_000_000)

with tracer.start_as_current_span(f"pay {tag}", kind=SpanKind.SERVER) as pay:
    try:
        raise KeyError(f"card-{tag}")
    except KeyError as e:
        pay.record_exception(e)
        pay.set_status(Status(StatusCode.ERROR, "card declined"))
        logger.error("payment failed %s", tag)

with tracer.start_as_current_span(
    f"chat {tag}",
    kind=SpanKind.CLIENT,
    attributes={
        "gen_ai.system": "openai",
        "gen_ai.operation.name": "chat",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 30,
    },
) as chat:
    pass

provider.force_flush()
log_provider.force_flush()
provider.shutdown()
log_provider.shutdown()

print(
    json.dumps(
        {
            "checkout_trace_id": format(root.get_span_context().trace_id, "032x"),
            "pay_trace_id": format(pay.get_span_context().trace_id, "032x"),
            "chat_trace_id": format(chat.get_span_context().trace_id, "032x"),
        }
    )
)
if failures:
    sys.exit("exports failed: " + "; ".join(failures))
