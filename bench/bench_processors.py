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
finished spans, against the no-op exporter alone, per span (CPU time of the calling thread, median of
rounds). Memory: tracemalloc bytes per span the stage holds while a trace is buffered (the ended span, which
the stage keeps alive, plus its buffer entry), for plain spans and for langsmith-style LangGraph spans that
carry a 1 KB prompt and completion each: the basis of OTEL_LLM_ROLLUP_MAX_BUFFERED_SPANS's default.

Run: .venv/bin/python bench/bench_processors.py [--spans 1000] [--rounds 41] [--export-only]
"""

from __future__ import annotations

import argparse
import functools
import gc
import itertools
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence

from opentelemetry import baggage, context, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

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


# langsmith[otel] puts the run's inputs and outputs on every span (docs: notes/langsmith-otel.md).
LANGSMITH_CHAIN_ATTRIBUTES = {
    semconv.LANGSMITH_SPAN_KIND: "chain",
    semconv.GEN_AI_OPERATION_NAME: "chain",
    semconv.GEN_AI_SYSTEM: "langchain",
    semconv.LANGSMITH_TRACE_NAME: "LangGraph",
    semconv.LANGSMITH_LANGGRAPH_NODE: "answer",
    "langsmith.metadata.langgraph_step": 3,
    "langsmith.metadata.langgraph_path": "('__pregel_pull', 'answer')",
}


def plain_trace(tracer: trace.Tracer, serial: Callable[[], int]) -> None:
    with tracer.start_as_current_span("POST /api/v1/chat"):
        with tracer.start_as_current_span("LangGraph"):
            tracer.start_span("answer").end()


def langgraph_trace(tracer: trace.Tracer, serial: Callable[[], int]) -> None:
    def attributes(extra=None) -> dict:
        number = serial()  # a distinct 1 KB prompt and completion per span, as in real traces
        return {**LANGSMITH_CHAIN_ATTRIBUTES, **(extra or {}),
                semconv.LANGSMITH_PROMPT: f"{number:08d}" + "p" * 992,
                semconv.LANGSMITH_COMPLETION: f"{number:08d}" + "c" * 992}

    with tracer.start_as_current_span("POST /api/v1/chat"):
        with tracer.start_as_current_span("LangGraph", attributes=attributes()):
            with tracer.start_as_current_span("answer", attributes=attributes()):
                tracer.start_span("ChatBedrock", attributes=attributes(LLM_ATTRIBUTES)).end()


def buffered_span_bytes(trace_count: int) -> list[dict]:
    """tracemalloc bytes per span held by a roll-up stage whose window keeps every trace buffered."""
    results = []
    for label, make in (("plain spans (traces of 3)", plain_trace),
                        ("LangGraph spans with 1 KB prompt + completion (traces of 4)", langgraph_trace)):
        stage = RollupSpanExporter(NoOpExporter(), window_s=3600, max_age_s=3600,
                                   max_traces=trace_count + 1, max_buffered_spans=10 * trace_count)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(stage))
        tracer = provider.get_tracer("bench")
        serial = itertools.count().__next__
        make(tracer, serial)  # first use of everything, outside the measurement
        stage.force_flush()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(trace_count):
            make(tracer, serial)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        spans = stage.stats.buffered_spans
        results.append({"label": label, "bytes_per_span": held / spans, "spans": spans})
        provider.shutdown()
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=1000, help="spans per timed loop (default 1000)")
    parser.add_argument("--rounds", type=int, default=41, help="interleaved rounds per scenario (default 41)")
    parser.add_argument("--export-only", action="store_true",
                        help="only the export-thread and memory measurements (a few seconds)")
    args = parser.parse_args(argv)
    if args.spans < 1 or args.rounds < 1:
        parser.error("--spans and --rounds must be >= 1")
    print(f"# Span processors (python {sys.version.split()[0]}, {args.spans} spans x {args.rounds} rounds)")
    within = True
    if not args.export_only:
        print("\nApplication thread, µs per span: best loop (median loop in brackets); added = best - best,")
        print("with the median of per-round differences in brackets. Process: CPU of the whole process")
        print("(application and export threads) per span, best loop, until the flush after it:\n")
        print("| scenario | bare SDK + BSP | + otel-llm chain | added | target "
              "| process: bare | + otel-llm | added |")
        print("|---|---|---|---|---|---|---|---|")
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
    print("\nMemory held per buffered span (tracemalloc):\n")
    print("| spans | bytes per span |")
    print("|---|---|")
    for row in buffered_span_bytes(max(1, args.spans // 2)):
        print(f"| {row['label']} | {row['bytes_per_span']:.0f} |")
    if not args.export_only:
        print(f"\nAll application-thread targets met: {'yes' if within else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
