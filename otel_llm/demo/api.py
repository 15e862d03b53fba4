"""The reference app's API: takes chat requests, enqueues them on a Redis Stream, serves the streamed answers.

- ``POST /api/v1/chat`` ``{message, session_id, user_id}`` -> ``{job_id, provider, model}``: assigns the
  request to an experiment arm (a provider/model pair; ``OTEL_LLM_EXPERIMENT_*``, else the demo's 50/50 split
  over its two providers), puts ``session.id`` and the arm into baggage, and enqueues the job inside a
  PRODUCER span whose context and baggage travel in the message fields (``otel_llm.propagation``).
- ``GET /api/v1/chat/{job_id}`` -> ``{job_id, status, text, tokens, error}`` (status
  pending/streaming/done/error): the answer so far in one piece, what a client that lost its stream reads (a
  ``snapshot`` recovery).
- ``GET /api/v1/chat/{job_id}/stream``: the answer as server-sent events (``token`` events, then
  ``done``/``error``), each with an ``id`` (its position in the answer stream). A client reconnecting with
  the standard ``Last-Event-ID`` header gets the events after that id (a ``catch_up`` recovery).

The app sets up no tracing: the SERVER span comes from the FastAPI instrumentation of
``opentelemetry-instrument`` (or of embedded mode), the Redis client spans from the redis instrumentation; its
telemetry code is the queue propagation helper, the experiment assignment and the recovery count
(``chat_stream_recovery``, type ``snapshot`` or ``catch_up``, status ``success`` or ``error``, labelled with
the provider, model and experiment arm this API assigned the job; ``unknown`` for jobs another API instance
accepted).

Run: ``python -m otel_llm.demo.api --port 8080 --redis-url redis://127.0.0.1:6379/0`` (port 0 picks a free one
and prints ``{"port": ...}``); ``OTEL_LLM_DEMO_REDIS_URL`` is the default Redis URL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict
from typing import Any, Protocol

from fastapi import FastAPI, Header
from fastapi.responses import StreamingResponse
from opentelemetry import trace
from opentelemetry.semconv._incubating.attributes.messaging_attributes import MESSAGING_MESSAGE_ID
from pydantic import BaseModel, Field

from otel_llm import semconv
from otel_llm.demo.jobs import (
    DONE_FIELD,
    ERROR_FIELD,
    JOBS_STREAM,
    MESSAGING_SYSTEM,
    STREAM_START,
    TOKEN_FIELD,
    Job,
    answer_stream,
    assemble,
    decode_fields,
    is_final,
)
from otel_llm.demo.models import PROVIDER_MODELS
from otel_llm.experiment import Arm, Experiment, experiment_arm, experiment_from_env
from otel_llm.metrics.streaming import (
    RECOVERY_CATCH_UP,
    RECOVERY_SNAPSHOT,
    STATUS_ERROR,
    STATUS_SUCCESS,
    StreamMetrics,
    default_stream_metrics,
    stream_labels,
)
from otel_llm.propagation import baggage_entries, producer_span

REDIS_URL_ENV = "OTEL_LLM_DEMO_REDIS_URL"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEMO_EXPERIMENT_ID = "demo-providers"
MAX_QUEUED_JOBS = 10000  # the jobs stream is trimmed to about this many entries
ANSWER_READ_COUNT = 10000
STREAM_POLL_S = 1.0
STREAM_DEADLINE_S = 120.0
MAX_MESSAGE_LENGTH = 4000
MAX_ID_LENGTH = 128
MAX_REMEMBERED_JOBS = 10000  # stream labels of the jobs this API accepted, for its recovery counts


class ChatRequest(BaseModel):
    message: str = Field(min_length=1, max_length=MAX_MESSAGE_LENGTH)
    session_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)
    user_id: str = Field(min_length=1, max_length=MAX_ID_LENGTH)


class ChatAccepted(BaseModel):
    job_id: str
    provider: str
    model: str


class ChatBackend(Protocol):
    """Where jobs go and answers come from: Redis (:class:`RedisBackend`) or ``jobs.MemoryBroker``."""

    async def enqueue(self, fields: Mapping[str, str]) -> str: ...

    async def read(
        self, job_id: str, cursor: str = STREAM_START, block_s: float = 0.0
    ) -> tuple[list[dict[str, str]], str]: ...


class RedisBackend:
    """Jobs on the ``chat:jobs`` stream, answers from ``chat:answer:<job_id>``; an asyncio Redis client."""

    def __init__(self, client: Any) -> None:
        self._client = client

    async def enqueue(self, fields: Mapping[str, str]) -> str:
        message_id = await self._client.xadd(
            JOBS_STREAM, dict(fields), maxlen=MAX_QUEUED_JOBS, approximate=True
        )
        return decode_fields({"id": message_id})["id"]

    async def read(
        self, job_id: str, cursor: str = STREAM_START, block_s: float = 0.0
    ) -> tuple[list[dict[str, str]], str]:
        block_ms = int(block_s * 1000) if block_s > 0 else None
        response = await self._client.xread(
            {answer_stream(job_id): cursor}, count=ANSWER_READ_COUNT, block=block_ms
        )
        entries: list[dict[str, str]] = []
        for _stream, messages in response or ():
            for message_id, fields in messages:
                entries.append(decode_fields(fields))
                cursor = decode_fields({"id": message_id})["id"]
        return entries, cursor


def demo_experiment() -> Experiment:
    """The demo's default experiment: an even split over the demo providers."""
    return Experiment(
        DEMO_EXPERIMENT_ID, [Arm(spec.provider, spec.model) for spec in PROVIDER_MODELS.values()]
    )


def _sse(event: str, data: Mapping[str, Any], event_id: int | None = None) -> str:
    id_line = f"id: {event_id}\n" if event_id is not None else ""
    return f"event: {event}\n{id_line}data: {json.dumps(data)}\n\n"


def _event_position(last_event_id: str) -> int | None:
    """The position a ``Last-Event-ID`` names (a non-negative integer this API sent), else None."""
    text = last_event_id.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 9 else None


class _RememberedLabels:
    """Stream labels of the last ``MAX_REMEMBERED_JOBS`` jobs accepted, oldest forgotten first.

    Used on the event loop's thread only (the endpoints are coroutines), so no lock.
    """

    def __init__(self, capacity: int = MAX_REMEMBERED_JOBS) -> None:
        self._capacity = capacity
        self._labels: dict[str, dict[str, str]] = {}

    def remember(self, job_id: str, labels: dict[str, str]) -> None:
        self._labels[job_id] = labels
        if len(self._labels) > self._capacity:
            del self._labels[next(iter(self._labels))]

    def get(self, job_id: str) -> dict[str, str] | None:
        return self._labels.get(job_id)


def create_app(
    backend: ChatBackend,
    *,
    experiment: Experiment | None = None,
    tracer_provider: trace.TracerProvider | None = None,
    stream_metrics: StreamMetrics | None = None,
) -> FastAPI:
    """The API over ``backend``; ``experiment`` defaults to ``OTEL_LLM_EXPERIMENT_*``, else the demo split.

    ``tracer_provider`` is for the PRODUCER span (default: the global one), ``stream_metrics`` for the
    recovery counts (default: instruments on the global meter provider).
    """
    chosen = experiment or experiment_from_env() or demo_experiment()
    fallback_arm = chosen.arms[0]
    metrics = stream_metrics or default_stream_metrics()
    accepted_labels = _RememberedLabels()
    app = FastAPI(title="otel-llm reference chat API")

    @app.post("/api/v1/chat", response_model=ChatAccepted)
    async def chat(request: ChatRequest) -> ChatAccepted:
        job_id = uuid.uuid4().hex
        with (
            baggage_entries({semconv.SESSION_ID: request.session_id}),
            experiment_arm(chosen, request.session_id) as arm,
        ):
            arm = arm or fallback_arm
            fields = Job(
                job_id, request.message, request.session_id, request.user_id, arm.provider, arm.model
            ).fields()
            with producer_span(
                fields, JOBS_STREAM, system=MESSAGING_SYSTEM, tracer_provider=tracer_provider
            ) as span:
                span.set_attribute(MESSAGING_MESSAGE_ID, await backend.enqueue(fields))
            # The worker's stream labels (node "answer", the default), experiment from the baggage set above.
            accepted_labels.remember(job_id, stream_labels(arm.provider, arm.model))
        return ChatAccepted(job_id=job_id, provider=arm.provider, model=arm.model)

    def recovered(recovery_type: str, status: str, job_id: str) -> None:
        metrics.record_recovery(recovery_type, status, accepted_labels.get(job_id))

    @app.get("/api/v1/chat/{job_id}")
    async def answer(job_id: str) -> dict[str, Any]:
        try:
            entries, _ = await backend.read(job_id)
        except Exception:
            recovered(RECOVERY_SNAPSHOT, STATUS_ERROR, job_id)
            raise
        recovered(RECOVERY_SNAPSHOT, STATUS_SUCCESS, job_id)
        return asdict(assemble(job_id, entries))

    @app.get("/api/v1/chat/{job_id}/stream")
    async def stream(job_id: str, last_event_id: str | None = Header(default=None)) -> StreamingResponse:
        resume_after = None if last_event_id is None else _event_position(last_event_id)

        async def events() -> AsyncIterator[str]:
            if last_event_id is not None and resume_after is None:
                recovered(RECOVERY_CATCH_UP, STATUS_ERROR, job_id)
                yield _sse(ERROR_FIELD, {ERROR_FIELD: f"Last-Event-ID {last_event_id!r} is not an event id"})
                return
            cursor, deadline = STREAM_START, time.monotonic() + STREAM_DEADLINE_S
            position = 0  # entries of the answer stream read so far: the id of the last one
            catching_up = resume_after is not None  # until the first read: the recovery's outcome
            while time.monotonic() < deadline:
                try:
                    entries, cursor = await backend.read(job_id, cursor, block_s=STREAM_POLL_S)
                except Exception:
                    if catching_up:
                        recovered(RECOVERY_CATCH_UP, STATUS_ERROR, job_id)
                    raise
                if catching_up:
                    recovered(RECOVERY_CATCH_UP, STATUS_SUCCESS, job_id)
                    catching_up = False
                for entry in entries:
                    position += 1
                    if resume_after is not None and position <= resume_after:
                        continue
                    if is_final(entry):
                        yield _sse(ERROR_FIELD if ERROR_FIELD in entry else DONE_FIELD, entry, position)
                        return
                    yield _sse(TOKEN_FIELD, entry, position)
            yield _sse(ERROR_FIELD, {ERROR_FIELD: f"no answer within {STREAM_DEADLINE_S} s"})

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


def main(argv: list[str] | None = None) -> int:
    import redis.asyncio
    import uvicorn

    from otel_llm.demo.services import bind_loopback

    parser = argparse.ArgumentParser(
        prog="python -m otel_llm.demo.api", description="The reference chat API."
    )
    parser.add_argument("--port", type=int, default=8080, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--redis-url", default=os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL))
    args = parser.parse_args(argv)
    app = create_app(RedisBackend(redis.asyncio.Redis.from_url(args.redis_url)))
    sock = bind_loopback(args.port)
    print(json.dumps({"port": sock.getsockname()[1]}), flush=True)
    uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
