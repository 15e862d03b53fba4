"""otel_llm.traces: SDK spans and Jaeger JSON become the same trace model; bad input has defined results."""

from __future__ import annotations

import pytest
from opentelemetry import trace as trace_api
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm import semconv
from otel_llm.traces import Span, Trace, from_jaeger, from_readable_spans, group_traces

BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def llm_attributes(provider_key: str, provider: str, model: str, tokens: tuple[int, int]) -> dict:
    return {
        semconv.GEN_AI_OPERATION_NAME: "chat",
        provider_key: provider,
        semconv.GEN_AI_REQUEST_MODEL: model,
        semconv.GEN_AI_USAGE_INPUT_TOKENS: tokens[0],
        semconv.GEN_AI_USAGE_OUTPUT_TOKENS: tokens[1],
    }


@pytest.fixture
def reference_spans():
    """One request as the reference app shapes it: API side and worker side on two providers' resources."""
    exporter = InMemorySpanExporter()
    providers = []
    for service in ("chat-api", "chat-worker"):
        provider = TracerProvider(resource=Resource.create({"service.name": service}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers.append(provider)
    api, worker = (provider.get_tracer("test") for provider in providers)
    with api.start_as_current_span("POST /api/v1/chat", kind=trace_api.SpanKind.SERVER):
        with api.start_as_current_span("chat send", kind=trace_api.SpanKind.PRODUCER):
            with worker.start_as_current_span("chat process", kind=trace_api.SpanKind.CONSUMER):
                with worker.start_as_current_span("intent", attributes={semconv.LANGGRAPH_NODE: "intent"}):
                    with worker.start_as_current_span(
                        "chat gpt-4o-mini",
                        attributes=llm_attributes(
                            semconv.GEN_AI_PROVIDER_NAME, "openai", "gpt-4o-mini", (10, 2)
                        ),
                    ):
                        pass
                with worker.start_as_current_span("general", attributes={semconv.LANGGRAPH_NODE: "general"}):
                    with worker.start_as_current_span(
                        "ChatBedrock",
                        # Deprecated system name: the semconv rules must still call it aws.bedrock (model id).
                        attributes=llm_attributes(semconv.GEN_AI_SYSTEM, "anthropic", BEDROCK_MODEL, (30, 7)),
                    ) as failing:
                        failing.set_status(trace_api.StatusCode.ERROR)
    for provider in providers:
        provider.shutdown()
    return exporter.get_finished_spans()


def test_sdk_spans_become_one_trace_with_services_and_llm_calls(reference_spans):
    """Every span of the request lands in one trace rooted at the API span, with its LLM calls resolved."""
    [trace] = from_readable_spans(reference_spans)
    assert len(trace.spans) == 7
    assert trace.root.name == "POST /api/v1/chat"
    assert trace.services == ("chat-api", "chat-worker")
    assert trace.providers == ("aws.bedrock", "openai")
    assert trace.models == (BEDROCK_MODEL, "gpt-4o-mini")
    assert (trace.call_count, trace.input_tokens, trace.output_tokens) == (2, 40, 9)
    assert trace.error is True


def test_walk_visits_every_span_once_in_tree_order(reference_spans):
    """walk() is depth-first from the root, children by start time."""
    [trace] = from_readable_spans(reference_spans)
    names = [(depth, span.name) for depth, span, _ in trace.walk()]
    assert names == [
        (0, "POST /api/v1/chat"),
        (1, "chat send"),
        (2, "chat process"),
        (3, "intent"),
        (4, "chat gpt-4o-mini"),
        (3, "general"),
        (4, "ChatBedrock"),
    ]


def jaeger_payload(spans: list[dict], processes: dict | None = None) -> dict:
    return {
        "data": [
            {
                "traceID": "abc",
                "spans": spans,
                "processes": processes or {"p1": {"serviceName": "chat-worker"}},
            }
        ]
    }


def jaeger_span(
    span_id: str, parent: str | None, name: str, tags: list[dict], start: int = 1_000, duration: int = 500
) -> dict:
    references = [{"refType": "CHILD_OF", "traceID": "abc", "spanID": parent}] if parent else []
    return {
        "traceID": "abc",
        "spanID": span_id,
        "operationName": name,
        "references": references,
        "startTime": start,
        "duration": duration,
        "tags": tags,
        "processID": "p1",
    }


def test_jaeger_json_reads_typed_tags_parents_and_error():
    """Jaeger's tags (int64 as numbers, error=true) and CHILD_OF references map onto the same model."""
    payload = jaeger_payload(
        [
            jaeger_span(
                "r", None, "chat process", [{"key": "error", "type": "bool", "value": True}], 1_000, 900
            ),
            jaeger_span(
                "l",
                "r",
                "chat gpt-4o-mini",
                [
                    {"key": semconv.GEN_AI_OPERATION_NAME, "type": "string", "value": "chat"},
                    {"key": semconv.GEN_AI_PROVIDER_NAME, "type": "string", "value": "openai"},
                    {"key": semconv.GEN_AI_REQUEST_MODEL, "type": "string", "value": "gpt-4o-mini"},
                    {"key": semconv.GEN_AI_USAGE_INPUT_TOKENS, "type": "int64", "value": "11"},
                ],
                1_100,
                300,
            ),
        ]
    )
    [trace] = from_jaeger(payload)
    assert trace.trace_id == "abc".zfill(32)
    assert trace.root.span_id == "r" and trace.children["r"][0].span_id == "l"
    assert trace.root.service == "chat-worker"
    assert trace.input_tokens == 11 and trace.error is True
    assert trace.duration_us == 900


def test_a_trace_from_several_services_answers_counts_each_span_once():
    """Jaeger answers a query per service with the whole trace: joined, every span and token counts once."""
    llm_tags = [
        {"key": semconv.GEN_AI_OPERATION_NAME, "type": "string", "value": "chat"},
        {"key": semconv.GEN_AI_PROVIDER_NAME, "type": "string", "value": "openai"},
        {"key": semconv.GEN_AI_USAGE_INPUT_TOKENS, "type": "int64", "value": "11"},
    ]
    one_answer = jaeger_payload([jaeger_span("r", None, "root", []), jaeger_span("l", "r", "llm", llm_tags)])
    [trace] = from_jaeger({"data": one_answer["data"] * 3})
    assert sorted(span.span_id for span in trace.spans) == ["l", "r"]
    assert (trace.call_count, trace.input_tokens) == (1, 11)


def test_trace_without_llm_spans_falls_back_to_the_root_rollup():
    """Roots carrying llm.rollup.* (LLM spans not exported) still give providers, models, calls and tokens."""
    payload = jaeger_payload(
        [
            jaeger_span(
                "r",
                None,
                "POST /api/v1/chat",
                [
                    {"key": semconv.ROLLUP_PROVIDER, "type": "string", "value": "aws.bedrock,openai"},
                    {"key": semconv.ROLLUP_MODEL, "type": "string", "value": "gpt-4o-mini"},
                    {"key": semconv.ROLLUP_CALLS, "type": "int64", "value": 3},
                    {"key": semconv.ROLLUP_INPUT_TOKENS, "type": "int64", "value": 5},
                ],
            )
        ]
    )
    [trace] = from_jaeger(payload)
    assert trace.providers == ("aws.bedrock", "openai")
    assert trace.models == ("gpt-4o-mini",)
    assert (trace.call_count, trace.input_tokens, trace.output_tokens) == (3, 5, 0)


@pytest.mark.parametrize(
    "payload",
    [
        None,
        {},
        {"data": None},
        {"data": "x"},
        {"data": [None, 3, {"spans": None}]},
        {"data": [{"spans": [None, {"spanID": ""}, {"no": "id"}]}]},
    ],
)
def test_malformed_jaeger_payloads_give_no_traces(payload):
    """Payloads without usable spans give an empty list instead of raising."""
    assert from_jaeger(payload) == []


def test_missing_fields_get_defaults_and_parent_cycles_terminate():
    """A span with no name/times/process gets "unknown"/0; a parent cycle makes both spans visited once."""
    payload = jaeger_payload(
        [
            {"spanID": "a", "references": [{"refType": "CHILD_OF", "spanID": "b"}], "startTime": "soon"},
            {"spanID": "b", "references": [{"refType": "FOLLOWS_FROM", "spanID": "a"}], "processID": "nope"},
        ]
    )
    [trace] = from_jaeger(payload)
    assert {(span.name, span.service, span.start_us) for span in trace.spans} == {("unknown", "unknown", 0)}
    assert trace.roots == ()
    assert sorted(span.span_id for _, span, _ in trace.walk()) == ["a", "b"]
    assert trace.root.span_id in {"a", "b"}
    assert [span.span_id for span in trace.ancestors(trace.by_id["a"])] == ["b"]


def test_orphans_are_extra_roots_and_traces_are_sorted_by_start():
    """A span whose parent is not in the trace is a root; traces come earliest first."""
    spans = [
        Span("t2", "x", None, "late", "s", 500, 1, {}, False),
        Span("t1", "y", "missing", "orphan", "s", 200, 1, {}, False),
        Span("t1", "z", None, "root", "s", 100, 1, {}, False),
    ]
    first, second = group_traces(spans)
    assert first.trace_id == "t1" and [span.name for span in first.roots] == ["root", "orphan"]
    assert second.trace_id == "t2"


def test_summary_is_json_ready():
    """summary() holds the table's facts as plain values."""
    trace = Trace("t", (Span("t", "r", None, "root", "svc", 1_700_000_000_000_000, 2_500, {}, False),))
    summary = trace.summary()
    assert summary["start"] == "2023-11-14T22:13:20.000+00:00"
    assert summary["duration_ms"] == 2.5 and summary["root_operation"] == "root"
    assert summary["providers"] == [] and summary["llm_calls"] == 0 and summary["error"] is False


def referencing(span: dict, *references: tuple[str, str, str]) -> dict:
    """``span`` with Jaeger references (refType, traceID, spanID)."""
    keys = ("refType", "traceID", "spanID")
    return {**span, "references": [dict(zip(keys, reference, strict=True)) for reference in references]}


class TestParents:
    def test_a_span_that_only_follows_from_its_producer_hangs_under_it(self):
        """A consumer linked FOLLOWS_FROM to a producer of its trace is the producer's child, as linked."""
        [trace] = from_jaeger(jaeger_payload([
            jaeger_span("p", None, "send", [{"key": "span.kind", "type": "string", "value": "producer"}]),
            referencing(jaeger_span("c", None, "process", [], start=2_000), ("FOLLOWS_FROM", "abc", "p")),
        ]))
        consumer = trace.by_id["c"]
        assert (consumer.parent_id, consumer.linked, consumer.follows_from) == ("p", True, ("p",))
        assert trace.parent(consumer).kind == "producer"
        assert [root.span_id for root in trace.roots] == ["p"] and trace.orphans == []

    def test_a_parent_span_wins_over_a_link(self):
        """CHILD_OF is the parent whatever the order; the FOLLOWS_FROM stays listed; not linked."""
        [trace] = from_jaeger(jaeger_payload([
            jaeger_span("p", None, "send", []),
            jaeger_span("q", None, "other", []),
            referencing(
                jaeger_span("c", None, "process", []), ("FOLLOWS_FROM", "abc", "q"), ("CHILD_OF", "abc", "p")
            ),
        ]))
        consumer = trace.by_id["c"]
        assert (consumer.parent_id, consumer.linked, consumer.follows_from) == ("p", False, ("q",))

    def test_a_link_into_another_trace_is_no_parent(self):
        """A consumer that starts its own trace, linked to the producer's, is its root, not an orphan."""
        [trace] = from_jaeger(jaeger_payload([
            referencing(jaeger_span("c", None, "process", []), ("FOLLOWS_FROM", "def", "p")),
        ]))
        (root,) = trace.roots
        assert (root.span_id, root.parent_id, root.follows_from, trace.orphans) == ("c", None, (), [])

    def test_orphans_parents_ancestors_kinds_and_names(self):
        """A span naming a missing parent is an orphan root; ancestors walk up; kind, scope from tags."""
        client = [{"key": "span.kind", "type": "string", "value": "client"},
                  {"key": "otel.scope.name", "type": "string", "value": "grpc"}]
        [trace] = from_jaeger(jaeger_payload([
            jaeger_span("r", None, "root", []),
            jaeger_span("n", "r", "node", []),
            jaeger_span("g", "n", "character", client),
            jaeger_span("o", "lost", "orphan", []),
        ]))
        grpc_call = trace.by_id["g"]
        assert [span.span_id for span in trace.orphans] == ["o"]
        assert [span.name for span in trace.ancestors(grpc_call)] == ["node", "root"]
        assert trace.of_kind("client") == [grpc_call] and trace.of_kind("client", "elsewhere") == []
        assert (grpc_call.scope, trace.by_id["r"].kind, trace.by_id["r"].scope) == ("grpc", "internal", None)
        assert trace.named("node") == [trace.by_id["n"]] and trace.parent(trace.by_id["r"]) is None

    def test_int64_tags_keep_their_sign_and_unreadable_ones_their_text(self):
        """An int64 tag is its number, negative ones too; one that is no number stays as it came."""
        [trace] = from_jaeger(jaeger_payload([jaeger_span("r", None, "root", [
            {"key": "offset", "type": "int64", "value": "-3"},
            {"key": "odd", "type": "int64", "value": "n/a"},
        ])]))
        assert (trace.root.attributes["offset"], trace.root.attributes["odd"]) == (-3, "n/a")


def test_sdk_spans_carry_kind_scope_and_links_within_their_trace():
    """From the SDK: kind, scope, and a span that only links to one of its trace hangs under it, linked."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("queue-test")
    # A root whatever context an earlier test left current.
    with tracer.start_as_current_span("send", Context(), kind=trace_api.SpanKind.PRODUCER) as producer:
        pass
    other_trace = trace_api.SpanContext(0xABC, 0xDEF, is_remote=True)
    sampled = trace_api.TraceFlags(trace_api.TraceFlags.SAMPLED)
    same_trace = trace_api.set_span_in_context(trace_api.NonRecordingSpan(trace_api.SpanContext(
        producer.context.trace_id, 0x1234, is_remote=True, trace_flags=sampled)))
    links = [trace_api.Link(other_trace), trace_api.Link(producer.context)]
    tracer.start_span("process", context=same_trace, kind=trace_api.SpanKind.CONSUMER, links=links).end()
    provider.shutdown()
    [trace] = from_readable_spans(exporter.get_finished_spans())
    consumer = trace.named("process")[0]
    assert (consumer.kind, consumer.scope) == ("consumer", "queue-test")
    assert consumer.parent_id == "0000000000001234" and not consumer.linked
    assert consumer.follows_from == (format(producer.context.span_id, "016x"),)
    assert trace.orphans == [consumer]
