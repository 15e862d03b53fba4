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
so consecutive spans reuse the result), then written under the span's lock. The write goes straight to the
SDK's bounded attribute store, skipping the SDK's per-value validation (our values are already clean
strings); the store's count and length limits still apply. When the installed SDK lacks that store, the
public ``set_attributes`` is used instead (about 1 µs more per entry).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from opentelemetry import baggage
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.context import Context, get_current, get_value
from opentelemetry.propagators import textmap
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from otel_llm.processors.ratelimit import RateLimitedLogger
from otel_llm.settings import DEFAULT_BAGGAGE_KEYS, load_settings

_logger = logging.getLogger(__name__)
_rate_limited = RateLimitedLogger(_logger)

MAX_VALUE_LENGTH_LIMIT = 4096
# The context key under which the API keeps the baggage dict. ``baggage.get_all`` wraps that dict in a new
# read-only proxy on every call; reading it directly lets the processor recognise the same baggage by
# identity.
_BAGGAGE_CONTEXT_KEY = getattr(baggage, "_BAGGAGE_KEY", None)
_FAST_WRITE = hasattr(BoundedAttributes, "_setitem_locked")


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


def _baggage_of(parent_context: Context | None) -> Mapping[str, Any] | None:
    if _BAGGAGE_CONTEXT_KEY is None:
        return baggage.get_all(parent_context)
    return get_value(_BAGGAGE_CONTEXT_KEY, parent_context)  # type: ignore[return-value]


def _write_attributes(span: Span, attributes: Mapping[str, str]) -> None:
    """Add clean string attributes to a live span, as ``Span.set_attributes`` would, minus its validation."""
    bounded = getattr(span, "_attributes", None)
    span_lock = getattr(span, "_lock", None)
    store_lock = getattr(bounded, "_lock", None)
    usable = _FAST_WRITE and isinstance(bounded, BoundedAttributes) and not bounded._immutable
    if not usable or span_lock is None or store_lock is None:
        span.set_attributes(attributes)
        return
    limit = bounded.max_value_len  # OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT / SpanLimits, when set
    with span_lock, store_lock:  # the same locks, in the same order, as Span.set_attributes
        for key, value in attributes.items():
            bounded._setitem_locked(key, value if limit is None or len(value) <= limit else value[:limit])


class BaggageAttributesProcessor(SpanProcessor):
    """Copies allowlisted baggage of the parent context onto each span as attributes, at span start.

    ``on_start`` runs on the application thread, in the code that starts the span; it never raises.
    """

    def __init__(
        self, allowed_keys: Iterable[str] = DEFAULT_BAGGAGE_KEYS, max_value_length: int = 256
    ) -> None:
        self._keys, self._max_value_length = _validated(allowed_keys, max_value_length)
        # (baggage dict, its allowlisted cleaned entries) of the last span; replaced as one tuple, so threads
        # never see a mismatched pair.
        self._last: tuple[object, dict[str, str]] = (None, {})

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            entries = _baggage_of(parent_context)
            if not entries:
                return
            seen, attributes = self._last
            if entries is not seen:
                attributes = allowed_entries(entries, self._keys, self._max_value_length)
                self._last = (entries, attributes)
            if attributes and span.is_recording():
                _write_attributes(span, attributes)
        except Exception:
            _rate_limited.exception("otel-llm could not copy baggage onto a span")

    def on_end(self, span: ReadableSpan) -> None:
        """Nothing to do at end."""

    def shutdown(self) -> None:
        """Holds no resources."""

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
