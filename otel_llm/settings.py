"""OTEL_LLM_* environment variables: parsed in one place, one warning per bad variable, then the default.

``load_settings()`` reads every otel-llm switch into a frozen ``Settings``, then applies configure()'s
keyword overrides by the same rules. The ``env_*`` helpers are public so other modules parse their own
variables the same way: a missing or empty variable gives the default silently; a value that does not parse
or is out of range logs ONE warning per variable per process (naming the variable, the bad value and what it
accepts) and gives the default. Nothing here raises.

The table of variables, defaults and accepted values is docs/configuration.md.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import re2

from otel_llm import semconv
from otel_llm.arms import ARMS_ACCEPTS, Arm, checked_arms, parse_arms

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
# Instrumentation scopes whose spans never add span-derived metrics: none by default, since otel-llm sees
# which calls an instrumentation records GenAI metrics for (otel_llm.metrics.recorded). The override, for
# instrumentations that record on a MeterProvider of their own. Entries match a scope name exactly or as a
# dotted prefix: "opentelemetry.instrumentation.openai" covers "opentelemetry.instrumentation.openai.v1".
DEFAULT_SPAN_METRICS_SKIP_SCOPES: tuple[str, ...] = ()

# OTEL_LLM_ROLLUP: the in-process roll-up stage (process), only per-span normalisation because the otel-llm
# collector rolls up (collector), or spans exported as made (off). docs/configuration.md says which when.
ROLLUP_PROCESS, ROLLUP_COLLECTOR, ROLLUP_OFF = "process", "collector", "off"
ROLLUP_MODES = (ROLLUP_PROCESS, ROLLUP_COLLECTOR, ROLLUP_OFF)

_INVALID = object()  # what a rule returns for a value it does not accept
_warned_variables: set[str] = set()
_warned_lock = threading.Lock()


def _warn_once(name: str, raw: object, accepts: str, default: object, *, using: str = "the default ") -> None:
    warn_invalid(name, raw, accepts, f"{using}{default!r}")


def warn_once(key: str, message: str, *args: object) -> None:
    """Log ``message % args`` as a warning the first time ``key`` is seen in this process, never again."""
    with _warned_lock:
        if key in _warned_variables:
            return
        _warned_variables.add(key)
    _logger.warning(message, *args)


def warn_invalid(name: str, raw: object, accepts: str, fallback: str) -> None:
    """ONE warning per process for variable ``name``: its bad value, what it accepts, what is used instead."""
    warn_once(name, "Invalid value %r for %s; it accepts %s. Using %s.", raw, name, accepts, fallback)


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


class _Rule:
    """What one setting accepts: ``from_text`` reads a variable's text, ``from_value`` a configure() argument.

    Both return ``_INVALID`` for what they do not accept. A string argument is read as the variable would be.
    """

    accepts: str

    def from_text(self, text: str) -> Any:
        raise NotImplementedError

    def from_value(self, value: Any) -> Any:
        return self.from_text(value.strip()) if isinstance(value, str) else self._from_object(value)

    def _from_object(self, value: Any) -> Any:
        return _INVALID


class _Bool(_Rule):
    accepts = "true or false"

    def from_text(self, text: str) -> Any:
        word = text.lower()
        if word in _TRUE_WORDS:
            return True
        if word in _FALSE_WORDS:
            return False
        return _INVALID

    def _from_object(self, value: Any) -> Any:
        return value if isinstance(value, bool) else _INVALID


class _Number(_Rule):
    def __init__(self, parse: type, minimum: float | None, maximum: float | None) -> None:
        self._parse = parse
        self._minimum, self._maximum = minimum, maximum
        kind = "an integer" if parse is int else "a number"
        self.accepts = f"{kind} {_range_text(minimum, maximum)}".rstrip()

    def from_text(self, text: str) -> Any:
        try:
            return self._checked(self._parse(text))
        except (ValueError, OverflowError):  # OverflowError: a 400-digit number as a float
            return _INVALID

    def _from_object(self, value: Any) -> Any:
        types = (int,) if self._parse is int else (int, float)
        if isinstance(value, bool) or not isinstance(value, types):
            return _INVALID
        try:
            return self._checked(self._parse(value))
        except OverflowError:
            return _INVALID

    def _checked(self, value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return _INVALID
        in_range = (self._minimum is None or value >= self._minimum) and (
            self._maximum is None or value <= self._maximum)
        return value if in_range else _INVALID


class _Names(_Rule):
    """Comma-separated names; blanks and repeats dropped (first kept); ``none`` is an empty list."""

    accepts = f"comma-separated names (or a list of names) or {CSV_NONE!r}"

    def from_text(self, text: str) -> Any:
        if text.lower() == CSV_NONE:
            return ()
        return self._names(text.split(",")) or _INVALID

    def _from_object(self, value: Any) -> Any:
        if not isinstance(value, (list, tuple, set, frozenset)) or not all(isinstance(v, str) for v in value):
            return _INVALID
        return self._names(value)

    @staticmethod
    def _names(items: Iterable[str]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(item.strip() for item in items if item.strip()))


class _Choice(_Rule):
    def __init__(self, choices: Sequence[str]) -> None:
        self._choices = tuple(choices)
        self.accepts = "one of " + ", ".join(self._choices)

    def from_text(self, text: str) -> Any:
        word = text.lower()
        return word if word in self._choices else _INVALID


class _Regexes(_Rule):
    """Regular expressions separated by whitespace (write ``\\s`` for a space); each must compile in RE2."""

    accepts = "regular expressions separated by spaces (RE2 syntax), or a list of them"

    def from_text(self, text: str) -> Any:
        return self._compiled(text.split())

    def _from_object(self, value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            return _INVALID
        return self._compiled(value)

    @staticmethod
    def _compiled(patterns: Sequence[str]) -> Any:
        try:
            for pattern in patterns:
                re.compile(pattern)  # first: a syntax error fails here quietly (RE2 would also log it)
                re2.compile(pattern)
        except (re.error, re2.error):
            return _INVALID
        return tuple(patterns)


class _Path(_Rule):
    """A file path (not checked here: the module that reads the file says what is wrong with it)."""

    accepts = "a file path"

    def from_text(self, text: str) -> Any:
        return text


class _RollupMode(_Choice):
    """OTEL_LLM_ROLLUP: process, collector or off; true and false (the earlier boolean) mean process, off."""

    def __init__(self) -> None:
        super().__init__(ROLLUP_MODES)
        self.accepts += " (true means process, false means off)"

    def from_text(self, text: str) -> Any:
        return self._mode(_Bool().from_text(text)) or super().from_text(text)

    def _from_object(self, value: Any) -> Any:
        return self._mode(_Bool().from_value(value)) or _INVALID

    @staticmethod
    def _mode(flag: Any) -> str | None:
        return None if flag is _INVALID else (ROLLUP_PROCESS if flag else ROLLUP_OFF)


class _Text(_Rule):
    """Any non-empty text (an identifier, say)."""

    accepts = "a non-empty text"

    def from_text(self, text: str) -> Any:
        return text


class _Arms(_Rule):
    """OTEL_LLM_EXPERIMENT_ARMS: ``provider:model[=weight],...`` (otel_llm.arms), or a sequence of Arm."""

    accepts = ARMS_ACCEPTS

    def from_text(self, text: str) -> Any:
        try:
            return checked_arms(parse_arms(text))
        except ValueError:
            return _INVALID

    def _from_object(self, value: Any) -> Any:
        try:
            return checked_arms(value)
        except ValueError:
            return _INVALID


def _read(name: str, default: Any, rule: _Rule, environ: Mapping[str, str] | None) -> Any:
    raw = _raw(name, environ)
    if raw is None:
        return default
    value = rule.from_text(raw)
    if value is _INVALID:
        _warn_once(name, raw, rule.accepts, default)
        return default
    return value


def env_bool(name: str, default: bool, *, environ: Mapping[str, str] | None = None) -> bool:
    """true/false (also 1/0, yes/no, on/off), case-insensitive."""
    return _read(name, default, _Bool(), environ)


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """A decimal integer within [minimum, maximum] (either bound optional)."""
    return _read(name, default, _Number(int, minimum, maximum), environ)


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    """A finite decimal number within [minimum, maximum] (either bound optional)."""
    return _read(name, default, _Number(float, minimum, maximum), environ)


def env_csv(
    name: str, default: Sequence[str], *, environ: Mapping[str, str] | None = None
) -> tuple[str, ...]:
    """Comma-separated names; blanks and repeats dropped (first kept); ``none`` is an empty list."""
    return _read(name, tuple(default), _Names(), environ)


def env_choice(
    name: str, default: str, choices: Sequence[str], *, environ: Mapping[str, str] | None = None
) -> str:
    """One of ``choices``, case-insensitive (choices are given in lower case)."""
    return _read(name, default, _Choice(choices), environ)


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
    rollup: str = ROLLUP_PROCESS
    rollup_window_ms: int = 2000
    rollup_max_traces: int = 10000
    rollup_max_spans_per_trace: int = 5000
    rollup_max_buffered_spans: int = 50000
    rollup_max_age_ms: int = 60000
    metrics_cardinality_limit: int = 1000
    span_metrics: bool = True
    span_metrics_skip_scopes: tuple[str, ...] = DEFAULT_SPAN_METRICS_SKIP_SCOPES
    redact: bool = True
    redact_keys: tuple[str, ...] = ()
    redact_patterns: tuple[str, ...] = ()
    cost: bool = True
    cost_prices_file: str | None = None
    export_max_batch_bytes: int = 2 * 1024 * 1024
    export_retry_max_spans: int = 16384
    export_retry_max_age_ms: int = 120_000
    experiment_id: str | None = None
    experiment_arms: tuple[Arm, ...] = ()
    metric_log: str | None = None  # stdout, stderr or a file path
    metric_log_spans: tuple[str, ...] = ()
    langchain_max_open_runs: int = 10_000
    langchain_max_attribute_length: int = 256
    langchain_max_content_length: int = 4096

    @property
    def rollup_enabled(self) -> bool:
        """The in-process roll-up stage runs (OTEL_LLM_ROLLUP=process)."""
        return self.rollup == ROLLUP_PROCESS


# Each Settings field: the variable that sets it and what it accepts (for the variable and for configure()).
SETTING_VARIABLES: Mapping[str, tuple[str, _Rule]] = {
    "enabled": ("OTEL_LLM_ENABLED", _Bool()),
    "baggage_keys": ("OTEL_LLM_BAGGAGE_KEYS", _Names()),
    "baggage_max_value_length": ("OTEL_LLM_BAGGAGE_MAX_VALUE_LENGTH", _Number(int, 1, 4096)),
    "baggage_trust_incoming": ("OTEL_LLM_BAGGAGE_TRUST_INCOMING", _Bool()),
    "rollup": ("OTEL_LLM_ROLLUP", _RollupMode()),
    "rollup_window_ms": ("OTEL_LLM_ROLLUP_WINDOW_MS", _Number(int, 0, 600_000)),
    "rollup_max_traces": ("OTEL_LLM_ROLLUP_MAX_TRACES", _Number(int, 1, 1_000_000)),
    "rollup_max_spans_per_trace": ("OTEL_LLM_ROLLUP_MAX_SPANS_PER_TRACE", _Number(int, 1, 1_000_000)),
    "rollup_max_buffered_spans": ("OTEL_LLM_ROLLUP_MAX_BUFFERED_SPANS", _Number(int, 1, 10_000_000)),
    "rollup_max_age_ms": ("OTEL_LLM_ROLLUP_MAX_AGE_MS", _Number(int, 1, 3_600_000)),
    "metrics_cardinality_limit": ("OTEL_LLM_METRICS_CARDINALITY_LIMIT", _Number(int, 1, 100_000)),
    "span_metrics": ("OTEL_LLM_SPAN_METRICS", _Bool()),
    "span_metrics_skip_scopes": ("OTEL_LLM_SPAN_METRICS_SKIP_SCOPES", _Names()),
    "redact": ("OTEL_LLM_REDACT", _Bool()),
    "redact_keys": ("OTEL_LLM_REDACT_KEYS", _Names()),
    "redact_patterns": ("OTEL_LLM_REDACT_PATTERNS", _Regexes()),
    "cost": ("OTEL_LLM_COST", _Bool()),
    "cost_prices_file": ("OTEL_LLM_COST_PRICES_FILE", _Path()),
    "export_max_batch_bytes": ("OTEL_LLM_EXPORT_MAX_BATCH_BYTES", _Number(int, 65_536, 64 * 1024 * 1024)),
    "export_retry_max_spans": ("OTEL_LLM_EXPORT_RETRY_MAX_SPANS", _Number(int, 0, 10_000_000)),
    "export_retry_max_age_ms": ("OTEL_LLM_EXPORT_RETRY_MAX_AGE_MS", _Number(int, 0, 3_600_000)),
    "experiment_id": ("OTEL_LLM_EXPERIMENT_ID", _Text()),
    "experiment_arms": ("OTEL_LLM_EXPERIMENT_ARMS", _Arms()),
    "metric_log": ("OTEL_LLM_METRIC_LOG", _Path()),
    "metric_log_spans": ("OTEL_LLM_METRIC_LOG_SPANS", _Names()),
    "langchain_max_open_runs": ("OTEL_LLM_LANGCHAIN_MAX_OPEN_RUNS", _Number(int, 1, None)),
    "langchain_max_attribute_length": ("OTEL_LLM_LANGCHAIN_MAX_ATTRIBUTE_LENGTH", _Number(int, 1, None)),
    "langchain_max_content_length": ("OTEL_LLM_LANGCHAIN_MAX_CONTENT_LENGTH", _Number(int, 1, None)),
}


def load_settings(
    environ: Mapping[str, str] = os.environ, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Read the OTEL_LLM_* variables from ``environ``, then apply ``overrides`` (Settings field names).

    Overrides follow the variables' rules (a string is read as the variable's text would be): a bad value
    warns once, naming the setting and what it accepts, and the variable's value (or the default) is used.
    An unknown name warns, listing the accepted names, and is ignored. Nothing raises.
    """
    overrides = overrides or {}
    unknown = sorted(set(overrides) - set(SETTING_VARIABLES))
    if unknown:
        _logger.warning("otel-llm: unknown setting(s) %s ignored; the settings are %s",
                        ", ".join(unknown), ", ".join(SETTING_VARIABLES))
    defaults = Settings()
    values = {}
    for field, (variable, rule) in SETTING_VARIABLES.items():
        values[field] = _read(variable, getattr(defaults, field), rule, environ)
        if field in overrides:
            value = rule.from_value(overrides[field])
            if value is _INVALID:
                _warn_once(f"setting {field!r}", overrides[field], rule.accepts, values[field], using="")
            else:
                values[field] = value
    return Settings(**values)


_in_use: Settings | None = None


def use_settings(settings: Settings) -> None:
    """Make ``settings`` (configure()'s, overrides applied) what ``current_settings`` returns from now on."""
    global _in_use
    _in_use = settings


def current_settings() -> Settings:
    """The settings configure() installed, or, before it ran, those of the environment (``load_settings``):
    how modules set up outside configure() (the LangChain instrumentor, app-side experiments) read a switch,
    so ``configure(**overrides)`` reaches them too."""
    return _in_use if _in_use is not None else load_settings()
