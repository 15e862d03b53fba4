"""CPU per LangGraph run: otel-llm's full LangGraph tracing and three peers, each against no tracing.

    python bench/bench_langgraph.py [--runs 100] [--rounds 3] [--pairs 3] [--stress 200] [--peers a,b]

The graph is the reference app's shape with fake models and no sleeps (bench/peers/reference_graph.py):
intent -> 3 parallel Send subagents -> a streamed answer, ~11 LangChain runs. Each contender runs in its own
virtualenv (otel-llm in this interpreter's, each peer in its pinned one from bench/peers/setup.py) and is
compared with no tracing in the same virtualenv: untraced and traced processes alternate (``--pairs``), each
timing ``--rounds`` rounds of ``--runs`` graph runs; the ratio is the median traced round over the median
untraced round (and best over best), all within one invocation. otel-llm's side is the whole pipeline: the
callback handler (node and LLM spans, time to first chunk), baggage processor, export-side enrichment and
roll-up, span-derived metrics, metric views. Then a completeness stress per contender: ``--stress`` requests
on 16 threads; spans started/ended, spans per trace, LLM spans re-parented to the request span, client spans
opened in a node that are children of that node's span.

Results and the command: docs/performance.md, section "LangGraph tracing".
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))

import setup as peer_setup  # noqa: E402

# otel_llm: the full pipeline; otel_llm_plain: the instrumentation on the plain SDK pipeline the peers get.
CONTENDERS = ("otel_llm", "otel_llm_plain", *peer_setup.PEER_PACKAGES)


def run_process(python: Path, contender: str, mode: str, args: argparse.Namespace, stress: int) -> dict:
    command = [
        str(python),
        str(HERE / "peers" / "run_peer.py"),
        contender,
        "--mode",
        mode,
        "--runs",
        str(args.runs),
        "--rounds",
        str(args.rounds),
        "--stress",
        str(stress),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise RuntimeError((result.stderr.strip().splitlines() or ["failed"])[-1])
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(python: Path, contender: str, args: argparse.Namespace) -> dict:
    """Alternating untraced/traced processes; the last traced one also runs the stress."""
    untraced: list[float] = []
    traced: list[float] = []
    result: dict = {"peer": contender}
    try:
        for pair in range(args.pairs):
            untraced += run_process(python, contender, "untraced", args, 0)["cpu_ms"]
            last = pair == args.pairs - 1
            traced_run = run_process(python, contender, "traced", args, args.stress if last else 0)
            traced += traced_run["cpu_ms"]
            result.update(versions=traced_run["versions"], spans_per_run=traced_run["spans_per_run"])
            if last and "stress" in traced_run:
                result["stress"] = traced_run["stress"]
    except RuntimeError as error:
        return {"peer": contender, "error": str(error)}
    result.update(
        untraced_ms=statistics.median(untraced),
        traced_ms=statistics.median(traced),
        ratio=statistics.median(traced) / statistics.median(untraced),
        ratio_best=min(traced) / min(untraced),
        rounds=len(traced),
    )
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| contender | untraced ms/run | traced ms/run | CPU ratio (median; best) | spans/run "
        "| stress spans started/ended "
        "| never ended | spans per trace (min-max) | LLM spans under the request span "
        "| client spans under their node |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if "error" in result:
            lines.append(f"| {result['peer']} | not run: {result['error']} ||||||||")
            continue
        stress = result.get("stress", {})
        lines.append(
            f"| {result['peer']} | {result['untraced_ms']:.2f} | {result['traced_ms']:.2f} | "
            f"{result['ratio']:.2f}x; {result['ratio_best']:.2f}x | {result['spans_per_run']:.1f} | "
            f"{stress.get('spans_started', '-')}/{stress.get('spans_ended', '-')} | "
            f"{stress.get('never_ended', '-')} | "
            f"{stress.get('spans_per_trace_min', '-')}-{stress.get('spans_per_trace_max', '-')} | "
            f"{stress.get('llm_spans_under_request', '-')} | "
            f"{stress.get('client_spans_under_their_node', '-')} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="graph runs per round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per process")
    parser.add_argument("--pairs", type=int, default=3, help="untraced/traced process pairs per contender")
    parser.add_argument("--stress", type=int, default=200, help="requests in the completeness stress")
    parser.add_argument("--peers", default=",".join(CONTENDERS), help="comma-separated contenders")
    parser.add_argument("--cache", type=Path, default=peer_setup.DEFAULT_CACHE, help="peer virtualenvs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = []
    for contender in [name.strip() for name in args.peers.split(",") if name.strip()]:
        if contender.startswith("otel_llm"):
            python, reason = Path(sys.executable), ""
        else:
            python, reason = peer_setup.ensure(args.cache, contender)
        results.append(measure(python, contender, args) if python else {"peer": contender, "error": reason})
        print(json.dumps(results[-1]), flush=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
