"""Per-token overhead of the token-stream metrics, against the seed's per-token counter + histogram.

Run: .venv/bin/python bench/bench_streaming.py [--tokens 1000] [--streams 200] [--repeat 5]

Three ways to consume the same in-memory stream of tokens with a real SDK MeterProvider:
- raw: iterate the list iterator directly (the floor);
- wrapped: ``track_stream`` (aggregate in the stream, record once at its end);
- seed: per token ``counter.add`` + ``histogram.record`` of the interval (the seed's StreamMetricsTracker).
Prints ns per token over raw for each (best of ``--repeat``), and the ratio seed/wrapped.
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


def best_ns_per_token(consume, tokens: list[str], streams: int, repeat: int, metrics: StreamMetrics) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter_ns()
        for _ in range(streams):
            consume(tokens, metrics)
        best = min(best, (time.perf_counter_ns() - started) / (streams * len(tokens)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    metrics = StreamMetrics(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    tokens = ["tok"] * args.tokens
    raw = best_ns_per_token(consume_raw, tokens, args.streams, args.repeat, metrics)
    wrapped = best_ns_per_token(consume_wrapped, tokens, args.streams, args.repeat, metrics)
    seed = best_ns_per_token(consume_seed, tokens, max(1, args.streams // 10), args.repeat, metrics)
    print(f"tokens/stream={args.tokens} streams={args.streams} repeat={args.repeat}")
    print(f"raw iteration          {raw:8.1f} ns/token")
    print(f"track_stream overhead  {wrapped - raw:8.1f} ns/token (budget 500)")
    print(f"seed per-token records {seed - raw:8.1f} ns/token")
    print(f"seed / track_stream    {(seed - raw) / max(wrapped - raw, 1e-9):8.1f}x")


if __name__ == "__main__":
    main()
