"""The roll-up stage with real langsmith[otel] spans, made after the request span ended, on another thread."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

# Runs in a fresh interpreter: langsmith binds to the global TracerProvider once, which a test process shares.
SCRIPT = textwrap.dedent('''
    import json, os
    os.environ.update(LANGSMITH_TRACING="true", LANGSMITH_TRACING_MODE="otel")
    from typing import TypedDict
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langgraph.graph import END, START, StateGraph
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from otel_llm.processors.rollup import RollupBatchSpanProcessor, RollupSpanExporter

    class FakeChat(BaseChatModel):
        provider: str
        model: str

        @property
        def _llm_type(self):
            return "fake"

        def _get_ls_params(self, stop=None, **kwargs):
            return {"ls_provider": self.provider, "ls_model_name": self.model, "ls_model_type": "chat"}

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            usage = {"input_tokens": 7, "output_tokens": 2, "total_tokens": 9}
            message = AIMessage(content="ok", usage_metadata=usage)
            return ChatResult(generations=[ChatGeneration(message=message)])

    class State(TypedDict, total=False):
        text: str

    openai = FakeChat(provider="openai", model="gpt-4o-mini")
    bedrock = FakeChat(provider="amazon_bedrock", model="anthropic.claude-3-haiku-20240307-v1:0")
    builder = StateGraph(State)
    builder.add_node("intent", lambda state: {"text": openai.invoke(state["text"]).content})
    builder.add_node("answer", lambda state: {"text": bedrock.invoke(state["text"]).content})
    builder.add_edge(START, "intent")
    builder.add_edge("intent", "answer")
    builder.add_edge("answer", END)
    graph = builder.compile()

    exported = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(
        RollupBatchSpanProcessor(RollupSpanExporter(exported, window_s=2.0), schedule_delay_millis=100))
    trace.set_tracer_provider(provider)
    with provider.get_tracer("app").start_as_current_span("POST /chat", kind=trace.SpanKind.SERVER):
        graph.invoke({"text": "hi"}, config={"run_name": "LangGraph"})
    from langchain_core.tracers.langchain import wait_for_all_tracers
    wait_for_all_tracers()
    provider.shutdown()
    print(json.dumps({
        "spans": [[span.name, {k: (list(v) if isinstance(v, tuple) else v) for k, v in span.attributes.items()
                                if k.startswith(("llm.", "gen_ai.provider", "gen_ai.request"))}]
                  for span in exported.get_finished_spans()],
    }))
''')


def run_script() -> dict:
    ours = ("OTEL_", "LANGSMITH_", "LANGCHAIN_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(ours)}
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_langsmith_spans_roll_up_to_the_request_graph_and_nodes():
    """Provider/model of both calls reach the SERVER span, the graph span and each node span."""
    result = run_script()
    spans: dict[str, list[dict]] = {}
    for name, attributes in result["spans"]:
        spans.setdefault(name, []).append(attributes)
    (server,) = spans["POST /chat"]
    assert server["llm.rollup.providers"] == ["aws.bedrock", "openai"]
    assert server["llm.rollup.models"] == ["anthropic.claude-3-haiku-20240307-v1:0", "gpt-4o-mini"]
    assert (server["llm.rollup.calls"], server["llm.rollup.input_tokens"]) == (2, 14)
    assert spans["LangGraph"][0]["llm.rollup.calls"] == 2
    (answer,) = spans["answer"]
    assert (answer["llm.langgraph.node"], answer["llm.rollup.provider"]) == ("answer", "aws.bedrock")
    llm_spans = [attributes for attributes_list in spans.values() for attributes in attributes_list
                 if "gen_ai.provider.name" in attributes]
    assert sorted(a["gen_ai.provider.name"] for a in llm_spans) == ["aws.bedrock", "openai"]
