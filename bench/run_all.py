"""Run every benchmark in bench/ (each ``bench_*.py``, in name order) with this interpreter, in turn.

Each benchmark prints its own results (Markdown tables meant for docs/performance.md). Running them in turn,
not in parallel, keeps them from measuring each other. Exit status: 0 when every benchmark exited 0, else 1.

Run: .venv/bin/python bench/run_all.py [--only NAME ...]   (or ``make bench``)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent


def benchmarks(only: list[str] | None = None) -> list[Path]:
    """The benchmark scripts to run: all ``bench_*.py``, or those whose stem contains one of ``only``."""
    found = sorted(BENCH_DIR.glob("bench_*.py"))
    if only:
        found = [path for path in found if any(name in path.stem for name in only)]
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help="run only benchmarks whose name contains NAME"
    )
    args = parser.parse_args(argv)
    scripts = benchmarks(args.only)
    if not scripts:
        print("no benchmark matched", file=sys.stderr)
        return 1
    failed = []
    for script in scripts:
        print(f"\n=== {script.relative_to(REPO_ROOT)} ===", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(script)], cwd=REPO_ROOT, check=False)
        elapsed = time.monotonic() - started
        print(f"=== {script.name}: exit {result.returncode} in {elapsed:.1f} s ===", flush=True)
        if result.returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
