"""Allowlisted baggage on spans: the experiment and session a request belongs to, searchable on every span.

``BaggageAttributesProcessor`` copies allowlisted baggage entries of the parent context onto each span at
start, as attributes of the same name (value stripped of non-printable characters and capped). Keep secrets
and personal data out of baggage: it travels in clear text to every downstream service.

``EdgeBaggagePropagator`` is the ``otel_llm_baggage`` propagator for ``OTEL_PROPAGATORS``: it injects baggage
like W3C, and on extract it drops incoming baggage unless ``OTEL_LLM_BAGGAGE_TRUST_INCOMING=true`` (then only
allowlisted keys are kept, values capped). A public API must not let clients choose the experiment arm or the
session id recorded on its spans. Queue hops (``otel_llm.propagation``) use the plain W3C propagators, so
baggage set by our own API stays trusted in the worker. Every other ``propagate.extract`` of the process goes
through this propagator, HTTP/gRPC calls from the app's own services included: it sees headers, not who sent
them, so trusting them is a per-service switch (docs/configuration.md, "Baggage between your own services").

Cost on the application thread: one context lookup for a span without baggage. With baggage, the allowlisted
and cleaned entries are computed once per baggage (the context holds one immutable baggage dict per request,
so every span of the request reuses the result: the last one is checked first, then a map of the last
``MAX_CACHED_BAGGAGE`` baggages by identity, so concurrent requests whose spans interleave hit too), then
written under the span's lock, straight into the SDK's attribute store (``otel_llm._internals``: skips the
per-value validation of our already clean strings, about 1 µs a span with two entries); when the installed SDK
lacks that store, through the public ``set_attributes``. Memory: the map holds up to ``MAX_CACHED_BAGGAGE``
baggage dicts and their cleaned entries (emptied when full).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context, get_current
from opentelemetry.propagators import textmap
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_llm._internals import baggage_of, write_clean_attributes
from otel_llm.processors.ratelimit import RateLimitedLogger
from otel_llm.settings import DEFAULT_BAGGAGE_KEYS, load_settings

_logger = logging.getLogger(__name__)
_rate_limited = RateLimitedLogger(_logger)

MAX_VALUE_LENGTH_LIMIT = 4096
# Baggages remembered with their cleaned entries: more than the requests a process serves at once, so
# interleaved requests keep hitting; each entry holds a small dict (an extracted header is at most 8 KiB).
MAX_CACHED_BAGGAGE = 512


def _validated(allowed_keys: Iterable[str], max_value_length: int) -> tuple[frozenset[str], int]:
    if isinstance(allowed_keys, (str, bytes)):
        raise ValueError("allowed_keys must be a collection of key names, not one string")
    keys = frozenset(allowed_keys)
    if not all(isinstance(key, str) and key for key in keys):
        raise ValueError("allowed_keys must hold non-empty strings")
    if (
        isinstance(max_value_length, bool)
        or not isinstance(max_value_length, int)
        or not 1 <= max_value_length <= MAX_VALUE_LENGTH_LIMIT
    ):
        raise ValueError(f"max_value_length must be an integer from 1 to {MAX_VALUE_LENGTH_LIMIT}")
    return keys, max_value_length


def clean_value(value: Any, max_length: int) -> str:
    """A baggage value as attribute text: non-printable characters removed, capped at ``max_length``."""
    text = value if isinstance(value, str) else str(value)
    if not text.isprintable():
        text = "".join(char for char in text if char.isprintable())
    return text[:max_length]


def allowed_entries(entries: Mapping[str, Any], keys: frozenset[str], max_length: int) -> dict[str, str]:
    """The allowlisted entries of ``entries``, values cleaned and capped."""
    return {key: clean_value(value, max_length) for key, value in entries.items() if key in keys}


class BaggageAttributesProcessor(SpanProcessor):
    """Copies allowlisted baggage of the parent context onto each span as attributes, at span start.

    ``on_start`` runs on the application thread, in the code that starts the span; it never raises.
    """

    def __init__(
        self, allowed_keys: Iterable[str] = DEFAULT_BAGGAGE_KEYS, max_value_length: int = 256
    ) -> None:
        self._keys, self._max_value_length = _validated(allowed_keys, max_value_length)
        # (baggage dict, its allowlisted cleaned entries) of the last span; replaced as one tuple, so threads
        # never see a mismatched pair. Checked first: consecutive spans of one request cost no map lookup.
        self._last: tuple[object, dict[str, str]] = (None, {})
        # id(baggage dict) -> the same tuple. The tuple keeps its dict alive, so an id in the map is never
        # reused by another dict; the identity check guards entries across a clear().
        self._cache: dict[int, tuple[object, dict[str, str]]] = {}

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            entries = baggage_of(parent_context)
            if not entries:
                return
            last = self._last
            if entries is not last[0]:
                last = self._cache.get(id(entries))
                if last is None or last[0] is not entries:
                    last = self._remember(entries)
                self._last = last
            attributes = last[1]
            if attributes and span.is_recording() and not write_clean_attributes(span, attributes):
                span.set_attributes(attributes)
        except Exception:
            _rate_limited.exception("otel-llm could not copy baggage onto a span")

    def _remember(self, entries: Mapping[str, Any]) -> tuple[object, dict[str, str]]:
        """Clean ``entries`` once and keep the result; a full map is emptied."""
        remembered = (entries, allowed_entries(entries, self._keys, self._max_value_length))
        if len(self._cache) >= MAX_CACHED_BAGGAGE:
            self._cache.clear()
        self._cache[id(entries)] = remembered
        return remembered

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do at end: the span is left as it is."""

    def shutdown(self) -> None:
        """Holds no resources, so nothing changes: ``on_start`` keeps working if it is still called."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Buffers nothing: always flushed."""
        return True


class EdgeBaggagePropagator(textmap.TextMapPropagator):
    """W3C baggage injection; extraction only of trusted incoming baggage, and then only allowlisted keys.

    Arguments left as None come from the ``OTEL_LLM_BAGGAGE_*`` variables (the entry point builds it without
    arguments). Malformed headers are dropped; nothing raises into the server.
    """

    def __init__(
        self,
        allowed_keys: Iterable[str] | None = None,
        max_value_length: int | None = None,
        trust_incoming: bool | None = None,
    ) -> None:
        settings = load_settings() if None in (allowed_keys, max_value_length, trust_incoming) else None
        self._keys, self._max_value_length = _validated(
            settings.baggage_keys if allowed_keys is None else allowed_keys,
            settings.baggage_max_value_length if max_value_length is None else max_value_length,
        )
        if trust_incoming is None:
            trust_incoming = settings.baggage_trust_incoming
        self._trust_incoming = bool(trust_incoming)
        self._w3c = W3CBaggagePropagator()

    def extract(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        getter: textmap.Getter[textmap.CarrierT] = textmap.default_getter,
    ) -> Context:
        if context is None:
            context = get_current()
        if not self._trust_incoming:
            return context
        try:
            incoming = baggage.get_all(self._w3c.extract(carrier, Context(), getter))
            for key, value in allowed_entries(incoming, self._keys, self._max_value_length).items():
                context = baggage.set_baggage(key, value, context)
        except Exception:
            _rate_limited.exception("otel-llm dropped an unreadable baggage header")
        return context

    def inject(
        self,
        carrier: textmap.CarrierT,
        context: Context | None = None,
        setter: textmap.Setter[textmap.CarrierT] = textmap.default_setter,
    ) -> None:
        try:
            self._w3c.inject(carrier, context, setter)
        except Exception:
            _rate_limited.exception("otel-llm could not inject baggage")

    @property
    def fields(self) -> set[str]:
        return self._w3c.fields
