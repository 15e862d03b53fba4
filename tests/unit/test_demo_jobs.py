"""The reference app's messages: job fields, answer-stream assembly, and the in-process broker."""

from __future__ import annotations

import asyncio
import threading

import pytest

from otel_llm.demo.jobs import (
    STATUS_DONE,
    STATUS_ERROR,
    STATUS_PENDING,
    STATUS_STREAMING,
    Job,
    MemoryBroker,
    answer_stream,
    assemble,
    is_final,
)

JOB = Job("j1", "hello", "s1", "u1", "openai", "gpt-4o-mini")


class TestJob:
    def test_fields_round_trip_including_redis_bytes(self):
        """A job survives its stream fields, also as bytes from a Redis client; extra fields are ignored."""
        fields = {**JOB.fields(), "traceparent": "00-ab-cd-01"}
        assert Job.from_fields(fields) == JOB
        assert Job.from_fields({key.encode(): value.encode() for key, value in fields.items()}) == JOB

    def test_missing_fields_are_named(self):
        """A message without some job fields raises ValueError naming them."""
        with pytest.raises(ValueError, match="provider, model"):
            Job.from_fields({"job_id": "j", "message": "m", "session_id": "s", "user_id": "u"})

    def test_answer_stream_is_per_job(self):
        """Each job has its own answer stream key."""
        assert answer_stream("abc") == "chat:answer:abc"


class TestAssemble:
    def test_statuses_follow_the_entries(self):
        """No entry is pending, tokens are streaming, a done entry is done with the final answer."""
        assert assemble("j", []).status == STATUS_PENDING
        streaming = assemble("j", [{"token": "a"}, {"token": " b"}])
        assert (streaming.status, streaming.text, streaming.tokens) == (STATUS_STREAMING, "a b", 2)
        done = assemble("j", [{"token": "a"}, {"done": "1", "answer": "a!"}])
        assert (done.status, done.text, done.tokens) == (STATUS_DONE, "a!", 1)

    def test_error_entry_ends_the_answer_with_the_error(self):
        """An error entry makes the answer failed, keeping the tokens streamed before it."""
        failed = assemble("j", [{"token": "a"}, {"error": "ValueError: boom"}])
        assert (failed.status, failed.text, failed.error) == (STATUS_ERROR, "a", "ValueError: boom")
        assert is_final({"error": "x"}) and is_final({"done": "1"}) and not is_final({"token": "t"})


class TestMemoryBroker:
    def test_enqueued_jobs_are_received_in_order_then_close_wakes_receivers(self):
        """Jobs come out in order with their ids; close() makes each waiting receiver get None."""
        broker = MemoryBroker()
        first = asyncio.run(broker.enqueue({"n": "1"}))
        second = asyncio.run(broker.enqueue({"n": "2"}))
        assert first != second
        assert broker.receive() == (first, {"n": "1"})
        assert broker.receive() == (second, {"n": "2"})
        assert broker.receive(timeout_s=0.01) is None
        broker.close()
        assert broker.receive() is None

    def test_read_returns_entries_after_the_cursor(self):
        """read() returns new entries and a cursor that skips them next time."""
        broker = MemoryBroker()
        broker.publish("j", {"token": "a"})
        entries, cursor = asyncio.run(broker.read("j"))
        assert entries == [{"token": "a"}]
        broker.publish("j", {"done": "1"})
        assert asyncio.run(broker.read("j", cursor)) == ([{"done": "1"}], "2")

    def test_blocking_read_wakes_on_publish(self):
        """A reader blocked on an empty answer stream returns the entry published from another thread."""
        broker = MemoryBroker()
        started = threading.Event()

        def publish_later():
            started.wait()
            broker.publish("j", {"token": "x"})

        thread = threading.Thread(target=publish_later)
        thread.start()
        started.set()
        entries, _ = broker.wait_entries("j", block_s=30)
        thread.join()
        assert entries == [{"token": "x"}]
