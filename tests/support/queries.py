"""Read back what reached Jaeger (HTTP query APIs; the go-installed UI is a placeholder) and Prometheus."""

from __future__ import annotations

import json
from typing import Any

import requests

REQUEST_TIMEOUT_SECONDS = 10


def jaeger_find_traces(query_url: str, service: str, tags: dict[str, str] | None = None,
                       *, limit: int = 100, lookback: str = "1h", start_us: int | None = None,
                       end_us: int | None = None) -> list[dict]:
    """Traces of ``service`` having every tag in ``tags`` (legacy ``/api/traces``), newest first.

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
    return response.json()["data"] or []


def jaeger_get_trace(query_url: str, trace_id: str) -> dict | None:
    """One trace by its hex id, or None when Jaeger does not have it (yet)."""
    response = requests.get(f"{query_url}/api/traces/{trace_id}", timeout=REQUEST_TIMEOUT_SECONDS)
    if response.status_code == 404:
        return None
    response.raise_for_status()
    data = response.json()["data"]
    return data[0] if data else None


def span_tags(span: dict) -> dict[str, Any]:
    """A Jaeger API span's tags as a plain dict."""
    return {tag["key"]: tag["value"] for tag in span.get("tags", [])}


def jaeger_spans(traces: list[dict]) -> list[dict]:
    return [span for trace in traces for span in trace["spans"]]


def prometheus_query(prometheus_url: str, promql: str) -> list[dict]:
    """The result vector of an instant PromQL query (each item: ``metric`` labels and ``value``)."""
    response = requests.get(f"{prometheus_url}/api/v1/query", params={"query": promql},
                            timeout=REQUEST_TIMEOUT_SECONDS)
    response.raise_for_status()
    body = response.json()
    if body.get("status") != "success":
        raise AssertionError(f"PromQL {promql!r} failed: {body}")
    return body["data"]["result"]
