"""What the collector's llm_rollup processor (collector/llmrollupprocessor) costs per span.

Runs the real otelcol-llm twice per round on a cut-down pipeline, OTLP/HTTP -> [llm_rollup] -> batch -> debug
(basic verbosity, logs at warn), once with and once without the processor (its block taken from
collector/config.yaml, wait_duration cut to WAIT so a run ends soon), and sends the same protobuf requests
to each: 100 spans per request, one span mix at a time. It reads the collector's CPU time (utime+stime from
/proc) around the run and waits for ``otelcol_exporter_sent_spans`` to count every span. "Added" is the
per-span CPU of the run with the processor minus the one without, best round of each; the ratio is with /
without.

Span mixes: lone HTTP server spans (each its own trace: held, released, nothing to roll up), lone LLM spans
from a service without otel_llm (gen_ai.system=anthropic + a Bedrock model id: normalised), and whole
requests of five spans (API SERVER root, worker CONSUMER, graph, two LLM calls without otel_llm: normalised,
rolled up onto root and entry span, end-to-end facts, plus the llm.request span).

With ``--throughput SECONDS``: two threads post fresh 5-span requests as fast as they can for SECONDS, with
and without the processor; spans/s accepted, CPU seconds per 100k spans, refused and send-failed spans (the
sender shares the 2 cores: a lower bound of what the collector sustains). With ``--per-trace`` each trace of a
request comes under its own resource and scope, as a gateway receives them from the loadbalancing exporter.

Run: .venv/bin/python bench/bench_collector_rollup.py [--spans 50000] [--rounds 3]  (needs `otel-llm stack
build`; about a minute); .venv/bin/python bench/bench_collector_rollup.py --throughput 10 --spans 400000
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from otel_llm import semconv
from otel_llm.stack import paths
from otel_llm.stack.build import find_binaries
from otel_llm.stack.run import free_ports

SPANS_PER_REQUEST = 100
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SENT_SPANS_METRIC = "otelcol_exporter_sent_spans"  # no _total suffix in v0.159's own metrics
PROCESSOR = "llm_rollup"
WAIT = "200ms"
LLM_WITHOUT_OTEL_LLM = {
    semconv.GEN_AI_OPERATION_NAME: "chat", semconv.GEN_AI_SYSTEM: "anthropic",
    semconv.GEN_AI_REQUEST_MODEL: "anthropic.claude-3-haiku-20240307-v1:0",
    semconv.GEN_AI_USAGE_INPUT_TOKENS: 120, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 40}
# One request: (span index of the parent or None, kind, attributes); 20 such traces make a request body.
REQUEST_TRACE = (
    (None, Span.SPAN_KIND_SERVER, {"http.request.method": "POST", "http.route": "/api/v1/chat"}),
    (0, Span.SPAN_KIND_CONSUMER, {"messaging.system": "redis"}),
    (1, Span.SPAN_KIND_INTERNAL, {semconv.GEN_AI_OPERATION_NAME: "invoke_workflow"}),
    (2, Span.SPAN_KIND_CLIENT, LLM_WITHOUT_OTEL_LLM),
    (2, Span.SPAN_KIND_CLIENT, LLM_WITHOUT_OTEL_LLM),
)
MIXES = {
    "lone HTTP server spans (no gen_ai.*)": ((None, Span.SPAN_KIND_SERVER, {
        "http.request.method": "POST", "http.route": "/api/v1/chat", "http.response.status_code": 200}),),
    "lone LLM spans without otel_llm (system + Bedrock id)": (
        (None, Span.SPAN_KIND_CLIENT, LLM_WITHOUT_OTEL_LLM),),
    "5-span requests, 2 LLM calls without otel_llm": REQUEST_TRACE,
}

def _value(value: object) -> AnyValue:
    return AnyValue(int_value=value) if isinstance(value, int) else AnyValue(string_value=str(value))


def request_body(trace: tuple, per_trace: bool = False) -> bytes:
    """One OTLP request of SPANS_PER_REQUEST spans: copies of ``trace`` (parent index, kind, attributes) under
    one resource and scope, or with ``per_trace`` each copy under its own (as a gateway receives them from the
    loadbalancing exporter, which splits batches per trace id)."""
    now = time.time_ns()
    traces = []
    while sum(map(len, traces)) < SPANS_PER_REQUEST:
        trace_id = os.urandom(16)
        ids = [os.urandom(8) for _ in trace]
        traces.append([Span(
            trace_id=trace_id, span_id=span_id, parent_span_id=b"" if parent is None else ids[parent],
            name="span", kind=kind, start_time_unix_nano=now - 1_000_000, end_time_unix_nano=now,
            attributes=[KeyValue(key=key, value=_value(value)) for key, value in attributes.items()])
            for (parent, kind, attributes), span_id in zip(trace, ids, strict=True)])
    resource = Resource(attributes=[KeyValue(key="service.name", value=AnyValue(string_value="bench"))])
    groups = traces if per_trace else [[span for spans in traces for span in spans][:SPANS_PER_REQUEST]]
    request = ExportTraceServiceRequest(resource_spans=[
        ResourceSpans(resource=resource, scope_spans=[ScopeSpans(spans=spans)]) for spans in groups])
    return request.SerializeToString()


def collector_config(http_port: int, telemetry_port: int, processor: str | None) -> dict:
    """The cut-down pipeline OTLP/HTTP -> [processor] -> batch -> debug, taking ``processor`` and batch from
    collector/config.yaml (llm_rollup's wait cut to WAIT, so a run ends soon)."""
    base = yaml.safe_load(paths.COLLECTOR_CONFIG.read_text())
    base["processors"][PROCESSOR]["wait_duration"] = WAIT
    # No storage extension here: its checkpoint is one small write per release tick, not a cost per span.
    base["processors"][PROCESSOR].pop("storage", None)
    processors = ([processor] if processor else []) + ["batch"]
    return {
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{http_port}"}}}},
        "processors": {name: base["processors"][name] for name in processors},
        "exporters": {"debug": {"verbosity": "basic"}},
        "service": {
            "pipelines": {"traces": {"receivers": ["otlp"], "processors": processors,
                                     "exporters": ["debug"]}},
            "telemetry": {"logs": {"level": "warn"}, "metrics": {"readers": [{"pull": {"exporter": {
                "prometheus": {"host": "127.0.0.1", "port": telemetry_port}}}}]}},
        },
    }


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def telemetry_sum(telemetry_port: int, metric: str) -> float:
    """The sum of one of the collector's own metrics over its series; -1 while the endpoint is not up."""
    try:
        text = requests.get(f"http://127.0.0.1:{telemetry_port}/metrics", timeout=2).text
    except requests.RequestException:
        return -1.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith((metric + "{", metric + " ")))


def sent_spans(telemetry_port: int) -> float:
    return telemetry_sum(telemetry_port, SENT_SPANS_METRIC)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


def spans_out(trace: tuple, with_processor: bool) -> int:
    """Spans the collector exports per request: the processor adds one llm.request span per trace that has
    LLM calls beneath its root (the multi-span mix)."""
    return SPANS_PER_REQUEST + (SPANS_PER_REQUEST // len(trace) if with_processor and len(trace) > 1 else 0)


@contextmanager
def running_collector(binary: Path, with_processor: bool) -> Iterator[tuple[int, int, int]]:
    """The cut-down collector, started and ready: (pid, OTLP/HTTP port, telemetry port)."""
    http_port, telemetry_port = free_ports(2)
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        processor = PROCESSOR if with_processor else None
        config.write_text(yaml.safe_dump(collector_config(http_port, telemetry_port, processor)))
        process = subprocess.Popen([str(binary), "--config", str(config)], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: sent_spans(telemetry_port) >= 0 and port_open(http_port), 30, "the collector")
            yield process.pid, http_port, telemetry_port
        finally:
            process.terminate()
            process.wait(timeout=20)


def post(session: requests.Session, http_port: int, body: bytes) -> None:
    session.post(f"http://127.0.0.1:{http_port}/v1/traces", data=body, timeout=30,
                 headers={"Content-Type": "application/x-protobuf"}).raise_for_status()


def run_once(binary: Path, trace: tuple, bodies: list[bytes], with_processor: bool) -> float:
    """CPU seconds the collector spent receiving, processing and exporting ``bodies``."""
    with running_collector(binary, with_processor) as (pid, http_port, telemetry_port):
        session = requests.Session()
        before = cpu_seconds(pid)
        for body in bodies:
            post(session, http_port, body)
        expected = len(bodies) * spans_out(trace, with_processor)
        wait_for(lambda: sent_spans(telemetry_port) >= expected, 60, f"{expected} spans exported")
        return cpu_seconds(pid) - before


def throughput(binary: Path, bodies: list[bytes], seconds: float, with_processor: bool) -> dict[str, float]:
    """Spans/s the collector accepted while two threads posted ``bodies`` (each once) as fast as they could
    for ``seconds``, with its refused / send-failed span counts and CPU seconds per 100k spans."""
    with running_collector(binary, with_processor) as (pid, http_port, telemetry_port):
        queue = list(reversed(bodies))
        deadline = time.monotonic() + seconds

        def send() -> None:
            session = requests.Session()
            while time.monotonic() < deadline:
                try:
                    body = queue.pop()
                except IndexError:
                    return
                post(session, http_port, body)

        before, started = cpu_seconds(pid), time.monotonic()
        senders = [threading.Thread(target=send) for _ in range(2)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
        elapsed = time.monotonic() - started
        accepted = telemetry_sum(telemetry_port, "otelcol_receiver_accepted_spans")
        wait_for(lambda: sent_spans(telemetry_port) >= accepted, 60, "every accepted span exported")
        return {
            "spans_per_s": accepted / elapsed,
            "cpu_s_per_100k": (cpu_seconds(pid) - before) / accepted * 100_000,
            "refused": telemetry_sum(telemetry_port, "otelcol_receiver_refused_spans"),
            "send_failed": telemetry_sum(telemetry_port, "otelcol_exporter_send_failed_spans"),
            "exhausted": float(not queue),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=50_000, help="spans per run (multiple of 100)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per mix and variant; the best counts")
    parser.add_argument("--throughput", type=float, default=0, metavar="SECONDS",
                        help="instead: post 5-span requests for SECONDS as fast as possible")
    parser.add_argument("--per-trace", action="store_true",
                        help="each trace under its own resource and scope (a gateway behind loadbalancing)")
    args = parser.parse_args(argv)
    binary = find_binaries().collector
    if binary is None:
        print("otelcol-llm is not built: run `otel-llm stack build`", file=sys.stderr)
        return 1
    requests_count = max(1, args.spans // SPANS_PER_REQUEST)
    spans = requests_count * SPANS_PER_REQUEST
    if args.throughput:
        bodies = [request_body(REQUEST_TRACE, args.per_trace) for _ in range(requests_count)]
        print(f"throughput: {spans} spans ready (5-span requests), 2 senders, {args.throughput:.0f} s\n")
        print("| pipeline | spans/s accepted | CPU s per 100k spans | refused | send failed |")
        print("|---|---|---|---|---|")
        for with_processor in (False, True):
            result = throughput(binary, bodies, args.throughput, with_processor)
            name = "with llm_rollup" if with_processor else "without"
            note = " (all sent before the end: raise --spans)" if result["exhausted"] else ""
            print(f"| {name}{note} | {result['spans_per_s']:.0f} | {result['cpu_s_per_100k']:.2f} | "
                  f"{result['refused']:.0f} | {result['send_failed']:.0f} |", flush=True)
        return 0
    layout = "each trace under its own resource" if args.per_trace else "one resource and scope per request"
    print(f"{spans} spans per run ({layout}), best of {args.rounds} rounds (collector CPU, µs per span)\n")
    print("| span mix | without | with llm_rollup | added | ratio |")
    print("|---|---|---|---|---|")
    for mix, trace in MIXES.items():
        bodies = [request_body(trace, args.per_trace) for _ in range(requests_count)]  # fresh trace ids
        best = {True: float("inf"), False: float("inf")}
        for _ in range(args.rounds):
            for with_processor in (False, True):
                cpu = run_once(binary, trace, bodies, with_processor)
                best[with_processor] = min(best[with_processor], cpu / spans * 1e6)
        added = best[True] - best[False]
        ratio = best[True] / best[False]
        print(f"| {mix} | {best[False]:.1f} | {best[True]:.1f} | {added:+.1f} | {ratio:.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
