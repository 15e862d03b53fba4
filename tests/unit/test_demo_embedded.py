"""Embedded mode: the whole app in one process gives one well-nested trace per request, per service."""

from __future__ import annotations

from collections import defaultdict

import pytest
from opentelemetry.trace import SpanKind

from otel_llm import semconv
from otel_llm.demo.embedded import SERVICE_API, SERVICE_SERVICES, SERVICE_WORKER, run_embedded
from otel_llm.experiment import ENV_EXPERIMENT_ARMS

NODES = {"intent", "retrieval", "character", "weather", "general", "answer"}


@pytest.fixture(autouse=True)
def no_experiment_env(monkeypatch):
    monkeypatch.delenv(ENV_EXPERIMENT_ARMS, raising=False)


@pytest.fixture(scope="module", params=["sync", "async"])
def run(request):
    """One embedded run of 4 requests with the sync or the async graph."""
    lines: list[str] = []
    result = run_embedded(requests=4, progress=lines.append, asynchronous=request.param == "async")
    return result, lines


def traces_of(spans):
    traces = defaultdict(list)
    for span in spans:
        traces[span.context.trace_id].append(span)
    return traces


def service(span):
    return span.resource.attributes["service.name"]


def node(span):
    return span.attributes.get(semconv.LANGGRAPH_NODE)


class TestEmbeddedRun:
    def test_every_request_is_answered_over_both_providers(self, run):
        """Four answers, done, assigned alternately to the two demo providers."""
        result, _ = run
        assert [r.status for r in result.results] == ["done"] * 4
        assert [r.provider for r in result.results] == ["openai", "aws.bedrock", "openai", "aws.bedrock"]
        assert all(r.answer and r.tokens == 12 for r in result.results)

    def test_one_trace_per_request_with_one_root_and_no_orphans(self, run):
        """Each request is one trace: one root (the API's POST), every other span's parent in the trace."""
        result, _ = run
        traces = traces_of(result.spans)
        assert len(traces) == 4
        for spans in traces.values():
            ids = {span.context.span_id for span in spans}
            roots = [span for span in spans if span.parent is None]
            assert [(root.name, service(root)) for root in roots] == [("POST /api/v1/chat", SERVICE_API)]
            assert all(span.parent.span_id in ids for span in spans if span.parent is not None)
            assert {service(span) for span in spans} == {SERVICE_API, SERVICE_WORKER, SERVICE_SERVICES}

    def test_worker_consumer_span_is_the_child_of_the_api_producer_span(self, run):
        """The CONSUMER span of the worker hangs under the API's PRODUCER span."""
        result, _ = run
        for spans in traces_of(result.spans).values():
            by_id = {span.context.span_id: span for span in spans}
            (consumer,) = [span for span in spans if span.kind == SpanKind.CONSUMER]
            assert by_id[consumer.parent.span_id].kind == SpanKind.PRODUCER
            assert service(consumer) == SERVICE_WORKER

    def test_service_calls_are_children_of_the_node_that_made_them(self, run):
        """The gRPC client span is under the character node, the weather HTTP call under the weather node,
        each LLM call's provider API call under its LLM span (itself under its node); servers under them."""
        result, _ = run
        for spans in traces_of(result.spans).values():
            by_id = {span.context.span_id: span for span in spans}
            clients = [span for span in spans if span.kind == SpanKind.CLIENT and not node(span)]
            parents = [by_id[span.parent.span_id] for span in clients]
            node_calls = [node(parent) for parent in parents if not semconv.is_llm_span(parent.attributes)]
            assert sorted(node_calls) == ["character", "weather"]
            llm_calls = sorted(
                (node(parent), node(by_id[parent.parent.span_id]), by_id[parent.parent.span_id].name)
                for parent in parents
                if semconv.is_llm_span(parent.attributes)
            )
            assert llm_calls == [(name, name, name) for name in ("answer", "general", "intent")]
            servers = [
                span for span in spans if span.kind == SpanKind.SERVER and service(span) == SERVICE_SERVICES
            ]
            server_parents = sorted(span.parent.span_id for span in servers)
            assert server_parents == sorted(span.context.span_id for span in clients)

    def test_llm_spans_carry_the_assigned_provider_and_the_roots_roll_it_up(self, run):
        """LLM spans name the request's provider/model; the worker's root and the API span say which."""
        result, _ = run
        expected = {r.job_id: (r.provider, r.model) for r in result.results}
        for spans in traces_of(result.spans).values():
            consumer = next(span for span in spans if span.kind == SpanKind.CONSUMER)
            job_id = next(
                span.attributes[semconv.LANGSMITH_TRACE_NAME]
                for span in spans
                if span.attributes.get(semconv.GEN_AI_OPERATION_NAME) == semconv.OPERATION_INVOKE_WORKFLOW
            ).removeprefix("chat:")
            provider, model = expected[job_id]
            llm = [span for span in spans if semconv.is_llm_span(span.attributes)]
            assert {node(span) for span in llm} == {"intent", "general", "answer"}
            assert {
                (span.attributes[semconv.GEN_AI_PROVIDER_NAME], span.attributes[semconv.GEN_AI_REQUEST_MODEL])
                for span in llm
            } == {(provider, model)}
            assert (
                consumer.attributes[semconv.ROLLUP_PROVIDER],
                consumer.attributes[semconv.ROLLUP_MODEL],
            ) == (provider, model)
            api = next(span for span in spans if span.parent is None)
            assert api.attributes[semconv.EXPERIMENT_ARM] == f"{provider}:{model}"

    def test_llm_calls_are_priced_and_the_worker_root_sums_them(self, run):
        """Both demo models are in the catalogue: every LLM span has a cost, the consumer root their sum."""
        result, _ = run
        for spans in traces_of(result.spans).values():
            llm = [span for span in spans if semconv.is_llm_span(span.attributes)]
            costs = [span.attributes[semconv.COST_AMOUNT] for span in llm]
            assert all(cost > 0 for cost in costs)
            consumer = next(span for span in spans if span.kind == SpanKind.CONSUMER)
            assert consumer.attributes[semconv.ROLLUP_COST_AMOUNT] == pytest.approx(sum(costs))
            assert consumer.attributes[semconv.ROLLUP_COST_CURRENCY] == "USD"

    def test_baggage_reaches_every_worker_span(self, run):
        """Session and arm travel through the queue: every worker span carries them from baggage."""
        result, _ = run
        for span in result.spans:
            if service(span) == SERVICE_WORKER:
                assert span.attributes[semconv.SESSION_ID].startswith("session-")
                assert semconv.EXPERIMENT_ARM in span.attributes

    def test_graph_nodes_are_spans_under_the_run(self, run):
        """Every node of the graph is a span in every trace, under the graph run span."""
        result, _ = run
        for spans in traces_of(result.spans).values():
            by_id = {span.context.span_id: span for span in spans}
            nodes = {
                node(span): span
                for span in spans
                if node(span) in NODES
                and span.kind == SpanKind.INTERNAL
                and by_id[span.parent.span_id].name == semconv.OPERATION_INVOKE_WORKFLOW
            }
            assert set(nodes) == NODES

    def test_progress_reports_each_request(self, run):
        """The progress callback hears about every request and its answer."""
        _, lines = run
        assert sum(line.startswith("request ") for line in lines) == 4
        assert sum(" done: " in line for line in lines) == 4

    def test_bad_arguments_are_refused(self):
        """Zero requests or zero concurrency raise ValueError before anything starts."""
        with pytest.raises(ValueError):
            run_embedded(requests=0)
        with pytest.raises(ValueError):
            run_embedded(concurrency=0)
