"""Runs the same application code from several deploy roots, as releases
and machines place it, and reports what it raises to qyl with the real
OpenTelemetry SDK: each ROOT:PACKAGE argument imports PACKAGE from ROOT,
calls its create_app() inside a SERVER span and records the exception.

Usage: deploy_app.py ROOT:PACKAGE... (endpoint from OTEL_EXPORTER_OTLP_ENDPOINT).
Prints the tracebacks' file paths as JSON; exits non-zero if an export failed.
"""

import importlib
import json
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from export_check import checked, failures

provider = TracerProvider(
    resource=Resource.create({"service.name": "shop", "service.version": "3.1.0"})
)
provider.add_span_processor(BatchSpanProcessor(checked(OTLPSpanExporter())))
tracer = provider.get_tracer("deploys")


def run(root, package):
    sys.path.insert(0, root)
    try:
        module = importlib.import_module(package)
        with tracer.start_as_current_span(
            "GET /", kind=SpanKind.SERVER, attributes={"enduser.id": root}
        ) as span:
            try:
                module.create_app()
            except Exception as e:  # the application's bug, as a handler would catch it
                span.record_exception(e)
                span.set_status(Status(StatusCode.ERROR, str(e)))
        return module.__file__
    finally:
        sys.path.remove(root)
        sys.modules.pop(package, None)


files = [run(*arg.rsplit(":", 1)) for arg in sys.argv[1:]]
provider.force_flush()
provider.shutdown()
print(json.dumps({"files": files}))
if failures:
    sys.exit("exports failed: " + "; ".join(failures))
