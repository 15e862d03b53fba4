"""Provider/model cardinality cap on gen_ai.* instruments, via the MeterProvider otel-llm installs."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, set_span_in_context, use_span

from otel_llm import semconv
from otel_llm.metrics.cardinality import (
    OVERFLOW_ATTRIBUTE_KEY,
    OVERFLOW_METRIC,
    OVERFLOW_METRIC_NAME_KEY,
    OVERFLOW_VALUE,
    CardinalityLimitedMeterProvider,
)
from otel_llm.metrics.recorded import RecordedCalls
from otel_llm.metrics.views import genai_views
from tests.support.metric_points import metric_points

DURATION = semconv.METRIC_OPERATION_DURATION
MODEL = semconv.GEN_AI_REQUEST_MODEL
PROVIDER = semconv.GEN_AI_PROVIDER_NAME


class Pipeline:
    def __init__(self, limit: int) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = CardinalityLimitedMeterProvider(
            metric_readers=[self.reader], views=genai_views(), cardinality_limit=limit
        )

    def histogram(self, name: str = DURATION, scope: str = "opentelemetry.instrumentation.openai_v2"):
        return self.provider.get_meter(scope).create_histogram(name, "s")

    def values(self, name: str, key: str) -> dict:
        """value of ``key`` -> number of recordings, summed over the other attributes."""
        counts: dict = {}
        for attributes, point in metric_points(self.reader, name):
            counts[attributes.get(key)] = counts.get(attributes.get(key), 0) + point.count
        return counts

    def overflow(self) -> dict:
        return {
            (attributes[OVERFLOW_METRIC_NAME_KEY], attributes[OVERFLOW_ATTRIBUTE_KEY]): point.value
            for attributes, point in metric_points(self.reader, OVERFLOW_METRIC)
        }


@pytest.fixture
def pipeline():
    pipeline = Pipeline(limit=3)
    yield pipeline
    pipeline.provider.shutdown()


def test_values_within_the_cap_are_kept(pipeline):
    """Up to N distinct models are recorded as themselves and nothing overflows."""
    histogram = pipeline.histogram()
    for model in ("a", "b", "c", "a"):
        histogram.record(1.0, {MODEL: model, PROVIDER: "openai"})
    assert pipeline.values(DURATION, MODEL) == {"a": 2, "b": 1, "c": 1}
    assert pipeline.overflow() == {}


def test_values_past_the_cap_become_other_and_are_counted(pipeline):
    """The 4th and 5th distinct models fold into _OTHER; the overflow counter names instrument and key."""
    histogram = pipeline.histogram()
    for model in ("a", "b", "c", "d", "e"):
        histogram.record(1.0, {MODEL: model, semconv.GEN_AI_OPERATION_NAME: "chat"})
    assert pipeline.values(DURATION, MODEL) == {"a": 1, "b": 1, "c": 1, OVERFLOW_VALUE: 2}
    other = [attrs for attrs, _ in metric_points(pipeline.reader, DURATION) if attrs[MODEL] == OVERFLOW_VALUE]
    assert other[0][semconv.GEN_AI_OPERATION_NAME] == "chat"  # the other attributes survive
    assert pipeline.overflow() == {(DURATION, MODEL): 2}


def test_values_admitted_before_the_cap_keep_their_series(pipeline):
    """After the cap is reached, an already-seen model is still recorded under its own name."""
    histogram = pipeline.histogram()
    for model in ("a", "b", "c", "d", "a"):
        histogram.record(1.0, {MODEL: model})
    assert pipeline.values(DURATION, MODEL)["a"] == 2


def test_provider_and_model_are_capped_independently(pipeline):
    """Each capped key has its own N: many models under one provider fold only the model."""
    histogram = pipeline.histogram()
    for index in range(5):
        histogram.record(1.0, {PROVIDER: "openai", MODEL: f"m{index}", semconv.GEN_AI_RESPONSE_MODEL: "r"})
    assert pipeline.values(DURATION, PROVIDER) == {"openai": 5}
    assert pipeline.overflow() == {(DURATION, MODEL): 2}


@pytest.mark.parametrize("key", [semconv.EXPERIMENT_ID, semconv.EXPERIMENT_ARM, semconv.LANGGRAPH_NODE])
def test_experiment_and_node_values_are_capped_too(pipeline, key):
    """Forged arm or experiment values (trusted client baggage) and generated nodes fold past the cap."""
    name = "gen_ai.client.requests"  # no view, so every attribute is kept
    counter = pipeline.provider.get_meter("x").create_counter(name)
    for value in ("a", "b", "c", "forged-1", "forged-2"):
        counter.add(1, {PROVIDER: "openai", key: value})
    points = {attrs[key]: point.value for attrs, point in metric_points(pipeline.reader, name)}
    assert points == {"a": 1, "b": 1, "c": 1, OVERFLOW_VALUE: 2}
    assert pipeline.overflow() == {(name, key): 2}


def test_the_cap_is_per_instrument_name_across_meters(pipeline):
    """Two scopes creating the same instrument share one cap; another instrument has its own."""
    first = pipeline.histogram(scope="one")
    second = pipeline.histogram(scope="two")
    tokens = pipeline.histogram(semconv.METRIC_TOKEN_USAGE, scope="two")
    for model in ("a", "b", "c"):
        first.record(1.0, {MODEL: model})
    second.record(1.0, {MODEL: "d"})
    tokens.record(10, {MODEL: "d", semconv.GEN_AI_TOKEN_TYPE: "input"})
    assert pipeline.overflow() == {(DURATION, MODEL): 1}
    assert pipeline.values(semconv.METRIC_TOKEN_USAGE, MODEL) == {"d": 1}


def test_instrument_names_match_case_insensitively(pipeline):
    """GEN_AI.CLIENT.OPERATION.DURATION is the same instrument to the SDK and to the cap."""
    upper = pipeline.histogram(DURATION.upper())
    for model in ("a", "b", "c", "d"):
        upper.record(1.0, {MODEL: model})
    assert pipeline.overflow() == {(DURATION, MODEL): 1}


def test_genai_counters_are_capped_too(pipeline):
    """A gen_ai.* counter (as OpenLLMetry creates) folds over-cap models like a histogram."""
    counter = pipeline.provider.get_meter("x").create_counter("gen_ai.client.generation.choices")
    for model in ("a", "b", "c", "d"):
        counter.add(1, {MODEL: model})
    points = {attrs[MODEL]: point.value for attrs, point in
              metric_points(pipeline.reader, "gen_ai.client.generation.choices")}
    assert points == {"a": 1, "b": 1, "c": 1, OVERFLOW_VALUE: 1}


def test_other_instruments_are_not_wrapped(pipeline):
    """Non-GenAI instruments are the SDK's own objects: no cost, no cap."""
    meter = pipeline.provider.get_meter("app")
    histogram = meter.create_histogram("http.client.duration")
    assert type(histogram).__module__.startswith("opentelemetry.sdk")
    for index in range(10):
        histogram.record(1.0, {MODEL: f"m{index}"})
    assert len(pipeline.values("http.client.duration", MODEL)) == 10


def test_get_meter_returns_the_same_meter_for_the_same_scope(pipeline):
    """Repeated get_meter calls give one wrapper, as the SDK gives one Meter per scope."""
    assert pipeline.provider.get_meter("a") is pipeline.provider.get_meter("a")


def test_concurrent_recordings_admit_exactly_n_values():
    """Eight threads racing with distinct models admit exactly N; every other recording is _OTHER."""
    pipeline = Pipeline(limit=5)
    histogram = pipeline.histogram()
    start = threading.Barrier(8)

    def work(worker: int) -> None:
        start.wait()
        for index in range(50):
            histogram.record(1.0, {MODEL: f"w{worker}-m{index}"})

    threads = [threading.Thread(target=work, args=(worker,)) for worker in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    values = pipeline.values(DURATION, MODEL)
    assert len(values) == 6  # five admitted models and _OTHER
    assert values[OVERFLOW_VALUE] == 8 * 50 - 5
    assert pipeline.overflow() == {(DURATION, MODEL): 8 * 50 - 5}
    pipeline.provider.shutdown()


@pytest.mark.parametrize("attributes", [None, {}, {semconv.GEN_AI_OPERATION_NAME: "chat"}])
def test_recordings_without_capped_keys_pass_through(pipeline, attributes):
    """None, empty and provider-less attributes are recorded unchanged."""
    pipeline.histogram().record(1.0, attributes)
    (recorded, _), = metric_points(pipeline.reader, DURATION)
    assert recorded == dict(attributes or {})


def test_unhashable_values_fold_to_other(pipeline):
    """A list as a model (bad input) cannot be admitted and is recorded as _OTHER."""
    pipeline.histogram().record(1.0, {MODEL: ["a", "b"]})
    assert pipeline.values(DURATION, MODEL) == {OVERFLOW_VALUE: 1}


def test_a_failing_limiter_never_raises_into_the_caller(pipeline, caplog):
    """Attributes whose lookup raises are recorded as given, with one warning, and the caller goes on."""

    class Hostile(dict):
        def get(self, key, default=None):
            raise RuntimeError("boom")

    histogram = pipeline.histogram()
    with caplog.at_level(logging.WARNING, logger="otel_llm.metrics.cardinality"):
        histogram.record(1.0, Hostile({MODEL: "a"}))
        histogram.record(1.0, Hostile({MODEL: "a"}))
    assert pipeline.values(DURATION, MODEL) == {"a": 2}
    assert len([record for record in caplog.records if "cardinality" in record.getMessage()]) <= 1


@pytest.mark.parametrize("limit", [0, -1, True, 1.5, "10", None])
def test_invalid_limits_are_rejected_at_construction(limit):
    """cardinality_limit must be a positive int; the error names the parameter."""
    with pytest.raises(ValueError, match="cardinality_limit"):
        CardinalityLimitedMeterProvider(cardinality_limit=limit)


def test_instruments_created_before_the_provider_is_set_are_capped():
    """An instrumentation's histogram made from the API proxy before configure() is capped once it is set."""
    code = textwrap.dedent("""
        from opentelemetry import metrics
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader
        from otel_llm.metrics.cardinality import CardinalityLimitedMeterProvider
        meter = metrics.get_meter("early.instrumentation")
        early = meter.create_histogram("gen_ai.client.operation.duration")
        reader = InMemoryMetricReader()
        metrics.set_meter_provider(CardinalityLimitedMeterProvider([reader], cardinality_limit=1))
        for model in ("a", "b", "c"):
            early.record(1.0, {"gen_ai.request.model": model})
        points = [point for rm in reader.get_metrics_data().resource_metrics for sm in rm.scope_metrics
                  for metric in sm.metrics if metric.name == "gen_ai.client.operation.duration"
                  for point in metric.data.data_points]
        print(sorted((point.attributes["gen_ai.request.model"], point.count) for point in points))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=True)
    assert result.stdout.strip() == "[('_OTHER', 2), ('a', 1)]"


class TestProviderLabelOfInstrumentations:
    """The provider label of instrumentations' own GenAI points, fixed before the views drop gen_ai.system."""

    def test_deprecated_system_becomes_the_provider(self):
        """botocore records gen_ai.system=aws.bedrock only: the point keeps gen_ai.provider.name=aws.bedrock
        (without otel-llm's translation the view's allowlist leaves it with no provider at all)."""
        pipeline = Pipeline(limit=10)
        pipeline.histogram(scope="opentelemetry.instrumentation.botocore.bedrock-runtime").record(
            1.0, {semconv.GEN_AI_SYSTEM: "aws.bedrock", MODEL: "anthropic.claude-3-haiku-20240307-v1:0"})
        (attributes, _), = metric_points(pipeline.reader, DURATION)
        assert attributes[PROVIDER] == "aws.bedrock" and semconv.GEN_AI_SYSTEM not in attributes

    def test_azure_host_wins_over_the_recorded_provider(self):
        """openai-v2 records provider openai for Azure OpenAI; the server address says azure.ai.openai."""
        pipeline = Pipeline(limit=10)
        pipeline.histogram(scope="opentelemetry.util.genai.handler").record(
            1.0, {PROVIDER: "openai", semconv.SERVER_ADDRESS: "res.openai.azure.com"})
        (attributes, _), = metric_points(pipeline.reader, DURATION)
        assert attributes[PROVIDER] == "azure.ai.openai"


class TestRecordedCalls:
    """Which calls instrumentations recorded GenAI duration/token metrics for, as span-derived metrics see."""

    def test_a_recording_notes_its_scope_and_current_span(self):
        """An instrumentation's duration recording inside its span notes the meter's scope and the span id."""
        pipeline = Pipeline(limit=10)
        span = TracerProvider().get_tracer("t").start_span("chat")
        with use_span(span, end_on_exit=True):
            pipeline.histogram(scope="opentelemetry.util.genai.handler").record(1.0, {})
        recorded = pipeline.provider.recorded_calls
        assert recorded.scopes == {"opentelemetry.util.genai.handler"}
        assert recorded.covers((), (span.get_span_context().span_id,))
        assert not recorded.covers(("other.scope",), (12345,))

    def test_own_meters_and_other_instruments_are_not_noted(self):
        """otel-llm's own GenAI recordings, and instruments other than duration and token usage, note
        nothing."""
        pipeline = Pipeline(limit=10)
        pipeline.histogram(scope="otel_llm.metrics.from_spans").record(1.0, {})
        pipeline.histogram(semconv.METRIC_TIME_TO_FIRST_CHUNK, scope="vendor").record(1.0, {})
        assert pipeline.provider.recorded_calls.scopes == frozenset()

    def test_span_ids_are_bounded(self):
        """Past max_span_ids the oldest span ids are forgotten."""
        recorded = RecordedCalls(max_span_ids=2)
        for span_id in (1, 2, 3):
            context = set_span_in_context(NonRecordingSpan(SpanContext(1, span_id, False)))
            recorded.note("scope", context)
        assert not recorded.covers((), (1,)) and recorded.covers((), (2, 3))
        with pytest.raises(ValueError, match="max_span_ids"):
            RecordedCalls(max_span_ids=0)
