"""Read back what reached Jaeger (HTTP query APIs; the go-installed UI is a placeholder) and Prometheus.

Jaeger's answers are read into the library's trace model, ``otel_llm.traces`` (the one ``otel-llm search``
reads them with), so the tests assert on the same parents, kinds and attributes a user's tools see.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import requests

from otel_llm.traces import Span, Trace, from_jaeger

REQUEST_TIMEOUT_SECONDS = 10


def jaeger_search(query_url: str, service: str, tags: dict[str, str] | None = None,
                  *, limit: int = 100, lookback: str = "1h", start_us: int | None = None,
                  end_us: int | None = None) -> dict[str, Any]:
    """Jaeger's answer (``/api/traces``) for traces of ``service`` having every tag in ``tags``, as it came:
    for a test that searches all of its text (events and process tags included).

    ``start_us``/``end_us`` (Unix microseconds) restrict the search to traces with a span of ``service``
    starting in that window.
    """
    params: dict[str, Any] = {"service": service, "limit": limit, "lookback": lookback}
    if tags:
        params["tags"] = json.dumps(tags)
    if start_us is not None:
        params["start"] = start_us
    if end_us is not None:
        params["end"] = end_us
    response = requests.get(f"{query_url}/api/traces", params=params, timeout=REQUEST_TIMEOUT_SECONDS)
    response.raise_for_status()
    return response.json()


def jaeger_find_traces(query_url: str, service: str, tags: dict[str, str] | None = None,
                       **kwargs: Any) -> list[Trace]:
    """:func:`jaeger_search`'s traces, earliest first."""
    return from_jaeger(jaeger_search(query_url, service, tags, **kwargs))


def jaeger_get_trace(query_url: str, trace_id: str) -> Trace | None:
    """One trace by its hex id, or None when Jaeger does not have it (yet)."""
    response = requests.get(f"{query_url}/api/traces/{trace_id}", timeout=REQUEST_TIMEOUT_SECONDS)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    traces = from_jaeger(response.json())
    return traces[0] if traces else None


def spans_of(traces: Iterable[Trace]) -> list[Span]:
    """Every span of ``traces``."""
    return [span for trace in traces for span in trace.spans]


def prometheus_query(prometheus_url: str, promql: str) -> list[dict]:
    """The result vector of an instant PromQL query (each item: ``metric`` labels and ``value``)."""
    response = requests.get(f"{prometheus_url}/api/v1/query", params={"query": promql},
                            timeout=REQUEST_TIMEOUT_SECONDS)
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "success":
        raise AssertionError(f"PromQL {promql!r} failed: {body}")
    return body["data"]["result"]
