"""Fan-out: the end of otel-llm's span pipeline, where one stream of finished, enriched spans reaches every
configured exporter (OTLP, console, METRIC lines, ...).

``FanOutSpanExporter`` adds nothing to spans: everything before it (roll-up, pricing, fallback detection,
span-derived metrics, redaction) ran once, so each exporter receives the same span objects. configure() puts
each exporter behind its own delivery stage (``otel_llm.exporters.delivery``), so retries, the retry queue
and drop counts stay per exporter; the delivery stages' size estimate of a batch is made once here and
shared by all of them (``DeliveryExporter.export_measured``).

How results combine: the exporters are called one after the other, in the configured order, each with the
whole batch; one that fails or raises does not stop the others (an exception is logged, rate-limited, and
counts as FAILURE). The result is SUCCESS only when every exporter succeeded; the batch processor only logs a
FAILURE, since the delivery stages keep what they could not send. ``force_flush`` and ``shutdown`` reach
every exporter likewise. A slow exporter delays the ones after it within a batch (its delivery stage bounds
each call); the batch processor's queue absorbs that.

Cost: nothing on the application thread; on the export thread one call per exporter per batch, and one size
estimate per span (~2 µs) for all the delivery stages together.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_llm.exporters.delivery import DeliveryExporter, measure
from otel_llm.processors.ratelimit import RateLimitedLogger

_rate_limited = RateLimitedLogger(logging.getLogger(__name__))


class FanOutSpanExporter(SpanExporter):
    """Exports each batch to every one of ``targets``; SUCCESS when all succeeded."""

    def __init__(self, targets: Sequence[SpanExporter]) -> None:
        self._targets = tuple(targets)

    @property
    def targets(self) -> tuple[SpanExporter, ...]:
        return self._targets

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        sizes: dict[Callable[[ReadableSpan], int], list[int]] = {}  # one estimate per batch, shared

        def export_to(target: SpanExporter) -> bool:
            if not isinstance(target, DeliveryExporter):
                return target.export(spans) is SpanExportResult.SUCCESS
            if target.size_of not in sizes:
                sizes[target.size_of] = measure(spans, target.size_of)
            return target.export_measured(spans, sizes[target.size_of]) is SpanExportResult.SUCCESS

        results = [_call(target, "export", export_to) for target in self._targets]
        return SpanExportResult.SUCCESS if all(results) else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return all([_call(target, "force_flush", lambda t: bool(t.force_flush(timeout_millis)))
                    for target in self._targets])

    def shutdown(self) -> None:
        for target in self._targets:
            _call(target, "shutdown", lambda t: t.shutdown() is None)


def _call(target: SpanExporter, what: str, call: Callable[[SpanExporter], bool]) -> bool:
    """``call(target)``; False, logged (rate-limited), when it raises, so the next target still runs."""
    try:
        return call(target)
    except Exception:
        _rate_limited.exception(f"otel-llm fan-out: {type(target).__name__} raised on {what}")
        return False
