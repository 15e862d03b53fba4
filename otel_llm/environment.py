"""The standard OTEL_* variables, checked before the OpenTelemetry SDK reads them, so none can raise.

The API and SDK raise on some malformed variables, some while being imported: ``OTEL_PROPAGATORS=bogus`` fails
``import opentelemetry.propagate``, ``OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT=abc`` fails
``import opentelemetry.sdk.trace``, ``OTEL_BSP_MAX_QUEUE_SIZE=0`` fails the batch processor, an unknown
exporter, sampler or id generator name fails the configuration; others are ignored without a word.
``check_standard_variables`` runs when ``otel_llm`` is imported (before the SDK is) and again when otel-llm
configures the SDK: each malformed variable in ``STANDARD_VARIABLES`` gets ONE warning per process naming
it, its value and what it accepts, and is removed from the environment, so the SDK uses its own default for
it (otel-llm's distro default where it has one). Variables the launcher reads before any otel-llm code runs
(OTEL_PYTHON_DISTRO, OTEL_PYTHON_CONFIGURATOR, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS) and free-form ones
(OTEL_SERVICE_NAME, OTEL_SEMCONV_STABILITY_OPT_IN) are not checked.

Cost: a few dozen dictionary reads and one entry-point scan per check; nothing per span.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, MutableMapping
from pathlib import Path
from urllib.parse import urlsplit

from opentelemetry.util._importlib_metadata import entry_points

from otel_llm.settings import warn_invalid

_NONE = "none"
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[\w.-]+):\d{1,5}")
_PAIR_KEY = re.compile(r"[^\s=,]+")


def _integer(minimum: int) -> tuple[Callable[[str], bool], str]:
    def check(text: str) -> bool:
        try:
            return int(text) >= minimum
        except ValueError:
            return False

    return check, f"an integer >= {minimum}"


def _number(minimum: float, maximum: float = math.inf) -> tuple[Callable[[str], bool], str]:
    def check(text: str) -> bool:
        try:
            value = float(text)
        except ValueError:
            return False
        return math.isfinite(value) and minimum <= value <= maximum

    upper = f" and <= {maximum:g}" if math.isfinite(maximum) else ""
    return check, f"a number >= {minimum:g}{upper}"


def _choice(*choices: str) -> tuple[Callable[[str], bool], str]:
    return (lambda text: text.strip().lower() in choices), "one of " + ", ".join(choices)


def _plugins(group: str, *, many: bool, none: bool) -> tuple[Callable[[str], bool], str]:
    """Names of ``group`` entry points (comma-separated when ``many``; ``none`` alone when ``none``)."""

    def check(text: str) -> bool:
        names = [name.strip() for name in text.split(",")] if many else [text.strip()]
        if none and [name.lower() for name in names] == [_NONE]:
            return True
        installed = {entry_point.name for entry_point in entry_points(group=group)}
        return all(name in installed for name in names)

    listed = "comma-separated names" if many else "the name"
    return check, f"{listed} of installed {group} entry points" + (f", or {_NONE}" if none else "")


def _endpoint(text: str) -> bool:
    if "://" not in text:
        return _HOST_PORT.fullmatch(text) is not None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port out of range or not a number
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _pairs(text: str) -> bool:
    """key=value,key=value with non-empty keys (values may be empty)."""
    items = [item for item in text.split(",") if item.strip()]
    return bool(items) and all(
        "=" in item and _PAIR_KEY.fullmatch(item.split("=", 1)[0].strip()) is not None for item in items)


_BOOLEAN = _choice("true", "false")
_NON_NEGATIVE = _integer(0)
_POSITIVE = _integer(1)
_ENDPOINT = (_endpoint, "an http(s):// URL with a host, or host:port")
_PAIRS = (_pairs, "comma-separated key=value pairs")
_TIMEOUT_S = _number(0)
_EXPORTERS = {signal: _plugins(f"opentelemetry_{signal}_exporter", many=True, none=True)
              for signal in ("traces", "metrics", "logs")}

# Every checked variable: (check, what it accepts). Read by docs/configuration.md's "Standard variables".
STANDARD_VARIABLES: Mapping[str, tuple[Callable[[str], bool], str]] = {
    "OTEL_PROPAGATORS": _plugins("opentelemetry_propagator", many=True, none=True),
    "OTEL_TRACES_EXPORTER": _EXPORTERS["traces"],
    "OTEL_METRICS_EXPORTER": _EXPORTERS["metrics"],
    "OTEL_LOGS_EXPORTER": _EXPORTERS["logs"],
    "OTEL_TRACES_SAMPLER": _plugins("opentelemetry_traces_sampler", many=False, none=False),
    "OTEL_TRACES_SAMPLER_ARG": _number(0, 1),
    "OTEL_PYTHON_ID_GENERATOR": _plugins("opentelemetry_id_generator", many=False, none=False),
    "OTEL_PYTHON_TRACER_CONFIGURATOR": _plugins("_opentelemetry_tracer_configurator", many=False, none=False),
    "OTEL_EXPORTER_OTLP_PROTOCOL": _choice("grpc", "http/protobuf"),
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": _choice("grpc", "http/protobuf"),
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": _choice("grpc", "http/protobuf"),
    "OTEL_EXPORTER_OTLP_ENDPOINT": _ENDPOINT,
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": _ENDPOINT,
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": _ENDPOINT,
    "OTEL_EXPORTER_OTLP_HEADERS": _PAIRS,
    "OTEL_EXPORTER_OTLP_TIMEOUT": _TIMEOUT_S,
    "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": _TIMEOUT_S,
    "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT": _TIMEOUT_S,
    "OTEL_EXPORTER_OTLP_COMPRESSION": _choice("gzip", "deflate", _NONE),
    "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": _choice("cumulative", "delta", "lowmemory"),
    "OTEL_RESOURCE_ATTRIBUTES": _PAIRS,
    "OTEL_BSP_MAX_QUEUE_SIZE": _POSITIVE,
    "OTEL_BSP_SCHEDULE_DELAY": _POSITIVE,
    "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": _POSITIVE,
    "OTEL_BSP_EXPORT_TIMEOUT": _NON_NEGATIVE,
    "OTEL_METRIC_EXPORT_INTERVAL": _POSITIVE,
    "OTEL_METRIC_EXPORT_TIMEOUT": _NON_NEGATIVE,
    "OTEL_ATTRIBUTE_COUNT_LIMIT": _NON_NEGATIVE,
    "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": _NON_NEGATIVE,
    "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": _NON_NEGATIVE,
    "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": _NON_NEGATIVE,
    "OTEL_SPAN_EVENT_COUNT_LIMIT": _NON_NEGATIVE,
    "OTEL_SPAN_LINK_COUNT_LIMIT": _NON_NEGATIVE,
    "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": _NON_NEGATIVE,
    "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": _NON_NEGATIVE,
    "OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED": _BOOLEAN,
    "OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED": _BOOLEAN,
    "OTEL_CONFIG_FILE": (lambda text: Path(text).is_file(), "the path of an existing file"),
}
_DEFAULT_TEXT = "the SDK's default"
_BATCH, _QUEUE = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_MAX_QUEUE_SIZE"
_SDK_QUEUE_SIZE, _SDK_BATCH_SIZE = 2048, 512  # the BatchSpanProcessor's sizes without the variables
# Values never repeated in a warning: headers carry API keys, endpoints may carry user:password.
_MAY_HOLD_CREDENTIALS = frozenset(
    name for name in STANDARD_VARIABLES if name.endswith(("_HEADERS", "_ENDPOINT")))
_HIDDEN = "(not shown: it may hold credentials)"


def check_standard_variables(environ: MutableMapping[str, str] = os.environ) -> list[str]:
    """Remove every malformed ``STANDARD_VARIABLES`` entry from ``environ`` (one warning each per process);
    returns the names removed. Never raises."""
    removed: dict[str, str] = {}  # name -> what it accepts
    for name, (check, accepts) in STANDARD_VARIABLES.items():
        text = environ.get(name)
        if text is None or not text.strip():
            continue
        try:
            valid = check(text.strip())
        except Exception:  # a broken entry point or file system: the value cannot be vouched for
            valid = False
        if not valid:
            removed[name] = accepts
    removed.update(_batch_larger_than_queue(environ, removed))
    for name, accepts in removed.items():
        value = environ.pop(name, None)
        warn_invalid(name, _HIDDEN if name in _MAY_HOLD_CREDENTIALS else value, accepts, _DEFAULT_TEXT)
    return list(removed)


def _batch_larger_than_queue(environ: Mapping[str, str], removed: Mapping[str, str]) -> dict[str, str]:
    """The SDK refuses an export batch size above the queue size: the variable that was set is dropped (the
    batch size when both are)."""
    def value(name: str, default: int) -> tuple[int, bool]:
        text = environ.get(name) if name not in removed else None
        return (int(text), True) if text and text.strip() else (default, False)

    batch, batch_set = value(_BATCH, _SDK_BATCH_SIZE)
    queue, queue_set = value(_QUEUE, _SDK_QUEUE_SIZE)
    if batch <= queue:
        return {}
    if batch_set:
        return {_BATCH: f"an integer from 1 to OTEL_BSP_MAX_QUEUE_SIZE ({queue})"}
    return {_QUEUE: f"an integer >= OTEL_BSP_MAX_EXPORT_BATCH_SIZE ({batch})"} if queue_set else {}
