"""Span-derived GenAI metrics: duration and token usage recorded once per call, unless an instrumentation
recorded them for that call (seen from its recordings) or its scope is on the override list."""

from __future__ import annotations

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from otel_llm import semconv
from otel_llm.metrics.cardinality import CardinalityLimitedMeterProvider
from otel_llm.metrics.from_spans import SpanDerivedMetrics
from otel_llm.metrics.views import genai_views
from otel_llm.processors.normalize import llm_call_of
from otel_llm.processors.rollup import RollupSpanExporter
from tests.support.metric_points import metric_points

DURATION = semconv.METRIC_OPERATION_DURATION
TOKENS = semconv.METRIC_TOKEN_USAGE
LANGSMITH_BEDROCK = {
    semconv.LANGSMITH_SPAN_KIND: "llm",
    semconv.LANGSMITH_LS_PROVIDER: "amazon_bedrock",
    semconv.GEN_AI_SYSTEM: "anthropic",
    semconv.GEN_AI_REQUEST_MODEL: "anthropic.claude-3-haiku-20240307-v1:0",
    semconv.GEN_AI_OPERATION_NAME: "chat",
    semconv.GEN_AI_USAGE_INPUT_TOKENS: 120,
    semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 30,
    semconv.LANGSMITH_LANGGRAPH_NODE: "answer",
    semconv.EXPERIMENT_ID: "exp-1",
    semconv.EXPERIMENT_ARM: "b",
    semconv.SESSION_ID: "session-1",
}


class Harness:
    """A real TracerProvider whose ended spans are handed to SpanDerivedMetrics, as the roll-up stage does."""

    def __init__(self, skip_scopes=()) -> None:
        self.reader = InMemoryMetricReader()
        self.meter_provider = CardinalityLimitedMeterProvider(
            metric_readers=[self.reader], views=genai_views(), cardinality_limit=100
        )
        self.metrics = SpanDerivedMetrics(self.meter_provider, skip_scopes,
                                          self.meter_provider.recorded_calls)
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))

    def llm_span(self, attributes, scope="langsmith", error=None, start=1_000_000_000, end=3_500_000_000,
                 records_own=False):
        """An LLM span of ``scope``, handed to the metrics once ended; ``records_own``: the instrumentation
        records its own duration inside the span, as openai-v2 and botocore do."""
        span = self.tracer_provider.get_tracer(scope).start_span("ChatBedrock", attributes=attributes,
                                                                  start_time=start)
        if records_own:
            with trace.use_span(span):
                self.own_duration(scope).record(2.5, {semconv.GEN_AI_PROVIDER_NAME: "aws.bedrock"})
        if error is not None:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=end)
        ended = self.spans.get_finished_spans()[-1]
        self.metrics.record(ended, llm_call_of(ended))

    def own_duration(self, scope):
        return self.meter_provider.get_meter(scope).create_histogram(DURATION, "s")

    def points(self, name, scope="otel_llm.metrics.from_spans"):
        """The points of ``name`` that otel-llm derived from spans (the instrumentations' own are apart)."""
        return [(attributes, point) for attributes, point in metric_points(self.reader, name, scope)]


@pytest.fixture
def harness():
    harness = Harness()
    yield harness
    harness.meter_provider.shutdown()


def test_duration_is_recorded_from_the_span(harness):
    """One duration point, the span's length in seconds, labelled with the normalised provider and model."""
    harness.llm_span(LANGSMITH_BEDROCK)
    (attributes, point), = harness.points(DURATION)
    assert point.count == 1
    assert point.sum == pytest.approx(2.5)
    assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert attributes[semconv.GEN_AI_REQUEST_MODEL] == "anthropic.claude-3-haiku-20240307-v1:0"
    assert attributes[semconv.GEN_AI_OPERATION_NAME] == "chat"
    assert semconv.ERROR_TYPE not in attributes


def test_token_usage_is_recorded_per_token_type(harness):
    """Input and output tokens are separate recordings told apart by gen_ai.token.type."""
    harness.llm_span(LANGSMITH_BEDROCK)
    sums = {attrs[semconv.GEN_AI_TOKEN_TYPE]: point.sum for attrs, point in harness.points(TOKENS)}
    assert sums == {"input": 120, "output": 30}


def test_node_and_experiment_are_labels_but_session_is_not(harness):
    """The LangGraph node, experiment id and arm reach the metrics; the session id never does."""
    harness.llm_span(LANGSMITH_BEDROCK)
    (attributes, _), = harness.points(DURATION)
    assert attributes[semconv.LANGGRAPH_NODE] == "answer"
    assert (attributes[semconv.EXPERIMENT_ID], attributes[semconv.EXPERIMENT_ARM]) == ("exp-1", "b")
    assert semconv.SESSION_ID not in attributes


def test_response_model_and_server_are_copied_when_set(harness):
    """gen_ai.response.model and server.address/port of the span become metric attributes."""
    harness.llm_span({**LANGSMITH_BEDROCK, semconv.GEN_AI_RESPONSE_MODEL: "claude-3-haiku",
                      semconv.SERVER_ADDRESS: "bedrock-runtime.us-east-1.amazonaws.com",
                      semconv.SERVER_PORT: 443})
    (attributes, _), = harness.points(DURATION)
    assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == "claude-3-haiku"
    assert attributes[semconv.SERVER_ADDRESS] == "bedrock-runtime.us-east-1.amazonaws.com"
    assert attributes[semconv.SERVER_PORT] == 443


def test_failed_calls_carry_error_type_on_duration_only(harness):
    """An ERROR span's duration has error.type (_OTHER when unnamed); token usage has none."""
    harness.llm_span(LANGSMITH_BEDROCK, error="throttled")
    (attributes, _), = harness.points(DURATION)
    assert attributes[semconv.ERROR_TYPE] == "_OTHER"
    assert all(semconv.ERROR_TYPE not in attrs for attrs, _ in harness.points(TOKENS))


def test_named_error_type_is_kept(harness):
    """error.type set by the instrumentation is used as it is."""
    harness.llm_span({**LANGSMITH_BEDROCK, semconv.ERROR_TYPE: "ThrottlingException"}, error="x")
    (attributes, _), = harness.points(DURATION)
    assert attributes[semconv.ERROR_TYPE] == "ThrottlingException"


def test_missing_token_counts_record_no_token_usage(harness):
    """A call without usage records its duration only: no zero-token points are invented."""
    attributes = {key: value for key, value in LANGSMITH_BEDROCK.items() if "usage" not in key}
    harness.llm_span(attributes)
    assert len(harness.points(DURATION)) == 1
    assert harness.points(TOKENS) == []


def test_deprecated_token_names_are_read(harness):
    """OpenLLMetry-style prompt/completion token counts are recorded as input/output."""
    harness.llm_span({semconv.GEN_AI_SYSTEM: "openai", semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini",
                      semconv.OPENLLMETRY_REQUEST_TYPE: "chat", semconv.GEN_AI_USAGE_PROMPT_TOKENS: 7,
                      semconv.GEN_AI_USAGE_COMPLETION_TOKENS: 3}, scope="my.own.instrumentation")
    sums = {attrs[semconv.GEN_AI_TOKEN_TYPE]: point.sum for attrs, point in harness.points(TOKENS)}
    assert sums == {"input": 7, "output": 3}


def test_a_call_its_instrumentation_recorded_adds_nothing(harness):
    """An instrumentation that records its duration inside the LLM span: no span-derived point for it, and
    its own point is there once (never twice)."""
    harness.llm_span(LANGSMITH_BEDROCK, scope="opentelemetry.util.genai.handler", records_own=True)
    assert harness.points(DURATION) == [] and harness.points(TOKENS) == []
    (_, own), = harness.points(DURATION, scope="opentelemetry.util.genai.handler")
    assert own.count == 1


def test_a_scope_seen_recording_is_left_to_itself_for_later_calls(harness):
    """A scope that once recorded GenAI metrics (outside its span, say) is trusted for its later calls;
    another scope's calls are still derived."""
    harness.own_duration("vendor.instrumentation").record(1.0, {})
    harness.llm_span(LANGSMITH_BEDROCK, scope="vendor.instrumentation")
    assert harness.points(DURATION) == []
    harness.llm_span(LANGSMITH_BEDROCK, scope="langsmith")
    assert len(harness.points(DURATION)) == 1


def test_instruments_are_created_only_when_first_needed(harness):
    """Before any derived recording, otel-llm has no GenAI instrument of its own (no SDK view-conflict
    warnings beside an instrumentation recording every call)."""
    harness.llm_span(LANGSMITH_BEDROCK, scope="opentelemetry.util.genai.handler", records_own=True)
    assert harness.metrics._instruments is None


@pytest.mark.parametrize("scope", [
    "opentelemetry.instrumentation.openai_v2",  # exact
    "opentelemetry.instrumentation.openai.v1",  # dotted prefix (OpenLLMetry)
])
def test_override_scopes_are_skipped(scope):
    """OTEL_LLM_SPAN_METRICS_SKIP_SCOPES: listed scopes add nothing even when not seen recording."""
    harness = Harness(skip_scopes=("opentelemetry.instrumentation.openai_v2",
                                   "opentelemetry.instrumentation.openai"))
    harness.llm_span(LANGSMITH_BEDROCK, scope=scope)
    assert harness.points(DURATION) == [] and harness.points(TOKENS) == []
    harness.meter_provider.shutdown()


def test_prefix_matching_needs_a_dot():
    """A scope merely starting with a skipped name's letters is not skipped."""
    metrics = SpanDerivedMetrics(None, ("opentelemetry.instrumentation.openai",))
    assert metrics.skips("opentelemetry.instrumentation.openai")
    assert not metrics.skips("opentelemetry.instrumentation.openai_custom")


def test_token_details_are_recorded_apart(harness):
    """Cache-read, cache-write and reasoning counts go to llm.client.token.usage.detail, never into
    gen_ai.client.token.usage."""
    harness.llm_span({**LANGSMITH_BEDROCK, semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 40,
                      semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 10,
                      semconv.OPENLLMETRY_REASONING_TOKENS: 5})
    details = {attrs[semconv.TOKEN_DETAIL]: point.sum
               for attrs, point in harness.points(semconv.METRIC_TOKEN_USAGE_DETAIL)}
    assert details == {"cache_read": 40, "cache_write": 10, "reasoning": 5}
    assert {attrs[semconv.GEN_AI_TOKEN_TYPE]: p.sum for attrs, p in harness.points(TOKENS)} == {
        "input": 120, "output": 30}


def test_a_scope_never_seen_recording_is_derived(harness):
    """With no override and no recording of its own, an openai_v2-scoped span is recorded from the span."""
    harness.llm_span(LANGSMITH_BEDROCK, scope="opentelemetry.instrumentation.openai_v2")
    assert len(harness.points(DURATION)) == 1


@pytest.mark.parametrize("bad", ["opentelemetry.instrumentation.openai_v2", ["ok", ""], ["  "]])
def test_bad_skip_scopes_are_rejected(bad):
    """A bare string (not a list) or an empty scope name is a ValueError naming skip_scopes."""
    with pytest.raises(ValueError, match="skip_scopes"):
        SpanDerivedMetrics(None, bad)


OPENAI_SDK_CALL = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
                   semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", semconv.GEN_AI_USAGE_INPUT_TOKENS: 120,
                   semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 30}


class TestNestedCallsThroughTheStage:
    """A LangChain chat span around an LLM SDK's own span is one call, whatever the two record."""

    def run(self, inner_scope: str, inner_records_own: bool = False) -> Harness:
        harness = Harness()
        stage = RollupSpanExporter(InMemorySpanExporter(), window_s=0, on_llm_span=harness.metrics.record)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(stage))
        langchain = provider.get_tracer("otel_llm.instrumentation.langchain")
        with provider.get_tracer("app").start_as_current_span("POST /chat"):
            with langchain.start_as_current_span(
                    "chat gpt-4o-mini", attributes={**OPENAI_SDK_CALL, semconv.LANGGRAPH_NODE: "answer"}):
                inner = provider.get_tracer(inner_scope)
                with inner.start_as_current_span("chat", attributes=OPENAI_SDK_CALL):
                    if inner_records_own:
                        harness.own_duration(inner_scope).record(0.5, {})
        stage.shutdown()
        return harness

    def test_recorded_once_when_neither_records_its_own(self):
        """One duration point and one input-token recording for the pair, from the outer span."""
        harness = self.run("my.openai.wrapper")
        (attributes, point), = harness.points(DURATION)
        assert point.count == 1 and attributes[semconv.LANGGRAPH_NODE] == "answer"
        assert {attrs[semconv.GEN_AI_TOKEN_TYPE]: p.sum for attrs, p in harness.points(TOKENS)} == {
            "input": 120, "output": 30}
        harness.meter_provider.shutdown()

    def test_nothing_recorded_when_the_inner_span_records_its_own(self):
        """The SDK span's instrumentation records the call: the outer span adds nothing."""
        harness = self.run("opentelemetry.util.genai.handler", inner_records_own=True)
        assert harness.points(DURATION) == [] and harness.points(TOKENS) == []
        harness.meter_provider.shutdown()


def test_group_with_a_skipped_nested_scope_records_nothing():
    """record() with a nested call from a skip-listed scope records nothing for the outer span either."""
    harness = Harness(skip_scopes=("opentelemetry.instrumentation.openai_v2",))
    span = harness.tracer_provider.get_tracer("langsmith").start_span("Chat", attributes=LANGSMITH_BEDROCK)
    span.end()
    outer = llm_call_of(span)
    openai_v2 = outer._replace(scope_name="opentelemetry.instrumentation.openai_v2")
    harness.metrics.record(span, outer, (openai_v2,))
    assert harness.points(DURATION) == []
    harness.metrics.record(span, outer, (outer._replace(scope_name="my.sdk"),))
    assert len(harness.points(DURATION)) == 1
