"""The series cap on gen_ai.* instruments (otel_llm.metrics.cardinality), via the MeterProvider otel-llm
installs, with the GenAI views: series per instrument stay under the documented bound whatever arrives."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import textwrap
import threading

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, set_span_in_context, use_span

from otel_llm import semconv
from otel_llm.metrics.cardinality import (
    MAX_OVERFLOW_SERIES,
    OVERFLOW_ATTRIBUTE,
    OVERFLOW_METRIC,
    OVERFLOW_METRIC_NAME_KEY,
    OVERFLOW_VALUE,
    CardinalityLimitedMeterProvider,
    sdk_cardinality_limit,
)
from otel_llm.metrics.recorded import RecordedCalls
from otel_llm.metrics.views import GENAI_METRIC_VIEWS, genai_views
from tests.support.metric_points import metric_points

DURATION = semconv.METRIC_OPERATION_DURATION
TOKENS = semconv.METRIC_TOKEN_USAGE
MODEL = semconv.GEN_AI_REQUEST_MODEL
PROVIDER = semconv.GEN_AI_PROVIDER_NAME
DISTINCT = 10_000


class Pipeline:
    def __init__(self, limit: int) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = CardinalityLimitedMeterProvider(
            metric_readers=[self.reader], views=genai_views(sdk_cardinality_limit(limit)),
            cardinality_limit=limit,
        )

    def histogram(self, name: str = DURATION, scope: str = "opentelemetry.instrumentation.openai_v2"):
        return self.provider.get_meter(scope).create_histogram(name, "s")

    def series(self, name: str = DURATION) -> list[dict]:
        return [attributes for attributes, _ in metric_points(self.reader, name)]

    def values(self, name: str, key: str) -> dict:
        """value of ``key`` -> number of recordings, summed over the other attributes."""
        counts: dict = {}
        for attributes, point in metric_points(self.reader, name):
            counts[attributes.get(key)] = counts.get(attributes.get(key), 0) + point.count
        return counts

    def overflow(self) -> dict:
        return {attributes[OVERFLOW_METRIC_NAME_KEY]: point.value
                for attributes, point in metric_points(self.reader, OVERFLOW_METRIC)}


@pytest.fixture
def pipeline():
    pipeline = Pipeline(limit=3)
    yield pipeline
    pipeline.provider.shutdown()


def test_series_within_the_cap_are_kept(pipeline):
    """Up to N distinct label combinations are recorded as themselves and nothing overflows."""
    histogram = pipeline.histogram()
    for model in ("a", "b", "c", "a"):
        histogram.record(1.0, {MODEL: model, PROVIDER: "openai"})
    assert pipeline.values(DURATION, MODEL) == {"a": 2, "b": 1, "c": 1}
    assert pipeline.overflow() == {}


def test_series_past_the_cap_go_to_one_overflow_series_keeping_the_provider(pipeline):
    """The 4th and 5th combinations land on otel.metric.overflow=true with their provider, counted."""
    histogram = pipeline.histogram()
    for model in ("a", "b", "c", "d", "e"):
        histogram.record(1.0, {MODEL: model, PROVIDER: "openai", semconv.GEN_AI_OPERATION_NAME: "chat"})
    overflow = [attrs for attrs in pipeline.series() if attrs.get(OVERFLOW_ATTRIBUTE)]
    assert overflow == [{OVERFLOW_ATTRIBUTE: True, PROVIDER: "openai"}]
    assert pipeline.values(DURATION, MODEL) == {"a": 1, "b": 1, "c": 1, None: 2}
    assert pipeline.overflow() == {DURATION: 2}


def test_a_forged_provider_overflows_as_other(pipeline):
    """Past the cap, a provider that is not a canonical one is not kept: _OTHER."""
    histogram = pipeline.histogram()
    for index in range(5):
        histogram.record(1.0, {PROVIDER: f"evil-{index}"})
    assert {attrs[PROVIDER] for attrs in pipeline.series()} == {"evil-0", "evil-1", "evil-2", OVERFLOW_VALUE}


def test_the_overflow_keeps_input_and_output_tokens_apart(pipeline):
    """Token usage past the cap keeps gen_ai.token.type, so input and output never sum together."""
    histogram = pipeline.histogram(TOKENS)
    for index in range(6):
        for token_type in ("input", "output"):
            histogram.record(10, {MODEL: f"m{index}", semconv.GEN_AI_TOKEN_TYPE: token_type})
    overflow = sorted(attrs[semconv.GEN_AI_TOKEN_TYPE] for attrs in pipeline.series(TOKENS)
                      if attrs.get(OVERFLOW_ATTRIBUTE))
    assert overflow == ["input", "output"]


def test_series_admitted_before_the_cap_keep_their_points(pipeline):
    """After the cap is reached, an admitted combination is still recorded on its own series."""
    histogram = pipeline.histogram()
    for model in ("a", "b", "c", "d", "a"):
        histogram.record(1.0, {MODEL: model})
    assert pipeline.values(DURATION, MODEL)["a"] == 2


def test_labels_the_view_drops_do_not_count_as_series(pipeline):
    """A session id (not in the view's allowlist) never becomes a label, so it never uses up the cap."""
    histogram = pipeline.histogram()
    for index in range(50):
        histogram.record(1.0, {MODEL: "a", semconv.SESSION_ID: f"s{index}"})
    assert pipeline.overflow() == {}
    assert pipeline.series() == [{MODEL: "a"}]


def test_the_cap_is_per_instrument_name_across_meters(pipeline):
    """Two scopes creating the same instrument share one cap; another instrument has its own."""
    first = pipeline.histogram(scope="one")
    second = pipeline.histogram(scope="two")
    tokens = pipeline.histogram(TOKENS, scope="two")
    for model in ("a", "b", "c"):
        first.record(1.0, {MODEL: model})
    second.record(1.0, {MODEL: "d"})
    tokens.record(10, {MODEL: "d", semconv.GEN_AI_TOKEN_TYPE: "input"})
    assert pipeline.overflow() == {DURATION: 1}
    assert pipeline.values(TOKENS, MODEL) == {"d": 1}


def test_instrument_names_match_case_insensitively(pipeline):
    """GEN_AI.CLIENT.OPERATION.DURATION is the same instrument to the SDK and to the cap."""
    upper = pipeline.histogram(DURATION.upper())
    for model in ("a", "b", "c", "d"):
        upper.record(1.0, {MODEL: model})
    assert pipeline.overflow() == {DURATION: 1}


def test_genai_counters_without_a_view_cap_every_attribute_combination(pipeline):
    """A gen_ai.* counter (as OpenLLMetry creates) has no view: each attribute set is a series, capped."""
    name = "gen_ai.client.generation.choices"
    counter = pipeline.provider.get_meter("x").create_counter(name)
    for key in (semconv.EXPERIMENT_ARM, "some.attribute"):
        for value in ("a", "b", "c"):
            counter.add(1, {PROVIDER: "openai", key: value})
    assert len(pipeline.series(name)) == 3 + 1
    assert pipeline.overflow() == {name: 3}


def test_other_instruments_are_not_wrapped(pipeline):
    """Non-GenAI instruments are the SDK's own objects: no cost, no cap."""
    meter = pipeline.provider.get_meter("app")
    histogram = meter.create_histogram("http.client.duration")
    assert type(histogram).__module__.startswith("opentelemetry.sdk")
    for index in range(10):
        histogram.record(1.0, {MODEL: f"m{index}"})
    assert len(pipeline.values("http.client.duration", MODEL)) == 10


class TestHostileValues:
    """10^4 distinct values of each label the views allow, and of a cross product: series stay bounded."""

    LIMIT = 50

    @pytest.mark.parametrize(("name", "key"), sorted(
        (name, key) for name, (_, allowed) in GENAI_METRIC_VIEWS.items() for key in allowed
        if key != OVERFLOW_ATTRIBUTE and name in (DURATION, TOKENS)))
    def test_distinct_values_of_each_allowed_label(self, name, key):
        """Each label of the duration and token histograms, 10^4 values: at most LIMIT + overflow series."""
        pipeline = Pipeline(self.LIMIT)
        histogram = pipeline.histogram(name)
        for index in range(DISTINCT):
            histogram.record(1.0, {PROVIDER: "openai", semconv.GEN_AI_TOKEN_TYPE: "input", key: f"v{index}"})
        series = pipeline.series(name)
        assert self.LIMIT < len(series) <= self.LIMIT + MAX_OVERFLOW_SERIES
        assert not any(attrs.get("otel.metric.overflow") and PROVIDER not in attrs for attrs in series)
        assert pipeline.overflow() == {name: DISTINCT - self.LIMIT}
        pipeline.provider.shutdown()

    def test_cross_product_of_request_and_response_models(self):
        """100 request models x 100 response models: LIMIT series plus one overflow series per provider."""
        pipeline = Pipeline(self.LIMIT)
        histogram = pipeline.histogram()
        for request, response in itertools.product(range(100), repeat=2):
            provider = ("openai", "anthropic")[request % 2]
            histogram.record(1.0, {PROVIDER: provider, MODEL: f"q{request}",
                                   semconv.GEN_AI_RESPONSE_MODEL: f"r{response}"})
        overflow = [attrs for attrs in pipeline.series() if attrs.get(OVERFLOW_ATTRIBUTE)]
        assert len(pipeline.series()) == self.LIMIT + 2
        assert sorted(attrs[PROVIDER] for attrs in overflow) == ["anthropic", "openai"]
        pipeline.provider.shutdown()

    def test_cross_product_of_every_allowed_label(self):
        """10^4 points, each with a fresh value in every allowed label at once: still bounded."""
        pipeline = Pipeline(self.LIMIT)
        histogram = pipeline.histogram()
        _, allowed = GENAI_METRIC_VIEWS[DURATION]
        for index in range(DISTINCT):
            histogram.record(1.0, {key: f"{key}-{index}" for key in allowed if key != OVERFLOW_ATTRIBUTE})
        assert len(pipeline.series()) == self.LIMIT + 1  # forged providers overflow as one _OTHER series
        pipeline.provider.shutdown()

    def test_without_the_cap_the_sdk_loses_every_attribute(self):
        """Control: the SDK alone folds past 2000 series into an overflow series with no provider."""
        reader = InMemoryMetricReader()
        provider = MeterProvider(metric_readers=[reader], views=genai_views())
        histogram = provider.get_meter("x").create_histogram(DURATION)
        for index in range(DISTINCT):
            histogram.record(1.0, {PROVIDER: "openai", MODEL: f"m{index}"})
        overflow = [attrs for attrs, _ in metric_points(reader, DURATION) if attrs.get(OVERFLOW_ATTRIBUTE)]
        assert overflow == [{OVERFLOW_ATTRIBUTE: True}]
        provider.shutdown()


def test_get_meter_returns_the_same_meter_for_the_same_scope(pipeline):
    """Repeated get_meter calls give one wrapper, as the SDK gives one Meter per scope."""
    assert pipeline.provider.get_meter("a") is pipeline.provider.get_meter("a")


def test_concurrent_recordings_admit_exactly_n_values():
    """Eight threads racing with distinct models admit exactly N; every other recording overflows."""
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
    assert len(values) == 6  # five admitted models and the overflow series (no model)
    assert values[None] == 8 * 50 - 5
    assert pipeline.overflow() == {DURATION: 8 * 50 - 5}
    pipeline.provider.shutdown()


@pytest.mark.parametrize("attributes", [None, {}, {semconv.GEN_AI_OPERATION_NAME: "chat"}])
def test_recordings_without_labels_pass_through(pipeline, attributes):
    """None, empty and provider-less attributes are recorded unchanged (one series each)."""
    pipeline.histogram().record(1.0, attributes)
    (recorded, _), = metric_points(pipeline.reader, DURATION)
    assert recorded == dict(attributes or {})


def test_unhashable_values_overflow(pipeline):
    """A list as a model (bad input) cannot be admitted and is recorded on the overflow series."""
    pipeline.histogram().record(1.0, {MODEL: ["a", "b"], PROVIDER: "openai"})
    assert pipeline.series() == [{OVERFLOW_ATTRIBUTE: True, PROVIDER: "openai"}]


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
        print(sorted((point.attributes.get("gen_ai.request.model", "-"), point.count) for point in points))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=True)
    assert result.stdout.strip() == "[('-', 2), ('a', 1)]"


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
