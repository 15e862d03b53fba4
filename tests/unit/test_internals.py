"""otel_llm._internals: each private internal otel-llm keeps still has the shape the code relies on.

These tests fail loudly, naming the entry and the version it was checked against, when an upgrade of the SDK,
langsmith or langchain-core changes one; the code itself then falls back quietly (public path or one warning),
which no other test would notice. The last class checks what replaced an internal that went: the public API.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect

import pytest
from opentelemetry import baggage, context
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm import _internals
from otel_llm.processors.normalize import with_attributes

SDK = f"opentelemetry-sdk {importlib.metadata.version('opentelemetry-sdk')} (checked: 1.45.2)"
LANGSMITH = (f"langsmith {importlib.metadata.version('langsmith')} / langchain-core "
             f"{importlib.metadata.version('langchain-core')} (checked: 0.15.0 / 1.8)")


def _live_span(limits: SpanLimits | None = None):
    provider = TracerProvider(span_limits=limits or SpanLimits())
    return provider.get_tracer("internals").start_span("live")


class TestLiveSpanAttributes:
    def test_store_shape(self):
        """A live span's attributes are a BoundedAttributes with the fields the fast write uses."""
        span = _live_span()
        assert _internals.FAST_ATTRIBUTE_WRITE, f"BoundedAttributes._setitem_locked is gone in {SDK}"
        assert type(span._attributes) is BoundedAttributes, f"Span._attributes changed type in {SDK}"
        for name in ("_dict", "_lock", "_immutable", "maxlen", "max_value_len"):
            assert hasattr(span._attributes, name), f"BoundedAttributes.{name} is gone in {SDK}"
        assert hasattr(span, "_lock"), f"Span._lock is gone in {SDK}"

    def test_fast_write_equals_set_attributes(self):
        """The fast write leaves a span as ``set_attributes`` would, under count and length limits too."""
        entries = {"llm.experiment.arm": "openai:gpt-4o-mini", "session.id": "s" * 40}
        for limits in (SpanLimits(), SpanLimits(max_span_attribute_length=8, max_span_attributes=2)):
            fast, public = _live_span(limits), _live_span(limits)
            fast.set_attribute("already", "here")
            public.set_attribute("already", "here")
            assert _internals.write_clean_attributes(fast, entries), f"fast write refused a live span ({SDK})"
            public.set_attributes(entries)
            assert dict(fast.attributes) == dict(public.attributes)
            assert fast.dropped_attributes == public.dropped_attributes

    def test_ended_span_refused(self):
        """An ended span's store is immutable: the fast write declines, as ``set_attributes`` ignores it."""
        span = _live_span()
        span.end()
        assert _internals.write_clean_attributes(span, {"k": "v"}) is False
        assert "k" not in span.attributes


class TestEndedSpanAttributes:
    def test_export_thread_reads_the_sdks_own_dict(self):
        """An ended span's and its event's attributes are read from the SDK's plain dicts, equal to the public
        views (else the export thread silently falls back to a view per read)."""
        span = _live_span()
        span.set_attribute("gen_ai.request.model", "gpt-4o-mini")
        span.add_event("exception", {"exception.message": "boom"})
        span.end()
        read = _internals.attributes_of(span)
        assert type(read) is dict, f"ReadableSpan._attributes._dict changed shape in {SDK}"
        assert read == dict(span.attributes)
        event_attributes = _internals.attribute_dict(span.events[0].attributes)
        assert type(event_attributes) is dict, f"event BoundedAttributes._dict changed shape in {SDK}"
        assert event_attributes == dict(span.events[0].attributes)


class TestBaggageKey:
    def test_context_holds_one_dict_per_baggage(self):
        """The private key reads the same dict object each time, equal to what ``get_all`` copies."""
        assert _internals.BAGGAGE_CONTEXT_KEY is not None, f"baggage._BAGGAGE_KEY is gone ({SDK})"
        ctx = baggage.set_baggage("llm.experiment.arm", "a", context.Context())
        first, second = _internals.baggage_of(ctx), _internals.baggage_of(ctx)
        assert first is second, f"the context no longer holds one baggage dict ({SDK})"
        assert dict(first) == dict(baggage.get_all(ctx))


class TestNamesReachedElsewhere:
    def test_batch_processor_worker_has_what_health_reads(self):
        """The batch worker keeps the metrics object (with drop_items) and queue size health.py uses."""
        processor = BatchSpanProcessor(InMemorySpanExporter(), max_queue_size=7, max_export_batch_size=7)
        try:
            worker = getattr(processor, _internals.BATCH_PROCESSOR_WORKER, None)
            missing = [name for name in _internals.BATCH_PROCESSOR_NAMES if not hasattr(worker, name)]
            assert missing == [], f"BatchSpanProcessor worker lost {missing} ({SDK})"
            assert worker._max_queue_size == 7
            assert list(inspect.signature(worker._metrics.drop_items).parameters)[:1] == ["count"]
        finally:
            processor.shutdown()

    def test_every_name_the_configurator_uses_exists(self):
        """opentelemetry.sdk._configuration still has each helper the configurator calls."""
        module = importlib.import_module("opentelemetry.sdk._configuration")
        missing = [name for name in _internals.SDK_CONFIGURATION_NAMES
                   if not callable(getattr(module, name, None))]
        assert missing == [], f"gone from opentelemetry.sdk._configuration in {SDK}: {missing}"


class TestLangsmith:
    @pytest.mark.parametrize("target", [_internals.LANGSMITH_TRACING_MODE, *_internals.LANGSMITH_PATCHED,
                                        _internals.LANGSMITH_UPLOAD_BATCH], ids=lambda t: ".".join(t))
    def test_function_exists(self, target):
        """Each langsmith / langchain-core function the bridge reads or replaces is still there."""
        try:
            function = _internals.private(target)
        except (ImportError, AttributeError) as error:
            pytest.fail(f"{'.'.join(target)} is gone in {LANGSMITH}: {error}")
        assert callable(function)

    def test_batch_handlers_take_what_the_bridge_passes(self):
        """The hybrid handler the bridge replaces and the upload handler it calls take the same arguments."""
        expected = ["client", "tracing_queue", "batch", "use_multipart", "mark_task_done"]
        for target in (_internals.LANGSMITH_HYBRID_BATCH, _internals.LANGSMITH_UPLOAD_BATCH):
            parameters = list(inspect.signature(_internals.private(target)).parameters)
            assert parameters[:5] == expected, f"{'.'.join(target)} now takes {parameters} ({LANGSMITH})"

    def test_import_otel_returns_four_items(self):
        """langsmith's ``_import_otel`` returns (trace, set_span_in_context, ...): four items to rewrap."""
        imported = _internals.private(_internals.LANGSMITH_IMPORT_OTEL)()
        assert isinstance(imported, tuple) and len(imported) == 4, f"_import_otel changed ({LANGSMITH})"


class TestReplacedByPublicApi:
    def test_enriched_copy_keeps_dropped_counts(self):
        """The enriched copy reports the original's dropped attribute, event and link counts (public API)."""
        exporter = InMemorySpanExporter()
        provider = TracerProvider(span_limits=SpanLimits(max_events=1, max_attributes=1))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        span = provider.get_tracer("internals").start_span("x", attributes={"a": 1, "b": 2})
        span.add_event("one")
        span.add_event("two")
        span.end()
        (original,) = exporter.get_finished_spans()
        copy = with_attributes(original, {"gen_ai.provider.name": "openai"})
        assert (copy.dropped_attributes, copy.dropped_events, copy.dropped_links) == (1, 1, 0)
        assert [event.name for event in copy.events] == ["two"]
