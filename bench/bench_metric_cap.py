"""Cost of the series cap per GenAI histogram recording.

Run: .venv/bin/python bench/bench_metric_cap.py [--records 200000] [--repeat 5]

Records ``gen_ai.client.operation.duration`` with six attributes through the GenAI views, on (a) the SDK's
MeterProvider, (b) otel-llm's CardinalityLimitedMeterProvider on an admitted series, (c) the same past the cap
(recorded on the overflow series and counted), and (d) the cap's check alone (``SeriesLimiter.limit`` on an
admitted series, no SDK recording). Variants interleaved, best of ``--repeat``, ns per recording in the
thread's CPU time (other processes on a shared machine do not count).
"""

from __future__ import annotations

import argparse
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_llm import semconv
from otel_llm.metrics.cardinality import CardinalityLimitedMeterProvider, SeriesLimiter, sdk_cardinality_limit
from otel_llm.metrics.views import GENAI_METRIC_VIEWS, genai_views

ATTRIBUTES = {
    semconv.GEN_AI_PROVIDER_NAME: "openai",
    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    semconv.GEN_AI_OPERATION_NAME: "chat",
    semconv.LANGGRAPH_NODE: "answer",
    semconv.EXPERIMENT_ARM: "a",
    semconv.SESSION_ID: "s-1",
}


def histogram(provider):
    return provider.get_meter("bench").create_histogram(semconv.METRIC_OPERATION_DURATION, "s")


def capped(limit: int) -> CardinalityLimitedMeterProvider:
    views = genai_views(sdk_cardinality_limit(limit))
    return CardinalityLimitedMeterProvider([InMemoryMetricReader()], views=views, cardinality_limit=limit)


class LimiterAlone:
    """The cap's check on admitted values, nothing recorded: what the cap adds, without the SDK's noise."""

    def __init__(self) -> None:
        name = semconv.METRIC_OPERATION_DURATION
        self._limiter = SeriesLimiter(name, 100, overflow=None, kept_keys=GENAI_METRIC_VIEWS[name][1])

    def record(self, amount: float, attributes: dict) -> None:
        self._limiter.limit(attributes)


def variants():
    plain = MeterProvider([InMemoryMetricReader()], views=genai_views())
    full = capped(1)
    histogram(full).record(1.0, {semconv.GEN_AI_PROVIDER_NAME: "x", semconv.GEN_AI_REQUEST_MODEL: "y"})
    return {"sdk": histogram(plain), "capped, admitted": histogram(capped(100)),
            "capped, over the cap": histogram(full), "the cap's check alone, admitted": LimiterAlone()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    instruments = variants()
    best = {name: float("inf") for name in instruments}
    for _ in range(args.repeat):
        for name, instrument in instruments.items():
            started = time.thread_time_ns()
            for _ in range(args.records):
                instrument.record(0.5, ATTRIBUTES)
            best[name] = min(best[name], (time.thread_time_ns() - started) / args.records)
    print("| recording on | ns per record | added over the SDK |")
    print("|---|---:|---:|")
    for name, ns in best.items():
        added = "" if isinstance(instruments[name], LimiterAlone) else f"{ns - best['sdk']:+.0f}"
        print(f"| {name} | {ns:.0f} | {added} |")


if __name__ == "__main__":
    main()
