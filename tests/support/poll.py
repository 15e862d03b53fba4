"""``poll``: wait for a condition with a deadline instead of sleeping a guessed time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
DEFAULT_TIMEOUT_SECONDS = 60.0
DEFAULT_INTERVAL_SECONDS = 0.25


def poll(
    probe: Callable[[], T],
    *,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    interval: float = DEFAULT_INTERVAL_SECONDS,
    message: str = "condition",
) -> T:
    """Call ``probe`` until it returns something truthy and return that; fail at the deadline.

    An exception from ``probe`` counts as "not yet" (a server still starting); failures show the last.
    """
    if timeout <= 0 or interval <= 0:
        raise ValueError(f"timeout and interval must be > 0, got {timeout} and {interval}")
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            last = probe()
        except Exception as exc:  # noqa: BLE001 - reported below if it never succeeds
            last = exc
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not met within {timeout:.0f}s; last result: {last!r}")
        time.sleep(interval)
