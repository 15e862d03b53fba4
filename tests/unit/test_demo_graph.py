"""The reference graph: intent, parallel subagents (retrieval, gRPC, HTTP, LLM), streaming answer."""

from __future__ import annotations

import asyncio

import grpc
import httpx
import pytest
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_llm import semconv
from otel_llm.demo.graph import (
    LLM_NODES,
    SUBAGENTS,
    ServiceClients,
    build_graph,
    classify_intent,
    run_config,
)
from otel_llm.demo.services import COMPLETIONS_PATH, local_services
from otel_llm.instrumentation.langchain import LangChainInstrumentor

REQUEST = {
    "message": "how do I recycle a plastic bottle",
    "provider": "aws.bedrock",
    "model": "anthropic.claude-3-haiku-20240307-v1:0",
}


@pytest.fixture(scope="module")
def services():
    """The local gRPC and HTTP services on loopback: (grpc target, http url)."""
    with local_services() as running:
        yield running.grpc_target, running.http_url


@pytest.fixture(autouse=True)
def no_latency(monkeypatch):
    monkeypatch.setenv("OTEL_LLM_DEMO_LATENCY_MS", "0")


def assert_complete(state):
    """Every subagent contributed, and the answer is the answer model's streamed text."""
    assert sorted(finding.split(":")[0] for finding in state["findings"]) == sorted(SUBAGENTS)
    assert "character: Eco" in " ".join(state["findings"])
    assert "weather: Seoul" in " ".join(state["findings"])
    assert state["intent"] == "waste"
    assert len(state["answer"].split()) == 12


class TestGraph:
    def test_sync_graph_runs_every_subagent_then_answers(self, services):
        """The sync graph calls the gRPC and HTTP services and the LLMs, and answers with all findings."""
        target, url = services
        with grpc.insecure_channel(target) as channel, httpx.Client(base_url=url) as http:
            state = build_graph(ServiceClients(channel, http)).invoke(REQUEST, run_config("j1"))
        assert_complete(state)

    def test_async_graph_has_the_same_result(self, services):
        """The async graph (aio gRPC channel, async httpx) gives the same findings and answer."""
        target, url = services

        async def run():
            async with grpc.aio.insecure_channel(target) as channel, httpx.AsyncClient(base_url=url) as http:
                return await build_graph(ServiceClients(channel, http), asynchronous=True).ainvoke(REQUEST)

        asyncio_state = asyncio.run(run())
        assert_complete(asyncio_state)
        with grpc.insecure_channel(target) as channel, httpx.Client(base_url=url) as http:
            assert (
                build_graph(ServiceClients(channel, http)).invoke(REQUEST)["answer"]
                == asyncio_state["answer"]
            )

    def test_answer_node_streams_its_tokens(self, services):
        """LangGraph's messages stream mode yields the answer node's tokens one by one."""
        target, url = services
        with grpc.insecure_channel(target) as channel, httpx.Client(base_url=url) as http:
            graph = build_graph(ServiceClients(channel, http))
            tokens = [
                chunk.content
                for chunk, metadata in graph.stream(REQUEST, stream_mode="messages")
                if metadata["langgraph_node"] == "answer" and chunk.content
            ]
            answer = graph.invoke(REQUEST)["answer"]
        assert len(tokens) == 12 and "".join(tokens) == answer

    def test_provider_and_model_of_the_request_pick_the_chat_model(self, services):
        """The answer depends on the request's provider/model: another model gives another answer."""
        target, url = services
        with grpc.insecure_channel(target) as channel, httpx.Client(base_url=url) as http:
            graph = build_graph(ServiceClients(channel, http))
            bedrock = graph.invoke(REQUEST)["answer"]
            openai = graph.invoke({**REQUEST, "provider": "openai", "model": "gpt-4o-mini"})["answer"]
        assert bedrock != openai

    def test_unknown_provider_fails_the_run(self, services):
        """A request for a provider the graph has no model for fails with ValueError."""
        target, url = services
        with grpc.insecure_channel(target) as channel, httpx.Client(base_url=url) as http:
            with pytest.raises(ValueError, match="provider"):
                build_graph(ServiceClients(channel, http)).invoke({**REQUEST, "provider": "nope"})

    def test_service_failure_fails_the_run(self, services):
        """A node whose service is down fails the run (the worker reports it) instead of answering wrongly."""
        _, url = services
        with grpc.insecure_channel("127.0.0.1:1") as channel, httpx.Client(base_url=url) as http:
            with pytest.raises(grpc.RpcError):
                build_graph(ServiceClients(channel, http)).invoke(REQUEST)


@pytest.fixture
def traced():
    """A TracerProvider with an in-memory exporter, otel-llm's LangChain instrumentation on it."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield provider, exporter
    finally:
        instrumentor.uninstrument()


def run_traced(services, provider, asynchronous):
    """One graph run with an httpx client instrumented on ``provider`` (the LLM calls' provider API too)."""
    target, url = services
    if not asynchronous:
        with grpc.insecure_channel(target) as channel, httpx.Client(base_url=url) as http:
            HTTPXClientInstrumentor.instrument_client(http, tracer_provider=provider)
            return build_graph(ServiceClients(channel, http)).invoke(REQUEST, run_config("j1"))

    async def run():
        async with grpc.aio.insecure_channel(target) as channel, httpx.AsyncClient(base_url=url) as http:
            HTTPXClientInstrumentor.instrument_client(http, tracer_provider=provider)
            graph = build_graph(ServiceClients(channel, http), asynchronous=True)
            return await graph.ainvoke(REQUEST, run_config("j1"))

    return asyncio.run(run())


class TestTracing:
    @pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
    def test_each_llm_calls_its_provider_api_in_a_client_span_under_the_llm_span(
        self, services, traced, asynchronous
    ):
        """Each LLM span has one HTTP client span (POST to the completions API) as its child, and the LLM
        span is the child of the node that called the model."""
        provider, exporter = traced
        assert_complete(run_traced(services, provider, asynchronous))
        spans = exporter.get_finished_spans()
        by_id = {span.context.span_id: span for span in spans}
        llm_spans = [span for span in spans if semconv.is_llm_span(span.attributes)]
        http_children = {
            span.parent.span_id: span
            for span in spans
            if span.kind == SpanKind.CLIENT and span.name == "POST" and span.parent is not None
        }
        assert sorted(span.attributes[semconv.LANGGRAPH_NODE] for span in llm_spans) == sorted(LLM_NODES)
        for llm in llm_spans:
            node = by_id[llm.parent.span_id]
            assert (node.name, node.kind) == (llm.attributes[semconv.LANGGRAPH_NODE], SpanKind.INTERNAL)
            call = http_children[llm.context.span_id]
            url = call.attributes.get("url.full") or call.attributes["http.url"]  # new or old HTTP semconv
            assert url.endswith(COMPLETIONS_PATH)
        assert len(http_children) == len(LLM_NODES)


class TestNodeDelay:
    @pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
    def test_delay_of_one_node_and_provider_lengthens_that_node_span_only(
        self, services, traced, monkeypatch, asynchronous
    ):
        """..._INTENT_AWS_BEDROCK: the request's provider (Bedrock) gets its intent node span at least that
        long; a delay of another node for another provider (..._RETRIEVAL_OPENAI) does not apply."""
        monkeypatch.setenv("OTEL_LLM_DEMO_NODE_DELAY_MS_INTENT_AWS_BEDROCK", "150")
        monkeypatch.setenv("OTEL_LLM_DEMO_NODE_DELAY_MS_RETRIEVAL_OPENAI", "5000")
        provider, exporter = traced
        assert_complete(run_traced(services, provider, asynchronous))
        durations_ms = {
            span.name: (span.end_time - span.start_time) / 1e6
            for span in exporter.get_finished_spans()
            if span.attributes.get(semconv.LANGGRAPH_NODE) == span.name
        }
        assert durations_ms["intent"] >= 150
        assert durations_ms["retrieval"] < 1000


class TestRouting:
    @pytest.mark.parametrize(
        ("message", "intent"),
        [
            ("Recycle this bottle", "waste"),
            ("who is eco", "character"),
            ("rain tomorrow", "weather"),
            ("hello there", "general"),
            ("", "general"),
        ],
    )
    def test_keyword_intent(self, message, intent):
        """The first intent whose keyword the message contains, else general."""
        assert classify_intent(message) == intent

    def test_run_config_is_the_seeds(self):
        """Run name chat:<job>, intent tag added to a copy of the tags, job/user/intent metadata, thread."""
        tags = ["env:test"]
        config = run_config(
            "j1", session_id="s1", user_id="u1", intent="waste", tags=tags, metadata={"k": "v"}
        )
        assert config == {
            "run_name": "chat:j1",
            "tags": ["env:test", "intent:waste"],
            "metadata": {"job_id": "j1", "user_id": "u1", "intent": "waste", "k": "v"},
            "configurable": {"thread_id": "s1"},
        }
        assert tags == ["env:test"]

    def test_run_config_without_session_has_no_thread(self):
        """No session, no thread_id; no intent, no intent tag."""
        assert run_config("j2") == {
            "run_name": "chat:j2",
            "tags": [],
            "configurable": {},
            "metadata": {"job_id": "j2", "user_id": None, "intent": None},
        }
