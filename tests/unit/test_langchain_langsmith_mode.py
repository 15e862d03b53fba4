"""LangSmith in OTel mode with the LangChain instrumentation: each run traced once, spans in the right trace.

langsmith reads its environment once per process (cached), so each scenario runs in a fresh interpreter
with LANGSMITH_TRACING=true and LANGSMITH_TRACING_MODE=otel (no API key, no network: otel mode never calls
LangSmith). The scenario runs REQUESTS graphs at once (threads for the sync graph, tasks for the async one),
each inside its own request span; in each, two Send branches open a client span, call a ``@traceable``
function that opens another, then a chat model: invoked in branch 0, streamed in branch 1.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections import Counter

import pytest

from otel_llm.instrumentation import langsmith_bridge

REQUESTS = 6
BRANCHES = (0, 1)
LANGSMITH_SCOPE = "langsmith"
OUR_SCOPE = "otel_llm.instrumentation.langchain"

# argv: "instrumented" or "langsmith-only", then "sync" or "async". Prints every finished span as JSON after
# langsmith's queue drained.
SCENARIO = r"""
import asyncio, json, operator, sys
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, TypedDict
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

REQUESTS = int(sys.argv[3])
exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)
if sys.argv[1] == "instrumented":
    from otel_llm.instrumentation.langchain import LangChainInstrumentor
    LangChainInstrumentor().instrument(tracer_provider=provider)

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tracers.langchain import wait_for_all_tracers
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from langsmith import traceable

tracer = trace.get_tracer("app")

class State(TypedDict, total=False):
    branch: int
    out: Annotated[list, operator.add]

def model():
    return GenericFakeChatModel(messages=iter([AIMessage(content="a b c")]))

@traceable(name="lookup")
def lookup(branch):
    with tracer.start_as_current_span(f"inside traceable {branch}"):
        return branch

@traceable(name="lookup")
async def alookup(branch):
    with tracer.start_as_current_span(f"inside traceable {branch}"):
        return branch

def subagent(state):
    with tracer.start_as_current_span(f"client {state['branch']}"):
        pass
    lookup(state["branch"])
    if state["branch"] == 0:
        model().invoke("q")
    else:
        list(model().stream("q"))
    return {"out": [state["branch"]]}

async def asubagent(state):
    with tracer.start_as_current_span(f"client {state['branch']}"):
        pass
    await alookup(state["branch"])
    if state["branch"] == 0:
        await model().ainvoke("q")
    else:
        [chunk async for chunk in model().astream("q")]
    return {"out": [state["branch"]]}

def fan_out(state):
    return [Send("subagent", {"branch": branch}) for branch in (0, 1)]

asynchronous = sys.argv[2] == "async"
builder = StateGraph(State)
builder.add_node("intent", lambda state: {})
builder.add_node("subagent", asubagent if asynchronous else subagent)
builder.add_edge(START, "intent")
builder.add_conditional_edges("intent", fan_out, ["subagent"])
builder.add_edge("subagent", END)
graph = builder.compile()

def request(index):
    with tracer.start_as_current_span(f"request {index}"):
        graph.invoke({"out": []}, config={"run_name": f"chat:job-{index}"})

async def arequest(index):
    with tracer.start_as_current_span(f"request {index}"):
        await graph.ainvoke({"out": []}, config={"run_name": f"chat:job-{index}"})

async def arequests():
    await asyncio.gather(*(arequest(index) for index in range(REQUESTS)))

if asynchronous:
    asyncio.run(arequests())
else:
    with ThreadPoolExecutor(max_workers=REQUESTS) as pool:
        list(pool.map(request, range(REQUESTS)))
wait_for_all_tracers()
print(json.dumps([
    {"name": s.name, "trace": s.context.trace_id, "id": s.context.span_id,
     "parent": s.parent.span_id if s.parent else None, "scope": s.instrumentation_scope.name,
     "streamed": "gen_ai.response.time_to_first_chunk" in (s.attributes or {})}
    for s in exporter.get_finished_spans()
]))
"""


def run_scenario(
    mode: str, *, instrumented: bool, graph: str = "sync", requests: int = REQUESTS
) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH_", "LANGCHAIN_", "OTEL_"))}
    env.update(LANGSMITH_TRACING="true", LANGSMITH_TRACING_MODE=mode, LANGSMITH_ENDPOINT="http://127.0.0.1:9")
    argument = "instrumented" if instrumented else "langsmith-only"
    result = subprocess.run(
        [sys.executable, "-c", SCENARIO, argument, graph, str(requests)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def by_name(spans: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for span in spans:
        grouped.setdefault(span["name"], []).append(span)
    return grouped


def requests_by_trace(spans: list[dict]) -> dict[int, list[dict]]:
    """The spans of each request's trace, keyed by the request's index."""
    traces: dict[int, list[dict]] = {}
    for span in spans:
        traces.setdefault(span["trace"], []).append(span)
    indexed = {}
    for trace in traces.values():
        roots = [span["name"] for span in trace if span["name"].startswith("request ")]
        indexed[int(roots[0].split()[1]) if len(roots) == 1 else -len(indexed) - 1] = trace
    return indexed


def expected_names(index: int) -> Counter:
    """Every span of request ``index``'s trace by name: each LangChain run once (ours), two ``lookup``."""
    return Counter(
        {
            f"request {index}": 1,
            "invoke_workflow": 1,  # the graph; its run name chat:job-<index> is langsmith.trace.name
            "intent": 1,
            "fan_out": 1,
            "subagent": 2,
            "chat unknown": 2,
            "lookup": 2,
            **{f"client {branch}": 1 for branch in BRANCHES},
            **{f"inside traceable {branch}": 1 for branch in BRANCHES},
        }
    )


@pytest.fixture(scope="module", params=["sync", "async"])
def instrumented_spans(request) -> list[dict]:
    return run_scenario("otel", instrumented=True, graph=request.param)


class TestOtelMode:
    def test_each_request_is_one_trace_with_every_run_traced_once(self, instrumented_spans):
        """Concurrent requests each get one trace holding one span per graph, node and LLM run (ours), and
        the @traceable runs as langsmith's only spans; nothing else, nothing twice."""
        traces = requests_by_trace(instrumented_spans)
        assert sorted(traces) == list(range(REQUESTS))
        for index, spans in traces.items():
            assert Counter(span["name"] for span in spans) == expected_names(index)
            langsmith = [span["name"] for span in spans if span["scope"] == LANGSMITH_SCOPE]
            assert langsmith == ["lookup", "lookup"]
            runs = ("intent", "subagent", "chat unknown")
            assert {span["scope"] for span in spans if span["name"] in runs} == {OUR_SCOPE}

    def test_the_streamed_call_is_traced_as_a_stream(self, instrumented_spans):
        """In each trace one LLM span (the streamed branch) has a time to first chunk, the invoked one not."""
        for spans in requests_by_trace(instrumented_spans).values():
            llm = [span["streamed"] for span in spans if span["name"] == "chat unknown"]
            assert sorted(llm) == [False, True]

    def test_spans_inside_a_node_and_its_traceable_function_are_children_of_that_node(
        self, instrumented_spans
    ):
        """The client span and the span opened inside @traceable of each branch have that branch's node
        span as parent (not the request, not a synthetic LangSmith span), and so has langsmith's span of the
        @traceable run; each LLM span is under its node; one root, no orphans."""
        for spans in requests_by_trace(instrumented_spans).values():
            names = by_name(spans)
            ids = {span["id"] for span in spans}
            nodes = {span["id"] for span in names["subagent"]}
            parents = set()
            for branch in BRANCHES:
                [client] = names[f"client {branch}"]
                [inside] = names[f"inside traceable {branch}"]
                assert client["parent"] in nodes
                assert inside["parent"] == client["parent"]
                parents.add(client["parent"])
            assert parents == nodes  # each branch under its own node span
            assert {span["parent"] for span in names["chat unknown"]} == nodes
            assert sorted(span["parent"] for span in names["lookup"]) == sorted(nodes)  # langsmith's own
            roots = [span["name"] for span in spans if span["parent"] is None]
            assert len(roots) == 1 and roots[0].startswith("request ")
            assert all(span["parent"] in ids for span in spans if span["parent"] is not None)


def test_langsmith_alone_misparents_what_the_instrumentation_fixes():
    """Control: without otel_llm node child spans hang under the request, @traceable ones leave the trace."""
    spans = run_scenario("otel", instrumented=False, requests=1)
    names = by_name(spans)
    [request] = names["request 0"]
    assert names["client 0"][0]["parent"] == request["id"]
    assert names["inside traceable 0"][0]["trace"] != request["trace"]
    assert {span["scope"] for span in names["intent"]} == {LANGSMITH_SCOPE}


class TestBridgeInstall:
    def test_otel_mode_keeps_langsmiths_tracer_out_unless_asked_for_explicitly(self):
        """In otel mode LangChain's configure step sees tracing off, except under tracing_v2_enabled()."""
        from langchain_core.tracers import context as tracer_context
        from langsmith.run_helpers import tracing_context

        undo = langsmith_bridge.install(langsmith_bridge.MODE_OTEL)
        try:
            with tracing_context(enabled=True):
                assert tracer_context._tracing_v2_is_enabled() is False
            token = tracer_context.tracing_v2_callback_var.set(object())
            try:
                assert tracer_context._tracing_v2_is_enabled() is True
            finally:
                tracer_context.tracing_v2_callback_var.reset(token)
        finally:
            undo()
        with tracing_context(enabled=True):
            assert tracer_context._tracing_v2_is_enabled() is True

    def test_otel_mode_makes_langsmith_keep_the_parent_context_it_saw(self):
        """The context langsmith's client saves for a @traceable run keeps the span context current then,
        not what otel-llm's run span stands for when the export thread reads it."""
        from langsmith import client as langsmith_client
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider

        from otel_llm.instrumentation.langchain import RunSpan

        original = langsmith_client._import_otel
        tracer = TracerProvider().get_tracer("test")
        undo = langsmith_bridge.install(langsmith_bridge.MODE_OTEL)
        try:
            _, set_span_in_context, *_ = langsmith_client._import_otel()
            with tracer.start_as_current_span("request") as request:
                node = tracer.start_span("node")
                run_span = RunSpan(node, request)
                saved = set_span_in_context(run_span)
                run_span.run_ended()  # the node ends before langsmith's thread reads the context
                node.end()
            assert trace.get_current_span(saved).get_span_context() == node.get_span_context()
            assert run_span.get_span_context() == request.get_span_context()
        finally:
            undo()
        assert langsmith_client._import_otel is original

    def test_hybrid_mode_drops_only_langsmiths_otel_leg_and_undo_restores_it(self):
        """Hybrid: the batch handler becomes upload-only; the tracer stays; undo puts langsmith's back."""
        from langchain_core.tracers import context as tracer_context
        from langsmith import run_helpers
        from langsmith._internal import _background_thread

        originals = (
            _background_thread._hybrid_tracing_thread_handle_batch,
            run_helpers._maybe_create_otel_context,
            tracer_context._tracing_v2_is_enabled,
        )
        undo = langsmith_bridge.install(langsmith_bridge.MODE_HYBRID)
        try:
            assert _background_thread._hybrid_tracing_thread_handle_batch is not originals[0]
            assert run_helpers._maybe_create_otel_context(None) is None
            assert tracer_context._tracing_v2_is_enabled is originals[2]
        finally:
            undo()
        assert (
            _background_thread._hybrid_tracing_thread_handle_batch,
            run_helpers._maybe_create_otel_context,
            tracer_context._tracing_v2_is_enabled,
        ) == originals

    def test_langsmith_mode_or_invalid_mode_changes_nothing_but_the_synthetic_context(self):
        """With langsmith-only tracing nothing is duplicated, so only the harmless context change applies."""
        from langchain_core.tracers import context as tracer_context

        original = tracer_context._tracing_v2_is_enabled
        undo = langsmith_bridge.install("langsmith")
        try:
            assert tracer_context._tracing_v2_is_enabled is original
        finally:
            undo()


class TestUploadedTwiceWarning:
    @pytest.fixture(autouse=True)
    def not_warned_yet(self, monkeypatch):
        monkeypatch.setattr(langsmith_bridge, "_warned_upload_twice", False)

    @staticmethod
    def warnings(caplog) -> list[str]:
        return [r.getMessage() for r in caplog.records if "LANGSMITH_TRACING_MODE" in r.getMessage()]

    @pytest.mark.parametrize(
        ("mode", "enabled", "expected"),
        [
            ("hybrid", True, 1),
            ("langsmith", True, 1),
            ("otel", True, 0),
            ("hybrid", False, 0),
            ("langsmith", False, 0),
        ],
    )
    def test_uploading_modes_with_tracing_on_warn_once(self, caplog, mode, enabled, expected):
        """REST and hybrid modes with tracing on log one warning, however often installed; otel mode and
        tracing off log none."""
        with caplog.at_level(logging.WARNING, logger=langsmith_bridge.__name__):
            for _ in range(2):
                langsmith_bridge.install(mode, tracing_enabled=enabled)()
        warnings = self.warnings(caplog)
        assert len(warnings) == expected
        if warnings:
            assert f"{mode!r} mode" in warnings[0] and "LANGSMITH_TRACING_MODE=otel" in warnings[0]

    def test_tracing_switched_on_for_langsmith_counts(self, caplog):
        """Without an explicit answer, install asks langsmith whether it traces (here: set in code)."""
        from langsmith.run_helpers import tracing_context

        with caplog.at_level(logging.WARNING, logger=langsmith_bridge.__name__):
            with tracing_context(enabled=False):
                langsmith_bridge.install("hybrid")()
            assert self.warnings(caplog) == []
            with tracing_context(enabled=True):
                langsmith_bridge.install("hybrid")()
        assert len(self.warnings(caplog)) == 1
