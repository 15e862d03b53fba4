"""The reference app on the real stack: one well-nested trace per request across API, worker and services.

A batch of requests over both providers goes through the API, Redis, the worker's sync graph and the local
gRPC and HTTP services, all under ``opentelemetry-instrument``; the traces are read back from Jaeger, the span
metrics from Prometheus, and what the collector posted to the LangSmith stand-in.
"""

from __future__ import annotations

import uuid

import pytest

from otel_llm import semconv
from otel_llm.cli.demo_stack import API_SERVICE, SERVICES_SERVICE, WORKER_SERVICE
from otel_llm.demo.api import DEMO_EXPERIMENT_ID, demo_experiment
from otel_llm.demo.embedded import MESSAGES, sessions_covering_arms
from tests.e2e.jaeger_traces import Trace
from tests.e2e.reference_app import ReferenceApp
from tests.support.poll import poll

pytestmark = pytest.mark.e2e

REQUESTS = 6
NODES = {"intent", "retrieval", "character", "weather", "general", "answer"}
JOB_ID_TAG = "langsmith.metadata.job_id"
ASGI_EVENT_TYPE = "asgi.event.type"  # on the FastAPI instrumentation's http receive/send sub-spans
TRACE_TIMEOUT_S = 90


class Pending(str):
    """A falsy poll result that says what is still missing."""

    def __bool__(self) -> bool:
        return False


@pytest.fixture(scope="module")
def batch(stack, tmp_path_factory):
    """Runs REQUESTS requests (arms alternating); (jobs, {job_id: Trace}) once Jaeger has them all."""
    run_id = uuid.uuid4().hex[:8]
    sessions = sessions_covering_arms(demo_experiment(), REQUESTS)
    log_path = tmp_path_factory.mktemp("app") / "reference-app.log"
    with ReferenceApp(
        stack, log_path, env={"OTEL_LLM_DEMO_LATENCY_MS": "20", "OTEL_LLM_DEMO_TTFT_MS": "5"}
    ) as app:
        jobs = [
            app.converse(MESSAGES[index % len(MESSAGES)], session, f"user-{run_id}")
            for index, session in enumerate(sessions)
        ]
    assert [job["status"] for job in jobs] == ["done"] * REQUESTS, log_path.read_text()[-3000:]

    def traces_complete():
        found = {}
        for job in jobs:
            data = stack.find_traces(WORKER_SERVICE, {JOB_ID_TAG: job["job_id"]})
            if len(data) != 1:
                return Pending(f"job {job['job_id']}: {len(data)} traces")
            trace = Trace.from_jaeger(data[0])
            consumers = trace.of_kind("consumer", WORKER_SERVICE)
            if (
                not consumers
                or semconv.ROLLUP_PROVIDER not in consumers[0].tags
                or SERVICES_SERVICE not in trace.services
            ):
                return None
            found[job["job_id"]] = trace
        return found

    traces = poll(traces_complete, timeout=TRACE_TIMEOUT_S, message="every request's trace in Jaeger")
    return jobs, traces


class TestOneTracePerRequest:
    def test_requests_cover_both_providers(self, batch):
        """The batch was answered by both demo providers, each answer streamed token by token."""
        jobs, _ = batch
        assert {job["provider"] for job in jobs} == {"openai", "aws.bedrock"}
        assert all(job["tokens"] == 12 for job in jobs)

    def test_each_request_is_one_trace_with_one_root_and_no_orphans(self, batch):
        """One trace per request holding API, worker and services; one root (the API's POST), no orphans."""
        _, traces = batch
        for trace in traces.values():
            assert trace.services == {API_SERVICE, WORKER_SERVICE, SERVICES_SERVICE}
            assert [(root.name, root.service) for root in trace.roots] == [("POST /api/v1/chat", API_SERVICE)]
            assert trace.orphans == []

    def test_worker_consumer_span_is_the_child_of_the_api_producer_span(self, batch):
        """The worker's CONSUMER span continues the API's PRODUCER span across Redis."""
        _, traces = batch
        for trace in traces.values():
            (consumer,) = trace.of_kind("consumer", WORKER_SERVICE)
            producer = trace.parent(consumer)
            assert (producer.kind, producer.service) == ("producer", API_SERVICE)
            assert producer.tags["messaging.system"] == "redis"

    def test_every_graph_node_is_a_span_with_llm_spans_beneath(self, batch):
        """Intent, the four subagents and answer are node spans; intent, general and answer call an LLM."""
        _, traces = batch
        for trace in traces.values():
            nodes = {
                span.name for span in trace.spans.values() if span.name in NODES and span.node == span.name
            }
            assert nodes == NODES
            llm_nodes = sorted(trace.parent(span).node for span in trace.spans.values() if span.is_llm)
            assert llm_nodes == ["answer", "general", "intent"]

    def test_grpc_and_http_client_spans_are_children_of_the_node_that_made_them(self, batch):
        """The gRPC client span is under the character node, the HTTP one under weather; servers below."""
        _, traces = batch
        for trace in traces.values():
            grpc_clients = [
                s for s in trace.of_kind("client", WORKER_SERVICE) if s.tags.get("rpc.system") == "grpc"
            ]
            http_clients = [
                s
                for s in trace.of_kind("client", WORKER_SERVICE)
                if "http.request.method" in s.tags or "http.method" in s.tags
            ]
            assert [trace.parent(span).name for span in grpc_clients] == ["character"]
            assert [trace.parent(span).name for span in http_clients] == ["weather"]
            servers = trace.of_kind("server", SERVICES_SERVICE)
            assert sorted(trace.parent(span).span_id for span in servers) == sorted(
                span.span_id for span in grpc_clients + http_clients
            )

    def test_api_span_carries_the_assigned_arm_and_worker_root_the_actual_provider(self, batch):
        """Assigned provider/model (arm, and each on its own, through baggage) on the API request span and the
        worker root; actual (roll-up) on the worker root."""
        jobs, traces = batch
        for job in jobs:
            trace = traces[job["job_id"]]
            (root,) = trace.roots
            (consumer,) = trace.of_kind("consumer", WORKER_SERVICE)
            for span in (root, consumer):
                assert span.tags[semconv.EXPERIMENT_PROVIDER] == job["provider"]
                assert span.tags[semconv.EXPERIMENT_MODEL] == job["model"]
            assert root.tags[semconv.EXPERIMENT_ARM] == f"{job['provider']}:{job['model']}"
            assert consumer.tags[semconv.ROLLUP_PROVIDER] == job["provider"]
            assert consumer.tags[semconv.ROLLUP_MODEL] == job["model"]
            assert consumer.tags[semconv.EXPERIMENT_ARM] == root.tags[semconv.EXPERIMENT_ARM]
            llm = [span for span in trace.spans.values() if span.is_llm]
            assert {
                (s.tags[semconv.GEN_AI_PROVIDER_NAME], s.tags[semconv.GEN_AI_REQUEST_MODEL]) for s in llm
            } == {(job["provider"], job["model"])}


    def test_every_api_and_worker_span_carries_the_experiment_and_arm(self, batch):
        """Every API and worker span of a request's trace has the experiment id and the job's arm, except the
        ASGI sub-spans of the FastAPI instrumentation: reading the body (which holds the session the arm is
        assigned by) happens before the assignment, sending the response after the handler's context ended
        (docs/experiments.md)."""
        jobs, traces = batch
        for job in jobs:
            trace = traces[job["job_id"]]
            spans = [s for s in trace.spans.values() if s.service in (API_SERVICE, WORKER_SERVICE)]
            assert {s.service for s in spans} == {API_SERVICE, WORKER_SERVICE}
            missing = [
                (s.service, s.name, s.tags.get(ASGI_EVENT_TYPE))
                for s in spans
                if s.tags.get(semconv.EXPERIMENT_ID) != DEMO_EXPERIMENT_ID
                or s.tags.get(semconv.EXPERIMENT_ARM) != f"{job['provider']}:{job['model']}"
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
        """The LangSmith stand-in got each graph span (langsmith.span.kind, gen_ai.*) and its ancestors."""
        _, traces = batch

        def received():
            spans = {}
            for span in stack.langsmith_receiver.spans():
                spans[span.span_id.hex()] = span
            return (
                spans
                if all(span_id in spans for trace in traces.values() for span_id in trace.spans)
                else None
            )

        posted = poll(received, timeout=TRACE_TIMEOUT_S, message="the traces at the LangSmith receiver")
        for trace in traces.values():
            graph_spans = [span for span in trace.spans.values() if semconv.LANGSMITH_SPAN_KIND in span.tags]
            assert {span.node for span in graph_spans} >= NODES
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
