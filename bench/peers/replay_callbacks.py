"""CPU of the callback handlers alone: one graph run's callbacks recorded, then replayed, interleaved.

    <otel_llm venv>/bin/python bench/peers/replay_callbacks.py [--runs 300] [--rounds 11]
        [--compare OTHER_LANGCHAIN_PY]

(the otel_llm venv: ``bench/peers/setup.py otel_llm`` prints its python.) Records every callback LangChain
makes during one run of the reference graph (reference_graph.py: 47 events, 25 of them tokens), then
replays them, round after round, handler after handler, in this process: the empty handler, the minimal
tree handler (comparators.py) and otel-llm's handler, each on a no-op tracer and on the SDK (a
BatchSpanProcessor to a no-op exporter), and otel-llm's handler on its full pipeline (``build_telemetry``
at its defaults, TTFT metrics included; then without the span-derived metrics, then without the roll-up
stage, which also takes those metrics away). Prints µs of CPU per graph run (``time.process_time``, export
threads included, each round ending with a flush): best and median round.

Finer than bench_langgraph.py's process pairs, whose noise (±0.05x, ~200 µs) hides a change of 20 µs, but
without LangChain's own dispatch and the graph itself. ``--compare`` adds otel-llm's handler loaded from
another copy of otel_llm/instrumentation/langchain.py (``git show REV:otel_llm/instrumentation/langchain.py
> /tmp/before.py``), on a no-op tracer and on the SDK, for a before/after in the same conditions.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from comparators import EmptyHandler, MinimalTreeHandler, register  # noqa: E402
from langchain_core.callbacks import BaseCallbackHandler  # noqa: E402
from langchain_core.tracers.context import _configure_hooks  # noqa: E402
from opentelemetry import trace  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import BatchSpanProcessor  # noqa: E402
from reference_graph import RUN_CONFIG, build_graph  # noqa: E402
from run_peer import NullExporter  # noqa: E402

CALLBACKS = (
    "on_chain_start",
    "on_chain_end",
    "on_chain_error",
    "on_chat_model_start",
    "on_llm_start",
    "on_llm_new_token",
    "on_llm_end",
    "on_llm_error",
    "on_retriever_start",
    "on_retriever_end",
    "on_retriever_error",
    "on_tool_start",
    "on_tool_end",
    "on_tool_error",
)
Call = tuple[str, tuple, dict]


def record_one_run() -> list[Call]:
    """The callbacks of the reference graph's second run (the first one warms LangChain's caches)."""
    calls: list[Call] = []

    class Recorder(BaseCallbackHandler):
        run_inline = True

    for name in CALLBACKS:
        setattr(Recorder, name, lambda self, *args, _name=name, **kwargs: calls.append((_name, args, kwargs)))
    register(Recorder())
    graph = build_graph()
    graph.invoke({"message": "warm-up"}, config=RUN_CONFIG)
    calls.clear()
    graph.invoke({"message": "bottle"}, config=RUN_CONFIG)
    _configure_hooks.pop()
    return calls


def sdk_provider() -> TracerProvider:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NullExporter(), max_queue_size=65536))
    return provider


def full_pipeline(handler_class: type, environ: dict[str, str]) -> tuple[BaseCallbackHandler, Any]:
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.resources import Resource

    from otel_llm.configure import build_telemetry
    from otel_llm.metrics.streaming import StreamMetrics
    from otel_llm.settings import load_settings

    telemetry = build_telemetry(
        load_settings(environ),
        resource=Resource.create({}),
        span_exporters=[NullExporter()],
        metric_readers=[InMemoryMetricReader()],
    )
    tracer = telemetry.tracer_provider.get_tracer("replay")
    return handler_class(tracer, StreamMetrics(telemetry.meter_provider)), telemetry.tracer_provider


def contenders(compare: str | None) -> dict[str, Callable[[], tuple[BaseCallbackHandler, Any]]]:
    """name -> factory of (handler, provider to flush or None)."""
    from otel_llm.instrumentation.langchain import OpenTelemetryCallbackHandler

    def on_sdk(make: Callable[[trace.Tracer], BaseCallbackHandler]) -> Callable[[], tuple]:
        def factory() -> tuple:
            provider = sdk_provider()
            return make(provider.get_tracer("replay")), provider

        return factory

    noop = trace.NoOpTracer()
    found = {
        "empty handler": lambda: (EmptyHandler(), None),
        "minimal handler, no-op tracer": lambda: (MinimalTreeHandler(noop), None),
        "minimal handler, SDK": on_sdk(MinimalTreeHandler),
        "otel-llm handler, no-op tracer": lambda: (OpenTelemetryCallbackHandler(noop), None),
        "otel-llm handler, SDK": on_sdk(OpenTelemetryCallbackHandler),
        "otel-llm handler, full pipeline": lambda: full_pipeline(OpenTelemetryCallbackHandler, {}),
        "otel-llm handler, full pipeline, OTEL_LLM_SPAN_METRICS=false": lambda: full_pipeline(
            OpenTelemetryCallbackHandler, {"OTEL_LLM_SPAN_METRICS": "false"}
        ),
        "otel-llm handler, full pipeline, OTEL_LLM_ROLLUP=false": lambda: full_pipeline(
            OpenTelemetryCallbackHandler, {"OTEL_LLM_ROLLUP": "false"}
        ),
    }
    if compare:
        spec = importlib.util.spec_from_file_location("compared_langchain", compare)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        other = module.OpenTelemetryCallbackHandler
        found["--compare handler, no-op tracer"] = lambda: (other(noop), None)
        found["--compare handler, SDK"] = on_sdk(other)
    return found


def replay(handler: BaseCallbackHandler, calls: list[Call], runs: int) -> None:
    bound = [(getattr(handler, name), args, kwargs) for name, args, kwargs in calls]
    for _ in range(runs):
        for callback, args, kwargs in bound:
            callback(*args, **kwargs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="replayed graph runs per round")
    parser.add_argument("--rounds", type=int, default=11, help="rounds, each contender once per round")
    parser.add_argument("--compare", help="another copy of otel_llm/instrumentation/langchain.py")
    args = parser.parse_args()
    calls = record_one_run()
    built = {name: factory() for name, factory in contenders(args.compare).items()}
    timings: dict[str, list[float]] = {name: [] for name in built}
    for _ in range(args.rounds):
        for name, (handler, provider) in built.items():
            replay(handler, calls, 20)  # warm-up, and the rest of the last round's spans out
            if provider is not None:
                provider.force_flush()
            started = time.process_time()
            replay(handler, calls, args.runs)
            if provider is not None:
                provider.force_flush()
            timings[name].append((time.process_time() - started) / args.runs * 1e6)
    print(f"{len(calls)} callbacks per graph run; µs of CPU per graph run, {args.rounds} rounds")
    print("| handler | best | median |\n|---|---|---|")
    for name, values in timings.items():
        print(f"| {name} | {min(values):.0f} | {statistics.median(values):.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
