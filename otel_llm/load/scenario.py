"""The Eco2 agent's load scenario (docs/reference-app.md) on Locust, headless, as a library.

Virtual users follow the stages of ``otel_llm.load.profile``; each user picks an intent uniformly from the
Eco2 agent's four (waste, character, bulk_waste, general), posts the profile's message for it with
``session_id`` ``session-<user>-<iteration>`` (k6's ``__VU``/``__ITER``) and a ``user_id`` ``user-<user>``,
checks the answer (HTTP 200 with a ``job_id``; anything else is a Locust failure), and waits one second.
Requests are named per intent (``POST /api/v1/chat [waste]``), so Locust's statistics are per intent.

Importing this module imports Locust, which monkey-patches the standard library for gevent: only the
``otel-llm load`` command imports it, never an instrumented app.
"""

from __future__ import annotations

import itertools
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import gevent
from locust import HttpUser, LoadTestShape, constant, task
from locust.env import Environment

from otel_llm.load.profile import CHAT_PATH, MESSAGES, THINK_TIME_S, Stage, users_at

# Users per second: fast enough that the shape's linear ramp, ticked each second, is the ramp.
SPAWN_RATE = 100.0
# Users stopping (ramp-down, end of the run) finish the request in flight first, at most this long (k6's
# gracefulStop default), so every job the app accepted is counted as accepted.
GRACEFUL_STOP_S = 30.0


class StagesShape(LoadTestShape):
    """Locust's shape for ``stages``: the ramp, then the end of the test."""

    def __init__(self, stages: Sequence[Stage]) -> None:
        super().__init__()
        self.stages = tuple(stages)

    def tick(self) -> tuple[int, float] | None:
        users = users_at(self.stages, self.get_run_time())
        return None if users is None else (users, SPAWN_RATE)


@dataclass
class Tally:
    """What the users saw: accepted jobs per intent (the check passed), failed checks."""

    accepted: Counter
    failed: int = 0


def chat_user(path: str, tally: Tally, seed: int | None = None) -> type[HttpUser]:
    """A Locust user class posting the Eco2 agent's chat requests to ``path``, counting into ``tally``."""
    user_ids = itertools.count(1)
    rng = random.Random(seed)

    class ChatUser(HttpUser):
        wait_time = constant(THINK_TIME_S)

        def on_start(self) -> None:
            self.user_number, self.iteration = next(user_ids), 0

        @task
        def send(self) -> None:
            intent = rng.choice(tuple(MESSAGES))
            body = {
                "message": MESSAGES[intent],
                "session_id": f"session-{self.user_number}-{self.iteration}",
                "user_id": f"user-{self.user_number}",
            }
            self.iteration += 1
            with self.client.post(
                path, json=body, name=f"POST {path} [{intent}]", catch_response=True
            ) as reply:
                job_id = None
                if reply.status_code == 200:
                    try:
                        job_id = reply.json().get("job_id")
                    except (ValueError, AttributeError):
                        job_id = None
                if job_id:
                    tally.accepted[intent] += 1
                else:
                    tally.failed += 1
                    reply.failure(f"HTTP {reply.status_code}" if reply.status_code != 200 else "no job_id")

    return ChatUser


@dataclass(frozen=True)
class Progress:
    elapsed_s: float
    users: int
    requests_per_s: float
    requests: int
    errors: int


def run(
    url: str,
    stages: Sequence[Stage],
    on_progress: Callable[[Progress], None],
    *,
    path: str = CHAT_PATH,
    every_s: float = 2.0,
    seed: int | None = None,
) -> tuple[Tally, Environment]:
    """Runs the scenario against ``url`` to the end of ``stages``, reporting progress every ``every_s``."""
    tally = Tally(Counter())
    environment = Environment(
        user_classes=[chat_user(path, tally, seed)],
        shape_class=StagesShape(stages),
        host=url.rstrip("/"),
        stop_timeout=GRACEFUL_STOP_S,
    )
    runner = environment.create_local_runner()

    def report() -> None:
        started = gevent.get_hub().loop.now()
        while True:
            gevent.sleep(every_s)
            total = environment.stats.total  # a new entry whenever the runner resets the statistics
            on_progress(
                Progress(
                    gevent.get_hub().loop.now() - started,
                    runner.user_count,
                    total.current_rps,
                    total.num_requests,
                    total.num_failures,
                )
            )

    reporter = gevent.spawn(report)
    runner.start_shape()
    runner.shape_greenlet.join()  # ends after the last stage (the runner itself would idle on)
    reporter.kill()
    runner.quit()
    return tally, environment
