"""The reference app under load: 200 requests, 16 at a time, on the sync and on the async graph.

Every request's trace must arrive whole (the same spans as every other request, one root, no orphans, the
consumer under the producer, service calls under their nodes) and the worker's memory must come back to its
baseline. Memory: the worker's RSS (/proc/<pid>/status VmRSS) after a warm-up at the same concurrency, against
its RSS once the load is answered and the telemetry pipeline has drained (polled until two readings a second
apart agree within 1 MiB). Tolerance: MEMORY_TOLERANCE_BYTES, justified in docs/reference-app.md.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest

from otel_llm import semconv
from otel_llm.cli.demo_stack import API_SERVICE, SERVICES_SERVICE, WORKER_SERVICE
from otel_llm.demo.embedded import MESSAGES
from tests.e2e.jaeger_traces import Trace
from tests.e2e.reference_app import ReferenceApp
from tests.support.poll import poll

pytestmark = pytest.mark.e2e

LOAD_REQUESTS = 200
WARMUP_REQUESTS = 48
CONCURRENCY = 16
MIB = 1024 * 1024
MEMORY_TOLERANCE_BYTES = 8 * MIB
RSS_STABLE_BYTES = 1 * MIB
SETTLE_TIMEOUT_S = 30
TRACES_TIMEOUT_S = 180
LOAD_ENV = {"OTEL_LLM_DEMO_LATENCY_MS": "10", "OTEL_LLM_DEMO_TTFT_MS": "3"}
USER_TAG = "langsmith.metadata.user_id"


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


@pytest.fixture(scope="module", params=["sync", "async"])
def load_run(request, stack, tmp_path_factory):
    """A warm-up and then LOAD_REQUESTS requests, CONCURRENCY at a time, on one graph; traces from Jaeger."""
    tag = f"load-{request.param}-{uuid.uuid4().hex[:6]}"
    log_path = tmp_path_factory.mktemp("app") / "reference-app.log"
    with ReferenceApp(stack, log_path, graph=request.param, concurrency=CONCURRENCY, env=LOAD_ENV) as app:
        warmup = app.load(bodies(WARMUP_REQUESTS, f"{tag}-warmup"), CONCURRENCY)
        baseline = settled_rss(app)
        started = time.monotonic()
        results = app.load(bodies(LOAD_REQUESTS, tag), CONCURRENCY)
        wall_s = time.monotonic() - started
        after = settled_rss(app)
    assert all(job["status"] == "done" for job in warmup + results), log_path.read_text()[-3000:]

    def all_traces():
        found = stack.find_traces(WORKER_SERVICE, {USER_TAG: f"{tag}-user"}, limit=LOAD_REQUESTS * 2)
        return [Trace.from_jaeger(data) for data in found] if len(found) >= LOAD_REQUESTS else None

    traces = poll(all_traces, timeout=TRACES_TIMEOUT_S, message=f"{LOAD_REQUESTS} traces in Jaeger")
    print(
        f"\n{request.param}: {LOAD_REQUESTS} requests in {wall_s:.1f} s; worker RSS {baseline / MIB:.1f} MiB "
        f"after warm-up, {after / MIB:.1f} MiB after the load ({(after - baseline) / MIB:+.1f} MiB)"
    )
    return results, traces, baseline, after


class TestLoad:
    def test_every_request_is_answered(self, load_run):
        """All requests got their whole streamed answer, over both providers."""
        results, _, _, _ = load_run
        assert len(results) == LOAD_REQUESTS
        assert {job["tokens"] for job in results} == {12}
        assert {job["provider"] for job in results} == {"openai", "aws.bedrock"}

    def test_one_trace_per_request_each_with_every_span(self, load_run):
        """One trace per request, each with exactly the spans of every other: none lost or left unended."""
        results, traces, _, _ = load_run
        assert len(traces) == LOAD_REQUESTS
        job_ids = {
            span.tags.get("langsmith.metadata.job_id") for trace in traces for span in trace.spans.values()
        }
        assert {job["job_id"] for job in results} <= job_ids
        sizes = Counter(len(trace.spans) for trace in traces)
        assert len(sizes) == 1, f"span counts per trace differ: {sizes}"
        per_service = Counter(frozenset(Counter(s.service for s in t.spans.values()).items()) for t in traces)
        assert len(per_service) == 1, per_service

    def test_every_span_is_correctly_parented(self, load_run):
        """One root per trace, no orphans; consumer under producer; service and LLM calls under nodes."""
        _, traces, _, _ = load_run
        for trace in traces:
            assert [(root.name, root.service) for root in trace.roots] == [("POST /api/v1/chat", API_SERVICE)]
            assert trace.orphans == []
            (consumer,) = trace.of_kind("consumer", WORKER_SERVICE)
            assert trace.parent(consumer).kind == "producer"
            clients = [
                s
                for s in trace.of_kind("client", WORKER_SERVICE)
                if s.tags.get("rpc.system") == "grpc"
                or "http.request.method" in s.tags
                or "http.method" in s.tags
            ]
            assert sorted(trace.parent(span).name for span in clients) == ["character", "weather"]
            assert all(trace.parent(s).kind == "client" for s in trace.of_kind("server", SERVICES_SERVICE))
            llm_parents = sorted(trace.parent(span).node for span in trace.spans.values() if span.is_llm)
            assert llm_parents == ["answer", "general", "intent"]
            assert semconv.ROLLUP_PROVIDER in consumer.tags

    def test_worker_memory_returns_to_its_baseline(self, load_run):
        """After the load, the worker's RSS is within the tolerance of its post-warm-up baseline."""
        _, _, baseline, after = load_run
        assert after - baseline <= MEMORY_TOLERANCE_BYTES, (
            f"worker RSS grew {(after - baseline) / MIB:.1f} MiB (baseline {baseline / MIB:.1f} MiB)"
        )
