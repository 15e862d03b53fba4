"""``ReferenceApp``: the reference app's three processes on the test stack, for the end-to-end tests.

Services, worker and API run as subprocesses under ``opentelemetry-instrument`` with environment variables
only (``otel_llm.cli.demo_stack``'s process helpers: OTLP/gRPC to the stack's collector, LangSmith tracing on
in OTel mode as the Eco2 agent runs it). Each app gets its own ``service.instance.id`` (``instance_id``, the
``instance`` label of its metrics in Prometheus). The app stays up for the ``with`` block so a test can send
traffic, read answers, measure the worker and query its metrics; leaving the block stops the processes with
SIGINT (``demo_stack.stop_processes`` says why not SIGTERM), which makes the launcher flush their telemetry.

``expected_spans`` is the span multiset one request's trace must hold, derived from the graph.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

import requests

from otel_llm.cli.demo_stack import (
    API_SERVICE,
    SERVICES_SERVICE,
    WORKER_SERVICE,
    AppProcess,
    start_process,
    stop_processes,
    telemetry_env,
)
from otel_llm.demo.graph import LLM_NODES, NODES
from otel_llm.demo.jobs import JOBS_STREAM
from otel_llm.demo.models import DEFAULT_ANSWER_WORDS
from otel_llm.demo.services import COMPLETIONS_PATH, GRPC_METHOD
from otel_llm.semconv import LANGGRAPH_NODE as LLM_LANGGRAPH_NODE
from otel_llm.semconv import OPERATION_INVOKE_WORKFLOW
from otel_llm.traces import Span, Trace
from tests.support.poll import poll

T = TypeVar("T")
JOB_ID_TAG = "langsmith.metadata.job_id"  # the run config's job_id, on every LangChain span
LANGSMITH_SCOPE = "langsmith"  # the instrumentation scope of the spans langsmith[otel] makes itself
RESOURCE_ENV = "OTEL_RESOURCE_ATTRIBUTES"
INSTANCE_ATTRIBUTE = "service.instance.id"
REQUEST_TIMEOUT_S = 10
ANSWER_TIMEOUT_S = 120
PAGE_SIZE = 4096
# The FastAPI instrumentation's ASGI message spans: one receive per request body, two sends per response
# (start, body).
ASGI_RECEIVE = " http receive"
ASGI_SEND = " http send"

SpanKey = tuple[str, str, str]  # (service, span name, span kind as Jaeger spells it)


def _server(service: str, route: str, *, body: bool) -> Counter[SpanKey]:
    spans = Counter({(service, route, "server"): 1, (service, route + ASGI_SEND, "internal"): 2})
    if body:
        spans[(service, route + ASGI_RECEIVE, "internal")] = 1
    return spans


def expected_spans(model: str, answer_tokens: int = DEFAULT_ANSWER_WORDS) -> Counter[SpanKey]:
    """Every span of one request's trace as (service, name, kind), with its count, derived from the graph.

    API: the POST and its ASGI spans, the PRODUCER span and its XADD. Worker: the CONSUMER span, the graph
    run ``invoke_workflow`` (run name ``chat:<job_id>``), one span per node, the Send edge ``_fan_out``
    (intent), the retriever, per LLM node the LLM span and its provider API call (``POST``), the gRPC and
    weather calls, one XADD per streamed token plus the final one, EXPIRE, XACK. Services: the server span
    (with its ASGI spans) of each call.
    """
    api = _server(API_SERVICE, "POST /api/v1/chat", body=True) + Counter(
        {(API_SERVICE, f"send {JOBS_STREAM}", "producer"): 1, (API_SERVICE, "XADD", "client"): 1}
    )
    worker = Counter(
        {
            (WORKER_SERVICE, f"process {JOBS_STREAM}", "consumer"): 1,
            (WORKER_SERVICE, OPERATION_INVOKE_WORKFLOW, "internal"): 1,
            **{(WORKER_SERVICE, node, "internal"): 1 for node in NODES},
            (WORKER_SERVICE, "_fan_out", "internal"): 1,
            (WORKER_SERVICE, "retrieval KeywordRetriever", "internal"): 1,
            (WORKER_SERVICE, f"chat {model}", "client"): len(LLM_NODES),
            (WORKER_SERVICE, "POST", "client"): len(LLM_NODES),
            (WORKER_SERVICE, GRPC_METHOD, "client"): 1,
            (WORKER_SERVICE, "GET", "client"): 1,
            (WORKER_SERVICE, "XADD", "client"): answer_tokens + 1,
            (WORKER_SERVICE, "EXPIRE", "client"): 1,
            (WORKER_SERVICE, "XACK", "client"): 1,
        }
    )
    services = Counter({(SERVICES_SERVICE, GRPC_METHOD, "server"): 1}) + _server(
        SERVICES_SERVICE, "GET /weather/{city}", body=False
    )
    for _ in LLM_NODES:
        services += _server(SERVICES_SERVICE, f"POST {COMPLETIONS_PATH}", body=True)
    return api + worker + services


# The collector's llm_rollup adds an llm.request span to a trace it held whole; not a span of the app.
COLLECTOR_SCOPE = "github.com/otel-llm/otel-llm/collector/llmrollupprocessor"


def span_multiset(trace: Trace) -> Counter[SpanKey]:
    """The app's spans of a trace as (service, name, kind) with their counts."""
    return Counter((span.service, span.name, span.kind) for span in trace.spans
                   if span.scope != COLLECTOR_SCOPE)


def job_of(trace: Trace) -> str | None:
    """The job a trace ran (the run config's job_id on its LangChain spans)."""
    return next((span.attributes[JOB_ID_TAG] for span in trace.spans if JOB_ID_TAG in span.attributes), None)


def node_of(span: Span) -> str | None:
    """The node otel-llm names on ``span`` (``llm.langgraph.node``; ``Span.node`` also reads LangSmith's)."""
    return span.attributes.get(LLM_LANGGRAPH_NODE)


def url(span: Span) -> str:
    """An HTTP client span's URL (stable or old HTTP semconv), else ''."""
    return str(span.attributes.get("url.full") or span.attributes.get("http.url") or "")


def is_rpc_or_http(span: Span) -> bool:
    """Whether ``span`` is a gRPC call or an HTTP request (stable or old HTTP semconv)."""
    attributes = span.attributes
    return (attributes.get("rpc.system") == "grpc" or "http.request.method" in attributes
            or "http.method" in attributes)


def trace_gaps(jobs: Sequence[Mapping[str, Any]], traces: Mapping[str, Trace]) -> list[str]:
    """How each job's trace (by job_id) differs from ``expected_spans``: no trace, spans missing or extra.

    Empty when every trace holds exactly its expected spans.
    """
    gaps = []
    for job in jobs:
        trace = traces.get(job["job_id"])
        if trace is None:
            gaps.append(f"job {job['job_id']}: no trace")
            continue
        expected, found = expected_spans(job["model"]), span_multiset(trace)
        if found != expected:
            gaps.append(
                f"job {job['job_id']}: missing {dict(expected - found)}, unexpected {dict(found - expected)}"
            )
    return gaps


def wait_for_complete(
    fetch: Callable[[], tuple[T, list[str]]], timeout: float, what: str
) -> tuple[T, list[str]]:
    """Calls ``fetch`` (a snapshot and what it still lacks) until it lacks nothing or ``timeout`` passed; the
    last snapshot and its gaps, so a test can assert on them and show what is missing."""
    last: list[tuple[T, list[str]]] = []

    def complete() -> bool:
        last[:] = [fetch()]
        return not last[0][1]

    with contextlib.suppress(AssertionError):
        poll(complete, timeout=timeout, message=what)
    return last[0] if last else fetch()


class ReferenceApp:
    """The app on ``stack``: ``graph`` is the worker's sync/async graph, ``env`` extra process variables."""

    def __init__(
        self,
        stack: Any,
        log_path: Path,
        *,
        graph: str = "sync",
        concurrency: int = 16,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._stack = stack
        self._graph = graph
        self._concurrency = concurrency
        self._env = dict(env or {})
        self._processes: list[AppProcess] = []
        self.log_path = log_path
        self._log: IO[str] | None = None
        self.api_url = ""
        self.worker_pid = 0
        self.instance_id = uuid.uuid4().hex[:12]

    def _environment(self, service: str) -> dict[str, str]:
        environment = {**telemetry_env(service, self._stack.otlp_grpc_endpoint), **self._env}
        resource = f"{INSTANCE_ATTRIBUTE}={self.instance_id}"
        inherited = environment.get(RESOURCE_ENV)
        environment[RESOURCE_ENV] = f"{inherited},{resource}" if inherited else resource
        return environment

    def __enter__(self) -> ReferenceApp:
        self._log = open(self.log_path, "a")  # noqa: SIM115 - closed in stop()
        try:
            services = start_process(
                SERVICES_SERVICE,
                "otel_llm.demo.services",
                [],
                self._environment(SERVICES_SERVICE),
                self._log,
                True,
            )
            self._processes.append(services)
            worker = start_process(
                WORKER_SERVICE,
                "otel_llm.demo.worker",
                [
                    "--redis-url",
                    self._stack.redis_url,
                    "--graph",
                    self._graph,
                    "--concurrency",
                    str(self._concurrency),
                    "--grpc-target",
                    f"127.0.0.1:{services.first_line['grpc_port']}",
                    "--http-url",
                    f"http://127.0.0.1:{services.first_line['http_port']}",
                ],
                self._environment(WORKER_SERVICE),
                self._log,
                True,
            )
            self._processes.append(worker)
            self.worker_pid = int(worker.first_line["pid"])
            api = start_process(
                API_SERVICE,
                "otel_llm.demo.api",
                ["--port", "0", "--redis-url", self._stack.redis_url],
                self._environment(API_SERVICE),
                self._log,
                True,
            )
            self._processes.append(api)
            self.api_url = f"http://127.0.0.1:{api.first_line['port']}/api/v1/chat"
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGINT every process (they flush their telemetry on the way out)."""
        stop_processes(self._processes)
        self._processes.clear()
        if self._log is not None:
            self._log.close()

    def chat(self, message: str, session_id: str, user_id: str) -> dict[str, Any]:
        """POST one chat request; the accepted job (job_id, provider, model)."""
        response = requests.post(
            self.api_url,
            json={"message": message, "session_id": session_id, "user_id": user_id},
            timeout=REQUEST_TIMEOUT_S,
        )
        response.raise_for_status()
        return response.json()

    def stream_answer(self, job_id: str) -> dict[str, Any]:
        """Reads the job's server-sent events to the end: the final event's data plus the token count."""
        tokens = 0
        with requests.get(
            f"{self.api_url}/{job_id}/stream", stream=True, timeout=ANSWER_TIMEOUT_S
        ) as response:
            response.raise_for_status()
            event = None
            for line in response.iter_lines(decode_unicode=True):
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: "):
                    data = json.loads(line.removeprefix("data: "))
                    if event == "token":
                        tokens += 1
                    elif event in ("done", "error"):
                        return {"status": event, "tokens": tokens, **data}
        return {"status": "truncated", "tokens": tokens}

    def converse(self, message: str, session_id: str, user_id: str) -> dict[str, Any]:
        """One request end to end: POST, then the streamed answer."""
        accepted = self.chat(message, session_id, user_id)
        return {**accepted, **self.stream_answer(accepted["job_id"])}

    def load(self, bodies: list[tuple[str, str, str]], concurrency: int) -> list[dict[str, Any]]:
        """``converse`` for each (message, session, user), ``concurrency`` at a time; results in order."""
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            return list(pool.map(lambda body: self.converse(*body), bodies))

    def worker_rss_bytes(self) -> int:
        """The worker's resident set size from /proc (the launcher execs Python: same pid)."""
        with open(f"/proc/{self.worker_pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError(f"no VmRSS for pid {self.worker_pid}")
