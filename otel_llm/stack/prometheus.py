"""The Prometheus config of the stack, rendered from ``prometheus/prometheus.yml.tmpl``.

Prometheus 2.42 expands no environment variables in its config file, so the runner renders the template with
the same variables the collector and Jaeger configs read (docs/stack.md) and starts Prometheus on the result.
Rule files are referenced by absolute path, so the rendered file can live anywhere (the runner's state dir).
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Mapping
from pathlib import Path

from otel_llm.stack import paths

# Variables of the template that come from the environment, with their defaults (docs/stack.md).
TEMPLATE_DEFAULTS: Mapping[str, str] = {
    "OTEL_LLM_COLLECTOR_PROMETHEUS_PORT": "8889",
    "OTEL_LLM_COLLECTOR_TELEMETRY_PORT": "8888",
    "OTEL_LLM_PROMETHEUS_SCRAPE_INTERVAL": "2s",
}
RULES_DIR_VARIABLE = "OTEL_LLM_PROMETHEUS_RULES_DIR"  # filled from paths, not from the environment
# The gateway topology's other collectors (otel_llm/stack/run.py): every
# OTEL_LLM_<GATEWAYn|AGENTn>_PROMETHEUS_PORT in the environment is scraped beside the collector's exporter,
# every _TELEMETRY_PORT beside its own metrics.
_MORE_TARGETS = re.compile(r"OTEL_LLM_(?:GATEWAY|AGENT)[0-9]+_(PROMETHEUS|TELEMETRY)_PORT")
# OTEL_LLM_COLLECTOR_PROMETHEUS_PORT and its peers -> the template's OTEL_LLM_COLLECTOR_PROMETHEUS_TARGETS
TARGETS_SUFFIX = "_TARGETS"
_RULES: Mapping[str, re.Pattern[str]] = {
    "OTEL_LLM_COLLECTOR_PROMETHEUS_PORT": re.compile(r"[1-9][0-9]{0,4}"),
    "OTEL_LLM_COLLECTOR_TELEMETRY_PORT": re.compile(r"[1-9][0-9]{0,4}"),
    "OTEL_LLM_PROMETHEUS_SCRAPE_INTERVAL": re.compile(r"[1-9][0-9]*(ms|s|m)"),
}
_RULE_TEXT = {
    "OTEL_LLM_COLLECTOR_PROMETHEUS_PORT": "a TCP port number",
    "OTEL_LLM_COLLECTOR_TELEMETRY_PORT": "a TCP port number",
    "OTEL_LLM_PROMETHEUS_SCRAPE_INTERVAL": "a Prometheus duration such as 2s, 500ms or 1m",
}


def template_values(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The template's values: each variable from ``env`` (default ``os.environ``) when set, else its default.

    A set but invalid value raises ValueError naming the variable and the rule: a config Prometheus cannot
    load would only fail later, in its log.
    """
    env = os.environ if env is None else env
    values = {}
    for name, default in TEMPLATE_DEFAULTS.items():
        value = str(env.get(name) or default).strip()
        if not _RULES[name].fullmatch(value):
            raise ValueError(f"{name} must be {_RULE_TEXT[name]}, got {value!r}")
        values[name] = value
    for kind in ("PROMETHEUS", "TELEMETRY"):
        first = f"OTEL_LLM_COLLECTOR_{kind}_PORT"
        ports = [values[first]]
        for name in sorted(env):
            match = _MORE_TARGETS.fullmatch(name)
            if match and match.group(1) == kind:
                value = str(env[name]).strip()
                if not _RULES[first].fullmatch(value):
                    raise ValueError(f"{name} must be {_RULE_TEXT[first]}, got {value!r}")
                ports.append(value)
        targets = ", ".join(f'"127.0.0.1:{port}"' for port in ports)
        values[first.removesuffix("_PORT") + TARGETS_SUFFIX] = targets
    values[RULES_DIR_VARIABLE] = str(paths.PROMETHEUS_RULES_DIR)
    return values


def render_prometheus_config(env: Mapping[str, str] | None = None) -> str:
    """The rendered prometheus.yml text for ``env`` (default ``os.environ``)."""
    template = string.Template(paths.PROMETHEUS_TEMPLATE.read_text())
    return template.substitute(template_values(env))


def write_prometheus_config(destination: Path, env: Mapping[str, str] | None = None) -> Path:
    """Render into ``destination`` (parents created) and return it."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(render_prometheus_config(env))
    return destination
