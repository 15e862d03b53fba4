"""The reference app under load: 200 requests, 16 at a time, on the sync and on the async graph.

The app runs with LangSmith tracing on in OTel mode, as in test_reference_app.py. Every request's trace must
arrive whole: exactly the spans the graph implies (``expected_spans``: none lost, none left unended, none
doubled, none from langsmith's own instrumentation), one root, no orphans, the consumer under the producer,
service calls under their nodes, each LLM call's provider API request under its LLM span. Every worker trace
in the load's time window is one of those (no stray root). Afterwards the instrumentation holds no run
(``otel_llm.langchain.open_runs`` back to 0, none evicted), the roll-up stage no trace
(``otel_llm.rollup.buffered_traces`` back to 0), read from Prometheus, and the worker's memory is back to its
baseline.

Memory: the worker's RSS (/proc/<pid>/status VmRSS) after a warm-up as long as the load at the same
concurrency (the first round grows the allocator's arenas by 5-10 MiB, later rounds move within about 2.5
MiB), against its RSS once the load is answered and the telemetry pipeline has drained (polled until two
readings a second apart agree within 1 MiB). Tolerance: MEMORY_TOLERANCE_BYTES, justified in
docs/reference-app.md.
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass

import pytest

from otel_llm import semconv
from otel_llm.cli.demo_stack import API_SERVICE, SERVICES_SERVICE, WORKER_SERVICE
from otel_llm.demo.embedded import MESSAGES
from otel_llm.demo.graph import LLM_NODES
from otel_llm.demo.services import COMPLETIONS_PATH
from otel_llm.instrumentation.langchain import METRIC_EVICTED_RUNS, METRIC_OPEN_RUNS
from otel_llm.metrics.health import ROLLUP_METRICS
from otel_llm.traces import Trace
from tests.e2e.reference_app import (
    LANGSMITH_SCOPE,
    ReferenceApp,
    is_rpc_or_http,
    job_of,
    node_of,
    trace_gaps,
    wait_for_complete,
)
from tests.support.poll import poll

pytestmark = pytest.mark.e2e

LOAD_REQUESTS = 200
WARMUP_REQUESTS = LOAD_REQUESTS
CONCURRENCY = 16
MIB = 1024 * 1024
MEMORY_TOLERANCE_BYTES = 8 * MIB
RSS_STABLE_BYTES = 1 * MIB
SETTLE_TIMEOUT_S = 30
TRACES_TIMEOUT_S = 180
METRICS_TIMEOUT_S = 60
LOAD_ENV = {"OTEL_LLM_DEMO_LATENCY_MS": "10", "OTEL_LLM_DEMO_TTFT_MS": "3"}
# A Prometheus sample this long after the load reflects a metric export made after it: the app exports every
# 2 s (demo_stack.telemetry_env), Prometheus scrapes every 1 s (tests.support.stack), plus margin.
FRESH_AFTER_S = 4.0


def prometheus_name(metric: str, counter: bool = False) -> str:
    """The collector's Prometheus name of an otel-llm metric (dots escaped, ``_total`` on counters)."""
    name = metric.replace(".", "_")
    return f"{name}_total" if counter else name


OPEN_RUNS = prometheus_name(METRIC_OPEN_RUNS)
EVICTED_RUNS = prometheus_name(METRIC_EVICTED_RUNS, counter=True)
BUFFERED_TRACES = prometheus_name(ROLLUP_METRICS["buffered_traces"][0])


@dataclass(frozen=True)
class WorkerState:
    """The worker's own telemetry health in Prometheus after the load (None: no series)."""

    open_runs: float | None
    evicted_runs: float | None
    buffered_traces: float | None
    peak_open_runs: float | None  # the most runs held at once during the load
    sampled_at: float  # the oldest of the samples (Unix seconds)

    @property
    def drained(self) -> bool:
        return self.open_runs == 0 and self.buffered_traces == 0


def read_worker_state(stack, instance_id: str, started_s: float) -> WorkerState:
    selector = f'{{job="{WORKER_SERVICE}", instance="{instance_id}"}}'

    def value(promql: str) -> float | None:
        result = stack.prometheus_query(promql)
        return float(result[0]["value"][1]) if result else None

    window_s = math.ceil(time.time() - started_s) + 1
    sampled = [value(f"timestamp({name}{selector})") for name in (OPEN_RUNS, BUFFERED_TRACES)]
    return WorkerState(
        open_runs=value(OPEN_RUNS + selector),
        evicted_runs=value(EVICTED_RUNS + selector),
        buffered_traces=value(BUFFERED_TRACES + selector),
        peak_open_runs=value(f"max_over_time({OPEN_RUNS}{selector}[{window_s}s])"),
        sampled_at=min((at for at in sampled if at is not None), default=0.0),
    )


def settled_rss(app: ReferenceApp) -> int:
    """The worker's RSS once it stops moving: two readings a second apart within RSS_STABLE_BYTES."""
    readings: list[int] = []

    def stable():
        readings.append(app.worker_rss_bytes())
        return (
            readings[-1]
            if len(readings) > 1 and abs(readings[-1] - readings[-2]) <= RSS_STABLE_BYTES
            else None
        )

    return poll(stable, timeout=SETTLE_TIMEOUT_S, interval=1.0, message="the worker's RSS to settle")


def bodies(count: int, tag: str) -> list[tuple[str, str, str]]:
    return [
        (MESSAGES[index % len(MESSAGES)], f"{tag}-session-{index}", f"{tag}-user") for index in range(count)
    ]


@dataclass(frozen=True)
class LoadRun:
    results: list[dict]
    traces: list[Trace]  # every chat-worker trace with a span starting in the load's window
    state: WorkerState
    baseline: int
    after: int


@pytest.fixture(scope="module", params=["sync", "async"])
def load_run(request, stack, tmp_path_factory):
    """A warm-up, then LOAD_REQUESTS requests CONCURRENCY at a time on one graph; worker state, traces."""
    tag = f"load-{request.param}-{uuid.uuid4().hex[:6]}"
    log_path = tmp_path_factory.mktemp("app") / "reference-app.log"
    with ReferenceApp(stack, log_path, graph=request.param, concurrency=CONCURRENCY, env=LOAD_ENV) as app:
        warmup = app.load(bodies(WARMUP_REQUESTS, f"{tag}-warmup"), CONCURRENCY)
        baseline = settled_rss(app)
        started_s = time.time()
        results = app.load(bodies(LOAD_REQUESTS, tag), CONCURRENCY)
        ended_s = time.time()

        def state():
            current = read_worker_state(stack, app.instance_id, started_s)
            return current if current.drained and current.sampled_at >= ended_s + FRESH_AFTER_S else None

        try:
            worker_state = poll(state, timeout=METRICS_TIMEOUT_S, message="the worker's drained state")
        except AssertionError:  # not drained: the tests say what is left
            worker_state = read_worker_state(stack, app.instance_id, started_s)
        after = settled_rss(app)
        window_end_s = time.time()
    assert all(job["status"] == "done" for job in warmup + results), log_path.read_text()[-3000:]

    def fetch():
        found = stack.find_traces(
            WORKER_SERVICE,
            limit=LOAD_REQUESTS * 2,
            start_us=int(started_s * 1e6),
            end_us=int(window_end_s * 1e6),
        )
        traces = found
        gaps = trace_gaps(results, {job_of(trace): trace for trace in traces})
        if len(traces) != LOAD_REQUESTS:
            gaps.append(f"{len(traces)} worker traces in the window")
        return traces, gaps

    traces, _ = wait_for_complete(fetch, TRACES_TIMEOUT_S, f"{LOAD_REQUESTS} whole traces in Jaeger")
    print(
        f"\n{request.param}: {LOAD_REQUESTS} requests in {ended_s - started_s:.1f} s; worker RSS "
        f"{baseline / MIB:.1f} MiB after warm-up, {after / MIB:.1f} MiB after the load "
        f"({(after - baseline) / MIB:+.1f} MiB); {worker_state}"
    )
    return LoadRun(results, traces, worker_state, baseline, after)


class TestLoad:
    def test_every_request_is_answered(self, load_run):
        """All requests got their whole streamed answer, over both providers."""
        results = load_run.results
        assert len(results) == LOAD_REQUESTS
        assert {job["tokens"] for job in results} == {12}
        assert {job["provider"] for job in results} == {"openai", "aws.bedrock"}

    def test_every_worker_trace_in_the_window_is_one_request(self, load_run):
        """The worker's traces in the load's window (no tag filter) are exactly one per request: no stray
        root, no request split over two traces."""
        job_ids = sorted(str(job_of(trace)) for trace in load_run.traces)
        assert job_ids == sorted(job["job_id"] for job in load_run.results)

    def test_each_trace_holds_exactly_the_spans_the_graph_implies(self, load_run):
        """Each trace's (service, span name, kind) multiset is ``expected_spans``: none lost or doubled."""
        by_job = {job_of(trace): trace for trace in load_run.traces}
        assert trace_gaps(load_run.results, by_job) == []

    def test_no_span_comes_from_langsmiths_own_instrumentation(self, load_run):
        """LangSmith tracing is on in the worker, yet it traces no run itself: no span of its scope."""
        scopes = {span.scope for trace in load_run.traces for span in trace.spans}
        assert LANGSMITH_SCOPE not in scopes

    def test_every_span_is_correctly_parented(self, load_run):
        """One root per trace, no orphans; consumer under producer; service calls under their nodes; each
        LLM span under its node with its provider API call beneath it."""
        for trace in load_run.traces:
            assert [(root.name, root.service) for root in trace.roots] == [("POST /api/v1/chat", API_SERVICE)]
            assert trace.orphans == []
            assert [span.name for span in trace.spans if span.linked] == []  # parents, not links only
            (consumer,) = trace.of_kind("consumer", WORKER_SERVICE)
            assert trace.parent(consumer).kind == "producer"
            assert semconv.ROLLUP_PROVIDER in consumer.attributes
            clients = [s for s in trace.of_kind("client", WORKER_SERVICE) if is_rpc_or_http(s)]
            parents = [trace.parent(span) for span in clients]
            assert sorted(parent.name for parent in parents if not parent.is_llm) == ["character", "weather"]
            llm_spans = [span for span in trace.spans if span.is_llm]
            assert sorted(parent.span_id for parent in parents if parent.is_llm) == sorted(
                span.span_id for span in llm_spans
            )
            assert sorted(trace.parent(span).name for span in llm_spans) == sorted(LLM_NODES)
            assert all(node_of(span) == trace.parent(span).name for span in llm_spans)
            assert all(trace.parent(s).kind == "client" for s in trace.of_kind("server", SERVICES_SERVICE))
            sdk_servers = [s for s in trace.of_kind("server", SERVICES_SERVICE) if COMPLETIONS_PATH in s.name]
            assert len(sdk_servers) == len(LLM_NODES)

    def test_instrumentation_and_rollup_hold_nothing_after_the_load(self, load_run):
        """From Prometheus, after the load: the LangChain instrumentation holds no run (it held some during
        the load) and evicted none; the roll-up stage buffers no trace."""
        state = load_run.state
        assert state.peak_open_runs is not None and state.peak_open_runs > 0, state
        assert (state.open_runs, state.evicted_runs, state.buffered_traces) == (0, 0, 0), state

    def test_worker_memory_returns_to_its_baseline(self, load_run):
        """After the load, the worker's RSS is within the tolerance of its post-warm-up baseline."""
        baseline, after = load_run.baseline, load_run.after
        assert after - baseline <= MEMORY_TOLERANCE_BYTES, (
            f"worker RSS grew {(after - baseline) / MIB:.1f} MiB (baseline {baseline / MIB:.1f} MiB)"
        )
