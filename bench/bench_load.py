"""`otel-llm load`'s scaled-down profile on this machine: the request rate it reaches and the CPU it takes.

    python bench/bench_load.py [--stages 10s:3,40s:6,10s:0]

Starts the stack on random free ports and the reference app on it (tests/e2e/reference_app.py, the app the
end-to-end tests run), then runs `otel-llm load --json` with the given stages (default: the command's own) and
reads, from /proc, the CPU seconds (user + system) of the load generator (the `otel-llm load` process and its
children) and of the app's three processes over the same run. Prints one Markdown row: requests, requests/s
over the run, failed checks, generator CPU (s, and its share of one core over the load's wall time), app CPU.
Ratios within one run only: the box is shared.

Results and the command: docs/performance.md, section "Load generator".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

from otel_llm.load.profile import DEFAULT_STAGES  # noqa: E402
from tests.e2e.reference_app import ReferenceApp  # noqa: E402
from tests.support.otlp_receiver import OtlpHttpReceiver  # noqa: E402
from tests.support.stack import StackUnderTest, start_stack  # noqa: E402

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its reaped children, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default=DEFAULT_STAGES)
    args = parser.parse_args(argv)
    receiver = OtlpHttpReceiver()
    with tempfile.TemporaryDirectory() as state:
        runner = start_stack(
            Path(state) / "stack", langsmith_endpoint=receiver.base_url, langsmith_api_key=""
        )
        stack = StackUnderTest(runner, receiver)
        try:
            with ReferenceApp(stack, Path(state) / "app.log") as app:
                pids = [process.process.pid for process in app._processes]
                app_before = sum(cpu_seconds(pid) for pid in pids)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                started = time.monotonic()
                result = subprocess.run(
                    [
                        str(Path(sys.executable).with_name("otel-llm")), "load",
                        "--url", app.api_url.removesuffix("/api/v1/chat"),
                        "--prometheus-url", stack.prometheus_url, "--stages", args.stages,
                        "--settle", "0s", "--json",
                    ],
                    capture_output=True, text=True, check=False,
                )
                wall = time.monotonic() - started
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                app_cpu = sum(cpu_seconds(pid) for pid in pids) - app_before
        finally:
            runner.down()
            receiver.close()
    report = json.loads(result.stdout)
    generator_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load_s = report["duration_s"]
    print("| stages | requests | requests/s | failed checks | generator CPU | app CPU (3 processes) |")
    print("|---|---|---|---|---|---|")
    print(
        f"| `{args.stages}` | {report['requests']} | {report['requests_per_s']:.2f} | {report['failures']} | "
        f"{generator_cpu:.1f} s ({100 * generator_cpu / load_s:.0f} % of a core over {load_s:.0f} s; "
        f"process wall {wall:.0f} s) | {app_cpu:.1f} s ({100 * app_cpu / load_s:.0f} % of a core) |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
