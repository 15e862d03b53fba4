"""Auto-configuration: distro defaults, standard OTEL_* variables, otel-llm's pipeline, configure()."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
from opentelemetry import baggage, context
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    InMemoryMetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_llm import semconv
from otel_llm.configure import (
    DISTRO_DEFAULTS,
    OtelLLMDistro,
    Telemetry,
    apply_distro_defaults,
    build_from_environment,
    build_telemetry,
)
from otel_llm.exporters.delivery import DeliveryExporter
from otel_llm.metrics.cardinality import OVERFLOW_ATTRIBUTE, CardinalityLimitedMeterProvider
from otel_llm.processors import rollup as rollup_module
from otel_llm.processors.redact import RedactingSpanExporter
from otel_llm.processors.rollup import RollupBatchSpanProcessor
from otel_llm.settings import Settings, load_settings
from tests.support.metric_points import metric_points

LLM_ATTRIBUTES = {
    semconv.LANGSMITH_SPAN_KIND: "llm",
    semconv.LANGSMITH_LS_PROVIDER: "amazon_bedrock",
    semconv.GEN_AI_SYSTEM: "anthropic",
    semconv.GEN_AI_REQUEST_MODEL: "anthropic.claude-3-haiku-20240307-v1:0",
    semconv.GEN_AI_USAGE_INPUT_TOKENS: 12,
    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 4,
}
# Immediate roll-up so a test's trace is forwarded as soon as its root reaches the stage.
FAST = Settings(rollup_window_ms=0)


@pytest.fixture
def clean_env(monkeypatch):
    """No OTEL_* variable from the outer environment leaks in; monkeypatch restores them afterwards."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    return monkeypatch


class Built:
    """build_telemetry with in-memory exporters and reader, shut down by the fixture."""

    def __init__(self, settings: Settings = FAST, exporters: int = 1) -> None:
        self.exporters = [InMemorySpanExporter() for _ in range(exporters)]
        self.reader = InMemoryMetricReader()
        self.telemetry = build_telemetry(settings, resource=Resource.create({}),
                                         span_exporters=self.exporters, metric_readers=[self.reader])

    def request_with_llm_call(self, *, flushed: bool = True, **llm_attributes) -> None:
        tracer = self.telemetry.tracer_provider.get_tracer("test")
        with tracer.start_as_current_span("POST /chat"):
            with tracer.start_as_current_span("ChatBedrock", attributes={**LLM_ATTRIBUTES, **llm_attributes}):
                pass
        assert self.telemetry.force_flush() is flushed

    def spans(self, index: int = 0) -> dict:
        return {span.name: dict(span.attributes) for span in self.exporters[index].get_finished_spans()}


@pytest.fixture
def built(clean_env):
    instances: list[Built] = []

    def build(*args, **kwargs) -> Built:
        instances.append(Built(*args, **kwargs))
        return instances[-1]

    yield build
    for instance in instances:
        instance.telemetry.shutdown()


# --- the distro -------------------------------------------------------------------------------------------


def test_distro_defaults_fill_an_empty_environment():
    """Every default lands in an environment that has none of them."""
    environ: dict[str, str] = {}
    apply_distro_defaults(environ)
    assert environ == dict(DISTRO_DEFAULTS)
    assert environ["OTEL_PROPAGATORS"] == "tracecontext,otel_llm_baggage"
    assert int(environ["OTEL_BSP_MAX_QUEUE_SIZE"]) > 2048


def test_distro_defaults_never_override_the_user():
    """A variable the user set, even to an empty string, keeps its value."""
    environ = {"OTEL_TRACES_EXPORTER": "console", "OTEL_BSP_MAX_QUEUE_SIZE": "", "OTEL_PROPAGATORS": "b3"}
    apply_distro_defaults(environ)
    assert environ["OTEL_TRACES_EXPORTER"] == "console"
    assert environ["OTEL_BSP_MAX_QUEUE_SIZE"] == ""
    assert environ["OTEL_PROPAGATORS"] == "b3"
    assert environ["OTEL_METRICS_EXPORTER"] == "otlp"


def test_distro_entry_point_sets_process_defaults(clean_env):
    """OtelLLMDistro.configure() setdefaults os.environ, keeping what the user exported."""
    for name in DISTRO_DEFAULTS:  # recorded by monkeypatch, so removed again after the test
        clean_env.setenv(name, "x")
        clean_env.delenv(name)
    clean_env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    OtelLLMDistro().configure()
    assert os.environ["OTEL_BSP_SCHEDULE_DELAY"] == "100"
    assert os.environ["OTEL_TRACES_EXPORTER"] == "otlp"
    assert os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] == DISTRO_DEFAULTS["OTEL_BSP_MAX_QUEUE_SIZE"]


def test_disabled_distro_sets_nothing(clean_env):
    """With OTEL_LLM_ENABLED=false the distro leaves the environment as the plain SDK would see it."""
    for name in DISTRO_DEFAULTS:
        clean_env.setenv(name, "x")
        clean_env.delenv(name)
    clean_env.setenv("OTEL_LLM_ENABLED", "false")
    OtelLLMDistro().configure()
    assert not [name for name in DISTRO_DEFAULTS if name in os.environ]


# --- standard OTEL_* variables through build_from_environment ---------------------------------------------


def _from_env(**overrides) -> Telemetry:
    return build_from_environment(Settings(**overrides))


def _export_processors(telemetry: Telemetry) -> list:
    processors = telemetry.tracer_provider._active_span_processor._span_processors
    return [processor for processor in processors if isinstance(processor, BatchSpanProcessor)]


def _readers(telemetry: Telemetry) -> list:
    return list(telemetry.meter_provider._metric_readers)


def test_service_name_and_resource_attributes_apply(clean_env):
    """OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES reach both providers' resource."""
    clean_env.setenv("OTEL_SERVICE_NAME", "chat-api")
    clean_env.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test,team=llm")
    telemetry = _from_env()
    for resource in (telemetry.tracer_provider.resource, telemetry.meter_provider._sdk_config.resource):
        assert resource.attributes["service.name"] == "chat-api"
        assert resource.attributes["deployment.environment"] == "test"
        assert resource.attributes["team"] == "llm"
    telemetry.shutdown()


def _final_exporter(processor):
    """The exporter behind a processor's roll-up stage, the redaction stage and the delivery stage."""
    redacting = processor.span_exporter._inner
    assert isinstance(redacting, RedactingSpanExporter)
    assert isinstance(redacting._inner, DeliveryExporter)
    return redacting._inner.inner


def test_console_traces_exporter_sits_behind_the_rollup_stage(clean_env):
    """OTEL_TRACES_EXPORTER=console: one batch processor, its roll-up stage wrapping a ConsoleSpanExporter."""
    clean_env.setenv("OTEL_TRACES_EXPORTER", "console")
    telemetry = _from_env()
    processor, = _export_processors(telemetry)
    assert isinstance(processor, RollupBatchSpanProcessor)
    assert isinstance(_final_exporter(processor), ConsoleSpanExporter)
    telemetry.shutdown()


def test_none_exporters_give_no_export_pipeline(clean_env):
    """OTEL_TRACES_EXPORTER=none and OTEL_METRICS_EXPORTER=none export nothing, as in the SDK."""
    clean_env.setenv("OTEL_TRACES_EXPORTER", "none")
    clean_env.setenv("OTEL_METRICS_EXPORTER", "none")
    telemetry = _from_env()
    assert _export_processors(telemetry) == []
    assert _readers(telemetry) == []
    telemetry.shutdown()


def test_console_metrics_exporter_and_export_interval(clean_env):
    """OTEL_METRICS_EXPORTER=console with OTEL_METRIC_EXPORT_INTERVAL gives a periodic console reader."""
    clean_env.setenv("OTEL_METRICS_EXPORTER", "console")
    clean_env.setenv("OTEL_METRIC_EXPORT_INTERVAL", "1234")
    telemetry = _from_env()
    reader, = _readers(telemetry)
    assert isinstance(reader, PeriodicExportingMetricReader)
    assert isinstance(reader._exporter, ConsoleMetricExporter)
    assert reader._export_interval_millis == 1234
    telemetry.shutdown()


def test_sampler_and_its_argument_apply(clean_env):
    """OTEL_TRACES_SAMPLER=parentbased_traceidratio and OTEL_TRACES_SAMPLER_ARG=0.25 make the sampler."""
    clean_env.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    clean_env.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    telemetry = _from_env()
    assert "TraceIdRatioBased{0.25}" in telemetry.tracer_provider.sampler.get_description()
    telemetry.shutdown()


def test_always_off_sampler_records_nothing(clean_env):
    """OTEL_TRACES_SAMPLER=always_off: spans are not recorded, so nothing reaches baggage or roll-up."""
    clean_env.setenv("OTEL_TRACES_SAMPLER", "always_off")
    telemetry = _from_env()
    span = telemetry.tracer_provider.get_tracer("t").start_span("x")
    assert not span.is_recording()
    telemetry.shutdown()


def test_batch_processor_variables_apply(clean_env):
    """OTEL_BSP_MAX_QUEUE_SIZE, _SCHEDULE_DELAY and _MAX_EXPORT_BATCH_SIZE configure the batch queue."""
    clean_env.setenv("OTEL_TRACES_EXPORTER", "console")
    clean_env.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4096")
    clean_env.setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
    clean_env.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "64")
    telemetry = _from_env()
    processor, = _export_processors(telemetry)
    batch = processor._batch_processor
    assert batch._max_queue_size == 4096
    assert batch._schedule_delay_millis == 250
    assert batch._max_export_batch_size == 64
    telemetry.shutdown()


def test_otlp_protocol_and_endpoint_apply(clean_env):
    """OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf and OTEL_EXPORTER_OTLP_ENDPOINT pick exporter and URL."""
    clean_env.setenv("OTEL_TRACES_EXPORTER", "otlp")
    clean_env.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    clean_env.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4999")
    telemetry = _from_env()
    processor, = _export_processors(telemetry)
    exporter = _final_exporter(processor)
    assert isinstance(exporter, HttpSpanExporter)
    assert exporter._endpoint == "http://127.0.0.1:4999/v1/traces"
    telemetry.shutdown()


def test_otlp_defaults_to_grpc_like_the_sdk(clean_env):
    """Without a protocol, otlp means the gRPC exporter, as in the SDK."""
    clean_env.setenv("OTEL_TRACES_EXPORTER", "otlp")
    telemetry = _from_env()
    processor, = _export_processors(telemetry)
    assert isinstance(_final_exporter(processor), GrpcSpanExporter)
    telemetry.shutdown()


def test_unknown_exporter_name_fails_like_the_sdk(clean_env):
    """An exporter name with no entry point raises the SDK's RuntimeError naming it (configure() catches)."""
    clean_env.setenv("OTEL_TRACES_EXPORTER", "no_such_exporter")
    with pytest.raises(RuntimeError, match="no_such_exporter"):
        _from_env()


def test_bad_otel_llm_variable_warns_once_and_still_builds(clean_env, caplog):
    """An invalid OTEL_LLM_* value gives one warning naming it, and the pipeline is built with the default."""
    from otel_llm.settings import load_settings, reset_warnings

    reset_warnings()
    clean_env.setenv("OTEL_LLM_ROLLUP_WINDOW_MS", "soon")
    with caplog.at_level(logging.WARNING):
        settings = load_settings()
        load_settings()
        telemetry = build_from_environment(settings)
    warnings = [record for record in caplog.records if "OTEL_LLM_ROLLUP_WINDOW_MS" in record.getMessage()]
    assert len(warnings) == 1
    assert settings.rollup_window_ms == Settings().rollup_window_ms
    telemetry.shutdown()


def _timing_warnings(caplog, *variables: str) -> list[str]:
    return [record.getMessage() for record in caplog.records
            if record.levelno == logging.WARNING and all(name in record.getMessage() for name in variables)]


@pytest.mark.parametrize("delay,window,warned", [
    ("5000", 2000, True),   # the SDK's default delay with otel-llm's window: late spans miss the window
    ("2000", 2000, True),
    ("500", 2000, False),   # otel-llm's defaults
    ("5000", 0, False),     # window 0: roll up at once, by choice
])
def test_batch_delay_not_under_the_window_warns_naming_both(built, clean_env, caplog, delay, window, warned):
    """OTEL_BSP_SCHEDULE_DELAY >= OTEL_LLM_ROLLUP_WINDOW_MS gives one warning naming both variables."""
    clean_env.setenv("OTEL_BSP_SCHEDULE_DELAY", delay)
    with caplog.at_level(logging.WARNING, logger="otel_llm.configure"):
        built(Settings(rollup_window_ms=window), exporters=2)
    warnings = _timing_warnings(caplog, "OTEL_BSP_SCHEDULE_DELAY", "OTEL_LLM_ROLLUP_WINDOW_MS")
    assert len(warnings) == (1 if warned else 0)


def test_unset_batch_delay_counts_as_the_sdk_default(built, clean_env, caplog):
    """Without the distro's default, the SDK's 5000 ms delay is compared with the 2000 ms window."""
    with caplog.at_level(logging.WARNING, logger="otel_llm.configure"):
        built(Settings())
    warning, = _timing_warnings(caplog, "OTEL_BSP_SCHEDULE_DELAY")
    assert "(5000 ms)" in warning and "(2000 ms)" in warning


@pytest.mark.parametrize("window,max_age,warned", [
    (5000, 1000, True),
    (1000, 1000, False),
    (500, 1000, False),
])
def test_window_larger_than_max_age_warns_naming_both(built, clean_env, caplog, window, max_age, warned):
    """OTEL_LLM_ROLLUP_WINDOW_MS > OTEL_LLM_ROLLUP_MAX_AGE_MS gives one warning naming both variables."""
    clean_env.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    with caplog.at_level(logging.WARNING, logger="otel_llm.configure"):
        built(Settings(rollup_window_ms=window, rollup_max_age_ms=max_age))
    warnings = _timing_warnings(caplog, "OTEL_LLM_ROLLUP_WINDOW_MS", "OTEL_LLM_ROLLUP_MAX_AGE_MS")
    assert len(warnings) == (1 if warned else 0)


def test_no_timing_warning_without_a_rollup_stage(built, clean_env, caplog):
    """OTEL_LLM_ROLLUP=false: nothing waits for late spans, so the delay is not questioned."""
    with caplog.at_level(logging.WARNING, logger="otel_llm.configure"):
        built(Settings(rollup="off", rollup_window_ms=5000, rollup_max_age_ms=1000))
    assert _timing_warnings(caplog, "OTEL_LLM_ROLLUP_WINDOW_MS") == []


def test_metric_log_lines_come_after_the_rollup(clean_env, tmp_path):
    """OTEL_LLM_METRIC_LOG=<file>: the request line names the provider the roll-up found beneath it."""
    log = tmp_path / "metric.log"
    clean_env.setenv("OTEL_LLM_METRIC_LOG", str(log))
    telemetry = build_from_environment(load_settings(overrides={"rollup_window_ms": 0}))
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes={"http.route": "/chat"}):
        with tracer.start_as_current_span("ChatBedrock", attributes=LLM_ATTRIBUTES):
            pass
    telemetry.shutdown()
    request_lines = [line for line in log.read_text().splitlines() if "event=request" in line]
    assert len(request_lines) == 1
    assert "provider=aws.bedrock" in request_lines[0]


def test_two_exporters_and_metric_lines_share_one_pipeline(clean_env, tmp_path, monkeypatch):
    """OTEL_TRACES_EXPORTER=otlp,console and METRIC lines: one batch processor and one roll-up stage read each
    span once; both exporters receive the same enriched spans, fallback mark included, and the METRIC line
    names the rolled-up provider. The control is the roll-up's own count of what it read."""
    log = tmp_path / "metric.log"
    clean_env.setenv("OTEL_LLM_METRIC_LOG", str(log))
    settings = load_settings(overrides={"rollup_window_ms": 0, "experiment_id": "exp"})
    reads: list[str] = []
    read = rollup_module._read

    def counted_read(span, *args):
        reads.append(span.name)
        return read(span, *args)

    monkeypatch.setattr(rollup_module, "_read", counted_read)
    exporters = [InMemorySpanExporter(), InMemorySpanExporter()]
    telemetry = build_from_environment(settings, span_exporters=exporters, metric_readers=[])
    assert len(_export_processors(telemetry)) == 1 and len(telemetry.rollup_stages) == 1
    tracer = telemetry.tracer_provider.get_tracer("test")
    # Assigned to an OpenAI arm, served by Bedrock: a fallback.
    arm = {semconv.EXPERIMENT_ARM: "openai:gpt-4o-mini", semconv.EXPERIMENT_PROVIDER: "openai",
           semconv.EXPERIMENT_MODEL: "gpt-4o-mini"}
    arm["http.route"] = "/chat"
    with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes=arm):
        with tracer.start_as_current_span("ChatBedrock", attributes=LLM_ATTRIBUTES):
            pass
    telemetry.shutdown()
    assert sorted(reads) == ["ChatBedrock", "POST /chat"]
    first, second = (exporter.get_finished_spans() for exporter in exporters)
    assert [span.name for span in first] == [span.name for span in second] == ["ChatBedrock", "POST /chat"]
    assert all(a.attributes == b.attributes for a, b in zip(first, second, strict=True))
    root = dict(first[1].attributes)
    assert root[semconv.ROLLUP_PROVIDER] == "aws.bedrock" and root[semconv.EXPERIMENT_FALLBACK] is True
    request_lines = [line for line in log.read_text().splitlines() if "event=request" in line]
    assert len(request_lines) == 1 and "provider=aws.bedrock" in request_lines[0]


def test_a_failing_exporter_does_not_stop_the_other(built):
    """One exporter that raises on every export: the other still receives every span, and only the failing
    one's delivery stage counts lost spans (export_failed at shutdown)."""
    pipeline = built(exporters=2)

    def broken(spans):
        raise RuntimeError("down on purpose")

    pipeline.exporters[0].export = broken
    pipeline.request_with_llm_call(flushed=False)  # the failing exporter's spans still wait
    assert set(pipeline.spans(1)) == {"POST /chat", "ChatBedrock"}
    pipeline.telemetry.shutdown()
    counts = [counter.counts() for counter in pipeline.telemetry.drop_counters]
    assert sum(count.get("export_failed", 0) for count in counts) == 2
    assert sum(1 for count in counts if count.get("export_failed")) == 1


# --- otel-llm's pipeline ----------------------------------------------------------------------------------


def test_baggage_becomes_attributes_before_export(built):
    """The baggage processor runs first: an allowlisted baggage entry is an attribute of every span."""
    pipeline = built()
    token = context.attach(baggage.set_baggage(semconv.EXPERIMENT_ARM, "b"))
    try:
        pipeline.request_with_llm_call()
    finally:
        context.detach(token)
    assert all(attributes[semconv.EXPERIMENT_ARM] == "b" for attributes in pipeline.spans().values())


def test_llm_span_is_normalised_and_rolled_up_to_the_root(built):
    """The LLM span leaves with gen_ai.provider.name=aws.bedrock; the request span carries the roll-up."""
    pipeline = built()
    pipeline.request_with_llm_call()
    spans = pipeline.spans()
    assert spans["ChatBedrock"][semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert spans["POST /chat"][semconv.ROLLUP_PROVIDER] == "aws.bedrock"
    assert spans["POST /chat"][semconv.ROLLUP_INPUT_TOKENS] == 12


def test_span_metrics_are_recorded_once_with_two_exporters(built):
    """Two span exporters each get the enriched spans, but the LLM call is one duration recording."""
    pipeline = built(exporters=2)
    pipeline.request_with_llm_call()
    assert pipeline.spans(1)["ChatBedrock"][semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    (_, point), = metric_points(pipeline.reader, semconv.METRIC_OPERATION_DURATION)
    assert point.count == 1
    pipeline.telemetry.force_flush()
    (_, point), = metric_points(pipeline.reader, semconv.METRIC_OPERATION_DURATION)
    assert point.count == 1


def test_span_metrics_can_be_switched_off(built):
    """OTEL_LLM_SPAN_METRICS=false: spans are still rolled up, no gen_ai.client.* metric is recorded."""
    pipeline = built(Settings(rollup_window_ms=0, span_metrics=False))
    pipeline.request_with_llm_call()
    assert semconv.ROLLUP_PROVIDER in pipeline.spans()["POST /chat"]
    assert metric_points(pipeline.reader, semconv.METRIC_OPERATION_DURATION) == []


def test_rollup_off_exports_spans_unchanged(built):
    """OTEL_LLM_ROLLUP=off: plain batch processor, no roll-up, no enrichment, no span metrics."""
    pipeline = built(Settings(rollup="off"))
    pipeline.request_with_llm_call()
    assert semconv.ROLLUP_PROVIDER not in pipeline.spans()["POST /chat"]
    assert semconv.GEN_AI_PROVIDER_NAME not in pipeline.spans()["ChatBedrock"]
    assert pipeline.telemetry.rollup_stages == ()
    assert metric_points(pipeline.reader, semconv.METRIC_OPERATION_DURATION) == []


def test_rollup_collector_normalises_each_span_without_buffering(built):
    """OTEL_LLM_ROLLUP=collector: LLM spans leave normalised; no roll-up stage, roll-up or span metrics."""
    pipeline = built(Settings(rollup="collector"))
    pipeline.request_with_llm_call()
    spans = pipeline.spans()
    assert spans["ChatBedrock"][semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert semconv.ROLLUP_PROVIDER not in spans["POST /chat"]
    assert pipeline.telemetry.rollup_stages == ()
    assert metric_points(pipeline.reader, semconv.METRIC_OPERATION_DURATION) == []


def test_rollup_collector_still_prices_each_llm_call(built):
    """OTEL_LLM_ROLLUP=collector: the LLM span leaves with its cost (the collector sums it, never prices);
    OTEL_LLM_COST=false is the control."""
    for cost, expected in ((True, {semconv.COST_AMOUNT, semconv.COST_CURRENCY, semconv.COST_SOURCE}),
                           (False, set())):
        pipeline = built(Settings(rollup="collector", cost=cost))
        pipeline.request_with_llm_call()
        llm_span = pipeline.spans()["ChatBedrock"]
        assert expected == {semconv.COST_AMOUNT, semconv.COST_CURRENCY, semconv.COST_SOURCE} & set(llm_span)
        if cost:
            assert llm_span[semconv.COST_AMOUNT] > 0 and llm_span[semconv.COST_CURRENCY] == "USD"


def test_cardinality_limit_setting_applies(built):
    """OTEL_LLM_METRICS_CARDINALITY_LIMIT=1: the second model's duration goes to the overflow series."""
    pipeline = built(Settings(rollup_window_ms=0, metrics_cardinality_limit=1))
    pipeline.request_with_llm_call()
    pipeline.request_with_llm_call(**{semconv.GEN_AI_REQUEST_MODEL: "anthropic.claude-3-sonnet-v1:0"})
    points = metric_points(pipeline.reader, semconv.METRIC_OPERATION_DURATION)
    models = {attrs.get(semconv.GEN_AI_REQUEST_MODEL, "overflow" if attrs.get(OVERFLOW_ATTRIBUTE) else None)
              for attrs, _ in points}
    assert models == {"anthropic.claude-3-haiku-20240307-v1:0", "overflow"}


def test_disabled_is_the_plain_sdk(built):
    """OTEL_LLM_ENABLED=false: plain providers and batch processors; no baggage, roll-up or GenAI views."""
    pipeline = built(Settings(enabled=False))
    token = context.attach(baggage.set_baggage(semconv.EXPERIMENT_ARM, "b"))
    try:
        pipeline.request_with_llm_call()
    finally:
        context.detach(token)
    spans = pipeline.spans()
    assert semconv.ROLLUP_PROVIDER not in spans["POST /chat"]
    assert semconv.EXPERIMENT_ARM not in spans["POST /chat"]
    assert semconv.GEN_AI_PROVIDER_NAME not in spans["ChatBedrock"]
    assert type(pipeline.telemetry.meter_provider) is MeterProvider
    assert type(pipeline.telemetry.tracer_provider) is TracerProvider


def test_a_broken_optional_piece_warns_and_is_left_out(built, monkeypatch, caplog):
    """If the baggage processor cannot be built, one warning names it and spans still flow with roll-up."""
    configure_module = sys.modules["otel_llm.configure"]

    def broken(*args, **kwargs):
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(configure_module, "BaggageAttributesProcessor", broken)
    with caplog.at_level(logging.WARNING, logger="otel_llm.configure"):
        pipeline = built()
    assert [record for record in caplog.records if "baggage" in record.getMessage()]
    pipeline.request_with_llm_call()
    assert semconv.ROLLUP_PROVIDER in pipeline.spans()["POST /chat"]


def test_a_broken_meter_piece_falls_back_to_the_sdk_meter_provider(built, monkeypatch, caplog):
    """If the views/cap cannot be built, the plain SDK MeterProvider records the span metrics instead."""
    configure_module = sys.modules["otel_llm.configure"]

    def broken():
        raise RuntimeError("broken on purpose")

    monkeypatch.setattr(configure_module, "genai_views", broken)
    with caplog.at_level(logging.WARNING, logger="otel_llm.configure"):
        pipeline = built()
    assert not isinstance(pipeline.telemetry.meter_provider, CardinalityLimitedMeterProvider)
    assert [record for record in caplog.records if "views" in record.getMessage()]
    pipeline.request_with_llm_call()
    assert len(metric_points(pipeline.reader, semconv.METRIC_OPERATION_DURATION)) == 1


def test_sdk_internal_metrics_go_to_our_meter_provider(built, clean_env):
    """OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED=true: the batch processors report to otel-llm's provider."""
    clean_env.setenv("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "true")
    pipeline = built()
    pipeline.request_with_llm_call()
    processed = metric_points(pipeline.reader, "otel.sdk.processor.span.processed")
    assert sum(point.value for _, point in processed) == 2


def test_shutdown_is_idempotent(built, monkeypatch, caplog):
    """A second shutdown shuts no provider down again and logs nothing."""
    telemetry = built().telemetry
    calls: list[str] = []

    def counted(provider):
        shutdown = provider.shutdown
        return lambda: (calls.append(type(provider).__name__), shutdown())

    for provider in (telemetry.tracer_provider, telemetry.meter_provider):
        monkeypatch.setattr(provider, "shutdown", counted(provider))
    telemetry.shutdown()
    shut_down_once = ["TracerProvider", "CardinalityLimitedMeterProvider"]  # tracing first: it feeds metrics
    assert calls == shut_down_once
    caplog.clear()
    with caplog.at_level(logging.DEBUG):
        telemetry.shutdown()
    assert calls == shut_down_once
    assert caplog.records == []


# --- configure(): process-global, so each case runs in a fresh interpreter --------------------------------


def _run(code: str, **env: str) -> dict:
    environ = {name: value for name, value in os.environ.items() if not name.startswith("OTEL_")}
    environ.update(env)
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env=environ, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return {**json.loads(result.stdout.strip().splitlines()[-1]), "stderr": result.stderr}


def test_configure_is_idempotent_and_installs_globals():
    """configure() twice returns one Telemetry, its providers global; the propagators include ours."""
    out = _run("""
        import json, otel_llm
        from opentelemetry import metrics, propagate, trace
        first = otel_llm.configure(rollup_window_ms=100)
        second = otel_llm.configure(rollup_window_ms=999)
        print(json.dumps({
            "same": first is second,
            "global_tracer": trace.get_tracer_provider() is first.tracer_provider,
            "global_meter": metrics.get_meter_provider() is first.meter_provider,
            "window": first.settings.rollup_window_ms,
            "propagators": sorted(type(p).__name__ for p in propagate.get_global_textmap()._propagators),
            "queue": __import__("os").environ["OTEL_BSP_MAX_QUEUE_SIZE"],
        }))
        first.shutdown()
    """, OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    assert out["same"] and out["global_tracer"] and out["global_meter"]
    assert out["window"] == 100
    assert out["propagators"] == ["EdgeBaggagePropagator", "TraceContextTextMapPropagator"]
    assert out["queue"] == "32768"


def test_configure_disabled_installs_the_plain_sdk():
    """OTEL_LLM_ENABLED=false: configure() installs plain providers and leaves env and propagators alone."""
    out = _run("""
        import json, os, otel_llm
        from opentelemetry import propagate
        telemetry = otel_llm.configure()
        print(json.dumps({
            "stages": len(telemetry.rollup_stages),
            "meter": type(telemetry.meter_provider).__name__,
            "queue_default_set": "OTEL_BSP_MAX_QUEUE_SIZE" in os.environ,
            "propagators": sorted(type(p).__name__ for p in propagate.get_global_textmap()._propagators),
        }))
    """, OTEL_LLM_ENABLED="false", OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none")
    assert out == {**out, "stages": 0, "meter": "MeterProvider", "queue_default_set": False,
                   "propagators": ["TraceContextTextMapPropagator", "W3CBaggagePropagator"]}


def test_configure_never_raises_for_a_broken_environment():
    """An unknown OTEL_TRACES_EXPORTER: one warning naming it, and configure() installs with the default."""
    out = _run("""
        import json, otel_llm
        print(json.dumps({"result": repr(otel_llm.configure())}))
    """, OTEL_TRACES_EXPORTER="no_such_exporter")
    assert out["result"].startswith("Telemetry(")
    assert out["stderr"].count("'no_such_exporter' for OTEL_TRACES_EXPORTER") == 1


def test_configure_ignores_unknown_and_bad_overrides_with_a_warning():
    """An unknown keyword and a bad value each warn, naming the setting; configure() still installs."""
    out = _run("""
        import json, otel_llm
        telemetry = otel_llm.configure(rollup_windw_ms=5, rollup_window_ms=-1, baggage_trust_incoming="yes")
        print(json.dumps({
            "window": telemetry.settings.rollup_window_ms,
            "trust": telemetry.settings.baggage_trust_incoming,
            "stages": len(telemetry.rollup_stages),
        }))
        telemetry.shutdown()
    """, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none")
    assert out == {**out, "window": Settings().rollup_window_ms, "trust": True, "stages": 1}
    assert "unknown setting(s) rollup_windw_ms ignored" in out["stderr"]
    assert "setting 'rollup_window_ms'" in out["stderr"] and "from 0 to 600000" in out["stderr"]
    assert "window_s" not in out["stderr"]  # the roll-up stage was built with the default, not rejected


def test_configure_reads_a_string_override_like_the_variable():
    """configure(enabled="false") is the plain SDK, as OTEL_LLM_ENABLED=false is (not a truthy string)."""
    out = _run("""
        import json, otel_llm
        telemetry = otel_llm.configure(enabled="false")
        print(json.dumps({"stages": len(telemetry.rollup_stages),
                          "meter": type(telemetry.meter_provider).__name__}))
    """, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none")
    assert out == {**out, "stages": 0, "meter": "MeterProvider"}


def test_configure_overrides_reach_experiments_metric_lines_and_langchain(tmp_path):
    """configure(experiment_arms=..., metric_log=..., langchain_max_open_runs=...) with no OTEL_LLM_*
    variable set: fallback detection runs and marks the root, the METRIC lines are written, the app-side
    experiment and the LangChain instrumentor see the overrides. Control: a process without them."""
    code = """
        import json, otel_llm
        from opentelemetry.trace import SpanKind
        from otel_llm import semconv
        from otel_llm.experiment import experiment_from_env
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from otel_llm.instrumentation.langchain import LangChainInstrumentor
        sink = InMemorySpanExporter()
        telemetry = otel_llm.configure(span_exporters=[sink], rollup_window_ms=0, **json.loads(OVERRIDES))
        instrumentor = LangChainInstrumentor()
        instrumentor.instrument()
        experiment = experiment_from_env()
        tracer = telemetry.tracer_provider.get_tracer("t")
        arm = {semconv.EXPERIMENT_ARM: "openai:gpt-4o-mini", "http.route": "/chat"}
        with tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER, attributes=arm):
            with tracer.start_as_current_span("ChatBedrock", attributes={
                    semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "aws.bedrock",
                    semconv.GEN_AI_REQUEST_MODEL: "nova"}):
                pass
        telemetry.shutdown()
        print(json.dumps({
            "arms": [a.name for a in experiment.arms] if experiment else None,
            "fallback": [s.attributes.get(semconv.EXPERIMENT_FALLBACK) for s in sink.get_finished_spans()],
            "max_open_runs": instrumentor.handler._max_open_runs,
        }))
    """
    log = tmp_path / "metric.log"
    overrides = json.dumps({"experiment_arms": "openai:gpt-4o-mini", "metric_log": str(log),
                            "langchain_max_open_runs": 7})
    with_overrides = _run(code.replace("OVERRIDES", repr(overrides)), OTEL_METRICS_EXPORTER="none")
    control = _run(code.replace("OVERRIDES", "'{}'"), OTEL_METRICS_EXPORTER="none")
    assert with_overrides == {**with_overrides, "arms": ["openai:gpt-4o-mini"], "fallback": [None, True],
                              "max_open_runs": 7}
    assert control == {**control, "arms": None, "fallback": [None, None], "max_open_runs": 10_000}
    (request_line,) = [line for line in log.read_text().splitlines() if "event=request" in line]
    assert "provider=aws.bedrock" in request_line


def test_configurator_entry_point_configures_from_the_environment():
    """OtelLLMConfigurator, as opentelemetry-instrument calls it, installs the roll-up pipeline globally."""
    out = _run("""
        import json
        from opentelemetry import trace
        from otel_llm.configure import OtelLLMConfigurator
        import otel_llm
        OtelLLMConfigurator().configure(auto_instrumentation_version="0.66b2")
        telemetry = otel_llm.configure()
        print(json.dumps({
            "global": trace.get_tracer_provider() is telemetry.tracer_provider,
            "stages": len(telemetry.rollup_stages),
            "auto_version": telemetry.tracer_provider.resource.attributes.get("telemetry.auto.version"),
            "service": telemetry.tracer_provider.resource.attributes.get("service.name"),
        }))
        telemetry.shutdown()
    """, OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none", OTEL_SERVICE_NAME="svc")
    assert out == {**out, "global": True, "stages": 1, "auto_version": "0.66b2", "service": "svc"}


def test_disabled_configurator_is_the_sdks():
    """OTEL_LLM_ENABLED=false under the launcher: the SDK's configuration, plain batch processors only."""
    out = _run("""
        import json
        from opentelemetry import trace
        from otel_llm.configure import OtelLLMConfigurator
        OtelLLMConfigurator().configure()
        processors = trace.get_tracer_provider()._active_span_processor._span_processors
        print(json.dumps({"processors": [type(p).__name__ for p in processors]}))
    """, OTEL_LLM_ENABLED="false", OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none")
    assert out["processors"] == ["BatchSpanProcessor"]


def test_configure_overrides_reach_the_edge_propagator():
    """configure(baggage_trust_incoming=True) makes the edge propagator keep allowlisted incoming baggage."""
    out = _run("""
        import json, otel_llm
        from opentelemetry import baggage, propagate
        otel_llm.configure(baggage_trust_incoming=True)
        context = propagate.extract({"baggage": "session.id=s-1,user.id=u-1", "traceparent": "x"})
        print(json.dumps({
            "baggage": dict(baggage.get_all(context)),
            "propagators": [type(p).__name__ for p in propagate.get_global_textmap()._propagators],
        }))
    """, OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none")
    assert out["baggage"] == {"session.id": "s-1"}  # trusted, and only the allowlisted key
    assert out["propagators"] == ["TraceContextTextMapPropagator", "EdgeBaggagePropagator"]
