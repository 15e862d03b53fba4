"""LangChain instrumentation: live spans, parenting in threads/tasks, attributes, TTFT, bounded state."""

from __future__ import annotations

import asyncio
import gc
import operator
import uuid
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import entry_points
from types import MappingProxyType, SimpleNamespace
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.base import LangSmithParams
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.tools import tool
from langgraph.errors import GraphInterrupt
from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from otel_llm import semconv
from otel_llm.instrumentation import langchain as lc
from otel_llm.instrumentation.langchain import LangChainInstrumentor, OpenTelemetryCallbackHandler

BEDROCK_MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
ANSWER = "rinse the bottle first"


class FakeBedrockChat(BaseChatModel):
    """An offline chat model that looks like Bedrock's Claude to LangChain (ls params, usage, streaming)."""

    fail: bool = False

    @property
    def _llm_type(self) -> str:
        return "amazon_bedrock_converse_chat"

    def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> LangSmithParams:
        return LangSmithParams(
            ls_provider="amazon_bedrock", ls_model_name=BEDROCK_MODEL, ls_model_type="chat"
        )

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        if self.fail:
            raise TimeoutError("provider timed out")
        message = AIMessage(
            content=ANSWER,
            usage_metadata={"input_tokens": 7, "output_tokens": 4, "total_tokens": 11},
            response_metadata={"model_name": BEDROCK_MODEL},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any):
        words = ANSWER.split()
        for index, word in enumerate(words):
            last = index == len(words) - 1
            chunk = ChatGenerationChunk(
                message=AIMessageChunk(
                    content=word if index == 0 else f" {word}",
                    usage_metadata={"input_tokens": 7, "output_tokens": 4, "total_tokens": 11}
                    if last
                    else None,
                )
            )
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any):
        for chunk in self._stream(messages, stop, None, **kwargs):
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


class State(TypedDict, total=False):
    message: str
    branch: int
    findings: Annotated[list[str], operator.add]


def build_graph(tracer, *, asynchronous: bool = False, branches: int = 2):
    """intent -> parallel Send branches (client span, model call, client span) -> answer."""
    model = FakeBedrockChat()

    def fan_out(state: State) -> list[Send]:
        return [Send("subagent", {"message": state["message"], "branch": i}) for i in range(branches)]

    def intent(state: State) -> dict:
        return {}

    def subagent(state: State) -> dict:
        with tracer.start_as_current_span(f"client before {state['branch']}"):
            pass
        model.invoke(state["message"])
        with tracer.start_as_current_span(f"client after {state['branch']}"):
            pass
        return {"findings": [str(state["branch"])]}

    def answer(state: State) -> dict:
        return {"findings": ["".join(chunk.text for chunk in model.stream(state["message"]))]}

    async def aintent(state: State) -> dict:
        return {}

    async def asubagent(state: State) -> dict:
        with tracer.start_as_current_span(f"client before {state['branch']}"):
            await asyncio.sleep(0)
        await model.ainvoke(state["message"])
        with tracer.start_as_current_span(f"client after {state['branch']}"):
            pass
        return {"findings": [str(state["branch"])]}

    async def aanswer(state: State) -> dict:
        return {"findings": ["".join([chunk.text async for chunk in model.astream(state["message"])])]}

    graph = StateGraph(State)
    graph.add_node("intent", aintent if asynchronous else intent)
    graph.add_node("subagent", asubagent if asynchronous else subagent)
    graph.add_node("answer", aanswer if asynchronous else answer)
    graph.add_edge(START, "intent")
    graph.add_conditional_edges("intent", fan_out, ["subagent"])
    graph.add_edge("subagent", "answer")
    graph.add_edge("answer", END)
    return graph.compile()


RUN_CONFIG = {
    "run_name": "chat:job-1",
    "tags": ["intent:waste"],
    "metadata": {"job_id": "job-1", "user_id": "u1"},
}


@pytest.fixture
def telemetry():
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield exporter, tracer_provider.get_tracer("app"), reader, instrumentor.handler
    finally:
        instrumentor.uninstrument()


def tree(exporter):
    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}

    def parent_name(span):
        parent = by_id.get(span.parent.span_id) if span.parent else None
        return parent.name if parent else None

    return spans, parent_name


GRAPH_SPAN = "invoke_workflow"  # the top-level run's span; its run name chat:job-1 is langsmith.trace.name


def named(spans, name):
    return [span for span in spans if span.name == name]


class TestParenting:
    def test_graph_node_and_llm_spans_form_one_tree_under_the_current_span(self, telemetry):
        """The graph span is a child of the caller's span; nodes of the graph; LLM spans of their node."""
        exporter, tracer, _, _ = telemetry
        with tracer.start_as_current_span("POST /api/v1/chat"):
            build_graph(tracer).invoke({"message": "bottle?"}, config=RUN_CONFIG)
        spans, parent_name = tree(exporter)
        assert len({span.context.trace_id for span in spans}) == 1
        assert parent_name(named(spans, GRAPH_SPAN)[0]) == "POST /api/v1/chat"
        assert {parent_name(s) for s in spans if s.name in ("intent", "subagent", "answer")} == {GRAPH_SPAN}
        llm_spans = named(spans, f"chat {BEDROCK_MODEL}")
        assert sorted(parent_name(s) for s in llm_spans) == ["answer", "subagent", "subagent"]

    @pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
    def test_spans_opened_inside_parallel_send_branches_are_children_of_their_node(
        self, telemetry, asynchronous
    ):
        """Client spans before and after the LLM call in each Send branch hang under its node span."""
        exporter, tracer, _, _ = telemetry
        graph = build_graph(tracer, asynchronous=asynchronous, branches=3)
        with tracer.start_as_current_span("request"):
            if asynchronous:
                asyncio.run(graph.ainvoke({"message": "m"}, config=RUN_CONFIG))
            else:
                graph.invoke({"message": "m"}, config=RUN_CONFIG)
        spans, _ = tree(exporter)
        by_id = {span.context.span_id: span for span in spans}
        for branch in range(3):
            before = named(spans, f"client before {branch}")[0]
            after = named(spans, f"client after {branch}")[0]
            node = by_id[before.parent.span_id]
            assert node.name == "subagent"
            assert after.parent.span_id == node.context.span_id

    def test_code_after_an_async_graph_is_a_child_of_the_caller_span_not_of_the_ended_graph(self, telemetry):
        """LangChain ends async runs in a copied context; the caller's next span must not hang off it."""
        exporter, tracer, _, _ = telemetry

        async def worker():
            with tracer.start_as_current_span("consumer"):
                await build_graph(tracer, asynchronous=True).ainvoke({"message": "m"}, config=RUN_CONFIG)
                with tracer.start_as_current_span("ack"):
                    pass

        asyncio.run(worker())
        spans, parent_name = tree(exporter)
        assert parent_name(named(spans, "ack")[0]) == "consumer"

    def test_concurrent_sync_graphs_end_every_span_with_the_right_parent(self, telemetry):
        """48 graphs on 16 threads: every span ends, stays in its request's trace, nothing is retained."""
        exporter, tracer, _, handler = telemetry
        graph = build_graph(tracer)

        def request(index: int) -> None:
            with tracer.start_as_current_span(f"request {index}"):
                graph.invoke({"message": f"m{index}"}, config=RUN_CONFIG)

        with ThreadPoolExecutor(16) as pool:
            list(pool.map(request, range(48)))
        spans, parent_name = tree(exporter)
        # per request: request, graph, intent, fan_out, 2 x (subagent, 2 clients, llm), answer, llm
        assert len(spans) == 48 * 14
        for span in spans:
            if span.name.startswith("chat anthropic"):
                assert parent_name(span) in ("subagent", "answer")
            if span.name == GRAPH_SPAN:
                assert parent_name(span).startswith("request ")
        traces = {}
        for span in spans:
            traces.setdefault(span.context.trace_id, []).append(span)
        assert len(traces) == 48 and all(len(group) == 14 for group in traces.values())
        assert handler.open_runs == 0
        gc.collect()
        assert not [obj for obj in gc.get_objects() if isinstance(obj, lc._Run)]


class TestAttributes:
    def test_llm_span_carries_semconv_and_langsmith_attributes(self, telemetry):
        """Bedrock's ls_provider becomes aws.bedrock; model, tokens, operation, node, LangSmith names set."""
        exporter, tracer, _, _ = telemetry
        build_graph(tracer, branches=1).invoke({"message": "m"}, config=RUN_CONFIG)
        spans, _ = tree(exporter)
        llm = next(
            s
            for s in spans
            if s.name.startswith("chat ") and s.attributes[semconv.LANGGRAPH_NODE] == "subagent"
        )
        attributes = llm.attributes
        assert llm.kind is SpanKind.CLIENT
        assert attributes[semconv.GEN_AI_OPERATION_NAME] == "chat"
        assert attributes[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
        assert attributes[semconv.GEN_AI_REQUEST_MODEL] == BEDROCK_MODEL
        assert attributes[semconv.GEN_AI_RESPONSE_MODEL] == BEDROCK_MODEL
        assert (
            attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
            attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS],
        ) == (7, 4)
        assert attributes[semconv.LANGSMITH_SPAN_KIND] == "llm"
        assert attributes[semconv.LANGSMITH_LS_PROVIDER] == "amazon_bedrock"
        assert semconv.resolve_provider(attributes) == "aws.bedrock" and semconv.is_llm_span(attributes)
        assert semconv.LANGSMITH_PROMPT not in attributes and semconv.LANGSMITH_COMPLETION not in attributes

    def test_run_config_reaches_graph_and_node_spans(self, telemetry):
        """Run name, intent tag and job/user metadata (seed run config) are on graph and node spans."""
        exporter, tracer, _, _ = telemetry
        build_graph(tracer, branches=1).invoke({"message": "m"}, config=RUN_CONFIG)
        spans, _ = tree(exporter)
        graph_span = named(spans, GRAPH_SPAN)[0]
        node = named(spans, "intent")[0]
        assert graph_span.kind is SpanKind.INTERNAL
        assert graph_span.attributes[semconv.GEN_AI_OPERATION_NAME] == semconv.OPERATION_INVOKE_WORKFLOW
        assert graph_span.attributes[semconv.LANGSMITH_TRACE_NAME] == "chat:job-1"
        for span in (graph_span, node):
            assert "intent:waste" in span.attributes[semconv.LANGSMITH_SPAN_TAGS]
            assert span.attributes["langsmith.metadata.job_id"] == "job-1"
            assert span.attributes["langsmith.metadata.user_id"] == "u1"
        assert node.attributes[semconv.LANGGRAPH_NODE] == "intent"
        assert node.attributes[semconv.LANGSMITH_SPAN_KIND] == "chain"
        assert semconv.GEN_AI_OPERATION_NAME not in node.attributes

    def test_streamed_llm_run_records_time_to_first_chunk_once(self, telemetry):
        """The streamed LLM span gets a TTFT attribute; each chunk metric one labelled point."""
        exporter, tracer, reader, _ = telemetry
        build_graph(tracer, branches=1).invoke({"message": "m"}, config=RUN_CONFIG)
        spans, _ = tree(exporter)
        streamed = [s for s in spans if semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK in s.attributes]
        assert [s.attributes[semconv.LANGGRAPH_NODE] for s in streamed] == ["answer"]
        assert streamed[0].attributes[semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK] >= 0
        points = {
            metric.name: metric.data.data_points
            for resource in reader.get_metrics_data().resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
        }
        for name in (semconv.METRIC_TIME_TO_FIRST_CHUNK, semconv.METRIC_TIME_PER_OUTPUT_CHUNK):
            [point] = points[name]
            assert point.count == 1
            assert dict(point.attributes) == {
                semconv.GEN_AI_OPERATION_NAME: "chat",
                semconv.GEN_AI_PROVIDER_NAME: "aws.bedrock",
                semconv.GEN_AI_REQUEST_MODEL: BEDROCK_MODEL,
                semconv.LANGGRAPH_NODE: "answer",
            }

    def test_chunk_metrics_carry_the_experiment_id_and_arm_from_baggage(self, telemetry):
        """Inside an experiment the chunk metrics are labelled with its id and arm (per-experiment TTFT)."""
        from opentelemetry import baggage, context

        _, tracer, reader, _ = telemetry
        ctx = baggage.set_baggage(semconv.EXPERIMENT_ID, "exp-1")
        token = context.attach(baggage.set_baggage(semconv.EXPERIMENT_ARM, "b", ctx))
        try:
            build_graph(tracer, branches=1).invoke({"message": "m"}, config=RUN_CONFIG)
        finally:
            context.detach(token)
        [point] = [
            point
            for resource in reader.get_metrics_data().resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == semconv.METRIC_TIME_TO_FIRST_CHUNK
            for point in metric.data.data_points
        ]
        assert (point.attributes[semconv.EXPERIMENT_ID], point.attributes[semconv.EXPERIMENT_ARM]) == (
            "exp-1",
            "b",
        )

    def test_failed_llm_call_ends_its_span_with_error_status_and_type(self, telemetry):
        """The LLM span and its ancestors end with ERROR and error.type; no run stays open."""
        exporter, _, _, handler = telemetry
        with pytest.raises(TimeoutError):
            FakeBedrockChat(fail=True).invoke("m")
        [span] = exporter.get_finished_spans()
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes[semconv.ERROR_TYPE] == "TimeoutError"
        assert handler.open_runs == 0

    def test_tool_run_gets_an_execute_tool_span(self, telemetry):
        """A LangChain tool run becomes an INTERNAL ``execute_tool <name>`` span with gen_ai.tool.name."""
        exporter, _, _, _ = telemetry

        @tool
        def lookup(city: str) -> str:
            """Looks a city up."""
            return city

        lookup.invoke({"city": "seoul"})
        [span] = exporter.get_finished_spans()
        assert span.name == "execute_tool lookup"
        assert span.attributes[semconv.GEN_AI_TOOL_NAME] == "lookup"
        assert span.attributes[semconv.LANGSMITH_SPAN_KIND] == "tool"


def make_handler(exporter=None, **kwargs):
    provider = TracerProvider()
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OpenTelemetryCallbackHandler(provider.get_tracer("t"), **kwargs)


class TestHandler:
    def test_content_is_captured_only_when_enabled_and_capped(self):
        """With capture on, prompt and completion become LangSmith's gen_ai.prompt/completion, capped."""
        exporter = InMemorySpanExporter()
        handler = make_handler(exporter, capture_content=True, max_content_length=10)
        FakeBedrockChat().invoke("a very long user question", config={"callbacks": [handler]})
        [span] = exporter.get_finished_spans()
        assert span.attributes[semconv.LANGSMITH_PROMPT] == "human: a v"
        assert span.attributes[semconv.LANGSMITH_COMPLETION] == ANSWER[:10]

    def test_bad_metadata_is_capped_or_skipped_and_unknown_runs_are_ignored(self):
        """Huge strings are capped, objects skipped, small lists become JSON; odd calls never raise."""
        exporter = InMemorySpanExporter()
        handler = make_handler(exporter, max_attribute_length=8)
        run_id = uuid.uuid4()
        metadata = {
            "big": "x" * 1000,
            "obj": object(),
            "items": ["a", 1],
            "path": ("a", ["unhashable"]),
            "n": 3,
            "none": None,
            5: "int key",
        }
        handler.on_chain_start(None, None, run_id=run_id, metadata=metadata, tags=[None, 7])
        handler.on_chain_end(None, run_id=uuid.uuid4())
        handler.on_llm_new_token("t", run_id=uuid.uuid4())
        handler.on_llm_end(object(), run_id=run_id)
        handler.on_chain_error(ValueError("again"), run_id=run_id)
        [span] = exporter.get_finished_spans()
        attributes = span.attributes
        assert span.name == "invoke_workflow"  # a top-level chain without a name
        assert attributes["langsmith.metadata.big"] == "x" * 8
        assert attributes["langsmith.metadata.items"] == '["a",1]'
        assert attributes["langsmith.metadata.n"] == 3
        assert attributes["langsmith.metadata.path"] == '["a",["u'  # capped at 8
        assert "langsmith.metadata.obj" not in attributes and "langsmith.metadata.none" not in attributes
        assert attributes["langsmith.metadata.5"] == "int key"
        assert span.status.status_code is StatusCode.UNSET

    def test_llm_identity_and_usage_read_from_any_mapping_and_value_type(self):
        """Non-dict mappings are read like dicts; equal model values of other types are not conflated."""
        exporter = InMemorySpanExporter()
        handler = make_handler(exporter)
        usage = MappingProxyType({"prompt_tokens": 3, "completion_tokens": 2})
        response = SimpleNamespace(
            generations=[[SimpleNamespace(message=None, text="x")]],
            llm_output=MappingProxyType({"token_usage": usage, "model_name": "m-1"}),
        )
        models = (" gpt-4o ", " gpt-4o ", 1, True)  # the second from the cache; True == 1 as a dict key
        for model in models:
            run_id = uuid.uuid4()
            metadata = MappingProxyType({"ls_model_name": model, "ls_provider": "OpenAI"})
            handler.on_chat_model_start(None, [], run_id=run_id, metadata=metadata)
            handler.on_llm_end(response, run_id=run_id)
        spans = exporter.get_finished_spans()
        assert [span.attributes[semconv.GEN_AI_REQUEST_MODEL] for span in spans] == [
            "gpt-4o", "gpt-4o", "1", "True"
        ]
        assert [span.name for span in spans[:2]] == ["chat gpt-4o"] * 2
        for span in spans:
            assert span.attributes[semconv.GEN_AI_PROVIDER_NAME] == "openai"
            assert span.attributes[semconv.GEN_AI_RESPONSE_MODEL] == "m-1"
            assert (
                span.attributes[semconv.GEN_AI_USAGE_INPUT_TOKENS],
                span.attributes[semconv.GEN_AI_USAGE_OUTPUT_TOKENS],
            ) == (3, 2)

    def test_a_run_ended_with_an_equal_copy_of_its_id_ends(self):
        """The end callback's run id may be another UUID object with the same value."""
        exporter = InMemorySpanExporter()
        handler = make_handler(exporter)
        run_id = uuid.uuid4()
        handler.on_chain_start({}, {}, run_id=run_id, name="node")
        handler.on_chain_end({}, run_id=uuid.UUID(str(run_id)))
        [span] = exporter.get_finished_spans()
        assert span.attributes[semconv.LANGSMITH_TRACE_NAME] == "node"
        assert handler.open_runs == 0

    def test_langgraph_interrupt_ends_the_run_without_an_error(self):
        """GraphInterrupt is LangGraph control flow, not a failure."""
        exporter = InMemorySpanExporter()
        handler = make_handler(exporter)
        run_id = uuid.uuid4()
        handler.on_chain_start({}, {}, run_id=run_id, name="node")
        handler.on_chain_error(GraphInterrupt(), run_id=run_id)
        [span] = exporter.get_finished_spans()
        assert span.status.status_code is StatusCode.UNSET and semconv.ERROR_TYPE not in span.attributes

    def test_runs_that_never_end_are_evicted_past_the_cap(self):
        """Past max_open_runs the oldest run's span ends with error.type otel_llm.run_not_ended, counted."""
        exporter = InMemorySpanExporter()
        handler = make_handler(exporter, max_open_runs=3)
        run_ids = [uuid.uuid4() for _ in range(5)]
        for index, run_id in enumerate(run_ids):
            handler.on_chain_start({}, {}, run_id=run_id, name=f"run {index}")
        assert handler.open_runs == 3 and handler.evicted_runs == 2
        ended = exporter.get_finished_spans()
        assert [span.attributes[semconv.LANGSMITH_TRACE_NAME] for span in ended] == ["run 0", "run 1"]
        assert {span.attributes[semconv.ERROR_TYPE] for span in ended} == {lc.EVICTED_ERROR_TYPE}
        for run_id in reversed(run_ids[2:]):  # the runs still open end, so their context is not left current
            handler.on_chain_end({}, run_id=run_id)
        assert handler.open_runs == 0

    def test_hidden_runs_get_no_span_and_their_children_attach_to_the_visible_parent(self):
        """A run tagged langsmith:hidden is skipped; its child hangs under the hidden run's parent."""
        exporter = InMemorySpanExporter()
        handler = make_handler(exporter)
        graph_id, hidden_id, child_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        handler.on_chain_start({}, {}, run_id=graph_id, name="LangGraph")
        handler.on_chain_start(
            {}, {}, run_id=hidden_id, parent_run_id=graph_id, name="__start__", tags=[lc.HIDDEN_TAG]
        )
        handler.on_chain_start({}, {}, run_id=child_id, parent_run_id=hidden_id, name="child")
        for run_id in (child_id, hidden_id, graph_id):
            handler.on_chain_end({}, run_id=run_id)
        spans = {span.name: span for span in exporter.get_finished_spans()}
        assert set(spans) == {"invoke_workflow", "child"}
        assert spans["child"].parent.span_id == spans["invoke_workflow"].context.span_id
        assert handler.open_runs == 0

    @pytest.mark.parametrize(
        ("serialized", "span_name"),
        [(None, "invoke_workflow"), ({"name": "Pipeline"}, "invoke_workflow Pipeline")],
    )
    def test_top_level_span_name_is_low_cardinality(self, serialized, span_name):
        """A per-request run name (chat:<job_id>) is langsmith.trace.name, never the graph's span name."""
        exporter = InMemorySpanExporter()
        handler = make_handler(exporter)
        run_id = uuid.uuid4()
        handler.on_chain_start(serialized, {}, run_id=run_id, name="chat:job-123")
        handler.on_chain_end({}, run_id=run_id)
        [span] = exporter.get_finished_spans()
        assert span.name == span_name
        assert span.attributes[semconv.LANGSMITH_TRACE_NAME] == "chat:job-123"
        assert span.attributes[semconv.GEN_AI_OPERATION_NAME] == semconv.OPERATION_INVOKE_WORKFLOW

    @pytest.mark.parametrize(
        ("argument", "value"),
        [("max_open_runs", 0), ("max_attribute_length", 0), ("max_content_length", -1), ("clock", 5)],
    )
    def test_constructor_rejects_bad_arguments_naming_the_parameter(self, argument, value):
        """A ValueError names the parameter and its rule."""
        with pytest.raises(ValueError, match=argument):
            make_handler(**{argument: value})


class TestInstrumentor:
    def test_entry_point_loads_the_instrumentor(self):
        """opentelemetry-instrument finds LangChainInstrumentor through the otel_llm_langchain entry point."""
        [entry_point] = [
            e for e in entry_points(group="opentelemetry_instrumentor") if e.name == "otel_llm_langchain"
        ]
        assert entry_point.load() is LangChainInstrumentor

    def test_open_and_evicted_runs_are_observable_metrics(self, telemetry):
        """otel_llm.langchain.open_runs shows a run in flight, then none; evicted_runs counts from zero."""
        _, _, reader, handler = telemetry

        def observed() -> dict:
            return {
                metric.name: metric.data.data_points[0].value
                for resource in reader.get_metrics_data().resource_metrics
                for scope in resource.scope_metrics
                for metric in scope.metrics
                if metric.name.startswith("otel_llm.langchain.")
            }

        run_id = uuid.uuid4()
        handler.on_chain_start({}, {}, run_id=run_id, name="in flight")
        assert observed() == {lc.METRIC_OPEN_RUNS: 1, lc.METRIC_EVICTED_RUNS: 0}
        handler.on_chain_end({}, run_id=run_id)
        assert observed()[lc.METRIC_OPEN_RUNS] == 0

    def test_uninstrument_stops_tracing_runs(self, telemetry):
        """After uninstrument no LangChain run makes a span."""
        exporter, _, _, _ = telemetry
        LangChainInstrumentor().uninstrument()
        FakeBedrockChat().invoke("m")
        assert exporter.get_finished_spans() == ()
