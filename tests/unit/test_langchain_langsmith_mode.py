"""LangSmith in OTel mode with the LangChain instrumentation: each run traced once, spans in the right trace.

langsmith reads its environment once per process (cached), so each scenario runs in a fresh interpreter
with LANGSMITH_TRACING=true and LANGSMITH_TRACING_MODE=otel (no API key, no network: otel mode never calls
LangSmith).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from otel_llm.instrumentation import langsmith_bridge

# A sync graph: intent -> 2 Send branches; each branch opens a client span, calls a @traceable function that
# opens another, then a fake chat model. Prints every finished span as JSON after langsmith's queue drained.
SCENARIO = r"""
import json, operator, sys
from typing import Annotated, TypedDict
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

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

@traceable(name="lookup")
def lookup(branch):
    with tracer.start_as_current_span(f"inside traceable {branch}"):
        return branch

def subagent(state):
    with tracer.start_as_current_span(f"client {state['branch']}"):
        pass
    lookup(state["branch"])
    GenericFakeChatModel(messages=iter([AIMessage(content="a b")])).invoke("q")
    return {"out": [state["branch"]]}

graph = StateGraph(State)
graph.add_node("intent", lambda state: {})
graph.add_node("subagent", subagent)
graph.add_edge(START, "intent")
graph.add_conditional_edges("intent", lambda s: [Send("subagent", {"branch": i}) for i in (0, 1)],
                            ["subagent"])
graph.add_edge("subagent", END)
with tracer.start_as_current_span("request"):
    graph.compile().invoke({"out": []}, config={"run_name": "chat:job-1"})
wait_for_all_tracers()
print(json.dumps([
    {"name": s.name, "trace": s.context.trace_id, "id": s.context.span_id,
     "parent": s.parent.span_id if s.parent else None, "scope": s.instrumentation_scope.name}
    for s in exporter.get_finished_spans()
]))
"""


def run_scenario(mode: str, *, instrumented: bool) -> list[dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGSMITH_", "LANGCHAIN_", "OTEL_"))}
    env.update(LANGSMITH_TRACING="true", LANGSMITH_TRACING_MODE=mode, LANGSMITH_ENDPOINT="http://127.0.0.1:9")
    argument = "instrumented" if instrumented else "langsmith-only"
    result = subprocess.run(
        [sys.executable, "-c", SCENARIO, argument], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def by_name(spans: list[dict]) -> dict[str, list[dict]]:
    grouped: dict[str, list[dict]] = {}
    for span in spans:
        grouped.setdefault(span["name"], []).append(span)
    return grouped


@pytest.fixture(scope="module")
def instrumented_spans() -> list[dict]:
    return run_scenario("otel", instrumented=True)


class TestOtelMode:
    def test_every_langchain_run_is_traced_once(self, instrumented_spans):
        """One span per graph, node and LLM run: langsmith's own LangChain spans are kept out."""
        names = by_name(instrumented_spans)
        assert len(names["chat:job-1"]) == 1 and len(names["intent"]) == 1 and len(names["subagent"]) == 2
        assert len(names["chat unknown"]) == 2
        langsmith_spans = [span["name"] for span in instrumented_spans if span["scope"] == "langsmith"]
        assert langsmith_spans == ["lookup", "lookup"]  # @traceable runs: only langsmith traces them

    def test_spans_inside_nodes_and_traceable_functions_are_children_of_the_node(self, instrumented_spans):
        """Client spans and spans opened inside @traceable stay in the request's trace under their node."""
        names = by_name(instrumented_spans)
        [request] = names["request"]
        node_ids = {span["id"] for span in names["subagent"]}
        assert len({span["trace"] for span in instrumented_spans}) == 1
        for branch in range(2):
            for name in (f"client {branch}", f"inside traceable {branch}"):
                [span] = names[name]
                assert span["trace"] == request["trace"]
                assert span["parent"] in node_ids
        ids = {span["id"] for span in instrumented_spans}
        assert all(span["parent"] in ids for span in instrumented_spans if span is not request)


def test_langsmith_alone_misparents_what_the_instrumentation_fixes():
    """Control: without otel_llm node child spans hang under the request, @traceable ones leave the trace."""
    spans = run_scenario("otel", instrumented=False)
    names = by_name(spans)
    [request] = names["request"]
    assert names["client 0"][0]["parent"] == request["id"]
    assert names["inside traceable 0"][0]["trace"] != request["trace"]


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
