"""Sends the traces the Traces page tests look at, with the OpenTelemetry
Python SDK over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT), with explicit
start and end times so durations and the critical path are known:

- "GET /checkout" (frontend -> orders -> payments): nested spans, one
  error span ("charge-card") with an event, a log on "place-order";
  critical path: GET /checkout, place-order, db.select, charge-card,
  stripe.post; "auth.verify" is not on it (it ends after place-order
  starts).
- "GET /health" (edge): one OK span.
- "batch-job" twice (worker): B has one extra span ("cache.lookup") and
  slower "transform"; "fetch" repeats, to match by occurrence.
- "agent.run" (assistant): a GenAI chat span with tokens and messages.

Prints JSON: the trace ids by name.
"""

import json
import time

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

MS = 1_000_000
providers = {}
log_providers = {}


def tracer(service):
    if service not in providers:
        p = TracerProvider(
            resource=Resource.create({"service.name": service, "service.version": "1.4.2", "deployment.environment": "test"})
        )
        p.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        providers[service] = p
    return providers[service].get_tracer("traces-test")


def logger(service):
    if service not in log_providers:
        p = LoggerProvider(resource=Resource.create({"service.name": service}))
        p.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
        log_providers[service] = p
    return log_providers[service].get_logger("traces-test")


def span(service, name, start, end, parent=None, attrs=None, kind=SpanKind.INTERNAL, error=None, events=(), links=()):
    """A span from `start` to `end` (ns); returns it ended."""
    ctx = trace.set_span_in_context(parent) if parent is not None else None
    s = tracer(service).start_span(name, context=ctx, kind=kind, attributes=attrs or {}, start_time=start, links=list(links))
    for ev_name, at, ev_attrs in events:
        s.add_event(ev_name, ev_attrs, timestamp=at)
    if error:
        s.set_status(Status(StatusCode.ERROR, error))
    s.end(end_time=end)
    return s


def open_span(service, name, start, parent=None, attrs=None, kind=SpanKind.INTERNAL):
    ctx = trace.set_span_in_context(parent) if parent is not None else None
    return tracer(service).start_span(name, context=ctx, kind=kind, attributes=attrs or {}, start_time=start)


def tid(s):
    return format(s.get_span_context().trace_id, "032x")


def sid(s):
    return format(s.get_span_context().span_id, "016x")


def checkout(t0):
    root = open_span(
        "frontend", "GET /checkout", t0, kind=SpanKind.SERVER,
        attrs={"http.method": "GET", "http.route": "/checkout", "http.status_code": 500, "user.id": "u-42", "cart.items": 3},
    )
    span("frontend", "auth.verify", t0 + 2 * MS, t0 + 12 * MS, root, {"auth.method": "jwt"})
    order = open_span("orders", "place-order", t0 + 10 * MS, root, {"order.id": "o-981"}, SpanKind.SERVER)
    span("orders", "db.select", t0 + 12 * MS, t0 + 30 * MS, order, {"db.system": "postgresql", "db.statement": "SELECT * FROM carts WHERE id = $1"}, SpanKind.CLIENT)
    charge = open_span("payments", "charge-card", t0 + 32 * MS, order, {"payment.provider": "stripe", "payment.amount": 42.5})
    span("payments", "stripe.post", t0 + 35 * MS, t0 + 88 * MS, charge, {"http.url": "https://api.stripe.example/v1/charges"}, SpanKind.CLIENT)
    charge.add_event("retry", {"attempt": 2}, timestamp=t0 + 40 * MS)
    charge.set_status(Status(StatusCode.ERROR, "card declined"))
    charge.end(end_time=t0 + 90 * MS)
    logger("orders").emit(
        timestamp=t0 + 91 * MS, body="payment failed for order o-981", severity_number=SeverityNumber.ERROR,
        severity_text="ERROR", context=trace.set_span_in_context(order),
    )
    order.end(end_time=t0 + 95 * MS)
    root.set_status(Status(StatusCode.ERROR, "HTTP 500"))
    root.end(end_time=t0 + 100 * MS)
    return tid(root), sid(order)


def health(t0):
    s = span("edge", "GET /health", t0, t0 + 3 * MS, attrs={"http.route": "/health"}, kind=SpanKind.SERVER)
    return tid(s)


def batch(t0, extra, link_to=None):
    links = []
    if link_to is not None:
        links.append(trace.Link(link_to.get_span_context(), {"link.reason": "previous run"}))
    root = tracer("worker").start_span("batch-job", start_time=t0, attributes={"job.name": "nightly"}, links=links)
    span("worker", "fetch", t0 + 1 * MS, t0 + 20 * MS, root)
    span("worker", "fetch", t0 + 21 * MS, t0 + 40 * MS, root)
    transform_end = t0 + (90 if extra else 70) * MS
    transform = open_span("worker", "transform", t0 + 41 * MS, root)
    if extra:
        span("worker", "cache.lookup", t0 + 42 * MS, t0 + 50 * MS, transform)
    transform.end(end_time=transform_end)
    span("worker", "store", transform_end, transform_end + 10 * MS, root)
    root.end(end_time=transform_end + 12 * MS)
    return root


def agent(t0):
    root = open_span("assistant", "agent.run", t0, attrs={"session.id": "s-traces-1"})
    messages_in = [
        {"role": "system", "parts": [{"type": "text", "content": "You are a weather bot."}]},
        {"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
    ]
    messages_out = [
        {
            "role": "assistant",
            "parts": [{"type": "tool_call", "id": "call_1", "name": "get_weather", "arguments": {"city": "Paris"}}],
            "finish_reason": "tool_calls",
        }
    ]
    span(
        "assistant", "chat gpt-4o-mini", t0 + 5 * MS, t0 + 805 * MS, root,
        {
            "gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai", "gen_ai.request.model": "gpt-4o-mini",
            "gen_ai.response.model": "gpt-4o-mini-2024-07-18", "gen_ai.usage.input_tokens": 1200, "gen_ai.usage.output_tokens": 85,
            "gen_ai.usage.cache_read.input_tokens": 400,
            "gen_ai.input.messages": json.dumps(messages_in), "gen_ai.output.messages": json.dumps(messages_out),
        },
        SpanKind.CLIENT,
    )
    span("assistant", "execute_tool get_weather", t0 + 810 * MS, t0 + 830 * MS, root, {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"})
    root.end(end_time=t0 + 840 * MS)
    return tid(root)


def main():
    now = time.time_ns()
    out = {}
    out["checkout"], out["place_order_span"] = checkout(now - 50_000 * MS)
    out["health"] = health(now - 40_000 * MS)
    a = batch(now - 30_000 * MS, extra=False)
    b = batch(now - 20_000 * MS, extra=True, link_to=a)
    out["batch_a"], out["batch_b"] = tid(a), tid(b)
    out["agent"] = agent(now - 10_000 * MS)
    for p in list(providers.values()) + list(log_providers.values()):
        p.force_flush()
        p.shutdown()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
