"""Spans lost and process CPU per span under load: otel-llm's pipeline vs the plain SDK, to a real collector.

Run: .venv/bin/python bench/bench_export_load.py [--seconds 10] [--rates 0.9,1.3]

Starts the collector and Jaeger (the stack's binaries, random ports on 127.0.0.1), then, one process per run
(tests/support/span_load.py: 5-span traces paced at a given rate, OTLP/gRPC, same queue size and delay):

1. The plain SDK, unpaced for ``--seconds``: the spans/s its application thread makes is its ceiling on
   this box (its export thread keeps up: nothing dropped).
2. For each factor in ``--rates``, the plain SDK and otel-llm (OTEL_LLM_ROLLUP=process, then collector)
   paced at factor x that ceiling for ``--seconds``: spans offered, spans counted as dropped, spans in Jaeger
   (offered - dropped must equal Jaeger's count), process CPU per span and its ratio to the plain SDK's in
   the same run.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.span_load import run_load, wait_for_spans  # noqa: E402
from tests.support.stack import start_stack  # noqa: E402

PIPELINES = (("sdk", "process"), ("otel-llm", "process"), ("otel-llm", "collector"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rates", default="0.9,1.3", help="factors of the plain SDK's ceiling")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as state:
        stack = start_stack(Path(state), langsmith_endpoint="http://127.0.0.1:9", langsmith_api_key="",
                            components=("collector", "jaeger"))
        try:
            endpoint, query_url = stack.otlp_grpc_endpoint, stack.jaeger_query_url
            ceiling_run = run_load(endpoint, "sdk", 0, args.seconds)
            ceiling = ceiling_run["offered"] / ceiling_run["load_s"]
            print(f"plain SDK unpaced: {ceiling:.0f} spans/s made (its ceiling), "
                  f"{ceiling_run['cpu_s'] / ceiling_run['offered'] * 1e6:.1f} us CPU/span, "
                  f"dropped {ceiling_run['dropped'] or 0}")
            print("| pipeline | offered spans/s | offered | dropped (counted) | in Jaeger | lost uncounted "
                  "| CPU us/span | vs SDK |")
            print("|---|---|---|---|---|---|---|---|")
            for factor in (float(text) for text in args.rates.split(",")):
                rate = factor * ceiling
                sdk_cpu = None
                for pipeline, rollup in PIPELINES:
                    result = run_load(endpoint, pipeline, rate, args.seconds, rollup)
                    dropped = sum(result["dropped"].values())
                    stored = wait_for_spans(query_url, result["service"], result["offered"] - dropped)
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
