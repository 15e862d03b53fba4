"""The collector's llm_rollup processor on the real stack, fed by raw OTLP senders shaped like services
without otel_llm: an API (SERVER root, PRODUCER), a worker (CONSUMER entry span, graph, an LLM span with only
GenAI attributes) and a tool service (SERVER entry span, an LLM span with only OpenLLMetry's attributes), each
service posting its own batch, root last.

Jaeger must show the roll-up, end-to-end facts and fallback on the root and find it by
``llm.rollup.provider``; Prometheus must hold the request's end-to-end latency per provider/model/arm from the
``llm.request`` span while the root's own series stays at its ~3 ms. A lone collector with a two-trace bound
shows the control: the same spans sent after their trace was released early pass unchanged (no roll-up on the
root), counted in the processor's own metrics on the collector's telemetry endpoint.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from otel_llm import semconv
from otel_llm.stack.run import COLLECTOR_TELEMETRY
from otel_llm.traces import Span, Trace
from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.support.poll import poll
from tests.support.senders import otlp_json_span, post_otlp_json_spans, unique_service
from tests.support.stack import start_stack
from tests.support.telemetry import Telemetry

SERVER, CLIENT, PRODUCER, CONSUMER, INTERNAL = 2, 3, 4, 5, 1
MS = 1_000_000
ARM = "openai:gpt-4o"  # assigned at the API; the calls used gpt-4o-mini and Claude: a fallback
END_TO_END_MS = 1550  # the root starts at 0 ms, the worker's CONSUMER span ends at 1550 ms
ROOT_NAME = "POST /api/v1/chat"
ROLLUP_TELEMETRY = "otelcol_processor_llm_rollup_"
CALL_COST = 0.00018  # the worker's priced call (100 in, 20 out)


@dataclass
class Request:
    """One request's spans, per service, ready to post; ids in hex."""

    trace_id: str
    api: str
    worker: str
    tools: str
    parts: dict[str, list[dict]]

    def post(self, endpoint: str, *services: str) -> None:
        for service in services or (self.tools, self.worker, self.api):  # the root's batch last
            post_otlp_json_spans(endpoint, service, self.parts[service])


def make_request(prefix: str) -> Request:
    trace_id = uuid.uuid4().hex
    names = ("root", "publish", "process", "graph", "chat", "tool", "llm")
    ids = {name: uuid.uuid4().hex[:16] for name in names}
    api, worker, tools = (unique_service(f"{prefix}-{role}") for role in ("api", "worker", "tools"))
    t0 = time.time_ns() - 3_000 * MS

    def span(key: str, name: str, kind: int, start: int, end: int, parent: str = "", **attributes: object):
        return otlp_json_span(trace_id, ids[key], name, attributes, kind=kind, start_ns=t0 + start * MS,
                              end_ns=t0 + end * MS, parent_id=ids[parent] if parent else "")

    parts = {
        api: [
            span("root", ROOT_NAME, SERVER, 0, 3, **{
                semconv.EXPERIMENT_ID: "exp-rollup", semconv.EXPERIMENT_ARM: ARM, "http.route": "/chat"}),
            span("publish", "chat:jobs publish", PRODUCER, 1, 2, "root"),
        ],
        worker: [
            span("process", "process chat:jobs", CONSUMER, 50, END_TO_END_MS, "publish"),
            span("graph", "invoke_workflow", INTERNAL, 60, 1540, "process"),
            span("chat", "chat claude-3-5-haiku", CLIENT, 100, 900, "graph", **{
                semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "anthropic",
                semconv.GEN_AI_REQUEST_MODEL: "claude-3-5-haiku", semconv.GEN_AI_USAGE_INPUT_TOKENS: 100,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 20,
                # As the worker's otel-llm pricer writes it; the tool service's call carries no cost.
                semconv.COST_AMOUNT: CALL_COST, semconv.COST_CURRENCY: "USD", semconv.COST_SOURCE: "local"}),
        ],
        tools: [
            span("tool", "POST /summarise", SERVER, 950, 1500, "graph"),
            span("llm", "openai.chat", CLIENT, 1000, 1400, "tool", **{
                semconv.OPENLLMETRY_REQUEST_TYPE: "chat", semconv.GEN_AI_SYSTEM: "OpenAI",
                semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", semconv.GEN_AI_USAGE_PROMPT_TOKENS: 50,
                semconv.GEN_AI_USAGE_COMPLETION_TOKENS: 10}),
        ],
    }
    return Request(trace_id, api, worker, tools, parts)


ROOT_ROLLUP = {
    semconv.ROLLUP_PROVIDER: "anthropic,openai", semconv.ROLLUP_MODEL: "claude-3-5-haiku,gpt-4o-mini",
    semconv.ROLLUP_CALLS: 2, semconv.ROLLUP_INPUT_TOKENS: 150, semconv.ROLLUP_OUTPUT_TOKENS: 30,
    semconv.ROLLUP_ERROR: False, semconv.EXPERIMENT_FALLBACK: True,
}


@pytest.fixture(scope="module")
def rolled_up(stack) -> tuple[Request, Trace]:
    """One request posted to the shared stack, and its trace as Jaeger returns it once llm.request is in."""
    request = make_request("rollup")
    request.post(stack.otlp_http_endpoint)

    def complete() -> Trace | None:
        trace = stack.get_trace(request.trace_id)
        names = {span.name for span in trace.spans} if trace else set()
        return trace if semconv.REQUEST_SPAN_NAME in names and len(trace.spans) == 8 else None

    return request, poll(complete, timeout=60, message="the whole trace with llm.request in Jaeger")


def _by_name(trace: Trace) -> dict[str, Span]:
    return {span.name: span for span in trace.spans}


class TestJaeger:
    def test_root_carries_the_rollup_facts_and_fallback(self, rolled_up):
        """The API's root span carries every call of the worker and tool services, and the fallback."""
        _, trace = rolled_up
        tags = _by_name(trace)[ROOT_NAME].attributes
        assert {key: tags.get(key) for key in ROOT_ROLLUP} == ROOT_ROLLUP
        assert tags[semconv.TRACE_DURATION_MS] == pytest.approx(END_TO_END_MS)
        assert tags[semconv.TRACE_LLM_DURATION_MS] == pytest.approx(800 + 400)
        assert tags[semconv.TRACE_SPAN_COUNT] == 7

    def test_entry_spans_carry_the_calls_beneath(self, rolled_up):
        """The worker's CONSUMER span gets both calls; the tool service's SERVER span its own one."""
        _, trace = rolled_up
        spans = _by_name(trace)
        assert spans["process chat:jobs"].attributes[semconv.ROLLUP_CALLS] == 2
        tool = spans["POST /summarise"].attributes
        assert (tool[semconv.ROLLUP_PROVIDER], tool[semconv.ROLLUP_CALLS]) == ("openai", 1)
        assert semconv.ROLLUP_CALLS not in spans["invoke_workflow"].attributes
        assert spans["openai.chat"].attributes[semconv.GEN_AI_PROVIDER_NAME] == "openai"

    def test_cost_is_summed_across_services(self, rolled_up):
        """The root and llm.request sum the worker's priced call and count the tool service's unpriced one;
        the tool's entry span, with no priced call beneath, gets no cost; no parent gets the per-call name."""
        _, trace = rolled_up
        spans = _by_name(trace)
        for name in (ROOT_NAME, semconv.REQUEST_SPAN_NAME, "process chat:jobs"):
            tags = spans[name].attributes
            assert tags[semconv.ROLLUP_COST_AMOUNT] == pytest.approx(CALL_COST), name
            assert tags[semconv.ROLLUP_COST_CURRENCY] == "USD", name
            assert tags[semconv.ROLLUP_UNPRICED_CALLS] == 1, name
            assert semconv.COST_AMOUNT not in tags
        assert semconv.ROLLUP_COST_CURRENCY not in spans["POST /summarise"].attributes

    def test_request_span_spans_the_whole_request(self, rolled_up):
        """llm.request is the root's child, lasts the request end to end and carries the arm; the root keeps
        its own ~3 ms."""
        _, trace = rolled_up
        spans = _by_name(trace)
        request_span, root = spans[semconv.REQUEST_SPAN_NAME], spans[ROOT_NAME]
        assert (request_span.parent_id, request_span.linked) == (root.span_id, False)
        assert request_span.duration_us == END_TO_END_MS * 1000
        assert root.duration_us == 3000
        assert request_span.attributes[semconv.EXPERIMENT_ARM] == ARM

    def test_search_by_rollup_provider_finds_the_request(self, rolled_up, stack):
        """Jaeger's tag search on the API service by llm.rollup.provider finds the trace."""
        request, _ = rolled_up
        found = stack.find_traces(request.api, {semconv.ROLLUP_PROVIDER: "anthropic,openai"})
        assert [trace.trace_id for trace in found] == [request.trace_id]
        assert stack.find_traces(request.api, {semconv.ROLLUP_PROVIDER: "aws.bedrock"}) == []


def test_prometheus_holds_end_to_end_latency_per_provider_model_arm(rolled_up, stack):
    """span_metrics turns llm.request into the request's latency per provider/model/arm; the root's own series
    (the control) holds only its 3 ms."""
    request, _ = rolled_up
    labels = (f'service_name="{request.api}",llm_rollup_provider="anthropic,openai",'
              f'llm_rollup_model="claude-3-5-haiku,gpt-4o-mini",llm_experiment_arm="{ARM}"')

    def latency_ms(span_name: str) -> float | None:
        result = stack.prometheus_query(
            f'traces_span_metrics_duration_milliseconds_sum{{{labels},span_name="{span_name}"}}')
        return float(result[0]["value"][1]) if result else None

    assert poll(lambda: latency_ms(semconv.REQUEST_SPAN_NAME), timeout=60,
                message="llm.request latency in Prometheus") == pytest.approx(END_TO_END_MS)
    assert poll(lambda: latency_ms(ROOT_NAME), timeout=30, message="root latency") < 10


def test_processor_metrics_reach_prometheus(rolled_up, stack):
    """Prometheus scrapes the collector's telemetry endpoint: the processor's own metrics are queryable there,
    and the fallback of the request above is counted."""
    query = f'{ROLLUP_TELEMETRY}experiment_fallbacks{{processor="llm_rollup"}}'
    fallbacks = poll(lambda: stack.prometheus_query(query), timeout=30, message="the fallback counter")
    assert float(fallbacks[0]["value"][1]) >= 1
    assert stack.prometheus_query(f'{ROLLUP_TELEMETRY}traces_held{{processor="llm_rollup"}}')


@dataclass
class LoneCollector:
    endpoint: str
    telemetry_port: int
    receiver: OtlpHttpReceiver


@pytest.fixture(scope="module")
def bounded_collector(stack_binaries, tmp_path_factory) -> Iterator[LoneCollector]:
    """The collector alone, holding at most two traces, its LangSmith pipeline writing to a stand-in."""
    receiver = OtlpHttpReceiver()
    runner = start_stack(tmp_path_factory.mktemp("bounded-collector"), langsmith_endpoint=receiver.base_url,
                         components=("collector",), overrides={"OTEL_LLM_COLLECTOR_ROLLUP_MAX_TRACES": "2"})
    try:
        yield LoneCollector(runner.otlp_http_endpoint, runner.port(COLLECTOR_TELEMETRY), receiver)
    finally:
        runner.down()
        receiver.close()


def _telemetry(port: int, name: str, **labels: str) -> float:
    """Sum of one llm_rollup metric's samples (of the LangSmith pipeline's instance) with these labels."""
    return Telemetry(port).sum(ROLLUP_TELEMETRY + name, processor="llm_rollup/langsmith", **labels)


def _root_and_llm(receiver: OtlpHttpReceiver, request: Request, count: int):
    spans = [span for span in receiver.spans() if span.trace_id.hex() == request.trace_id]
    if len(spans) < count:
        return None
    by_name = {span.name: span for span in spans}
    return {attribute.key for attribute in by_name[ROOT_NAME].attributes}, by_name["openai.chat"]


def test_bound_releases_early_and_late_spans_pass_unchanged(bounded_collector):
    """A whole request is rolled up; the same request arriving after a memory bound released its root (the
    control) leaves the root without a roll-up and the late spans unchanged, and the processor counts both."""
    lone = bounded_collector
    grouped = make_request("bound-grouped")
    grouped.post(lone.endpoint)
    root_keys, _ = poll(lambda: _root_and_llm(lone.receiver, grouped, 7), timeout=60, message="grouped trace")
    assert semconv.ROLLUP_CALLS in root_keys

    early_before = _telemetry(lone.telemetry_port, "traces_released_early", reason="num_traces")
    late_before = _telemetry(lone.telemetry_port, "late_spans")
    split = make_request("bound-split")
    split.post(lone.endpoint, split.api)
    for filler in (make_request("bound-filler-a"), make_request("bound-filler-b")):  # two newer traces
        filler.post(lone.endpoint, filler.api)
    split.post(lone.endpoint, split.worker, split.tools)

    root_keys, llm = poll(lambda: _root_and_llm(lone.receiver, split, 7), timeout=60, message="split trace")
    assert semconv.ROLLUP_CALLS not in root_keys
    assert semconv.GEN_AI_PROVIDER_NAME not in {attribute.key for attribute in llm.attributes}  # unchanged
    assert _telemetry(lone.telemetry_port, "traces_released_early", reason="num_traces") >= early_before + 1
    assert _telemetry(lone.telemetry_port, "late_spans") == late_before + 5
    assert _telemetry(lone.telemetry_port, "processing_duration_count") >= 2
