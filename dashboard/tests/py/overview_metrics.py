"""Metrics for the metrics-page tests, sent with the OpenTelemetry Python SDK
over OTLP/HTTP: a counter `shop.orders` and a histogram
`shop.checkout.duration` (ms), both with a `region` attribute taking two
values, so grouping by `region` gives two series.

Prints JSON: the metric names and the region values.
"""

import json
import time

from opentelemetry import metrics
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

reader = PeriodicExportingMetricReader(OTLPMetricExporter(), export_interval_millis=500)
provider = MeterProvider(resource=Resource.create({"service.name": "shop-api"}), metric_readers=[reader])
meter = provider.get_meter("shop.metrics")
orders = meter.create_counter("shop.orders", unit="{order}", description="Orders placed")
duration = meter.create_histogram("shop.checkout.duration", unit="ms", description="Checkout latency")

REGIONS = ["eu-west", "us-east"]
for round_ in range(3):
    for n in range(20):
        for k, region in enumerate(REGIONS):
            orders.add(1 + k, {"region": region})
            # us-east is slower, so its percentile lines sit higher.
            duration.record(20 + n * (3 + 4 * k), {"region": region})
    time.sleep(0.6)

provider.shutdown()
print(json.dumps({"counter": "shop.orders", "histogram": "shop.checkout.duration", "regions": REGIONS}))
