"""The fan-out stage alone: every exporter gets each batch; one failing or raising exporter stops no other."""

from __future__ import annotations

import logging

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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
