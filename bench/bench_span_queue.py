"""Dropped spans in a burst, by span-queue size: why the distro sets OTEL_BSP_MAX_QUEUE_SIZE=32768.

Run: .venv/bin/python bench/bench_span_queue.py [--traces 4000] [--repeat 3]

otel-llm's whole pipeline (baggage processor, batch processor, roll-up stage, OTLP/HTTP exporter) exports to a
local OTLP/HTTP receiver (tests/support/otlp_http_sink.py, in its own process, as a collector would be) on
127.0.0.1. The application thread makes
``--traces`` requests in a tight loop, each a SERVER root with three INTERNAL children and one LLM span (5
spans), as fast as it can; the export thread keeps up as well as it can. For each (OTEL_BSP_MAX_QUEUE_SIZE,
OTEL_BSP_SCHEDULE_DELAY) the drops (counted by otel-llm's drop counter) are reported as a share of the spans
made, median of ``--repeat`` runs, plus the burst's wall time. Then the memory one queued span holds
(tracemalloc over 5,000 ended spans like the ones above), to size the worst case of a full queue.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from otel_llm import semconv  # noqa: E402
from otel_llm.configure import build_from_environment  # noqa: E402
from otel_llm.metrics.health import QUEUE_FULL  # noqa: E402
from otel_llm.settings import Settings  # noqa: E402

SINK_PROCESS = (
    "import sys; from tests.support.otlp_http_sink import OtlpHttpSink; sink = OtlpHttpSink(); "
    "print(sink.endpoint, flush=True); sys.stdin.read()"
)
VARIANTS = [(2048, 5000), (2048, 500), (8192, 500), (32768, 500)]
LLM = {
    semconv.LANGSMITH_SPAN_KIND: "llm",
    semconv.LANGSMITH_LS_PROVIDER: "openai",
    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    semconv.GEN_AI_USAGE_INPUT_TOKENS: 100,
    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
}


def make_request(tracer) -> None:
    with tracer.start_as_current_span(
        "POST /api/v1/chat", kind=SpanKind.SERVER, attributes={"http.route": "/api/v1/chat"}
    ):
        for name in ("LangGraph", "intent", "answer"):
            with tracer.start_as_current_span(name, attributes={semconv.LANGSMITH_SPAN_KIND: "chain"}):
                pass
        with tracer.start_as_current_span("ChatOpenAI", attributes=LLM):
            pass


def burst(endpoint: str, queue_size: int, delay_ms: int, traces: int) -> tuple[float, float]:
    """(dropped share of spans, burst seconds) for one run."""
    os.environ.update(
        {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_METRICS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
            "OTEL_BSP_MAX_QUEUE_SIZE": str(queue_size),
            "OTEL_BSP_SCHEDULE_DELAY": str(delay_ms),
        }
    )
    telemetry = build_from_environment(Settings(), resource=Resource.create({}))
    tracer = telemetry.tracer_provider.get_tracer("bench")
    started = time.perf_counter()
    for _ in range(traces):
        make_request(tracer)
    elapsed = time.perf_counter() - started
    telemetry.shutdown()
    dropped = sum(counter.counts().get(QUEUE_FULL, 0) for counter in telemetry.drop_counters)
    return dropped / (traces * 5), elapsed


def bytes_per_queued_span(count: int = 1000) -> float:
    provider = TracerProvider()
    tracer = provider.get_tracer("bench")
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    held = []
    for _ in range(count):
        with tracer.start_as_current_span("ChatOpenAI", attributes=LLM) as span:
            pass
        held.append(span)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    return sum(stat.size_diff for stat in after.compare_to(before, "filename")) / count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sink = subprocess.Popen(
        [sys.executable, "-c", SINK_PROCESS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    endpoint = sink.stdout.readline().strip()
    print(f"Burst of {args.traces} requests x 5 spans, OTLP/HTTP to 127.0.0.1, median of {args.repeat}\n")
    print("| OTEL_BSP_MAX_QUEUE_SIZE | OTEL_BSP_SCHEDULE_DELAY (ms) | spans dropped | burst (s) |")
    print("|---:|---:|---:|---:|")
    for queue_size, delay_ms in VARIANTS:
        runs = [burst(endpoint, queue_size, delay_ms, args.traces) for _ in range(args.repeat)]
        dropped = statistics.median(run[0] for run in runs)
        seconds = statistics.median(run[1] for run in runs)
        print(f"| {queue_size} | {delay_ms} | {dropped:.1%} | {seconds:.2f} |")
    sink.stdin.close()
    sink.wait()
    per_span = bytes_per_queued_span(5000)
    print(
        f"\nMemory held per queued LLM span: {per_span / 1024:.1f} KiB; a full 32768 queue of such spans "
        f"holds about {per_span * 32768 / 2**20:.0f} MiB (spans with prompts/completions hold more)."
    )


if __name__ == "__main__":
    main()
