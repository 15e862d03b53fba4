"""``otel-llm demo``: run the reference chat app and print its traces as trees and a per-provider/model
summary.

By default nothing needs to be running: ``otel_llm.demo.embedded.run_embedded`` runs the API, the worker and
the LangGraph pipeline in this process (in-process queue, in-memory export through the otel_llm pipeline), and
the finished spans are drawn with ``otel_llm.cli.render``. Progress goes to stderr while it runs; the trees,
the requests and the summary go to stdout (``--json``: one JSON document instead).

``--stack`` runs the same requests through the real local stack instead (``otel_llm.cli.demo_stack``): it
starts the collector, Jaeger, Prometheus and Redis (``otel-llm stack up``), the app's processes under
``opentelemetry-instrument``, reads the traces back from Jaeger and prints the endpoints to explore them.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

DEFAULT_REQUESTS = 4
MAX_REQUESTS = 200
ANSWER_PREVIEW_CHARS = 60
EXIT_FAILED = 1


def _request_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_REQUESTS:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of requests between 1 and {MAX_REQUESTS}")
    return count


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="run the reference chat app and print its traces and a per-provider/model summary",
        description="Run the reference chat app (API, worker, LangGraph); print each trace as a tree and a "
        "per-provider/model summary. Needs nothing running unless --stack is given.",
    )
    parser.add_argument(
        "--requests",
        type=_request_count,
        default=DEFAULT_REQUESTS,
        help=f"chat requests to send, 1..{MAX_REQUESTS} (default {DEFAULT_REQUESTS})",
    )
    parser.add_argument(
        "--stack",
        action="store_true",
        help="use the real local stack (collector, Jaeger, Prometheus, Redis) and print its endpoints",
    )
    parser.add_argument("--json", action="store_true", help="print traces, requests and summary as JSON")
    parser.set_defaults(handler=run, extra="demo")


def progress_printer(stream: Any = None) -> Callable[[str], None]:
    """A progress callback writing ``[demo] <message>`` lines, flushed at once so they show while it runs."""

    def show(message: str) -> None:
        print(f"[demo] {message}", file=stream or sys.stderr, flush=True)

    return show


def request_rows(results: Iterable[Any]) -> list[list[str]]:
    """Job id, provider, model and the start of the answer of each request (fields read defensively)."""
    rows = []
    for result in results:
        answer = " ".join(str(getattr(result, "answer", "") or "").split())
        if len(answer) > ANSWER_PREVIEW_CHARS:
            answer = answer[: ANSWER_PREVIEW_CHARS - 3] + "..."
        rows.append(
            [str(getattr(result, name, None) or "-") for name in ("job_id", "provider", "model")]
            + [answer or "-"]
        )
    return rows


def print_report(
    traces: Sequence[Any],
    results: Sequence[Any],
    as_json: bool,
    header: str,
    endpoints: Mapping[str, str] | None = None,
) -> None:
    """The traces as trees, the requests, the per-provider/model summary and the endpoints (or as JSON)."""
    from otel_llm.cli.render import format_table, render_summary, render_tree, summary_rows

    if as_json:
        document = {
            "traces": [{**trace.to_dict(), "tree": render_tree(trace)} for trace in traces],
            "requests": [
                dict(zip(("job_id", "provider", "model", "answer"), row, strict=True))
                for row in request_rows(results)
            ],
            "summary": summary_rows(traces),
            **({"endpoints": dict(endpoints)} if endpoints else {}),
        }
        print(json.dumps(document, indent=2))
        return
    print(header)
    for trace in traces:
        print()
        print("\n".join(render_tree(trace)))
    if results:
        print()
        print("Requests")
        print("\n".join(format_table(["JOB ID", "PROVIDER", "MODEL", "ANSWER"], request_rows(results))))
    print()
    print("LLM calls per provider/model")
    print("\n".join(render_summary(traces)))
    if endpoints:
        print()
        print("Endpoints (the stack keeps running; `otel-llm stack down` stops it)")
        print("\n".join(f"  {name:<17} {url}" for name, url in endpoints.items()))


def run(args: argparse.Namespace) -> int:
    # The demo extra's modules (FastAPI, LangGraph, uvicorn, gRPC) first: without the extra this is one line
    # naming it (otel_llm.cli.main), before any progress or a stack is started.
    import otel_llm.demo.embedded  # noqa: F401
    import otel_llm.demo.services  # noqa: F401

    if args.stack:
        from otel_llm.cli.demo_stack import run_on_stack

        return run_on_stack(args.requests, args.json, progress_printer())
    return run_embedded_demo(args.requests, args.json, progress_printer())


def run_embedded_demo(requests: int, as_json: bool, progress: Callable[[str], None]) -> int:
    """The default demo: everything in this process, nothing else running."""
    from otel_llm.demo.embedded import run_embedded
    from otel_llm.traces import from_readable_spans

    started = time.monotonic()
    progress(f"running {requests} chat requests in-process (API, worker, LangGraph; no servers needed)")
    try:
        result = run_embedded(requests=requests, progress=progress)
    except Exception as exc:  # noqa: BLE001 - one line for the user, not a traceback
        print(f"otel-llm demo: the embedded run failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    traces = from_readable_spans(result.spans)
    progress(f"done in {time.monotonic() - started:.1f} s: {len(traces)} traces, {len(result.spans)} spans")
    print_report(
        traces,
        list(result.results),
        as_json,
        f"{len(traces)} traces from {requests} requests; services: "
        + ", ".join(dict.fromkeys(service for trace in traces for service in trace.services)),
    )
    return 0
