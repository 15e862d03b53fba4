"""Spans/s through the two-tier topology (2 agents + 2 gateways, docs/deploy.md) and the CPU split between
tiers, beside the single collector, in one run.

Starts the real stack (``Stack`` with the "gateway" topology, then the "single" one; Jaeger in memory,
LangSmith off, llm_rollup and tail-sampling waits of 1 s, 10 % of routine traces kept) and posts 5-span
requests (API root, worker, graph, two LLM calls without otel_llm; bench_collector_rollup's mix) over
OTLP/HTTP from two threads as fast as they go for SECONDS, alternating the entry collectors (agent-1 and
agent-2, or the one collector). Then waits until the last tier accepted every span posted and its Jaeger
exports stopped growing, and reads each collector's CPU time (utime+stime, /proc). Reported: spans/s posted,
spans refused, CPU seconds per 100k spans per tier, and spans per CPU-second over all collectors (the
per-core figure to scale from).
The sender shares the 2 cores with the collectors: every figure is a lower bound, and the 2-gateway run shows
the overhead of the second tier here, not a gain.

Run: .venv/bin/python bench/bench_gateway_topology.py [--seconds 10]   (needs `otel-llm stack build`)
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import requests
from bench_collector_rollup import REQUEST_TRACE, cpu_seconds, post, request_body, telemetry_sum

from otel_llm.stack.run import COLLECTOR_OTLP_HTTP, TOPOLOGIES, Stack

SETTINGS = {"LANGSMITH_API_KEY": "", "OTEL_LLM_COLLECTOR_ROLLUP_WAIT": "1s",
            "OTEL_LLM_COLLECTOR_SAMPLING_WAIT": "1s", "OTEL_LLM_COLLECTOR_SAMPLING_PERCENTAGE": "10",
            "OTEL_LLM_COLLECTOR_SPANMETRICS_FLUSH_INTERVAL": "1s"}
ENTRY_PORTS = {"single": (COLLECTOR_OTLP_HTTP.env_var,),
               "gateway": (COLLECTOR_OTLP_HTTP.env_var, "OTEL_LLM_STACK_AGENT2_OTLP_HTTP_PORT")}
LAST_TIER = {"single": ("collector",), "gateway": ("gateway-1", "gateway-2")}
TELEMETRY_PORT = {"collector": "OTEL_LLM_STACK_COLLECTOR_TELEMETRY_PORT",
                  "agent-1": "OTEL_LLM_STACK_COLLECTOR_TELEMETRY_PORT",
                  "agent-2": "OTEL_LLM_STACK_AGENT2_TELEMETRY_PORT",
                  "gateway-1": "OTEL_LLM_STACK_GATEWAY1_TELEMETRY_PORT",
                  "gateway-2": "OTEL_LLM_STACK_GATEWAY2_TELEMETRY_PORT"}
DRAIN_TIMEOUT_SECONDS = 120


def _sum(stack: Stack, names: tuple[str, ...], metric: str) -> float:
    return sum(telemetry_sum(int(stack.env[TELEMETRY_PORT[name]]), metric) for name in names)


def _drain(stack: Stack, topology: str, posted: int) -> None:
    """Until the last tier accepted every posted span and its Jaeger exports held still for a second."""
    deadline = time.monotonic() + DRAIN_TIMEOUT_SECONDS
    last = LAST_TIER[topology]
    while _sum(stack, last, "otelcol_receiver_accepted_spans") < posted:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the last tier never accepted all {posted} spans")
        time.sleep(0.1)
    previous = -1.0
    while (current := _sum(stack, last, "otelcol_exporter_sent_spans")) != previous:
        if time.monotonic() > deadline:
            raise RuntimeError("Jaeger exports never settled")
        previous = current
        time.sleep(1.0)


def measure(topology: str, seconds: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack.create(Path(tmp), environ={}, random_ports=True, components=TOPOLOGIES[topology],
                             jaeger_storage="memory", overrides=SETTINGS)
        try:
            stack.up()
            collectors = [c.name for c in stack.components if c.binary_field == "collector"]
            pids = {name: stack.pid(name) for name in collectors}
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            ports = [int(stack.env[variable]) for variable in ENTRY_PORTS[topology]]
            posted, refused = [0, 0], [0, 0]
            started = time.monotonic()
            deadline = started + seconds

            def send(worker: int) -> None:
                session = requests.Session()
                turn = worker
                while time.monotonic() < deadline:
                    body = request_body(REQUEST_TRACE)
                    try:
                        post(session, ports[turn % len(ports)], body)
                        posted[worker] += 100
                    except requests.RequestException:
                        refused[worker] += 100
                    turn += 1

            threads = [threading.Thread(target=send, args=(worker,)) for worker in (0, 1)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.monotonic() - started
            _drain(stack, topology, sum(posted))
            cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        finally:
            stack.down()
    spans = sum(posted)
    per_100k = {tier: sum(seconds for name, seconds in cpu.items() if name.startswith(tier)) / spans * 1e5
                for tier in ("collector", "agent", "gateway")}
    return {"spans_per_s": spans / elapsed, "refused": sum(refused), "spans": spans,
            **{f"cpu_{tier}": value for tier, value in per_100k.items()},
            "spans_per_cpu_s": spans / sum(cpu.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    results = {topology: measure(topology, args.seconds) for topology in ("gateway", "single")}
    print(f"\n{args.seconds:.0f} s of 5-span requests from 2 threads, 100 spans per OTLP/HTTP request\n")
    print("| topology | spans/s posted | spans | refused | CPU s/100k spans: agents "
          "| gateways (or the collector) | spans per CPU-second, all collectors |")
    print("|---|---|---|---|---|---|---|")
    for topology, result in results.items():
        last = result["cpu_gateway"] if topology == "gateway" else result["cpu_collector"]
        print(f"| {topology} | {result['spans_per_s']:,.0f} | {result['spans']:,} | {result['refused']:,} "
              f"| {result['cpu_agent']:.2f} | {last:.2f} | {result['spans_per_cpu_s']:,.0f} |")
    ratio = results["gateway"]["spans_per_cpu_s"] / results["single"]["spans_per_cpu_s"]
    print(f"\nspans per CPU-second, gateway topology / single collector: {ratio:.2f}")


if __name__ == "__main__":
    main()
