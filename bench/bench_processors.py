"""Cost of otel-llm's span processors: µs per span on the application thread, for the whole process, and on
the export thread.

Application thread: the bare SDK (TracerProvider + BatchSpanProcessor with a no-op exporter) against the same
plus otel-llm's whole chain (BaggageAttributesProcessor +
RollupBatchSpanProcessor(RollupSpanExporter(no-op))), for
  (a) a plain non-LLM span with no allowlisted baggage,
  (b) the same with 2 allowlisted baggage entries in the context,
  (b') the same, spans alternating between two requests' baggage (concurrent requests: each span's baggage
       differs from the previous span's),
  (c) an LLM span (langsmith-style attributes) under 3 open ancestors (it rolls up into them at export).
The batch queue is sized so the export thread stays asleep during a timed loop (it flushes between loops), and
loops are timed in CPU time of the application thread (``time.thread_time_ns``), so other processes on a
shared machine do not count. Variants are interleaved, each round runs both in alternating order. The best
(minimum) loop of each variant is the most stable estimate of its cost, so "added" is
min(otel-llm) - min(bare); the medians and the median of the per-round differences are printed beside it.

Process: the same loops timed in the CPU time of the whole process (``time.process_time_ns``) from the loop's
start until the flush after it returned, so the export thread's work for those spans (the batch processor,
the roll-up stage's enrichment and buffering, the no-op export) counts too. Best loop, per span.

Export thread: RollupSpanExporter.export (window 0, so enrichment and roll-up happen in the call) over
finished spans, against the no-op exporter alone, per span.

Run: .venv/bin/python bench/bench_processors.py [--spans 1000] [--rounds 41]
"""

from __future__ import annotations

import argparse
import functools
import gc
import statistics
import sys
import time
from collections.abc import Callable, Sequence

from opentelemetry import baggage, context, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_llm import semconv
from otel_llm.processors.baggage import BaggageAttributesProcessor
from otel_llm.processors.rollup import RollupBatchSpanProcessor, RollupSpanExporter

TARGETS_US = {"a": 1.0, "b": 3.0, "b'": 3.0, "c": 6.0}
LLM_ATTRIBUTES = {
    semconv.LANGSMITH_SPAN_KIND: "llm",
    semconv.GEN_AI_OPERATION_NAME: "chat",
    semconv.GEN_AI_SYSTEM: "anthropic",
    semconv.GEN_AI_REQUEST_MODEL: "anthropic.claude-3-haiku-20240307-v1:0",
    semconv.LANGSMITH_LS_PROVIDER: "amazon_bedrock",
    semconv.GEN_AI_USAGE_INPUT_TOKENS: 120,
    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 40,
}


class NoOpExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def bare_provider(queue_size: int) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(_quiet_bsp(BatchSpanProcessor, NoOpExporter(), queue_size))
    return provider


def otel_llm_provider(queue_size: int) -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(BaggageAttributesProcessor())
    stage = RollupSpanExporter(NoOpExporter())
    provider.add_span_processor(_quiet_bsp(RollupBatchSpanProcessor, stage, queue_size))
    return provider


def _quiet_bsp(cls, exporter, queue_size: int):
    # One batch as large as the queue and a long delay: the export thread sleeps through a timed loop.
    return cls(
        exporter, max_queue_size=queue_size, max_export_batch_size=queue_size, schedule_delay_millis=600_000
    )


def plain_loop(tracer: trace.Tracer, count: int) -> None:
    for _ in range(count):
        tracer.start_span("work").end()


def llm_loop(tracer: trace.Tracer, count: int) -> None:
    for _ in range(count):
        tracer.start_span("ChatBedrock", attributes=LLM_ATTRIBUTES).end()


Scenario = tuple[str, str, Callable[[trace.Tracer, int], None], Callable[[trace.Tracer], list]]


def no_setup(tracer: trace.Tracer) -> list:
    return [context.attach(Context())]


def request_baggage(arm: str, session_id: str) -> Context:
    """A request's context: 2 allowlisted baggage entries and one other."""
    ctx = baggage.set_baggage(semconv.EXPERIMENT_ARM, arm, Context())
    ctx = baggage.set_baggage(semconv.SESSION_ID, session_id, ctx)
    return baggage.set_baggage("not.allowlisted", "x", ctx)


def two_baggage_entries(tracer: trace.Tracer) -> list:
    return [context.attach(request_baggage("aws.bedrock:claude-3-haiku", "session-0123456789"))]


@functools.cache
def two_requests() -> tuple[Context, Context]:
    """Two concurrent requests' contexts, made once: a request keeps one baggage for all its spans."""
    return (request_baggage("aws.bedrock:claude-3-haiku", "session-0123456789"),
            request_baggage("openai:gpt-4o-mini", "session-9876543210"))


def alternating_requests_loop(tracer: trace.Tracer, count: int) -> None:
    first, second = two_requests()
    for index in range(count):
        tracer.start_span("work", context=second if index & 1 else first).end()


def three_open_ancestors(tracer: trace.Tracer) -> list:
    tokens = [context.attach(Context())]
    for name in ("POST /api/v1/chat", "LangGraph", "answer"):
        span = tracer.start_span(name)
        tokens.append(context.attach(trace.set_span_in_context(span)))
    return tokens


SCENARIOS: list[Scenario] = [
    ("a", "plain span, no allowlisted baggage", plain_loop, no_setup),
    ("b", "plain span, 2 allowlisted baggage entries", plain_loop, two_baggage_entries),
    ("b'", "plain span, 2 entries, two requests' baggage alternating", alternating_requests_loop, no_setup),
    ("c", "LLM span under 3 open ancestors", llm_loop, three_open_ancestors),
]


def time_once(provider: TracerProvider, loop, setup, count: int) -> tuple[float, float]:
    """µs per span for one loop: (application thread CPU, process CPU until the flush after it)."""
    tracer = provider.get_tracer("bench")
    tokens = setup(tracer)
    gc.collect()
    process_started = time.process_time_ns()
    started = time.thread_time_ns()
    loop(tracer, count)
    elapsed = time.thread_time_ns() - started
    for token in reversed(tokens):
        context.detach(token)
    provider.force_flush()
    process_elapsed = time.process_time_ns() - process_started
    return elapsed / count / 1000, process_elapsed / count / 1000


def application_thread(count: int, rounds: int) -> list[dict]:
    results = []
    providers = {"bare": bare_provider(count + 1), "otel-llm": otel_llm_provider(count + 1)}
    for key, label, loop, setup in SCENARIOS:
        samples: dict[str, list[float]] = {"bare": [], "otel-llm": []}
        process: dict[str, list[float]] = {"bare": [], "otel-llm": []}
        for index in range(rounds):
            order = ("bare", "otel-llm") if index % 2 == 0 else ("otel-llm", "bare")
            for variant in order:
                app_us, process_us = time_once(providers[variant], loop, setup, count)
                samples[variant].append(app_us)
                process[variant].append(process_us)
        paired = [ours - bare for ours, bare in zip(samples["otel-llm"], samples["bare"], strict=True)]
        results.append(
            {
                "scenario": key,
                "label": label,
                "bare_min_us": min(samples["bare"]),
                "otel_llm_min_us": min(samples["otel-llm"]),
                "added_us": min(samples["otel-llm"]) - min(samples["bare"]),
                "bare_median_us": statistics.median(samples["bare"]),
                "otel_llm_median_us": statistics.median(samples["otel-llm"]),
                "added_paired_median_us": statistics.median(paired),
                "target_us": TARGETS_US[key],
                "bare_process_us": min(process["bare"]),
                "otel_llm_process_us": min(process["otel-llm"]),
            }
        )
    for provider in providers.values():
        provider.shutdown()
    return results


def finished_traces(trace_count: int, with_llm: bool) -> list[ReadableSpan]:
    """Finished spans of ``trace_count`` traces: root → graph → node (→ LLM span), collected in memory."""
    collected: list[ReadableSpan] = []

    class Collect(SpanExporter):
        def export(self, spans):
            collected.extend(spans)
            return SpanExportResult.SUCCESS

    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Collect()))
    tracer = provider.get_tracer("bench")
    for _ in range(trace_count):
        with tracer.start_as_current_span("POST /api/v1/chat"):
            with tracer.start_as_current_span("LangGraph"):
                with tracer.start_as_current_span("answer"):
                    if with_llm:
                        tracer.start_span("ChatBedrock", attributes=LLM_ATTRIBUTES).end()
    provider.shutdown()
    return collected


def export_thread(trace_count: int, rounds: int) -> list[dict]:
    results = []
    for with_llm, label in ((False, "trace of 3 plain spans"), (True, "trace of 3 ancestors + 1 LLM span")):
        spans = finished_traces(trace_count, with_llm)
        samples = []
        for _ in range(rounds):
            stage = RollupSpanExporter(NoOpExporter(), window_s=0)
            gc.collect()
            started = time.thread_time_ns()
            stage.export(spans)
            samples.append((time.thread_time_ns() - started) / len(spans) / 1000)
            stage.shutdown()
        results.append({"label": label, "us_per_span": statistics.median(samples)})
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1000, help="spans per timed loop (default 1000)")
    parser.add_argument("--rounds", type=int, default=41, help="interleaved rounds per scenario (default 41)")
    args = parser.parse_args(argv)
    if args.spans < 1 or args.rounds < 1:
        parser.error("--spans and --rounds must be >= 1")
    print(f"# Span processors (python {sys.version.split()[0]}, {args.spans} spans x {args.rounds} rounds)")
    print("\nApplication thread, µs per span: best loop (median loop in brackets); added = best - best,")
    print("with the median of per-round differences in brackets. Process: CPU of the whole process")
    print("(application and export threads) per span, best loop, until the flush after it:\n")
    print("| scenario | bare SDK + BSP | + otel-llm chain | added | target "
          "| process: bare | + otel-llm | added |")
    print("|---|---|---|---|---|---|---|---|")
    within = True
    for row in application_thread(args.spans, args.rounds):
        ok = row["added_us"] <= row["target_us"]
        within &= ok
        print(
            f"| ({row['scenario']}) {row['label']} "
            f"| {row['bare_min_us']:.2f} ({row['bare_median_us']:.2f}) "
            f"| {row['otel_llm_min_us']:.2f} ({row['otel_llm_median_us']:.2f}) "
            f"| {row['added_us']:+.2f} ({row['added_paired_median_us']:+.2f}) "
            f"| <= {row['target_us']:.0f} {'ok' if ok else 'MISSED'} "
            f"| {row['bare_process_us']:.2f} | {row['otel_llm_process_us']:.2f} "
            f"| {row['otel_llm_process_us'] - row['bare_process_us']:+.2f} |"
        )
    print("\nExport thread, roll-up stage (window 0: enrichment + roll-up + forwarding), µs per span:\n")
    print("| batch | µs per span |")
    print("|---|---|")
    for row in export_thread(max(1, args.spans // 4), max(3, args.rounds // 3)):
        print(f"| {row['label']} | {row['us_per_span']:.2f} |")
    print(f"\nAll application-thread targets met: {'yes' if within else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
