"""A small travel assistant instrumented the way users instrument theirs, so
the GenAI and Sessions pages can be tested on real SDK output: the official
`openai` client with `opentelemetry-instrumentation-openai-v2` (message
content on the spans), exporting over OTLP/HTTP to the endpoint in
OTEL_EXPORTER_OTLP_ENDPOINT. The "OpenAI" it talks to is a stdlib HTTP
server in this process: it asks for a weather tool call when tools are
offered, answers with fixed usage, and refuses the prompt "RATE LIMIT ME"
with a 429, like a provider under load.

One session of three turns (one trace each):
  1. a question answered through a tool call (get_weather) and a second call;
  2. a call that fails (429 rate limit);
  3. a long answer from a second model.

Usage: genai_agent.py SESSION_ID
Prints JSON: the session, the trace ids, the usage per call the server
returned and the texts the test looks for.
"""

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Status, StatusCode

SYSTEM = (
    "You are Wanderer, a travel assistant. Answer briefly and precisely. "
    "Use the get_weather tool for any question about the weather; never guess "
    "a temperature. Quote temperatures in degrees Celsius."
)
QUESTION = "What's the weather in Paris right now?"
ANSWER = "It is 18°C and sunny in Paris."
FAILING = "RATE LIMIT ME"
STORY_ASK = "Tell me about the history of the Eiffel Tower."
STORY = "\n\n".join(
    [
        "The Eiffel Tower was built by Gustave Eiffel's company for the 1889 World's Fair,",
        "to mark the centenary of the French Revolution.",
    ]
    + [f"Paragraph {i}: it was the tallest man-made structure in the world for 41 years." for i in range(1, 13)]
)

# What the fake server answered, per successful call.
USAGE = []


class FakeOpenAI(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802 (http.server's naming)
        length = int(self.headers.get("content-length", "0"))
        req = json.loads(self.rfile.read(length) or b"{}")
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        messages = req["messages"]
        last = messages[-1]
        if last.get("content") == FAILING:
            self.answer(
                429,
                {"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}},
            )
            return
        model = req.get("model", "")
        prompt = 60 * len(messages)
        completion = 15 + 5 * len(USAGE)
        if req.get("tools") and last["role"] == "user":
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_weather_1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris", "unit": "celsius"})},
                    }
                ],
            }
            finish = "tool_calls"
        elif last["role"] == "tool":
            message = {"role": "assistant", "content": ANSWER}
            finish = "stop"
        else:
            message = {"role": "assistant", "content": STORY}
            finish = "stop"
        USAGE.append({"model": model, "prompt": prompt, "completion": completion})
        served = "gpt-4o-mini-2024-07-18" if model == "gpt-4o-mini" else model
        self.answer(
            200,
            {
                "id": f"chatcmpl-{len(USAGE)}",
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": served,
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion},
            },
        )

    def log_message(self, *args):
        pass


WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "unit": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def main():
    session = sys.argv[1]
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeOpenAI)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    tracer_provider = TracerProvider(resource=Resource.create({"service.name": "travel-bot"}))
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)

    from opentelemetry.instrumentation.openai_v2 import OpenAIInstrumentor

    OpenAIInstrumentor().instrument()
    import openai

    client = openai.OpenAI(api_key="test-key", base_url=f"http://127.0.0.1:{server.server_port}/v1", max_retries=0)
    tracer = trace.get_tracer("travel-bot")
    history = [{"role": "system", "content": SYSTEM}]
    trace_ids = []

    def turn(name):
        span = tracer.start_as_current_span(name, attributes={"session.id": session, "user.id": "alice"})
        return span

    # Turn 1: a tool call, then the answer built from its result.
    with turn("chat turn") as root:
        trace_ids.append(format(root.get_span_context().trace_id, "032x"))
        history.append({"role": "user", "content": QUESTION})
        first = client.chat.completions.create(model="gpt-4o-mini", messages=history, tools=[WEATHER_TOOL])
        call = first.choices[0].message.tool_calls[0]
        history.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": call.id, "type": "function", "function": {"name": call.function.name, "arguments": call.function.arguments}}],
            }
        )
        with tracer.start_as_current_span(
            f"execute_tool {call.function.name}",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": call.function.name,
                "gen_ai.tool.call.id": call.id,
            },
        ):
            result = json.dumps({"city": "Paris", "temperature_c": 18, "sky": "sunny"})
        history.append({"role": "tool", "tool_call_id": call.id, "content": result})
        second = client.chat.completions.create(model="gpt-4o-mini", messages=history, tools=[WEATHER_TOOL])
        history.append({"role": "assistant", "content": second.choices[0].message.content})

    # Turn 2: the provider refuses the call.
    with turn("chat turn") as root:
        trace_ids.append(format(root.get_span_context().trace_id, "032x"))
        try:
            client.chat.completions.create(model="gpt-4o-mini", messages=history + [{"role": "user", "content": FAILING}])
        except openai.RateLimitError as e:
            root.set_status(Status(StatusCode.ERROR, str(e)))

    # Turn 3: a long answer from another model.
    with turn("chat turn") as root:
        trace_ids.append(format(root.get_span_context().trace_id, "032x"))
        history.append({"role": "user", "content": STORY_ASK})
        reply = client.chat.completions.create(model="gpt-4o", messages=history)
        history.append({"role": "assistant", "content": reply.choices[0].message.content})

    tracer_provider.force_flush()
    tracer_provider.shutdown()
    server.shutdown()
    print(
        json.dumps(
            {
                "session": session,
                "trace_ids": trace_ids,
                "usage": USAGE,
                "question": QUESTION,
                "answer": ANSWER,
                "failing": FAILING,
                "story_ask": STORY_ASK,
            }
        )
    )


if __name__ == "__main__":
    main()
