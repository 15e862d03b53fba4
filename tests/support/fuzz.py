"""Hypothesis settings for the fuzz (property-based) tests: bounded in ``make test``, longer for a release.

``OTEL_LLM_FUZZ_EXAMPLES`` sets the examples per property (default ``DEFAULT_EXAMPLES``, derandomized so
``make test`` is reproducible); set it (e.g. 10000, docs/testing.md) for the longer, randomized
release run.
No deadline: a slow example on a shared machine is not a failure.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

FUZZ_EXAMPLES_VARIABLE = "OTEL_LLM_FUZZ_EXAMPLES"
DEFAULT_EXAMPLES = 60


def fuzz_settings(**overrides) -> settings:
    """The settings decorator for a property test: the example count of the variable, no deadline."""
    raw = os.environ.get(FUZZ_EXAMPLES_VARIABLE, "").strip()
    examples = int(raw) if raw.isdigit() and int(raw) > 0 else DEFAULT_EXAMPLES
    return settings(max_examples=examples, deadline=None, derandomize=not raw, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
                    **overrides)
