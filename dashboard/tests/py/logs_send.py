"""Sends log records to qyl the way an application does: Python's logging
module through the OpenTelemetry SDK's LoggingHandler (OTLP/HTTP protobuf to
OTEL_EXPORTER_OTLP_ENDPOINT), for the dashboard's Logs and Live tests.

Usage:
  logs_send.py set             two services, every level, some logs inside a
                               span (so they carry its trace id), one with a
                               distinctive word; prints what was sent as JSON
  logs_send.py one SERVICE LEVEL MESSAGE
                               a single record (for live-tail checks)
  logs_send.py span SERVICE NAME [MILLISECONDS]
                               a single span (for the Live page)
  logs_send.py many SERVICE COUNT
                               COUNT INFO records numbered 1…COUNT
  logs_send.py spans SERVICE PREFIX COUNT
                               COUNT short spans named PREFIX-1…PREFIX-COUNT
Exits non-zero if an export failed.
"""

import json
import logging
import sys
import time

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.trace import Status, StatusCode

failures = []


def checked(exporter):
    """Records every export that did not succeed."""
    original = exporter.export

    def export(batch, *args, **kwargs):
        result = original(batch, *args, **kwargs)
        if getattr(result, "name", result) != "SUCCESS":
            failures.append(f"{type(exporter).__name__}: {result}")
        return result

    exporter.export = export
    return exporter


class Service:
    """One service's logger and tracer, each exporting synchronously."""

    def __init__(self, name, batch=False):
        resource = Resource.create({"service.name": name, "service.version": "2.1.0", "deployment.environment.name": "test"})
        self.logs = LoggerProvider(resource=resource)
        self.logs.add_log_record_processor(SimpleLogRecordProcessor(checked(OTLPLogExporter())))
        self.traces = TracerProvider(resource=resource)
        exporter = checked(OTLPSpanExporter())
        self.traces.add_span_processor(BatchSpanProcessor(exporter, max_export_batch_size=100) if batch else SimpleSpanProcessor(exporter))
        self.tracer = self.traces.get_tracer("qyl.dashboard.tests")
        self.logger = logging.getLogger(f"app.{name}")
        self.logger.setLevel(logging.DEBUG)
        self.logger.propagate = False
        self.logger.addHandler(LoggingHandler(level=logging.DEBUG, logger_provider=self.logs))

    def close(self):
        self.logs.shutdown()
        self.traces.shutdown()


LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING, "ERROR": logging.ERROR, "FATAL": logging.CRITICAL}


def send_set():
    checkout, inventory = Service("checkout"), Service("inventory")
    sent = {"logs": 0, "traces": []}
    checkout.logger.debug("cache warm: 412 entries")
    checkout.logger.info("listening on :8080")
    inventory.logger.info("stock sync started", extra={"warehouse": "ams-1"})
    inventory.logger.warning("stock low for sku %s", "A-1009", extra={"sku": "A-1009", "warehouse": "ams-1"})
    sent["logs"] += 4
    with checkout.tracer.start_as_current_span("POST /cart/checkout") as span:
        checkout.logger.info("charging card for order 5512", extra={"order.id": "5512", "payment.provider": "stripe"})
        checkout.logger.error("payment declined by issuer: zanzibar rule 7", extra={"order.id": "5512", "payment.provider": "stripe"})
        span.set_status(Status(StatusCode.ERROR, "declined"))
        sent["traces"].append(format(span.get_span_context().trace_id, "032x"))
        sent["logs"] += 2
    with inventory.tracer.start_as_current_span("reserve stock"):
        inventory.logger.critical("reservation table corrupted, refusing writes")
        sent["logs"] += 1
    checkout.logger.warning("retrying payment webhook (attempt 2)")
    sent["logs"] += 1
    checkout.close()
    inventory.close()
    return sent


def send_one(service, level, message):
    s = Service(service)
    s.logger.log(LEVELS[level], message)
    s.close()
    return {"logs": 1}


def send_span(service, name, ms):
    s = Service(service)
    with s.tracer.start_as_current_span(name) as span:
        time.sleep(ms / 1000)
        trace_id = format(span.get_span_context().trace_id, "032x")
    s.close()
    return {"trace_id": trace_id}


def send_many(service, count):
    resource = Resource.create({"service.name": service})
    provider = LoggerProvider(resource=resource)
    provider.add_log_record_processor(BatchLogRecordProcessor(checked(OTLPLogExporter()), max_export_batch_size=500))
    logger = logging.getLogger(f"bulk.{service}")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logger.addHandler(LoggingHandler(level=logging.INFO, logger_provider=provider))
    for i in range(1, count + 1):
        logger.info("bulk record %d of %d", i, count)
    provider.shutdown()
    return {"logs": count}


def send_spans(service, prefix, count):
    s = Service(service, batch=True)
    for i in range(1, count + 1):
        with s.tracer.start_as_current_span(f"{prefix}-{i}"):
            pass
    s.close()
    return {"spans": count}


cmd = sys.argv[1]
if cmd == "set":
    out = send_set()
elif cmd == "one":
    out = send_one(sys.argv[2], sys.argv[3], sys.argv[4])
elif cmd == "span":
    out = send_span(sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 5)
elif cmd == "many":
    out = send_many(sys.argv[2], int(sys.argv[3]))
elif cmd == "spans":
    out = send_spans(sys.argv[2], sys.argv[3], int(sys.argv[4]))
else:
    sys.exit(f"unknown command {cmd!r}")
if failures:
    sys.exit("exports failed: " + "; ".join(failures))
print(json.dumps(out))
