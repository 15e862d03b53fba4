"""METRIC| log lines: one line per selected span, for log pipelines that parse text (CloudWatch Logs).

Writes, from the export thread (wrap it in a ``BatchSpanProcessor``), for each finished span:

- ``METRIC|event=request|path=/api/v1/chat|provider=openai|model=gpt-4o-mini|ms_total=812.345`` for a local
  root span of kind SERVER or CONSUMER (a request entering this process), provider and model from the roll-up
  (``llm.rollup.provider`` / ``llm.rollup.model``), else, for a request whose LLM calls run elsewhere (the API
  in front of a worker), the experiment arm it was assigned; plus ``status``, the experiment and arm when
  present, and ``provider_source`` (``rollup`` or ``arm``) saying where provider and model came from;
- ``METRIC|event=span|name=ChatOpenAI|ms=402.118|provider=openai|model=gpt-4o-mini`` for the selected spans:
  by default LLM spans and LangGraph node spans, or spans whose name matches ``OTEL_LLM_METRIC_LOG_SPANS``.

Escaping: inside a value ``\\`` becomes ``\\\\``, ``|`` becomes ``\\|``, ``=`` becomes ``\\=``, a line feed
and a carriage return become ``\\n`` / ``\\r``, and every other control character or Unicode line break (VT,
FF, FS/GS/RS, NEL, U+2028, U+2029, the rest of C0 and C1) becomes ``\\uXXXX``, so no line-splitting parser
sees two lines in one. Read a line left to right, a ``\\`` taking the next
character with it: a ``|`` ends a field when an even number of ``\\`` (none included) precede it, and a
field's key ends at its first ``=`` (keys are plain names).

Bounds: each value is cut to ``MAX_VALUE_CHARS`` characters before escaping (at most 6 bytes each after it),
so a line, of at most 9 fields, stays under ``MAX_LINE_BYTES`` (16 KiB, far under CloudWatch Logs' 256 KB
event limit). A span whose line cannot be made costs that line only: it is counted in ``drops``
(``otel_llm.spans.dropped{error.type=metric_line_failed}`` under configure()) and logged once; the batch's
other lines are written.

Switched on by ``OTEL_LLM_METRIC_LOG`` (``stdout``, ``stderr`` or a file path; off when unset). Cost: nothing
on the application thread; a few dictionary reads and one write per selected span on the export thread.
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TextIO

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, StatusCode

from otel_llm import semconv
from otel_llm.experiment import assigned_provider_model
from otel_llm.metrics.health import METRIC_LINE_FAILED, DropCounter
from otel_llm.settings import Settings, load_settings

_logger = logging.getLogger(__name__)

ENV_METRIC_LOG = "OTEL_LLM_METRIC_LOG"  # parsed by otel_llm.settings (metric_log, metric_log_spans)
STDOUT = "stdout"
STDERR = "stderr"
PREFIX = "METRIC"
REQUEST_KINDS = frozenset({SpanKind.SERVER, SpanKind.CONSUMER})
# Where a request's path comes from, first present wins (HTTP server route, then URL path, then messaging).
PATH_ATTRIBUTES = ("http.route", "url.path", "http.target", "messaging.destination.name")
SOURCE_ROLLUP = "rollup"  # provider_source values: the LLM calls beneath the request ...
SOURCE_ARM = "arm"  # ... or the experiment arm it was assigned (its calls ran in another process)
_ESCAPES = {"\\": "\\\\", "|": "\\|", "=": "\\=", "\n": "\\n", "\r": "\\r"}
# The separators and escape, and every character str.splitlines or a log agent may split on: C0 and C1
# controls, DEL, and the Unicode line and paragraph separators.
_NEEDS_ESCAPE = re.compile("[\\\\|=\x00-\x1f\x7f-\x9f\u2028\u2029]")
MAX_VALUE_CHARS = 256
MAX_LINE_BYTES = 16384  # > "METRIC" + 9 fields * ("|provider_source=" + 6 bytes * MAX_VALUE_CHARS)

SpanSelector = Callable[[ReadableSpan], bool]


def _escaped(match: re.Match) -> str:
    char = match.group()
    return _ESCAPES.get(char) or f"\\u{ord(char):04x}"


def escape(value: Any) -> str:
    """The value as text, cut to ``MAX_VALUE_CHARS``, with ``\\``, ``|``, ``=`` and every control character
    or line break backslash-escaped."""
    text = value if isinstance(value, str) else str(value)
    return _NEEDS_ESCAPE.sub(_escaped, text[:MAX_VALUE_CHARS])


def format_line(fields: Sequence[tuple[str, Any]]) -> str:
    """``METRIC|key=value|...`` from ordered fields; None values are left out."""
    return PREFIX + "".join(f"|{key}={escape(value)}" for key, value in fields if value is not None)


def is_llm_or_node_span(span: ReadableSpan) -> bool:
    """The default selection: model calls and LangGraph node spans."""
    attributes = span.attributes or {}
    return (
        semconv.is_llm_span(attributes)
        or semconv.LANGGRAPH_NODE in attributes
        or attributes.get(semconv.LANGSMITH_LANGGRAPH_NODE) == span.name
    )


def name_patterns_selector(patterns: Sequence[str]) -> SpanSelector:
    """Selects spans whose name matches one of the shell-style patterns (``ask_llm_*``), case-sensitively."""
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ValueError("patterns must be a non-empty sequence of non-empty strings")
    compiled = re.compile("|".join(fnmatch.translate(p) for p in patterns))
    return lambda span: compiled.match(span.name) is not None


def _milliseconds(span: ReadableSpan) -> str | None:
    if span.start_time is None or span.end_time is None:
        return None
    return f"{max(span.end_time - span.start_time, 0) / 1e6:.3f}"


def _is_local_root(span: ReadableSpan) -> bool:
    return span.parent is None or span.parent.is_remote


def _provider_model(attributes: Mapping[str, Any], from_rollup: bool) -> tuple[str, str]:
    if from_rollup:
        provider, model = attributes.get(semconv.ROLLUP_PROVIDER), attributes.get(semconv.ROLLUP_MODEL)
    else:
        model = semconv.resolve_model(attributes)
        provider = semconv.resolve_provider(attributes, model)
    return (provider or semconv.UNKNOWN), (model or semconv.UNKNOWN)


def _request_provider_model(attributes: Mapping[str, Any]) -> tuple[str, str, str | None]:
    """Provider, model and their source: the roll-up, else the assigned arm, else unknown (no source)."""
    provider, model = _provider_model(attributes, from_rollup=True)
    if (provider, model) != (semconv.UNKNOWN, semconv.UNKNOWN):
        return provider, model, SOURCE_ROLLUP
    assigned = assigned_provider_model(attributes)
    if assigned is not None:
        return assigned[0], assigned[1], SOURCE_ARM
    return provider, model, None


def request_line(span: ReadableSpan) -> str:
    """The ``event=request`` line of a request root span."""
    attributes = span.attributes or {}
    provider, model, source = _request_provider_model(attributes)
    path = next((attributes[key] for key in PATH_ATTRIBUTES if attributes.get(key)), span.name)
    status = "error" if span.status.status_code is StatusCode.ERROR else "ok"
    return format_line(
        (
            ("event", "request"),
            ("path", path),
            ("provider", provider),
            ("model", model),
            ("ms_total", _milliseconds(span)),
            ("status", status),
            ("experiment", attributes.get(semconv.EXPERIMENT_ID)),
            ("arm", attributes.get(semconv.EXPERIMENT_ARM)),
            ("provider_source", source),
        )
    )


def span_line(span: ReadableSpan) -> str:
    """The ``event=span`` line: an LLM span's own provider/model, any other span's roll-up."""
    attributes = span.attributes or {}
    provider, model = _provider_model(attributes, from_rollup=not semconv.is_llm_span(attributes))
    return format_line(
        (
            ("event", "span"),
            ("name", span.name),
            ("ms", _milliseconds(span)),
            ("provider", provider),
            ("model", model),
            ("arm", attributes.get(semconv.EXPERIMENT_ARM)),
        )
    )


class MetricLogExporter(SpanExporter):
    """Writes METRIC| lines for request root spans and selected spans to a text stream or a file.

    ``destination``: ``"stdout"``, ``"stderr"``, a file path (appended to, created if missing) or an open
    text stream. ``select``: which non-root spans get an ``event=span`` line (default: LLM and LangGraph node
    spans).
    """

    def __init__(self, destination: str | TextIO = STDOUT, select: SpanSelector | None = None) -> None:
        if select is not None and not callable(select):
            raise ValueError("select must be a callable taking a ReadableSpan and returning bool")
        self._select = select or is_llm_or_node_span
        self._lock = threading.Lock()
        self.drops = DropCounter(None)  # spans whose line could not be made
        self._owned = False
        if destination in (STDOUT, STDERR):
            self._stream_name: str | None = destination
            self._stream: TextIO | None = None
        elif isinstance(destination, str):
            if not destination.strip():
                raise ValueError("destination must be 'stdout', 'stderr', a file path or a text stream")
            self._stream_name = None
            self._stream = open(destination, "a", encoding="utf-8")  # noqa: SIM115 - closed in shutdown()
            self._owned = True
        elif hasattr(destination, "write"):
            self._stream_name, self._stream = None, destination
        else:
            raise ValueError("destination must be 'stdout', 'stderr', a file path or a text stream")
        self._shutdown = False

    def _target(self) -> TextIO:
        # sys.stdout is looked up at write time so redirections (pytest capture, uvicorn) are honoured.
        if self._stream_name == STDOUT:
            return sys.stdout
        if self._stream_name == STDERR:
            return sys.stderr
        return self._stream  # type: ignore[return-value]

    def lines(self, spans: Sequence[ReadableSpan]) -> list[str]:
        """The METRIC lines for a batch, in span order (a root gets its request line only); a span whose line
        cannot be made is skipped and counted."""
        out = []
        for span in spans:
            try:
                if span.kind in REQUEST_KINDS and _is_local_root(span):
                    out.append(request_line(span))
                elif self._select(span):
                    out.append(span_line(span))
            except Exception:
                self.drops.add(1, METRIC_LINE_FAILED)
                if self.drops.counts()[METRIC_LINE_FAILED] == 1:
                    _logger.warning("otel-llm: a span's METRIC line could not be made; skipped (counted in "
                                    "otel_llm.spans.dropped, logged once)", exc_info=True)
        return out

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shutdown:
            return SpanExportResult.FAILURE
        try:
            text = "".join(line + "\n" for line in self.lines(spans))
            if text:
                with self._lock:
                    target = self._target()
                    target.write(text)
                    target.flush()
            return SpanExportResult.SUCCESS
        except Exception:
            _logger.warning("METRIC lines not written", exc_info=True)
            return SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            with self._lock:
                self._target().flush()
            return True
        except Exception:
            return False

    def shutdown(self) -> None:
        self._shutdown = True
        if self._owned and self._stream is not None:
            with self._lock:
                self._stream.close()


def exporter_from_settings(settings: Settings) -> MetricLogExporter | None:
    """A :class:`MetricLogExporter` when ``settings.metric_log`` (OTEL_LLM_METRIC_LOG) is set, else None.

    ``metric_log_spans`` (OTEL_LLM_METRIC_LOG_SPANS): span name patterns that replace the default selection.
    A file that cannot be opened logs one warning naming the variable and leaves the lines off. configure()
    puts it behind the roll-up stage with the other exporters, so request lines carry provider and model.
    """
    destination = settings.metric_log
    if not destination:
        return None
    select = name_patterns_selector(settings.metric_log_spans) if settings.metric_log_spans else None
    if destination.lower() in (STDOUT, STDERR):
        destination = destination.lower()
    try:
        return MetricLogExporter(destination, select)
    except OSError as exc:
        _logger.warning(
            "Cannot open %s=%r (%s); it accepts stdout, stderr or a writable file path. "
            "METRIC lines are off.",
            ENV_METRIC_LOG,
            destination,
            exc,
        )
        return None


def exporter_from_env(environ: Mapping[str, str] = os.environ) -> MetricLogExporter | None:
    """:func:`exporter_from_settings` for the OTEL_LLM_METRIC_LOG* variables of ``environ``."""
    return exporter_from_settings(load_settings(environ))
