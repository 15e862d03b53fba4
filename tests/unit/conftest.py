"""Unit tests leave no span current: one left current becomes the parent of every span a later test starts
without an explicit context (tests/unit/test_render_traces.py's producer once hung under a LangChain run that
an eviction test left open)."""

from __future__ import annotations

import pytest
from opentelemetry import trace


@pytest.fixture(autouse=True)
def no_span_left_current():
    yield
    span = trace.get_current_span()
    if span.get_span_context().is_valid:
        pytest.fail(f"the test left a span current: {span!r}", pytrace=False)
