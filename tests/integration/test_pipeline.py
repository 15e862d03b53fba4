"""Spans and metrics through the real pipeline: collector transform and span_metrics, Jaeger, Prometheus."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import requests
from opentelemetry.trace import SpanKind

from otel_llm import semconv
from otel_llm.traces import Span
from tests.support.otlp_receiver import OtlpHttpReceiver
from tests.support.poll import poll
from tests.support.queries import spans_of
from tests.support.senders import post_otlp_json_span, sdk_meter_provider, sdk_tracer_provider, unique_service
from tests.support.stack import start_stack

BEDROCK_CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"
SPAN_METRICS_CALLS = "traces_span_metrics_calls_total"
SPAN_METRICS_DURATION_BUCKET = "traces_span_metrics_duration_milliseconds_bucket"


def _only_span(stack, service: str) -> Span:
    traces = poll(lambda: stack.find_traces(service), timeout=60, message=f"a trace of {service} in Jaeger")
    spans = spans_of(traces)
    assert len(spans) == 1, spans
    return spans[0]


def test_python_sdk_span_arrives_in_jaeger_with_normalised_provider(stack):
    """A span exported by the Python SDK with only an alias gen_ai.system gets the canonical provider name."""
    service = unique_service("pipeline-python")
    provider = sdk_tracer_provider(stack.otlp_grpc_endpoint, service)
    with provider.get_tracer("test").start_as_current_span("chat gpt-4o", kind=SpanKind.CLIENT) as span:
        span.set_attribute(semconv.GEN_AI_SYSTEM, "azure_openai")
        span.set_attribute(semconv.GEN_AI_REQUEST_MODEL, "gpt-4o")
        span.set_attribute(semconv.GEN_AI_OPERATION_NAME, "chat")
    provider.shutdown()

    tags = _only_span(stack, service).attributes
    assert tags[semconv.GEN_AI_PROVIDER_NAME] == "azure.ai.openai"
    assert tags[semconv.GEN_AI_REQUEST_MODEL] == "gpt-4o"


def test_plain_otlp_span_with_bedrock_model_id_gets_aws_bedrock(stack):
    """A non-Python service's span (gen_ai.system=anthropic, Bedrock model id) gets provider aws.bedrock."""
    service = unique_service("pipeline-java")
    post_otlp_json_span(stack.otlp_http_endpoint, service, "chat",
                        {semconv.GEN_AI_SYSTEM: "anthropic", semconv.GEN_AI_REQUEST_MODEL: BEDROCK_CLAUDE})

    tags = _only_span(stack, service).attributes
    assert tags[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert tags[semconv.GEN_AI_REQUEST_MODEL] == BEDROCK_CLAUDE


# /api/v3/traces search parameters of this Jaeger build (module v1.75.0, cmd/query/app/apiv3/http_gateway.go):
# snake_case. Jaeger v2.19+ names them in camelCase (query.serviceName, query.startTimeMin, ...) and keeps
# these as deprecated aliases (docs/stack.md, "Jaeger").
V3_SERVICE, V3_TIME_MIN, V3_TIME_MAX, V3_NUM_TRACES = (
    "query.service_name", "query.start_time_min", "query.start_time_max", "query.num_traces")


def _v3_spans(response: requests.Response) -> list[dict]:
    """The spans of an /api/v3 answer (OTLP JSON under "result"); none for its 404 "No traces found"."""
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return [span for resource in response.json()["result"]["resourceSpans"]
            for scope in resource["scopeSpans"] for span in scope["spans"]]


def _v3_attributes(span: dict) -> dict:
    return {item["key"]: next(iter(item["value"].values())) for item in span.get("attributes", [])}


def test_trace_is_found_through_api_v3_with_the_parameter_names_this_jaeger_accepts(stack):
    """GET /api/v3/traces finds a service's trace with the snake_case names (times in RFC 3339) and returns it
    as OTLP JSON, normalised; /api/v3/traces/<id> returns it too; newer Jaeger's camelCase names fail."""
    service = unique_service("pipeline-apiv3")
    trace_id = post_otlp_json_span(stack.otlp_http_endpoint, service, "chat", {
        semconv.GEN_AI_SYSTEM: "anthropic", semconv.GEN_AI_REQUEST_MODEL: BEDROCK_CLAUDE})
    now = datetime.now(UTC)
    window = {V3_TIME_MIN: (now - timedelta(hours=1)).isoformat(),
              V3_TIME_MAX: (now + timedelta(minutes=5)).isoformat()}
    search = f"{stack.jaeger_query_url}/api/v3/traces"

    spans = poll(lambda: _v3_spans(requests.get(search, timeout=10, params={
        V3_SERVICE: service, V3_NUM_TRACES: 20, **window})),
        timeout=60, message=f"the trace of {service} through /api/v3/traces")
    assert [span["traceId"] for span in spans] == [trace_id]
    assert _v3_attributes(spans[0])[semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    by_id = _v3_spans(requests.get(f"{search}/{trace_id}", timeout=10))
    assert [span["spanId"] for span in by_id] == [spans[0]["spanId"]]

    camel_case = requests.get(search, timeout=10, params={
        "query.serviceName": service, "query.startTimeMin": window[V3_TIME_MIN],
        "query.startTimeMax": window[V3_TIME_MAX]})
    assert camel_case.status_code == 400
    assert f"{V3_TIME_MIN} and {V3_TIME_MAX} are required" in camel_case.text


def test_span_metrics_by_provider_and_model_reach_prometheus(stack):
    """span_metrics counts calls per provider and model; PromQL reads them back with those labels."""
    service = unique_service("pipeline-metrics")
    for _ in range(3):
        post_otlp_json_span(stack.otlp_http_endpoint, service, "chat",
                            {semconv.GEN_AI_SYSTEM: "anthropic", semconv.GEN_AI_REQUEST_MODEL: BEDROCK_CLAUDE,
                             semconv.GEN_AI_OPERATION_NAME: "chat"})

    def labels_once_all_3_are_counted() -> dict | None:
        result = stack.prometheus_query(
            f'sum by (gen_ai_provider_name, gen_ai_request_model, gen_ai_operation_name) '
            f'({SPAN_METRICS_CALLS}{{service_name="{service}"}})')
        if len(result) == 1 and float(result[0]["value"][1]) == 3:
            return result[0]["metric"]
        return None

    labels = poll(labels_once_all_3_are_counted, timeout=60, message="3 span-metric calls in Prometheus")
    assert labels == {"gen_ai_provider_name": "aws.bedrock", "gen_ai_request_model": BEDROCK_CLAUDE,
                      "gen_ai_operation_name": "chat"}


def test_span_metrics_duration_histogram_is_in_milliseconds(stack):
    """The span-metrics duration histogram is exported in ms with explicit buckets, queryable by provider."""
    service = unique_service("pipeline-duration")
    post_otlp_json_span(stack.otlp_http_endpoint, service, "chat",
                        {semconv.GEN_AI_PROVIDER_NAME: "openai", semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini"},
                        duration_ms=120)

    def count_under_250ms() -> list:
        return stack.prometheus_query(
            f'sum by (gen_ai_provider_name) ({SPAN_METRICS_DURATION_BUCKET}'
            f'{{service_name="{service}", le="250"}})')

    result = poll(count_under_250ms, timeout=60, message="the duration histogram in Prometheus")
    assert result[0]["metric"] == {"gen_ai_provider_name": "openai"}
    assert float(result[0]["value"][1]) == 1


def test_sdk_metrics_reach_prometheus_with_prometheus_names(stack):
    """SDK instruments sent over OTLP come back by PromQL with unit suffixes and underscores."""
    service = unique_service("pipeline-sdk-metrics")
    meter_provider = sdk_meter_provider(stack.otlp_grpc_endpoint, service)
    meter = meter_provider.get_meter("test")
    labels = {semconv.GEN_AI_PROVIDER_NAME: "openai", semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini"}
    meter.create_histogram("gen_ai.client.operation.duration", unit="s").record(0.42, labels)
    meter.create_counter("chat_stream_tokens", unit="{token}").add(7, labels)
    meter_provider.shutdown()

    def series(promql: str):
        return lambda: stack.prometheus_query(promql)

    tokens = poll(series(f'chat_stream_tokens_total{{job="{service}"}}'), timeout=60,
                  message="chat_stream_tokens_total in Prometheus")
    assert float(tokens[0]["value"][1]) == 7
    assert tokens[0]["metric"]["gen_ai_provider_name"] == "openai"
    durations = poll(series(f'gen_ai_client_operation_duration_seconds_count{{job="{service}"}}'), timeout=60,
                     message="gen_ai_client_operation_duration_seconds in Prometheus")
    assert float(durations[0]["value"][1]) == 1
    assert durations[0]["metric"]["gen_ai_request_model"] == "gpt-4o-mini"


def test_whole_response_p95_per_intent_is_recorded_and_alerts_against_its_slo(stack):
    """LangGraph run spans (invoke_workflow) carry their intent into span metrics; the recording rule gives a
    P95 per intent; ResponseLatencyP95High goes pending for general at 4 s (SLO 3 s), not for waste (5 s)."""
    service = unique_service("pipeline-intent")

    def run_spans_then_pending_alerts() -> list:
        # Runs keep arriving: rate() needs the histogram to grow between two scrapes.
        for intent in ("general", "waste"):
            post_otlp_json_span(stack.otlp_http_endpoint, service, f"chat:{intent}",
                                {semconv.GEN_AI_OPERATION_NAME: semconv.OPERATION_INVOKE_WORKFLOW,
                                 semconv.LANGSMITH_INTENT: intent}, duration_ms=4000)
        return stack.prometheus_query(
            f'ALERTS{{alertname="ResponseLatencyP95High", alertstate="pending", service_name="{service}"}}')

    pending = poll(run_spans_then_pending_alerts, timeout=90, message="ResponseLatencyP95High pending")
    assert [alert["metric"]["langsmith_metadata_intent"] for alert in pending] == ["general"]
    recorded = {item["metric"]["langsmith_metadata_intent"]: float(item["value"][1]) for item in
                stack.prometheus_query(f'llm:response_duration_ms:p95_by_intent{{service_name="{service}"}}')}
    assert recorded.keys() == {"general", "waste"}
    assert all(3000 < p95 <= 5000 for p95 in recorded.values()), recorded  # 4 s runs: the (3 s, 5 s] bucket


@pytest.fixture()
def collector_with_short_series_expiration(tmp_path):
    receiver = OtlpHttpReceiver()
    collector = start_stack(tmp_path, langsmith_endpoint=receiver.base_url, components=("collector",),
                            overrides={"OTEL_LLM_COLLECTOR_SERIES_EXPIRATION": "2s"})
    try:
        yield collector
    finally:
        collector.down()
        receiver.close()


def test_span_metric_series_that_stop_growing_expire(collector_with_short_series_expiration):
    """A span-metrics series with no new spans leaves the exporter after OTEL_LLM_COLLECTOR_SERIES_EXPIRATION,
    so per-request span names cannot fill the connector's cardinality limit for good."""
    collector = collector_with_short_series_expiration
    service = unique_service("pipeline-expiry")
    post_otlp_json_span(collector.otlp_http_endpoint, service, "chat:job-1", {})

    def exported() -> bool:
        return f'service_name="{service}"' in requests.get(collector.collector_metrics_url, timeout=10).text

    poll(exported, timeout=30, message="the series in the collector's /metrics")
    poll(lambda: not exported(), timeout=30, message="the series gone from the collector's /metrics")
