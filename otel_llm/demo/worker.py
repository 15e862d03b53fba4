"""The reference app's worker: consumes chat jobs from a Redis Stream, runs the graph, streams answers back.

Each job runs inside a CONSUMER span (``otel_llm.propagation.consumer_span``) whose parent is the API's
PRODUCER span, with the API's baggage (session, experiment arm) current; the graph runs with the Eco2 agent's
run config (``graph.run_config``: ``chat:<job_id>``, ``intent:*`` tag, job/user metadata, session as
thread_id) and LangGraph's ``messages`` stream mode, and every token of the ``answer`` node is XADDed to
``chat:answer:<job_id>`` as it comes, then a done (or error) entry; the job is acknowledged (XACK) at the end,
inside the CONSUMER span.

The queue polling (XREADGROUP with a block timeout) and the consumer group setup run with instrumentation
suppressed: they belong to no request, and would otherwise make one root span per poll.

``--graph sync`` runs jobs on a thread pool (``--concurrency`` threads), ``--graph async`` as asyncio tasks
(at most ``--concurrency`` at once). When the consumer group exists it prints one JSON line (``{"pid": ...,
"consumer": ..., "graph": ...}``). SIGTERM/SIGINT stop polling, finish the jobs in flight and exit normally,
so the launcher's exit handler flushes the telemetry. Run under ``opentelemetry-instrument``::

    OTEL_SERVICE_NAME=chat-worker opentelemetry-instrument python -m otel_llm.demo.worker \\
        --redis-url redis://127.0.0.1:6379/0 --grpc-target 127.0.0.1:50051 --http-url http://127.0.0.1:8081
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import suppress_instrumentation

from otel_llm.demo.graph import classify_intent, run_config
from otel_llm.demo.jobs import (
    ANSWER_FIELD,
    CONSUMER_GROUP,
    DONE_FIELD,
    ERROR_FIELD,
    JOBS_STREAM,
    MESSAGING_SYSTEM,
    TOKEN_FIELD,
    Job,
    answer_stream,
    decode_fields,
)
from otel_llm.metrics.streaming import publishing_stream
from otel_llm.propagation import consumer_span

_logger = logging.getLogger(__name__)

ANSWER_NODE = "answer"
STREAM_MODES = ["messages", "values"]
ANSWER_TTL_S = 600  # answer streams expire this long after their last entry
MAX_ANSWER_ENTRIES = 10000
POLL_BLOCK_MS = 500
GRAPH_MODES = ("sync", "async")

Publish = Callable[[Mapping[str, str]], None]
AsyncPublish = Callable[[Mapping[str, str]], Awaitable[None]]
AnyPublish = Publish | AsyncPublish


def graph_input(job: Job) -> dict[str, Any]:
    return {"message": job.message, "provider": job.provider, "model": job.model}


def job_config(job: Job) -> dict[str, Any]:
    """The Eco2 agent's run config for the job (intent tag by the same keyword rule as the intent node)."""
    return run_config(
        job.job_id, session_id=job.session_id, user_id=job.user_id, intent=classify_intent(job.message)
    )


def _answer_token(mode: str, payload: Any) -> str | None:
    """The text of a streamed ``answer``-node chunk, else None."""
    if mode != "messages":
        return None
    chunk, metadata = payload
    if metadata.get("langgraph_node") != ANSWER_NODE:
        return None
    content = chunk.content
    return content if isinstance(content, str) and content else None


# One implementation of a job, a coroutine: the async entry points await it, the sync ones run it to its end
# on the calling thread (with a sync graph and sync callbacks nothing in it ever suspends).
async def _run_job(graph: Any, job: Job, publish: AnyPublish, asynchronous: bool) -> str:
    final: dict[str, Any] = {}
    with publishing_stream(publish, provider=job.provider, model=job.model, node=ANSWER_NODE) as emit:
        async for mode, payload in _graph_chunks(graph, job, asynchronous):
            if mode == "values":
                final = payload
            elif (token := _answer_token(mode, payload)) is not None:
                await _settled(emit({TOKEN_FIELD: token}))
    answer = str(final.get("answer", ""))
    await _settled(publish({DONE_FIELD: "1", ANSWER_FIELD: answer}))
    return answer


async def _handle_message(
    graph: Any,
    message_id: str,
    fields: Mapping[Any, Any],
    publish_to: Callable[[str], AnyPublish],
    acknowledge: Callable[[], Any] | None,
    tracer_provider: trace.TracerProvider | None,
    asynchronous: bool,
) -> str:
    with _job_span(fields, message_id, tracer_provider):
        try:
            job = Job.from_fields(fields)
            publish = publish_to(job.job_id)
            try:
                return await _run_job(graph, job, publish, asynchronous)
            except Exception as error:
                await _settled(publish(_error_entry(error)))
                raise
        finally:
            if acknowledge is not None:
                await _settled(acknowledge())


def _graph_chunks(graph: Any, job: Job, asynchronous: bool) -> AsyncIterator[tuple[str, Any]]:
    """The graph's ``(mode, payload)`` chunks for ``job``: from ``astream``, or ``stream`` as they come."""
    if asynchronous:
        return graph.astream(graph_input(job), job_config(job), stream_mode=STREAM_MODES)
    return _as_async(graph.stream(graph_input(job), job_config(job), stream_mode=STREAM_MODES))


async def _as_async(items: Iterable[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


async def _settled(result: Any) -> Any:
    """``result``, awaited when it is awaitable: sync and async callbacks alike."""
    return await result if inspect.isawaitable(result) else result


def _to_end(job: Coroutine[Any, Any, str]) -> str:
    """Runs ``job`` on this thread for a sync entry point: its result, or its exception raised."""
    try:
        job.send(None)
    except StopIteration as done:
        return done.value
    job.close()
    raise RuntimeError("a sync job waited for something asynchronous: give it sync callbacks")


def _job_span(
    fields: Mapping[Any, Any], message_id: str, tracer_provider: trace.TracerProvider | None
) -> AbstractContextManager[trace.Span]:
    """The CONSUMER span of a job message, in the context the API put into it."""
    return consumer_span(
        fields,
        JOBS_STREAM,
        system=MESSAGING_SYSTEM,
        message_id=message_id,
        consumer_group=CONSUMER_GROUP,
        tracer_provider=tracer_provider,
    )


def _error_entry(error: BaseException) -> dict[str, str]:
    return {ERROR_FIELD: f"{type(error).__name__}: {error}"}


def run_job(graph: Any, job: Job, publish: Publish) -> str:
    """Runs the sync graph for ``job``: publishes each token, then the done entry; gives the answer."""
    return _to_end(_run_job(graph, job, publish, asynchronous=False))


async def arun_job(graph: Any, job: Job, publish: AsyncPublish) -> str:
    """:func:`run_job` for the async graph."""
    return await _run_job(graph, job, publish, asynchronous=True)


def handle_message(
    graph: Any,
    message_id: str,
    fields: Mapping[Any, Any],
    publish_to: Callable[[str], AnyPublish],
    *,
    acknowledge: Callable[[], None] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> str:
    """Processes one job message in its CONSUMER span: run the graph, publish, acknowledge; re-raises.

    Runs on the calling thread: a publish function may be ``async def`` only if it never waits (a sync Redis
    client behind it), else RuntimeError."""
    return _to_end(
        _handle_message(
            graph, message_id, fields, publish_to, acknowledge, tracer_provider, asynchronous=False
        )
    )


async def ahandle_message(
    graph: Any,
    message_id: str,
    fields: Mapping[Any, Any],
    publish_to: Callable[[str], AsyncPublish],
    *,
    acknowledge: Callable[[], Awaitable[None]] | None = None,
    tracer_provider: trace.TracerProvider | None = None,
) -> str:
    """:func:`handle_message` for the async graph."""
    return await _handle_message(
        graph, message_id, fields, publish_to, acknowledge, tracer_provider, asynchronous=True
    )


# --- the Redis process -------------------------------------------------------------------------------------
def ensure_consumer_group(redis_url: str) -> None:
    """Creates the consumer group (and the stream) unless it exists; jobs queued before it are kept."""
    import redis

    with suppress_instrumentation(), redis.Redis.from_url(redis_url) as client:
        try:
            client.xgroup_create(JOBS_STREAM, CONSUMER_GROUP, id="0", mkstream=True)
        except redis.ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise


def _redis_publisher(client: Any, job_id: str) -> AsyncPublish:
    """Publishes to the job's answer stream through a ``redis.Redis`` or a ``redis.asyncio.Redis`` client."""
    stream = answer_stream(job_id)

    async def publish(entry: Mapping[str, str]) -> None:
        await _settled(client.xadd(stream, dict(entry), maxlen=MAX_ANSWER_ENTRIES, approximate=True))
        if TOKEN_FIELD not in entry:
            await _settled(client.expire(stream, ANSWER_TTL_S))

    return publish


def _messages(response: Any) -> list[tuple[str, dict[str, str]]]:
    return [
        (decode_fields({"id": message_id})["id"], fields)
        for _stream, messages in response or ()
        for message_id, fields in messages
    ]


def run_sync_worker(
    redis_url: str, graph: Any, concurrency: int, consumer: str, stop: threading.Event
) -> None:
    """Polls the jobs stream and runs each job on a thread pool until ``stop`` is set; then drains."""
    import redis

    client = redis.Redis.from_url(redis_url)
    slots = threading.BoundedSemaphore(concurrency)

    def process(message_id: str, fields: dict[str, str]) -> None:
        try:
            handle_message(
                graph,
                message_id,
                fields,
                lambda job_id: _redis_publisher(client, job_id),
                acknowledge=lambda: client.xack(JOBS_STREAM, CONSUMER_GROUP, message_id),
            )
        except Exception:
            _logger.exception("job %s failed", message_id)
        finally:
            slots.release()

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="job") as pool:
        while not stop.is_set():
            if not slots.acquire(timeout=POLL_BLOCK_MS / 1000):
                continue
            with suppress_instrumentation():
                response = client.xreadgroup(
                    CONSUMER_GROUP, consumer, {JOBS_STREAM: ">"}, count=1, block=POLL_BLOCK_MS
                )
            messages = _messages(response)
            if not messages:
                slots.release()
            for message_id, fields in messages:
                pool.submit(process, message_id, fields)


async def run_async_worker(
    redis_url: str, graph: Any, concurrency: int, consumer: str, stop: asyncio.Event
) -> None:
    """Polls the jobs stream and runs each job as a task (at most ``concurrency``) until ``stop``; drains."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_url)
    slots = asyncio.BoundedSemaphore(concurrency)
    tasks: set[asyncio.Task[None]] = set()

    async def acknowledge(message_id: str) -> None:
        await client.xack(JOBS_STREAM, CONSUMER_GROUP, message_id)

    async def process(message_id: str, fields: dict[str, str]) -> None:
        try:
            await ahandle_message(
                graph,
                message_id,
                fields,
                lambda job_id: _redis_publisher(client, job_id),
                acknowledge=lambda: acknowledge(message_id),
            )
        except Exception:
            _logger.exception("job %s failed", message_id)
        finally:
            slots.release()

    while not stop.is_set():
        await slots.acquire()
        with suppress_instrumentation():
            response = await client.xreadgroup(
                CONSUMER_GROUP, consumer, {JOBS_STREAM: ">"}, count=1, block=POLL_BLOCK_MS
            )
        messages = _messages(response)
        if not messages:
            slots.release()
        for message_id, fields in messages:
            task = asyncio.create_task(process(message_id, fields))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks, return_exceptions=True)
    await client.aclose()


def _service_clients(grpc_target: str, http_url: str, asynchronous: bool) -> Any:
    import grpc
    import httpx

    from otel_llm.demo.graph import ServiceClients

    if asynchronous:
        return ServiceClients(grpc.aio.insecure_channel(grpc_target), httpx.AsyncClient(base_url=http_url))
    return ServiceClients(grpc.insecure_channel(grpc_target), httpx.Client(base_url=http_url))


def main(argv: list[str] | None = None) -> int:
    from otel_llm.demo.api import DEFAULT_REDIS_URL, REDIS_URL_ENV
    from otel_llm.demo.graph import build_graph

    parser = argparse.ArgumentParser(
        prog="python -m otel_llm.demo.worker", description="The reference worker."
    )
    parser.add_argument("--redis-url", default=os.environ.get(REDIS_URL_ENV, DEFAULT_REDIS_URL))
    parser.add_argument("--grpc-target", required=True, help="host:port of the character gRPC service")
    parser.add_argument("--http-url", required=True, help="base URL of the weather HTTP service")
    parser.add_argument("--graph", choices=GRAPH_MODES, default="sync")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--consumer", default=f"{socket.gethostname()}-{os.getpid()}")
    args = parser.parse_args(argv)
    if args.concurrency < 1:
        parser.error("--concurrency must be at least 1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    ensure_consumer_group(args.redis_url)
    ready = json.dumps({"pid": os.getpid(), "consumer": args.consumer, "graph": args.graph})
    asynchronous = args.graph == "async"
    if not asynchronous:
        graph = build_graph(_service_clients(args.grpc_target, args.http_url, False))
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        print(ready, flush=True)
        run_sync_worker(args.redis_url, graph, args.concurrency, args.consumer, stop)
        return 0

    async def serve() -> None:
        graph = build_graph(_service_clients(args.grpc_target, args.http_url, True), asynchronous=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        print(ready, flush=True)
        await run_async_worker(args.redis_url, graph, args.concurrency, args.consumer, stop)

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    sys.exit(main())
