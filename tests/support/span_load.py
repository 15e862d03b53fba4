"""One process making 5-span traces at a paced rate, exporting OTLP/gRPC, reporting what it offered and lost.

Run as ``python -m tests.support.span_load --pipeline otel-llm|sdk --endpoint 127.0.0.1:4317 --service s
--rate 10000 --seconds 10`` (rate in spans/s; 0 = as fast as the application thread can; ``--payload-bytes``
puts a prompt of that size on each LLM span). It prints one JSON
line: spans offered, spans counted as dropped by reason (otel-llm's counters: the batch queue and the delivery
stage), process CPU seconds (all threads, from the first span until the pipeline is shut down and flushed),
wall seconds of the load. ``sdk`` is the plain SDK (BatchSpanProcessor + OTLP exporter) with the same queue
size and delay, its queue drops counted the same way, as the control. Used by bench/bench_export_load.py and
tests/integration/test_export_load.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from otel_llm import semconv
from tests.support.poll import poll
from tests.support.queries import jaeger_find_traces, spans_of

ROOT = Path(__file__).resolve().parents[2]
SPANS_PER_TRACE = 5
MAX_TRACES = 100_000  # the Jaeger query's limit: more than any run here makes
SCHEDULE_DELAY_MS = "500"  # otel-llm's distro default; the control gets the same


def run_load(endpoint: str, pipeline: str, rate: float, seconds: float, rollup: str = "process",
             queue_size: int = 32768, payload_bytes: int = 0) -> dict:
    """Run this module in a fresh process; its JSON result plus the unique ``service`` it used."""
    service = f"load-{pipeline}-{rollup}-{uuid.uuid4().hex[:8]}"
    output = subprocess.run(
        [sys.executable, "-m", "tests.support.span_load", "--pipeline", pipeline, "--endpoint", endpoint,
         "--service", service, "--rate", str(rate), "--seconds", str(seconds), "--rollup", rollup,
         "--queue-size", str(queue_size), "--payload-bytes", str(payload_bytes)],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=seconds * 10 + 120,
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    result["service"] = service
    return result


def spans_in_jaeger(query_url: str, service: str) -> int:
    """The number of distinct spans of ``service`` in Jaeger now that the app made: not the collector's own
    per-trace summary span (``llm.request``), and a span stored twice (the collector's exporter delivers at
    least once) counted once."""
    traces = jaeger_find_traces(query_url, service, limit=MAX_TRACES, lookback="1h")
    return len({(span.trace_id, span.span_id) for span in spans_of(traces)
                if span.name != semconv.REQUEST_SPAN_NAME})


def wait_for_spans(query_url: str, service: str, expected: int, timeout: float = 120) -> int:
    """Poll until Jaeger holds at least ``expected`` spans of ``service``; the count then (fewer at the
    deadline: spans were lost)."""
    try:
        poll(lambda: spans_in_jaeger(query_url, service) >= expected, timeout=timeout, interval=1.0,
             message=f"{expected} spans of {service} in Jaeger")
    except AssertionError:
        pass  # fewer arrived: the caller reports the difference
    return spans_in_jaeger(query_url, service)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipeline", choices=("otel-llm", "sdk"), required=True)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--rate", type=float, default=0.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--queue-size", default="32768")
    parser.add_argument("--rollup", default="process")
    parser.add_argument("--payload-bytes", type=int, default=0, help="a prompt of this size on each LLM span")
    args = parser.parse_args()
    os.environ.update({
        "OTEL_SERVICE_NAME": args.service, "OTEL_BSP_MAX_QUEUE_SIZE": args.queue_size,
        "OTEL_BSP_SCHEDULE_DELAY": SCHEDULE_DELAY_MS, "OTEL_TRACES_EXPORTER": "none",
        "OTEL_METRICS_EXPORTER": "none", "OTEL_LLM_ROLLUP": args.rollup,
    })
    # Imported after the environment is set: the SDK reads some variables at import.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    import otel_llm
    from otel_llm.metrics.health import count_dropped_spans

    exporter = OTLPSpanExporter(endpoint=args.endpoint, insecure=True)
    if args.pipeline == "sdk":
        provider = TracerProvider(resource=Resource.create({}))
        processor = BatchSpanProcessor(exporter)
        counters = [count_dropped_spans(processor)]
        provider.add_span_processor(processor)
        shutdown = provider.shutdown
    else:
        telemetry = otel_llm.configure(span_exporters=[exporter], metric_readers=[])
        provider, counters, shutdown = telemetry.tracer_provider, telemetry.drop_counters, telemetry.shutdown
    from opentelemetry.trace import SpanKind

    from otel_llm import semconv

    llm = {semconv.LANGSMITH_SPAN_KIND: "llm", semconv.LANGSMITH_LS_PROVIDER: "openai",
           semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", semconv.GEN_AI_USAGE_INPUT_TOKENS: 100,
           semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 20}
    if args.payload_bytes:
        llm["gen_ai.prompt"] = "p" * args.payload_bytes
    chain = {semconv.LANGSMITH_SPAN_KIND: "chain"}
    tracer = provider.get_tracer("span-load")

    def make_trace(index: int) -> None:
        """A request: SERVER root, three LangGraph-like children, one LLM call (langsmith attributes)."""
        with tracer.start_as_current_span("POST /api/v1/chat", kind=SpanKind.SERVER,
                                          attributes={"http.route": "/api/v1/chat", "load.index": index}):
            for name in ("LangGraph", "intent", "answer"):
                with tracer.start_as_current_span(name, attributes=chain):
                    pass
            with tracer.start_as_current_span("ChatOpenAI", attributes=llm):
                pass

    traces = int(args.rate * args.seconds / SPANS_PER_TRACE) if args.rate else None
    interval = SPANS_PER_TRACE / args.rate if args.rate else 0.0
    cpu_start = time.process_time()
    start = time.monotonic()
    made = 0
    while (made < traces) if traces is not None else (time.monotonic() - start < args.seconds):
        if interval:
            delay = start + made * interval - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the offered rate, not synchronisation
        make_trace(made)
        made += 1
    load_seconds = time.monotonic() - start
    shutdown()
    dropped: dict[str, int] = {}
    for counter in counters:
        for reason, count in counter.counts().items():
            dropped[reason] = dropped.get(reason, 0) + count
    print(json.dumps({
        "offered": made * SPANS_PER_TRACE, "dropped": dropped, "cpu_s": time.process_time() - cpu_start,
        "load_s": load_seconds,
    }), flush=True)


if __name__ == "__main__":
    main()
