"""Per-token overhead of the token-stream metrics, against the Eco2 agent's per-token counter + histogram.

Run: .venv/bin/python bench/bench_streaming.py [--tokens 1000] [--streams 200] [--repeat 5]

With a real SDK MeterProvider, each wrapper of otel-llm is timed against the same work without it:
- ``track_stream``: iterating an in-memory stream, against bare iteration;
- ``publishing_stream``: publishing each token through ``publish_token`` (the worker's XADD wrapper, with a
  no-op publish), against calling the publish function directly;
- ``StreamingCallbackHandler``: a LangChain chat run's start, one ``on_llm_new_token`` per token and its end,
  against the same calls on a handler that does nothing (LangChain's own dispatch is not counted: it is the
  same with or without the handler);
- the Eco2 agent: per token ``counter.add`` + ``histogram.record`` of the interval (its StreamMetricsTracker).
Prints the cost per token of a ``--tokens`` stream (the end-of-stream records amortised in: an upper bound of
what the 0.5 us budget is about) and the fixed cost of one stream (a one-token stream), best of ``--repeat``,
in the thread's CPU time (other processes on the box do not count).
"""

from __future__ import annotations

import argparse
import time
import uuid
from collections.abc import Callable

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_llm.metrics.streaming import (
    StreamingCallbackHandler,
    StreamMetrics,
    publishing_stream,
    track_stream,
)

LABELS = {"provider": "openai", "model": "gpt-4o-mini", "node": "answer"}
LANGCHAIN_METADATA = {"ls_provider": "openai", "ls_model_name": "gpt-4o-mini", "langgraph_node": "answer"}

Consume = Callable[[list[str], StreamMetrics], int]


def consume_raw(tokens: list[str], metrics: StreamMetrics) -> int:
    count = 0
    for _ in iter(tokens):
        count += 1
    return count


def consume_wrapped(tokens: list[str], metrics: StreamMetrics) -> int:
    count = 0
    for _ in track_stream(iter(tokens), metrics, **LABELS):
        count += 1
    return count


def _publish(entry: object) -> None:
    """The publish function of the publishing benchmarks: does nothing, so only the wrapper is timed."""


def publish_raw(tokens: list[str], metrics: StreamMetrics) -> int:
    for token in tokens:
        _publish(token)
    return len(tokens)


def publish_wrapped(tokens: list[str], metrics: StreamMetrics) -> int:
    with publishing_stream(_publish, stream_metrics=metrics, **LABELS) as publish_token:
        for token in tokens:
            publish_token(token)
    return len(tokens)


def _callback_run(handler: BaseCallbackHandler, tokens: list[str]) -> int:
    run_id = uuid.uuid4()
    handler.on_chat_model_start({}, [[]], run_id=run_id, metadata=LANGCHAIN_METADATA)
    for token in tokens:
        handler.on_llm_new_token(token, run_id=run_id)
    handler.on_llm_end(None, run_id=run_id)
    return len(tokens)


class _IdleHandler(BaseCallbackHandler):
    """A handler with the same methods doing nothing: what LangChain would call anyway."""

    def on_chat_model_start(self, serialized, messages, **kwargs) -> None:
        pass


_IDLE_HANDLER = _IdleHandler()


def callbacks_raw(tokens: list[str], metrics: StreamMetrics) -> int:
    return _callback_run(_IDLE_HANDLER, tokens)


_handlers: dict[int, StreamingCallbackHandler] = {}


def callbacks_wrapped(tokens: list[str], metrics: StreamMetrics) -> int:
    handler = _handlers.setdefault(id(metrics), StreamingCallbackHandler(metrics))
    return _callback_run(handler, tokens)


def consume_seed(tokens: list[str], metrics: StreamMetrics) -> int:
    labels = {"node": "answer", "status": "success"}
    interval_labels = {"provider": "openai"}
    clock = time.perf_counter
    last = clock()
    count = 0
    for _ in iter(tokens):
        now = clock()
        metrics.tokens.add(1, labels)
        metrics.token_interval.record(now - last, interval_labels)
        last = now
        count += 1
    return count


def best_ns_per_stream(consume: Consume, tokens: list[str], streams: int, repeat: int, metrics) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time_ns()
        for _ in range(streams):
            consume(tokens, metrics)
        best = min(best, (time.thread_time_ns() - started) / streams)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1000, help="tokens in one stream")
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    metrics = StreamMetrics(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    tokens = ["tok"] * args.tokens

    def over(consume: Consume, baseline: Consume, stream: list[str], streams: int) -> float:
        return best_ns_per_stream(consume, stream, streams, args.repeat, metrics) - best_ns_per_stream(
            baseline, stream, streams, args.repeat, metrics
        )

    wrappers = (
        ("track_stream", consume_wrapped, consume_raw),
        ("publishing_stream", publish_wrapped, publish_raw),
        ("StreamingCallbackHandler", callbacks_wrapped, callbacks_raw),
    )
    per_token = {
        name: over(wrapped, raw, tokens, args.streams) / args.tokens for name, wrapped, raw in wrappers
    }
    per_stream = {name: over(wrapped, raw, ["tok"], args.streams * 10) for name, wrapped, raw in wrappers}
    seed_token = over(consume_seed, consume_raw, tokens, max(1, args.streams // 10)) / args.tokens
    print(f"{args.tokens}-token streams, {args.streams} streams, best of {args.repeat}; over the same work")
    print("                           per token (end records included, budget 500 ns)   per stream (1 token)")
    for name, _, _ in wrappers:
        print(f"{name:26} {per_token[name]:9.1f} ns {'':38} {per_stream[name] / 1000:9.1f} us")
    print(f"{'seed counter + histogram':26} {seed_token:9.1f} ns")
    print(f"seed / track_stream per token: {seed_token / per_token['track_stream']:.1f}x")


if __name__ == "__main__":
    main()
