"""The pipeline's own health: dropped spans counted and logged once, roll-up counters published as metrics."""

from __future__ import annotations

import io
import logging
import os
import threading

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_llm.configure import build_telemetry
from otel_llm.exporters.metric_log import MetricLogExporter
from otel_llm.metrics import health
from otel_llm.metrics.health import (
    DROPPED_SPANS_METRIC,
    METRIC_LINE_FAILED,
    QUEUE_FULL,
    REDACTION_FAILED,
    ROLLUP_METRICS,
    count_dropped_spans,
)
from otel_llm.processors.ratelimit import RateLimitedLogger
from otel_llm.processors.rollup import RollupStats
from otel_llm.settings import Settings
from tests.support.metric_points import metric_points
from tests.support.poll import poll


class BlockingExporter(SpanExporter):
    """Holds the export thread until released, so the span queue fills like behind a stalled backend."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def export(self, spans):
        self.entered.set()
        self.release.wait(30)
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self):
        self.release.set()


@pytest.fixture
def small_queue(monkeypatch):
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "10")


def _build(settings: Settings, exporter: SpanExporter):
    reader = InMemoryMetricReader()
    telemetry = build_telemetry(settings, resource=Resource.create({}), span_exporters=[exporter],
                                metric_readers=[reader])
    return telemetry, reader


def _value(reader: InMemoryMetricReader, name: str, attributes: dict | None = None) -> int:
    return sum(point.value for attrs, point in metric_points(reader, name) if attributes in (None, attrs))


def test_dropped_spans_are_counted_logged_once_and_published(small_queue, caplog):
    """A full queue drops spans: counted, one warning names OTEL_BSP_MAX_QUEUE_SIZE, a metric reports it."""
    exporter = BlockingExporter()
    telemetry, reader = _build(Settings(rollup_window_ms=0), exporter)
    tracer = telemetry.tracer_provider.get_tracer("burst")
    with caplog.at_level(logging.WARNING, logger="otel_llm.metrics.health"):
        tracer.start_span("first").end()
        poll(exporter.entered.is_set, timeout=10, interval=0.01, message="export thread blocked")
        for index in range(40):
            tracer.start_span(f"burst-{index}").end()
    dropped = sum(counter.counts().get(QUEUE_FULL, 0) for counter in telemetry.drop_counters)
    assert 40 - 4 <= dropped <= 40  # at most the queue's 4 slots were free
    warnings = [record.getMessage() for record in caplog.records if record.name == "otel_llm.metrics.health"]
    assert len(warnings) == 1
    assert "OTEL_BSP_MAX_QUEUE_SIZE=4" in warnings[0]
    assert _value(reader, DROPPED_SPANS_METRIC, {"error.type": QUEUE_FULL}) == dropped
    exporter.release.set()
    telemetry.shutdown()


def test_no_drops_reports_zero(small_queue):
    """With a free-flowing exporter the dropped-span metric exists and is 0."""
    exporter = BlockingExporter()
    exporter.release.set()
    telemetry, reader = _build(Settings(rollup_window_ms=0), exporter)
    telemetry.tracer_provider.get_tracer("t").start_span("one").end()
    assert telemetry.force_flush()
    assert _value(reader, DROPPED_SPANS_METRIC) == 0
    telemetry.shutdown()


class FailingExporter(SpanExporter):
    """A backend that refuses every export, as a receiver does that is down or rejects the request."""

    def export(self, spans):
        return SpanExportResult.FAILURE

    def shutdown(self):
        pass


@pytest.mark.parametrize("rollup", ["process", "collector", "off"])
def test_spans_the_exporter_fails_are_counted_logged_and_published(small_queue, caplog, monkeypatch, rollup):
    """No retry queue: every span a failing exporter refuses is counted, logged with the count, published."""
    monkeypatch.setattr(health, "_rate_limited", RateLimitedLogger(health._logger))  # a fresh once-a-minute
    telemetry, reader = _build(Settings(rollup=rollup, rollup_window_ms=0, export_retry_max_spans=0),
                               FailingExporter())
    tracer = telemetry.tracer_provider.get_tracer("t")
    with caplog.at_level(logging.WARNING, logger="otel_llm.metrics.health"):
        for index in range(3):
            tracer.start_span(f"span-{index}").end()
        telemetry.force_flush()
    counts = {reason: count for counter in telemetry.drop_counters
              for reason, count in counter.counts().items() if count}
    assert counts == {"retry_queue_full": 3}
    assert _value(reader, DROPPED_SPANS_METRIC, {"error.type": "retry_queue_full",
                                                 "otel.component.name": "failing_exporter/0"}) == 3
    logged = [record.getMessage() for record in caplog.records if "retry_queue_full" in record.getMessage()]
    assert logged and "OTEL_LLM_EXPORT_RETRY_MAX_SPANS" in logged[0]
    telemetry.shutdown()


def test_drops_name_the_exporter_they_were_lost_for(small_queue):
    """With two exporters, what one refuses is counted under its own otel.component.name; the other loses
    nothing. Without the label a drop for one exporter would read as a span lost for all."""
    reader = InMemoryMetricReader()
    delivered = InMemorySpanExporter()
    telemetry = build_telemetry(Settings(rollup_window_ms=0, export_retry_max_spans=0),
                                resource=Resource.create({}), span_exporters=[delivered, FailingExporter()],
                                metric_readers=[reader])
    tracer = telemetry.tracer_provider.get_tracer("t")
    for index in range(3):
        tracer.start_span(f"span-{index}").end()
    telemetry.force_flush()
    assert len(delivered.get_finished_spans()) == 3
    dropped = {tuple(sorted(attrs.items())): point.value
               for attrs, point in metric_points(reader, DROPPED_SPANS_METRIC) if point.value}
    assert dropped == {(("error.type", "retry_queue_full"), ("otel.component.name", "failing_exporter/1")): 3}
    telemetry.shutdown()


def test_component_names_follow_the_sdk_conventions():
    from otel_llm.configure import component_name

    assert component_name(InMemorySpanExporter(), 0) == "in_memory_span_exporter/0"
    assert component_name(FailingExporter(), 2) == "failing_exporter/2"
    assert component_name(MetricLogExporter(io.StringIO()), 1) == "metric_log_exporter/1"


class Unreadable(ReadableSpan):
    """A request span whose attributes cannot be read."""

    @property
    def attributes(self):
        raise RuntimeError("unreadable")


@pytest.mark.parametrize(("make_exporter", "reason"), [
    (InMemorySpanExporter, REDACTION_FAILED),
    (lambda: MetricLogExporter(io.StringIO()), METRIC_LINE_FAILED),
])
def test_spans_the_export_stages_cannot_read_are_published_as_dropped(small_queue, make_exporter, reason):
    """The redaction stage (never exporting a span it could not redact) and the METRIC line exporter count
    what they lose in otel_llm.spans.dropped, by reason."""
    telemetry, reader = _build(Settings(rollup_window_ms=0), make_exporter())
    processor = telemetry.tracer_provider._active_span_processor._span_processors[-1]
    redacting = processor.span_exporter._inner
    bad = Unreadable(name="POST /x", kind=SpanKind.SERVER)
    if reason == REDACTION_FAILED:
        redacting.export([bad])
    else:
        redacting._inner.export([bad])
    assert _value(reader, DROPPED_SPANS_METRIC, {"error.type": reason}) == 1
    telemetry.shutdown()


def test_rollup_counters_are_published(small_queue):
    """Buffered and evicted traces of the roll-up stage appear as otel_llm.rollup.* metrics."""
    exporter = BlockingExporter()
    exporter.release.set()
    telemetry, reader = _build(Settings(rollup_max_traces=1, rollup_window_ms=60_000), exporter)
    tracer = telemetry.tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("root-a"):  # children end first; their roots stay open for now
        tracer.start_span("child-a").end()
        poll(lambda: _value(reader, "otel_llm.rollup.buffered_spans") == 1, timeout=10, interval=0.02,
             message="child buffered")
        assert _value(reader, "otel_llm.rollup.buffered_traces") == 1
        with tracer.start_as_current_span("root-b", context=Context()):  # a second trace
            pass
    poll(lambda: _value(reader, "otel_llm.rollup.evicted_traces") >= 1, timeout=10, interval=0.02,
         message="first trace evicted by max_traces=1")
    telemetry.shutdown()


def test_buffered_span_cap_reaches_the_stage(small_queue):
    """rollup_max_buffered_spans bounds the stage: a second trace's span past a cap of 1 evicts the first."""
    exporter = BlockingExporter()
    exporter.release.set()
    telemetry, reader = _build(Settings(rollup_max_buffered_spans=1, rollup_window_ms=60_000), exporter)
    tracer = telemetry.tracer_provider.get_tracer("t")
    with tracer.start_as_current_span("root-a"):  # open roots: their children stay buffered
        tracer.start_span("child-a").end()
        with tracer.start_as_current_span("root-b", context=Context()):
            tracer.start_span("child-b").end()
            poll(lambda: _value(reader, "otel_llm.rollup.evicted_traces") >= 1, timeout=10, interval=0.02,
                 message="first trace evicted by max_buffered_spans=1")
    telemetry.shutdown()


def test_every_rollup_counter_is_published():
    """Each field of the stage's stats has its otel_llm.rollup.* metric."""
    assert set(ROLLUP_METRICS) == set(RollupStats._fields)


def test_counting_is_skipped_with_a_warning_when_the_sdk_changes(caplog):
    """A processor without the SDK internals is left alone: None and one warning, never an exception."""

    class NotTheSdkProcessor:
        pass

    with caplog.at_level(logging.WARNING, logger="otel_llm.metrics.health"):
        assert count_dropped_spans(NotTheSdkProcessor()) is None
    assert "cannot" in caplog.text or "does not" in caplog.text
