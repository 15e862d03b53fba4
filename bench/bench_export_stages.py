"""Where the export thread's time goes, per span: OTLP encoding vs each step of otel-llm's export stages.

Run: .venv/bin/python bench/bench_export_stages.py [--traces 4000]

Makes ``--traces`` 5-span traces (tests/support/span_load.py's shape: SERVER root, three chain spans, one
langsmith-style LLM span), then times, in this thread's CPU (best of 5, after a warm-up), per span made:
the OTLP protobuf encoding of the spans as made and as otel-llm exports them (roll-up attributes on the root,
normalised provider and model on the LLM span), the whole roll-up + delivery stages into that encoder with
and without the span-derived metrics hook, and each step alone (the fan-out to one and to three delivery
stages: what each extra exporter costs otel-llm itself).

With ``--fanout [--rounds 5]``: instead, the whole configured pipeline (configure's ``build_telemetry``,
roll-up window 0) in process CPU per span made (application and export threads), with one exporter (OTLP
encoding) against OTEL_TRACES_EXPORTER=otlp,console plus METRIC lines (to /dev/null), the console both as a
free sink and as the SDK's ConsoleSpanExporter (to /dev/null). Each exporter set also runs under the plain SDK
(one BatchSpanProcessor per exporter, what the SDK builds for several exporters), all interleaved round by
round, best round of each (and the median round): "otel-llm minus plain SDK" is otel-llm's own CPU per span,
the exporters' own work (encoding, JSON, METRIC lines) taken out. The span queue is the distro's 32768, so
nothing is dropped (checked).
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans  # noqa: E402
from opentelemetry.sdk.metrics import MeterProvider  # noqa: E402
from opentelemetry.sdk.resources import Resource  # noqa: E402
from opentelemetry.sdk.trace import TracerProvider  # noqa: E402
from opentelemetry.sdk.trace.export import (  # noqa: E402
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter  # noqa: E402
from opentelemetry.trace import SpanKind  # noqa: E402

from otel_llm import semconv  # noqa: E402
from otel_llm.configure import DISTRO_DEFAULTS, build_telemetry  # noqa: E402
from otel_llm.exporters.delivery import DeliveryExporter, span_size  # noqa: E402
from otel_llm.exporters.fanout import FanOutSpanExporter  # noqa: E402
from otel_llm.exporters.metric_log import MetricLogExporter  # noqa: E402
from otel_llm.metrics.from_spans import SpanDerivedMetrics  # noqa: E402
from otel_llm.processors.normalize import llm_call_of, with_attributes  # noqa: E402
from otel_llm.processors.rollup import RollupSpanExporter, _analyse, _read  # noqa: E402
from otel_llm.settings import Settings  # noqa: E402

BATCH = 512


class Encoder(SpanExporter):
    """Encodes like the OTLP exporters do, sends nothing; keeps what it was given."""

    def __init__(self) -> None:
        self.spans: list = []

    def export(self, spans):
        encode_spans(spans).SerializeToString()
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


class Sink(SpanExporter):
    """Takes spans and does nothing: an exporter whose own cost is zero."""

    def export(self, spans):
        return SpanExportResult.SUCCESS


def make_spans(traces: int, provider: TracerProvider | None = None) -> list:
    sink = InMemorySpanExporter()
    if provider is None:
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(sink))
    tracer = provider.get_tracer("bench")
    llm = {semconv.LANGSMITH_SPAN_KIND: "llm", semconv.LANGSMITH_LS_PROVIDER: "openai",
           semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", semconv.GEN_AI_USAGE_INPUT_TOKENS: 100,
           semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 20}
    for index in range(traces):
        with tracer.start_as_current_span("POST /api/v1/chat", kind=SpanKind.SERVER,
                                          attributes={"http.route": "/api/v1/chat", "load.index": index}):
            for name in ("LangGraph", "intent", "answer"):
                with tracer.start_as_current_span(name, attributes={semconv.LANGSMITH_SPAN_KIND: "chain"}):
                    pass
            with tracer.start_as_current_span("ChatOpenAI", attributes=llm):
                pass
    return list(sink.get_finished_spans())


def best_us_per_span(run: Callable[[], object], spans: int) -> float:
    run()
    best = float("inf")
    for _ in range(5):
        gc.collect()
        started = time.thread_time()
        run()
        best = min(best, time.thread_time() - started)
    return best / spans * 1e6


def fan_out(spans: list, exporters: int) -> None:
    """The fan-out to ``exporters`` delivery stages, each in front of a free sink, in batches of ``BATCH``."""
    stage = FanOutSpanExporter([DeliveryExporter(Sink()) for _ in range(exporters)])
    for start in range(0, len(spans), BATCH):
        stage.export(spans[start:start + BATCH])


def pipeline_us(settings: Settings, exporters: list, traces: int) -> float:
    """Process CPU per span made through the pipeline ``settings`` build to ``exporters``, one round."""
    telemetry = build_telemetry(settings, resource=Resource.create({}), span_exporters=exporters,
                                metric_readers=[])
    gc.collect()
    started = time.process_time()
    make_spans(traces, telemetry.tracer_provider)
    telemetry.force_flush()
    spent = time.process_time() - started
    telemetry.shutdown()
    assert len(exporters[0].spans) == traces * 5, "spans were dropped: the measure is void"
    assert not any(counter.counts().get(reason) for counter in telemetry.drop_counters
                   for reason in counter.counts()), "spans were dropped: the measure is void"
    return spent / (traces * 5) * 1e6


def fanout(traces: int, rounds: int) -> None:
    """Each exporter set under otel-llm and under the plain SDK (one BatchSpanProcessor per exporter, as
    OTEL_TRACES_EXPORTER=otlp,console does), all interleaved round by round; best and median round of each."""
    os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = DISTRO_DEFAULTS["OTEL_BSP_MAX_QUEUE_SIZE"]
    null = open(os.devnull, "w")  # noqa: SIM115 (open for the whole run)
    exporter_sets = [
        ("one exporter (OTLP encoding)", lambda: [Encoder()]),
        ("OTLP + a free sink + METRIC lines", lambda: [Encoder(), Sink(), MetricLogExporter(null)]),
        ("OTLP + ConsoleSpanExporter + METRIC lines", lambda: [Encoder(), ConsoleSpanExporter(out=null),
                                                                MetricLogExporter(null)]),
    ]
    pipelines = {"plain SDK": Settings(enabled=False), "otel-llm": Settings(rollup_window_ms=0)}
    spent: dict[tuple[str, str], list[float]] = {}
    for round_ in range(rounds + 1):  # the first round is a warm-up
        for name, exporters in exporter_sets:
            for pipeline, settings in pipelines.items():
                us = pipeline_us(settings, exporters(), traces)
                if round_:
                    spent.setdefault((name, pipeline), []).append(us)
    print(f"| {traces * 5} spans; process CPU per span, best of {rounds} interleaved rounds (median) "
          "| plain SDK, us | otel-llm, us (ratio) | otel-llm minus plain SDK, us (ratio) |")
    print("|---|---|---|---|")
    one = exporter_sets[0][0]
    for pick, label in ((min, ""), (statistics.median, " (median)")):
        base = pick(spent[one, "otel-llm"])
        base_ours = base - pick(spent[one, "plain SDK"])
        for name, _ in exporter_sets:
            plain, ours = pick(spent[name, "plain SDK"]), pick(spent[name, "otel-llm"])
            print(f"| {name}{label} | {plain:.1f} | {ours:.1f} ({ours / base:.2f}) "
                  f"| {ours - plain:.1f} ({(ours - plain) / base_ours:.2f}) |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--traces", type=int, default=4000)
    parser.add_argument("--fanout", action="store_true", help="the whole pipeline, one exporter vs three")
    parser.add_argument("--rounds", type=int, default=5, help="with --fanout: interleaved rounds")
    args = parser.parse_args()
    if args.fanout:
        fanout(args.traces, args.rounds)
        return
    spans = make_spans(args.traces)
    count = len(spans)
    metrics = SpanDerivedMetrics(MeterProvider(), Settings().span_metrics_skip_scopes)

    def encode(batch_spans: list) -> None:
        for start in range(0, len(batch_spans), BATCH):
            encode_spans(batch_spans[start:start + BATCH]).SerializeToString()

    def stages(hook: bool) -> list:
        encoder = Encoder()
        stage = RollupSpanExporter(DeliveryExporter(encoder), window_s=0,
                                   on_llm_span=metrics.record if hook else None)
        for start in range(0, count, BATCH):
            stage.export(spans[start:start + BATCH])
        stage.flush(everything=True)
        return encoder.spans

    exported = stages(hook=False)
    items = [_read(span)[1] for span in spans]
    calls = [(span, call) for span in spans if (call := llm_call_of(span)) is not None]
    rows = [
        ("OTLP encoding, spans as made (the plain SDK's export work)", lambda: encode(spans)),
        ("OTLP encoding, spans as otel-llm exports them", lambda: encode(exported)),
        ("roll-up + delivery stages + encoding, with span-derived metrics", lambda: stages(hook=True)),
        ("the same without span-derived metrics", lambda: stages(hook=False)),
        ("step: read a span on arrival (llm call, enrichment)", lambda: [_read(span) for span in spans]),
        ("step: delivery's size estimate", lambda: [span_size(span) for span in spans]),
        ("step: fan-out to 1 delivery stage (free exporter)", lambda: fan_out(exported, 1)),
        ("step: fan-out to 3 delivery stages (free exporters)", lambda: fan_out(exported, 3)),
        ("step: roll-up analysis of each trace",
         lambda: [_analyse(items[i:i + 5]) for i in range(0, count, 5)]),
        ("step: copies of changed spans (2 in 5)",
         lambda: [with_attributes(span, {"x": 1}) for span in spans[::5] + spans[4::5]]),
        ("step: span-derived metrics (1 LLM span in 5)",
         lambda: [metrics.record(s, c, ()) for s, c in calls]),
    ]
    print(f"| {count} spans; thread CPU, best of 5 | us per span |")
    print("|---|---|")
    for name, run in rows:
        print(f"| {name} | {best_us_per_span(run, count):.1f} |", flush=True)


if __name__ == "__main__":
    main()
