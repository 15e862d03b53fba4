"""Where the CLI commands find Jaeger and Prometheus: one order for ``search``, ``ab`` and ``trace``.

A URL comes from the command's flag, else its variable (``OTEL_LLM_JAEGER_URL``,
``OTEL_LLM_PROMETHEUS_URL``), else the ports ``otel-llm stack up`` recorded in its state directory
(``stack.json`` in ``$OTEL_LLM_STACK_STATE_DIR`` or ``~/.local/state/otel-llm``), else the stack's default
port. So a stack started on other ports (``OTEL_LLM_STACK_JAEGER_QUERY_HTTP_PORT=26686 otel-llm stack up``) is
found without repeating them. ``otel-llm demo --stack`` runs on that recorded stack itself.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

JAEGER_URL_ENV = "OTEL_LLM_JAEGER_URL"
PROMETHEUS_URL_ENV = "OTEL_LLM_PROMETHEUS_URL"
DEFAULT_JAEGER_URL = "http://127.0.0.1:16686"
DEFAULT_PROMETHEUS_URL = "http://127.0.0.1:9090"


def _recorded(endpoint: Callable[..., str], environ: Mapping[str, str]) -> str | None:
    from otel_llm.stack.run import Stack, default_state_dir

    try:
        stack = Stack.load(default_state_dir(environ), environ)
    except (KeyError, TypeError, ValueError):  # a stack.json from another version, or edited by hand
        return None
    return endpoint(stack) if stack is not None else None


def _resolve(
    flag: str | None, variable: str, endpoint: Callable[..., str], default: str, environ: Mapping[str, str]
) -> str:
    return flag or environ.get(variable) or _recorded(endpoint, environ) or default


def jaeger_url(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The Jaeger query URL: the flag, ``$OTEL_LLM_JAEGER_URL``, the recorded stack's, or the default."""
    environ = os.environ if environ is None else environ
    return _resolve(flag, JAEGER_URL_ENV, lambda stack: stack.jaeger_query_url, DEFAULT_JAEGER_URL, environ)


def prometheus_url(flag: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """The Prometheus URL: the flag, ``$OTEL_LLM_PROMETHEUS_URL``, the recorded stack's, or the default."""
    environ = os.environ if environ is None else environ
    return _resolve(
        flag, PROMETHEUS_URL_ENV, lambda stack: stack.prometheus_url, DEFAULT_PROMETHEUS_URL, environ
    )


def url_help(what: str, variable: str, default: str) -> str:
    """The ``--*-url`` help: where the URL comes from when the flag is not given."""
    return f"{what} URL (default: ${variable}, else the stack `otel-llm stack up` recorded, else {default})"
