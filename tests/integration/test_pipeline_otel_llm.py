"""An app running otel_llm (build_telemetry, the same pipeline configure() installs) through the real stack:
the provider reaches Jaeger on the LLM span and rolled up on the request's root span, and Prometheus has both
the collector's per-provider span metrics for that root and otel_llm's span-derived GenAI histograms."""

from __future__ import annotations

from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind

from otel_llm import semconv
from otel_llm.configure import build_telemetry
from otel_llm.settings import load_settings
from tests.support.poll import poll
from tests.support.queries import spans_of
from tests.support.senders import METRIC_EXPORT_INTERVAL_MILLIS, unique_service

BEDROCK_CLAUDE = "anthropic.claude-3-haiku-20240307-v1:0"


def _send_langsmith_style_request(otlp_grpc_endpoint: str, service: str) -> None:
    """A SERVER span with one LLM child shaped like langsmith[otel]'s (gen_ai.system guessed as anthropic)."""
    telemetry = build_telemetry(
        load_settings({}),
        resource=Resource.create({"service.name": service}),
        span_exporters=[OTLPSpanExporter(endpoint=otlp_grpc_endpoint, insecure=True)],
        metric_readers=[PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=otlp_grpc_endpoint, insecure=True),
            export_interval_millis=METRIC_EXPORT_INTERVAL_MILLIS)],
    )
    tracer = telemetry.tracer_provider.get_tracer("test")
    with tracer.start_as_current_span("POST /api/v1/chat", kind=SpanKind.SERVER):
        with tracer.start_as_current_span("ChatBedrock") as llm:
            llm.set_attributes({
                semconv.LANGSMITH_SPAN_KIND: "llm",
                semconv.GEN_AI_OPERATION_NAME: "chat",
                semconv.GEN_AI_SYSTEM: "anthropic",
                semconv.GEN_AI_REQUEST_MODEL: BEDROCK_CLAUDE,
                semconv.LANGSMITH_LS_PROVIDER: "amazon_bedrock",
                semconv.GEN_AI_USAGE_INPUT_TOKENS: 12,
                semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 34,
            })
    telemetry.shutdown()


def test_otel_llm_app_provider_reaches_jaeger_on_llm_and_root_spans(stack):
    """The LLM span says aws.bedrock and the request's root span carries the roll-up of its calls."""
    service = unique_service("otel-llm-app")
    _send_langsmith_style_request(stack.otlp_grpc_endpoint, service)

    traces = poll(lambda: (found := stack.find_traces(service)) and len(spans_of(found)) == 3 and found,
                  timeout=60, message="the 2-span trace and the collector's llm.request span in Jaeger")
    spans = {span.name: span.attributes for span in spans_of(traces)}
    assert spans[semconv.REQUEST_SPAN_NAME][semconv.ROLLUP_PROVIDER] == "aws.bedrock"
    assert spans["ChatBedrock"][semconv.GEN_AI_PROVIDER_NAME] == "aws.bedrock"
    assert spans["POST /api/v1/chat"][semconv.ROLLUP_PROVIDER] == "aws.bedrock"
    assert spans["POST /api/v1/chat"][semconv.ROLLUP_MODEL] == BEDROCK_CLAUDE


def test_otel_llm_app_gets_per_provider_series_for_roots_and_calls(stack):
    """PromQL finds the root span's span metrics by roll-up provider, and the span-derived tokens."""
    service = unique_service("otel-llm-metrics")
    _send_langsmith_style_request(stack.otlp_grpc_endpoint, service)

    roots = poll(lambda: stack.prometheus_query(
        f'traces_span_metrics_calls_total{{service_name="{service}", span_kind="SPAN_KIND_SERVER"}}'),
        timeout=60, message="the root span's span metrics")
    assert roots[0]["metric"]["llm_rollup_provider"] == "aws.bedrock"
    assert roots[0]["metric"]["llm_rollup_model"] == BEDROCK_CLAUDE
    tokens = poll(lambda: stack.prometheus_query(
        f'sum by (gen_ai_token_type) (gen_ai_client_token_usage_sum{{job="{service}", '
        f'gen_ai_provider_name="aws.bedrock"}})'), timeout=60, message="the span-derived token usage")
    assert {item["metric"]["gen_ai_token_type"]: float(item["value"][1]) for item in tokens} == {
        "input": 12, "output": 34}
