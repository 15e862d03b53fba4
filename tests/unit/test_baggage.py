"""Baggage to span attributes (allowlist, cap, bad values) and the edge propagator's trust model."""

from __future__ import annotations

import logging

import pytest
from opentelemetry import baggage, context, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from otel_llm import semconv, settings
from otel_llm.processors import baggage as baggage_module
from otel_llm.processors.baggage import BaggageAttributesProcessor, EdgeBaggagePropagator, clean_value

ARM = semconv.EXPERIMENT_ARM
EXPERIMENT = semconv.EXPERIMENT_ID
SESSION = semconv.SESSION_ID


@pytest.fixture(autouse=True)
def empty_current_context():
    """Each test starts from an empty context, whatever an earlier test left attached."""
    token = context.attach(Context())
    yield
    context.detach(token)


@pytest.fixture
def pipeline():
    """A real provider with the baggage processor and an in-memory exporter: (tracer, exporter)."""

    def build(**options):
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(BaggageAttributesProcessor(**options))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return provider.get_tracer("test"), exporter

    return build


def request_context(arm: str, session: str) -> Context:
    """One request's context: its own baggage dict, shared by all its spans."""
    return baggage.set_baggage(SESSION, session, baggage.set_baggage(ARM, arm, Context()))


def count_cleaning(monkeypatch) -> list:
    """Record each call of the processor's baggage cleaning (one per baggage not served from its cache)."""
    calls: list = []
    original = baggage_module.allowed_entries

    def counted(*args):
        calls.append(args[0])
        return original(*args)

    monkeypatch.setattr(baggage_module, "allowed_entries", counted)
    return calls


def spans_with_baggage(tracer, entries: dict, nested: bool = True) -> None:
    ctx = Context()
    for key, value in entries.items():
        ctx = baggage.set_baggage(key, value, ctx)
    token = context.attach(ctx)
    try:
        with tracer.start_as_current_span("parent"):
            if nested:
                with tracer.start_as_current_span("child"):
                    pass
    finally:
        context.detach(token)


class TestBaggageAttributesProcessor:
    def test_copies_only_allowlisted_entries(self, pipeline):
        """Allowlisted entries become attributes on every span; others are ignored."""
        tracer, exporter = pipeline()
        spans_with_baggage(tracer, {ARM: "b", EXPERIMENT: "exp-1", "user.email": "x@y"})
        spans = exporter.get_finished_spans()
        assert [s.name for s in spans] == ["child", "parent"]
        for span in spans:
            assert span.attributes[ARM] == "b" and span.attributes[EXPERIMENT] == "exp-1"
            assert "user.email" not in span.attributes

    def test_span_without_baggage_gets_nothing(self, pipeline):
        """No baggage: no attributes added."""
        tracer, exporter = pipeline()
        with tracer.start_as_current_span("plain"):
            pass
        assert dict(exporter.get_finished_spans()[0].attributes) == {}

    def test_value_capped_and_non_printable_stripped(self, pipeline):
        """Values lose control characters and are cut to the cap."""
        tracer, exporter = pipeline(max_value_length=4)
        spans_with_baggage(tracer, {ARM: "a\x00b\nc\x7fdef"}, nested=False)
        assert exporter.get_finished_spans()[0].attributes[ARM] == "abcd"

    def test_non_string_values_become_text(self, pipeline):
        """A non-string baggage value (set programmatically) is recorded as its text."""
        tracer, exporter = pipeline()
        spans_with_baggage(tracer, {ARM: 42, EXPERIMENT: None}, nested=False)
        attributes = exporter.get_finished_spans()[0].attributes
        assert attributes[ARM] == "42" and attributes[EXPERIMENT] == "None"

    def test_value_whose_str_raises_never_reaches_the_app(self, pipeline, caplog):
        """A value that cannot be turned into text is logged and skipped; the span still ends normally."""

        class Unprintable:
            def __str__(self):
                raise RuntimeError("boom")

        tracer, exporter = pipeline()
        with caplog.at_level(logging.ERROR):
            spans_with_baggage(tracer, {ARM: Unprintable()}, nested=False)
        assert ARM not in exporter.get_finished_spans()[0].attributes
        assert any("baggage" in r.getMessage() for r in caplog.records)

    def test_sdk_attribute_limits_still_apply(self):
        """The SDK's attribute length and count limits hold for baggage attributes too."""
        exporter = InMemorySpanExporter()
        provider = TracerProvider(span_limits=SpanLimits(max_attribute_length=3, max_attributes=2))
        provider.add_span_processor(BaggageAttributesProcessor())
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        ctx = baggage.set_baggage(ARM, "abcdef", Context())
        ctx = baggage.set_baggage(EXPERIMENT, "exp-1", ctx)
        provider.get_tracer("t").start_span("s", context=ctx, attributes={"own": 1}).end()
        span = exporter.get_finished_spans()[0]
        assert dict(span.attributes) == {ARM: "abc", EXPERIMENT: "exp"}
        assert span.dropped_attributes == 1

    @pytest.mark.parametrize("own,max_attributes,dropped", [(1, 3, 0), (2, 3, 1), (2, None, 0)])
    def test_attribute_count_limit_holds_whether_or_not_the_entries_fit(self, own, max_attributes, dropped):
        """Entries that fit are all added; past the attribute count limit the oldest ones are dropped."""
        exporter = InMemorySpanExporter()
        provider = TracerProvider(span_limits=SpanLimits(max_attributes=max_attributes))
        provider.add_span_processor(BaggageAttributesProcessor())
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        own_attributes = {f"own.{index}": index for index in range(own)}
        provider.get_tracer("t").start_span("s", context=request_context("b", "s-1"),
                                            attributes=own_attributes).end()
        span, = exporter.get_finished_spans()
        kept = dict(list(own_attributes.items())[dropped:])
        assert dict(span.attributes) == {**kept, ARM: "b", SESSION: "s-1"}
        assert span.dropped_attributes == dropped

    def test_baggage_replaces_an_attribute_of_the_same_name(self, pipeline):
        """A span started with its own value for an allowlisted key ends with the baggage's value."""
        tracer, exporter = pipeline()
        tracer.start_span("s", context=request_context("b", "s-1"), attributes={ARM: "own", "x": 1}).end()
        assert dict(exporter.get_finished_spans()[0].attributes) == {ARM: "b", "x": 1, SESSION: "s-1"}

    def test_changed_baggage_is_not_served_from_cache(self, pipeline):
        """Consecutive spans with different baggage each get their own values."""
        tracer, exporter = pipeline()
        for arm in ("a", "b", "a"):
            spans_with_baggage(tracer, {ARM: arm}, nested=False)
        assert [s.attributes[ARM] for s in exporter.get_finished_spans()] == ["a", "b", "a"]

    def test_interleaved_requests_each_keep_their_values(self, pipeline):
        """Spans of two requests alternating (concurrent requests) each get their own request's baggage."""
        tracer, exporter = pipeline()
        first, second = request_context("a", "s-1"), request_context("b", "s-2")
        for ctx in (first, second, first, second):
            tracer.start_span("s", context=ctx).end()
        assert [(s.attributes[ARM], s.attributes[SESSION]) for s in exporter.get_finished_spans()] == [
            ("a", "s-1"), ("b", "s-2"), ("a", "s-1"), ("b", "s-2")]

    def test_each_baggage_is_cleaned_once_when_requests_interleave(self, pipeline, monkeypatch):
        """Alternating between two requests' baggage cleans each baggage once, not once per span."""
        calls = count_cleaning(monkeypatch)
        tracer, _ = pipeline()
        first, second = request_context("a", "s-1"), request_context("b", "s-2")
        for _ in range(10):
            tracer.start_span("s", context=first).end()
            tracer.start_span("s", context=second).end()
        assert len(calls) == 2

    def test_remembered_baggages_are_bounded(self, pipeline, monkeypatch):
        """Past MAX_CACHED_BAGGAGE baggages the map is emptied: an evicted baggage is cleaned again, once."""
        monkeypatch.setattr(baggage_module, "MAX_CACHED_BAGGAGE", 4)
        calls = count_cleaning(monkeypatch)
        tracer, exporter = pipeline()
        contexts = [request_context(f"arm-{index}", f"s-{index}") for index in range(5)]
        for ctx in (*contexts, contexts[1], contexts[4], contexts[1]):
            tracer.start_span("s", context=ctx).end()
        # The 5th baggage found the map full and emptied it; arm-1 is cleaned again, arm-4 stays remembered.
        assert [entries[ARM] for entries in calls] == ["arm-0", "arm-1", "arm-2", "arm-3", "arm-4", "arm-1"]
        assert [s.attributes[ARM] for s in exporter.get_finished_spans()][-3:] == ["arm-1", "arm-4", "arm-1"]

    def test_unsampled_span_is_left_alone(self):
        """A non-recording span gets no attributes and no error."""
        exporter = InMemorySpanExporter()
        provider = TracerProvider(sampler=ALWAYS_OFF)
        provider.add_span_processor(BaggageAttributesProcessor())
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        spans_with_baggage(provider.get_tracer("t"), {ARM: "a"})
        assert exporter.get_finished_spans() == ()

    def test_explicit_parent_context_is_used(self, pipeline):
        """Baggage in the context passed to start_span counts, not only the current one."""
        tracer, exporter = pipeline()
        ctx = baggage.set_baggage(ARM, "explicit", Context())
        tracer.start_span("s", context=ctx).end()
        assert exporter.get_finished_spans()[0].attributes[ARM] == "explicit"

    @pytest.mark.parametrize("options,message", [
        ({"allowed_keys": "llm.experiment.arm"}, "not one string"),
        ({"allowed_keys": ["ok", ""]}, "non-empty strings"),
        ({"allowed_keys": [3]}, "non-empty strings"),
        ({"max_value_length": 0}, "from 1 to 4096"),
        ({"max_value_length": True}, "from 1 to 4096"),
    ])
    def test_bad_construction_names_the_parameter(self, options, message):
        """Invalid arguments raise ValueError naming the parameter and the rule."""
        with pytest.raises(ValueError, match=message):
            BaggageAttributesProcessor(**options)

    def test_sdk_interface_is_complete(self):
        """force_flush is True at once; on_end leaves the span as it is; shutdown changes nothing, twice."""
        exporter = InMemorySpanExporter()
        processor = BaggageAttributesProcessor()
        provider = TracerProvider()
        provider.add_span_processor(processor)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("t")
        assert processor.force_flush(10) is True
        tracer.start_span("before", context=request_context("a", "s-1")).end()
        finished, = exporter.get_finished_spans()
        processor.on_end(finished)
        assert dict(finished.attributes) == {ARM: "a", SESSION: "s-1"}
        processor.shutdown()
        processor.shutdown()
        # Stateless: nothing to release, so a span started after shutdown still gets its baggage.
        after = tracer.start_span("after", context=request_context("b", "s-2"))
        assert dict(after.attributes) == {ARM: "b", SESSION: "s-2"}

    def test_clean_value_keeps_printable_unicode(self):
        """Printable non-ASCII text is kept whole."""
        assert clean_value("실험-b", 10) == "실험-b"


class TestEdgeBaggagePropagator:
    HEADER = {"baggage": f"{ARM}=b,user.id=42,{EXPERIMENT}=exp%201"}

    def test_drops_incoming_baggage_by_default(self):
        """Untrusted by default: nothing from the header reaches the context."""
        extracted = EdgeBaggagePropagator(trust_incoming=False).extract(self.HEADER, Context())
        assert baggage.get_all(extracted) == {}

    def test_trusted_keeps_only_allowlisted_capped(self):
        """Trusted: allowlisted keys only, values decoded and capped."""
        propagator = EdgeBaggagePropagator([ARM, EXPERIMENT], max_value_length=4, trust_incoming=True)
        extracted = propagator.extract(self.HEADER, Context())
        assert dict(baggage.get_all(extracted)) == {ARM: "b", EXPERIMENT: "exp "}

    def test_existing_context_baggage_is_kept(self):
        """Dropping incoming baggage does not remove what the context already carried."""
        ctx = baggage.set_baggage(ARM, "ours", Context())
        extracted = EdgeBaggagePropagator(trust_incoming=False).extract(self.HEADER, ctx)
        assert baggage.get_baggage(ARM, extracted) == "ours"

    @pytest.mark.parametrize("header", [";;;", "=", "a" * 10000, ARM, "%%%=%%%", "\x00=\x01"])
    def test_malformed_header_is_dropped_without_raising(self, header):
        """Garbage headers leave the context without baggage and never raise."""
        extracted = EdgeBaggagePropagator(trust_incoming=True).extract({"baggage": header}, Context())
        assert ARM not in baggage.get_all(extracted)

    def test_non_string_carrier_values_never_raise(self):
        """A getter returning odd types is survived (the error is logged, the context returned)."""
        extracted = EdgeBaggagePropagator(trust_incoming=True).extract({"baggage": 12}, Context())
        assert baggage.get_all(extracted) == {}

    def test_injects_like_w3c(self):
        """Outgoing requests carry the same header the W3C propagator writes."""
        ctx = baggage.set_baggage(ARM, "b c", Context())
        ours, theirs = {}, {}
        EdgeBaggagePropagator(trust_incoming=False).inject(ours, ctx)
        W3CBaggagePropagator().inject(theirs, ctx)
        assert ours == theirs == {"baggage": "llm.experiment.arm=b+c"}
        assert EdgeBaggagePropagator(trust_incoming=False).fields == {"baggage"}

    def test_settings_come_from_environment(self, monkeypatch):
        """Built without arguments (as the entry point does), it reads OTEL_LLM_BAGGAGE_* variables."""
        settings.reset_warnings()
        monkeypatch.setenv("OTEL_LLM_BAGGAGE_TRUST_INCOMING", "true")
        monkeypatch.setenv("OTEL_LLM_BAGGAGE_KEYS", ARM)
        extracted = EdgeBaggagePropagator().extract(self.HEADER, Context())
        assert dict(baggage.get_all(extracted)) == {ARM: "b"}

    def test_registered_as_otel_propagator(self, monkeypatch):
        """OTEL_PROPAGATORS=otel_llm_baggage resolves to this class through the entry point."""
        from opentelemetry.util._importlib_metadata import entry_points

        (entry_point,) = entry_points(group="opentelemetry_propagator", name="otel_llm_baggage")
        assert entry_point.load() is EdgeBaggagePropagator

    def test_server_span_records_trusted_baggage_only_when_trusted(self, pipeline):
        """End to end at the edge: extract then start a span; the arm shows only when trusted."""
        tracer, exporter = pipeline()
        for trust in (False, True):
            ctx = EdgeBaggagePropagator(trust_incoming=trust).extract(self.HEADER, Context())
            tracer.start_span(f"server-{trust}", context=ctx, kind=trace.SpanKind.SERVER).end()
        untrusted, trusted = exporter.get_finished_spans()
        assert ARM not in untrusted.attributes and trusted.attributes[ARM] == "b"
