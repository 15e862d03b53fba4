"""GenAI metric views: semconv bucket boundaries and per-instrument attribute allowlists."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_llm import semconv
from otel_llm.metrics.views import (
    COMMON_METRIC_ATTRIBUTES,
    DURATION_BUCKETS_S,
    GENAI_METRIC_VIEWS,
    TOKEN_BUCKETS,
    genai_views,
)
from tests.support.metric_points import metric_points

# Everything an instrumentation or a baggage-enriched span might put on a recording.
EVERY_ATTRIBUTE = {
    semconv.GEN_AI_PROVIDER_NAME: "openai",
    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
    semconv.GEN_AI_RESPONSE_MODEL: "gpt-4o-mini-2024-07-18",
    semconv.GEN_AI_OPERATION_NAME: "chat",
    semconv.GEN_AI_TOKEN_TYPE: "input",
    semconv.ERROR_TYPE: "timeout",
    semconv.SERVER_ADDRESS: "api.openai.com",
    semconv.SERVER_PORT: 443,
    semconv.EXPERIMENT_ARM: "b",
    semconv.LANGGRAPH_NODE: "answer",
    semconv.SESSION_ID: "session-123",
    semconv.GEN_AI_CONVERSATION_ID: "conversation-456",
    semconv.EXPERIMENT_ID: "exp-1",
    semconv.OTEL_METRIC_OVERFLOW: True,  # only the series cap sets it, on its overflow series
    "user.id": "alice",
    "gen_ai.prompt": "what is the weather",
}
SEMCONV_DURATION_BUCKETS = [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96,
                            81.92]
SEMCONV_TOKEN_BUCKETS = [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216,
                         67108864]


class Pipeline:
    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader], views=genai_views())


@pytest.fixture
def pipeline():
    pipeline = Pipeline()
    yield pipeline
    pipeline.provider.shutdown()


def _record(pipeline: Pipeline, name: str, value: float = 0.5) -> dict:
    # Any scope: the views match by instrument name, so an instrumentation library's histogram is covered.
    histogram = pipeline.provider.get_meter("some.instrumentation").create_histogram(
        name, explicit_bucket_boundaries_advisory=[1.0, 2.0, 3.0]
    )
    histogram.record(value, EVERY_ATTRIBUTE)
    (attributes, point), = metric_points(pipeline.reader, name)
    return {"attributes": attributes, "bounds": list(point.explicit_bounds)}


def test_bucket_constants_are_the_semconv_values():
    """The boundaries match the GenAI semantic conventions' ExplicitBucketBoundaries exactly."""
    assert list(DURATION_BUCKETS_S) == SEMCONV_DURATION_BUCKETS
    assert list(TOKEN_BUCKETS) == SEMCONV_TOKEN_BUCKETS


@pytest.mark.parametrize(
    ("name", "bounds"),
    [
        (semconv.METRIC_OPERATION_DURATION, SEMCONV_DURATION_BUCKETS),
        (semconv.METRIC_TOKEN_USAGE, SEMCONV_TOKEN_BUCKETS),
        (semconv.METRIC_TIME_TO_FIRST_CHUNK, SEMCONV_DURATION_BUCKETS),
        (semconv.METRIC_TIME_PER_OUTPUT_CHUNK, SEMCONV_DURATION_BUCKETS),
    ],
)
def test_each_instrument_uses_semconv_buckets_over_its_advisory(pipeline, name, bounds):
    """A histogram asking for other boundaries still aggregates into the semconv buckets."""
    assert _record(pipeline, name)["bounds"] == bounds


@pytest.mark.parametrize("name", sorted(GENAI_METRIC_VIEWS))
def test_ids_and_free_text_never_become_labels(pipeline, name):
    """Session, conversation, user ids and prompts are dropped from every GenAI metric."""
    attributes = _record(pipeline, name)["attributes"]
    for key in (semconv.SESSION_ID, semconv.GEN_AI_CONVERSATION_ID, "user.id", "gen_ai.prompt"):
        assert key not in attributes
    assert set(attributes) <= GENAI_METRIC_VIEWS[name][1]


@pytest.mark.parametrize("name", sorted(GENAI_METRIC_VIEWS))
def test_experiment_id_and_arm_are_labels_of_every_genai_metric(pipeline, name):
    """Every GenAI metric keeps the experiment id and arm, so per-arm queries can pick one experiment."""
    attributes = _record(pipeline, name)["attributes"]
    assert (attributes[semconv.EXPERIMENT_ID], attributes[semconv.EXPERIMENT_ARM]) == ("exp-1", "b")


def test_duration_keeps_error_type_and_the_common_keys(pipeline):
    """Duration keeps provider, models, operation, server, experiment, node and error.type; not token type."""
    attributes = _record(pipeline, semconv.METRIC_OPERATION_DURATION)["attributes"]
    assert set(attributes) == COMMON_METRIC_ATTRIBUTES | {semconv.ERROR_TYPE}
    assert attributes[semconv.EXPERIMENT_ARM] == "b"
    assert attributes[semconv.LANGGRAPH_NODE] == "answer"


def test_token_usage_keeps_token_type_but_not_error_type(pipeline):
    """Token usage is split by gen_ai.token.type; error.type is not one of its attributes in semconv."""
    attributes = _record(pipeline, semconv.METRIC_TOKEN_USAGE, 42)["attributes"]
    assert set(attributes) == COMMON_METRIC_ATTRIBUTES | {semconv.GEN_AI_TOKEN_TYPE}


@pytest.mark.parametrize("name", [semconv.METRIC_TIME_TO_FIRST_CHUNK, semconv.METRIC_TIME_PER_OUTPUT_CHUNK])
def test_chunk_metrics_keep_the_common_keys_only(pipeline, name):
    """The streaming chunk metrics keep the common keys, without error or token type."""
    assert set(_record(pipeline, name)["attributes"]) == COMMON_METRIC_ATTRIBUTES


def test_other_instruments_are_untouched(pipeline):
    """A non-GenAI histogram keeps its attributes and the SDK's default buckets."""
    histogram = pipeline.provider.get_meter("app").create_histogram("http.server.duration")
    histogram.record(0.5, {"user.id": "alice"})
    (attributes, point), = metric_points(pipeline.reader, "http.server.duration")
    assert attributes == {"user.id": "alice"}
    assert list(point.explicit_bounds) != SEMCONV_DURATION_BUCKETS
