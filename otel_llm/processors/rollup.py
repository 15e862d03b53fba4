"""The export-side roll-up stage: ancestors of LLM spans learn which providers and models served them.

``RollupSpanExporter`` wraps the real exporter inside the SDK's ``BatchSpanProcessor``, so every step below
runs on the export thread (or this stage's own flush thread), never on the application's:

1. Enrichment (``normalize``): every LLM span leaves with a normalised ``gen_ai.provider.name`` and
   ``gen_ai.request.model``; spans with LangSmith node metadata get ``llm.langgraph.node``.
2. Buffering: spans are held per trace. A trace is *ready* ``window_s`` after its first local root (parent
   None or remote: a SERVER or CONSUMER span, typically) reached this stage. The window catches LLM spans
   made after their ancestors ended (langsmith[otel] emits its spans ~0.25 s after the request returns, from
   another thread).
3. Roll-up: when a trace is flushed, each LLM call is added to every buffered ancestor, walking parent ids
   upwards from the LLM span; an ancestor that is itself an LLM span takes the nested call and ends the walk
   (the outer call already stands for it, so nothing is counted twice). Every ancestor with calls beneath
   gets the ``llm.rollup.*`` attributes (see docs/attributes.md); that includes the local root and the
   LangGraph graph and node spans. A walk that meets a parent which is not buffered (a span lost or still
   open) goes on at the trace's local root when the part holds exactly one, and is counted as re-rooted.
   Results do not depend on arrival order. With a ``pricer``, LLM spans also get their cost
   (``llm.usage.cost.*``) and ancestors its sum (``llm.rollup.cost.*``; otel_llm.processors.cost).
4. Forwarding: ready traces go to ``inner.export`` in one batch per call; the inner result is returned
   (configure() puts the delivery stage, ``otel_llm.exporters.delivery``, in between: it cuts the batch to
   the exporter's limits and retries failures). The ``on_llm_span`` hook (span-derived metrics) is called
   once per *outermost* LLM span, with the calls of the LLM spans nested beneath it, so one model call
   wrapped by two instrumentations is one call.

Memory is bounded: ``max_traces`` and ``max_buffered_spans`` (past either the oldest trace is flushed early,
counted as evicted), ``max_spans_per_trace`` (further non-root spans are forwarded at once, counted as
overflow), ``max_age_s`` (a trace whose root never arrives is flushed after this, counted as expired), and a
bounded set of recently flushed trace ids to recognise late spans: spans arriving after their trace was
flushed. Those are counted and buffered again as the trace's *late part*, which leaves once ``window_s``
passed without a new span of it (or its own local root's window passed); they roll up among themselves, so a
LangGraph run that ends after the request span left still gets its roll-up, and so does a worker's CONSUMER
span running in the API's process.

A span the stage cannot read (its attributes or context raise) is forwarded alone, unchanged; the rest of
its batch is handled as usual.

Cost: nothing on the application thread. On the export thread, a few dict operations per span plus one
attribute copy for each span that changes; flushing a trace is linear in its spans times the ancestor depth.
A buffered span holds about 2.8 KiB (the ended span the stage keeps alive; ~4.7 KiB with langsmith's
prompt and completion of 1 KB each: bench/bench_processors.py).
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_llm import semconv
from otel_llm.processors.cost import CostTotals, Pricer
from otel_llm.processors.normalize import (
    NO_CHANGE,
    LLMCall,
    attributes_of,
    enrichment,
    llm_call_of,
    with_attributes,
)
from otel_llm.processors.ratelimit import RateLimitedLogger

_logger = logging.getLogger(__name__)
_rate_limited = RateLimitedLogger(_logger)

# on_llm_span(span, call, nested): the outermost LLM span of a group, its call, and the calls nested beneath.
LLMSpanHook = Callable[[ReadableSpan, LLMCall, tuple[LLMCall, ...]], None]
# How many flushed trace ids are remembered to recognise late spans, at least, and per max_traces.
MIN_RECENT_TRACES = 1024
# The flush thread checks for ready traces this often: a quarter of the window, within these bounds.
MIN_TICK_S = 0.05
MAX_TICK_S = 1.0
# At most this many distinct providers (and models) are listed on one ancestor; past it the rest become one
# ``semconv.OTHER`` entry, so a pathological trace cannot make a huge attribute.
MAX_ROLLUP_VALUES = 16
_NO_TRACE = 0


class RollupStats(NamedTuple):
    """Counters of the roll-up stage (totals since start) and its current buffer size."""

    evicted_traces: int
    expired_traces: int
    late_spans: int
    overflow_spans: int
    buffered_traces: int
    buffered_spans: int
    rerooted_calls: int  # LLM calls rolled into the local root past an ancestor that was not buffered


@dataclass(slots=True)
class _Item:
    """One buffered span and what the stage knows of it (a slotted class: built for every span)."""

    span: ReadableSpan
    call: LLMCall | None
    enriched: Mapping[str, Any]  # the enrichment attributes (normalize.enrichment), computed on arrival
    span_id: int
    parent_id: int | None  # the local parent's span id; None for a local root (no parent, or a remote one)
    rolled: dict[str, Any] | None = None  # the llm.rollup.* attributes, set when the trace is released
    # The calls nested beneath this LLM span, for the hook; None when this LLM span is itself nested (the
    # hook sees it through its outermost LLM span).
    nested: tuple[LLMCall, ...] | None = ()


def _read(span: ReadableSpan, pricer: Pricer | None = None) -> tuple[int, _Item]:
    """The trace id and buffer entry of ``span``: everything the stage reads from it, read once.

    Raises whatever a broken span raises; nothing has been changed by then.
    """
    attributes = attributes_of(span)
    call = llm_call_of(span, attributes)
    if call is not None and pricer is not None:
        call = pricer.price(call, attributes)
    context = span.get_span_context()
    parent = span.parent
    item = _Item(
        span,
        call,
        enrichment(span, call, attributes),
        context.span_id if context is not None else 0,
        None if parent is None or parent.is_remote else parent.span_id,
    )
    return (context.trace_id if context is not None else _NO_TRACE), item


def _unchanged(span: ReadableSpan) -> _Item:
    """A buffer entry that forwards ``span`` as it came: no enrichment, no roll-up, no hook."""
    return _Item(span, None, NO_CHANGE, 0, None)


@dataclass
class _Trace:
    """The buffered spans of one trace (or of its late part, after an earlier part was flushed)."""

    first_seen: float
    late: bool = False  # an earlier part of this trace was already flushed
    last_seen: float = 0.0
    root_seen: float | None = None
    items: list[_Item] = field(default_factory=list)


@dataclass
class _Totals:
    """What the LLM calls beneath one ancestor add up to."""

    providers: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    calls: int = 0
    error_calls: int = 0
    tokens: dict[str, int] = field(default_factory=dict)  # roll-up attribute -> sum, for the counts reported
    costs: CostTotals | None = None  # only when the calls were priced

    def add(self, call: LLMCall) -> None:
        self.providers.add(call.provider)
        self.models.add(call.model)
        self.calls += 1
        self.error_calls += call.error_type is not None
        for key, field_name in _ROLLUP_TOKEN_FIELDS:
            count = getattr(call, field_name)
            if count is not None:
                self.tokens[key] = self.tokens.get(key, 0) + count
        if call.cost is not None:
            if self.costs is None:
                self.costs = CostTotals()
            self.costs.add(call.cost)

    def attributes(self) -> dict[str, Any]:
        providers = _bounded_sorted(self.providers)
        models = _bounded_sorted(self.models)
        rolled: dict[str, Any] = {
            semconv.ROLLUP_PROVIDERS: providers,
            semconv.ROLLUP_PROVIDER: ",".join(providers),
            semconv.ROLLUP_MODELS: models,
            semconv.ROLLUP_MODEL: ",".join(models),
            semconv.ROLLUP_CALLS: self.calls,
            semconv.ROLLUP_ERROR_CALLS: self.error_calls,
            semconv.ROLLUP_ERROR: self.error_calls > 0,
        }
        rolled.update(self.tokens)
        if self.costs is not None:
            rolled.update(self.costs.attributes())
        return rolled


# Roll-up attribute <- LLMCall field: the token sums (the details under their own llm.rollup.* names).
_ROLLUP_TOKEN_FIELDS: tuple[tuple[str, str], ...] = (
    (semconv.ROLLUP_INPUT_TOKENS, "input_tokens"),
    (semconv.ROLLUP_OUTPUT_TOKENS, "output_tokens"),
    (semconv.ROLLUP_CACHE_READ_INPUT_TOKENS, "cache_read_input_tokens"),
    (semconv.ROLLUP_CACHE_WRITE_INPUT_TOKENS, "cache_write_input_tokens"),
    (semconv.ROLLUP_REASONING_OUTPUT_TOKENS, "reasoning_output_tokens"),
)


def _bounded_sorted(values: set[str]) -> tuple[str, ...]:
    ordered = sorted(values)
    if len(ordered) <= MAX_ROLLUP_VALUES:
        return tuple(ordered)
    return (*ordered[: MAX_ROLLUP_VALUES - 1], semconv.OTHER)


class _Analysis(NamedTuple):
    """What releasing one trace part adds: roll-ups, the grouping of nested LLM calls, re-rooted calls."""

    rolled: dict[int, dict[str, Any]]  # span id -> llm.rollup.* attributes, for every ancestor with calls
    nested: dict[int, list[LLMCall]]  # outermost LLM span id -> the calls of the LLM spans nested beneath
    inner: set[int]  # ids of LLM spans nested beneath another LLM span
    rerooted_calls: int


def _analyse(items: Sequence[_Item], *, reroot: bool = True) -> _Analysis:
    """Roll the LLM calls in ``items`` (one trace part) up to their buffered ancestors.

    Each call walks up the parent ids. It is added to every ancestor met until the first one that is itself
    an LLM span (which takes it, standing for it above); the walk goes on without adding, to find the
    outermost LLM span of the group for the hook. A parent that is not buffered continues the walk at the
    part's local root when ``reroot`` and the part holds exactly one local root.
    """
    parent_of: dict[int, int | None] = {}
    llm_span_ids: set[int] = set()
    roots: list[int] = []
    for item in items:
        parent_of[item.span_id] = item.parent_id
        if item.call is not None:
            llm_span_ids.add(item.span_id)
        if item.parent_id is None:
            roots.append(item.span_id)
    only_root = roots[0] if reroot and len(roots) == 1 else None
    totals: dict[int, _Totals] = {}
    nested: dict[int, list[LLMCall]] = {}
    inner: set[int] = set()
    rerooted = 0
    for item in items:
        call = item.call
        if call is None:
            continue
        adding = True
        outermost = None
        ancestor = item.parent_id
        for _ in range(len(parent_of) + 1):  # bounded: a malformed parent cycle cannot loop forever
            if ancestor is None:
                break
            if ancestor not in parent_of:
                if only_root is None:
                    break
                ancestor = only_root  # the root's own parent is None, so this happens once per walk
                rerooted += adding
            if adding:
                totals.setdefault(ancestor, _Totals()).add(call)
            if ancestor in llm_span_ids:
                adding = False
                outermost = ancestor
            ancestor = parent_of[ancestor]
        if outermost is not None:
            inner.add(item.span_id)
            nested.setdefault(outermost, []).append(call)
    rolled = {span_id: total.attributes() for span_id, total in totals.items()}
    return _Analysis(rolled, nested, inner, rerooted)


class RollupSpanExporter(SpanExporter):
    """Enriches LLM spans and stamps LLM roll-ups on their ancestors, then forwards to ``inner``.

    Wrap it in ``RollupBatchSpanProcessor`` (or the SDK's ``BatchSpanProcessor``, whose ``force_flush`` does
    not reach this stage's buffer). ``on_llm_span(span, call, nested)`` is called once per outermost LLM
    span (one not beneath another LLM span of its buffered part), with the enriched span and the calls of
    the LLM spans nested beneath it (usually none), just before it is forwarded; nested LLM spans get no
    call of their own. Its exceptions are logged (rate-limited) and swallowed. ``pricer``
    (otel_llm.processors.cost) prices each LLM call: its cost on the span and summed on the roll-ups.
    """

    def __init__(
        self,
        inner: SpanExporter,
        *,
        window_s: float = 2.0,
        max_traces: int = 10000,
        max_spans_per_trace: int = 5000,
        max_buffered_spans: int = 50000,
        max_age_s: float = 60.0,
        on_llm_span: LLMSpanHook | None = None,
        pricer: Pricer | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not callable(getattr(inner, "export", None)):
            raise ValueError("inner must be a SpanExporter (an object with export())")
        if not (isinstance(window_s, (int, float)) and math.isfinite(window_s) and window_s >= 0):
            raise ValueError("window_s must be a finite number >= 0")
        if not (isinstance(max_age_s, (int, float)) and math.isfinite(max_age_s) and max_age_s > 0):
            raise ValueError("max_age_s must be a finite number > 0")
        for name, value in (("max_traces", max_traces), ("max_spans_per_trace", max_spans_per_trace),
                            ("max_buffered_spans", max_buffered_spans)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1")
        if on_llm_span is not None and not callable(on_llm_span):
            raise ValueError("on_llm_span must be callable or None")
        if not callable(clock):
            raise ValueError("clock must be callable")
        self._inner = inner
        self._window_s = float(window_s)
        self._max_traces = max_traces
        self._max_spans_per_trace = max_spans_per_trace
        self._max_buffered_spans = max_buffered_spans
        self._max_age_s = float(max_age_s)
        self._on_llm_span = on_llm_span
        self._pricer = pricer
        self._clock = clock
        self._recent_limit = max(MIN_RECENT_TRACES, max_traces)
        self._tick_s = min(MAX_TICK_S, max(MIN_TICK_S, self._window_s / 4))
        self._is_shut_down = False
        self._reset()
        if hasattr(os, "register_at_fork"):
            weak_reset = weakref.WeakMethod(self._reset)
            os.register_at_fork(after_in_child=lambda: (reset := weak_reset()) is not None and reset())

    def _reset(self) -> None:
        """Fresh buffers, counters, locks and no flush thread; also run in a forked child, where the parent's
        spans are the parent's to export, its locks may be held by threads that do not exist, and the flush
        thread did not survive (``export`` starts a new one)."""
        self._lock = threading.Lock()  # guards the buffer and counters
        self._export_lock = threading.Lock()  # serialises calls into the inner exporter
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Traces in first-seen order (eviction and expiry take from the front); roots in arrival order; late
        # parts in order of their last span's arrival.
        self._traces: OrderedDict[int, _Trace] = OrderedDict()
        self._roots: deque[tuple[float, int, _Trace]] = deque()
        self._late_parts: OrderedDict[int, _Trace] = OrderedDict()
        self._recent: OrderedDict[int, None] = OrderedDict()
        self._buffered_spans = 0
        self._evicted = self._expired = self._late = self._overflow = self._rerooted = 0

    # --- SpanExporter ---

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Buffer ``spans``, then forward every trace that is ready now (plus pass-through spans).

        Each span is forwarded once: a span the stage cannot read goes out alone, unchanged; if the stage
        itself fails, the spans it had not taken yet go out unchanged with what it had already released.
        """
        if self._is_shut_down:
            return SpanExportResult.FAILURE
        out: list[_Item] = []
        taken = 0
        try:
            self._ensure_thread()
            now = self._clock()
            with self._lock:
                for span in spans:
                    self._accept(span, now, out)
                    taken += 1
                self._take_ready(now, out, everything=False)
        except Exception:
            _rate_limited.exception("otel-llm roll-up failed; forwarding the rest of the batch unchanged")
            out.extend(_unchanged(span) for span in list(spans)[taken:])
        return self._forward(out)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Forward everything buffered now, windows ignored, then flush the inner exporter."""
        try:
            flushed = self.flush(everything=True) is SpanExportResult.SUCCESS
            return bool(self._inner.force_flush(timeout_millis)) and flushed
        except Exception:
            _rate_limited.exception("otel-llm roll-up force_flush failed")
            return False

    def shutdown(self) -> None:
        """Stop the flush thread, forward everything buffered, shut the inner exporter down. Idempotent."""
        if self._is_shut_down:
            return
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        try:
            self.flush(everything=True)
        except Exception:
            _rate_limited.exception("otel-llm roll-up flush at shutdown failed")
        self._is_shut_down = True
        try:
            self._inner.shutdown()
        except Exception:
            _rate_limited.exception("otel-llm roll-up: the inner exporter failed to shut down")

    # --- public helpers ---

    def flush(self, *, everything: bool = False) -> SpanExportResult:
        """Forward the traces that are ready now (all buffered traces with ``everything``)."""
        out: list[_Item] = []
        with self._lock:
            self._take_ready(self._clock(), out, everything=everything)
        return self._forward(out)

    @property
    def stats(self) -> RollupStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return RollupStats(
                evicted_traces=self._evicted,
                expired_traces=self._expired,
                late_spans=self._late,
                overflow_spans=self._overflow,
                buffered_traces=len(self._traces),
                buffered_spans=self._buffered_spans,
                rerooted_calls=self._rerooted,
            )

    # --- internals (callers hold self._lock unless said otherwise) ---

    def _accept(self, span: ReadableSpan, now: float, out: list[_Item]) -> None:
        try:
            trace_id, item = _read(span, self._pricer)
        except Exception:
            _rate_limited.exception("otel-llm roll-up could not read a span; forwarding it unchanged")
            out.append(_unchanged(span))
            return
        # From here on only the stage's own containers change: nothing below can fail half-way.
        if trace_id == _NO_TRACE:
            out.append(item)
            return
        trace = self._traces.get(trace_id)
        if trace is None:
            trace = self._traces[trace_id] = _Trace(first_seen=now, late=trace_id in self._recent)
            if len(self._traces) > self._max_traces:
                self._evict_oldest(out)
        if trace.late:
            self._late += 1
            trace.last_seen = now
            self._late_parts[trace_id] = trace
            self._late_parts.move_to_end(trace_id)
        is_root = item.parent_id is None
        if not is_root and len(trace.items) >= self._max_spans_per_trace:
            self._overflow += 1
            out.append(item)
            return
        trace.items.append(item)
        self._buffered_spans += 1
        if is_root and trace.root_seen is None:
            trace.root_seen = now
            self._roots.append((now, trace_id, trace))
            if len(self._roots) > 2 * self._max_traces:
                # Entries of evicted traces wait for their window; drop them early so the deque stays bounded.
                self._roots = deque(entry for entry in self._roots if self._traces.get(entry[1]) is entry[2])
        while self._buffered_spans > self._max_buffered_spans:
            self._evict_oldest(out)  # may be this very trace, when it is the only one

    def _evict_oldest(self, out: list[_Item]) -> None:
        oldest_id, oldest = self._traces.popitem(last=False)
        self._evicted += 1
        self._release(oldest_id, oldest, out)

    def _take_ready(self, now: float, out: list[_Item], *, everything: bool) -> None:
        if everything:
            while self._traces:
                trace_id, trace = self._traces.popitem(last=False)
                self._release(trace_id, trace, out)
            self._roots.clear()
            return
        while self._roots and now - self._roots[0][0] >= self._window_s:
            _, trace_id, trace = self._roots.popleft()
            if self._traces.get(trace_id) is trace:  # else already evicted or expired
                del self._traces[trace_id]
                self._release(trace_id, trace, out)
        self._release_due(self._late_parts, lambda trace: trace.last_seen, self._window_s, now, out)
        self._release_due(self._traces, lambda trace: trace.first_seen, self._max_age_s, now, out)

    def _release_due(
        self,
        ordered: OrderedDict[int, _Trace],
        since: Callable[[_Trace], float],
        limit_s: float,
        now: float,
        out: list[_Item],
    ) -> None:
        """Release traces from the front of ``ordered`` (sorted by ``since``) while ``limit_s`` has passed."""
        while ordered:
            trace_id, trace = next(iter(ordered.items()))
            if now - since(trace) < limit_s:
                break
            del self._traces[trace_id]
            if ordered is self._traces and trace.root_seen is None:
                self._expired += 1
            self._release(trace_id, trace, out)

    def _release(self, trace_id: int, trace: _Trace, out: list[_Item]) -> None:
        """Move a trace out of the buffer into ``out`` with its roll-ups, and remember it as flushed."""
        self._buffered_spans -= len(trace.items)
        self._late_parts.pop(trace_id, None)
        self._recent[trace_id] = None
        self._recent.move_to_end(trace_id)
        if len(self._recent) > self._recent_limit:
            self._recent.popitem(last=False)
        analysis = _analyse(trace.items, reroot=not trace.late)
        self._rerooted += analysis.rerooted_calls
        for item in trace.items:
            item.rolled = analysis.rolled.get(item.span_id)
            if item.span_id in analysis.inner:
                item.nested = None
            elif item.span_id in analysis.nested:
                item.nested = tuple(analysis.nested[item.span_id])
        out.extend(trace.items)

    def _forward(self, items: list[_Item]) -> SpanExportResult:
        """Enrich, call the hook, export to inner. Called without self._lock held."""
        if not items:
            return SpanExportResult.SUCCESS
        batch: list[ReadableSpan] = []
        hook = self._on_llm_span
        for item in items:
            extra = {**item.enriched, **item.rolled} if item.rolled else item.enriched
            try:
                enriched = with_attributes(item.span, extra)
            except Exception:
                _rate_limited.exception("otel-llm roll-up could not copy a span; forwarding it unchanged")
                enriched = item.span
            batch.append(enriched)
            if hook is not None and item.call is not None and item.nested is not None:
                try:
                    hook(enriched, item.call, item.nested)
                except Exception:
                    _rate_limited.exception("otel-llm on_llm_span hook failed")
        return self._export_to_inner(batch)

    def _export_to_inner(self, batch: list[ReadableSpan]) -> SpanExportResult:
        """The inner exporter's result; FAILURE (logged) when it raises. Never raises."""
        # The flush thread is ours, not the BSP's: suppress instrumentation of the exporter's own I/O here
        # too.
        try:
            with suppress_instrumentation(), self._export_lock:
                return self._inner.export(batch)
        except Exception:
            _rate_limited.exception("otel-llm roll-up: the inner exporter failed")
            return SpanExportResult.FAILURE

    def _ensure_thread(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive():
            return
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(
                target=self._run, args=(weakref.ref(self), self._stop, self._tick_s),
                name="otel-llm-rollup", daemon=True,
            )
            self._thread.start()

    @staticmethod
    def _run(ref: weakref.ref[RollupSpanExporter], stop: threading.Event, tick_s: float) -> None:
        # Holds only a weak reference between ticks, so an exporter dropped without shutdown can be collected.
        while not stop.wait(tick_s):
            exporter = ref()
            if exporter is None:
                return
            try:
                exporter.flush()
            except Exception:
                _rate_limited.exception("otel-llm roll-up flush thread failed")
            del exporter


class RollupBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's ``BatchSpanProcessor`` whose ``force_flush`` also empties the roll-up stage's buffer.

    ``BatchSpanProcessor.force_flush`` exports its queue but never calls the exporter's ``force_flush``, so
    without this a ``TracerProvider.force_flush()`` would leave spans waiting for their window. Other
    arguments (and the ``OTEL_BSP_*`` variables) are the SDK's.
    """

    def __init__(self, span_exporter: RollupSpanExporter, **batch_options: Any) -> None:
        if not isinstance(span_exporter, RollupSpanExporter):
            raise ValueError("span_exporter must be a RollupSpanExporter")
        super().__init__(span_exporter, **batch_options)
        self._rollup = span_exporter

    @property
    def rollup_stage(self) -> RollupSpanExporter:
        """The roll-up stage this processor feeds (for its ``stats``)."""
        return self._rollup

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        flushed = super().force_flush(timeout_millis)
        return self._rollup.force_flush(30000 if timeout_millis is None else timeout_millis) and flushed
