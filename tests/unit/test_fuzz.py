"""Fuzz suite (hypothesis): every span processor and export stage, the METRIC exporter, both propagators and
the settings parser take arbitrary input without raising, losing or duplicating a span, or breaking a bound.

``make test`` runs a bounded number of examples per property (tests/support/fuzz.py); a release run raises it
with OTEL_LLM_FUZZ_EXAMPLES (docs/testing.md).
"""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry import baggage, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_llm import propagation, semconv
from otel_llm.exporters.metric_log import MAX_LINE_BYTES, MetricLogExporter
from otel_llm.metrics.cardinality import MAX_OVERFLOW_SERIES, CardinalityLimitedMeterProvider
from otel_llm.metrics.from_spans import SpanDerivedMetrics
from otel_llm.metrics.views import genai_views
from otel_llm.processors.baggage import BaggageAttributesProcessor, EdgeBaggagePropagator
from otel_llm.processors.redact import RedactingSpanExporter, Redactor
from otel_llm.processors.rollup import RollupSpanExporter
from otel_llm.settings import SETTING_VARIABLES, Settings, load_settings
from tests.support.fuzz import fuzz_settings
from tests.support.metric_points import metric_points

# Keys otel-llm reads, so generated spans exercise its branches, plus free-form ones.
KNOWN_KEYS = (
    semconv.GEN_AI_PROVIDER_NAME, semconv.GEN_AI_SYSTEM, semconv.GEN_AI_REQUEST_MODEL,
    semconv.GEN_AI_RESPONSE_MODEL, semconv.GEN_AI_OPERATION_NAME, semconv.LANGSMITH_SPAN_KIND,
    semconv.LANGSMITH_LS_PROVIDER, semconv.LANGSMITH_LS_MODEL_NAME, semconv.LANGSMITH_LANGGRAPH_NODE,
    semconv.OPENLLMETRY_REQUEST_TYPE, semconv.GEN_AI_USAGE_INPUT_TOKENS, semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
    semconv.ERROR_TYPE, semconv.EXPERIMENT_ARM, semconv.EXPERIMENT_ID, semconv.EXPERIMENT_PROVIDER,
    semconv.EXPERIMENT_MODEL, semconv.LANGGRAPH_NODE, semconv.ROLLUP_PROVIDER, semconv.ROLLUP_MODEL,
    "http.route", "url.path", "url.full", "langsmith.metadata.api_key",
)
WORDS = st.sampled_from(["openai", "anthropic", "aws.bedrock", "llm", "chat", "gpt-4o-mini", "claude-3",
                         "anthropic.claude-3-haiku-20240307-v1:0", "langchain", "", " ", "_OTHER", "unknown"])
TEXT = st.one_of(WORDS, st.text(max_size=40))
VALUES = st.one_of(TEXT, st.integers(min_value=-(2**63), max_value=2**63 - 1), st.floats(), st.booleans(),
                   st.lists(TEXT, max_size=3),
                   st.lists(st.integers(min_value=0, max_value=10**6), max_size=3))
ATTRIBUTES = st.dictionaries(st.one_of(st.sampled_from(KNOWN_KEYS), st.text(min_size=1, max_size=20)), VALUES,
                             max_size=8)
# One span: (index of its parent among the earlier spans or None, kind, attributes, error?, name).
SPANS = st.lists(st.tuples(st.one_of(st.none(), st.integers(min_value=0, max_value=30)),
                           st.sampled_from(list(SpanKind)), ATTRIBUTES, st.booleans(), TEXT),
                 min_size=1, max_size=12)


class Collect(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans):
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def finished(specs) -> list[ReadableSpan]:
    """Real SDK spans from the specs (a parent index past the earlier spans: a root), ended child first."""
    collect, provider = Collect(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(collect))
    tracer = provider.get_tracer("fuzz")
    made = []
    for parent, kind, attributes, error, name in specs:
        has_parent = parent is not None and parent < len(made)
        context = trace.set_span_in_context(made[parent]) if has_parent else None
        span = tracer.start_span(name, context=context, kind=kind, attributes=attributes)
        if error:
            span.set_status(Status(StatusCode.ERROR, name))
            span.record_exception(ValueError(name))
        made.append(span)
    for span in reversed(made):
        span.end()
    provider.shutdown()
    return collect.spans


def _ids(spans) -> list[int]:
    return sorted(span.context.span_id for span in spans)


class TestExportStages:
    @given(SPANS, st.randoms(use_true_random=False))
    @fuzz_settings()
    def test_rollup_with_span_metrics_exports_every_span_once(self, specs, random):
        """Any spans, in any order: export succeeds, each span leaves exactly once, metrics stay bounded."""
        spans = finished(specs)
        random.shuffle(spans)
        reader = InMemoryMetricReader()
        meters = CardinalityLimitedMeterProvider([reader], views=genai_views(), cardinality_limit=5)
        out = Collect()
        stage = RollupSpanExporter(out, window_s=0, on_llm_span=SpanDerivedMetrics(meters).record)
        assert stage.export(spans) is SpanExportResult.SUCCESS
        stage.flush(everything=True)
        stage.shutdown()
        assert _ids(out.spans) == _ids(spans)
        series = metric_points(reader, semconv.METRIC_OPERATION_DURATION)
        assert len(series) <= 5 + MAX_OVERFLOW_SERIES
        meters.shutdown()

    @given(SPANS)
    @fuzz_settings()
    def test_redaction_exports_every_span_once(self, specs):
        """Any spans: none dropped, none raised, a second pass changes nothing more."""
        spans, out = finished(specs), Collect()
        stage = RedactingSpanExporter(out, Redactor())
        assert stage.export(spans) is SpanExportResult.SUCCESS
        assert stage.drops.counts() == {} and _ids(out.spans) == _ids(spans)
        again = Collect()
        RedactingSpanExporter(again, Redactor()).export(out.spans)
        assert [dict(s.attributes) for s in again.spans] == [dict(s.attributes) for s in out.spans]

    @given(SPANS)
    @fuzz_settings()
    def test_metric_lines_are_one_line_each_and_bounded(self, specs):
        """Any spans: SUCCESS, no line skipped, every line one line under the bound."""
        out = io.StringIO()
        writer = MetricLogExporter(out)
        assert writer.export(finished(specs)) is SpanExportResult.SUCCESS
        lines = out.getvalue().split("\n")[:-1]
        assert writer.drops.counts() == {}
        assert all(line.startswith("METRIC|") and line.splitlines() == [line] for line in lines)
        assert all(len(line.encode()) < MAX_LINE_BYTES for line in lines)


ALLOWED = (semconv.EXPERIMENT_ARM, semconv.SESSION_ID)
HEADER = r"[a-z.]{1,12}=[^,;]{0,30}(,[a-z.]{1,12}=.{0,9})*"  # baggage-shaped, with odd values
MAX_VALUE = 16


class TestBaggage:
    @given(st.dictionaries(st.one_of(st.sampled_from(ALLOWED), st.text(min_size=1, max_size=10)), st.text(),
                           max_size=5))
    @fuzz_settings()
    def test_processor_copies_only_allowlisted_bounded_values(self, entries):
        """Whatever baggage is current, a span gets allowlisted keys only, values capped."""
        collect, provider = Collect(), TracerProvider()
        provider.add_span_processor(BaggageAttributesProcessor(ALLOWED, MAX_VALUE))
        provider.add_span_processor(SimpleSpanProcessor(collect))
        context = Context()
        for key, value in entries.items():
            context = baggage.set_baggage(key, value, context)
        provider.get_tracer("fuzz").start_span("s", context=context).end()
        attributes = dict(collect.spans[0].attributes)
        assert set(attributes) <= set(ALLOWED)
        assert all(isinstance(value, str) and len(value) <= MAX_VALUE for value in attributes.values())

    @given(st.dictionaries(st.sampled_from(["baggage", "Baggage", "traceparent", "x"]),
                           st.one_of(st.text(), st.from_regex(HEADER)), max_size=3))
    @fuzz_settings()
    def test_edge_propagator_extracts_only_allowlisted_bounded_values(self, carrier):
        """Any header text from an untrusted client: no exception, only allowlisted keys, values capped."""
        propagator = EdgeBaggagePropagator(ALLOWED, MAX_VALUE, trust_incoming=True)
        entries = baggage.get_all(propagator.extract(carrier, Context()))
        assert set(entries) <= set(ALLOWED)
        assert all(len(str(value)) <= MAX_VALUE for value in entries.values())


CARRIER_VALUES = st.one_of(st.text(), st.binary(max_size=40), st.integers(), st.none(),
                           st.lists(st.text(), max_size=2))
CARRIER_KEYS = st.one_of(st.sampled_from(["traceparent", "tracestate", "baggage", b"traceparent"]),
                         st.text(max_size=10))


class TestQueuePropagation:
    @given(st.one_of(st.none(), st.dictionaries(CARRIER_KEYS, CARRIER_VALUES, max_size=4)))
    @fuzz_settings()
    def test_extract_of_any_message_gives_a_context(self, carrier):
        """Any message fields (bytes, numbers, None, garbage): a Context, never an exception."""
        assert isinstance(propagation.extract(carrier), Context)

    @given(st.dictionaries(st.text(max_size=10), CARRIER_VALUES, max_size=4))
    @fuzz_settings()
    def test_inject_into_any_message_returns_it(self, carrier):
        """Injecting into a message with any fields returns the same message object."""
        assert propagation.inject(carrier) is carrier


class TestSettings:
    @given(st.dictionaries(st.sampled_from([variable for variable, _ in SETTING_VARIABLES.values()]),
                           st.one_of(st.text(), st.from_regex(r"-?[0-9]{1,400}(\.[0-9]*)?(e[0-9]+)?"))))
    @fuzz_settings()
    def test_any_environment_gives_valid_settings(self, environ):
        """Any text in any OTEL_LLM_* variable: no exception, and each setting is its default or a value its
        rule accepts (the same type as the default)."""
        settings = load_settings(environ)
        defaults = Settings()
        for field, (_, rule) in SETTING_VARIABLES.items():
            value = getattr(settings, field)
            assert type(value) is type(getattr(defaults, field))
            assert value == getattr(defaults, field) or rule.from_value(value) == value

    @given(st.dictionaries(st.sampled_from(list(SETTING_VARIABLES)), VALUES, max_size=4))
    @fuzz_settings()
    def test_any_configure_overrides_give_valid_settings(self, overrides):
        """Any keyword values for configure(): no exception, only accepted values used."""
        settings = load_settings({}, overrides=overrides)
        for field in SETTING_VARIABLES:
            assert type(getattr(settings, field)) is type(getattr(Settings(), field))

