"""``python -m otel_llm.dashboard [--write | --check]``: print, rewrite or check the committed dashboard."""

from __future__ import annotations

import argparse
import sys

from otel_llm.stack.paths import DASHBOARD, PROMETHEUS_RULES_DIR


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m otel_llm.dashboard", description=__doc__.split(": ")[1])
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help=f"rewrite {DASHBOARD}")
    action.add_argument("--check", action="store_true", help=f"exit 1 when {DASHBOARD} is stale")
    args = parser.parse_args(argv)
    try:
        from otel_llm.dashboard.build import render
    except ModuleNotFoundError as error:
        if error.name != "grafana_foundation_sdk":
            raise
        print("grafana-foundation-sdk is missing: pip install -e '.[dashboard]'", file=sys.stderr)
        return 2
    text = render(sorted(PROMETHEUS_RULES_DIR.glob("*.yml")))
    if args.write:
        DASHBOARD.write_text(text)
        print(f"wrote {DASHBOARD}")
        return 0
    if args.check:
        current = DASHBOARD.read_text() == text
        print(f"{DASHBOARD}: {'current' if current else 'STALE: run python -m otel_llm.dashboard --write'}")
        return 0 if current else 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
