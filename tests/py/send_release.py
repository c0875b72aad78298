"""Runs one release of a small Python service with the real OpenTelemetry
SDK over OTLP/HTTP: its resource carries service.version, so qyl sees the
release (a deploy) on its first span. Some requests succeed, some fail with
the same bug (an exception recorded on the span).

Usage: send_release.py VERSION OK FAILING (endpoint from
OTEL_EXPORTER_OTLP_ENDPOINT). Prints what was sent as JSON; exits non-zero
if an export failed.
"""

import json
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from export_check import checked, failures

version, ok, failing = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

resource = Resource.create(
    {
        "service.name": "cart",
        "service.version": version,
        "deployment.environment.name": "prod",
    }
)
provider = TracerProvider(resource=resource)
provider.add_span_processor(BatchSpanProcessor(checked(OTLPSpanExporter())))
tracer = provider.get_tracer("cart")

PRICES = {"apple": 3}


def price(item):
    return PRICES[item]


def checkout(item):
    with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER) as span:
        try:
            return price(item)
        except KeyError as e:
            span.record_exception(e)
            span.set_status(Status(StatusCode.ERROR, str(e)))
            return None


for _ in range(ok):
    checkout("apple")
for n in range(failing):
    checkout(f"pear-{n}")

provider.force_flush()
provider.shutdown()
print(json.dumps({"version": version, "ok": ok, "failing": failing}))
if failures:
    sys.exit("exports failed: " + "; ".join(failures))
