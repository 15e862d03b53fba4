"""The worker's job handling: CONSUMER span under the message's context, streamed tokens, errors, ack."""

from __future__ import annotations

import asyncio
import functools

import grpc
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from otel_llm import semconv
from otel_llm.demo.graph import ServiceClients, build_graph
from otel_llm.demo.jobs import Job, MemoryBroker, assemble
from otel_llm.demo.services import local_services
from otel_llm.demo.worker import ahandle_message, handle_message, job_config
from otel_llm.propagation import baggage_entries, producer_span

JOB = Job("job-1", "is it going to rain on collection day", "s-1", "u-1", "openai", "gpt-4o-mini")


@pytest.fixture(scope="module")
def services():
    """The local gRPC and HTTP services on loopback: (grpc target, http url)."""
    with local_services() as running:
        yield running.grpc_target, running.http_url


@pytest.fixture(autouse=True)
def no_latency(monkeypatch):
    monkeypatch.setenv("OTEL_LLM_DEMO_LATENCY_MS", "0")


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def message_for(job: Job, provider: TracerProvider) -> dict:
    """The job's stream fields as the API sends them: with the PRODUCER span's context and session baggage."""
    fields = job.fields()
    with baggage_entries({semconv.SESSION_ID: job.session_id}):
        with producer_span(fields, "chat:jobs", system="redis", tracer_provider=provider):
            pass
    return fields


class TestHandleMessage:
    def test_tokens_are_published_then_done_inside_the_consumer_span(self, services, traced):
        """Each answer token is published as it comes, then done; CONSUMER span is the producer's child."""
        provider, exporter = traced
        target, url = services
        broker = MemoryBroker()
        acknowledged = []
        with grpc.insecure_channel(target) as channel, httpx.Client(base_url=url) as http:
            answer = handle_message(
                build_graph(ServiceClients(channel, http)),
                "1-0",
                message_for(JOB, provider),
                lambda job_id: functools.partial(broker.publish, job_id),
                acknowledge=lambda: acknowledged.append("1-0"),
                tracer_provider=provider,
            )
        entries, _ = broker.wait_entries(JOB.job_id)
        assert [entry.keys() for entry in entries[:-1]] == [{"token": ""}.keys()] * 12
        result = assemble(JOB.job_id, entries)
        assert (result.status, result.text, result.tokens) == ("done", answer, 12)
        assert acknowledged == ["1-0"]
        producer, consumer = exporter.get_finished_spans()
        assert consumer.kind == SpanKind.CONSUMER and consumer.parent.span_id == producer.context.span_id
        assert consumer.attributes["messaging.consumer.group.name"] == "chat-workers"

    def test_async_handler_publishes_the_same_answer(self, services, traced):
        """The async path streams the same tokens and acknowledges inside the CONSUMER span."""
        provider, exporter = traced
        target, url = services
        broker = MemoryBroker()

        def publish_to(job_id):
            async def publish(entry):
                broker.publish(job_id, entry)

            return publish

        async def run():
            async with grpc.aio.insecure_channel(target) as channel, httpx.AsyncClient(base_url=url) as http:
                graph = build_graph(ServiceClients(channel, http), asynchronous=True)
                return await ahandle_message(
                    graph, "2-0", message_for(JOB, provider), publish_to, tracer_provider=provider
                )

        answer = asyncio.run(run())
        result = assemble(JOB.job_id, broker.wait_entries(JOB.job_id)[0])
        assert (result.status, result.text, result.tokens) == ("done", answer, 12)
        assert [span.kind for span in exporter.get_finished_spans()] == [SpanKind.PRODUCER, SpanKind.CONSUMER]

    def test_graph_failure_publishes_an_error_marks_the_span_and_acknowledges(self, services, traced):
        """A failing job ends its answer stream with the error, fails its CONSUMER span, is acknowledged."""
        provider, exporter = traced
        _, url = services
        broker = MemoryBroker()
        acknowledged = []
        with grpc.insecure_channel("127.0.0.1:1") as channel, httpx.Client(base_url=url) as http:
            with pytest.raises(grpc.RpcError):
                handle_message(
                    build_graph(ServiceClients(channel, http)),
                    "3-0",
                    message_for(JOB, provider),
                    lambda job_id: functools.partial(broker.publish, job_id),
                    acknowledge=lambda: acknowledged.append(True),
                    tracer_provider=provider,
                )
        result = assemble(JOB.job_id, broker.wait_entries(JOB.job_id)[0])
        assert result.status == "error" and result.error.startswith(("_InactiveRpcError", "RpcError"))
        assert acknowledged == [True]
        consumer = exporter.get_finished_spans()[-1]
        assert consumer.status.status_code == StatusCode.ERROR

    def test_malformed_message_fails_its_span_and_is_acknowledged(self, traced):
        """A message without job fields raises ValueError in a failed CONSUMER span and is acknowledged."""
        provider, exporter = traced
        acknowledged = []
        with pytest.raises(ValueError, match="lacks"):
            handle_message(
                None,
                "4-0",
                {"junk": "1"},
                lambda job_id: None,
                acknowledge=lambda: acknowledged.append(True),
                tracer_provider=provider,
            )
        (span,) = exporter.get_finished_spans()
        assert span.attributes[semconv.ERROR_TYPE] == "ValueError" and acknowledged == [True]


    def test_sync_handler_refuses_a_publisher_that_waits_and_still_acknowledges(self, traced):
        """The sync entry runs the job on its thread: a publish that waits fails loudly; the job is acked."""
        provider, _ = traced
        acknowledged = []

        async def waits(entry):
            await asyncio.sleep(0)  # a real suspension: there is no event loop to resume it

        class OneToken:
            def stream(self, *args, **kwargs):
                yield "values", {"answer": "hi"}

        with pytest.raises(RuntimeError, match="sync callbacks"):
            handle_message(
                OneToken(),
                "5-0",
                message_for(JOB, provider),
                lambda job_id: waits,
                acknowledge=lambda: acknowledged.append(True),
                tracer_provider=provider,
            )
        assert acknowledged == [True]


class TestJobConfig:
    def test_job_config_is_the_seed_run_config_for_the_job(self):
        """The run is named after the job, tagged with the intent, with job/user metadata and thread."""
        config = job_config(JOB)
        assert config["run_name"] == "chat:job-1"
        assert config["tags"] == ["intent:weather"]
        assert config["metadata"] == {"job_id": "job-1", "user_id": "u-1", "intent": "weather"}
        assert config["configurable"] == {"thread_id": "s-1"}
