"""Per-token overhead of the token-stream metrics, against the seed's per-token counter + histogram.

Run: .venv/bin/python bench/bench_streaming.py [--tokens 1000] [--streams 200] [--repeat 5]

Three ways to consume the same in-memory stream of tokens with a real SDK MeterProvider:
- raw: iterate the list iterator directly (the floor);
- wrapped: ``track_stream`` (aggregate in the stream, record once at its end);
- seed: per token ``counter.add`` + ``histogram.record`` of the interval (the seed's StreamMetricsTracker).
Prints, over raw iteration, the cost per token of a ``--tokens`` stream (the end-of-stream records
amortised in: an upper bound of what the 0.5 us budget is about), the seed's per-token cost, and the fixed
cost of one stream (a one-token stream: the records at its end), best of ``--repeat``, in the thread's CPU
time (other processes on the box do not count).
"""

from __future__ import annotations

import argparse
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_llm.metrics.streaming import StreamMetrics, track_stream


def consume_raw(tokens: list[str], metrics: StreamMetrics) -> int:
    count = 0
    for _ in iter(tokens):
        count += 1
    return count


def consume_wrapped(tokens: list[str], metrics: StreamMetrics) -> int:
    count = 0
    for _ in track_stream(iter(tokens), metrics, provider="openai", model="gpt-4o-mini", node="answer"):
        count += 1
    return count


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


def best_ns_per_stream(
    consume, tokens: list[str], streams: int, repeat: int, metrics: StreamMetrics
) -> float:
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

    def over_raw(consume, stream: list[str], streams: int) -> float:
        return best_ns_per_stream(consume, stream, streams, args.repeat, metrics) - best_ns_per_stream(
            consume_raw, stream, streams, args.repeat, metrics
        )

    wrapped_token = over_raw(consume_wrapped, tokens, args.streams) / args.tokens
    seed_token = over_raw(consume_seed, tokens, max(1, args.streams // 10)) / args.tokens
    wrapped_stream = over_raw(consume_wrapped, ["tok"], args.streams * 10)
    print(
        f"{args.tokens}-token streams, {args.streams} streams, best of {args.repeat}; ns over raw iteration"
    )
    print(f"track_stream per token (end-of-stream records included): {wrapped_token:9.1f} ns (budget 500)")
    print(f"seed per-token counter + histogram:                      {seed_token:9.1f} ns")
    print(f"seed / track_stream:                                     {seed_token / wrapped_token:9.1f}x")
    print(f"track_stream fixed cost per stream (1-token stream):     {wrapped_stream / 1000:9.1f} us")


if __name__ == "__main__":
    main()
