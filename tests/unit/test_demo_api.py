"""The reference API: trace context and baggage in the queued message, arm assignment, answers, SSE."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from opentelemetry import baggage, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_llm import semconv
from otel_llm.demo.api import DEMO_EXPERIMENT_ID, create_app, demo_experiment
from otel_llm.demo.embedded import sessions_covering_arms
from otel_llm.demo.jobs import Job, MemoryBroker
from otel_llm.experiment import ENV_EXPERIMENT_ARMS, ENV_EXPERIMENT_ID
from otel_llm.metrics.streaming import StreamMetrics
from otel_llm.propagation import extract
from tests.support.metric_points import metric_points

BODY = {"message": "how do I sort glass", "session_id": "session-1", "user_id": "user-1"}


@pytest.fixture(autouse=True)
def no_experiment_env(monkeypatch):
    monkeypatch.delenv(ENV_EXPERIMENT_ARMS, raising=False)
    monkeypatch.delenv(ENV_EXPERIMENT_ID, raising=False)


@pytest.fixture
def api():
    """(client, broker, exporter): the API over an in-process broker, its spans in memory."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    broker = MemoryBroker()
    with TestClient(create_app(broker, tracer_provider=provider)) as client:
        yield client, broker, exporter
    provider.shutdown()


@pytest.fixture
def recovering_api():
    """(client, broker, reader): the API with its recovery counts in an in-memory metric reader."""
    reader = InMemoryMetricReader()
    broker = MemoryBroker()
    app = create_app(broker, stream_metrics=StreamMetrics(MeterProvider(metric_readers=[reader])))
    with TestClient(app) as client:
        yield client, broker, reader


def recoveries(reader) -> list[tuple[dict, int]]:
    return [(attributes, point.value) for attributes, point in metric_points(reader, "chat_stream_recovery")]


def only_recovery(reader, *keys: str) -> tuple:
    """The one recovery series: the values of ``keys`` among its labels, then its count."""
    [(attributes, count)] = recoveries(reader)
    return (*(attributes[key] for key in keys), count)


def sse_events(body: str) -> list[dict[str, str]]:
    """Each server-sent event as its fields (event, id, data)."""
    return [
        dict(line.split(": ", 1) for line in block.split("\n"))
        for block in body.strip().split("\n\n")
        if block
    ]


class TestEnqueue:
    def test_job_message_carries_the_producer_span_and_baggage(self, api):
        """The queued message holds the job and the PRODUCER span's context, session and arm as baggage."""
        client, broker, exporter = api
        accepted = client.post("/api/v1/chat", json=BODY).json()
        message_id, fields = broker.receive(timeout_s=5)
        job = Job.from_fields(fields)
        assert (job.job_id, job.message, job.session_id, job.user_id) == (
            accepted["job_id"],
            BODY["message"],
            "session-1",
            "user-1",
        )
        assert (job.provider, job.model) == (accepted["provider"], accepted["model"])
        (producer,) = exporter.get_finished_spans()
        assert producer.kind == SpanKind.PRODUCER and producer.name == "send chat:jobs"
        assert producer.attributes["messaging.message.id"] == message_id
        restored = extract(fields)
        assert trace.get_current_span(restored).get_span_context().span_id == producer.context.span_id
        assert baggage.get_all(restored) == {
            semconv.SESSION_ID: "session-1",
            semconv.EXPERIMENT_ID: DEMO_EXPERIMENT_ID,
            semconv.EXPERIMENT_ARM: f"{job.provider}:{job.model}",
            semconv.EXPERIMENT_PROVIDER: job.provider,
            semconv.EXPERIMENT_MODEL: job.model,
        }

    def test_demo_split_assigns_both_providers_by_session(self, api):
        """Without an experiment configured, sessions split over both demo providers, each session stably."""
        client, _, _ = api
        sessions = sessions_covering_arms(demo_experiment(), 4)
        providers = [
            client.post("/api/v1/chat", json={**BODY, "session_id": s}).json()["provider"] for s in sessions
        ]
        assert providers == ["openai", "aws.bedrock", "openai", "aws.bedrock"]
        again = client.post("/api/v1/chat", json={**BODY, "session_id": sessions[1]}).json()
        assert again["provider"] == "aws.bedrock"

    def test_configured_experiment_decides_the_arm(self, monkeypatch):
        """OTEL_LLM_EXPERIMENT_* arms replace the demo split, model included."""
        monkeypatch.setenv(ENV_EXPERIMENT_ARMS, "openai:gpt-4o=1")
        monkeypatch.setenv(ENV_EXPERIMENT_ID, "exp-7")
        broker = MemoryBroker()
        with TestClient(create_app(broker)) as client:
            accepted = client.post("/api/v1/chat", json=BODY).json()
        assert (accepted["provider"], accepted["model"]) == ("openai", "gpt-4o")
        _, fields = broker.receive(timeout_s=5)
        assert baggage.get_baggage(semconv.EXPERIMENT_ID, extract(fields)) == "exp-7"

    @pytest.mark.parametrize(
        "body",
        [{**BODY, "message": ""}, {"message": "hi", "session_id": "s"}, {**BODY, "user_id": "u" * 500}, {}],
    )
    def test_invalid_requests_are_refused_and_not_enqueued(self, api, body):
        """Empty or oversized fields and missing ids give 422 and no job."""
        client, broker, _ = api
        assert client.post("/api/v1/chat", json=body).status_code == 422
        assert broker.receive(timeout_s=0.01) is None


class TestAnswers:
    def test_answer_status_follows_the_stream(self, api):
        """GET returns pending, then the streamed text, then done with the final answer."""
        client, broker, _ = api
        assert client.get("/api/v1/chat/j1").json()["status"] == "pending"
        broker.publish("j1", {"token": "Rinse"})
        assert client.get("/api/v1/chat/j1").json() == {
            "job_id": "j1",
            "status": "streaming",
            "text": "Rinse",
            "tokens": 1,
            "error": None,
        }
        broker.publish("j1", {"token": " it"})
        broker.publish("j1", {"done": "1", "answer": "Rinse it"})
        answer = client.get("/api/v1/chat/j1").json()
        assert (answer["status"], answer["text"], answer["tokens"]) == ("done", "Rinse it", 2)

    def test_stream_endpoint_sends_tokens_then_done(self, api):
        """The SSE endpoint sends one token event per token and ends with the done event."""
        client, broker, _ = api
        for entry in ({"token": "a"}, {"token": " b"}, {"done": "1", "answer": "a b"}):
            broker.publish("j2", entry)
        body = client.get("/api/v1/chat/j2/stream").text
        events = [block.split("\n")[0] for block in body.strip().split("\n\n")]
        assert events == ["event: token", "event: token", "event: done"]
        assert 'data: {"done": "1", "answer": "a b"}' in body

    def test_stream_endpoint_ends_with_the_error(self, api):
        """A failed job ends the event stream with an error event."""
        client, broker, _ = api
        broker.publish("j3", {"error": "ValueError: boom"})
        assert client.get("/api/v1/chat/j3/stream").text.startswith("event: error\n")


class TestRecoveries:
    def test_snapshot_read_counts_a_recovery_labelled_with_the_assigned_arm(self, recovering_api):
        """GET of the answer so far is one snapshot recovery, labelled with the job's provider, model,
        node and experiment."""
        client, broker, reader = recovering_api
        accepted = client.post("/api/v1/chat", json=BODY).json()
        broker.publish(accepted["job_id"], {"token": "Rinse"})
        assert client.get(f"/api/v1/chat/{accepted['job_id']}").json()["text"] == "Rinse"
        [(attributes, count)] = recoveries(reader)
        assert count == 1
        assert attributes == {
            "provider": accepted["provider"],
            "model": accepted["model"],
            "node": "answer",
            semconv.EXPERIMENT_ID: DEMO_EXPERIMENT_ID,
            semconv.EXPERIMENT_ARM: f"{accepted['provider']}:{accepted['model']}",
            "type": "snapshot",
            "status": "success",
        }

    def test_reconnect_with_last_event_id_catches_up_after_it(self, recovering_api):
        """A stream opened with Last-Event-ID: 2 sends the events after the second and counts one catch-up;
        a stream without it counts nothing."""
        client, broker, reader = recovering_api
        job_id = client.post("/api/v1/chat", json=BODY).json()["job_id"]
        for entry in ({"token": "a"}, {"token": " b"}, {"token": " c"}, {"done": "1", "answer": "a b c"}):
            broker.publish(job_id, entry)
        first = sse_events(client.get(f"/api/v1/chat/{job_id}/stream").text)
        assert [(e["event"], e["id"]) for e in first] == [("token", "1"), ("token", "2"), ("token", "3"),
                                                          ("done", "4")]
        assert recoveries(reader) == []
        resumed = sse_events(
            client.get(f"/api/v1/chat/{job_id}/stream", headers={"Last-Event-ID": "2"}).text
        )
        assert [(e["event"], e["id"], e["data"]) for e in resumed] == [
            ("token", "3", '{"token": " c"}'),
            ("done", "4", '{"done": "1", "answer": "a b c"}'),
        ]
        assert only_recovery(reader, "type", "status", "node") == ("catch_up", "success", "answer", 1)

    def test_bad_last_event_id_is_a_failed_catch_up(self, recovering_api):
        """A Last-Event-ID this API never sent ends the stream with an error event and counts an error."""
        client, broker, reader = recovering_api
        body = client.get("/api/v1/chat/unknown-job/stream", headers={"Last-Event-ID": "abc"}).text
        [event] = sse_events(body)
        assert event["event"] == "error" and "Last-Event-ID" in event["data"]
        assert only_recovery(reader, "type", "status", "provider") == ("catch_up", "error", "unknown", 1)

    def test_backend_failure_is_a_failed_snapshot(self, recovering_api):
        """A snapshot read the backend cannot serve counts an error recovery and fails the request."""
        client, broker, reader = recovering_api

        async def broken(*args, **kwargs):
            raise ConnectionError("redis down")

        broker.read = broken
        with pytest.raises(ConnectionError):
            client.get("/api/v1/chat/j9")
        assert only_recovery(reader, "type", "status") == ("snapshot", "error", 1)

    def test_remembered_labels_are_bounded(self):
        """The API keeps the labels of its last MAX_REMEMBERED_JOBS jobs only, forgetting the oldest."""
        from otel_llm.demo.api import _RememberedLabels

        remembered = _RememberedLabels(capacity=2)
        for job_id in ("a", "b", "c"):
            remembered.remember(job_id, {"provider": job_id})
        assert [remembered.get(job_id) for job_id in "abc"] == [None, {"provider": "b"}, {"provider": "c"}]
