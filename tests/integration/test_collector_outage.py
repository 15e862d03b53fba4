"""The collector crashes (``kill -9``) under steady load through otel-llm's whole pipeline: the app keeps its
spans in the delivery stage's bounded retry queue and sends them once the collector is back; what cannot be
kept is counted. The app's requests do not slow down."""

from __future__ import annotations

import statistics
import time

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind

from otel_llm import semconv
from otel_llm.configure import build_telemetry
from otel_llm.settings import Settings
from tests.support.senders import unique_service
from tests.support.span_load import wait_for_spans

REQUEST_INTERVAL_S = 0.05  # steady load: 20 requests a second (pacing, not synchronisation)
WORK_S = 0.02  # each request waits this long on its "model call" (simulated I/O)
SPANS_PER_REQUEST = 3
LLM = {semconv.LANGSMITH_SPAN_KIND: "llm", semconv.LANGSMITH_LS_PROVIDER: "openai",
       semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini"}


class App:
    """An app instrumented by otel-llm (roll-up stage, delivery stage, OTLP/gRPC to the stack's collector)."""

    def __init__(self, endpoint: str, service: str) -> None:
        self.service = service
        self.telemetry = build_telemetry(
            Settings(), resource=Resource.create({"service.name": service}), metric_readers=[],
            span_exporters=[OTLPSpanExporter(endpoint=endpoint, insecure=True)],
        )
        self.tracer = self.telemetry.tracer_provider.get_tracer("app")
        self.requests = 0
        self.errors = 0

    def serve(self, seconds: float) -> list[float]:
        """Serve paced requests for ``seconds``; each request's latency in seconds."""
        latencies = []
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            began = time.perf_counter()
            try:
                with self.tracer.start_as_current_span("POST /chat", kind=SpanKind.SERVER):
                    with self.tracer.start_as_current_span("graph"):
                        with self.tracer.start_as_current_span("ChatOpenAI", attributes=LLM):
                            time.sleep(WORK_S)
            except Exception:  # noqa: BLE001 - counted: the assertion is that there are none
                self.errors += 1
            latencies.append(time.perf_counter() - began)
            self.requests += 1
            time.sleep(max(0.0, REQUEST_INTERVAL_S - (time.perf_counter() - began)))
        return latencies

    def dropped(self) -> dict[str, int]:
        return {reason: count for counter in self.telemetry.drop_counters
                for reason, count in counter.counts().items() if count}


def p99(latencies: list[float]) -> float:
    return statistics.quantiles(latencies, n=100)[98]


@pytest.fixture
def app_env(monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "500")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "32768")


def crash(own_stack, app: App) -> None:
    """Kill the collector once it holds nothing of the app's (its batch processor keeps up to 200 ms of
    acknowledged spans in memory, which a crash loses on the collector's side, not the app's)."""
    app.telemetry.force_flush()
    expected = app.requests * SPANS_PER_REQUEST
    assert wait_for_spans(own_stack.jaeger_query_url, app.service, expected) == expected
    own_stack.kill_collector()


def test_twenty_second_crash_loses_nothing_and_keeps_latency(own_stack, app_env):
    """kill -9 for 20 s: every span reaches Jaeger, no app error, request p99 within 10% of no-fault p99."""
    app = App(own_stack.otlp_grpc_endpoint, unique_service("crash20"))
    try:
        healthy = app.serve(15.0)
        crash(own_stack, app)
        during = app.serve(20.0)
        own_stack.start_collector()
        app.serve(3.0)
        app.telemetry.force_flush()
        expected = app.requests * SPANS_PER_REQUEST
        assert wait_for_spans(own_stack.jaeger_query_url, app.service, expected) == expected
        assert app.dropped() == {} and app.errors == 0
        assert p99(during) <= 1.10 * p99(healthy), (p99(during), p99(healthy))
    finally:
        own_stack.start_collector()
        app.telemetry.shutdown()


def test_sixty_second_crash_loses_nothing_uncounted(own_stack, app_env):
    """kill -9 for 60 s: offered = in Jaeger + counted as dropped, exactly; no app error."""
    app = App(own_stack.otlp_grpc_endpoint, unique_service("crash60"))
    try:
        app.serve(2.0)
        crash(own_stack, app)
        app.serve(60.0)
        own_stack.start_collector()
        app.serve(2.0)
        app.telemetry.force_flush()
        dropped = sum(app.dropped().values())
        expected = app.requests * SPANS_PER_REQUEST - dropped
        assert wait_for_spans(own_stack.jaeger_query_url, app.service, expected) == expected
        assert app.errors == 0
        assert dropped == 0  # the retry queue's default bound (16384 spans) holds a minute of this load
    finally:
        own_stack.start_collector()
        app.telemetry.shutdown()
