"""Export-side redaction: secrets replaced by ``[REDACTED]`` before any exporter sees a span.

Wraps a span exporter (``configure()`` puts it once in front of the fan-out to every exporter, behind the
roll-up stage, so OTLP, the console and the METRIC lines all receive redacted spans) and runs on the export
thread, never in ``on_start``/``on_end``. For every span it rewrites, by the rules of ``otel_llm.redaction``:

- string attributes (and strings in sequence attributes) whose key is a secret name under a free-form scope
  (``langsmith.metadata.api_key``, ``langsmith.metadata.OPENAI_API_KEY``,
  ``http.request.header.authorization``): the whole value;
- every other string attribute, the span name, the status description and every event's string attributes
  (``exception.message``, ``exception.stacktrace``): each secret-shaped part (``sk-...``, ``AKIA...``, a JWT,
  ``Bearer ...``, URL user-info, ``?token=...``, ``password=...``).

A span with nothing to redact is passed on as it is; one with a secret is replaced by a copy. A span that
cannot be read is dropped (never exported unredacted), logged once and counted in ``drops``
(``otel_llm.spans.dropped{error.type=redaction_failed}`` once configure() registers it).

Cost, on the export thread only (bench/bench_redact.py, docs/performance.md): a cached key lookup per
attribute and one RE2 scan of the span's text joined together; the rules run one by one only on a span that
holds a secret.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import Any

import re2
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Status

from otel_llm import redaction
from otel_llm.metrics.health import REDACTION_FAILED, DropCounter
from otel_llm.processors.normalize import EnrichedSpan

_logger = logging.getLogger(__name__)


class Redactor:
    """The compiled rules: ``span(span)`` redacts a whole span, ``value(text)`` one text.

    ``extra_key_words`` and ``extra_patterns`` (RE2 regexes, the whole match replaced) add to the built-in
    rules. The patterns run on RE2 (google-re2), the engine family of the collector's OTTL, so both sides read
    the table alike, and it scans a span's text in one call at a few ns a character.
    """

    def __init__(self, extra_key_words: Sequence[str] = (), extra_patterns: Sequence[str] = ()) -> None:
        extra = (redaction.ValueRule(f"extra_{i}", pattern) for i, pattern in enumerate(extra_patterns))
        # Rules run one after the other, in table order, as the collector's statements do.
        self._rules = tuple((re2.compile(rule.pattern), rule) for rule in (*redaction.VALUE_RULES, *extra))
        self._any_secret = re2.compile("|".join(f"(?:{rule.pattern})" for _, rule in self._rules)).search
        secret_key = re2.compile(redaction.secret_key_pattern(
            (*redaction.SECRET_KEY_WORDS, *extra_key_words))).match
        self.is_secret_key = functools.lru_cache(maxsize=4096)(lambda key: secret_key(key) is not None)

    def value(self, text: str) -> str:
        """``text`` with every secret-shaped part masked; the same object when nothing matched."""
        if self._any_secret(text) is None:
            return text
        for pattern, rule in self._rules:
            if pattern.search(text) is not None:  # a search is cheaper than a sub that finds nothing
                text = pattern.sub(lambda match, rule=rule: rule.replacement(
                    match.group(1) if rule.keep_prefix else ""), text)
        return text

    def _any(self, value: Any, whole: bool) -> Any:
        if isinstance(value, str):
            return redaction.MARKER if whole else self.value(value)
        if isinstance(value, (tuple, list)) and any(isinstance(item, str) for item in value):
            items = tuple(self._any(item, whole) for item in value)
            return value if all(a is b for a, b in zip(items, value, strict=True)) else items
        return value

    def attributes(self, attributes: Any) -> dict[str, Any] | None:
        """A redacted copy of ``attributes``, or None when nothing in it needed redacting."""
        changed: dict[str, Any] | None = None
        for key, value in (attributes or {}).items():
            redacted = self._any(value, self.is_secret_key(key))
            if redacted is not value:
                if changed is None:
                    changed = dict(attributes)
                changed[key] = redacted
        return changed

    def _collect(self, attributes: Any, texts: list[str]) -> bool:
        """Appends the text values of ``attributes`` to ``texts``; True when a key is a secret name."""
        for key, value in (attributes or {}).items():
            if self.is_secret_key(key):
                return True
            if isinstance(value, str):
                texts.append(value)
            elif isinstance(value, (tuple, list)):
                texts.extend(item for item in value if isinstance(item, str))
        return False

    def _holds_secret(self, span: ReadableSpan) -> bool:
        """One scan of all the span's text joined by line breaks (no rule matches less in the joined text)."""
        texts = [span.name if isinstance(span.name, str) else "", span.status.description or ""]
        if self._collect(span.attributes, texts):
            return True
        if any(self._collect(event.attributes, texts) for event in span.events):
            return True
        return self._any_secret("\n".join(texts)) is not None

    def span(self, span: ReadableSpan) -> ReadableSpan:
        """``span`` itself when it holds no secret, else a redacted copy."""
        if not self._holds_secret(span):
            return span
        attributes = self.attributes(span.attributes)
        name = self.value(span.name) if isinstance(span.name, str) else span.name
        description = span.status.description
        status = None
        if description:
            redacted = self.value(description)
            if redacted is not description:
                status = Status(span.status.status_code, redacted)
        events, events_changed = [], False
        for event in span.events:
            event_attributes = self.attributes(event.attributes)
            if event_attributes is None:
                events.append(event)
            else:
                events_changed = True
                events.append(Event(event.name, event_attributes, event.timestamp))
        return EnrichedSpan(span, span.attributes if attributes is None else attributes,
                            name=None if name is span.name else name, status=status,
                            events=events if events_changed else None)


class RedactingSpanExporter(SpanExporter):
    """Passes each batch to ``inner`` with every span redacted by ``redactor``."""

    def __init__(self, inner: SpanExporter, redactor: Redactor) -> None:
        self._inner = inner
        self._redactor = redactor
        self.drops = DropCounter(None)  # spans that could not be redacted, so were not exported

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        out = []
        for span in spans:
            try:
                out.append(self._redactor.span(span))
            except Exception:  # one unreadable span costs only itself; never exported unredacted
                self.drops.add(1, REDACTION_FAILED)
                if self.drops.counts()[REDACTION_FAILED] == 1:
                    _logger.warning("otel-llm: a span could not be redacted and was dropped", exc_info=True)
        return self._inner.export(out) if out else SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._inner.shutdown()
