"""A small chat application instrumented the way users instrument theirs:
the official `openai` client with `opentelemetry-instrumentation-openai-v2`,
exporting traces and events over OTLP/HTTP to the endpoint in
OTEL_EXPORTER_OTLP_ENDPOINT. The "OpenAI" it talks to is a stdlib HTTP
server in this process that answers chat completions with fixed usage.

Usage: openai_app.py SESSION_ID
Prints JSON: the session, the trace ids, and the usage the server returned.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import _logs, trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

# What the fake server answers, per request: prompt tokens grow with the
# conversation, as they do with a real model.
USAGE = []


class FakeOpenAI(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("content-length", "0"))
        req = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        model = req.get("model", "")
        last = req["messages"][-1]["content"]
        prompt = 100 * len(req["messages"])
        completion = 20 + len(USAGE)
        cached = 40 if len(req["messages"]) > 2 else 0
        USAGE.append({"model": model, "prompt": prompt, "completion": completion, "cached": cached})
        served = "gpt-4o-mini-2024-07-18" if model == "gpt-4o-mini" else model
        body = {
            "id": f"chatcmpl-{len(USAGE)}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": served,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": f"echo: {last}"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        }
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    session = sys.argv[1]
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    resource = Resource.create({"service.name": "py-chat"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter()))
    _logs.set_logger_provider(logger_provider)

    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument()
    import openai

    client = openai.OpenAI(
        api_key="test-key", base_url=f"http://127.0.0.1:{server.server_port}/v1"
    )
    tracer = trace.get_tracer("py-chat")
    history = [{"role": "system", "content": "You are an echo."}]
    trace_ids = []
    for text, model in [("hi", "gpt-4o-mini"), ("more", "gpt-4o-mini"), ("?", "mystery-model")]:
        # One trace per user turn; only the request span names the session
        # (the instrumentation's span joins it through the trace).
        with tracer.start_as_current_span(
            "chat turn", attributes={"session.id": session, "user.id": "py-user"}
        ) as root:
            trace_ids.append(format(root.get_span_context().trace_id, "032x"))
            history.append({"role": "user", "content": text})
            reply = client.chat.completions.create(model=model, messages=history)
            history.append({"role": "assistant", "content": reply.choices[0].message.content})

    tracer_provider.force_flush()
    logger_provider.force_flush()
    tracer_provider.shutdown()
    logger_provider.shutdown()
    server.shutdown()
    print(json.dumps({"session": session, "trace_ids": trace_ids, "usage": USAGE}))


if __name__ == "__main__":
    main()
