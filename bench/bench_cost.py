"""What pricing LLM calls (otel_llm.processors.cost) costs per span, on the export thread.

The roll-up stage (window 0) in front of a no-op exporter, with and without a ``Pricer``, over the same
finished spans, per span, in CPU time of the calling thread (the export thread in production). Span kinds:
  plain  an HTTP server span: never priced (the pricer is not called for non-LLM spans);
  llm    an openai-v2-style chat span with input, output and cache-read token counts, one of three
         catalogue models, with its root span (so the roll-up also sums its cost); per LLM span. Its
         provider and model are already normalised, so without pricing the stage forwards it uncopied: the
         added cost includes one span copy;
  llm-copied  the same with the provider under the deprecated ``gen_ai.system``: the stage copies the span
         to normalise it anyway, so the added cost is the pricing alone.
The pricer is warmed first (its catalogue import and one lookup per model happen once per process). Each round
times both variants back to back in alternating order; reported: the median over rounds of each, and the
median of the per-round differences (the added cost), plus ``Pricer.cost`` alone per call. Ratios within one
run only.

Run: .venv/bin/python bench/bench_cost.py [--spans 2000] [--rounds 21]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Sequence

from bench_redact import NoOpExporter  # this script's directory is on sys.path
from bench_redact import finished_spans as redact_spans
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_llm import semconv
from otel_llm.processors.cost import Pricer
from otel_llm.processors.normalize import llm_call_of
from otel_llm.processors.rollup import RollupSpanExporter

MODELS = ("gpt-4o-mini", "gpt-4.1-nano", "gpt-4o")


def finished_spans(kind: str, count: int) -> list[ReadableSpan]:
    if kind == "plain":  # an HTTP server span with 10 attributes, as bench_redact's
        return redact_spans("plain", count)
    collected = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = provider.get_tracer("bench")
    for number in range(count):
        with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER):
            tracer.start_span(f"chat {MODELS[number % 3]}", attributes={
                semconv.GEN_AI_OPERATION_NAME: "chat",
                semconv.GEN_AI_SYSTEM if kind == "llm-copied" else semconv.GEN_AI_PROVIDER_NAME: "openai",
                semconv.GEN_AI_REQUEST_MODEL: MODELS[number % 3], semconv.GEN_AI_USAGE_INPUT_TOKENS: 1200,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 300 + number % 50,
                semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 1024}).end()
    provider.shutdown()
    return list(collected.get_finished_spans())


def _timed(stage: RollupSpanExporter, spans: list[ReadableSpan], per: int) -> float:
    gc.collect()
    started = time.thread_time_ns()
    stage.export(spans)
    stage.flush(everything=True)
    return (time.thread_time_ns() - started) / per / 1000


def measure(count: int, rounds: int, pricer: Pricer) -> list[dict]:
    results = []
    for kind in ("plain", "llm", "llm-copied"):
        spans = finished_spans(kind, count)
        per = count  # per LLM span (its root span comes with it) or per plain span
        bare = RollupSpanExporter(NoOpExporter(), window_s=0)
        priced = RollupSpanExporter(NoOpExporter(), window_s=0, pricer=pricer)
        base, staged = [], []
        for round_number in range(rounds):
            order = ((bare, base), (priced, staged))
            for stage, samples in (order if round_number % 2 == 0 else reversed(order)):
                samples.append(_timed(stage, spans, per))
        for stage in (bare, priced):
            stage.shutdown()
        results.append({
            "kind": kind, "bare_us": statistics.median(base), "priced_us": statistics.median(staged),
            "added_us": statistics.median(s - b for s, b in zip(staged, base, strict=True)),
        })
    return results


def pricer_alone(count: int, rounds: int, pricer: Pricer) -> float:
    calls = [(call, span.attributes) for span in finished_spans("llm", count)
             if (call := llm_call_of(span)) is not None]
    samples = []
    for _ in range(rounds):
        gc.collect()
        started = time.thread_time_ns()
        for call, attributes in calls:
            pricer.cost(call, attributes)
        samples.append((time.thread_time_ns() - started) / len(calls) / 1000)
    return statistics.median(samples)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=21)
    args = parser.parse_args(argv)
    pricer = Pricer()
    started = time.perf_counter()
    for span in finished_spans("llm", len(MODELS)):  # the catalogue import and one lookup per model, once
        call = llm_call_of(span)
        if call is not None:
            pricer.cost(call, {})
    warm_ms = (time.perf_counter() - started) * 1000
    print(f"Pricing on the export thread ({args.spans} spans, {args.rounds} rounds, µs/span, CPU time)\n")
    print("| span | roll-up stage | roll-up stage + pricing | added by pricing |")
    print("|---|---|---|---|")
    for row in measure(args.spans, args.rounds, pricer):
        print(f"| {row['kind']} | {row['bare_us']:.2f} | {row['priced_us']:.2f} | {row['added_us']:.2f} |")
    print(f"\nPricer.cost alone, per LLM call: {pricer_alone(args.spans, args.rounds, pricer):.2f} µs")
    print(f"First use (catalogue import + {len(MODELS)} lookups, wall time): {warm_ms:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
