"""The benchmark's yardsticks: callback handlers that isolate what LangChain tracing costs, stage by stage.

- ``EmptyHandler``: an inline handler whose callbacks do nothing. Its cost is LangChain building the
  callback managers and dispatching every event to one handler: the floor any callback-based tracing pays.
- ``MinimalTreeHandler``: the least a handler does to emit otel-llm's span tree: one span per visible run,
  named after the run, child of its parent run's span (hidden runs aliased to their visible parent), current
  while the run executes so spans opened in a node are its children; no attributes, no metrics. Its cost
  over ``EmptyHandler`` is the SDK's span start/end and export plus one context attach/detach per run.

Both are registered the way otel-llm registers its own handler (a ``langchain_core`` configure hook), so
LangChain treats them alike. Needs only langchain-core and the OpenTelemetry API.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

HIDDEN_TAG = "langsmith:hidden"


def register(handler: BaseCallbackHandler) -> None:
    """Adds ``handler`` to every LangChain run's callbacks, in every thread and task."""
    from langchain_core.tracers.context import _configure_hooks

    _configure_hooks.append((ContextVar("bench_handler", default=handler), True, None, None))


class EmptyHandler(BaseCallbackHandler):
    """Called inline for every event, does nothing."""

    run_inline = True

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        """Defined so LangChain does not fall back to on_llm_start with the messages turned into strings
        (what it does for a handler without it)."""


class MinimalTreeHandler(BaseCallbackHandler):
    """One live span per visible run, parented by run id, current while the run executes."""

    run_inline = True

    def __init__(self, tracer: trace.Tracer) -> None:
        # run id -> (run id, span, context it made current, token); a hidden run maps to its parent's entry.
        self._runs: dict[UUID, tuple] = {}
        self._tracer = tracer

    def _start(self, name: str, kind: SpanKind, run_id: UUID, kwargs: dict[str, Any]) -> None:
        parent = self._runs.get(kwargs.get("parent_run_id"))
        tags = kwargs.get("tags")
        if tags and HIDDEN_TAG in tags:
            if parent is not None:
                self._runs[run_id] = parent
            return
        span = self._tracer.start_span(name, context=parent[2] if parent else None, kind=kind)
        context = trace.set_span_in_context(span)
        self._runs[run_id] = (run_id, span, context, otel_context.attach(context))

    def _end(self, run_id: UUID) -> None:
        entry = self._runs.pop(run_id, None)
        if entry is None or entry[0] != run_id:
            return
        entry[1].end()
        if otel_context.get_current() is entry[2]:
            otel_context.detach(entry[3])

    def on_chain_start(self, serialized: Any, inputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._start(kwargs.get("name") or "chain", SpanKind.INTERNAL, run_id, kwargs)

    def on_retriever_start(self, serialized: Any, query: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._start(kwargs.get("name") or "retriever", SpanKind.INTERNAL, run_id, kwargs)

    def on_chat_model_start(self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._start(kwargs.get("name") or "chat", SpanKind.CLIENT, run_id, kwargs)

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_retriever_end(self, documents: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_chain_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)

    def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        self._end(run_id)
