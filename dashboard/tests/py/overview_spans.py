"""Spans from two services for the overview tests, sent with the OpenTelemetry
Python SDK over OTLP/HTTP (OTEL_EXPORTER_OTLP_ENDPOINT).

`shop-web` serves 6 requests, each calling `shop-api`; 2 of the 6 API calls
fail (status ERROR with a recorded exception), so shop-api has an error
rate and shop-web has none. One API call is a priced LLM call so the
GenAI tiles have spend and tokens.

Prints JSON: the span count per service and the error count.
"""

import json
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode


def provider(service):
    p = TracerProvider(resource=Resource.create({"service.name": service, "service.version": "1.4.0"}))
    p.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return p


web = provider("shop-web")
api = provider("shop-api")
web_tracer = web.get_tracer("shop.web")
api_tracer = api.get_tracer("shop.api")

REQUESTS = 6
FAILING = {2, 5}
for i in range(REQUESTS):
    with web_tracer.start_as_current_span("GET /cart", kind=trace.SpanKind.SERVER) as root:
        root.set_attribute("http.route", "/cart")
        time.sleep(0.004)
        with api_tracer.start_as_current_span("POST /api/cart", kind=trace.SpanKind.SERVER) as call:
            time.sleep(0.008 + 0.002 * i)
            if i in FAILING:
                try:
                    raise ValueError(f"cart {i} not found")
                except ValueError as e:
                    call.record_exception(e)
                    call.set_status(Status(StatusCode.ERROR, str(e)))
            if i == 0:
                with api_tracer.start_as_current_span("chat gpt-4o-mini", kind=trace.SpanKind.CLIENT) as llm:
                    llm.set_attribute("gen_ai.provider.name", "openai")
                    llm.set_attribute("gen_ai.operation.name", "chat")
                    llm.set_attribute("gen_ai.request.model", "gpt-4o-mini")
                    llm.set_attribute("gen_ai.usage.input_tokens", 1200)
                    llm.set_attribute("gen_ai.usage.output_tokens", 300)

web.shutdown()
api.shutdown()
print(json.dumps({"spans": {"shop-web": REQUESTS, "shop-api": REQUESTS + 1}, "errors": {"shop-api": len(FAILING)}}))
