"""CPU per LangGraph run: otel-llm's LangGraph tracing, yardsticks and three peers, each against no tracing.

    python bench/bench_langgraph.py [--runs 100] [--rounds 3] [--pairs 3] [--stress 200] [--peers a,b]

The graph is the reference app's shape with fake models and no sleeps (bench/peers/reference_graph.py):
intent -> 3 parallel Send subagents -> a streamed answer, ~11 LangChain runs. Each contender runs in a
virtualenv pinned like the others (bench/peers/setup.py: otel-llm from this checkout and the yardsticks in
one, each peer in its own) and is compared with no tracing in the same virtualenv: untraced and traced
processes alternate (``--pairs``, contender after contender within each pair, so a change in the box's load
hits all alike), each timing ``--rounds`` rounds of ``--runs`` graph runs; the ratio is the median traced
round over the median untraced round (and best over best), all within one invocation.

otel-llm's side is the whole pipeline at its defaults: the callback handler (node and LLM spans, time to
first chunk), baggage processor, export-side enrichment and roll-up (2 s window), span-derived metrics,
metric views. The breakdown (bench/peers/comparators.py, run_peer.py): ``empty_handler`` (LangChain
dispatching to a handler that does nothing), ``minimal_handler`` (the same span tree, no attributes),
``otel_llm_noop_tracer`` (otel-llm's handler on a no-op tracer), ``otel_llm_plain`` (its handler on the
plain SDK pipeline), ``otel_llm_no_rollup`` (the full pipeline without the roll-up stage and the
span-derived metrics it feeds), ``otel_llm_collector`` (OTEL_LLM_ROLLUP=collector: per-span normalisation
only, as behind the otel-llm collector). Then a completeness stress per contender: ``--stress`` requests on 16
threads; spans started/ended/exported, spans per trace, LLM spans re-parented to the request span, client
spans opened in a node that are children of that node's span. Prints the time and the load average at
start and end: the box is shared, so only ratios within one invocation compare.

Results and the command: docs/performance.md, section "LangGraph tracing".
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "peers"))

import setup as peer_setup  # noqa: E402

# Breakdown first (cheapest to dearest), then otel-llm's full pipeline, then the peers.
YARDSTICKS = (
    "empty_handler",
    "minimal_handler",
    "otel_llm_noop_tracer",
    "otel_llm_plain",
    "otel_llm_no_rollup",
    "otel_llm_collector",
    "otel_llm",
)
CONTENDERS = (*YARDSTICKS, *peer_setup.PEER_PACKAGES)


def venv_name(contender: str) -> str:
    """The yardsticks share otel-llm's venv; each peer has its own."""
    return contender if contender in peer_setup.PEER_PACKAGES else peer_setup.OTEL_LLM


def stamp() -> str:
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}, load average {load}"


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


class Samples:
    """One contender's process pairs so far."""

    def __init__(self, contender: str, python: Path) -> None:
        self.contender, self.python = contender, python
        self.untraced: list[float] = []
        self.traced: list[float] = []
        self.gc_ms: dict[str, list[float]] = {"untraced": [], "traced": []}
        self.last: dict = {}

    def add_pair(self, args: argparse.Namespace, last: bool) -> None:
        """An untraced then a traced process; the last traced one also runs the stress."""
        untraced = run_process(self.python, self.contender, "untraced", args, 0)
        traced = run_process(self.python, self.contender, "traced", args, args.stress if last else 0)
        self.untraced += untraced["cpu_ms"]
        self.traced += traced["cpu_ms"]
        self.gc_ms["untraced"].append(untraced["gc_ms_per_run"])
        self.gc_ms["traced"].append(traced["gc_ms_per_run"])
        self.last = traced

    def result(self) -> dict:
        untraced, traced = self.untraced, self.traced
        result = {
            "peer": self.contender,
            "versions": self.last["versions"],
            "spans_per_run": self.last["spans_per_run"],
            "untraced_ms": statistics.median(untraced),
            "traced_ms": statistics.median(traced),
            "ratio": statistics.median(traced) / statistics.median(untraced),
            "ratio_best": min(traced) / min(untraced),
            "rounds": len(traced),
            "gc_untraced_ms": statistics.mean(self.gc_ms["untraced"]),
            "gc_traced_ms": statistics.mean(self.gc_ms["traced"]),
        }
        if "stress" in self.last:
            result["stress"] = self.last["stress"]
        return result


def table(results: list[dict]) -> str:
    lines = [
        "| contender | untraced ms/run | traced ms/run | CPU ratio (median; best) "
        "| of which GC ms/run (untraced; traced) | spans/run "
        "| stress spans started/ended/exported "
        "| never ended | lost | spans per trace (min-max) | LLM spans under the request span "
        "| client spans under their node |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        if "error" in result:
            lines.append(f"| {result['peer']} | not run: {result['error']} ||||||||||")
            continue
        stress = result.get("stress", {})
        lines.append(
            f"| {result['peer']} | {result['untraced_ms']:.2f} | {result['traced_ms']:.2f} | "
            f"{result['ratio']:.2f}x; {result['ratio_best']:.2f}x | "
            f"{result['gc_untraced_ms']:.2f}; {result['gc_traced_ms']:.2f} | {result['spans_per_run']:.1f} | "
            f"{stress.get('spans_started', '-')}/{stress.get('spans_ended', '-')}/"
            f"{stress.get('spans_exported', '-')} | "
            f"{stress.get('never_ended', '-')} | {stress.get('lost', '-')} | "
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
    parser.add_argument("--cache", type=Path, default=peer_setup.DEFAULT_CACHE, help="the virtualenvs")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    contenders = [name.strip() for name in args.peers.split(",") if name.strip()]
    unknown = set(contenders) - set(CONTENDERS)
    if unknown:
        parser.error(f"unknown contenders {sorted(unknown)}; choose from {', '.join(CONTENDERS)}")
    results: dict[str, dict] = {}
    samples: list[Samples] = []
    for contender in contenders:
        python, reason = peer_setup.ensure(args.cache, venv_name(contender))
        if python is None:
            results[contender] = {"peer": contender, "error": reason}
        else:
            samples.append(Samples(contender, python))
    started = stamp()
    # Pair by pair, every contender in turn: a change in the box's load hits all of them alike.
    for pair in range(args.pairs):
        for sample in samples:
            if sample.contender in results:
                continue  # failed in an earlier pair
            try:
                sample.add_pair(args, last=pair == args.pairs - 1)
            except RuntimeError as error:
                results[sample.contender] = {"peer": sample.contender, "error": str(error)}
    for sample in samples:
        if sample.contender not in results:
            results[sample.contender] = sample.result()
    ordered = [results[contender] for contender in contenders]
    for result in ordered:
        print(json.dumps(result), flush=True)
    print(f"started {started}; ended {stamp()}")
    print(table(ordered))
    if args.json:
        args.json.write_text(json.dumps(ordered, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
