"""OTEL_LLM_* environment variables: parsed in one place, one warning per bad variable, then the default.

``load_settings()`` reads every otel-llm switch into a frozen ``Settings``. The ``env_*`` helpers are
public so other modules parse their own variables the same way: a missing or empty variable gives the
default silently; a value that does not parse or is out of range logs ONE warning per variable per process
(naming the variable, the bad value and what it accepts) and gives the default. Nothing here raises.

The table of variables, defaults and accepted values is docs/configuration.md.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from otel_llm import semconv

_logger = logging.getLogger(__name__)

_TRUE_WORDS = frozenset({"true", "1", "yes", "on"})
_FALSE_WORDS = frozenset({"false", "0", "no", "off"})
# An explicit empty list for a csv variable (an empty string means "unset", as for OTEL_* variables).
CSV_NONE = "none"

DEFAULT_BAGGAGE_KEYS: tuple[str, ...] = (
    semconv.EXPERIMENT_ID,
    semconv.EXPERIMENT_ARM,
    semconv.EXPERIMENT_PROVIDER,
    semconv.EXPERIMENT_MODEL,
    semconv.SESSION_ID,
    semconv.GEN_AI_CONVERSATION_ID,
)
# Instrumentation scopes that record gen_ai.client.* metrics themselves; span-derived metrics skip their
# spans. Entries match a scope name exactly or as a dotted prefix: "opentelemetry.instrumentation.openai"
# covers OpenLLMetry's "opentelemetry.instrumentation.openai.v1".
DEFAULT_SPAN_METRICS_SKIP_SCOPES: tuple[str, ...] = (
    "opentelemetry.instrumentation.openai_v2",
    "opentelemetry.instrumentation.openai_agents",
    "opentelemetry.instrumentation.google_genai",
    "opentelemetry.instrumentation.vertexai",
    "opentelemetry.instrumentation.langchain",
    "opentelemetry.instrumentation.openai",
    "opentelemetry.instrumentation.anthropic",
    "opentelemetry.instrumentation.bedrock",
    "opentelemetry.instrumentation.cohere",
    "opentelemetry.instrumentation.mistralai",
    "opentelemetry.instrumentation.groq",
    "opentelemetry.instrumentation.ollama",
    "opentelemetry.instrumentation.botocore.bedrock-runtime",  # contrib botocore's Bedrock extension
)

_Number = TypeVar("_Number", int, float)
_warned_variables: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(name: str, raw: str, accepts: str, default: object) -> None:
    with _warned_lock:
        if name in _warned_variables:
            return
        _warned_variables.add(name)
    _logger.warning(
        "Invalid value %r for %s; it accepts %s. Using the default %r.", raw, name, accepts, default
    )


def reset_warnings() -> None:
    """Forget which variables were warned about (for tests that check the one warning)."""
    with _warned_lock:
        _warned_variables.clear()


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    value = (os.environ if environ is None else environ).get(name)
    if value is None:
        return None
    value = value.strip()
    return value or None


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    """true/false (also 1/0, yes/no, on/off), case-insensitive."""
    raw = _raw(name, environ)
    if raw is None:
        return default
    word = raw.lower()
    if word in _TRUE_WORDS:
        return True
    if word in _FALSE_WORDS:
        return False
    _warn_once(name, raw, "true or false", default)
    return default


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """A decimal integer within [minimum, maximum] (either bound optional)."""
    return _env_number(name, default, int, "an integer", minimum, maximum, environ)


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    """A finite decimal number within [minimum, maximum] (either bound optional)."""
    return _env_number(name, default, float, "a number", minimum, maximum, environ)


def _env_number(
    name: str,
    default: _Number,
    parse: Callable[[str], _Number],
    kind: str,
    minimum: float | None,
    maximum: float | None,
    environ: Mapping[str, str] | None,
) -> _Number:
    raw = _raw(name, environ)
    if raw is None:
        return default
    try:
        value = parse(raw)
    except ValueError:
        value = None
    valid = (
        value is not None
        and math.isfinite(value)
        and (minimum is None or value >= minimum)
        and (maximum is None or value <= maximum)
    )
    if not valid:
        _warn_once(name, raw, f"{kind} {_range_text(minimum, maximum)}".rstrip(), default)
        return default
    return value


def env_csv(
    name: str, default: Sequence[str], *, environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """Comma-separated names; blanks and repeats dropped (first kept); ``none`` is an empty list."""
    raw = _raw(name, environ)
    if raw is None:
        return tuple(default)
    if raw.lower() == CSV_NONE:
        return ()
    items = tuple(dict.fromkeys(item.strip() for item in raw.split(",") if item.strip()))
    if not items:
        _warn_once(name, raw, f"comma-separated names or {CSV_NONE!r}", tuple(default))
        return tuple(default)
    return items


def env_choice(
    name: str, default: str, choices: Sequence[str], *, environ: Mapping[str, str] | None = None
) -> str:
    """One of ``choices``, case-insensitive (choices are given in lower case)."""
    raw = _raw(name, environ)
    if raw is None:
        return default
    word = raw.lower()
    if word in choices:
        return word
    _warn_once(name, raw, "one of " + ", ".join(choices), default)
    return default


def _range_text(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f"from {minimum} to {maximum}"
    if minimum is not None:
        return f">= {minimum}"
    if maximum is not None:
        return f"<= {maximum}"
    return ""


@dataclass(frozen=True)
class Settings:
    """Every otel-llm switch; the defaults are the values used when no variable is set."""

    enabled: bool = True
    baggage_keys: tuple[str, ...] = DEFAULT_BAGGAGE_KEYS
    baggage_max_value_length: int = 256
    baggage_trust_incoming: bool = False
    rollup_enabled: bool = True
    rollup_window_ms: int = 2000
    rollup_max_traces: int = 10000
    rollup_max_spans_per_trace: int = 5000
    rollup_max_buffered_spans: int = 50000
    rollup_max_age_ms: int = 60000
    metrics_cardinality_limit: int = 100
    span_metrics: bool = True
    span_metrics_skip_scopes: tuple[str, ...] = DEFAULT_SPAN_METRICS_SKIP_SCOPES


def load_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """Read the OTEL_LLM_* variables from ``environ``; bad values warn once and take the default."""
    defaults = Settings()
    return Settings(
        enabled=env_bool("OTEL_LLM_ENABLED", defaults.enabled, environ=environ),
        baggage_keys=env_csv("OTEL_LLM_BAGGAGE_KEYS", defaults.baggage_keys, environ=environ),
        baggage_max_value_length=env_int(
            "OTEL_LLM_BAGGAGE_MAX_VALUE_LENGTH",
            defaults.baggage_max_value_length,
            minimum=1,
            maximum=4096,
            environ=environ,
        ),
        baggage_trust_incoming=env_bool(
            "OTEL_LLM_BAGGAGE_TRUST_INCOMING", defaults.baggage_trust_incoming, environ=environ
        ),
        rollup_enabled=env_bool("OTEL_LLM_ROLLUP", defaults.rollup_enabled, environ=environ),
        rollup_window_ms=env_int(
            "OTEL_LLM_ROLLUP_WINDOW_MS",
            defaults.rollup_window_ms,
            minimum=0,
            maximum=600_000,
            environ=environ,
        ),
        rollup_max_traces=env_int(
            "OTEL_LLM_ROLLUP_MAX_TRACES",
            defaults.rollup_max_traces,
            minimum=1,
            maximum=1_000_000,
            environ=environ,
        ),
        rollup_max_spans_per_trace=env_int(
            "OTEL_LLM_ROLLUP_MAX_SPANS_PER_TRACE",
            defaults.rollup_max_spans_per_trace,
            minimum=1,
            maximum=1_000_000,
            environ=environ,
        ),
        rollup_max_buffered_spans=env_int(
            "OTEL_LLM_ROLLUP_MAX_BUFFERED_SPANS",
            defaults.rollup_max_buffered_spans,
            minimum=1,
            maximum=10_000_000,
            environ=environ,
        ),
        rollup_max_age_ms=env_int(
            "OTEL_LLM_ROLLUP_MAX_AGE_MS",
            defaults.rollup_max_age_ms,
            minimum=1,
            maximum=3_600_000,
            environ=environ,
        ),
        metrics_cardinality_limit=env_int(
            "OTEL_LLM_METRICS_CARDINALITY_LIMIT",
            defaults.metrics_cardinality_limit,
            minimum=1,
            maximum=100_000,
            environ=environ,
        ),
        span_metrics=env_bool("OTEL_LLM_SPAN_METRICS", defaults.span_metrics, environ=environ),
        span_metrics_skip_scopes=env_csv(
            "OTEL_LLM_SPAN_METRICS_SKIP_SCOPES", defaults.span_metrics_skip_scopes, environ=environ
        ),
    )
