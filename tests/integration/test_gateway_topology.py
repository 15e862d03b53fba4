"""The two-tier topology on this machine (collector/agent.yaml, collector/gateway.yaml, docs/deploy.md).

`Stack` with the gateway topology (what `otel-llm stack up --topology gateway` starts): two agents routing
by trace id to two gateways, Jaeger, and Prometheus scraping both gateways. Two services send the spans of
the same traces to different agents: an API (agent-1) and a worker (agent-2). The gateways keep every trace
with an error, a provider fallback, an end-to-end time or a cost over its threshold, and 0% of the rest (so
every decision is deterministic). The time threshold is the trace's intent's (otel_llm/load/slos.yaml): a
trace between the lowest and the highest intent target is kept with the first intent and dropped with the
second, a trace over the second's target is kept with it, and a trace of no or an unknown intent is judged
by OTEL_LLM_COLLECTOR_SAMPLING_SLOW_MS. Checked per trace: a kept trace is complete in Jaeger (exactly the
spans sent plus the gateway's llm.request span: no trace split across gateways), a routine trace never reaches
Jaeger, and span metrics count every request sent, not only the kept ones. Control: both gateways received
spans, so the completeness is the routing's doing, not one gateway taking everything.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_llm import semconv
from otel_llm.load.slo import load_slos
from otel_llm.sampling import intent_targets
from otel_llm.stack.run import HOST, TOPOLOGIES, Stack
from otel_llm.traces import Trace
from tests.support import queries
from tests.support.poll import poll
from tests.support.senders import sdk_tracer_provider, unique_service
from tests.support.stack import gateway_topology
from tests.support.telemetry import Telemetry

SLOW_MS = 3000
COST_ABOVE = 0.05
# The intents with the lowest and the highest whole-response target, and a time between the two.
TARGETS = intent_targets(load_slos())
FAST_INTENT, SLOW_INTENT = min(TARGETS, key=TARGETS.get), max(TARGETS, key=TARGETS.get)
BETWEEN_MS = (TARGETS[FAST_INTENT] + TARGETS[SLOW_INTENT]) // 2
SAMPLING = {
    "OTEL_LLM_COLLECTOR_SAMPLING_PERCENTAGE": "0",
    "OTEL_LLM_COLLECTOR_SAMPLING_SLOW_MS": str(SLOW_MS),
    "OTEL_LLM_COLLECTOR_SAMPLING_COST_ABOVE": str(COST_ABOVE),
    "OTEL_LLM_COLLECTOR_SAMPLING_WAIT": "1s",
}
# Per kind of trace: its end-to-end time (ms) and the intent on its worker span (None: none).
SHAPES = {
    "routine": (50, None), "error": (50, None), "fallback": (50, None), "expensive": (50, None),
    "slow": (SLOW_MS + 1000, None), "slow-unknown-intent": (SLOW_MS + 1000, "billing"),
    "slow-for-fast-intent": (BETWEEN_MS, FAST_INTENT), "within-slow-intent": (BETWEEN_MS, SLOW_INTENT),
    "slow-for-slow-intent": (TARGETS[SLOW_INTENT] + 1000, SLOW_INTENT),
}
# What each trace carries; the dropped kinds first (see the test).
KINDS = ["routine"] * 12 + ["within-slow-intent"] * 2 + [
    "error", "fallback", "slow", "slow-unknown-intent", "slow-for-fast-intent", "slow-for-slow-intent",
    "expensive"] * 2
KEPT_KINDS = set(SHAPES) - {"routine", "within-slow-intent"}
MS = 1_000_000  # ns


@pytest.fixture(scope="module")
def gateway_stack(stack_binaries, tmp_path_factory) -> Iterator[Stack]:
    with gateway_topology(tmp_path_factory.mktemp("gateway-stack"), SAMPLING) as runner:
        yield runner


def _send(api_endpoint: str, worker_endpoint: str, api: str, worker: str) -> dict[str, str]:
    """One trace per KINDS entry: API root (SERVER) -> worker job (CONSUMER) -> LLM call; trace id -> kind."""
    api_provider = sdk_tracer_provider(api_endpoint, api)
    worker_provider = sdk_tracer_provider(worker_endpoint, worker)
    api_tracer, worker_tracer = api_provider.get_tracer("api"), worker_provider.get_tracer("worker")
    sent = {}
    for kind in KINDS:
        duration_ms, intent = SHAPES[kind]
        start = time.time_ns() - (duration_ms + 1000) * MS
        duration = duration_ms * MS
        assigned = ({semconv.EXPERIMENT_PROVIDER: "anthropic", semconv.EXPERIMENT_MODEL: "claude-sonnet-4"}
                    if kind == "fallback" else {})
        root = api_tracer.start_span("api-request", kind=SpanKind.SERVER, start_time=start,
                                     attributes=assigned)
        job = worker_tracer.start_span("worker-job", context=trace.set_span_in_context(root),
                                       kind=SpanKind.CONSUMER, start_time=start + MS,
                                       attributes={semconv.LANGSMITH_INTENT: intent} if intent else {})
        cost = COST_ABOVE * 4 if kind == "expensive" else 0.001
        call = worker_tracer.start_span("chat gpt-4o", context=trace.set_span_in_context(job),
                                        kind=SpanKind.CLIENT, start_time=start + 2 * MS, attributes={
                                            semconv.GEN_AI_OPERATION_NAME: "chat",
                                            semconv.GEN_AI_PROVIDER_NAME: "openai",
                                            semconv.GEN_AI_REQUEST_MODEL: "gpt-4o",
                                            semconv.COST_AMOUNT: cost, semconv.COST_CURRENCY: "USD"})
        if kind == "error":
            call.set_status(Status(StatusCode.ERROR, "provider 500"))
        call.end(start + duration - 2 * MS)
        job.end(start + duration - MS)
        root.end(start + duration)
        sent[format(root.get_span_context().trace_id, "032x")] = kind
    api_provider.shutdown()
    worker_provider.shutdown()
    return sent


def _span_multiset(stored: Trace) -> Counter:
    return Counter((span.service, span.name) for span in stored.spans)


def test_kept_traces_are_whole_and_rates_count_every_request(gateway_stack):
    """Per trace: kept (error, fallback, slow for its intent, expensive) and complete in Jaeger, or dropped
    (routine, or slower than one intent's target but within its own, at 0%);
    span metrics count all requests sent; both gateways carried part of the load, each span reached one."""
    api, worker = unique_service("gw-api"), unique_service("gw-worker")
    agent2 = f"{HOST}:{gateway_stack.env['OTEL_LLM_STACK_AGENT2_OTLP_GRPC_PORT']}"
    # Routine traces first: once the last kept trace is in Jaeger, every routine one was decided before it.
    sent = _send(gateway_stack.otlp_grpc_endpoint, agent2, api, worker)
    expected = Counter({(api, "api-request"): 1, (worker, "worker-job"): 1, (worker, "chat gpt-4o"): 1,
                        (api, semconv.REQUEST_SPAN_NAME): 1})
    kept = [trace_id for trace_id, kind in sent.items() if kind in KEPT_KINDS]

    def stored() -> dict[str, Trace]:
        found = {trace_id: queries.jaeger_get_trace(gateway_stack.jaeger_query_url, trace_id)
                 for trace_id in kept}
        return found if all(found.values()) and all(
            _span_multiset(found_trace) == expected for found_trace in found.values()) else {}

    poll(stored, timeout=45, interval=0.5, message="every kept trace complete in Jaeger")
    dropped = [trace_id for trace_id, kind in sent.items() if kind not in KEPT_KINDS]
    assert [trace_id for trace_id in dropped
            if queries.jaeger_get_trace(gateway_stack.jaeger_query_url, trace_id) is not None] == []

    def request_count() -> float:
        result = queries.prometheus_query(
            gateway_stack.prometheus_url,
            f'sum(traces_span_metrics_calls_total{{service_name="{api}",span_name="api-request"}})')
        return float(result[0]["value"][1]) if result else 0.0

    poll(lambda: request_count() == len(KINDS), timeout=30, interval=0.5,
         message=f"span metrics counting all {len(KINDS)} requests")
    gateways = [int(gateway_stack.env[name]) for name in
                ("OTEL_LLM_STACK_GATEWAY1_TELEMETRY_PORT", "OTEL_LLM_STACK_GATEWAY2_TELEMETRY_PORT")]
    accepted = [Telemetry(port, HOST).sum("otelcol_receiver_accepted_spans") for port in gateways]
    assert all(accepted) and sum(accepted) == 3 * len(KINDS), accepted  # each span at exactly one gateway


def test_stack_json_records_the_topology(gateway_stack):
    """`stack.json` holds the gateway topology, so status/down and the query commands find the same stack."""
    recorded = Stack.load(gateway_stack.state_dir)
    assert recorded is not None
    assert [component.name for component in recorded.components] == list(TOPOLOGIES["gateway"])
    assert recorded.endpoints() == gateway_stack.endpoints()
    assert all(recorded.healthy(component.name) for component in recorded.components)
