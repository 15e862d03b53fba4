"""The Eco2 agent's load profile (docs/reference-app.md): stages of users, the intent mix, messages.

Stages are k6's: the user count ramps linearly to each stage's target over its duration. The Eco2 agent's
messages are Korean; each is followed by an English rendering carrying a keyword the reference app's intent
classifier knows (``otel_llm.demo.graph.INTENT_KEYWORDS``), so its runs land on the intents the SLOs name. The
reference app has no ``bulk_waste`` intent: those messages are classified ``waste`` (bulky waste is waste
disposal too).

No Locust here (``otel_llm.load.scenario`` runs it): the CLI's parser and the tests read this module alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from otel_llm.cli.search import parse_duration

CHAT_PATH = "/api/v1/chat"
THINK_TIME_S = 1.0  # the Eco2 agent's sleep(1) between iterations
MESSAGES: dict[str, str] = {
    "waste": "페트병 어떻게 버려? How do I recycle a plastic bottle",
    "character": "이코 소개해줘 Tell me about eco",
    "bulk_waste": "소파 버리는 방법 알려줘 How do I put out a sofa as bulky waste",
    "general": "안녕하세요 Hello there",
}
# The scaled-down default (one minute, at most 6 users) and the Eco2 agent's (7 minutes, up to 50 users).
DEFAULT_STAGES = "10s:3,40s:6,10s:0"
ECO2_STAGES = "1m:10,5m:50,1m:0"


@dataclass(frozen=True)
class Stage:
    duration_s: float
    target: int


def parse_stages(text: str) -> tuple[Stage, ...]:
    """``"10s:3,40s:6,10s:0"`` as stages; ``ValueError`` naming the format for anything else."""
    stages = []
    for part in text.split(","):
        duration, _, target = part.strip().partition(":")
        try:
            seconds = parse_duration(duration) / 1e6
            users = int(target)
        except ValueError:
            seconds, users = -1, -1
        if seconds <= 0 or users < 0:
            raise ValueError(
                "stages must be DURATION:USERS pairs separated by commas, DURATION a number and a unit "
                f"(ms, s, m, h), e.g. {DEFAULT_STAGES}; got {part.strip()!r}"
            )
        stages.append(Stage(seconds, users))
    return tuple(stages)


def users_at(stages: Sequence[Stage], elapsed_s: float) -> int | None:
    """The user count at ``elapsed_s``: linear within a stage from the previous target; None after it."""
    start, begin = 0, 0.0
    for stage in stages:
        if elapsed_s < begin + stage.duration_s:
            return round(start + (stage.target - start) * (elapsed_s - begin) / stage.duration_s)
        start, begin = stage.target, begin + stage.duration_s
    return None
