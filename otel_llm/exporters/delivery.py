"""Delivery to the real span exporter: calls within the receiver's limits, spans kept through outages, losses
counted.

``DeliveryExporter`` wraps the exporter at the end of otel-llm's span pipeline (OTLP, console, METRIC lines),
behind the roll-up stage when there is one. It adds nothing to spans; it decides how they reach the exporter:

- Limits. Each call into the wrapped exporter carries at most ``max_batch_spans`` spans
  (OTEL_BSP_MAX_EXPORT_BATCH_SIZE) and at most ``max_batch_bytes`` of estimated span data (``span_size``:
  text lengths plus fixed overheads, an over-estimate of the OTLP encoding for ASCII text), so one request
  stays under the 4 MiB a gRPC receiver accepts by default. A single span estimated above the byte bound
  would be refused whole: it is dropped and counted (``too_large``).
- Outages. A chunk the wrapped exporter fails (FAILURE, or an exception) waits in a bounded in-process queue
  and is tried again before anything newer, oldest first, every ``retry_interval_s``: at the next export, or
  by a retry thread that lives only while chunks wait (an idle app has no next export; without it the spans
  would wait until they expire), and at ``force_flush`` and ``shutdown``. Chunks made while older ones wait
  queue behind them, so spans leave in order. Bounds: at most ``retry_max_spans`` spans wait (past it the
  oldest chunk is dropped, ``retry_queue_full``; 0 means no retries, a failed chunk is dropped at once); a
  chunk that has waited ``retry_max_age_s`` is dropped instead of tried again (``export_failed``). Memory:
  about 3 KiB per waiting span (bench/bench_processors.py).
- Counting. Every span dropped here is reported to ``on_drop(count, reason)`` (configure() counts them in
  ``otel_llm.spans.dropped`` by ``error.type`` and logs the running count, rate-limited).

Cost: nothing on the application thread. On the export thread, per span: one size estimate (a few
``len()`` calls per attribute and event, ~2 µs for a 10-attribute span; made once per batch for all the
delivery stages behind a fan-out, ``export_measured``) and a list append; the retry queue is touched only
while an export is failing.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_llm._internals import attribute_dict, attributes_of
from otel_llm.processors.ratelimit import RateLimitedLogger

_rate_limited = RateLimitedLogger(logging.getLogger(__name__))

# Reasons a span is dropped here (the error.type of otel_llm.spans.dropped).
TOO_LARGE = "too_large"
RETRY_QUEUE_FULL = "retry_queue_full"
EXPORT_FAILED = "export_failed"
ALREADY_SHUTDOWN = "already_shutdown"

# The gRPC receiver's default request limit is 4 MiB; the bound leaves room for the resource, scope and
# framing of a request, and for non-ASCII text (counted in characters, encoded in up to 4 bytes).
DEFAULT_MAX_BATCH_BYTES = 2 * 1024 * 1024
DEFAULT_MAX_BATCH_SPANS = 512  # the SDK's OTEL_BSP_MAX_EXPORT_BATCH_SIZE default
DEFAULT_RETRY_MAX_SPANS = 16384
DEFAULT_RETRY_MAX_AGE_S = 120.0
DEFAULT_RETRY_INTERVAL_S = 1.0
# Estimated OTLP bytes of a span without its text (ids, times, kind, status, field tags), of one attribute
# besides its key and text, and of one event or link besides its name and attributes.
SPAN_OVERHEAD = 96
ATTRIBUTE_OVERHEAD = 12
EVENT_OVERHEAD = 24
NUMBER_SIZE = 9  # a number or bool value, encoded

DropHook = Callable[[int, str], None]


def _attributes_size(attributes: Any) -> int:
    if not attributes:
        return 0
    attributes = attribute_dict(attributes)
    size = ATTRIBUTE_OVERHEAD * len(attributes)
    for key, value in attributes.items():
        size += len(key)
        if type(value) is str:
            size += len(value)
        elif isinstance(value, (tuple, list)):
            size += sum(len(item) + 2 if isinstance(item, str) else NUMBER_SIZE for item in value)
        else:
            size += NUMBER_SIZE
    return size


def span_size(span: ReadableSpan) -> int:
    """An estimate of ``span``'s OTLP size in bytes: fixed overheads plus the length of every text in it."""
    size = SPAN_OVERHEAD + len(span.name) + _attributes_size(attributes_of(span))
    events = getattr(span, "_events", None)
    if events:
        for event in events:
            size += EVENT_OVERHEAD + len(event.name) + _attributes_size(event.attributes)
    links = getattr(span, "_links", None)
    if links:
        for link in links:
            size += EVENT_OVERHEAD + _attributes_size(link.attributes)
    return size


def measure(spans: Sequence[ReadableSpan], size_of: Callable[[ReadableSpan], int] = span_size) -> list[int]:
    """``size_of`` of each span, in order; 0 for a span it cannot read (its size cannot be guessed: the
    exporter decides)."""
    sizes = []
    for span in spans:
        try:
            sizes.append(size_of(span))
        except Exception:
            sizes.append(0)
    return sizes


class _Chunk(NamedTuple):
    spans: list[ReadableSpan]
    since: float  # when it was made: its age bounds how long it may wait


class DeliveryExporter(SpanExporter):
    """Hands spans to ``inner`` in bounded chunks; keeps failed chunks for a later try; counts what it drops.

    ``export`` returns SUCCESS when nothing is left waiting, FAILURE when a chunk waits for a later try (the
    spans are kept either way, until a bound drops them).
    """

    def __init__(
        self,
        inner: SpanExporter,
        *,
        max_batch_spans: int = DEFAULT_MAX_BATCH_SPANS,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        retry_max_spans: int = DEFAULT_RETRY_MAX_SPANS,
        retry_max_age_s: float = DEFAULT_RETRY_MAX_AGE_S,
        retry_interval_s: float = DEFAULT_RETRY_INTERVAL_S,
        on_drop: DropHook | None = None,
        size_of: Callable[[ReadableSpan], int] = span_size,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not callable(getattr(inner, "export", None)):
            raise ValueError("inner must be a SpanExporter (an object with export())")
        for name, value, minimum in (("max_batch_spans", max_batch_spans, 1),
                                     ("max_batch_bytes", max_batch_bytes, 1),
                                     ("retry_max_spans", retry_max_spans, 0)):
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise ValueError(f"{name} must be an integer >= {minimum}")
        for name, value in (("retry_max_age_s", retry_max_age_s), ("retry_interval_s", retry_interval_s)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0")
        self._inner = inner
        self._max_spans = max_batch_spans
        self._max_bytes = max_batch_bytes
        self._retry_max_spans = retry_max_spans
        self._retry_max_age_s = float(retry_max_age_s)
        self._retry_interval_s = float(retry_interval_s)
        self._on_drop = on_drop
        self._size_of = size_of
        self._clock = clock
        self._is_shut_down = False
        self._reset()
        if hasattr(os, "register_at_fork"):
            weak_reset = weakref.WeakMethod(self._reset)
            os.register_at_fork(after_in_child=lambda: (reset := weak_reset()) is not None and reset())

    def _reset(self) -> None:
        """An empty queue and a fresh lock; also run in a forked child, where the waiting spans are the
        parent's to send and the lock may be held by a thread that does not exist."""
        self._lock = threading.Lock()  # the queue, and one call into inner at a time
        self._waiting: deque[_Chunk] = deque()
        self._waiting_spans = 0
        self._next_try = -math.inf
        self._stop = threading.Event()  # set by shutdown: the retry thread ends
        self._retrier: threading.Thread | None = None  # runs only while chunks wait

    @property
    def inner(self) -> SpanExporter:
        """The exporter this stage delivers to."""
        return self._inner

    @property
    def size_of(self) -> Callable[[ReadableSpan], int]:
        """The size estimate the byte bound is checked with."""
        return self._size_of

    @property
    def waiting_spans(self) -> int:
        """Spans kept for a later try now."""
        return self._waiting_spans

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.export_measured(spans, measure(spans, self._size_of))

    def export_measured(self, spans: Sequence[ReadableSpan], sizes: Sequence[int]) -> SpanExportResult:
        """``export`` with each span's ``size_of`` already known (``measure``): the fan-out measures a batch
        once for every delivery stage behind it."""
        if self._is_shut_down:
            self._drop(len(spans), ALREADY_SHUTDOWN)
            return SpanExportResult.FAILURE
        now = self._clock()
        with self._lock:
            delivering = self._retry(force=False) is SpanExportResult.SUCCESS  # at once when nothing waits
            for chunk in self._chunks(spans, sizes):
                if delivering and self._send(chunk) is SpanExportResult.SUCCESS:
                    continue
                if delivering:
                    delivering = False
                    self._next_try = self._clock() + self._retry_interval_s
                self._keep(_Chunk(chunk, now))
            return SpanExportResult.SUCCESS if delivering else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Try every waiting chunk now, then flush ``inner``; True when nothing waits any more."""
        with self._lock:
            delivered = self._retry(force=True) is SpanExportResult.SUCCESS
        try:
            return bool(self._inner.force_flush(timeout_millis)) and delivered
        except Exception:
            _rate_limited.exception("otel-llm delivery: the exporter's force_flush failed")
            return False

    def shutdown(self) -> None:
        """One last try of the waiting chunks (what still fails is dropped, counted), then shut ``inner``."""
        if self._is_shut_down:
            return
        with self._lock:
            self._retry(force=True)
            for chunk in self._waiting:
                self._drop(len(chunk.spans), EXPORT_FAILED)
            self._waiting.clear()
            self._waiting_spans = 0
            self._is_shut_down = True
            self._stop.set()
        try:
            self._inner.shutdown()
        except Exception:
            _rate_limited.exception("otel-llm delivery: the exporter failed to shut down")

    # --- internals (callers hold self._lock) ---

    def _chunks(self, spans: Sequence[ReadableSpan], sizes: Sequence[int]) -> Iterator[list[ReadableSpan]]:
        """``spans`` in order, cut at ``max_batch_spans`` spans or ``max_batch_bytes`` of their ``sizes``."""
        chunk: list[ReadableSpan] = []
        size = 0
        for span, span_bytes in zip(spans, sizes, strict=True):
            if span_bytes > self._max_bytes:
                self._drop(1, TOO_LARGE)
                continue
            if chunk and (len(chunk) >= self._max_spans or size + span_bytes > self._max_bytes):
                yield chunk
                chunk, size = [], 0
            chunk.append(span)
            size += span_bytes
        if chunk:
            yield chunk

    def _send(self, chunk: list[ReadableSpan]) -> SpanExportResult:
        try:
            return self._inner.export(chunk)
        except Exception:
            _rate_limited.exception("otel-llm delivery: the exporter raised; the spans wait for a later try")
            return SpanExportResult.FAILURE

    def _keep(self, chunk: _Chunk) -> None:
        self._waiting.append(chunk)
        self._waiting_spans += len(chunk.spans)
        if self._retrier is None and self._retry_max_spans:
            self._retrier = threading.Thread(target=self._retry_while_waiting, name="otel-llm-delivery-retry",
                                             daemon=True)
            self._retrier.start()
        while self._waiting_spans > self._retry_max_spans:
            oldest = self._waiting.popleft()
            self._waiting_spans -= len(oldest.spans)
            self._drop(len(oldest.spans), RETRY_QUEUE_FULL)

    def _retry_while_waiting(self) -> None:
        """The retry thread: every ``retry_interval_s`` try the waiting chunks; end when none waits (or at
        shutdown). It takes the lock like an export, so exports and retries never overlap."""
        while not self._stop.wait(self._retry_interval_s):
            with self._lock:
                if not self._waiting or self._is_shut_down:
                    self._retrier = None
                    return
                try:
                    self._retry(force=False)
                except Exception:
                    _rate_limited.exception("otel-llm delivery: a retry failed; the spans keep waiting")

    def _retry(self, *, force: bool) -> SpanExportResult:
        """Send the waiting chunks oldest first, until one fails (then wait ``retry_interval_s``)."""
        now = self._clock()
        if not force and now < self._next_try:
            return SpanExportResult.FAILURE if self._waiting else SpanExportResult.SUCCESS
        while self._waiting:
            chunk = self._waiting[0]
            if now - chunk.since > self._retry_max_age_s:
                self._waiting.popleft()
                self._waiting_spans -= len(chunk.spans)
                self._drop(len(chunk.spans), EXPORT_FAILED)
                continue
            if self._send(chunk.spans) is not SpanExportResult.SUCCESS:
                self._next_try = self._clock() + self._retry_interval_s
                return SpanExportResult.FAILURE
            self._waiting.popleft()
            self._waiting_spans -= len(chunk.spans)
        return SpanExportResult.SUCCESS

    def _drop(self, count: int, reason: str) -> None:
        if self._on_drop is None or not count:
            return
        try:
            self._on_drop(count, reason)
        except Exception:
            _rate_limited.exception("otel-llm delivery: counting dropped spans failed")
