"""The two-tier topology (docs/deploy.md) on this machine: spans/s and CPU per tier from 1 to 2 gateways,
beside the single collector, in one run; and the gateway's memory per trace held for the sampling decision.

Throughput (the default): starts the real stack three times (Jaeger in memory, no Prometheus or Redis,
LangSmith off, llm_rollup and tail-sampling waits of 1 s, 10 % of routine traces kept): 2 agents + 2 gateways,
1 agent + 1 gateway, then the single collector, and posts 5-span requests (API root, worker, graph, two LLM
calls without otel_llm; bench_collector_rollup's mix) over OTLP/HTTP from two threads as fast as they go for
SECONDS, alternating the agents (or to the one entry collector). Then waits until the last tier accepted every
span posted and its Jaeger exports stopped growing, and reads each collector's CPU time (utime+stime, /proc).
Reported per topology: spans/s posted, spans lost on the way (refused by an agent, failed or not queued by
its exporter), late spans and early releases in llm_rollup (0 and 0: every trace arrived whole at one
gateway), CPU seconds per 100k spans per tier, the gateways' share of the collectors' CPU, and spans per
gateway CPU-second: the per-core figure to scale from.
The sender shares the 2 cores with the collectors: every figure is a lower bound, and going from 1 to 2
gateways shows the overhead of one more process here, not a gain.

Memory (``--held N1,N2``): 1 agent + 1 gateway, twice: with a tail-sampling wait of HOLD_WAIT (every trace
sent stays held for its decision), then with an llm_rollup wait of HOLD_WAIT (held for completeness), the
other wait 1 s. Reads the gateway's resident set (VmRSS, /proc) and its Go heap
(``otelcol_process_runtime_heap_alloc_bytes``, the lowest of a few readings) idle, then with N1 and with N2
traces held (by the stage's own gauge, the other stage holding none), and reports bytes per held trace at
each N: the same figure at both N shows memory grows linearly with the traces held.

Run: .venv/bin/python bench/bench_gateway_topology.py [--seconds 8] [--rounds 1]   (about 45 s a round)
     .venv/bin/python bench/bench_gateway_topology.py --held 10000,20000   (about 40 s)
(both need `otel-llm stack build`)
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from bench_collector_rollup import (
    REQUEST_TRACE,
    SPANS_PER_REQUEST,
    cpu_seconds,
    post,
    request_body,
    telemetry_sum,
)

from otel_llm.stack.run import COLLECTOR_OTLP_HTTP, Stack

SETTINGS = {"LANGSMITH_API_KEY": "", "OTEL_LLM_COLLECTOR_ROLLUP_WAIT": "1s",
            "OTEL_LLM_COLLECTOR_SAMPLING_WAIT": "1s", "OTEL_LLM_COLLECTOR_SAMPLING_PERCENTAGE": "10",
            "OTEL_LLM_COLLECTOR_SPANMETRICS_FLUSH_INTERVAL": "1s"}
TOPOLOGIES = {
    "2 agents + 2 gateways": ("jaeger", "gateway-1", "gateway-2", "agent-1", "agent-2"),
    "1 agent + 1 gateway": ("jaeger", "gateway-1", "agent-1"),
    "single collector": ("jaeger", "collector"),
}
ENTRY_PORT = {"collector": COLLECTOR_OTLP_HTTP.env_var, "agent-1": COLLECTOR_OTLP_HTTP.env_var,
              "agent-2": "OTEL_LLM_STACK_AGENT2_OTLP_HTTP_PORT"}
TELEMETRY_PORT = {"collector": "OTEL_LLM_STACK_COLLECTOR_TELEMETRY_PORT",
                  "agent-1": "OTEL_LLM_STACK_COLLECTOR_TELEMETRY_PORT",
                  "agent-2": "OTEL_LLM_STACK_AGENT2_TELEMETRY_PORT",
                  "gateway-1": "OTEL_LLM_STACK_GATEWAY1_TELEMETRY_PORT",
                  "gateway-2": "OTEL_LLM_STACK_GATEWAY2_TELEMETRY_PORT"}
# What the agents (or the single collector) lost on the way, by their own metrics.
LOSS_METRICS = ("otelcol_receiver_refused_spans", "otelcol_exporter_send_failed_spans",
                "otelcol_exporter_enqueue_failed_spans")
SPLIT_METRICS = ("otelcol_processor_llm_rollup_late_spans",
                 "otelcol_processor_llm_rollup_traces_released_early")
DRAIN_TIMEOUT_SECONDS = 120
HOLD_WAIT = "100s"  # under llm_rollup's max_wait (2m)
ROLLUP_HELD = "otelcol_processor_llm_rollup_traces_held"
SAMPLING_HELD = "otelcol_processor_tail_sampling_sampling_traces_on_memory"
HEAP_METRIC = "otelcol_process_runtime_heap_alloc_bytes"
TRACES_PER_REQUEST = SPANS_PER_REQUEST // len(REQUEST_TRACE)
# The stage whose wait is made long: (its wait variable, its held-traces gauge, the other stage's, spans per
# held trace: tail sampling also holds the llm.request span llm_rollup adds on release).
HOLDERS = {
    "tail_sampling": ("OTEL_LLM_COLLECTOR_SAMPLING_WAIT", SAMPLING_HELD, ROLLUP_HELD, len(REQUEST_TRACE) + 1),
    "llm_rollup": ("OTEL_LLM_COLLECTOR_ROLLUP_WAIT", ROLLUP_HELD, SAMPLING_HELD, len(REQUEST_TRACE)),
}


def _sum(stack: Stack, names: tuple[str, ...], metric: str) -> float:
    return sum(telemetry_sum(int(stack.env[TELEMETRY_PORT[name]]), metric) for name in names)


def _until(condition: Callable[[], bool], what: str, timeout: float = DRAIN_TIMEOUT_SECONDS) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _drain(stack: Stack, last: tuple[str, ...], posted: int) -> None:
    """Until the last tier accepted every posted span and its Jaeger exports held still for a second."""
    _until(lambda: _sum(stack, last, "otelcol_receiver_accepted_spans") >= posted,
           f"the last tier to accept all {posted} spans")
    previous = [-1.0]

    def settled() -> bool:
        current = _sum(stack, last, "otelcol_exporter_sent_spans")
        if current == previous[0]:
            return True
        previous[0] = current
        time.sleep(1.0)
        return False

    _until(settled, "Jaeger exports to settle")


@contextmanager
def _running(components: tuple[str, ...], settings: dict[str, str]) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory() as tmp:
        stack = Stack.create(Path(tmp), environ={}, random_ports=True, components=components,
                             jaeger_storage="memory", overrides=settings)
        try:
            stack.up()
            yield stack
        finally:
            stack.down()


def _collectors(stack: Stack) -> list[str]:
    return [component.name for component in stack.components if component.binary_field == "collector"]


def measure(components: tuple[str, ...], seconds: float) -> dict[str, float]:
    with _running(components, SETTINGS) as stack:
        collectors = _collectors(stack)
        entries = tuple(name for name in collectors if name in ENTRY_PORT)
        last = tuple(name for name in collectors if name.startswith("gateway")) or ("collector",)
        pids = {name: stack.pid(name) for name in collectors}
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        ports = [int(stack.env[ENTRY_PORT[name]]) for name in entries]
        posted, failed = [0, 0], [0, 0]
        started = time.monotonic()
        deadline = started + seconds

        def send(worker: int) -> None:
            session = requests.Session()
            turn = worker
            while time.monotonic() < deadline:
                body = request_body(REQUEST_TRACE)
                try:
                    post(session, ports[turn % len(ports)], body)
                    posted[worker] += SPANS_PER_REQUEST
                except requests.RequestException:
                    failed[worker] += SPANS_PER_REQUEST
                turn += 1

        threads = [threading.Thread(target=send, args=(worker,)) for worker in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        _drain(stack, last, sum(posted))
        cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        lost = sum(failed) + sum(_sum(stack, entries, metric) for metric in LOSS_METRICS)
        split = sum(_sum(stack, last, metric) for metric in SPLIT_METRICS)
    spans = sum(posted)
    tier = {prefix: sum(value for name, value in cpu.items() if name.startswith(prefix))
            for prefix in ("agent", "gateway", "collector")}
    last_cpu = tier["gateway"] or tier["collector"]
    return {"spans_per_s": spans / elapsed, "spans": spans, "lost": lost, "split": split,
            "agent_per_100k": tier["agent"] / spans * 1e5, "last_per_100k": last_cpu / spans * 1e5,
            "last_share": last_cpu / sum(cpu.values()), "spans_per_last_cpu_s": spans / last_cpu,
            "spans_per_agent_cpu_s": spans / tier["agent"] if tier["agent"] else 0.0}


def _rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _memory(stack: Stack, pid: int, readings: int = 5) -> tuple[int, float]:
    """(RSS, the lowest Go heap of a few readings a quarter second apart): the heap between collections."""
    heap = []
    for _ in range(readings):
        heap.append(_sum(stack, ("gateway-1",), HEAP_METRIC))
        time.sleep(0.25)
    return _rss_bytes(pid), min(heap)


def measure_held(holder: str, counts: list[int]) -> list[dict[str, float]]:
    """The gateway's memory idle and with each count of traces held by ``holder`` (a key of HOLDERS)."""
    wait_variable, held_metric, other_metric, spans_per_trace = HOLDERS[holder]
    settings = {**SETTINGS, wait_variable: HOLD_WAIT, "OTEL_LLM_COLLECTOR_SAMPLING_PERCENTAGE": "0",
                "OTEL_LLM_COLLECTOR_ROLLUP_MAX_TRACES": str(2 * max(counts))}  # not the bound: the wait holds
    gateway = ("gateway-1",)
    with _running(TOPOLOGIES["1 agent + 1 gateway"], settings) as stack:
        pid = stack.pid("gateway-1")
        port = int(stack.env[ENTRY_PORT["agent-1"]])
        session = requests.Session()
        _until(lambda: _sum(stack, gateway, HEAP_METRIC) > 0, "the gateway's own metrics")
        idle_rss, idle_heap = _memory(stack, pid)
        results, sent = [], 0
        for count in counts:
            while sent < count:
                post(session, port, request_body(REQUEST_TRACE))
                sent += TRACES_PER_REQUEST
            _until(lambda held=sent: _sum(stack, gateway, held_metric) >= held, f"{sent} traces held")
            _until(lambda: _sum(stack, gateway, other_metric) == 0, "the other stage to hold none")
            rss, heap = _memory(stack, pid)
            results.append({"holder": holder, "spans": spans_per_trace, "traces": sent,
                            "idle_rss_mib": idle_rss / 2**20, "rss_mib": rss / 2**20,
                            "rss_per_trace": (rss - idle_rss) / sent, "idle_heap_mib": idle_heap / 2**20,
                            "heap_mib": heap / 2**20, "heap_per_trace": (heap - idle_heap) / sent})
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--held", help="N1,N2: measure the memory per trace held for the decision instead")
    args = parser.parse_args()
    if args.held:
        counts = sorted(int(n) for n in args.held.split(","))
        rows = [row for holder in HOLDERS for row in measure_held(holder, counts)]
        print(f"\nTraces held by 1 gateway for the wait of one stage ({HOLD_WAIT}), the other's 1 s\n")
        print("| held by | spans per trace | traces held | gateway RSS (idle) | RSS over idle, per trace "
              "| Go heap (idle) | heap over idle, per trace |")
        print("|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['holder']} | {r['spans']} | {r['traces']:,} "
                  f"| {r['rss_mib']:.0f} MiB ({r['idle_rss_mib']:.0f}) | {r['rss_per_trace']:,.0f} B "
                  f"| {r['heap_mib']:.0f} MiB ({r['idle_heap_mib']:.0f}) | {r['heap_per_trace']:,.0f} B |")
        return
    print(f"\n{args.seconds:.0f} s of 5-span requests per topology from 2 threads, {SPANS_PER_REQUEST} spans "
          f"per OTLP/HTTP request, {args.rounds} round(s), topologies in turn\n")
    print("| round | topology | spans/s posted | spans | lost | late or split | CPU s/100k spans: agents "
          "| gateways (or the collector) | gateways' share of CPU | spans per gateway CPU-second "
          "| spans per agent CPU-second |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    ratios = []
    for round_ in range(1, args.rounds + 1):
        results = {name: measure(components, args.seconds) for name, components in TOPOLOGIES.items()}
        for name, r in results.items():
            agent = f"{r['spans_per_agent_cpu_s']:,.0f}" if r["spans_per_agent_cpu_s"] else "-"
            print(f"| {round_} | {name} | {r['spans_per_s']:,.0f} | {r['spans']:,} | {r['lost']:,.0f} "
                  f"| {r['split']:,.0f} | {r['agent_per_100k']:.2f} | {r['last_per_100k']:.2f} "
                  f"| {r['last_share']:.0%} | {r['spans_per_last_cpu_s']:,.0f} | {agent} |", flush=True)
        one, two = results["1 agent + 1 gateway"], results["2 agents + 2 gateways"]
        ratios.append((two["spans_per_s"] / one["spans_per_s"],
                       two["spans_per_last_cpu_s"] / one["spans_per_last_cpu_s"]))
    for round_, (throughput, per_core) in enumerate(ratios, 1):
        print(f"round {round_}, 2+2 / 1+1: spans/s {throughput:.2f}, "
              f"spans per gateway CPU-second {per_core:.2f}")


if __name__ == "__main__":
    main()
