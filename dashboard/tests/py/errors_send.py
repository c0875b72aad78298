"""Sends the errors page's test data to qyl with the real OpenTelemetry SDK
(OTLP/HTTP), the way a small Python shop service would report failures:

- a ValueError raised inside the standard library's json decoder while
  parsing a cart (in-app frames around system frames), several times;
- a chained exception: a KeyError in a user lookup re-raised as
  UserLookupError (two exceptions, one stack trace);
- a failed GenAI call (OpenAI rate limit), grouped by its error class.

Each request span carries a session and a user so the events link to them.
Usage: errors_send.py [ROUNDS] (endpoint from OTEL_EXPORTER_OTLP_ENDPOINT).
Prints the trace ids sent as JSON; exits non-zero if an export failed.
"""

import json
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
failures = []


class CheckedExporter(OTLPSpanExporter):
    def export(self, spans):
        result = super().export(spans)
        if getattr(result, "name", result) != "SUCCESS":
            failures.append(str(result))
        return result


resource = Resource.create(
    {
        "service.name": "shop",
        "service.version": "2.0.0",
        "deployment.environment.name": "prod",
    }
)
provider = TracerProvider(resource=resource)
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
