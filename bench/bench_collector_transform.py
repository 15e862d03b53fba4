"""What the collector's generated transform (``transform/redact``: the secret rules of otel_llm/redaction.py,
rendered by otel_llm/ottl.py) costs per span; bench/bench_collector_rollup.py measures llm_rollup.

Runs the real otelcol-llm twice per round on a cut-down pipeline, OTLP/HTTP -> [transform] -> batch ->
debug (basic verbosity, logs at warn), once with and once without the transform, and sends the same protobuf
requests to each: 100 spans per request, one span mix at a time. It reads the collector's CPU time
(utime+stime from /proc) around the run and waits for ``otelcol_exporter_sent_spans`` to count every span.
"Added" is the per-span CPU of the run with the transform minus the one without, best round of each.

Span mixes: an HTTP server span (no GenAI attributes: the group condition only), an LLM span from a service
without otel_llm (gen_ai.system=anthropic + a Bedrock model id: every statement runs), and an LLM span the SDK
already enriched (canonical provider + model: the condition skips the group), and a span carrying secrets (a
URL with user-info and a key in a query parameter, a secret-named metadata key, an OpenAI key in a message).

Run: .venv/bin/python bench/bench_collector_transform.py [--spans 50000] [--rounds 3] [--processor NAME]
(needs `otel-llm stack build`; about a minute)
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
import yaml
from bench_collector_rollup import (  # this script's directory is on sys.path
    SPANS_PER_REQUEST,
    _value,
    collector_config,
    cpu_seconds,
    port_open,
    sent_spans,
    wait_for,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otel_llm import redaction, semconv
from otel_llm.stack.build import find_binaries
from otel_llm.stack.run import free_ports

MIXES = {
    "HTTP server span (no gen_ai.*)": {"http.request.method": "POST", "http.route": "/api/v1/chat",
                                       "http.response.status_code": 200},
    "LLM span without otel_llm (system + Bedrock id)": {
        semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_SYSTEM: "anthropic",
        semconv.GEN_AI_REQUEST_MODEL: "anthropic.claude-3-haiku-20240307-v1:0",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 120, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 40},
    "LLM span enriched by the SDK": {
        semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_PROVIDER_NAME: "aws.bedrock",
        semconv.GEN_AI_REQUEST_MODEL: "anthropic.claude-3-haiku-20240307-v1:0",
        semconv.GEN_AI_USAGE_INPUT_TOKENS: 120, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 40},
    "span with secrets": {
        "url.full": "https://user:pw@api.example.com/v1/chat?api_key=abc123",
        "langsmith.metadata.api_key": "k1",
        "exception.message": "401 Incorrect API key provided: sk-proj-Ab3dEf6hIj9kLm2nOp5q"},
}


def request_body(attributes: dict[str, object]) -> bytes:
    """One OTLP request of SPANS_PER_REQUEST spans carrying ``attributes``."""
    now = time.time_ns()
    spans = [Span(trace_id=os.urandom(16), span_id=os.urandom(8), name="span", kind=Span.SPAN_KIND_CLIENT,
                  start_time_unix_nano=now - 1_000_000, end_time_unix_nano=now,
                  attributes=[KeyValue(key=key, value=_value(value)) for key, value in attributes.items()])
             for _ in range(SPANS_PER_REQUEST)]
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="bench"))])
    request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource=resource, scope_spans=[ScopeSpans(spans=spans)])])
    return request.SerializeToString()


def run_once(binary: Path, body: bytes, requests_count: int, transform: str | None) -> float:
    """CPU seconds the collector spent receiving, transforming and exporting ``requests_count`` bodies."""
    http_port, telemetry_port = free_ports(2)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(yaml.safe_dump(collector_config(http_port, telemetry_port, transform)))
        process = subprocess.Popen([str(binary), "--config", str(config)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: sent_spans(telemetry_port) >= 0 and port_open(http_port), 30, "the collector")
            session = requests.Session()
            url = f"http://127.0.0.1:{http_port}/v1/traces"
            headers = {"Content-Type": "application/x-protobuf"}
            before = cpu_seconds(process.pid)
            for _ in range(requests_count):
                session.post(url, data=body, headers=headers, timeout=10).raise_for_status()
            expected = requests_count * SPANS_PER_REQUEST
            wait_for(lambda: sent_spans(telemetry_port) >= expected, 60, f"{expected} spans exported")
            return cpu_seconds(process.pid) - before
        finally:
            process.terminate()
            process.wait(timeout=20)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=50_000, help="spans per run (multiple of 100)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per mix and variant; the best counts")
    parser.add_argument("--processor", default=redaction.TRANSFORM_PROCESSOR,
                        choices=(redaction.TRANSFORM_PROCESSOR,))
    args = parser.parse_args(argv)
    binary = find_binaries().collector
    if binary is None:
        print("otelcol-llm is not built: run `otel-llm stack build`", file=sys.stderr)
        return 1
    requests_count = max(1, args.spans // SPANS_PER_REQUEST)
    spans = requests_count * SPANS_PER_REQUEST
    print(f"{spans} spans per run, best of {args.rounds} rounds (collector CPU, µs per span)\n")
    print(f"| span mix | without transform | with {args.processor} | added |")
    print("|---|---|---|---|")
    for mix, attributes in MIXES.items():
        body = request_body(attributes)
        best = {True: float("inf"), False: float("inf")}
        for _ in range(args.rounds):
            for with_transform in (False, True):
                cpu = run_once(binary, body, requests_count, args.processor if with_transform else None)
                best[with_transform] = min(best[with_transform], cpu / spans * 1e6)
        added = best[True] - best[False]
        print(f"| {mix} | {best[False]:.1f} | {best[True]:.1f} | {added:+.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
