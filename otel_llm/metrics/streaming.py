"""Token-stream metrics: the Eco2 agent's ``chat_stream_*`` instruments and the GenAI client chunk metrics.

Adds, per finished stream (never per token):

- ``chat_stream_tokens`` (counter, ``{token}``), ``chat_stream_requests`` (counter),
  ``chat_stream_duration`` (s), ``chat_stream_token_count`` (``{token}``), ``chat_stream_token_interval``
  (s, the stream's mean gap between tokens), labelled ``provider``, ``model``, ``node``, ``status`` and
  ``llm.experiment.arm`` (from baggage);
- ``chat_stream_active`` (up-down counter) while a stream is being read;
- ``chat_stream_token_latency`` (s) per token publish (the worker's Redis XADD, via ``publishing_stream``) and
  ``chat_stream_recovery`` per recovery attempt (``type``, ``status``);
- the semantic conventions' ``gen_ai.client.operation.time_to_first_chunk`` and ``time_per_output_chunk``
  for raw SDK streams (``record_chunk_metrics=True``); the LangChain instrumentation records those for
  LangChain streams, so the callback handler here leaves them off and one stream is never counted twice.

Cost: the sync and async iterator wrappers share one ``StreamTracker`` per stream and call its ``token``
per token (one clock read and a few field writes: about 0.15 us over a bare generator, see
bench/bench_streaming.py); everything is recorded once when the stream ends. The Eco2 agent's per-token
counter + histogram cost about 10 us a token. The price: ``chat_stream_token_interval`` and
``time_per_output_chunk`` hold one value per stream (its mean interval), not one per token.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar
from uuid import UUID

from opentelemetry import baggage, metrics
from opentelemetry.context import Context

from otel_llm import semconv

_logger = logging.getLogger(__name__)
T = TypeVar("T")

# Label keys of the Eco2 agent's chat_stream_* metrics (kept by name so its dashboards and alerts work).
LABEL_PROVIDER = "provider"
LABEL_MODEL = "model"
LABEL_NODE = "node"
LABEL_STATUS = "status"
LABEL_RECOVERY_TYPE = "type"

STATUS_SUCCESS = "success"
STATUS_ERROR = "error"
STATUS_CANCELLED = "cancelled"  # the consumer stopped reading before the stream ended
RECOVERY_CATCH_UP = "catch_up"  # chat_stream_recovery types: re-read the stream after a given position
RECOVERY_SNAPSHOT = "snapshot"  # read the answer so far in one piece
DEFAULT_NODE = "answer"

# Bucket boundaries: the Eco2 agent's for chat_stream_*, the GenAI semantic conventions' for the chunks.
TOKEN_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
TOKEN_INTERVAL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1.0)
DURATION_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)
TOKEN_COUNT_BUCKETS = (10, 50, 100, 200, 500, 1000, 2000)
TIME_TO_FIRST_CHUNK_BUCKETS = (
    0.01,
    0.02,
    0.04,
    0.08,
    0.16,
    0.32,
    0.64,
    1.28,
    2.56,
    5.12,
    10.24,
    20.48,
    40.96,
    81.92,
)
TIME_PER_OUTPUT_CHUNK_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)

METER_NAME = "otel_llm.streaming"
# publishing_stream times the first publish of a stream and every this many-th after it (1st, 129th, ...).
PUBLISH_SAMPLE_EVERY = 128


class StreamMetrics:
    """The instruments, created once per meter provider; share one instance across streams."""

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        if not callable(clock):
            raise ValueError("clock must be a callable returning seconds as a float")
        meter = metrics.get_meter(METER_NAME, meter_provider=meter_provider)
        self.clock = clock
        self.tokens = meter.create_counter("chat_stream_tokens", "{token}", "Tokens streamed")
        self.requests = meter.create_counter("chat_stream_requests", "{stream}", "Token streams finished")
        self.token_latency = meter.create_histogram(
            "chat_stream_token_latency",
            "s",
            "Latency of publishing one token (the worker's Redis XADD)",
            explicit_bucket_boundaries_advisory=TOKEN_LATENCY_BUCKETS,
        )
        self.token_interval = meter.create_histogram(
            "chat_stream_token_interval",
            "s",
            "Mean interval between tokens of one stream",
            explicit_bucket_boundaries_advisory=TOKEN_INTERVAL_BUCKETS,
        )
        self.duration = meter.create_histogram(
            "chat_stream_duration",
            "s",
            "Duration of one token stream",
            explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
        )
        self.token_count = meter.create_histogram(
            "chat_stream_token_count",
            "{token}",
            "Tokens in one stream",
            explicit_bucket_boundaries_advisory=TOKEN_COUNT_BUCKETS,
        )
        self.recovery = meter.create_counter(
            "chat_stream_recovery", "{attempt}", "Token stream recovery attempts"
        )
        self.active = meter.create_up_down_counter(
            "chat_stream_active", "{stream}", "Token streams being read"
        )
        self.time_to_first_chunk = meter.create_histogram(
            semconv.METRIC_TIME_TO_FIRST_CHUNK,
            "s",
            "Time to receive the first chunk of a streamed response",
            explicit_bucket_boundaries_advisory=TIME_TO_FIRST_CHUNK_BUCKETS,
        )
        self.time_per_output_chunk = meter.create_histogram(
            semconv.METRIC_TIME_PER_OUTPUT_CHUNK,
            "s",
            "Mean time per output chunk after the first, one value per stream",
            explicit_bucket_boundaries_advisory=TIME_PER_OUTPUT_CHUNK_BUCKETS,
        )

    def record_recovery(
        self, recovery_type: str, status: str = STATUS_SUCCESS, labels: Mapping[str, str] | None = None
    ) -> None:
        """One recovery attempt of a client re-reading a stream (``catch_up``, ``snapshot``), ``success`` or
        ``error``; ``labels`` are the stream's (:func:`stream_labels`: provider, model, node, experiment)."""
        try:
            self.recovery.add(
                1,
                {
                    **(labels if labels is not None else stream_labels()),
                    LABEL_RECOVERY_TYPE: str(recovery_type),
                    LABEL_STATUS: str(status),
                },
            )
        except Exception:
            _logger.debug("chat_stream_recovery not recorded", exc_info=True)


def _label(value: Any, default: str) -> str:
    text = semconv.normalize_model(value)  # strips, caps, turns non-strings into text
    return text if text is not None else default


# Baggage entries that become labels of every stream metric (bounded: an operator chooses both).
EXPERIMENT_LABELS = (semconv.EXPERIMENT_ID, semconv.EXPERIMENT_ARM)


def stream_labels(
    provider: Any = None, model: Any = None, node: Any = None, context: Context | None = None
) -> dict[str, str]:
    """The labels of one stream: normalised provider (implied by the model when missing), model, node, and
    the experiment id and arm from the baggage of ``context`` (default: the current one)."""
    model_name = semconv.normalize_model(model)
    provider_name = semconv.normalize_provider(provider) or semconv.provider_from_model(model_name)
    labels = {
        LABEL_PROVIDER: provider_name or semconv.UNKNOWN,
        LABEL_MODEL: model_name or semconv.UNKNOWN,
        LABEL_NODE: _label(node, DEFAULT_NODE),
    }
    for key in EXPERIMENT_LABELS:
        value = baggage.get_baggage(key, context)
        if value is not None:
            labels[key] = _label(value, semconv.UNKNOWN)
    return labels


class StreamTracker:
    """Aggregates one stream in plain fields and records every metric once, in :meth:`finish`.

    Construct it when the request is sent (time to first chunk counts from then), call :meth:`token` per
    token (cheap), :meth:`record_publish` per timed publish, and :meth:`finish` once. Not thread-safe: one
    stream is read by one consumer. Never raises into the caller.
    """

    __slots__ = (
        "_metrics",
        "clock",
        "_labels",
        "_record_chunk_metrics",
        "started",
        "first",
        "last",
        "count",
        "_active",
        "_finished",
    )

    def __init__(
        self,
        stream_metrics: StreamMetrics,
        labels: Mapping[str, str],
        *,
        record_chunk_metrics: bool = True,
        started: float | None = None,
    ) -> None:
        self._metrics = stream_metrics
        self.clock = stream_metrics.clock
        self._labels = dict(labels)
        self._record_chunk_metrics = record_chunk_metrics
        self.started = stream_metrics.clock() if started is None else started
        self.first: float | None = None
        self.last: float | None = None
        self.count = 0
        self._active = False
        self._finished = False

    def begin(self) -> None:
        """The consumer started reading: ``chat_stream_active`` goes up until :meth:`finish`."""
        if self._active or self._finished:
            return
        self._active = True
        try:
            self._metrics.active.add(1, self._labels)
        except Exception:
            _logger.debug("chat_stream_active not recorded", exc_info=True)

    def __enter__(self) -> Callable[[], None]:
        """The consumer starts reading (:meth:`begin`); gives :meth:`token`, to call per item."""
        self.begin()
        return self.token

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        """Records the stream: ``success`` when it ended, ``cancelled`` when the consumer stopped reading
        (``GeneratorExit``: it closed or dropped the generator), ``error`` when it raised (re-raised)."""
        if kind is None:
            self.finish(STATUS_SUCCESS)
        else:
            self.finish(STATUS_CANCELLED if issubclass(kind, GeneratorExit) else STATUS_ERROR)

    def token(self) -> None:
        """One token (chunk) arrived: counted; the stream becomes active at the first."""
        now = self.clock()
        if self.first is None:
            self.first = now
            self.begin()
        self.last = now
        self.count += 1

    def record_publish(self, seconds: float) -> None:
        """Latency of one token publish downstream (Redis XADD), which costs far more than this record."""
        try:
            self._metrics.token_latency.record(seconds, self._labels)
        except Exception:
            _logger.debug("chat_stream_token_latency not recorded", exc_info=True)

    def finish(self, status: str = STATUS_SUCCESS) -> None:
        """Records the stream once; later calls do nothing."""
        if self._finished:
            return
        self._finished = True
        try:
            self._record(status)
        except Exception:
            _logger.debug("stream metrics not recorded", exc_info=True)

    def _record(self, status: str) -> None:
        m = self._metrics
        labels = self._labels
        if self._active:
            m.active.add(-1, labels)
        ended = m.clock()
        with_status = {**labels, LABEL_STATUS: status}
        m.requests.add(1, with_status)
        m.duration.record(max(ended - self.started, 0.0), with_status)
        m.token_count.record(self.count, labels)
        if self.count:
            m.tokens.add(self.count, with_status)
        mean_interval = None
        if self.count > 1 and self.first is not None and self.last is not None:
            mean_interval = max(self.last - self.first, 0.0) / (self.count - 1)
            m.token_interval.record(mean_interval, labels)
        if not self._record_chunk_metrics or self.first is None:
            return
        chunk_labels = _chunk_labels(labels, status)
        m.time_to_first_chunk.record(max(self.first - self.started, 0.0), chunk_labels)
        if mean_interval is not None:
            m.time_per_output_chunk.record(mean_interval, chunk_labels)


def _chunk_labels(labels: Mapping[str, str], status: str) -> dict[str, str]:
    """The semantic conventions' attribute names for the GenAI client chunk metrics."""
    chunk = {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_PROVIDER_NAME: labels[LABEL_PROVIDER],
        semconv.GEN_AI_REQUEST_MODEL: labels[LABEL_MODEL],
        semconv.LANGGRAPH_NODE: labels[LABEL_NODE],
    }
    for key in EXPERIMENT_LABELS:
        if key in labels:
            chunk[key] = labels[key]
    if status == STATUS_ERROR:
        chunk[semconv.ERROR_TYPE] = "stream_error"
    return chunk


def _tracker(
    stream_metrics: StreamMetrics, provider: Any, model: Any, node: Any, record_chunk_metrics: bool
) -> StreamTracker:
    return StreamTracker(
        stream_metrics, stream_labels(provider, model, node), record_chunk_metrics=record_chunk_metrics
    )


def track_stream(
    iterable: Iterable[T],
    stream_metrics: StreamMetrics,
    *,
    provider: Any = None,
    model: Any = None,
    node: Any = None,
    record_chunk_metrics: bool = True,
) -> Iterator[T]:
    """Yields the items of ``iterable`` unchanged and records the stream's metrics when it ends.

    Call it right after sending the request: time to first chunk counts from this call. Status is
    ``success`` when the iterable is exhausted, ``error`` when it raises (the exception propagates),
    ``cancelled`` when the consumer stops early (closes the generator, or drops it).
    """
    return _tracked(iterable, _tracker(stream_metrics, provider, model, node, record_chunk_metrics))


def _tracked(iterable: Iterable[T], tracker: StreamTracker) -> Iterator[T]:
    with tracker as token:
        for item in iterable:
            token()
            yield item


def track_async_stream(
    iterable: AsyncIterable[T],
    stream_metrics: StreamMetrics,
    *,
    provider: Any = None,
    model: Any = None,
    node: Any = None,
    record_chunk_metrics: bool = True,
) -> AsyncIterator[T]:
    """The async twin of :func:`track_stream`, for ``async for`` token streams."""
    return _async_tracked(iterable, _tracker(stream_metrics, provider, model, node, record_chunk_metrics))


async def _async_tracked(iterable: AsyncIterable[T], tracker: StreamTracker) -> AsyncIterator[T]:
    with tracker as token:
        async for item in iterable:
            token()
            yield item


_default_metrics: StreamMetrics | None = None


def default_stream_metrics() -> StreamMetrics:
    """Instruments on the global meter provider (a proxy until one is set), created on first use."""
    global _default_metrics
    if _default_metrics is None:
        _default_metrics = StreamMetrics()
    return _default_metrics


@contextmanager
def publishing_stream(
    publish: Callable[[T], Any],
    *,
    provider: Any = None,
    model: Any = None,
    node: Any = None,
    stream_metrics: StreamMetrics | None = None,
) -> Iterator[Callable[[T], Any]]:
    """Wraps the function that publishes each token downstream (the worker's XADD) for one stream.

    Yields ``publish_token``: call it instead of ``publish`` per token; it counts the token and times the
    first publish and every ``PUBLISH_SAMPLE_EVERY``-th after it (``chat_stream_token_latency``: one histogram
    record costs ~10x the per-token budget, a sample of the publishes keeps the distribution at a fraction of
    it). Works for sync and async ``publish`` (an awaitable result is timed when awaited). The stream is
    recorded when the block ends: ``success``, or ``error`` when it raises. The GenAI chunk metrics are left
    to the LangChain instrumentation.
    """
    tracker = StreamTracker(
        stream_metrics or default_stream_metrics(),
        stream_labels(provider, model, node),
        record_chunk_metrics=False,
    )
    clock, record_publish = tracker.clock, tracker.record_publish
    # Per-token state in closure cells (cheaper than the tracker's attributes), handed over at the end.
    count = 0
    first = last = None

    async def timed(awaitable: Awaitable[Any], started: float) -> Any:
        try:
            return await awaitable
        finally:
            record_publish(clock() - started)

    def publish_token(entry: T) -> Any:
        nonlocal count, first, last
        last = clock()
        count += 1
        if count % PUBLISH_SAMPLE_EVERY != 1:
            return publish(entry)
        if count == 1:
            first = last
            tracker.begin()
        result = publish(entry)
        if inspect.isawaitable(result):
            return timed(result, last)
        record_publish(clock() - last)
        return result

    status = STATUS_ERROR
    try:
        yield publish_token
        status = STATUS_SUCCESS
    finally:
        tracker.first, tracker.last, tracker.count = first, last, count
        tracker.finish(status)


try:  # LangChain is an optional extra; the handler exists only when it is installed.
    from langchain_core.callbacks import BaseCallbackHandler
except ImportError:  # pragma: no cover - exercised only without the langgraph extra
    BaseCallbackHandler = None  # type: ignore[assignment,misc]


def _run_key(run_id: Any) -> Any:
    """The key a LangChain run is kept under: its UUID's integer (any other id as it is)."""
    return run_id.int if isinstance(run_id, UUID) else run_id


if BaseCallbackHandler is not None:

    class StreamingCallbackHandler(BaseCallbackHandler):
        """LangChain callbacks -> ``chat_stream_*`` metrics for every streamed chat model run.

        Reads provider, model and LangGraph node from the run's metadata (``ls_provider``, ``ls_model_name``,
        ``langgraph_node``). Leaves the GenAI chunk metrics to the LangChain instrumentation (one record per
        stream). Runs that never produce a token (not streamed) record nothing.
        """

        def __init__(self, stream_metrics: StreamMetrics) -> None:
            super().__init__()
            self._metrics = stream_metrics
            # Keyed by the run id's integer: a UUID key costs a Python-level __hash__/__eq__ per token.
            self._runs: dict[Any, StreamTracker] = {}

        def on_chat_model_start(
            self,
            serialized: dict[str, Any] | None,
            messages: Any,
            *,
            run_id: UUID,
            metadata: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            self._start(run_id, metadata)

        def on_llm_start(
            self,
            serialized: dict[str, Any] | None,
            prompts: Any,
            *,
            run_id: UUID,
            metadata: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            self._start(run_id, metadata)

        def on_llm_new_token(self, token: str, *, run_id: UUID, **kwargs: Any) -> None:
            # _run_key inlined: this runs per token, and a call costs more than the key itself.
            tracker = self._runs.get(run_id.int if isinstance(run_id, UUID) else run_id)
            if tracker is not None:
                tracker.token()

        def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id, STATUS_SUCCESS)

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            self._end(run_id, STATUS_ERROR)

        def _start(self, run_id: UUID, metadata: Mapping[str, Any] | None) -> None:
            try:
                meta = metadata if isinstance(metadata, Mapping) else {}
                labels = stream_labels(
                    meta.get("ls_provider"), meta.get("ls_model_name"), meta.get("langgraph_node")
                )
                self._runs[_run_key(run_id)] = StreamTracker(
                    self._metrics, labels, record_chunk_metrics=False
                )
            except Exception:
                _logger.debug("stream tracking not started", exc_info=True)

        def _end(self, run_id: UUID, status: str) -> None:
            tracker = self._runs.pop(_run_key(run_id), None)
            if tracker is not None and tracker.count:
                tracker.finish(status)
