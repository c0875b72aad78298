"""A pretend chat service instrumented with the OpenTelemetry Python SDK: each
request is a server span with a GenAI client span under it (gen_ai.*
attributes, token usage), a log line, and now and then a failure with its
exception, exported to qyl over OTLP/HTTP.

It makes no real LLM call: the point is to give qyl's dashboard something to
show right after `docker compose up`. Configuration is the SDK's standard
OTEL_* variables; DEMO_ITERATIONS (0 = run until stopped) and
DEMO_INTERVAL_SECONDS pace the loop.
"""

import logging
import os
import random
import signal
import threading
import time

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

# Models from qyl's built-in price list, so the
# GenAI page shows costs.
MODELS = ["gpt-4o-mini", "gpt-4o", "gpt-4.1-mini"]
QUESTIONS = [
    "How do I reset my password?",
    "Summarise yesterday's incident report.",
    "Translate the release notes to German.",
    "Which plan includes SSO?",
]


class UpstreamTimeout(Exception):
    """What the pretend provider raises for a slow answer."""


def setup():
    resource = Resource.create({"service.version": "1.0.0", "deployment.environment.name": "demo"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    set_logger_provider(logger_provider)
    logging.getLogger().addHandler(LoggingHandler(logger_provider=logger_provider))
    logging.getLogger().setLevel(logging.INFO)
    return tracer_provider, logger_provider


def handle_request(tracer, log, session):
    model = random.choice(MODELS)
    question = random.choice(QUESTIONS)
    with tracer.start_as_current_span(
        "POST /chat",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": "POST", "http.route": "/chat", "session.id": session},
    ) as request:
        with tracer.start_as_current_span(
            f"chat {model}",
            kind=SpanKind.CLIENT,
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": model,
                "gen_ai.request.max_tokens": 512,
                "gen_ai.request.temperature": 0.2,
            },
        ) as call:
            time.sleep(random.uniform(0.05, 0.4))
            if random.random() < 0.1:
                error = UpstreamTimeout(f"{model} did not answer within 30s")
                call.record_exception(error)
                call.set_status(Status(StatusCode.ERROR, str(error)))
                call.set_attribute("error.type", "UpstreamTimeout")
                request.set_status(Status(StatusCode.ERROR))
                request.set_attribute("http.response.status_code", 504)
                log.error("chat failed for session %s: %s", session, error)
                return
            input_tokens = len(question.split()) * 40 + random.randint(50, 400)
            output_tokens = random.randint(20, 600)
            call.set_attributes(
                {
                    "gen_ai.response.model": model,
                    "gen_ai.response.finish_reasons": ["stop"],
                    "gen_ai.usage.input_tokens": input_tokens,
                    "gen_ai.usage.output_tokens": output_tokens,
                }
            )
        request.set_attribute("http.response.status_code", 200)
        log.info("answered %r with %s (%d tokens)", question, model, input_tokens + output_tokens)


def main():
    iterations = int(os.environ.get("DEMO_ITERATIONS", "0"))
    interval = float(os.environ.get("DEMO_INTERVAL_SECONDS", "2"))
    tracer_provider, logger_provider = setup()
    tracer = trace.get_tracer("demo-app")
    log = logging.getLogger("demo-app")

    # `docker compose stop` sends SIGTERM: finish the current request and
    # flush what the SDK still holds instead of dying mid-export.
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    done = 0
    while not stop.is_set() and (iterations == 0 or done < iterations):
        handle_request(tracer, log, session=f"session-{random.randint(1, 5)}")
        done += 1
        stop.wait(interval)

    tracer_provider.shutdown()
    logger_provider.shutdown()
    print(f"demo-app sent {done} requests", flush=True)


if __name__ == "__main__":
    main()
