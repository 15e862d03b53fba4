"""Ways to send telemetry into the collector: the Python SDK over OTLP/gRPC, and hand-made OTLP/JSON over HTTP
(what a service in another language, without otel_llm, would send)."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping

import requests
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

BATCH_DELAY_MILLIS = 100
METRIC_EXPORT_INTERVAL_MILLIS = 500


def unique_service(prefix: str) -> str:
    """A service name no other test (or earlier run against a persistent Jaeger) uses."""
    return f"{prefix}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def sdk_tracer_provider(otlp_grpc_endpoint: str, service: str) -> TracerProvider:
    """A TracerProvider exporting over OTLP/gRPC to the collector; ``shutdown()`` flushes and closes it."""
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = OTLPSpanExporter(endpoint=otlp_grpc_endpoint, insecure=True)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=BATCH_DELAY_MILLIS))
    return provider


def sdk_meter_provider(otlp_grpc_endpoint: str, service: str) -> MeterProvider:
    """A MeterProvider exporting cumulative metrics over OTLP/gRPC to the collector twice a second."""
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=otlp_grpc_endpoint, insecure=True),
                                           export_interval_millis=METRIC_EXPORT_INTERVAL_MILLIS)
    return MeterProvider(metric_readers=[reader], resource=Resource.create({"service.name": service}))


def _json_value(value: object) -> dict:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def otlp_json_span(trace_id: str, span_id: str, name: str, attributes: Mapping[str, object], *,
                   start_ns: int, end_ns: int, kind: int = 3, parent_id: str = "") -> dict:
    """One span in OTLP/JSON (ids in hex; kind 2 SERVER, 3 CLIENT, 4 PRODUCER, 5 CONSUMER, 1 INTERNAL)."""
    return {
        "traceId": trace_id, "spanId": span_id, "parentSpanId": parent_id, "name": name, "kind": kind,
        "startTimeUnixNano": str(start_ns), "endTimeUnixNano": str(end_ns),
        "attributes": [{"key": key, "value": _json_value(value)} for key, value in attributes.items()],
    }


def post_otlp_json_spans(otlp_http_endpoint: str, service: str, spans: list[dict]) -> None:
    """POST spans of one service as one OTLP/JSON request to ``/v1/traces`` (no SDK involved)."""
    body = {"resourceSpans": [{
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
        "scopeSpans": [{"scope": {"name": "hand-made"}, "spans": spans}],
    }]}
    response = requests.post(f"{otlp_http_endpoint}/v1/traces", json=body, timeout=10)
    response.raise_for_status()


def post_otlp_json_span(otlp_http_endpoint: str, service: str, name: str, attributes: Mapping[str, object],
                        *, duration_ms: int = 120) -> str:
    """POST one span as OTLP/JSON to ``/v1/traces`` (no SDK involved) and return its trace id (hex)."""
    trace_id, span_id = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    end = time.time_ns()
    start = end - duration_ms * 1_000_000
    post_otlp_json_spans(otlp_http_endpoint, service,
                         [otlp_json_span(trace_id, span_id, name, attributes, start_ns=start, end_ns=end)])
    return trace_id
