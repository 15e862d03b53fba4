"""``python -m otel_llm.dashboard [--write | --check]``: print, rewrite or check the committed dashboard."""

from __future__ import annotations

import sys

from otel_llm import generated
from otel_llm.stack.paths import DASHBOARD, PROMETHEUS_RULES_DIR


def main(argv: list[str] | None = None) -> int:
    try:
        from otel_llm.dashboard.build import render
    except ModuleNotFoundError as error:
        if error.name != "grafana_foundation_sdk":
            raise
        print("grafana-foundation-sdk is missing: pip install -e '.[dashboard]'", file=sys.stderr)
        return 2
    text = render(sorted(PROMETHEUS_RULES_DIR.glob("*.yml")))
    return generated.main(argv, "otel_llm.dashboard", __doc__.split(": ")[1], lambda: {DASHBOARD: text},
                          preview=lambda: text)


if __name__ == "__main__":
    sys.exit(main())
