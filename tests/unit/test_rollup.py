"""The export-side stage: LLM span enrichment, roll-up onto ancestors, windows, bounds, flush and shutdown."""

from __future__ import annotations

import logging
import os
import threading
import time

import pytest
from opentelemetry import context, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.sdk.trace import ReadableSpan, SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_llm import semconv
from otel_llm.processors.normalize import NO_CHANGE, LLMCall, enrichment
from otel_llm.processors.rollup import (
    MAX_ROLLUP_VALUES,
    RollupBatchSpanProcessor,
    RollupSpanExporter,
    RollupStats,
)

BEDROCK_HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"


@pytest.fixture(autouse=True)
def empty_current_context():
    """Each test starts from an empty context, whatever an earlier test left attached."""
    token = context.attach(Context())
    yield
    context.detach(token)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingExporter(InMemorySpanExporter):
    """An in-memory exporter that also records force_flush calls and can be told to fail."""

    def __init__(self, result: SpanExportResult = SpanExportResult.SUCCESS) -> None:
        super().__init__()
        self.result = result
        self.force_flushes = 0
        self.batches: list[int] = []

    def export(self, spans):
        self.batches.append(len(spans))
        super().export(spans)
        return self.result

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.force_flushes += 1
        return True


class Harness:
    """A real TracerProvider whose SimpleSpanProcessor feeds the stage synchronously, with a fake clock."""

    def __init__(self, **options) -> None:
        self.clock = FakeClock()
        self.inner = RecordingExporter()
        self.calls: list[tuple[str, LLMCall, tuple[LLMCall, ...]]] = []
        options.setdefault("on_llm_span",
                           lambda span, call, nested: self.calls.append((span.name, call, nested)))
        self.stage = RollupSpanExporter(self.inner, clock=self.clock, **options)
        self.provider = TracerProvider(span_limits=SpanLimits(max_attributes=64))
        self.provider.add_span_processor(SimpleSpanProcessor(self.stage))
        self.tracer = self.provider.get_tracer("test-scope")

    def start(self, name, parent=None, **kwargs):
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(name, context=context, **kwargs)

    def consumer(self, trace_id, remote_parent_id=0xDEF):
        """A CONSUMER span continuing a remote trace (a local root), started, not ended."""
        remote = trace.SpanContext(trace_id, remote_parent_id, is_remote=True,
                                   trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED))
        parent = trace.set_span_in_context(trace.NonRecordingSpan(remote))
        return self.tracer.start_span("consume", context=parent, kind=SpanKind.CONSUMER)

    def llm(self, parent, attributes, name="ChatModel", status=None):
        span = self.start(name, parent, attributes=attributes)
        if status is not None:
            span.set_status(status)
        span.end()
        return span

    def exported(self) -> dict[str, ReadableSpan]:
        return {span.name: span for span in self.inner.get_finished_spans()}

    def flush_after_window(self) -> None:
        self.clock.advance(60)
        self.stage.flush()


def langsmith_llm(model=BEDROCK_HAIKU, ls_provider="amazon_bedrock", **extra):
    attributes = {
        semconv.LANGSMITH_SPAN_KIND: "llm",
        semconv.GEN_AI_OPERATION_NAME: "chat",
        semconv.GEN_AI_SYSTEM: "anthropic",  # langsmith's guess from the model name
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 10,
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 3,
    }
    if ls_provider is not None:
        attributes[semconv.LANGSMITH_LS_PROVIDER] = ls_provider
    attributes.update(extra)
    return attributes


CHAIN = {semconv.LANGSMITH_SPAN_KIND: "chain", semconv.GEN_AI_SYSTEM: "langchain",
         semconv.GEN_AI_OPERATION_NAME: "chain"}


def ended_span(name, attributes=None) -> ReadableSpan:
    """An ended span of its own trace, made by a separate provider: for feeding the stage by hand."""
    collected = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(collected))
    provider.get_tracer("by-hand").start_span(name, attributes=attributes).end()
    (span,) = collected.get_finished_spans()
    return span


class Broken(ReadableSpan):
    """A span whose attributes cannot be read."""

    @property
    def attributes(self):
        raise RuntimeError("broken span")


class TestEnrichment:
    @pytest.mark.parametrize("attributes,provider,model", [
        # ls_provider beats langsmith's gen_ai.system guess
        (langsmith_llm("gpt-4o", ls_provider="azure_openai", **{semconv.GEN_AI_SYSTEM: "openai"}),
         "azure.ai.openai", "gpt-4o"),
        # a Bedrock model id beats gen_ai.system=anthropic when ls_provider is missing
        (langsmith_llm(ls_provider=None), "aws.bedrock", BEDROCK_HAIKU),
        (langsmith_llm(), "aws.bedrock", BEDROCK_HAIKU),
        # OpenLLMetry style: request type, deprecated system and token names
        ({semconv.OPENLLMETRY_REQUEST_TYPE: "chat", semconv.GEN_AI_SYSTEM: "OpenAI",
          semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", semconv.GEN_AI_USAGE_PROMPT_TOKENS: 7},
         "openai", "gpt-4o-mini"),
        # official GenAI instrumentation style
        ({semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
          semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini"}, "openai", "gpt-4o-mini"),
        # model only in langsmith metadata, provider inferred from it
        ({semconv.LANGSMITH_SPAN_KIND: "llm", semconv.LANGSMITH_LS_MODEL_NAME: "gemini-1.5-pro"},
         "gcp.gemini", "gemini-1.5-pro"),
        # nothing derivable
        ({semconv.LANGSMITH_SPAN_KIND: "llm"}, semconv.UNKNOWN, semconv.UNKNOWN),
        # an unknown provider passes through normalised
        ({semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "My Cloud!",
          semconv.GEN_AI_REQUEST_MODEL: "m1"}, "my_cloud", "m1"),
    ])
    def test_llm_span_leaves_with_normalised_provider_and_model(self, attributes, provider, model):
        """Whichever instrumentation made it, the LLM span carries gen_ai.provider.name and request model."""
        h = Harness(window_s=0)
        h.llm(None, attributes)
        span = h.exported()["ChatModel"]
        assert span.attributes[semconv.GEN_AI_PROVIDER_NAME] == provider
        assert span.attributes[semconv.GEN_AI_REQUEST_MODEL] == model

    def test_chain_span_is_not_an_llm_span(self):
        """langsmith's chain spans (gen_ai.system=langchain) get no provider and are not counted."""
        h = Harness(window_s=0)
        root = h.start("root", kind=SpanKind.SERVER)
        h.start("LangGraph", root, attributes=CHAIN).end()
        root.end()
        exported = h.exported()
        assert semconv.GEN_AI_PROVIDER_NAME not in exported["LangGraph"].attributes
        assert semconv.ROLLUP_CALLS not in exported["root"].attributes
        assert h.calls == []

    def test_langgraph_node_is_copied(self):
        """langsmith.metadata.langgraph_node becomes llm.langgraph.node on node and LLM spans."""
        h = Harness(window_s=0)
        root = h.start("root")
        node = h.start("answer", root, attributes={**CHAIN, semconv.LANGSMITH_LANGGRAPH_NODE: "answer"})
        h.llm(node, langsmith_llm(**{semconv.LANGSMITH_LANGGRAPH_NODE: "answer"}))
        node.end()
        root.end()
        exported = h.exported()
        assert exported["answer"].attributes[semconv.LANGGRAPH_NODE] == "answer"
        assert exported["ChatModel"].attributes[semconv.LANGGRAPH_NODE] == "answer"
        assert h.calls[0][1].node == "answer"

    def test_plain_span_leaves_as_it_came_without_an_enrichment_built(self):
        """A span that is neither an LLM span nor a LangGraph node span gets the shared empty enrichment
        (nothing built for it on the export thread) and is forwarded as the same object."""
        h = Harness(window_s=0)
        span = ended_span("GET /health", attributes={"http.route": "/health"})
        assert enrichment(span, None, span.attributes) is NO_CHANGE
        h.stage.export([span])
        assert h.inner.get_finished_spans() == (span,) and h.inner.get_finished_spans()[0] is span

    def test_bad_values_have_defined_results(self):
        """Huge, non-string and nonsense values: capped text, unknown provider, unusable tokens ignored."""
        h = Harness(window_s=0)
        root = h.start("root")
        h.llm(root, {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_REQUEST_MODEL: "m" * 10_000,
                     semconv.GEN_AI_PROVIDER_NAME: ("x" * 500,), semconv.GEN_AI_USAGE_INPUT_TOKENS: "12",
                     semconv.GEN_AI_USAGE_OUTPUT_TOKENS: -5}, name="a")
        h.llm(root, {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_REQUEST_MODEL: 3.5,
                     semconv.GEN_AI_PROVIDER_NAME: "", semconv.GEN_AI_USAGE_INPUT_TOKENS: True}, name="b")
        root.end()
        exported = h.exported()
        a, b = exported["a"].attributes, exported["b"].attributes
        assert a[semconv.GEN_AI_REQUEST_MODEL] == "m" * semconv.MAX_MODEL_LENGTH
        assert a[semconv.GEN_AI_PROVIDER_NAME] == "x" * semconv.MAX_PROVIDER_LENGTH
        assert b[semconv.GEN_AI_REQUEST_MODEL] == "3.5" and b[semconv.GEN_AI_PROVIDER_NAME] == semconv.UNKNOWN
        rolled = exported["root"].attributes
        assert rolled[semconv.ROLLUP_INPUT_TOKENS] == 12 and semconv.ROLLUP_OUTPUT_TOKENS not in rolled

    def test_copy_keeps_everything_else(self):
        """The enriched copy keeps ids, parent, times, status, events, scope and dropped-attribute count."""
        h = Harness(window_s=0)
        span = h.start("ChatModel", attributes=langsmith_llm())
        span.add_event("first-token")
        for index in range(70):  # past the provider's limit of 64
            span.set_attribute(f"extra.{index}", index)
        span.set_status(Status(StatusCode.ERROR, "boom"))
        span.end()
        (copy,) = h.inner.get_finished_spans()
        assert copy is not span and copy.context == span.context and copy.parent == span.parent
        assert (copy.start_time, copy.end_time, copy.kind) == (span.start_time, span.end_time, span.kind)
        assert copy.status.status_code is StatusCode.ERROR and copy.events[0].name == "first-token"
        assert copy.instrumentation_scope.name == "test-scope"
        assert copy.dropped_attributes == span.dropped_attributes > 0


class TestRollup:
    def build_two_calls(self, h: Harness, *, error_second: bool = False):
        root = h.start("POST /chat", kind=SpanKind.SERVER)
        graph = h.start("LangGraph", root, attributes=CHAIN)
        intent = h.start("intent", graph, attributes={**CHAIN, semconv.LANGSMITH_LANGGRAPH_NODE: "intent"})
        h.llm(intent, langsmith_llm("gpt-4o-mini", ls_provider="openai"), name="ChatOpenAI")
        intent.end()
        answer = h.start("answer", graph, attributes={**CHAIN, semconv.LANGSMITH_LANGGRAPH_NODE: "answer"})
        h.llm(answer, langsmith_llm(**({semconv.ERROR_TYPE: "timeout"} if error_second else {})),
              name="ChatBedrock")
        answer.end()
        graph.end()
        root.end()

    def test_token_details_roll_up_under_their_own_names(self):
        """Cache-read/-write and reasoning tokens sum into llm.rollup.*; the parent gets no gen_ai.usage.*
        (a backend summing those over the trace must count each call once)."""
        h = Harness(window_s=0)
        root = h.start("root")
        call = {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
                semconv.GEN_AI_USAGE_INPUT_TOKENS: 12, semconv.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS: 4,
                semconv.OPENLLMETRY_REASONING_TOKENS: 2}
        h.llm(root, call, name="a")
        h.llm(root, {**call, semconv.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS: 3}, name="b")
        h.llm(root, {semconv.OPENINFERENCE_SPAN_KIND: "LLM", semconv.OPENINFERENCE_MODEL_NAME: "gpt-4o",
                     semconv.OPENINFERENCE_CACHE_WRITE_TOKENS: 5}, name="c")
        root.end()
        rolled = h.exported()["root"].attributes
        assert rolled[semconv.ROLLUP_CALLS] == 3
        assert rolled[semconv.ROLLUP_CACHE_READ_INPUT_TOKENS] == 8
        assert rolled[semconv.ROLLUP_CACHE_WRITE_INPUT_TOKENS] == 8
        assert rolled[semconv.ROLLUP_REASONING_OUTPUT_TOKENS] == 4
        assert not any(key.startswith("gen_ai.usage.") for key in rolled)

    def test_several_calls_roll_up_to_every_ancestor(self):
        """Root and graph get sorted distinct arrays, joined strings, call count, token sums, error flag."""
        h = Harness()
        self.build_two_calls(h, error_second=True)
        assert h.inner.get_finished_spans() == ()  # held for the window
        h.flush_after_window()
        exported = h.exported()
        for name in ("POST /chat", "LangGraph"):
            rolled = exported[name].attributes
            assert rolled[semconv.ROLLUP_PROVIDERS] == ("aws.bedrock", "openai")
            assert rolled[semconv.ROLLUP_PROVIDER] == "aws.bedrock,openai"
            assert rolled[semconv.ROLLUP_MODELS] == (BEDROCK_HAIKU, "gpt-4o-mini")
            assert rolled[semconv.ROLLUP_MODEL] == f"{BEDROCK_HAIKU},gpt-4o-mini"
            assert rolled[semconv.ROLLUP_CALLS] == 2
            assert (rolled[semconv.ROLLUP_INPUT_TOKENS], rolled[semconv.ROLLUP_OUTPUT_TOKENS]) == (20, 6)
            assert (rolled[semconv.ROLLUP_ERROR_CALLS], rolled[semconv.ROLLUP_ERROR]) == (1, True)
        intent = exported["intent"].attributes
        assert intent[semconv.ROLLUP_PROVIDER] == "openai" and intent[semconv.ROLLUP_CALLS] == 1
        assert intent[semconv.ROLLUP_ERROR] is False
        assert exported["answer"].attributes[semconv.ROLLUP_ERROR] is True
        assert semconv.ROLLUP_CALLS not in exported["ChatOpenAI"].attributes

    def test_error_status_counts_as_error(self):
        """An LLM span with status ERROR and no error.type counts as an error call."""
        h = Harness(window_s=0)
        root = h.start("root")
        h.llm(root, langsmith_llm(), status=Status(StatusCode.ERROR))
        root.end()
        assert h.exported()["root"].attributes[semconv.ROLLUP_ERROR_CALLS] == 1
        assert h.calls[0][1].error_type == "_OTHER"

    def test_nested_llm_call_is_counted_once(self):
        """An LLM span inside another LLM span rolls into it, not again into the ancestors above."""
        h = Harness(window_s=0)
        root = h.start("root")
        outer = h.start("outer", root, attributes=langsmith_llm("gpt-4o", ls_provider="openai"))
        h.llm(outer, {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "openai",
                      semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-2024-08-06"}, name="inner")
        outer.end()
        root.end()
        exported = h.exported()
        assert exported["root"].attributes[semconv.ROLLUP_CALLS] == 1
        assert exported["root"].attributes[semconv.ROLLUP_MODELS] == ("gpt-4o",)
        assert exported["outer"].attributes[semconv.ROLLUP_MODELS] == ("gpt-4o-2024-08-06",)

    def test_hook_sees_a_nested_group_once_through_its_outermost_span(self):
        """Three LLM spans nested in one another (a plain span between two): one hook call, for the
        outermost, carrying the two nested calls; a separate call beside them is its own group."""
        h = Harness(window_s=0)
        root = h.start("root")
        outer = h.start("outer", root, attributes=langsmith_llm("gpt-4o", ls_provider="openai"))
        middle = h.start("middle", outer, attributes={semconv.GEN_AI_OPERATION_NAME: "chat",
                                                      semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"})
        http = h.start("POST /v1/chat/completions", middle)
        h.llm(http, {semconv.GEN_AI_OPERATION_NAME: "chat",
                     semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-2024-08-06"}, name="innermost")
        http.end()
        middle.end()
        outer.end()
        h.llm(root, langsmith_llm(), name="beside")
        root.end()
        assert sorted((name, sorted(c.model for c in nested)) for name, _, nested in h.calls) == [
            ("beside", []), ("outer", ["gpt-4o", "gpt-4o-2024-08-06"])]
        assert h.exported()["root"].attributes[semconv.ROLLUP_CALLS] == 2

    def test_llm_spans_made_after_ancestors_ended(self):
        """langsmith-style: node and LLM spans made later from another thread still roll up to the root."""
        h = Harness()
        root = h.start("POST /chat", kind=SpanKind.SERVER)
        start = time.time_ns()
        root.end()

        def emit_later():
            graph = h.start("LangGraph", root, attributes=CHAIN, start_time=start)
            node = h.start("answer", graph, attributes=CHAIN, start_time=start)
            llm = h.start("ChatBedrock", node, attributes=langsmith_llm(), start_time=start)
            llm.end(end_time=start + 1000)
            node.end(end_time=start + 2000)
            graph.end(end_time=start + 3000)

        h.clock.advance(0.25)
        worker = threading.Thread(target=emit_later)
        worker.start()
        worker.join()
        h.flush_after_window()
        exported = h.exported()
        assert exported["POST /chat"].attributes[semconv.ROLLUP_PROVIDER] == "aws.bedrock"
        assert exported["LangGraph"].attributes[semconv.ROLLUP_CALLS] == 1
        assert h.stage.stats.late_spans == 0

    def test_result_does_not_depend_on_arrival_order(self):
        """The same spans exported in reverse order give identical roll-ups."""
        first = Harness()
        self.build_two_calls(first)
        first.stage.force_flush()
        spans = first.inner.get_finished_spans()
        originals = [s for s in spans]
        second_inner = InMemorySpanExporter()
        second = RollupSpanExporter(second_inner, window_s=0)
        second.export(list(reversed(originals)))
        rolled = {s.name: dict(s.attributes) for s in second_inner.get_finished_spans()}
        assert rolled == {s.name: dict(s.attributes) for s in spans}

    def test_distinct_values_are_capped(self):
        """Past MAX_ROLLUP_VALUES distinct models, the rest are listed as one _OTHER entry."""
        h = Harness(window_s=0)
        root = h.start("root")
        for index in range(MAX_ROLLUP_VALUES + 5):
            h.llm(root, {semconv.GEN_AI_OPERATION_NAME: "chat",
                         semconv.GEN_AI_REQUEST_MODEL: f"model-{index:02d}"})
        root.end()
        rolled = h.exported()["root"].attributes
        models = rolled[semconv.ROLLUP_MODELS]
        assert len(models) == MAX_ROLLUP_VALUES and models[-1] == semconv.OTHER
        assert models[:2] == ("model-00", "model-01")
        assert rolled[semconv.ROLLUP_CALLS] == MAX_ROLLUP_VALUES + 5

    def test_remote_parent_makes_a_local_root(self):
        """A CONSUMER span continuing a remote trace is the local root and gets the roll-up."""
        h = Harness(window_s=0)
        consumer = h.consumer(0xABC)
        h.llm(consumer, langsmith_llm())
        consumer.end()
        assert h.exported()["consume"].attributes[semconv.ROLLUP_CALLS] == 1


class TestLostAncestors:
    def build_with_lost_node(self, h: Harness):
        """POST /chat -> LangGraph -> answer (never exported: lost) -> ChatBedrock."""
        root = h.start("POST /chat", kind=SpanKind.SERVER)
        graph = h.start("LangGraph", root, attributes=CHAIN)
        lost = h.start("answer", graph, attributes=CHAIN)  # never ended, so never exported
        h.llm(lost, langsmith_llm(), name="ChatBedrock")
        graph.end()
        return root

    def test_call_beneath_a_lost_span_rolls_into_the_only_local_root(self):
        """The walk meets a parent that is not buffered: the call goes on to the trace's one local root,
        counted as re-rooted; the spans between the gap and the root do not get it."""
        h = Harness()
        self.build_with_lost_node(h).end()
        h.flush_after_window()
        exported = h.exported()
        assert exported["POST /chat"].attributes[semconv.ROLLUP_CALLS] == 1
        assert exported["POST /chat"].attributes[semconv.ROLLUP_PROVIDER] == "aws.bedrock"
        assert semconv.ROLLUP_CALLS not in exported["LangGraph"].attributes
        assert h.stage.stats.rerooted_calls == 1

    def test_lost_span_above_a_nested_group_reroots_it_once(self):
        """A nested LLM group beneath a lost span counts once on the root, and once as re-rooted."""
        h = Harness()
        root = h.start("POST /chat", kind=SpanKind.SERVER)
        lost = h.start("answer", root, attributes=CHAIN)
        outer = h.start("ChatOpenAI", lost, attributes=langsmith_llm("gpt-4o", ls_provider="openai"))
        h.llm(outer, {semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_REQUEST_MODEL: "gpt-4o"},
              name="openai.chat")
        outer.end()
        root.end()
        h.flush_after_window()
        assert h.exported()["POST /chat"].attributes[semconv.ROLLUP_CALLS] == 1
        assert h.stage.stats.rerooted_calls == 1
        assert [name for name, _, _ in h.calls] == ["ChatOpenAI"]

    def test_no_reroot_with_two_local_roots(self):
        """With two local roots buffered (API and in-process worker) the call's root is unknown: no roll-up
        past the gap, nothing counted."""
        h = Harness()
        root = self.build_with_lost_node(h)
        h.consumer(root.context.trace_id).end()
        root.end()
        h.flush_after_window()
        exported = h.exported()
        assert semconv.ROLLUP_CALLS not in exported["POST /chat"].attributes
        assert semconv.ROLLUP_CALLS not in exported["consume"].attributes
        assert h.stage.stats.rerooted_calls == 0


class TestWindowAndBounds:
    def test_trace_waits_for_its_window(self):
        """Nothing is forwarded before window_s has passed since the root arrived; then all of it."""
        h = Harness(window_s=2.0)
        root = h.start("root")
        h.llm(root, langsmith_llm())
        root.end()
        h.clock.advance(1.9)
        h.stage.flush()
        assert h.inner.get_finished_spans() == ()
        assert h.stage.stats.buffered_spans == 2 and h.stage.stats.buffered_traces == 1
        h.clock.advance(0.1)
        h.stage.flush()
        assert len(h.inner.get_finished_spans()) == 2
        assert h.stage.stats == RollupStats(0, 0, 0, 0, 0, 0, 0)

    def test_window_zero_forwards_when_root_arrives(self):
        """window_s=0: the trace leaves with its root; later spans are late and not rolled up."""
        h = Harness(window_s=0)
        root = h.start("root")
        root.end()
        assert [s.name for s in h.inner.get_finished_spans()] == ["root"]
        h.llm(root, langsmith_llm())
        assert h.stage.stats.late_spans == 1
        assert h.exported()["ChatModel"].attributes[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
        assert semconv.ROLLUP_CALLS not in h.exported()["root"].attributes

    def test_oldest_trace_is_evicted_past_max_traces(self):
        """A third trace with max_traces=2 forwards the oldest early, counted."""
        h = Harness(max_traces=2)
        for name in ("t1", "t2", "t3"):
            h.start(name).end()
        assert [s.name for s in h.inner.get_finished_spans()] == ["t1"]
        stats = h.stage.stats
        assert (stats.evicted_traces, stats.buffered_traces) == (1, 2)

    def test_trace_without_root_expires(self):
        """Spans whose local root never arrives are forwarded after max_age_s, counted as expired."""
        h = Harness(max_age_s=10)
        root = h.start("never-ends")
        h.llm(root, langsmith_llm())
        h.clock.advance(9.9)
        h.stage.flush()
        assert h.inner.get_finished_spans() == ()
        h.clock.advance(0.1)
        h.stage.flush()
        assert [s.name for s in h.inner.get_finished_spans()] == ["ChatModel"]
        assert h.stage.stats.expired_traces == 1 and h.stage.stats.buffered_spans == 0

    def test_span_after_flush_is_late(self):
        """A span of an already flushed trace is counted late and held until window_s passes without more."""
        h = Harness(window_s=2.0)
        root = h.start("root")
        root.end()
        h.flush_after_window()
        h.llm(root, langsmith_llm())
        h.clock.advance(1.0)
        h.llm(root, langsmith_llm(), name="SecondCall")
        h.clock.advance(1.9)
        h.stage.flush()
        assert set(h.exported()) == {"root"}
        assert h.stage.stats.late_spans == 2
        h.clock.advance(0.1)
        h.stage.flush()
        assert h.exported()["ChatModel"].attributes[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
        assert "SecondCall" in h.exported() and h.stage.stats.buffered_traces == 0

    def test_late_part_rolls_up_within_itself(self):
        """LangGraph spans arriving after the root was flushed still get the roll-up of the calls beneath;
        the late part's own local root (an in-process worker's CONSUMER) does not: a late part never re-roots,
        since an unknown parent there is usually a span that left with the earlier part."""
        h = Harness(window_s=2.0)
        root = h.start("POST /chat", kind=SpanKind.SERVER)
        graph = h.start("LangGraph", root, attributes=CHAIN)
        root.end()
        h.flush_after_window()
        h.consumer(root.context.trace_id).end()
        h.llm(graph, langsmith_llm())
        graph.end()
        h.flush_after_window()
        exported = h.exported()
        assert exported["LangGraph"].attributes[semconv.ROLLUP_CALLS] == 1
        assert semconv.ROLLUP_CALLS not in exported["POST /chat"].attributes
        assert semconv.ROLLUP_CALLS not in exported["consume"].attributes
        assert (h.stage.stats.late_spans, h.stage.stats.rerooted_calls) == (3, 0)

    def test_worker_part_in_the_same_process_rolls_up_to_its_consumer(self):
        """API and worker in one process: the worker's CONSUMER, after the API part left, gets its roll-up."""
        h = Harness(window_s=2.0)
        server = h.start("POST /chat", kind=SpanKind.SERVER)
        producer = h.start("enqueue", server, kind=SpanKind.PRODUCER)
        producer.end()
        server.end()
        h.flush_after_window()
        consumer = h.consumer(server.context.trace_id, producer.context.span_id)
        h.llm(consumer, langsmith_llm())
        h.clock.advance(1.5)
        consumer.end()
        h.clock.advance(1.9)
        h.stage.flush()
        assert "consume" not in h.exported()
        h.clock.advance(0.1)
        h.stage.flush()
        assert h.exported()["consume"].attributes[semconv.ROLLUP_PROVIDER] == "aws.bedrock"

    def test_spans_past_the_per_trace_cap_overflow(self):
        """Past max_spans_per_trace, non-root spans go straight through; the root is still buffered."""
        h = Harness(max_spans_per_trace=2)
        root = h.start("root")
        for index in range(3):
            h.start(f"child{index}", root).end()
        assert [s.name for s in h.inner.get_finished_spans()] == ["child2"]
        root.end()
        stats = h.stage.stats
        assert (stats.overflow_spans, stats.buffered_spans) == (1, 3)

    def test_oldest_trace_is_evicted_past_max_buffered_spans(self):
        """Past max_buffered_spans over all traces the oldest trace leaves early, counted as evicted."""
        h = Harness(max_buffered_spans=2)
        first = h.start("first-root")
        h.start("first-child", first).end()
        h.start("first-child-2", first).end()
        second = h.start("second-root")
        h.start("second-child", second).end()
        assert [s.name for s in h.inner.get_finished_spans()] == ["first-child", "first-child-2"]
        stats = h.stage.stats
        assert (stats.evicted_traces, stats.buffered_traces, stats.buffered_spans) == (1, 1, 1)

    def test_a_single_trace_past_max_buffered_spans_leaves_whole(self):
        """One trace alone past the cap is released with the span that crossed it; later spans are late."""
        h = Harness(max_buffered_spans=2)
        root = h.start("root")
        for index in range(3):
            h.start(f"child{index}", root).end()
        assert [s.name for s in h.inner.get_finished_spans()] == ["child0", "child1", "child2"]
        assert h.stage.stats.evicted_traces == 1 and h.stage.stats.buffered_spans == 0

    def test_memory_is_bounded_under_many_rootless_traces(self):
        """Many traces that never finish keep the buffer at max_traces."""
        h = Harness(max_traces=50)
        for _ in range(500):
            h.start("orphan-parent")  # never ended
            h.llm(h.start("p"), langsmith_llm())
        stats = h.stage.stats
        assert stats.buffered_traces == 50 and stats.evicted_traces == 450


class TestLifecycle:
    def test_force_flush_forwards_everything_and_flushes_inner(self):
        """force_flush ignores windows, forwards all buffered spans and flushes the inner exporter."""
        h = Harness()
        root = h.start("root")
        root.end()
        h.start("rootless").end()
        assert h.stage.force_flush(1000) is True
        assert len(h.inner.get_finished_spans()) == 2 and h.inner.force_flushes == 1

    def test_inner_failure_is_reported(self):
        """The inner exporter's result enum comes back from export and makes force_flush False."""
        h = Harness(window_s=0)
        h.inner.result = SpanExportResult.FAILURE
        assert h.stage.export([]) is SpanExportResult.SUCCESS
        root = h.start("root")
        root.end()
        assert h.stage.export([h.inner.get_finished_spans()[0]]) is SpanExportResult.FAILURE
        h.start("child-of-open-root", h.start("open-root")).end()
        assert h.stage.force_flush() is False

    def test_raising_inner_exporter_never_reaches_the_caller(self, caplog):
        """An inner exporter that raises: FAILURE from export, False from force_flush, a quiet shutdown."""

        class Raising(InMemorySpanExporter):
            def export(self, spans):
                raise ConnectionError("collector down")

            def shutdown(self):
                raise RuntimeError("already closed")

        stage = RollupSpanExporter(Raising(), window_s=0)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(stage))
        with caplog.at_level(logging.ERROR):
            provider.get_tracer("t").start_span("root", attributes=langsmith_llm()).end()
            assert stage.export([]) is SpanExportResult.SUCCESS
            provider.get_tracer("t").start_span("child", context=trace.set_span_in_context(
                provider.get_tracer("t").start_span("open-root"))).end()
            assert stage.force_flush() is False
            stage.shutdown()
        assert any("inner exporter failed" in r.getMessage() for r in caplog.records)

    def test_shutdown_flushes_and_closes(self):
        """shutdown forwards buffered spans, shuts inner down, refuses later exports; twice is fine."""
        h = Harness()
        root = h.start("root")
        root.end()
        h.stage.shutdown()
        h.stage.shutdown()
        assert [s.name for s in h.inner.get_finished_spans()] == ["root"]
        assert h.stage.export([]) is SpanExportResult.FAILURE
        assert h.inner._stopped  # InMemorySpanExporter.shutdown sets it

    def test_hook_called_once_per_llm_span_and_errors_swallowed(self, caplog):
        """on_llm_span sees each LLM span once with its LLMCall; its exception is logged, spans go on."""
        seen = []

        def hook(span, call, nested):
            seen.append(call)
            raise RuntimeError("hook bug")

        h = Harness(window_s=0, on_llm_span=hook)
        root = h.start("root")
        h.llm(root, langsmith_llm(), name="one")
        h.llm(root, langsmith_llm("gpt-4o", ls_provider="openai"), name="two")
        with caplog.at_level(logging.ERROR):
            root.end()
        assert len(h.inner.get_finished_spans()) == 3
        assert [(c.provider, c.model, c.input_tokens, c.output_tokens, c.scope_name) for c in seen] == [
            ("aws.bedrock", BEDROCK_HAIKU, 10, 3, "test-scope"), ("openai", "gpt-4o", 10, 3, "test-scope")]
        assert seen[0].operation == "chat" and seen[0].duration_s >= 0
        assert any("on_llm_span" in r.getMessage() for r in caplog.records)

    def test_unreadable_span_is_forwarded_unchanged(self, caplog):
        """A span whose attributes raise is forwarded as it came, and the error is logged."""
        h = Harness()
        broken = Broken("broken", context=trace.SpanContext(1, 2, False))
        with caplog.at_level(logging.ERROR):
            assert h.stage.export([broken]) is SpanExportResult.SUCCESS
        assert h.inner.get_finished_spans() == (broken,)
        assert any("could not read a span" in r.getMessage() for r in caplog.records)

    def test_unreadable_span_leaves_the_rest_of_its_batch_alone(self):
        """[good, broken]: only the broken span goes out at once; the good one stays buffered and leaves
        once, enriched."""
        h = Harness()
        good = ended_span("ChatModel", attributes=langsmith_llm())
        broken = Broken("broken", context=trace.SpanContext(1, 2, False))
        h.stage.export([good, broken])
        assert h.inner.get_finished_spans() == (broken,)
        h.stage.force_flush()
        assert sorted(s.name for s in h.inner.get_finished_spans()) == ["ChatModel", "broken"]
        assert h.exported()["ChatModel"].attributes[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"

    def test_spans_evicted_before_an_unreadable_span_are_forwarded(self):
        """Eviction caused by a span early in a batch still forwards the evicted trace when a later span of
        the batch cannot be read."""
        h = Harness(max_traces=1)
        h.start("first").end()
        second = ended_span("second")
        broken = Broken("broken", context=trace.SpanContext(1, 2, False))
        h.stage.export([second, broken])
        assert [s.name for s in h.inner.get_finished_spans()] == ["first", "broken"]
        h.stage.force_flush()
        assert [s.name for s in h.inner.get_finished_spans()] == ["first", "broken", "second"]

    def test_stage_failure_forwards_the_untaken_spans(self, caplog):
        """If the stage fails before taking a batch (here its clock raises), the batch goes out unchanged."""

        def broken_clock():
            raise RuntimeError("clock broke")

        inner = InMemorySpanExporter()
        stage = RollupSpanExporter(inner, clock=broken_clock)
        span = ended_span("root")
        with caplog.at_level(logging.ERROR):
            assert stage.export([span]) is SpanExportResult.SUCCESS
        assert inner.get_finished_spans() == (span,)
        stage.shutdown()

    @pytest.mark.parametrize("options,message", [
        ({"window_s": -1}, "window_s"), ({"window_s": float("nan")}, "window_s"),
        ({"max_age_s": 0}, "max_age_s"), ({"max_traces": 0}, "max_traces"),
        ({"max_spans_per_trace": 1.5}, "max_spans_per_trace"), ({"on_llm_span": 3}, "on_llm_span"),
        ({"max_buffered_spans": 0}, "max_buffered_spans"),
        ({"clock": None}, "clock"),
    ])
    def test_bad_construction_names_the_parameter(self, options, message):
        """Invalid arguments raise ValueError naming the parameter."""
        with pytest.raises(ValueError, match=message):
            RollupSpanExporter(InMemorySpanExporter(), **options)

    def test_forked_child_starts_empty(self):
        """After fork the child holds none of the parent's buffered spans; the parent keeps them."""
        h = Harness()
        h.start("child-of-open-root", h.start("open-root")).end()
        pid = os.fork()
        if pid == 0:  # the child: report through the exit code only
            os._exit(0 if h.stage.stats.buffered_spans == 0 and h.stage.export([]) is SpanExportResult.SUCCESS
                     else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert h.stage.stats.buffered_spans == 1

    def test_inner_must_be_an_exporter(self):
        """Something without export() is refused at construction."""
        with pytest.raises(ValueError, match="inner"):
            RollupSpanExporter(object())  # type: ignore[arg-type]


class TestWithBatchSpanProcessor:
    def test_provider_force_flush_reaches_the_buffer(self):
        """With RollupBatchSpanProcessor, TracerProvider.force_flush delivers spans inside their window."""
        inner = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(RollupBatchSpanProcessor(RollupSpanExporter(inner, window_s=600)))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("root"):
            tracer.start_span("ChatModel", attributes=langsmith_llm()).end()
        assert provider.force_flush() is True
        assert {s.name for s in inner.get_finished_spans()} == {"root", "ChatModel"}
        provider.shutdown()

    def test_processor_exposes_its_stage(self):
        """rollup_stage gives the stage whose stats the pipeline-health metrics publish."""
        stage = RollupSpanExporter(InMemorySpanExporter())
        processor = RollupBatchSpanProcessor(stage)
        assert processor.rollup_stage is stage
        processor.shutdown()

    def test_flush_thread_forwards_ready_traces(self):
        """With no further spans or flushes, the stage's own thread forwards a trace after its window."""
        inner = InMemorySpanExporter()
        stage = RollupSpanExporter(inner, window_s=0.05)
        provider = TracerProvider()
        provider.add_span_processor(RollupBatchSpanProcessor(stage, schedule_delay_millis=10))
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("root"):
            tracer.start_span("ChatModel", attributes=langsmith_llm()).end()
        deadline = time.monotonic() + 10
        while len(inner.get_finished_spans()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)  # polling with a deadline, not synchronising by sleep
        assert {s.name for s in inner.get_finished_spans()} == {"root", "ChatModel"}
        root = next(s for s in inner.get_finished_spans() if s.name == "root")
        assert root.attributes[semconv.ROLLUP_CALLS] == 1
        provider.shutdown()

    def test_inner_exporter_runs_with_instrumentation_suppressed(self):
        """The inner exporter's own I/O (gRPC, HTTP) makes no spans, also when the stage's thread calls it."""
        seen: list[tuple[str, bool]] = []

        class Watching(InMemorySpanExporter):
            def export(self, spans):
                seen.append((threading.current_thread().name, is_instrumentation_enabled()))
                return super().export(spans)

        stage = RollupSpanExporter(Watching(), window_s=0.05)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(stage))
        provider.get_tracer("t").start_span("root").end()
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)  # polling with a deadline, not synchronising by sleep
        assert seen == [("otel-llm-rollup", False)]
        assert is_instrumentation_enabled()  # the stage left the caller's context as it was
        provider.shutdown()

    def test_processor_requires_the_rollup_stage(self):
        """RollupBatchSpanProcessor refuses a plain exporter (its force_flush would not reach a buffer)."""
        with pytest.raises(ValueError, match="span_exporter"):
            RollupBatchSpanProcessor(InMemorySpanExporter())  # type: ignore[arg-type]
