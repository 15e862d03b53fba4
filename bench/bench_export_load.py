"""Spans lost and process CPU per span under load: otel-llm's pipeline vs the plain SDK, to a real collector.

Run: .venv/bin/python bench/bench_export_load.py [--seconds 10] [--rates 0.9,1.3]

Starts the collector and Jaeger (the stack's binaries, random ports on 127.0.0.1), then, one process per run
(tests/support/span_load.py: 5-span traces paced at a given rate, OTLP/gRPC, same queue size and delay):

1. The plain SDK, unpaced for ``--seconds``: the spans/s it exported (made minus dropped) while its
   application thread made spans as fast as it could is its ceiling on this box.
2. For each factor in ``--rates``, the plain SDK and otel-llm (OTEL_LLM_ROLLUP=process, collector, off)
   paced at factor x that ceiling for ``--seconds``: spans offered, spans counted as dropped, spans the
   collector sent to Jaeger during the run (its ``otelcol_exporter_sent_spans`` for the Jaeger exporter:
   counting 100,000 spans through Jaeger's query API times out; tests/integration/test_export_load.py
   counts in Jaeger itself), process CPU per span and its ratio to the plain SDK's in the same run.
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


SENT_TO_JAEGER = re.compile(
    r'^otelcol_exporter_sent_spans(?:_total)?\{[^}]*exporter="[^"]*jaeger[^"]*"[^}]*\} (\S+)$', re.MULTILINE)


def sent_to_jaeger(metrics_url: str) -> int:
    """Spans the collector has sent to Jaeger since it started."""
    text = requests.get(metrics_url, timeout=10).text
    return int(sum(float(value) for value in SENT_TO_JAEGER.findall(text)))


def wait_for_sent(metrics_url: str, before: int, expected: int) -> int:
    """Poll until the collector sent ``expected`` more spans to Jaeger than ``before`` (or stopped sending for
    15 s: some were lost); the number sent since ``before``."""
    last = {"sent": -1, "since": time.monotonic()}

    def done() -> bool:
        sent = sent_to_jaeger(metrics_url) - before
        if sent != last["sent"]:
            last.update(sent=sent, since=time.monotonic())
        return sent >= expected or time.monotonic() - last["since"] > 15

    poll(done, timeout=300, interval=1.0, message=f"{expected} spans sent to Jaeger")
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
            wait_for_sent(metrics_url, 0, ceiling_run["offered"] - sum(ceiling_run["dropped"].values()))
            # What its export thread delivered while the application thread made spans as fast as it could.
            ceiling = (ceiling_run["offered"] - sum(ceiling_run["dropped"].values())) / ceiling_run["load_s"]
            print(f"plain SDK unpaced: {ceiling_run['offered'] / ceiling_run['load_s']:.0f} spans/s made, "
                  f"{ceiling:.0f} spans/s exported (its ceiling), "
                  f"{ceiling_run['cpu_s'] / ceiling_run['offered'] * 1e6:.1f} us CPU/span, "
                  f"dropped {ceiling_run['dropped'] or 0}")
            print("| pipeline | offered spans/s | offered | dropped (counted) | sent to Jaeger "
                  "| lost uncounted | CPU us/span | vs SDK |")
            print("|---|---|---|---|---|---|---|---|")
            for factor in (float(text) for text in args.rates.split(",")):
                rate = factor * ceiling
                sdk_cpu = None
                for pipeline, rollup in PIPELINES:
                    before = sent_to_jaeger(metrics_url)
                    result = run_load(endpoint, pipeline, rate, args.seconds, rollup)
                    dropped = sum(result["dropped"].values())
                    stored = wait_for_sent(metrics_url, before, result["offered"] - dropped)
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
