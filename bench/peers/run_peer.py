"""Runs the reference graph, untraced or traced by one instrumentation, in this process; prints one JSON line.

    python bench/peers/run_peer.py CONTENDER --mode {untraced,traced}
    [--runs N] [--rounds R] [--stress S]

CPU: ``time.process_time`` (every thread: LangGraph's Send workers, the span processors' export threads,
langsmith's background thread) per graph run, over ``--rounds`` rounds of ``--runs`` runs after a warm-up,
each round ending with a flush so the export work is counted; the part of it spent in the garbage
collector is reported too. One mode per process: some instrumentations
cannot be switched off again once on (OpenLLMetry's uninstrument leaves its handler), so bench_langgraph.py
alternates untraced and traced processes. Every run is inside a request span (the worker's consumer span),
in both modes. Completeness (traced, ``--stress`` > 0): ``--stress`` requests on ``--concurrency`` threads,
then a full flush: spans started and ended (counted by a span processor), spans exported (lost: started but
never exported), spans per trace (min/max: a trace with fewer spans than the others lost some), LLM spans
whose parent is the request span (re-parented), client spans opened in the ``service`` node whose parent is
that node's span.

Contenders: ``otel_llm`` (the instrumentation on otel-llm's full pipeline from ``build_telemetry`` at its
default settings: baggage processor, roll-up/enrichment stage with its 2 s window, span-derived metrics,
views), ``otel_llm_plain`` (the instrumentation on the plain SDK pipeline the peers get),
``otel_llm_noop_tracer`` (otel-llm's handler on a no-op tracer: its own work without the SDK's spans),
``otel_llm_no_rollup`` (the full pipeline with OTEL_LLM_ROLLUP=off: no roll-up stage, no span-derived
metrics), ``otel_llm_collector`` (OTEL_LLM_ROLLUP=collector: LLM spans normalised one by one, nothing
buffered or rolled up), the yardsticks of comparators.py (``empty_handler``, ``minimal_handler``) and the
peers. Spans go to a no-op exporter through the SDK's BatchSpanProcessor (otel_llm: through the roll-up
stage first). Needs only the contender's packages; runs in its virtualenv (bench/peers/setup.py).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
if sys.argv[1:2] == ["langsmith"] and "traced" in sys.argv[2:]:
    # Before anything imports langsmith: it reads (and caches) its environment once.
    os.environ.update(LANGSMITH_TRACING="true", LANGSMITH_TRACING_MODE="otel")

from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult  # noqa: E402
from reference_graph import RUN_CONFIG, SERVICE_CALL_SPAN, build_graph  # noqa: E402

CONTENDERS = (
    "otel_llm",
    "otel_llm_plain",
    "otel_llm_noop_tracer",
    "otel_llm_no_rollup",
    "otel_llm_collector",
    "minimal_handler",
    "empty_handler",
    "langsmith",
    "openinference",
    "openllmetry",
)
LLM_NAME_MARKERS = ("chat ", "FakeProviderChat", "ChatModel")


class NullExporter(SpanExporter):
    """Keeps the ended spans of the stress run (for parent checks), drops timing-run spans."""

    def __init__(self) -> None:
        self.keep = False
        self.spans: list = []
        self._lock = threading.Lock()

    def export(self, spans) -> SpanExportResult:
        if self.keep:
            with self._lock:
                self.spans.extend(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


class CountingProcessor(SpanProcessor):
    """Counts spans started and ended; cheap (two integer increments under the GIL)."""

    def __init__(self) -> None:
        self.started = 0
        self.ended = 0

    def on_start(self, span, parent_context=None) -> None:
        self.started += 1

    def on_end(self, span) -> None:
        self.ended += 1

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class Peer:
    """One instrumentation: a provider, how to switch it on, and how to drain it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.exporter = NullExporter()
        self.counter = CountingProcessor()
        self.flush_extra: Callable[[], None] = lambda: None
        self.enable: Callable[[], None] = lambda: None
        self.versions: dict[str, str] = {}
        getattr(self, f"_setup_{name}")()
        trace.set_tracer_provider(self.provider)
        self.tracer = self.provider.get_tracer("bench.app")

    def _plain_provider(self) -> None:
        self.provider = TracerProvider()
        self.provider.add_span_processor(self.counter)
        self.provider.add_span_processor(BatchSpanProcessor(self.exporter, max_queue_size=65536))

    def _setup_otel_llm_plain(self) -> None:
        """otel-llm's LangChain instrumentation alone, on the same plain SDK pipeline as the peers."""
        self._plain_provider()
        from otel_llm.instrumentation.langchain import LangChainInstrumentor

        self.enable = lambda: LangChainInstrumentor().instrument(tracer_provider=self.provider)
        self.versions = _versions("otel-llm")

    def _setup_otel_llm_noop_tracer(self) -> None:
        """otel-llm's handler doing all its work, but on a tracer whose spans are no-ops."""
        self._plain_provider()
        from otel_llm.instrumentation.langchain import LangChainInstrumentor

        self.enable = lambda: LangChainInstrumentor().instrument(tracer_provider=trace.NoOpTracerProvider())
        self.versions = _versions("otel-llm")

    def _setup_minimal_handler(self) -> None:
        self._plain_provider()
        from comparators import MinimalTreeHandler, register

        self.enable = lambda: register(MinimalTreeHandler(self.provider.get_tracer("bench.minimal")))
        self.versions = _versions("langchain-core")

    def _setup_empty_handler(self) -> None:
        self._plain_provider()
        from comparators import EmptyHandler, register

        self.enable = lambda: register(EmptyHandler())
        self.versions = _versions("langchain-core")

    def _setup_otel_llm_no_rollup(self) -> None:
        """The full pipeline less the roll-up/enrichment stage and the span-derived metrics it feeds."""
        self._setup_otel_llm({"OTEL_LLM_ROLLUP": "off"})

    def _setup_otel_llm_collector(self) -> None:
        """The full pipeline as behind the otel-llm collector: per-span normalisation, nothing buffered."""
        self._setup_otel_llm({"OTEL_LLM_ROLLUP": "collector"})

    def _setup_otel_llm(self, environ: dict[str, str] | None = None) -> None:
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from opentelemetry.sdk.resources import Resource

        from otel_llm.configure import build_telemetry
        from otel_llm.instrumentation.langchain import LangChainInstrumentor
        from otel_llm.settings import load_settings

        telemetry = build_telemetry(
            load_settings(environ or {}),  # the defaults, whatever this shell sets
            resource=Resource.create({}),
            span_exporters=[self.exporter],
            metric_readers=[InMemoryMetricReader()],
            span_processors=[self.counter],
        )
        self.provider = telemetry.tracer_provider
        instrumentor = LangChainInstrumentor()
        self.enable = lambda: instrumentor.instrument(
            tracer_provider=self.provider, meter_provider=telemetry.meter_provider
        )
        self.versions = _versions("otel-llm")

    def _setup_langsmith(self) -> None:
        self._plain_provider()
        from langchain_core.tracers.langchain import wait_for_all_tracers

        # On through LANGSMITH_TRACING / LANGSMITH_TRACING_MODE=otel, set before the imports (traced mode).
        self.flush_extra = wait_for_all_tracers
        self.versions = _versions("langsmith")

    def _setup_openinference(self) -> None:
        self._plain_provider()
        from openinference.instrumentation.langchain import LangChainInstrumentor

        instrumentor = LangChainInstrumentor()
        self.enable = lambda: instrumentor.instrument(tracer_provider=self.provider)
        self.versions = _versions("openinference-instrumentation-langchain")

    def _setup_openllmetry(self) -> None:
        self._plain_provider()
        from opentelemetry.instrumentation.langchain import LangchainInstrumentor

        instrumentor = LangchainInstrumentor()
        self.enable = lambda: instrumentor.instrument(tracer_provider=self.provider)
        self.versions = _versions("opentelemetry-instrumentation-langchain")

    def flush(self) -> None:
        self.flush_extra()
        self.provider.force_flush()


def _versions(package: str) -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in (package, "langgraph", "langchain-core", "opentelemetry-sdk")}


class GCClock:
    """Wall time spent in the garbage collector and collections per generation, from ``gc.callbacks``.

    A full (generation 2) collection of this process's heap (LangChain, pydantic, the SDK) takes ~0.1 s:
    whether one lands in a round of 100 runs moves that round by ~1 ms a run, so the results report them."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started
            self.collections[info["generation"]] += 1


def cpu_per_run(peer: Peer, graph, runs: int) -> float:
    start = time.process_time()
    for index in range(runs):
        with peer.tracer.start_as_current_span("request"):
            graph.invoke({"message": f"bottle {index}"}, config=RUN_CONFIG)
    peer.flush()
    return (time.process_time() - start) / runs


def stress(peer: Peer, graph, requests: int, concurrency: int) -> dict:
    peer.exporter.keep = True
    started_before, ended_before = peer.counter.started, peer.counter.ended

    def request(index: int) -> None:
        with peer.tracer.start_as_current_span("request"):
            graph.invoke({"message": f"stress {index}"}, config=RUN_CONFIG)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(request, range(requests)))
    peer.flush()
    deadline = time.monotonic() + 10
    while peer.counter.ended < peer.counter.started and time.monotonic() < deadline:
        time.sleep(0.1)  # a benchmark, not a test: langsmith's TTL-closed spans may still trickle in
        peer.flush()
    spans = peer.exporter.spans
    per_trace: dict[int, int] = {}
    request_ids = {span.context.span_id for span in spans if span.name == "request"}
    names = {span.context.span_id: span.name for span in spans}
    reparented = 0
    calls_under_node = sum(
        1
        for span in spans
        if span.name == SERVICE_CALL_SPAN
        and span.parent
        and names.get(span.parent.span_id, "").startswith("service")
    )
    for span in spans:
        per_trace[span.context.trace_id] = per_trace.get(span.context.trace_id, 0) + 1
        is_llm = any(marker in span.name for marker in LLM_NAME_MARKERS)
        if is_llm and span.parent is not None and span.parent.span_id in request_ids:
            reparented += 1
    started = peer.counter.started - started_before
    ended = peer.counter.ended - ended_before
    counts = [per_trace.get(trace_id, 0) for trace_id in per_trace]
    return {
        "requests": requests,
        "concurrency": concurrency,
        "spans_started": started,
        "spans_ended": ended,
        "spans_exported": len(spans),
        "never_ended": started - ended,
        "lost": started - len(spans),
        "traces": len(per_trace),
        "spans_per_trace_min": min(counts, default=0),
        "spans_per_trace_max": max(counts, default=0),
        "llm_spans_under_request": reparented,
        "client_spans_under_their_node": f"{calls_under_node}/{requests}",
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("peer", choices=CONTENDERS)
    parser.add_argument("--mode", choices=("untraced", "traced"), required=True)
    parser.add_argument("--runs", type=int, default=100, help="graph runs per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds")
    parser.add_argument("--stress", type=int, default=0, help="requests of the completeness stress (traced)")
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    peer = Peer(args.peer)
    graph = build_graph()
    traced = args.mode == "traced"
    if traced:
        peer.enable()
    cpu_per_run(peer, graph, 20)  # warm-up: imports, first-call caches
    started = peer.counter.started
    collector = GCClock()
    rounds = [cpu_per_run(peer, graph, args.runs) * 1000 for _ in range(args.rounds)]
    result = {
        "peer": args.peer,
        "mode": args.mode,
        "versions": peer.versions,
        "runs_per_round": args.runs,
        "cpu_ms": rounds,
        "gc_ms_per_run": collector.seconds * 1000 / (args.runs * args.rounds),
        "gc_collections": collector.collections,
        "spans_per_run": (peer.counter.started - started) / (args.runs * args.rounds)
        - 1,  # minus the request
    }
    if traced and args.stress:
        result["stress"] = stress(peer, graph, args.stress, args.concurrency)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
