"""OpenTelemetry SDK in memory: the spans and metrics the tests read.

fastmcp takes its tracer from the global provider, and a global provider can be set
once per process: one session-wide provider with an in-memory exporter, cleared
before each test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from cblab.integrations.otel import BreakerTelemetry


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # first in this process: install ours
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return exporter


@dataclass
class Otel:
    spans: InMemorySpanExporter
    reader: InMemoryMetricReader
    telemetry: BreakerTelemetry

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, data point) of every point of `metric` in one collection."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found += [(dict(p.attributes), p) for p in m.data.data_points]
        return found

    def values(self, metric: str, *keys: str) -> dict[tuple[Any, ...], Any]:
        """`metric`'s sums (or histogram counts) keyed by the attributes `keys`."""
        out = {}
        for attrs, point in self.points(metric):
            value = getattr(point, "value", None)
            out[tuple(attrs[k] for k in keys)] = point.count if value is None else value
        return out


@pytest.fixture
def otel(span_exporter: InMemorySpanExporter) -> Iterator[Otel]:
    span_exporter.clear()
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield Otel(span_exporter, reader, BreakerTelemetry(meter_provider=provider))
    provider.shutdown()
