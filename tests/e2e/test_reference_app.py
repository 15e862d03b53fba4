"""The reference app on the real stack: one well-nested trace per request across API, worker and services.

A batch of requests over both providers goes through the API, Redis, the worker's sync graph and the local
gRPC and HTTP services, all under ``opentelemetry-instrument`` with LangSmith tracing on in OTel mode (as the
seed app runs); the traces are read back from Jaeger, the span metrics from Prometheus, and what the collector
posted to the LangSmith stand-in. A control app with otel-llm's LangChain instrumentation switched off shows
that LangSmith tracing really is on in these processes (its own spans appear), so "no span from langsmith" in
the batch means langsmith was kept from duplicating the runs, not that it was off.
"""

from __future__ import annotations

import uuid

import pytest

from otel_llm import semconv
from otel_llm.cli.demo_stack import API_SERVICE, SERVICES_SERVICE, WORKER_SERVICE
from otel_llm.demo.api import DEMO_EXPERIMENT_ID, demo_experiment
from otel_llm.demo.embedded import MESSAGES, sessions_covering_arms
from otel_llm.demo.graph import classify_intent
from otel_llm.demo.services import COMPLETIONS_PATH
from tests.e2e.reference_app import (
    COLLECTOR_SCOPE,
    JOB_ID_TAG,
    LANGSMITH_SCOPE,
    ReferenceApp,
    is_rpc_or_http,
    node_of,
    trace_gaps,
    url,
    wait_for_complete,
)
from tests.support.poll import poll

pytestmark = pytest.mark.e2e

REQUESTS = 6
NODES = {"intent", "retrieval", "character", "weather", "general", "answer"}
THREAD_ID_TAG = "langsmith.metadata.thread_id"
ASGI_EVENT_TYPE = "asgi.event.type"  # on the FastAPI instrumentation's http receive/send sub-spans
TRACE_TIMEOUT_S = 90
APP_ENV = {"OTEL_LLM_DEMO_LATENCY_MS": "20", "OTEL_LLM_DEMO_TTFT_MS": "5"}
INSTRUMENTATION_OFF = {"OTEL_PYTHON_DISABLED_INSTRUMENTATIONS": "otel_llm_langchain"}


@pytest.fixture(scope="module")
def batch(stack, tmp_path_factory):
    """Runs REQUESTS requests (arms alternating); (jobs, {job_id: Trace}) once Jaeger has them whole (or
    what it has at the deadline: the tests then say what is missing).

    Each job: the request (message, session_id, user_id), the accepted arm and the streamed answer.
    """
    run_id = uuid.uuid4().hex[:8]
    sessions = sessions_covering_arms(demo_experiment(), REQUESTS)
    log_path = tmp_path_factory.mktemp("app") / "reference-app.log"
    requests = [
        {"message": MESSAGES[index % len(MESSAGES)], "session_id": session, "user_id": f"user-{run_id}"}
        for index, session in enumerate(sessions)
    ]
    with ReferenceApp(stack, log_path, env=APP_ENV) as app:
        jobs = [{**request, **app.converse(**request)} for request in requests]
    assert [job["status"] for job in jobs] == ["done"] * REQUESTS, log_path.read_text()[-3000:]

    def fetch():
        found = {}
        for job in jobs:
            data = stack.find_traces(WORKER_SERVICE, {JOB_ID_TAG: job["job_id"]})
            if len(data) == 1:
                found[job["job_id"]] = data[0]
        return found, trace_gaps(jobs, found)

    traces, _ = wait_for_complete(fetch, TRACE_TIMEOUT_S, "every request's whole trace in Jaeger")
    return jobs, traces


@pytest.fixture(scope="module")
def langsmith_alone(stack, tmp_path_factory):
    """Control: one request with otel-llm's LangChain instrumentation off; the spans of its trace."""
    log_path = tmp_path_factory.mktemp("control") / "reference-app.log"
    with ReferenceApp(stack, log_path, env={**APP_ENV, **INSTRUMENTATION_OFF}) as app:
        job = app.converse(MESSAGES[0], f"control-{uuid.uuid4().hex[:8]}", "control-user")
    assert job["status"] == "done", log_path.read_text()[-3000:]

    def langsmith_spans():
        data = stack.find_traces(WORKER_SERVICE, {JOB_ID_TAG: job["job_id"]})
        spans = [span for trace in data for span in trace.spans]
        return [span for span in spans if span.scope == LANGSMITH_SCOPE]

    return poll(langsmith_spans, timeout=TRACE_TIMEOUT_S, message="langsmith's own spans of the control")


class TestOneTracePerRequest:
    def test_requests_cover_both_providers(self, batch):
        """The batch was answered by both demo providers, each answer streamed token by token."""
        jobs, _ = batch
        assert {job["provider"] for job in jobs} == {"openai", "aws.bedrock"}
        assert all(job["tokens"] == 12 for job in jobs)

    def test_each_request_is_one_trace_with_one_root_and_no_orphans(self, batch):
        """One trace per request holding API, worker and services; one root (the API's POST), no orphans, and
        every span under a parent span of its own (none hangs by a FOLLOWS_FROM link only)."""
        _, traces = batch
        for trace in traces.values():
            assert set(trace.services) == {API_SERVICE, WORKER_SERVICE, SERVICES_SERVICE}
            assert [(root.name, root.service) for root in trace.roots] == [("POST /api/v1/chat", API_SERVICE)]
            assert trace.orphans == []
            assert [span.name for span in trace.spans if span.linked] == []

    def test_each_trace_holds_exactly_the_spans_the_graph_implies(self, batch):
        """Each trace's multiset of (service, span name, kind) is ``expected_spans``: none lost or doubled."""
        jobs, traces = batch
        assert trace_gaps(jobs, traces) == []

    def test_no_langchain_run_is_traced_twice_with_langsmith_tracing_on(self, batch, langsmith_alone):
        """LangSmith tracing is on (alone, it makes its own LangGraph spans), yet no span of the batch comes
        from langsmith's instrumentation scope: each run is traced once, by otel-llm."""
        _, traces = batch
        assert {span.name for span in langsmith_alone} >= {"intent", "answer"}
        for trace in traces.values():
            scopes = {span.scope for span in trace.spans}
            assert LANGSMITH_SCOPE not in scopes

    def test_run_config_reaches_every_langchain_span(self, batch):
        """Eco2 agent's run config: the graph run name is ``chat:<job_id>``; each LangChain span carries
        the job, the user, the session as ``thread_id`` and the ``intent:*`` tag of the message."""
        jobs, traces = batch
        intents = set()
        for job in jobs:
            trace = traces[job["job_id"]]
            intent = classify_intent(job["message"])
            intents.add(intent)
            (graph,) = trace.named(semconv.OPERATION_INVOKE_WORKFLOW)
            assert graph.attributes[semconv.LANGSMITH_TRACE_NAME] == f"chat:{job['job_id']}"
            assert graph.attributes[semconv.GEN_AI_OPERATION_NAME] == semconv.OPERATION_INVOKE_WORKFLOW
            runs = [span for span in trace.spans if semconv.LANGSMITH_SPAN_KIND in span.attributes]
            assert len(runs) > len(NODES)
            for span in runs:
                assert span.attributes[THREAD_ID_TAG] == job["session_id"], span.name
                assert span.attributes[JOB_ID_TAG] == job["job_id"], span.name
                assert span.attributes["langsmith.metadata.user_id"] == job["user_id"], span.name
                tags = span.attributes[semconv.LANGSMITH_SPAN_TAGS].split(", ")
                assert f"intent:{intent}" in tags, span.name
        assert intents == {"waste", "character", "weather", "general"}

    def test_worker_consumer_span_is_the_child_of_the_api_producer_span(self, batch):
        """The worker's CONSUMER span continues the API's PRODUCER span across Redis."""
        _, traces = batch
        for trace in traces.values():
            (consumer,) = trace.of_kind("consumer", WORKER_SERVICE)
            producer = trace.parent(consumer)
            assert not consumer.linked  # the producer is its parent span, not only a link
            assert (producer.kind, producer.service) == ("producer", API_SERVICE)
            assert producer.attributes["messaging.system"] == "redis"

    def test_every_graph_node_is_a_span_with_llm_spans_beneath(self, batch):
        """Intent, the four subagents and answer are node spans; intent, general and answer call an LLM."""
        _, traces = batch
        for trace in traces.values():
            nodes = {
                span.name for span in trace.spans if span.name in NODES and node_of(span) == span.name
            }
            assert nodes == NODES
            llm_nodes = sorted(node_of(trace.parent(span)) for span in trace.spans if span.is_llm)
            assert llm_nodes == ["answer", "general", "intent"]

    def test_grpc_and_http_client_spans_are_children_of_the_node_that_made_them(self, batch):
        """The gRPC client span is under the character node, the weather HTTP call under weather; servers
        below."""
        _, traces = batch
        for trace in traces.values():
            clients = [s for s in trace.of_kind("client", WORKER_SERVICE) if is_rpc_or_http(s)]
            grpc_clients = [span for span in clients if span.attributes.get("rpc.system") == "grpc"]
            weather = [span for span in clients if "/weather/" in url(span)]
            assert [trace.parent(span).name for span in grpc_clients] == ["character"]
            assert [trace.parent(span).name for span in weather] == ["weather"]
            servers = trace.of_kind("server", SERVICES_SERVICE)
            assert sorted(trace.parent(span).span_id for span in servers) == sorted(
                span.span_id for span in clients
            )

    def test_llm_sdk_http_span_is_the_child_of_its_llm_span_under_its_node(self, batch):
        """Each LLM call's own provider API request (httpx CLIENT span) is the child of the LLM span, and
        the LLM span the child of the node that called the model."""
        _, traces = batch
        for trace in traces.values():
            sdk_calls = [
                span
                for span in trace.of_kind("client", WORKER_SERVICE)
                if url(span).endswith(COMPLETIONS_PATH)
            ]
            llm_spans = [span for span in trace.spans if span.is_llm]
            assert sorted(trace.parent(span).span_id for span in sdk_calls) == sorted(
                span.span_id for span in llm_spans
            )
            for llm in llm_spans:
                node = trace.parent(llm)
                assert (node.name, node_of(node), node.kind) == (node_of(llm), node_of(llm), "internal")

    def test_api_span_carries_the_assigned_arm_and_worker_root_the_actual_provider(self, batch):
        """Assigned provider/model (arm, and each on its own, through baggage) on the API request span and the
        worker root; actual (roll-up) on the worker root."""
        jobs, traces = batch
        for job in jobs:
            trace = traces[job["job_id"]]
            (root,) = trace.roots
            (consumer,) = trace.of_kind("consumer", WORKER_SERVICE)
            for span in (root, consumer):
                assert span.attributes[semconv.EXPERIMENT_PROVIDER] == job["provider"]
                assert span.attributes[semconv.EXPERIMENT_MODEL] == job["model"]
            assert root.attributes[semconv.EXPERIMENT_ARM] == f"{job['provider']}:{job['model']}"
            assert consumer.attributes[semconv.ROLLUP_PROVIDER] == job["provider"]
            assert consumer.attributes[semconv.ROLLUP_MODEL] == job["model"]
            assert consumer.attributes[semconv.EXPERIMENT_ARM] == root.attributes[semconv.EXPERIMENT_ARM]
            llm = [span for span in trace.spans if span.is_llm]
            assert {
                (s.attributes[semconv.GEN_AI_PROVIDER_NAME], s.attributes[semconv.GEN_AI_REQUEST_MODEL])
                for s in llm
            } == {(job["provider"], job["model"])}


    def test_every_api_and_worker_span_carries_the_experiment_and_arm(self, batch):
        """Every API and worker span of a request's trace has the experiment id and the job's arm, except the
        ASGI sub-spans of the FastAPI instrumentation: reading the body (which holds the session the arm is
        assigned by) happens before the assignment, sending the response after the handler's context ended
        (docs/experiments.md)."""
        jobs, traces = batch
        for job in jobs:
            trace = traces[job["job_id"]]
            spans = [s for s in trace.spans if s.service in (API_SERVICE, WORKER_SERVICE)]
            assert {s.service for s in spans} == {API_SERVICE, WORKER_SERVICE}
            missing = [
                (s.service, s.name, s.attributes.get(ASGI_EVENT_TYPE))
                for s in spans
                if s.attributes.get(semconv.EXPERIMENT_ID) != DEMO_EXPERIMENT_ID
                or s.attributes.get(semconv.EXPERIMENT_ARM) != f"{job['provider']}:{job['model']}"
            ]
            assert sorted(missing) == [
                (API_SERVICE, "POST /api/v1/chat http receive", "http.request"),
                (API_SERVICE, "POST /api/v1/chat http send", "http.response.body"),
                (API_SERVICE, "POST /api/v1/chat http send", "http.response.start"),
            ]


class TestMetricsAndLangSmith:
    def test_span_metrics_per_provider_and_model_reach_prometheus(self, stack, batch):
        """The collector's span metrics count the LLM calls per provider and model, for both providers."""
        jobs, _ = batch
        expected = {(job["provider"], job["model"]) for job in jobs}
        query = (
            "sum by (gen_ai_provider_name, gen_ai_request_model) "
            f'(traces_span_metrics_calls_total{{service_name="{WORKER_SERVICE}", gen_ai_provider_name!=""}})'
        )

        def series():
            found = {
                (r["metric"]["gen_ai_provider_name"], r["metric"]["gen_ai_request_model"])
                for r in stack.prometheus_query(query)
            }
            return found if expected <= found else None

        poll(series, timeout=TRACE_TIMEOUT_S, message="span metrics per provider/model in Prometheus")

    def test_langsmith_receiver_got_the_graph_spans_and_all_their_ancestors(self, stack, batch):
        """The LangSmith stand-in got each graph span (langsmith.span.kind, gen_ai.*) and its ancestors: every
        span of the app (the collector adds its llm.request span on the Jaeger path only)."""
        _, traces = batch

        def received():
            spans = {}
            for span in stack.langsmith_receiver.spans():
                spans[span.span_id.hex()] = span
            return (
                spans
                if all(span.span_id in spans for trace in traces.values() for span in trace.spans
                       if span.scope != COLLECTOR_SCOPE)
                else None
            )

        posted = poll(received, timeout=TRACE_TIMEOUT_S, message="the traces at the LangSmith receiver")
        for trace in traces.values():
            graph_spans = [span for span in trace.spans if semconv.LANGSMITH_SPAN_KIND in span.attributes]
            assert {node_of(span) for span in graph_spans} >= NODES
            for span in graph_spans:
                attributes = {kv.key for kv in posted[span.span_id].attributes}
                assert semconv.LANGSMITH_SPAN_KIND in attributes
                for ancestor in trace.ancestors(span):
                    assert ancestor.span_id in posted
            for span in (s for s in graph_spans if s.is_llm):
                attributes = {kv.key for kv in posted[span.span_id].attributes}
                assert {
                    semconv.GEN_AI_PROVIDER_NAME,
                    semconv.GEN_AI_REQUEST_MODEL,
                    semconv.GEN_AI_OPERATION_NAME,
                    semconv.GEN_AI_USAGE_INPUT_TOKENS,
                    semconv.GEN_AI_USAGE_OUTPUT_TOKENS,
                } <= attributes
