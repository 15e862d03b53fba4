"""A logger wrapper for the telemetry boundaries: each distinct message is logged at most once per interval.

Used where an exception is caught so it never reaches the application (exporters, hooks, propagators): the
first occurrence is logged with its traceback, repeats within the interval are counted and reported with the
next log.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

DEFAULT_INTERVAL_S = 60.0


class RateLimitedLogger:
    """Logs each message format at most once per ``interval_s``; says how many were suppressed meanwhile."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not interval_s >= 0:
            raise ValueError("interval_s must be a number >= 0")
        self._logger = logger
        self._interval_s = interval_s
        self._clock = clock
        self._lock = threading.Lock()
        self._last_logged: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def _should_log(self, message: str) -> int | None:
        """The number of suppressed repeats to report when ``message`` may be logged now, else None."""
        now = self._clock()
        with self._lock:
            last = self._last_logged.get(message)
            if last is not None and now - last < self._interval_s:
                self._suppressed[message] = self._suppressed.get(message, 0) + 1
                return None
            self._last_logged[message] = now
            return self._suppressed.pop(message, 0)

    def exception(self, message: str, *args: object) -> None:
        """Log at ERROR with the current exception's traceback, rate-limited per message."""
        self._log(logging.ERROR, message, args, exc_info=True)

    def warning(self, message: str, *args: object) -> None:
        """Log at WARNING, rate-limited per message."""
        self._log(logging.WARNING, message, args, exc_info=False)

    def _log(self, level: int, message: str, args: tuple[object, ...], exc_info: bool) -> None:
        suppressed = self._should_log(message)
        if suppressed is None:
            return
        if suppressed:
            message = f"{message} ({suppressed} similar messages suppressed)"
        self._logger.log(level, message, *args, exc_info=exc_info)
