"""Session fixtures for the integration and end-to-end tests: the real stack on random loopback ports.

Nothing starts until a test asks for a fixture, so ``pytest tests/unit`` never starts a server.

Fixtures (stable API, used by the integration, e2e and CLI tests of every task):

``stack_binaries`` (session)
    ``otel_llm.stack.build.StackBinaries``: built or reused via ``build_all()`` (seconds when cached).
``langsmith_receiver`` (session)
    ``tests.support.otlp_receiver.OtlpHttpReceiver``: the local stand-in for LangSmith's OTel endpoint.
    ``.requests`` is a list of ``ReceivedRequest(path, headers, request)`` (lower-cased headers, ``request``
    the decoded ``ExportTraceServiceRequest``); ``.spans()`` flattens them; ``.base_url`` is the
    LANGSMITH_ENDPOINT the collector posts to.
``stack`` (session)
    ``tests.support.stack.StackUnderTest``: collector, Jaeger (badger), Prometheus and Redis started with
    ``otel_llm.stack.run`` in a temporary state dir, stopped at session end (also when tests fail).
    Attributes: ``otlp_grpc_endpoint`` ("127.0.0.1:port"), ``otlp_http_endpoint`` ("http://127.0.0.1:port"),
    ``collector_metrics_url``, ``jaeger_query_url``, ``prometheus_url``, ``redis_url``,
    ``langsmith_receiver``, ``runner`` (the ``otel_llm.stack.run.Stack``). Methods: ``stop_jaeger()``,
    ``start_jaeger()``, ``find_traces(service, tags)`` and ``get_trace(trace_id)`` (``otel_llm.traces.Trace``
    objects), ``jaeger_answer(service, tags)`` (Jaeger's JSON as it came), ``prometheus_query(promql)``.
    The collector exports to LangSmith with key ``TEST_LANGSMITH_API_KEY`` and project
    ``TEST_LANGSMITH_PROJECT`` (tests.support.stack), flushes span metrics every 1 s; Prometheus scrapes every
    1 s.

Waiting: use ``tests.support.poll.poll(probe, timeout=...)``, never a sleep.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.support.stack import StackUnderTest, start_stack


@pytest.fixture(scope="session")
def stack_binaries():
    from otel_llm.stack.build import build_all

    return build_all()


@pytest.fixture(scope="session")
def langsmith_receiver() -> Iterator[OtlpHttpReceiver]:
    receiver = OtlpHttpReceiver()
    yield receiver
    receiver.close()


@pytest.fixture(scope="module")
def own_stack(stack_binaries, tmp_path_factory) -> Iterator[StackUnderTest]:
    """A collector and Jaeger of the module's own (LangSmith export off), for tests that load or crash them:
    their traffic and restarts never reach the session stack's other tests."""
    runner = start_stack(tmp_path_factory.mktemp("own-stack"), langsmith_endpoint="http://127.0.0.1:9",
                         langsmith_api_key="", components=("collector", "jaeger"))
    try:
        yield StackUnderTest(runner, None)
    finally:
        runner.down()


@pytest.fixture(scope="session")
def stack(stack_binaries, langsmith_receiver, tmp_path_factory) -> Iterator[StackUnderTest]:
    runner = start_stack(tmp_path_factory.mktemp("stack"), langsmith_endpoint=langsmith_receiver.base_url)
    try:
        yield StackUnderTest(runner, langsmith_receiver)
    finally:
        runner.down()
