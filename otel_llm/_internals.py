"""Every private OpenTelemetry, langsmith and langchain-core internal otel-llm touches, reached from here.

Each is kept because no public API does the job, or because ``bench/bench_internals.py`` shows it
pays on the application thread; each entry says which, the version checked, and what the code does when
the shape is not there: the public path, or one warning, never an error into the app. Two modules still reach
theirs directly, under names listed here (``BATCH_PROCESSOR_NAMES``, ``SDK_CONFIGURATION_NAMES``): the
export pipeline's rework moves them.
``tests/unit/test_internals.py`` checks every shape against the installed packages and fails naming the
entry, so an upgrade that changes one breaks a test, not a user's app.

- ``Span._attributes`` / ``_lock`` and ``BoundedAttributes._dict`` / ``_lock`` / ``_immutable`` /
  ``_setitem_locked`` (opentelemetry-sdk 1.45.2): baggage onto a live span without the SDK's per-value
  validation, measured by the bench; else ``Span.set_attributes``.
- ``ReadableSpan._attributes`` and ``BoundedAttributes._dict`` (opentelemetry-sdk 1.45.2): the export
  thread reads an ended span's attributes from the SDK's own dict (one C call per ``get``;
  ``span.attributes`` makes a read-only view per read: enrichment 3.8 -> 2.0 us a span); else
  ``span.attributes``.
- ``opentelemetry.baggage._BAGGAGE_KEY`` (opentelemetry-api 1.45.2): the context's own baggage dict, so the
  baggage processor knows a request's baggage by identity (``get_all`` makes a new proxy per call), measured
  by the bench; else ``get_all``, and every span cleans its baggage again.
- ``BatchSpanProcessor._batch_processor._metrics`` / ``._max_queue_size`` (opentelemetry-sdk 1.45.2): counting
  the spans a full queue drops, for which there is no public hook; else one warning and no count.
- ``opentelemetry.sdk._configuration`` (opentelemetry-sdk 1.45.2, ``SDK_CONFIGURATION_NAMES``): the
  configurator builds what the SDK's would from the same ``OTEL_*`` variables (opentelemetry-distro
  subclasses ``_OTelSDKConfigurator`` too).
- langsmith and langchain-core functions (langsmith 0.15.0, langchain-core 1.8, ``LANGSMITH_PATCHED``): keep
  langsmith from tracing LangChain runs twice (docs/langgraph.md); a missing one is skipped with one warning.

Cost: nothing at import beyond SDK modules the package imports anyway; ``write_clean_attributes`` is the
baggage processor's write itself.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry import baggage
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context, get_value
from opentelemetry.sdk.trace import Span

# --- live span attributes (opentelemetry-sdk 1.45.2) ------------------------------------------------------
FAST_ATTRIBUTE_WRITE = hasattr(BoundedAttributes, "_setitem_locked")


def write_clean_attributes(span: Span, attributes: Mapping[str, str]) -> bool:
    """Write clean string ``attributes`` into a live SDK span as ``Span.set_attributes`` would, minus its
    validation; False (nothing written) when the span's store is not the SDK's known one."""
    bounded = getattr(span, "_attributes", None)
    span_lock = getattr(span, "_lock", None)
    if not FAST_ATTRIBUTE_WRITE or type(bounded) is not BoundedAttributes or span_lock is None:
        return False
    if bounded._immutable:
        return False
    limit = bounded.max_value_len  # OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT / SpanLimits, when set
    maxlen = bounded.maxlen
    store = bounded._dict
    with span_lock, bounded._lock:  # the same locks, in the same order, as Span.set_attributes
        # Room for every entry and no length limit: nothing is dropped or cut, so one dict update does what
        # _setitem_locked does per key (~1 µs less for two; a key the span already had keeps its place).
        if limit is None and (maxlen is None or len(store) + len(attributes) <= maxlen):
            store.update(attributes)
            return True
        for key, value in attributes.items():
            bounded._setitem_locked(key, value if limit is None or len(value) <= limit else value[:limit])
    return True


# --- ended span attributes, read on the export thread (opentelemetry-sdk 1.45.2) ------------------------
def attribute_dict(attributes: Any) -> Any:
    """The plain dict behind a ``BoundedAttributes`` (span or event attributes), else ``attributes``."""
    inner = getattr(attributes, "_dict", None)
    return inner if type(inner) is dict else attributes


def attributes_of(span: Any) -> Mapping[str, Any]:
    """``span``'s attributes for reading, never to be modified: the dict the SDK keeps them in when it has
    one, else ``span.attributes`` (``{}`` for none)."""
    attributes = getattr(span, "_attributes", None)
    if type(attributes) is dict:  # a copy made by processors.normalize.with_attributes
        return attributes
    inner = attribute_dict(attributes)
    return inner if type(inner) is dict else (span.attributes or {})


# --- the context's baggage (opentelemetry-api 1.45.2) -----------------------------------------------------
BAGGAGE_CONTEXT_KEY: str | None = getattr(baggage, "_BAGGAGE_KEY", None)


def baggage_of(context: Context | None) -> Mapping[str, Any] | None:
    """The baggage dict ``context`` holds, the same object for every span of a request (``get_all`` else)."""
    if BAGGAGE_CONTEXT_KEY is None:
        return baggage.get_all(context)
    return get_value(BAGGAGE_CONTEXT_KEY, context)  # type: ignore[return-value]


# --- names other modules reach themselves; listed so tests/unit/test_internals.py checks them ----------
# otel_llm/metrics/health.py: the batch span processor's worker and the attributes it reads or replaces.
BATCH_PROCESSOR_WORKER = "_batch_processor"
BATCH_PROCESSOR_NAMES = ("_metrics", "_max_queue_size", "_queue", "_shutdown", "emit")
# otel_llm/configure.py: ``opentelemetry.sdk._configuration``, the SDK configurator's module.
SDK_CONFIGURATION_NAMES = (
    "_OTelSDKConfigurator", "_import_exporters", "_get_exporter_names", "_import_sampler", "_get_sampler",
    "_import_id_generator", "_get_id_generator", "_import_tracer_configurator", "_get_tracer_configurator",
    "_import_meter_configurator", "_get_meter_configurator", "_init_logging", "_import_logger_configurator",
    "_get_logger_configurator", "_import_opamp",
)


# --- langsmith 0.15.0 / langchain-core 1.8 (otel_llm.instrumentation.langsmith_bridge) --------------------
LANGSMITH_TRACING_MODE = ("langsmith.client", "_resolve_tracing_mode")
LANGSMITH_SYNTHETIC_CONTEXT = ("langsmith.run_helpers", "_maybe_create_otel_context")
LANGCHAIN_TRACING_V2_ENABLED = ("langchain_core.tracers.context", "_tracing_v2_is_enabled")
LANGSMITH_IMPORT_OTEL = ("langsmith.client", "_import_otel")
LANGSMITH_HYBRID_BATCH = ("langsmith._internal._background_thread", "_hybrid_tracing_thread_handle_batch")
LANGSMITH_UPLOAD_BATCH = ("langsmith._internal._background_thread", "_tracing_thread_handle_batch")
LANGSMITH_PATCHED = (LANGSMITH_SYNTHETIC_CONTEXT, LANGCHAIN_TRACING_V2_ENABLED, LANGSMITH_IMPORT_OTEL,
                     LANGSMITH_HYBRID_BATCH)


def private(target: tuple[str, str]) -> Callable[..., Any]:
    """The function ``(module, name)`` names; ImportError or AttributeError when it is gone."""
    module_name, name = target
    return getattr(importlib.import_module(module_name), name)
