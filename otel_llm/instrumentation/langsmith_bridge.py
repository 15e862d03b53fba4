"""Keeps langsmith[otel] from tracing LangChain runs a second time while the LangChain instrumentation is on.

With ``LANGSMITH_TRACING=true`` and ``LANGSMITH_TRACING_MODE=otel`` (or ``hybrid``), langsmith's
LangChainTracer turns each LangChain run into an OTel span after the fact, from a background thread.
otel_llm's callback handler already makes those spans live, with LangSmith's attribute names, so the
collector ships them to LangSmith. ``install()`` makes langsmith step aside (the choice and the
measurements: docs/langgraph.md):

1. ``otel`` mode: LangChain no longer attaches langsmith's LangChainTracer to runs (LangChain's configure
   step asks ``langchain_core.tracers.context._tracing_v2_is_enabled``, which answers False unless a tracer
   was set explicitly with ``tracing_v2_enabled()``). No duplicate span, and none of the tracer's cost.
2. ``hybrid`` mode: the tracer stays (it uploads runs to LangSmith's API) but its OTel leg is dropped:
   langsmith's hybrid batch handler only uploads.
3. Inside ``@traceable`` functions langsmith makes a synthetic OTel span current (trace id = the LangSmith
   trace UUID, never exported), so OTel spans opened there land in another trace under a missing parent. Its
   ``_maybe_create_otel_context`` now gives None: those spans stay children of the current span (a node's).
   ``@traceable`` runs themselves are still exported by langsmith (nothing else traces them).
4. ``otel`` mode: langsmith parents a ``@traceable`` run's span on the span current when the run was queued,
   but reads that span's context later, on its export thread. otel-llm's current span then stands for the
   innermost LangChain run still live (``RunSpan``): by then none is, so the span would hang under the
   request. langsmith's client now keeps the span context as it was when queued (the calling node's).

5. ``langsmith`` (REST) and ``hybrid`` modes with tracing on: langsmith uploads every LangChain run to
   LangSmith's API, and otel-llm's spans of the same runs reach LangSmith too when the collector exports to
   it: LangSmith would get each run twice. The process cannot see the collector's configuration, so
   ``install()`` logs one warning naming ``LANGSMITH_TRACING_MODE`` and the two safe setups.

These are private langsmith / langchain_core functions, listed in ``otel_llm._internals`` with the versions
checked: a missing one is skipped with one warning, never an error. Cost: nothing per run; the tracing mode is
read once, at install.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from otel_llm import _internals

_logger = logging.getLogger(__name__)

MODE_OTEL = "otel"
MODE_HYBRID = "hybrid"
MODE_REST = "langsmith"
UPLOADING_MODES = frozenset({MODE_REST, MODE_HYBRID})  # langsmith posts runs to LangSmith's REST API
_warned_upload_twice = False


def langsmith_tracing_mode() -> str | None:
    """langsmith's tracing mode from its environment variables (``langsmith``, ``otel``, ``hybrid``), or None
    when langsmith is not installed or the mode is invalid (langsmith then traces nothing)."""
    try:
        resolve_tracing_mode = _internals.private(_internals.LANGSMITH_TRACING_MODE)
    except (ImportError, AttributeError):
        return None
    try:
        return resolve_tracing_mode(None)
    except Exception:
        return None


def langsmith_tracing_enabled() -> bool:
    """Whether langsmith traces at all (``LANGSMITH_TRACING`` / ``LANGCHAIN_TRACING_V2``, or set in code)."""
    try:
        from langsmith.utils import tracing_is_enabled

        return bool(tracing_is_enabled())
    except Exception:
        return False


def install(mode: str | None = None, *, tracing_enabled: bool | None = None) -> Callable[[], None]:
    """Applies the changes for ``mode`` (default: langsmith's, from env); returns a function undoing them.

    ``tracing_enabled`` (default: langsmith's own answer) only decides the warning about runs uploaded twice.
    """
    if mode is None:
        mode = langsmith_tracing_mode()
    undo: list[Callable[[], None]] = []
    if mode is None:
        return lambda: None
    if tracing_enabled is None:
        tracing_enabled = langsmith_tracing_enabled()
    if mode in UPLOADING_MODES and tracing_enabled:
        _warn_upload_twice(mode)
    _patch(undo, _internals.LANGSMITH_SYNTHETIC_CONTEXT, lambda original: _no_synthetic_context)
    if mode == MODE_OTEL:
        _patch(undo, _internals.LANGCHAIN_TRACING_V2_ENABLED, _explicit_tracer_only)
        _patch(undo, _internals.LANGSMITH_IMPORT_OTEL, _parent_context_as_queued)
    elif mode == MODE_HYBRID:
        _patch(undo, _internals.LANGSMITH_HYBRID_BATCH, _upload_only)

    def undo_all() -> None:
        for step in reversed(undo):
            step()

    return undo_all


def _warn_upload_twice(mode: str) -> None:
    global _warned_upload_twice
    if _warned_upload_twice:
        return
    _warned_upload_twice = True
    _logger.warning(
        "otel_llm: LangSmith tracing is on in %r mode (LANGSMITH_TRACING_MODE): langsmith uploads every "
        "LangChain run to LangSmith's API, and if your collector also exports otel-llm's spans to LangSmith "
        "(its LangSmith pipeline, on when it has a LANGSMITH_API_KEY) LangSmith gets each run twice. "
        "Set LANGSMITH_TRACING_MODE=otel (LangSmith then gets otel-llm's spans through the collector only), "
        "or keep this mode and switch the collector's LangSmith export off (see docs/langgraph.md).",
        mode,
    )


def _patch(
    undo: list[Callable[[], None]],
    target: tuple[str, str],
    make: Callable[[Callable[..., Any]], Callable[..., Any]],
) -> None:
    module_name, attribute = target
    try:
        original = _internals.private(target)
        module = sys.modules[module_name]
    except (ImportError, AttributeError):
        _logger.warning(
            "otel_llm: %s.%s not found; LangSmith may duplicate or misparent LangChain spans "
            "(see docs/langgraph.md)",
            module_name,
            attribute,
        )
        return
    setattr(module, attribute, make(original))
    undo.append(lambda: setattr(module, attribute, original))


def _no_synthetic_context(run_tree: Any) -> None:
    """Replaces langsmith's synthetic OTel context inside ``@traceable``: keep the real current span."""
    return None


def _explicit_tracer_only(original: Callable[[], Any]) -> Callable[[], Any]:
    from langchain_core.tracers.context import tracing_v2_callback_var

    def tracing_v2_is_enabled() -> bool:
        """LangSmith's LangChain tracer only where the app asked for one (``tracing_v2_enabled()``)."""
        return tracing_v2_callback_var.get() is not None

    return tracing_v2_is_enabled


def _parent_context_as_queued(original: Callable[[], Any]) -> Callable[[], Any]:
    def import_otel() -> Any:
        """langsmith's OTel imports, its ``set_span_in_context`` keeping the span's context as of the call."""
        imported = original()
        if not isinstance(imported, tuple) or len(imported) != 4:  # another langsmith: leave it alone
            return imported
        otel_trace, set_span_in_context, *rest = imported

        def set_span_context_in_context(span: Any, context: Any = None) -> Any:
            return set_span_in_context(otel_trace.NonRecordingSpan(span.get_span_context()), context)

        return (otel_trace, set_span_context_in_context, *rest)

    return import_otel


def _upload_only(original: Callable[..., Any]) -> Callable[..., Any]:
    upload_batch = _internals.private(_internals.LANGSMITH_UPLOAD_BATCH)

    def hybrid_batch_upload_only(
        client: Any, tracing_queue: Any, batch: Any, use_multipart: bool, mark_task_done: bool = True
    ) -> None:
        """langsmith's hybrid batch handler without its OTel leg: the upload to LangSmith's API only."""
        upload_batch(client, tracing_queue, batch, use_multipart, mark_task_done)

    return hybrid_batch_upload_only
