"""Exports spans to qyl in a loop with the OpenTelemetry Python SDK's OTLP/HTTP
exporter and counts the ones qyl acknowledged, so tests/docker/test.sh can
stop qyl mid-load and check that every acknowledged span was kept.

Usage: otlp_load.py SERVICE PROGRESS_FILE [BATCH]
The endpoint and headers come from OTEL_EXPORTER_OTLP_ENDPOINT and
OTEL_EXPORTER_OTLP_HEADERS, as for any application. Exports batches of BATCH
spans (default 200) until one is not acknowledged (qyl stopped), rewriting
PROGRESS_FILE after each with {"acknowledged": n, "attempted": m}; prints
the final counts as JSON.
"""

import json
import os
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

service, progress_path = sys.argv[1], sys.argv[2]
batch_size = int(sys.argv[3]) if len(sys.argv) > 3 else 200

# Spans are made by the SDK as an application makes them, collected in memory,
# and exported batch by batch here, so each batch's result is known exactly.
collected = InMemorySpanExporter()
provider = TracerProvider(resource=Resource.create({"service.name": service}))
provider.add_span_processor(SimpleSpanProcessor(collected))
tracer = provider.get_tracer("qyl.tests.docker")
# A short timeout: once qyl has stopped, the failing export should end the
# run in seconds, not after the SDK's default 10 s of retries.
exporter = OTLPSpanExporter(timeout=3)

acknowledged = attempted = 0


def write_progress():
    tmp = progress_path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"acknowledged": acknowledged, "attempted": attempted}, f)
    os.replace(tmp, progress_path)


write_progress()
batch_number = 0
while True:
    batch_number += 1
    for i in range(batch_size):
        with tracer.start_as_current_span(
            "chat demo-model",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.request.model": "demo-model",
                "load.batch": batch_number,
                "load.index": i,
            },
        ):
            pass
    spans = collected.get_finished_spans()
    collected.clear()
    attempted += len(spans)
    result = exporter.export(spans)
    if result != SpanExportResult.SUCCESS:
        break
    acknowledged += len(spans)
    write_progress()

write_progress()
print(json.dumps({"acknowledged": acknowledged, "attempted": attempted}))
