"""Spans lost and process CPU per span under load: otel-llm's pipeline vs the plain SDK, to a real collector.

Run: .venv/bin/python bench/bench_export_load.py [--seconds 10] [--rates 0.9,1.3]

Starts the collector and Jaeger (the stack's binaries, random ports on 127.0.0.1), then, one process per run
(tests/support/span_load.py: 5-span traces paced at a given rate, OTLP/gRPC, same queue size and delay):

1. The plain SDK, unpaced for ``--seconds``: the spans/s it exported (made minus dropped) while its
   application thread made spans as fast as it could is its ceiling on this box.
2. For each factor in ``--rates``, the plain SDK and otel-llm (OTEL_LLM_ROLLUP=process, collector, off)
   paced at factor x that ceiling for ``--seconds``: spans offered, spans counted as dropped, spans the
   collector accepted during the run (its ``otelcol_receiver_accepted_spans``: counting 100,000 spans through
   Jaeger's query API times out;
   tests/integration/test_export_load.py counts in Jaeger itself), process CPU per span and its ratio to the
   plain SDK's in the same run.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from otel_llm.stack.run import COLLECTOR_TELEMETRY  # noqa: E402
from tests.support.poll import poll  # noqa: E402
from tests.support.span_load import run_load  # noqa: E402
from tests.support.stack import start_stack  # noqa: E402

PIPELINES = (("sdk", "process"), ("otel-llm", "process"), ("otel-llm", "collector"), ("otel-llm", "off"))


ACCEPTED = re.compile(
    r'^otelcol_receiver_accepted_spans(?:_total)?\{[^}]*receiver="otlp"[^}]*\} (\S+)$', re.MULTILINE)


def accepted(metrics_url: str) -> int:
    """Spans the collector's OTLP receiver has accepted since it started (what the apps delivered; the
    collector's trace processor adds a summary span per trace on the way to Jaeger, so Jaeger's count is
    not the apps')."""
    text = requests.get(metrics_url, timeout=10).text
    return int(sum(float(value) for value in ACCEPTED.findall(text)))


def wait_for_accepted(metrics_url: str, before: int, expected: int) -> int:
    """Poll until the collector accepted ``expected`` more spans than ``before`` (or none more for 15 s: some
    were lost); the number accepted since ``before``."""
    last = {"sent": -1, "since": time.monotonic()}

    def done() -> bool:
        sent = accepted(metrics_url) - before
        if sent != last["sent"]:
            last.update(sent=sent, since=time.monotonic())
        return sent >= expected or time.monotonic() - last["since"] > 15

    poll(done, timeout=300, interval=1.0, message=f"{expected} spans accepted by the collector")
    return last["sent"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="0.9,1.3", help="factors of the plain SDK's ceiling")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        stack = start_stack(Path(state), langsmith_endpoint="http://127.0.0.1:9", langsmith_api_key="",
                            components=("collector", "jaeger"))
        try:
            endpoint = stack.otlp_grpc_endpoint
            metrics_url = f"http://127.0.0.1:{stack.port(COLLECTOR_TELEMETRY)}/metrics"
            ceiling_run = run_load(endpoint, "sdk", 0, args.seconds)
            wait_for_accepted(metrics_url, 0, ceiling_run["offered"] - sum(ceiling_run["dropped"].values()))
            # What its export thread delivered while the application thread made spans as fast as it could.
            ceiling = (ceiling_run["offered"] - sum(ceiling_run["dropped"].values())) / ceiling_run["load_s"]
            print(f"plain SDK unpaced: {ceiling_run['offered'] / ceiling_run['load_s']:.0f} spans/s made, "
                  f"{ceiling:.0f} spans/s exported (its ceiling), "
                  f"{ceiling_run['cpu_s'] / ceiling_run['offered'] * 1e6:.1f} us CPU/span, "
                  f"dropped {ceiling_run['dropped'] or 0}")
            print("| pipeline | offered spans/s | offered | dropped (counted) | accepted by the collector "
                  "| lost uncounted | CPU us/span | vs SDK |")
            print("|---|---|---|---|---|---|---|---|")
            for factor in (float(text) for text in args.rates.split(",")):
                rate = factor * ceiling
                sdk_cpu = None
                for pipeline, rollup in PIPELINES:
                    before = accepted(metrics_url)
                    result = run_load(endpoint, pipeline, rate, args.seconds, rollup)
                    dropped = sum(result["dropped"].values())
                    stored = wait_for_accepted(metrics_url, before, result["offered"] - dropped)
                    cpu = result["cpu_s"] / result["offered"]
                    sdk_cpu = sdk_cpu or cpu
                    name = "plain SDK" if pipeline == "sdk" else f"otel-llm, OTEL_LLM_ROLLUP={rollup}"
                    print(f"| {name} | {rate:.0f} ({factor}x) | {result['offered']} | {dropped} "
                          f"{result['dropped'] or ''} | {stored} | {result['offered'] - dropped - stored} "
                          f"| {cpu * 1e6:.1f} | {cpu / sdk_cpu:.2f}x |", flush=True)
        finally:
            stack.down()


if __name__ == "__main__":
    main()
