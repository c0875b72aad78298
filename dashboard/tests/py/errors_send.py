"""Sends the errors page's test data to qyl with the real OpenTelemetry SDK
(OTLP/HTTP), the way a small Python shop service would report failures:

- a ValueError raised inside the standard library's json decoder while
  parsing a cart (in-app frames around system frames), several times;
- a chained exception: a KeyError in a user lookup re-raised as
  UserLookupError (two exceptions, one stack trace);
- a failed GenAI call (OpenAI rate limit), grouped by its error class.

Before them, the same service's quiet past: a few spans of release 1.9.0
from 2 to 12 hours ago, the baseline automatic triage compares the new
failures with (release 2.0.0 is what changed). They are internal spans
under a remote parent, so they are no entry spans and leave the SLOs alone.

Each request span carries a session and a user so the events link to them.
Usage: errors_send.py [ROUNDS] (endpoint from OTEL_EXPORTER_OTLP_ENDPOINT).
Prints the trace ids sent as JSON; exits non-zero if an export failed.
"""

import json
import sys
import time

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
failures = []


class CheckedExporter(OTLPSpanExporter):
    def export(self, spans):
        result = super().export(spans)
        if getattr(result, "name", result) != "SUCCESS":
            failures.append(str(result))
        return result


def shop(version):
    return Resource.create(
        {
            "service.name": "shop",
            "service.version": version,
            "deployment.environment.name": "prod",
        }
    )


def baseline(count=6):
    provider = TracerProvider(resource=shop("1.9.0"))
    provider.add_span_processor(BatchSpanProcessor(CheckedExporter()))
    tracer = provider.get_tracer("shop.checkout")
    now = time.time_ns()
    for n in range(count):
        parent = SpanContext(
            trace_id=0x1F00 + n,
            span_id=0x2F00 + n,
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
        start = now - (2 + 2 * n) * 3600 * 10**9
        span = tracer.start_span(
            "render cart",
            context=set_span_in_context(NonRecordingSpan(parent)),
            kind=SpanKind.INTERNAL,
            start_time=start,
        )
        span.end(end_time=start + 5 * 10**6)
    provider.force_flush()
    provider.shutdown()


baseline()
provider = TracerProvider(resource=shop("2.0.0"))
provider.add_span_processor(BatchSpanProcessor(CheckedExporter()))
tracer = provider.get_tracer("shop.checkout")


class UserLookupError(Exception):
    pass


USERS = {"u-1": "ann"}


def parse_cart(body):
    return json.loads(body)


def load_user(user_id):
    try:
        return USERS[user_id]
    except KeyError as e:
        raise UserLookupError(f"no user {user_id}") from e


def checkout(n):
    attrs = {"session.id": f"sess-{n % 2}", "enduser.id": f"u-{n + 7}", "http.route": "/checkout"}
    with tracer.start_as_current_span("POST /checkout", kind=SpanKind.SERVER, attributes=attrs) as span:
        with tracer.start_as_current_span(
            "SELECT carts",
            kind=SpanKind.CLIENT,
            attributes={"db.system": "postgresql", "db.query.text": "SELECT body FROM carts WHERE id = $1"},
        ):
            pass
        try:
            parse_cart("{'items': " + str(n))
        except ValueError as e:
            span.record_exception(e)
            span.set_status(Status(StatusCode.ERROR, str(e)))
        return format(span.get_span_context().trace_id, "032x")


def profile(n):
    attrs = {"session.id": f"sess-{n % 2}", "enduser.id": f"u-{n + 7}", "http.route": "/users/{id}"}
    with tracer.start_as_current_span("GET /users/{id}", kind=SpanKind.SERVER, attributes=attrs) as span:
        try:
            load_user(f"u-{n + 7}")
        except UserLookupError as e:
            span.record_exception(e)
            span.set_status(Status(StatusCode.ERROR, str(e)))
        return format(span.get_span_context().trace_id, "032x")


def suggest(n):
    with tracer.start_as_current_span("POST /suggest", kind=SpanKind.SERVER, attributes={"session.id": "sess-ai"}):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.provider.name": "openai",
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "gpt-4o",
                "error.type": "openai.RateLimitError",
                "http.response.status_code": 429,
            },
        ) as span:
            span.set_status(Status(StatusCode.ERROR, "Rate limit reached for gpt-4o"))
            return format(span.get_span_context().trace_id, "032x")


sent = {"checkout": [], "profile": [], "genai": []}
for n in range(ROUNDS):
    sent["checkout"].append(checkout(n))
    sent["profile"].append(profile(n))
sent["genai"].append(suggest(0))

provider.force_flush()
provider.shutdown()
print(json.dumps(sent))
if failures:
    sys.exit("exports failed: " + "; ".join(failures))
