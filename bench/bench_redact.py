"""What export-side redaction (otel_llm.processors.redact) costs per span, on the export thread.

RedactingSpanExporter(no-op).export against the no-op exporter alone over the same finished spans, per span,
in CPU time of the calling thread (the export thread in production; nothing runs on the application thread).
Span kinds:
  plain      an HTTP server span (method, route, URL, status, user agent, client address): nothing to redact;
  llm        a langsmith-style LLM span with a distinct 1 KB prompt and completion: nothing to redact;
  llm+secret the same with run metadata ``api_key`` and a failed call whose status, exception.message and
             exception.stacktrace hold an OpenAI key: copied and rewritten.
Each round times both variants back to back in alternating order; reported: the median over rounds of each,
and the median of the per-round differences (the added cost). Ratios within one run only.

Run: .venv/bin/python bench/bench_redact.py [--spans 2000] [--rounds 31]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from otel_llm import semconv
from otel_llm.processors.redact import RedactingSpanExporter, Redactor

HTTP_ATTRIBUTES = {
    "http.request.method": "POST", "http.route": "/api/v1/chat", "url.scheme": "https",
    "url.full": "https://chat.example.com/api/v1/chat?stream=true", "url.path": "/api/v1/chat",
    "http.response.status_code": 200, "user_agent.original": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0",
    "client.address": "10.0.3.17", "server.address": "chat.example.com", "network.protocol.version": "1.1",
}
LLM_ATTRIBUTES = {
    semconv.LANGSMITH_SPAN_KIND: "llm", semconv.GEN_AI_OPERATION_NAME: "chat",
    semconv.GEN_AI_SYSTEM: "openai",
    semconv.GEN_AI_REQUEST_MODEL: "gpt-4o-mini", semconv.LANGSMITH_LS_PROVIDER: "openai",
    semconv.GEN_AI_USAGE_INPUT_TOKENS: 120, semconv.GEN_AI_USAGE_OUTPUT_TOKENS: 40,
    "langsmith.metadata.langgraph_node": "answer", "langsmith.metadata.thread_id": "thread-42",
}
SECRET = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8t"


class NoOpExporter(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def finished_spans(kind: str, count: int) -> list[ReadableSpan]:
    collected = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(collected))
    tracer = provider.get_tracer("bench")
    for number in range(count):
        if kind == "plain":
            tracer.start_span("POST /api/v1/chat", kind=SpanKind.SERVER, attributes=HTTP_ATTRIBUTES).end()
            continue
        attributes = {**LLM_ATTRIBUTES, semconv.LANGSMITH_PROMPT: f"{number:08d}" + "p" * 992,
                      semconv.LANGSMITH_COMPLETION: f"{number:08d}" + "c" * 992}
        if kind == "llm":
            tracer.start_span("ChatOpenAI", attributes=attributes).end()
            continue
        try:
            with tracer.start_as_current_span("ChatOpenAI", attributes={
                    **attributes, "langsmith.metadata.api_key": SECRET}):
                raise PermissionError(f"Error code: 401 - Incorrect API key provided: {SECRET}")
        except PermissionError:
            pass
    provider.shutdown()
    return list(collected.get_finished_spans())


def _timed(exporter: SpanExporter, spans: list[ReadableSpan]) -> float:
    gc.collect()
    started = time.thread_time_ns()
    exporter.export(spans)
    return (time.thread_time_ns() - started) / len(spans) / 1000


def measure(count: int, rounds: int) -> list[dict]:
    results = []
    for kind in ("plain", "llm", "llm+secret"):
        spans = finished_spans(kind, count)
        bare, redacting = NoOpExporter(), RedactingSpanExporter(NoOpExporter(), Redactor())
        base, staged = [], []
        for round_number in range(rounds):
            order = ((bare, base), (redacting, staged))
            for exporter, samples in (order if round_number % 2 == 0 else reversed(order)):
                samples.append(_timed(exporter, spans))
        results.append({
            "kind": kind, "bare_us": statistics.median(base), "redact_us": statistics.median(staged),
            "added_us": statistics.median(s - b for s, b in zip(staged, base, strict=True)),
        })
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=31)
    args = parser.parse_args(argv)
    print(f"Redaction on the export thread ({args.spans} spans, {args.rounds} rounds, µs/span, CPU time)\n")
    print("| span | no-op export | redaction + no-op export | added by redaction |")
    print("|---|---|---|---|")
    for row in measure(args.spans, args.rounds):
        print(f"| {row['kind']} | {row['bare_us']:.2f} | {row['redact_us']:.2f} | {row['added_us']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
