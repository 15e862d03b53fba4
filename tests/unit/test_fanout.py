"""The fan-out stage alone: every exporter gets each batch; one failing or raising exporter stops no other;
the delivery stages behind it share one size estimate per span."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm.exporters.delivery import TOO_LARGE, DeliveryExporter
from otel_llm.exporters.fanout import FanOutSpanExporter


class Broken(SpanExporter):
    """Fails every call: by result (FAILURE, False) or, with ``raises``, by exception."""

    def __init__(self, raises: bool) -> None:
        self.raises = raises
        self.calls: list[str] = []

    def _fail(self, what: str, result):
        self.calls.append(what)
        if self.raises:
            raise RuntimeError(f"{what} broken on purpose")
        return result

    def export(self, spans):
        return self._fail("export", SpanExportResult.FAILURE)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._fail("force_flush", False)

    def shutdown(self) -> None:
        self._fail("shutdown", None)


class Calls(SpanExporter):
    """Records the span names of each export call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def export(self, spans):
        self.calls.append([span.name for span in spans])
        return SpanExportResult.SUCCESS


def spans(count: int = 2) -> list:
    sink = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(sink))
    for index in range(count):
        provider.get_tracer("t").start_span(f"s{index}").end()
    return list(sink.get_finished_spans())


def test_every_exporter_gets_the_same_span_objects_and_success_needs_all():
    first, second = InMemorySpanExporter(), InMemorySpanExporter()
    batch = spans()
    assert FanOutSpanExporter([first, second]).export(batch) is SpanExportResult.SUCCESS
    assert first.get_finished_spans() == second.get_finished_spans() == tuple(batch)


def test_a_failing_or_raising_exporter_does_not_stop_the_ones_after_it(caplog):
    for raises in (False, True):
        broken, sink = Broken(raises), InMemorySpanExporter()
        fanout = FanOutSpanExporter([broken, sink])
        with caplog.at_level(logging.ERROR, logger="otel_llm.exporters.fanout"):
            assert fanout.export(spans()) is SpanExportResult.FAILURE
            assert fanout.force_flush() is False
            fanout.shutdown()
        assert broken.calls == ["export", "force_flush", "shutdown"]
        assert len(sink.get_finished_spans()) == 2
        assert sink.export(spans()) is SpanExportResult.FAILURE  # shut down too, after the broken one
        logged = [r.getMessage() for r in caplog.records if "Broken raised" in r.getMessage()]
        assert len(logged) == (3 if raises else 0)
        caplog.clear()


def test_delivery_stages_behind_it_share_one_size_estimate_per_span():
    """Three delivery stages with one size estimate: each span is measured once, and every stage still cuts
    its calls by that estimate (2 spans of 60 under a 100-byte bound: one span per call)."""
    measured: list[str] = []

    def size_of(span) -> int:
        measured.append(span.name)
        return 60

    sinks = [Calls() for _ in range(3)]
    stages = [DeliveryExporter(sink, max_batch_bytes=100, size_of=size_of) for sink in sinks]
    assert FanOutSpanExporter(stages).export(spans()) is SpanExportResult.SUCCESS
    assert measured == ["s0", "s1"]
    assert [sink.calls for sink in sinks] == [[["s0"], ["s1"]]] * 3


def test_delivery_stages_with_different_estimates_each_get_their_own():
    """A stage whose size estimate differs is measured with its own: its 200-byte spans are dropped as too
    large under its 100-byte bound, the other stage's 10-byte spans go out."""
    dropped: list[tuple[int, str]] = []
    small, large = InMemorySpanExporter(), InMemorySpanExporter()
    fanout = FanOutSpanExporter([
        DeliveryExporter(small, max_batch_bytes=100, size_of=lambda span: 10),
        DeliveryExporter(large, max_batch_bytes=100, size_of=lambda span: 200,
                         on_drop=lambda count, reason: dropped.append((count, reason))),
    ])
    fanout.export(spans())
    assert len(small.get_finished_spans()) == 2 and not large.get_finished_spans()
    assert dropped == [(1, TOO_LARGE), (1, TOO_LARGE)]
