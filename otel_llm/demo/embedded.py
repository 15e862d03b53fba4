"""The reference app in one process, with nothing else running: what ``otel-llm demo`` shows by default.

``run_embedded(requests=4)`` runs the same API, worker, graph and services as the multi-process app, wired
in-process: the API is called through FastAPI's TestClient, jobs go through ``jobs.MemoryBroker`` instead of
Redis (with the same trace context and baggage in the message fields), the gRPC and HTTP services listen on
127.0.0.1 random ports in threads, and the chat models are the offline fakes with a small latency.

Telemetry goes through otel-llm's pipeline, one TracerProvider per service (``chat-api``, ``chat-worker``,
``chat-services``, as ``service.name`` of their resources): ``BaggageAttributesProcessor`` then
``RollupBatchSpanProcessor(RollupSpanExporter(InMemorySpanExporter(), pricer=...))`` (LLM calls priced as
configure() prices them: OTEL_LLM_COST, OTEL_LLM_COST_PRICES_FILE). The instrumentations are applied
explicitly to those providers (FastAPI, gRPC client/server interceptors, httpx per client, and otel-llm's
LangChain instrumentation), and undone at the end. The global providers are not touched.

Sessions are picked so the requests cover the experiment's arms in turn (both demo providers by default).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm.demo.api import create_app, demo_experiment
from otel_llm.demo.graph import ServiceClients, build_graph
from otel_llm.demo.jobs import Job, MemoryBroker, assemble, is_final
from otel_llm.demo.models import LATENCY_ENV, TTFT_ENV
from otel_llm.demo.services import LocalServices, local_services
from otel_llm.demo.worker import ahandle_message, handle_message
from otel_llm.experiment import Experiment, experiment_from_env
from otel_llm.processors.baggage import BaggageAttributesProcessor
from otel_llm.processors.cost import Pricer, pricer_from_file
from otel_llm.processors.rollup import RollupBatchSpanProcessor, RollupSpanExporter
from otel_llm.settings import load_settings

SERVICE_API = "chat-api"
SERVICE_WORKER = "chat-worker"
SERVICE_SERVICES = "chat-services"
DEFAULT_LATENCY_MS = 20.0
DEFAULT_TTFT_MS = 8.0
DEFAULT_TIMEOUT_S = 60.0
FLUSH_TIMEOUT_MS = 10000
MAX_SESSION_TRIES = 1000
# The FastAPI instrumentation's per-message ASGI spans say nothing about the request here.
EXCLUDED_ASGI_SPANS = ["receive", "send"]
MESSAGES = (
    "How do I recycle a plastic bottle?",
    "Tell me about eco, your character",
    "What is the weather on collection day?",
    "Hello, what can you do?",
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class EmbeddedResult:
    """One request of the run: its job, the provider/model it was assigned, and the answer it got."""

    job_id: str
    session_id: str
    provider: str
    model: str
    status: str
    answer: str
    tokens: int
    error: str | None = None


@dataclass(frozen=True)
class EmbeddedRun:
    """Every finished span of the run (API, worker, services; as exported) and the result of each request."""

    spans: tuple[ReadableSpan, ...]
    results: tuple[EmbeddedResult, ...]


def _tracer_provider(
    service_name: str, exporter: InMemorySpanExporter, pricer: Pricer | None
) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(BaggageAttributesProcessor())
    provider.add_span_processor(RollupBatchSpanProcessor(RollupSpanExporter(exporter, pricer=pricer)))
    return provider


def sessions_covering_arms(experiment: Experiment, count: int) -> list[str]:
    """``count`` session ids whose assigned arms take the experiment's arms in turn (when weights allow)."""
    sessions: list[str] = []
    for index in range(count):
        wanted = experiment.arms[index % len(experiment.arms)]
        candidates = (f"session-{index}-{attempt}" for attempt in range(MAX_SESSION_TRIES))
        chosen = next((sid for sid in candidates if experiment.assign(sid) == wanted), f"session-{index}")
        sessions.append(chosen)
    return sessions


@contextmanager
def _env_defaults(values: Mapping[str, str]) -> Iterator[None]:
    """Sets environment variables that are unset, for the block (the fake models read their latency there)."""
    import os

    added = [name for name in values if name not in os.environ]
    for name in added:
        os.environ[name] = values[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _instrumented_services(provider: TracerProvider) -> AbstractContextManager[LocalServices]:
    """The gRPC and HTTP services on loopback, their server spans made with the services' provider."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.grpc import server_interceptor

    return local_services(
        grpc_interceptors=[server_interceptor(tracer_provider=provider)],
        prepare_http_app=lambda app: FastAPIInstrumentor.instrument_app(
            app, tracer_provider=provider, exclude_spans=EXCLUDED_ASGI_SPANS
        ),
    )


def _sync_clients(services: LocalServices, provider: TracerProvider) -> ServiceClients:
    import grpc
    import httpx
    from opentelemetry.instrumentation.grpc import client_interceptor
    from opentelemetry.instrumentation.grpc.grpcext import intercept_channel
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    channel = intercept_channel(
        grpc.insecure_channel(services.grpc_target), client_interceptor(tracer_provider=provider)
    )
    http = httpx.Client(base_url=services.http_url)
    HTTPXClientInstrumentor.instrument_client(http, tracer_provider=provider)
    return ServiceClients(channel, http)


def _async_clients(services: LocalServices, provider: TracerProvider) -> ServiceClients:
    import grpc
    import httpx
    from opentelemetry.instrumentation.grpc import aio_client_interceptors
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    channel = grpc.aio.insecure_channel(
        services.grpc_target, interceptors=aio_client_interceptors(tracer_provider=provider)
    )
    http = httpx.AsyncClient(base_url=services.http_url)
    HTTPXClientInstrumentor.instrument_client(http, tracer_provider=provider)
    return ServiceClients(channel, http)


def _sync_worker(
    broker: MemoryBroker, services: LocalServices, provider: TracerProvider, concurrency: int
) -> list[threading.Thread]:
    clients = _sync_clients(services, provider)
    graph = build_graph(clients)

    def consume() -> None:
        while (message := broker.receive()) is not None:
            message_id, fields = message
            try:
                handle_message(
                    graph,
                    message_id,
                    fields,
                    lambda job_id: functools.partial(broker.publish, job_id),
                    tracer_provider=provider,
                )
            except Exception:  # the error is on the CONSUMER span and in the answer stream
                continue

    threads = [
        threading.Thread(target=consume, name=f"embedded-worker-{index}", daemon=True)
        for index in range(concurrency)
    ]
    for thread in threads:
        thread.start()
    return threads


def _async_worker(
    broker: MemoryBroker, services: LocalServices, provider: TracerProvider, concurrency: int
) -> list[threading.Thread]:
    async def serve() -> None:
        clients = _async_clients(services, provider)
        graph = build_graph(clients, asynchronous=True)

        def publish_to(job_id: str) -> Callable[[Mapping[str, str]], Any]:
            async def publish(entry: Mapping[str, str]) -> None:
                broker.publish(job_id, entry)

            return publish

        async def consume() -> None:
            while (message := await asyncio.to_thread(broker.receive)) is not None:
                message_id, fields = message
                try:
                    await ahandle_message(graph, message_id, fields, publish_to, tracer_provider=provider)
                except Exception:  # the error is on the CONSUMER span and in the answer stream
                    continue

        try:
            await asyncio.gather(*(consume() for _ in range(concurrency)))
        finally:
            await clients.http.aclose()
            await clients.grpc_channel.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="embedded-async-worker", daemon=True)
    thread.start()
    return [thread]


def run_embedded(
    requests: int = 4,
    progress: Progress | None = None,
    *,
    asynchronous: bool = False,
    concurrency: int = 2,
    latency_ms: float = DEFAULT_LATENCY_MS,
    ttft_ms: float = DEFAULT_TTFT_MS,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> EmbeddedRun:
    """Runs ``requests`` chat requests through API, queue, worker and graph in this process.

    ``progress`` gets one line per step. ``asynchronous`` runs the async graph. ``latency_ms``/``ttft_ms`` are
    the fake models' defaults unless ``OTEL_LLM_DEMO_LATENCY_MS``/``OTEL_LLM_DEMO_TTFT_MS`` are set. Raises
    ValueError for bad arguments and TimeoutError when answers do not all arrive within ``timeout_s``.
    """
    from fastapi.testclient import TestClient
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    from otel_llm.instrumentation.langchain import LangChainInstrumentor

    if requests < 1 or concurrency < 1:
        raise ValueError("requests and concurrency must be at least 1")
    say = progress or (lambda _line: None)
    exporters = {name: InMemorySpanExporter() for name in (SERVICE_API, SERVICE_WORKER, SERVICE_SERVICES)}
    settings = load_settings()
    pricer = pricer_from_file(settings.cost_prices_file) if settings.cost else None
    providers = {name: _tracer_provider(name, exporter, pricer) for name, exporter in exporters.items()}
    experiment = experiment_from_env() or demo_experiment()
    broker = MemoryBroker()
    results: list[EmbeddedResult] = []
    with ExitStack() as cleanup:
        cleanup.callback(lambda: [provider.shutdown() for provider in providers.values()])
        cleanup.enter_context(_env_defaults({LATENCY_ENV: str(latency_ms), TTFT_ENV: str(ttft_ms)}))
        say("starting the gRPC and HTTP services on 127.0.0.1")
        services = cleanup.enter_context(_instrumented_services(providers[SERVICE_SERVICES]))
        instrumentor = LangChainInstrumentor()
        instrumentor.instrument(tracer_provider=providers[SERVICE_WORKER])
        cleanup.callback(instrumentor.uninstrument)
        start_worker = _async_worker if asynchronous else _sync_worker
        say(f"starting the worker ({'async' if asynchronous else 'sync'} graph, {concurrency} at a time)")
        workers = start_worker(broker, services, providers[SERVICE_WORKER], concurrency)
        app = create_app(broker, experiment=experiment, tracer_provider=providers[SERVICE_API])
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=providers[SERVICE_API], exclude_spans=EXCLUDED_ASGI_SPANS
        )
        client = cleanup.enter_context(TestClient(app))
        jobs: list[Job] = []
        for index, session_id in enumerate(sessions_covering_arms(experiment, requests)):
            body = {
                "message": MESSAGES[index % len(MESSAGES)],
                "session_id": session_id,
                "user_id": f"user-{index % 3}",
            }
            response = client.post("/api/v1/chat", json=body)
            response.raise_for_status()
            accepted = response.json()
            jobs.append(
                Job(
                    accepted["job_id"],
                    body["message"],
                    session_id,
                    body["user_id"],
                    accepted["provider"],
                    accepted["model"],
                )
            )
            say(
                f"request {index + 1}/{requests}: job {accepted['job_id'][:8]} -> "
                f"{accepted['provider']} {accepted['model']}"
            )
        for job in jobs:
            entries = _wait_for_answer(broker, job.job_id, timeout_s)
            answer = assemble(job.job_id, entries)
            results.append(
                EmbeddedResult(
                    job.job_id,
                    job.session_id,
                    job.provider,
                    job.model,
                    answer.status,
                    answer.text,
                    answer.tokens,
                    answer.error,
                )
            )
            say(f"job {job.job_id[:8]} {answer.status}: {answer.tokens} tokens streamed")
        broker.close(receivers=concurrency)
        for worker in workers:
            worker.join(timeout_s)
        say("flushing telemetry")
        for provider in providers.values():
            provider.force_flush(FLUSH_TIMEOUT_MS)
    spans = itertools.chain.from_iterable(exporter.get_finished_spans() for exporter in exporters.values())
    return EmbeddedRun(tuple(sorted(spans, key=lambda span: span.start_time or 0)), tuple(results))


def _wait_for_answer(broker: MemoryBroker, job_id: str, timeout_s: float) -> list[dict[str, str]]:
    """The job's answer entries up to the final one; TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    entries, cursor = broker.wait_entries(job_id)
    while not any(is_final(entry) for entry in entries):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"job {job_id} got no complete answer within {timeout_s} s")
        more, cursor = broker.wait_entries(job_id, cursor, block_s=left)
        entries.extend(more)
    return entries
