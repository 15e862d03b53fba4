"""The reference app's messages: a chat job on the jobs stream, and the answer stream a worker writes per job.

Jobs stream ``chat:jobs`` (Redis Stream, consumer group ``chat-workers``): one entry per job with the fields
of :class:`Job` plus ``traceparent``/``baggage`` (``otel_llm.propagation``). Answer stream
``chat:answer:<job_id>``: one entry per streamed token ``{"token": ...}``, then ``{"done": "1", "answer":
...}`` or ``{"error": ...}``.

Also an in-process broker with the same two operations for embedded mode, where no Redis runs. No telemetry
here.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

JOBS_STREAM = "chat:jobs"
ANSWER_STREAM_PREFIX = "chat:answer:"
CONSUMER_GROUP = "chat-workers"
MESSAGING_SYSTEM = "redis"
TOKEN_FIELD = "token"
DONE_FIELD = "done"
ANSWER_FIELD = "answer"
ERROR_FIELD = "error"
STREAM_START = "0"

STATUS_PENDING = "pending"
STATUS_STREAMING = "streaming"
STATUS_DONE = "done"
STATUS_ERROR = "error"


def answer_stream(job_id: str) -> str:
    return f"{ANSWER_STREAM_PREFIX}{job_id}"


def _text(value: Any) -> str:
    return bytes(value).decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)


def decode_fields(fields: Mapping[Any, Any]) -> dict[str, str]:
    """A stream entry's fields as ``str`` keys and values, whatever the client returned."""
    return {_text(key): _text(value) for key, value in fields.items()}


@dataclass(frozen=True)
class Job:
    """One chat request as the worker receives it; provider and model are the arm the API assigned."""

    job_id: str
    message: str
    session_id: str
    user_id: str
    provider: str
    model: str

    def fields(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_fields(cls, fields: Mapping[Any, Any]) -> Job:
        """The job in a stream entry; ValueError naming the missing fields."""
        decoded = decode_fields(fields)
        missing = [name for name in cls.__dataclass_fields__ if name not in decoded]
        if missing:
            raise ValueError(f"job message lacks the fields {', '.join(missing)}")
        return cls(**{name: decoded[name] for name in cls.__dataclass_fields__})


@dataclass(frozen=True)
class Answer:
    """What the answer stream of a job holds so far."""

    job_id: str
    status: str
    text: str
    tokens: int
    error: str | None = None


def assemble(job_id: str, entries: list[Mapping[str, str]]) -> Answer:
    """The answer of a job from its answer-stream entries (decoded), in order."""
    tokens = [entry[TOKEN_FIELD] for entry in entries if TOKEN_FIELD in entry]
    for entry in entries:
        if ERROR_FIELD in entry:
            return Answer(job_id, STATUS_ERROR, "".join(tokens), len(tokens), entry[ERROR_FIELD])
        if DONE_FIELD in entry:
            return Answer(job_id, STATUS_DONE, entry.get(ANSWER_FIELD, "".join(tokens)), len(tokens))
    return Answer(job_id, STATUS_STREAMING if tokens else STATUS_PENDING, "".join(tokens), len(tokens))


def is_final(entry: Mapping[str, str]) -> bool:
    return DONE_FIELD in entry or ERROR_FIELD in entry


class MemoryBroker:
    """The jobs queue and the answer streams in memory (embedded mode): same operations as the Redis ones.

    ``enqueue``/``read`` are the API's (async), ``receive``/``publish`` the worker's (blocking, any thread).
    """

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[str, dict[str, str]] | None] = queue.Queue()
        self._answers: dict[str, list[dict[str, str]]] = {}
        self._changed = threading.Condition()
        self._ids = itertools.count(1)

    async def enqueue(self, fields: Mapping[str, str]) -> str:
        message_id = f"{next(self._ids)}-0"
        self._jobs.put((message_id, dict(fields)))
        return message_id

    async def read(
        self, job_id: str, cursor: str = STREAM_START, block_s: float = 0.0
    ) -> tuple[list[dict[str, str]], str]:
        """Entries after ``cursor`` and the cursor after them; waits up to ``block_s`` when there are none."""
        return await asyncio.to_thread(self.wait_entries, job_id, cursor, block_s)

    def wait_entries(
        self, job_id: str, cursor: str = STREAM_START, block_s: float = 0.0
    ) -> tuple[list[dict[str, str]], str]:
        seen = int(cursor)
        with self._changed:
            self._changed.wait_for(lambda: len(self._answers.get(job_id, ())) > seen, timeout=block_s)
            entries = list(self._answers.get(job_id, ())[seen:])
        return entries, str(seen + len(entries))

    def receive(self, timeout_s: float | None = None) -> tuple[str, dict[str, str]] | None:
        """The next job message (id, fields), or None when closed or nothing came within ``timeout_s``."""
        try:
            return self._jobs.get(timeout=timeout_s)
        except queue.Empty:
            return None

    def close(self, receivers: int = 1) -> None:
        """Wakes ``receivers`` blocked in :meth:`receive` with None."""
        for _ in range(receivers):
            self._jobs.put(None)

    def publish(self, job_id: str, entry: Mapping[str, str]) -> None:
        with self._changed:
            self._answers.setdefault(job_id, []).append(dict(entry))
            self._changed.notify_all()
