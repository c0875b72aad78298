"""An application failing in its own code, for automatic triage: a payment
step raises from a real Python function while its spans carry credentials
(an API key attribute, an Authorization header, a password) and the
exception message quotes a key, as careless code does. Sent with the real
OpenTelemetry SDK over OTLP/HTTP.

Usage: send_triage.py (endpoint from OTEL_EXPORTER_OTLP_ENDPOINT).
Prints JSON: the line of the raise, the secrets sent, the trace ids.
"""

import inspect
import json
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

SECRETS = {
    "api_key": "sk-live-4f9a8b7c6d5e4f3a2b1c0d9e",
    "bearer": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LTEifQ.c2lnbmF0dXJlLXRlc3Q",
    "password": "hunter2-correct-horse",
    "aws": "AKIAIOSFODNN7EXAMPLE",
}

failures = []
exporter = OTLPSpanExporter()
original = exporter.export


def export(batch, *args, **kwargs):
    result = original(batch, *args, **kwargs)
    if getattr(result, "name", result) != "SUCCESS":
        failures.append(str(result))
    return result


exporter.export = export
provider = TracerProvider(
    resource=Resource.create(
        {
            "service.name": "billing",
            "service.version": "3.1.0",
            "deployment.environment.name": "prod",
        }
    )
)
provider.add_span_processor(BatchSpanProcessor(exporter))
tracer = provider.get_tracer("billing")


class PaymentDeclined(Exception):
    pass


def charge_card(amount):
    raise PaymentDeclined(
        f"gateway refused {amount} with key {SECRETS['api_key']} "
        f"(Authorization: Bearer {SECRETS['bearer']})"
    )


RAISE_LINE = inspect.getsourcelines(charge_card)[1] + 1

trace_ids = []
for user in ["u-1", "u-2", "u-3"]:
    with tracer.start_as_current_span(
        "POST /checkout",
        kind=SpanKind.SERVER,
        attributes={
            "enduser.id": user,
            "session.id": f"sess-{user}",
            "http.request.header.authorization": f"Bearer {SECRETS['bearer']}",
            "payment.api_key": SECRETS["api_key"],
            "db.password": SECRETS["password"],
            "aws.access_key_id": SECRETS["aws"],
        },
    ) as span:
        try:
            charge_card(42)
        except PaymentDeclined as e:
            span.record_exception(e)
            span.set_status(Status(StatusCode.ERROR, str(e)))
        trace_ids.append(format(span.get_span_context().trace_id, "032x"))

provider.force_flush()
provider.shutdown()
print(
    json.dumps(
        {
            "raise_line": RAISE_LINE,
            "function": "charge_card",
            "secrets": list(SECRETS.values()),
            "trace_ids": trace_ids,
        }
    )
)
if failures:
    sys.exit("exports failed: " + "; ".join(failures))
