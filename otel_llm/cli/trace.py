"""``otel-llm trace TRACE_ID``: one trace from Jaeger drawn as a tree, as ``otel-llm demo`` draws its own.

Asks Jaeger's query API for the trace (``GET /api/traces/{id}``: every service's spans of it) and prints
it with ``otel_llm.cli.render.render_tree``: services where the trace crosses a process, LangGraph nodes,
LLM calls with provider/model and tokens, the experiment arm and the roll-up (``llm.rollup.*``) where a
service starts. This is the picture the Jaeger UI would give, for a Jaeger built without its UI (the
stack's ``go install`` build).

Exit codes: 0 tree printed; 2 with one line on stderr: not a trace id, Jaeger unreachable or not a Jaeger, or
no such trace in it.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

from otel_llm.cli.endpoints import DEFAULT_JAEGER_URL, JAEGER_URL_ENV, url_help

EXIT_ERROR = 2
_TRACE_ID = re.compile(r"^[0-9a-f]{1,32}$")


def _trace_id(text: str) -> str:
    value = text.strip().lower()
    if not _TRACE_ID.match(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a trace id (1 to 32 hex digits)")
    return value.zfill(32)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "trace",
        help="draw one trace from Jaeger as a tree (services, nodes, LLM calls, roll-up, arm)",
        description="Draw one trace from Jaeger as a tree, as `otel-llm demo` does: services, LangGraph "
        "nodes, LLM calls with provider/model and tokens, the experiment arm and the roll-up.",
    )
    parser.add_argument("trace_id", type=_trace_id, metavar="TRACE_ID", help="the trace id (hex)")
    parser.add_argument(
        "--jaeger-url", default=None, help=url_help("Jaeger query", JAEGER_URL_ENV, DEFAULT_JAEGER_URL)
    )
    parser.add_argument("--json", action="store_true", help="print the trace and its spans as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from otel_llm.cli.render import render_tree
    from otel_llm.cli.search import SearchError, client_for
    from otel_llm.traces import from_jaeger

    try:
        client = client_for(args.jaeger_url)
        payload = client.trace(args.trace_id)
    except SearchError as exc:
        print(f"otel-llm trace: {exc}", file=sys.stderr)
        return EXIT_ERROR
    traces = from_jaeger({"data": payload})
    if not traces:
        print(f"otel-llm trace: no trace {args.trace_id} in Jaeger at {client.base_url}", file=sys.stderr)
        return EXIT_ERROR
    [trace] = traces
    print(json.dumps(trace.to_dict(), indent=2) if args.json else "\n".join(render_tree(trace)))
    return 0


def command(trace_id: str) -> str:
    """The command that draws ``trace_id`` (what ``search`` and ``demo --stack`` print)."""
    return f"otel-llm trace {trace_id}"
