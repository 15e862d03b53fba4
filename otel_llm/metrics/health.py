"""Health of otel-llm's own span pipeline: dropped spans and roll-up counters, as observable metrics.

Every span the pipeline loses is counted, by reason, in a ``DropCounter``: one for the batch processor, one
for the redaction stage and one per exporter's delivery stage:

- The SDK's BatchSpanProcessor drops a span when its queue (OTEL_BSP_MAX_QUEUE_SIZE) is full, logging only
  "Queue full, dropping Span." (at most every 20 s) and counting nowhere by default; its own check races
  with the export thread (a span counted as dropped may still be queued, and the queue then silently drops
  its oldest span). ``count_dropped_spans`` wraps the processor's internal ``emit``: under one lock it drops
  (and counts) a span only when the queue is full, else hands it on, so the count is exact; other drops
  (``already_shutdown``) come from the processor's drop notification. ONE warning per processor names
  OTEL_BSP_MAX_QUEUE_SIZE. If the SDK's internals change, it warns once that drops cannot be counted and
  leaves the processor alone.
- The delivery stage (``otel_llm.exporters.delivery``) reports the spans it gives up on (``export_failed``,
  ``retry_queue_full``, ``too_large``, ``already_shutdown``); each reason is logged with the running count,
  at most once a minute.

``register_pipeline_metrics`` publishes, on a meter of otel-llm's MeterProvider:

- ``otel_llm.spans.dropped`` (observable counter, ``{span}``, attribute ``error.type``: ``queue_full`` or
  ``already_shutdown`` from the batch processors, ``export_failed``, ``retry_queue_full`` or ``too_large``
  from the delivery stage, which adds ``otel.component.name`` (``<exporter type>/<index>``, one per configured
  exporter: a span too large for three exporters is three drops, one per exporter), ``redaction_failed`` from
  the redaction stage, ``metric_line_failed`` from the METRIC line exporter);
- ``otel_llm.rollup.evicted_traces``, ``.expired_traces`` (``{trace}``), ``.late_spans``,
  ``.overflow_spans`` (``{span}``), ``.rerooted_calls`` (``{call}``) (observable counters) and
  ``otel_llm.rollup.buffered_traces``, ``.buffered_spans`` (observable up-down counters), summed over the
  roll-up stages.

Cost: one uncontended lock and a length check per ended span (application thread, ~0.2 us); the callbacks
run at metric collection.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from otel_llm import semconv
from otel_llm.processors.ratelimit import RateLimitedLogger
from otel_llm.processors.rollup import RollupStats

_logger = logging.getLogger(__name__)
_rate_limited = RateLimitedLogger(_logger)

METER_NAME = "otel_llm.pipeline"
DROPPED_SPANS_METRIC = "otel_llm.spans.dropped"
QUEUE_FULL = "queue_full"
REDACTION_FAILED = "redaction_failed"  # otel_llm.processors.redact: a span it could not read, not exported
METRIC_LINE_FAILED = "metric_line_failed"  # otel_llm.exporters.metric_log: a span it could not write
# Why the spans of each other reason were lost, and what to change (the rate-limited log says it).
DROP_ADVICE: dict[str, str] = {
    "export_failed": "the exporter kept failing for OTEL_LLM_EXPORT_RETRY_MAX_AGE_MS",
    "retry_queue_full": "the exporter failed longer than OTEL_LLM_EXPORT_RETRY_MAX_SPANS spans could wait",
    "too_large": "one span was larger than OTEL_LLM_EXPORT_MAX_BATCH_BYTES",
    "already_shutdown": "spans ended after the pipeline shut down",
    REDACTION_FAILED: "spans the redaction stage could not read were not exported",
    METRIC_LINE_FAILED: "spans the METRIC line exporter could not write",
}
# RollupStats field -> (metric name, unit, monotonic counter?)
ROLLUP_METRICS: dict[str, tuple[str, str, bool]] = {
    "evicted_traces": ("otel_llm.rollup.evicted_traces", "{trace}", True),
    "expired_traces": ("otel_llm.rollup.expired_traces", "{trace}", True),
    "late_spans": ("otel_llm.rollup.late_spans", "{span}", True),
    "overflow_spans": ("otel_llm.rollup.overflow_spans", "{span}", True),
    "buffered_traces": ("otel_llm.rollup.buffered_traces", "{trace}", False),
    "buffered_spans": ("otel_llm.rollup.buffered_spans", "{span}", False),
    "rerooted_calls": ("otel_llm.rollup.rerooted_calls", "{call}", True),
}


class HasRollupStats(Protocol):
    """A roll-up stage, or anything else with a ``stats`` snapshot."""

    @property
    def stats(self) -> RollupStats: ...


class DropCounter:
    """Dropped-span counts by reason for one stage; warns once on the first full queue. ``component`` names
    the exporter a delivery stage drops for (``otel.component.name``), so a span lost for one of several
    exporters is told apart from one lost for all."""

    def __init__(self, max_queue_size: int | None = None, component: str | None = None):
        self.max_queue_size = max_queue_size  # named in the full-queue warning
        self.component = component
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, count: int, reason: str) -> None:
        with self._lock:
            first_full = reason == QUEUE_FULL and QUEUE_FULL not in self._counts
            total = self._counts[reason] = self._counts.get(reason, 0) + count
        if first_full:
            _logger.warning(
                "otel-llm: the span queue is full (OTEL_BSP_MAX_QUEUE_SIZE=%s), spans are being dropped. "
                "Raise OTEL_BSP_MAX_QUEUE_SIZE or check the exporter; drops are counted in %s.",
                self.max_queue_size, DROPPED_SPANS_METRIC,
            )
        elif reason != QUEUE_FULL:
            _rate_limited.warning(
                f"otel-llm: %d spans dropped so far ({reason}: {DROP_ADVICE.get(reason, 'see the logs')}); "
                f"counted in {DROPPED_SPANS_METRIC}", total)

    def counts(self) -> dict[str, int]:
        """Drops so far, by reason."""
        with self._lock:
            return dict(self._counts)


class _CountingProcessorMetrics:
    """Stands in for the SDK's processor-metrics object: counts drops, then passes every call on."""

    def __init__(self, inner: Any, counter: DropCounter):
        self._inner = inner
        self._counter = counter

    def drop_items(self, count: int, error_type: str = QUEUE_FULL) -> None:
        if error_type != QUEUE_FULL:  # full queues are counted by _ExactQueue, before the SDK's own check
            self._counter.add(count, error_type)
        self._inner.drop_items(count, error_type)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _ExactQueue:
    """Stands in for the batch processor's ``emit``: a span meeting a full queue is dropped here, counted;
    the check and the hand-over hold one lock, so no other producer fills the queue in between (the export
    thread only empties it)."""

    def __init__(self, batch: Any, counter: DropCounter):
        self._batch = batch
        self._emit = batch.emit
        self._counter = counter
        self._lock = threading.Lock()
        if hasattr(os, "register_at_fork"):  # a forked child must not inherit a lock held by a parent thread
            weak_self = weakref.ref(self)
            os.register_at_fork(after_in_child=lambda: (me := weak_self()) is not None and me._new_lock())

    def _new_lock(self) -> None:
        self._lock = threading.Lock()

    def __call__(self, span: Any) -> None:
        batch = self._batch
        with self._lock:
            if len(batch._queue) >= batch._max_queue_size and not batch._shutdown:
                self._counter.add(1, QUEUE_FULL)
                return
            self._emit(span)


def count_dropped_spans(
    processor: BatchSpanProcessor, counter: DropCounter | None = None
) -> DropCounter | None:
    """Count ``processor``'s dropped spans (in ``counter``, or a new one); None, with a warning, if this SDK's
    internals do not allow it."""
    batch = getattr(processor, "_batch_processor", None)
    inner_metrics = getattr(batch, "_metrics", None)
    if (inner_metrics is None or not callable(getattr(inner_metrics, "drop_items", None))
            or not all(hasattr(batch, name) for name in ("_queue", "_max_queue_size", "_shutdown", "emit"))):
        _logger.warning("otel-llm: this OpenTelemetry SDK version does not let dropped spans be counted")
        return None
    counter = counter if counter is not None else DropCounter()
    counter.max_queue_size = getattr(batch, "_max_queue_size", None)
    batch._metrics = _CountingProcessorMetrics(inner_metrics, counter)
    batch.emit = _ExactQueue(batch, counter)
    return counter


def _drop_attributes(reason: str, component: str | None) -> dict[str, str]:
    if component is None:
        return {semconv.ERROR_TYPE: reason}
    return {semconv.ERROR_TYPE: reason, semconv.OTEL_COMPONENT_NAME: component}


def register_pipeline_metrics(
    meter_provider: MeterProvider,
    drop_counters: Sequence[DropCounter],
    rollup_stages: Sequence[HasRollupStats],
) -> None:
    """Publish dropped spans and roll-up counters as observable instruments on ``meter_provider``."""
    meter = meter_provider.get_meter(METER_NAME)
    drop_counters = tuple(drop_counters)
    rollup_stages = tuple(rollup_stages)

    def observe_drops(_options: CallbackOptions) -> Iterable[Observation]:
        totals: dict[tuple[str, str | None], int] = {(QUEUE_FULL, None): 0}
        for counter in drop_counters:
            for reason, count in counter.counts().items():
                key = (reason, counter.component)
                totals[key] = totals.get(key, 0) + count
        return [Observation(count, _drop_attributes(reason, component))
                for (reason, component), count in totals.items()]

    meter.create_observable_counter(
        DROPPED_SPANS_METRIC, [observe_drops], "{span}",
        "Spans the batch span processor dropped (full queue, or ended after shutdown)",
    )
    if not rollup_stages:
        return
    for field_name, (metric_name, unit, monotonic) in ROLLUP_METRICS.items():
        callback = _stats_callback(rollup_stages, field_name)
        create = meter.create_observable_counter if monotonic else meter.create_observable_up_down_counter
        create(metric_name, [callback], unit, f"otel-llm roll-up stage: {field_name.replace('_', ' ')}")


def _stats_callback(stages: Sequence[HasRollupStats], field_name: str):
    def observe(_options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(sum(getattr(stage.stats, field_name) for stage in stages))]

    return observe
