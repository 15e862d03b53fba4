"""The delivery stage: exports within the batch and byte bounds, failed chunks kept and retried in order,
every span it drops counted by reason."""

from __future__ import annotations

import contextlib
import os
import signal
import time

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_llm.exporters.delivery import (
    ALREADY_SHUTDOWN,
    EXPORT_FAILED,
    RETRY_QUEUE_FULL,
    TOO_LARGE,
    DeliveryExporter,
    span_size,
)
from tests.support.poll import poll


def make_spans(count: int, payload: str = "") -> list:
    """``count`` ended SDK spans named by their index, each with an attribute of ``payload``."""
    sink = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(sink))
    tracer = provider.get_tracer("test")
    for index in range(count):
        with tracer.start_as_current_span(str(index)) as span:
            span.set_attribute("payload", payload)
    return list(sink.get_finished_spans())


class Backend(SpanExporter):
    """Records each call's span names; fails (or raises) while ``down``."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.down = False
        self.raises = False

    def export(self, spans):
        if self.raises:
            raise RuntimeError("connection reset")
        if self.down:
            return SpanExportResult.FAILURE
        self.calls.append([span.name for span in spans])
        return SpanExportResult.SUCCESS

    def delivered(self) -> list[str]:
        return [name for call in self.calls for name in call]

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True

    def shutdown(self) -> None:
        pass


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def drops() -> dict[str, int]:
    return {}


def delivery(backend: Backend, drops: dict[str, int], clock: Clock | None = None,
             **options) -> DeliveryExporter:
    def count(number: int, reason: str) -> None:
        drops[reason] = drops.get(reason, 0) + number

    return DeliveryExporter(backend, on_drop=count, clock=clock or Clock(), **options)


class TestBounds:
    def test_calls_carry_at_most_the_batch_size(self, drops):
        """1,000 spans with a batch size of 300: four calls of at most 300 spans, in order."""
        backend = Backend()
        spans = make_spans(1000)
        assert delivery(backend, drops, max_batch_spans=300).export(spans) is SpanExportResult.SUCCESS
        assert [len(call) for call in backend.calls] == [300, 300, 300, 100]
        assert backend.delivered() == [str(index) for index in range(1000)]

    def test_calls_stay_under_the_byte_bound(self, drops):
        """Spans of ~10 kB each with a 100 kB bound: no call carries more than the bound's worth."""
        backend = Backend()
        spans = make_spans(50, payload="x" * 10_000)
        delivery(backend, drops, max_batch_bytes=100_000).export(spans)
        assert len(backend.calls) > 5
        assert all(sum(span_size(span) for span in spans if span.name in call) <= 100_000
                   for call in backend.calls)
        assert len(backend.delivered()) == 50 and drops == {}

    def test_a_span_larger_than_the_bound_is_dropped_and_counted(self, drops):
        """One span over the byte bound is dropped alone, counted as too_large; the others go out."""
        backend = Backend()
        small = make_spans(3)
        huge = make_spans(1, payload="y" * 200_000)
        delivery(backend, drops, max_batch_bytes=100_000).export([small[0], huge[0], *small[1:]])
        assert backend.delivered() == ["0", "1", "2"]
        assert drops == {TOO_LARGE: 1}

    def test_a_span_whose_size_cannot_be_estimated_goes_out(self, drops):
        """A span the size estimate raises on counts as 0 bytes: the exporter gets it, nothing is dropped."""
        def size_of(span) -> int:
            if span.name == "1":
                raise ValueError("unreadable")
            return 10

        backend = Backend()
        delivery(backend, drops, size_of=size_of).export(make_spans(3))
        assert backend.delivered() == ["0", "1", "2"] and drops == {}

    def test_the_estimate_grows_with_attribute_text(self):
        """A span's estimate counts its attribute text, so a 1 MB prompt weighs at least 1 MB."""
        assert span_size(make_spans(1, payload="z" * 1_000_000)[0]) >= 1_000_000
        assert span_size(make_spans(1)[0]) < 300


class TestRetries:
    def test_failed_chunks_are_retried_in_order_after_the_interval(self, drops):
        """While the backend is down nothing is lost; once it is back, every span arrives, oldest first."""
        backend, clock = Backend(), Clock()
        stage = delivery(backend, drops, clock, max_batch_spans=10, retry_interval_s=1.0)
        spans = make_spans(40)
        backend.down = True
        assert stage.export(spans[:20]) is SpanExportResult.FAILURE
        assert stage.export(spans[20:30]) is SpanExportResult.FAILURE
        assert stage.waiting_spans == 30
        backend.down = False
        clock.now = 0.5  # before the interval: held, not tried
        assert stage.export(spans[30:35]) is SpanExportResult.FAILURE
        assert backend.calls == []
        clock.now = 1.5
        assert stage.export(spans[35:]) is SpanExportResult.SUCCESS
        assert backend.delivered() == [str(index) for index in range(40)]
        assert stage.waiting_spans == 0 and drops == {}

    def test_an_idle_app_gets_its_waiting_spans_out_without_another_export(self, drops):
        """No export follows the failure (an idle app): the retry thread delivers the spans once the backend
        is back, then ends. Without it they would wait until they expire."""
        backend = Backend()
        stage = delivery(backend, drops, max_batch_spans=10, retry_interval_s=0.01, clock=time.monotonic)
        backend.down = True
        assert stage.export(make_spans(25)) is SpanExportResult.FAILURE
        backend.down = False
        poll(lambda: len(backend.delivered()) == 25, timeout=30, interval=0.01, message="the retry thread")
        assert backend.delivered() == [str(index) for index in range(25)]
        assert stage.waiting_spans == 0 and drops == {}
        poll(lambda: stage._retrier is None, timeout=30, interval=0.01, message="the retry thread's end")

    def test_an_exporter_that_raises_is_a_failure_and_the_spans_wait(self, drops):
        """An exception from the exporter does not escape; the chunk waits and is delivered later."""
        backend = Backend()
        stage = delivery(backend, drops, retry_interval_s=0)
        backend.raises = True
        assert stage.export(make_spans(3)) is SpanExportResult.FAILURE
        backend.raises = False
        assert stage.force_flush() is True
        assert backend.delivered() == ["0", "1", "2"]

    def test_past_the_queue_bound_the_oldest_chunks_are_dropped_and_counted(self, drops):
        """With room for 25 waiting spans, 40 failed spans in chunks of 10 lose the two oldest chunks."""
        backend = Backend()
        stage = delivery(backend, drops, max_batch_spans=10, retry_max_spans=25, retry_interval_s=0)
        backend.down = True
        stage.export(make_spans(40))
        assert drops == {RETRY_QUEUE_FULL: 20}
        backend.down = False
        stage.force_flush()
        assert backend.delivered() == [str(index) for index in range(20, 40)]

    def test_no_retry_queue_drops_failed_chunks_at_once(self, drops):
        """retry_max_spans=0: a failed chunk is dropped and counted, nothing waits."""
        backend = Backend()
        backend.down = True
        stage = delivery(backend, drops, retry_max_spans=0)
        stage.export(make_spans(5))
        assert drops == {RETRY_QUEUE_FULL: 5} and stage.waiting_spans == 0

    def test_chunks_older_than_the_max_age_are_dropped_and_counted(self, drops):
        """A chunk that waited longer than retry_max_age_s is counted as export_failed, not sent."""
        backend, clock = Backend(), Clock()
        stage = delivery(backend, drops, clock, retry_max_age_s=60, retry_interval_s=0)
        spans = make_spans(4)
        backend.down = True
        stage.export(spans[:2])
        clock.now = 30
        stage.export(spans[2:])
        backend.down = False
        clock.now = 61
        stage.force_flush()
        assert drops == {EXPORT_FAILED: 2}
        assert backend.delivered() == ["2", "3"]

    def test_shutdown_tries_once_more_then_counts_what_is_left(self, drops):
        """At shutdown waiting spans get one last try; those still failing are counted, later ones too."""
        backend = Backend()
        stage = delivery(backend, drops, retry_interval_s=60)
        backend.down = True
        stage.export(make_spans(3))
        stage.shutdown()
        assert drops == {EXPORT_FAILED: 3}
        assert stage.export(make_spans(2)) is SpanExportResult.FAILURE
        assert drops == {EXPORT_FAILED: 3, ALREADY_SHUTDOWN: 2}


class TestConstruction:
    @pytest.mark.parametrize("options", [
        {"max_batch_spans": 0}, {"max_batch_bytes": -1}, {"retry_max_spans": -1},
        {"retry_max_age_s": float("nan")}, {"retry_interval_s": -1}, {"max_batch_spans": True},
    ])
    def test_bad_arguments_raise_naming_the_rule(self, options):
        """An out-of-range argument is a ValueError naming the parameter."""
        with pytest.raises(ValueError, match=next(iter(options))):
            DeliveryExporter(Backend(), **options)


class TestFork:
    def test_a_forked_child_starts_with_an_empty_queue_and_a_free_lock(self, drops):
        """After fork the parent's waiting spans stay the parent's, and a lock held at fork time is not."""
        backend = Backend()
        stage = delivery(backend, drops, retry_interval_s=0)
        backend.down = True
        stage.export(make_spans(2))
        stage._lock.acquire()  # as if the parent's export thread were inside inner.export
        pid = os.fork()
        if pid == 0:  # the child: report through the exit status only
            backend.down = False
            ok = stage.waiting_spans == 0 and stage.export(make_spans(1)) is SpanExportResult.SUCCESS
            os._exit(0 if ok and backend.delivered()[-1] == "0" else 1)
        stage._lock.release()
        try:
            _, status = poll(lambda: (done := os.waitpid(pid, os.WNOHANG))[0] and done, timeout=30,
                             interval=0.01, message="the child's export")
        finally:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):
                os.kill(pid, signal.SIGKILL)  # a child stuck on the parent's lock
                os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert stage.waiting_spans == 2
