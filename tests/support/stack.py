"""``StackUnderTest``: the running stack as tests see it: endpoints, LangSmith stand-in, queries."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from otel_llm.stack.run import TOPOLOGIES, Stack
from otel_llm.traces import Trace
from tests.support import queries
from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.support.poll import poll

# Every character the runner lets through (langsmith_api_key), so the header test shows the collector sends it
# verbatim.
TEST_LANGSMITH_API_KEY = "lsv2_test-key!#%&'()*+,-./:;<=>?@[]^_`{|}~"
TEST_LANGSMITH_PROJECT = "otel-llm-tests"
# Short intervals so a test sees its data within seconds (docs/stack.md lists the variables).
FAST_SETTINGS = {
    "OTEL_LLM_COLLECTOR_SPANMETRICS_FLUSH_INTERVAL": "1s",
    "OTEL_LLM_STACK_PROMETHEUS_SCRAPE_INTERVAL": "1s",
    "OTEL_LLM_COLLECTOR_ROLLUP_WAIT": "2s",
}


def start_stack(state_dir: Path, *, langsmith_endpoint: str, langsmith_api_key: str = TEST_LANGSMITH_API_KEY,
                components: tuple[str, ...] | None = None, overrides: dict[str, str] | None = None) -> Stack:
    """A stack on random free ports in ``state_dir``, exporting to LangSmith at ``langsmith_endpoint``.

    An empty ``langsmith_api_key`` switches the LangSmith export off (the collector config's own rule).
    """
    langsmith = {"LANGSMITH_API_KEY": langsmith_api_key, "LANGSMITH_PROJECT": TEST_LANGSMITH_PROJECT,
                 "LANGSMITH_ENDPOINT": langsmith_endpoint}
    kwargs = {"components": components} if components is not None else {}
    stack = Stack.create(state_dir, environ={}, random_ports=True,
                         overrides={**FAST_SETTINGS, **langsmith, **(overrides or {})}, **kwargs)
    try:
        stack.up()
    except BaseException:
        stack.down()
        raise
    return stack


@contextmanager
def gateway_topology(state_dir: Path, overrides: Mapping[str, str]) -> Iterator[Stack]:
    """The gateway topology (two agents, two gateways, Jaeger, Prometheus, Redis) with LangSmith export off,
    running for the ``with`` block."""
    runner = start_stack(state_dir, langsmith_endpoint="http://127.0.0.1:9", langsmith_api_key="",
                         components=TOPOLOGIES["gateway"], overrides=dict(overrides))
    try:
        yield runner
    finally:
        runner.down()


class StackUnderTest:
    """What the ``stack`` fixture yields. Endpoints are plain strings; the query helpers do not poll."""

    def __init__(self, stack: Stack, langsmith_receiver: OtlpHttpReceiver) -> None:
        self.runner = stack
        self.langsmith_receiver = langsmith_receiver
        self.otlp_grpc_endpoint = stack.otlp_grpc_endpoint  # "127.0.0.1:port"
        self.otlp_http_endpoint = stack.otlp_http_endpoint  # "http://127.0.0.1:port"
        self.collector_metrics_url = stack.collector_metrics_url
        self.jaeger_query_url = stack.jaeger_query_url
        self.prometheus_url = stack.prometheus_url
        self.redis_url = stack.redis_url

    def stop_jaeger(self) -> None:
        self.runner.stop("jaeger")

    def start_jaeger(self) -> None:
        self.runner.start("jaeger")

    def kill_collector(self) -> None:
        """``kill -9`` the collector's process group (a crash: nothing flushed), and wait until it is gone."""
        pid = self.runner.pid("collector")
        assert pid is not None, "the collector is not running"
        os.killpg(pid, signal.SIGKILL)
        poll(lambda: self.runner.pid("collector") is None, timeout=30, interval=0.05,
             message="the killed collector gone")

    def start_collector(self) -> None:
        """Start the collector again on its recorded ports (a no-op when it runs); returns once healthy."""
        self.runner.start("collector")

    def find_traces(self, service: str, tags: dict[str, str] | None = None, **kwargs) -> list[Trace]:
        return queries.jaeger_find_traces(self.jaeger_query_url, service, tags, **kwargs)

    def jaeger_answer(self, service: str, tags: dict[str, str] | None = None, **kwargs) -> dict:
        return queries.jaeger_search(self.jaeger_query_url, service, tags, **kwargs)

    def get_trace(self, trace_id: str) -> Trace | None:
        return queries.jaeger_get_trace(self.jaeger_query_url, trace_id)

    def prometheus_query(self, promql: str) -> list[dict]:
        return queries.prometheus_query(self.prometheus_url, promql)
