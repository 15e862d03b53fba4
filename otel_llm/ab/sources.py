"""Where the A/B report's numbers come from: Jaeger's and Prometheus' HTTP query APIs.

Jaeger (through ``otel-llm search``'s client and the shared trace model in ``otel_llm.traces``): one
sample per trace of the experiment, holding its arm (``llm.experiment.arm`` on the request root, else on any
span), its end-to-end duration (first span start to last span end, so the worker's part behind the queue
counts), whether any span failed, its LLM tokens (input + output), and the time to first token of each of its
LLM calls that streamed (``gen_ai.response.time_to_first_chunk`` on the LLM span). Traces are read from every
service's query answer and joined by ``otel_llm.traces`` (each span once).

Prometheus (``/api/v1/query``): time to first token per arm from the GenAI chunk histogram, asked only for
arms none of whose spans carries it (an instrumentation that records the metric but not the span attribute):
only of the experiment's series when an experiment id is given (``llm_experiment_id``), so an earlier
experiment with the same arm names does not count. The spans come first because they need no rate over a
window: a short-lived process's histogram reaches Prometheus as one sample, whose ``increase()`` is empty.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from otel_llm import semconv
from otel_llm.cli.search import URL_SCHEMES, JaegerClient
from otel_llm.traces import Trace, from_jaeger

# Prometheus names of the SDK histogram after the collector's OTLP -> Prometheus translation.
TTFT_BUCKET_METRIC = "gen_ai_client_operation_time_to_first_chunk_seconds_bucket"
ARM_LABEL = "llm_experiment_arm"
EXPERIMENT_LABEL = "llm_experiment_id"
MODEL_LABEL = "gen_ai_request_model"
REQUEST_TIMEOUT_SECONDS = 10.0


class SourceError(RuntimeError):
    """A query API could not be reached or answered with an error; the message is one printable line."""


@dataclass(frozen=True)
class TraceSample:
    """One request of the experiment as Jaeger stored it."""

    trace_id: str
    arm: str
    experiment: str | None
    duration_s: float
    error: bool
    tokens: int | None
    ttft_s: tuple[float, ...] = ()  # time to first token of each streamed LLM call


def _first_value(trace: Trace, key: str) -> str | None:
    for span in (*trace.roots, *trace.spans):
        value = span.attributes.get(key)
        if value not in (None, ""):
            return str(value)
    return None


def sample_of(trace: Trace) -> TraceSample | None:
    """The sample of one trace, or None when no span carries an experiment arm."""
    arm = _first_value(trace, semconv.EXPERIMENT_ARM)
    if arm is None:
        return None
    tokens = trace.input_tokens + trace.output_tokens
    return TraceSample(
        trace.trace_id,
        arm,
        _first_value(trace, semconv.EXPERIMENT_ID),
        trace.duration_us / 1e6,
        trace.error,
        tokens if trace.call_count else None,
        _first_chunk_times(trace),
    )


def _first_chunk_times(trace: Trace) -> tuple[float, ...]:
    """Seconds to the first chunk of each LLM call of ``trace`` that streamed (and recorded it)."""
    times = (
        call.span.attributes.get(semconv.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK) for call in trace.llm_calls
    )
    return tuple(float(seconds) for seconds in times if isinstance(seconds, (int, float)))


def samples_from_traces(traces: Iterable[Trace], experiment: str | None = None) -> list[TraceSample]:
    """Samples of the traces that carry an arm (and the given experiment id), one per trace id."""
    seen: dict[str, TraceSample] = {}
    for trace in traces:
        sample = sample_of(trace)
        if sample is None or (experiment is not None and sample.experiment != experiment):
            continue
        seen.setdefault(sample.trace_id, sample)
    return list(seen.values())


def jaeger_samples(
    client: JaegerClient, services: Iterable[str] | None, lookback_us: int, limit: int, experiment: str | None
) -> list[TraceSample]:
    """Samples from every given service (default: all Jaeger knows) over the last ``lookback_us``."""
    end_us = int(time.time() * 1e6)
    tags = {semconv.EXPERIMENT_ID: experiment} if experiment else {}
    payload = [
        trace
        for name in (list(services or ()) or client.services())
        for trace in client.find_traces(name, end_us - lookback_us, end_us, limit, tags, 0)
    ]
    return samples_from_traces(from_jaeger({"data": payload}), experiment)


def promql_string(value: str) -> str:
    """``value`` as a PromQL double-quoted string literal."""
    return json.dumps(value)


def prometheus_get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            return json.load(response)
    except urllib.error.HTTPError as exc:
        raise SourceError(f"{url} answered HTTP {exc.code}: is this Prometheus?") from None
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot query Prometheus at {url} ({exc})") from None


class PrometheusSource:
    """Instant queries against Prometheus' HTTP API."""

    def __init__(self, base_url: str, fetch: Callable[[str], Any] = prometheus_get_json) -> None:
        if not base_url.startswith(URL_SCHEMES):
            raise ValueError(f"base_url must start with http:// or https://, got {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._fetch = fetch

    def query(self, promql: str) -> list[tuple[dict[str, str], float]]:
        """(labels, value) per series of an instant vector; NaN values (no data in the window) are dropped."""
        body = self._fetch(f"{self.base_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else body
            raise SourceError(f"Prometheus refused {promql!r}: {error}")
        out = []
        for series in body.get("data", {}).get("result") or ():
            value = float(series["value"][1])
            if value == value:  # not NaN
                out.append((series.get("metric", {}), value))
        return out

    def quantile_by(
        self, bucket_metric: str, label: str, q: float, window: str, matchers: Mapping[str, str] | None = None
    ) -> dict[str, float]:
        """``histogram_quantile(q)`` of a bucket metric over ``window``, per value of ``label``, of the
        series whose labels equal ``matchers``."""
        selectors = [f'{label}!=""']
        selectors += [f"{key}={promql_string(value)}" for key, value in (matchers or {}).items()]
        promql = (
            f"histogram_quantile({q}, sum by (le, {label}) "
            f"(increase({bucket_metric}{{{', '.join(selectors)}}}[{window}])))"
        )
        return {labels[label]: value for labels, value in self.query(promql) if label in labels}

    def time_to_first_token(
        self, arms: Iterable[str], q: float, window: str, experiment: str | None = None
    ) -> dict[str, float]:
        """Per arm: the TTFT quantile by the arm label, else by the arm's model (series without the arm);
        with ``experiment``, of that experiment's series only."""
        matchers = {EXPERIMENT_LABEL: experiment} if experiment is not None else None
        by_arm = self.quantile_by(TTFT_BUCKET_METRIC, ARM_LABEL, q, window, matchers)
        missing = [arm for arm in arms if arm not in by_arm]
        if missing:
            by_model = self.quantile_by(TTFT_BUCKET_METRIC, MODEL_LABEL, q, window, matchers)
            for arm in missing:
                model = arm.partition(":")[2]
                if model in by_model:
                    by_arm[arm] = by_model[model]
        return by_arm
