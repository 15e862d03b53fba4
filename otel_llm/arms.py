"""Experiment arms: a provider/model pair and its share of requests, and how ``OTEL_LLM_EXPERIMENT_ARMS`` is
written (``provider:model[=weight],...``). Parsed once, by otel_llm.settings; used by otel_llm.experiment.

Cost: parsing at start-up only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from otel_llm import semconv

DEFAULT_WEIGHT = 1.0
ARMS_ACCEPTS = "comma-separated provider:model[=weight] entries with weights >= 0, not all 0"


@dataclass(frozen=True)
class Arm:
    """One arm: the provider and model a request in it should use, and its share of requests."""

    provider: str
    model: str
    weight: float = DEFAULT_WEIGHT

    @property
    def name(self) -> str:
        """The arm's label value, ``provider:model`` (what ``llm.experiment.arm`` holds)."""
        return f"{self.provider}:{self.model}"


def parse_arm_name(name: str) -> tuple[str, str] | None:
    """``(provider, model)`` of an arm label, or None when it is not ``provider:model``."""
    if not isinstance(name, str):
        return None
    provider, sep, model = name.partition(":")
    return (provider, model) if sep and provider and model else None


def parse_arms(text: str) -> tuple[Arm, ...]:
    """Arms from ``provider:model[=weight],...``; ValueError naming the bad entry and the rule."""
    arms: list[Arm] = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        target, sep, weight_text = entry.rpartition("=")
        if not sep:
            target, weight_text = entry, ""
        try:
            weight = float(weight_text) if weight_text.strip() else DEFAULT_WEIGHT
        except ValueError:
            raise ValueError(f"arm {entry!r}: weight {weight_text!r} is not a number") from None
        if not math.isfinite(weight) or weight < 0:
            raise ValueError(f"arm {entry!r}: weight must be a finite number >= 0")
        names = parse_arm_name(target.strip())
        provider = semconv.normalize_provider(names[0]) if names else None
        model = semconv.normalize_model(names[1]) if names else None
        if provider is None or model is None:
            raise ValueError(f"arm {entry!r}: expected provider:model[=weight]")
        arms.append(Arm(provider, model, weight))
    return tuple(arms)


def checked_arms(arms: object) -> tuple[Arm, ...]:
    """``arms`` as a tuple when they make an experiment: a non-empty sequence of distinct :class:`Arm`, with
    finite weights >= 0 and a positive sum; else ValueError saying which rule failed."""
    arms = tuple(arms) if isinstance(arms, (list, tuple)) else ()
    if not arms or not all(isinstance(arm, Arm) for arm in arms):
        raise ValueError("arms must be a non-empty sequence of Arm")
    names = [arm.name for arm in arms]
    if len(set(names)) != len(names):
        raise ValueError(f"arms must be distinct provider:model pairs, got {names}")
    if not all(math.isfinite(arm.weight) and arm.weight >= 0 for arm in arms) or sum(
            arm.weight for arm in arms) <= 0:
        raise ValueError("arms must have finite weights >= 0 with a positive sum")
    return arms
