"""Experiments: a request is assigned to an arm (a provider/model pair), and fallbacks are detected.

App side (the API, once per request): :func:`experiment_arm` picks the arm for a key (user or session id)
deterministically, puts ``llm.experiment.id``, ``llm.experiment.arm`` and the arm's assigned
``llm.experiment.provider`` / ``llm.experiment.model`` into baggage (so the worker and every span carry them,
see ``processors/baggage.py``) and onto the current span. Cost: one SHA-256 of the key and four baggage
entries per request.

Export side: :class:`ExperimentFallbackExporter` wraps the exporter behind the roll-up stage. A local root
span that carries an arm and an LLM roll-up that used neither the arm's provider/model pair (the arm's model
missing from the models, or its provider missing from the providers) was a fallback: the span gets
``llm.experiment.fallback=true`` and the counter ``llm.experiment.fallbacks`` goes up (labels: experiment,
arm, and the provider/model actually used). Cost: a few attribute reads per span on the export thread; one
span copy per fallback.

Configuration (read through otel_llm.settings, so ``configure(experiment_arms=..., experiment_id=...)`` works
too): ``OTEL_LLM_EXPERIMENT_ARMS`` (``provider:model=weight,...``, e.g.
``openai:gpt-4o-mini=50,aws.bedrock:anthropic.claude-3-haiku-20240307-v1:0=50``; the provider ends at the
first ``:``, the weight follows the last ``=``, default 1)
and ``OTEL_LLM_EXPERIMENT_ID`` (default ``default``). An unparsable value gives one warning and no experiment.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from opentelemetry import baggage, context, metrics, trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_llm import semconv
from otel_llm.arms import Arm, checked_arms, parse_arm_name, parse_arms
from otel_llm.processors.normalize import with_attributes
from otel_llm.processors.ratelimit import RateLimitedLogger
from otel_llm.settings import Settings, current_settings, load_settings

__all__ = ["Arm", "Experiment", "experiment_arm", "experiment_from_env", "experiment_from_settings",
           "parse_arms", "with_fallback_detection"]
_logger = logging.getLogger(__name__)
_rate_limited = RateLimitedLogger(_logger)

ENV_EXPERIMENT_ID = "OTEL_LLM_EXPERIMENT_ID"  # parsed by otel_llm.settings (experiment_id)
ENV_EXPERIMENT_ARMS = "OTEL_LLM_EXPERIMENT_ARMS"  # (experiment_arms)
DEFAULT_EXPERIMENT_ID = "default"
FALLBACK_COUNTER = "llm.experiment.fallbacks"
_HASH_SPACE = float(2**64)


class Experiment:
    """An experiment id and its arms; :meth:`assign` maps a key to an arm, the same in every process."""

    def __init__(self, experiment_id: str, arms: Sequence[Arm]) -> None:
        if not isinstance(experiment_id, str) or not experiment_id.strip():
            raise ValueError("experiment_id must be a non-empty string")
        arms = checked_arms(arms)
        total = sum(arm.weight for arm in arms)
        self.experiment_id = experiment_id.strip()
        self.arms = arms
        # Cumulative upper bounds in [0, 1]; the last is exactly 1 so rounding never falls off the end.
        bounds, running = [], 0.0
        for arm in arms:
            running += arm.weight
            bounds.append(running / total)
        bounds[-1] = 1.0
        self._bounds = tuple(bounds)

    def assign(self, key: object) -> Arm:
        """The arm for ``key`` (user or session id): SHA-256 of experiment id and key, weighted.

        Stable across processes and restarts (no ``hash()`` salt). A None or empty key is assigned at random.
        """
        text = "" if key is None else str(key)
        if not text:
            text = uuid.uuid4().hex
        digest = hashlib.sha256(f"{self.experiment_id}\x00{text}".encode("utf-8", "replace")).digest()
        point = int.from_bytes(digest[:8], "big") / _HASH_SPACE
        for arm, bound in zip(self.arms, self._bounds, strict=True):
            if point < bound:
                return arm
        return self.arms[-1]

    def attributes_for(self, arm: Arm) -> dict[str, str]:
        """The experiment's entries for ``arm``: id, arm name, assigned provider and model."""
        return {
            semconv.EXPERIMENT_ID: self.experiment_id,
            semconv.EXPERIMENT_ARM: arm.name,
            semconv.EXPERIMENT_PROVIDER: arm.provider,
            semconv.EXPERIMENT_MODEL: arm.model,
        }

    def context_for(self, arm: Arm, parent: context.Context | None = None) -> context.Context:
        """A context whose baggage carries :meth:`attributes_for` ``arm``."""
        ctx = parent
        for key, value in self.attributes_for(arm).items():
            ctx = baggage.set_baggage(key, value, ctx)
        return ctx  # type: ignore[return-value]


def experiment_from_settings(settings: Settings) -> Experiment | None:
    """The experiment ``settings`` describe (``experiment_arms``, ``experiment_id``), or None without arms."""
    if not settings.experiment_arms:
        return None
    return Experiment(settings.experiment_id or DEFAULT_EXPERIMENT_ID, settings.experiment_arms)


def experiment_from_env(environ: Mapping[str, str] | None = None) -> Experiment | None:
    """The experiment the OTEL_LLM_EXPERIMENT_* variables describe, or None (unset, or one warning for a bad
    value: otel_llm.settings parses them). Without ``environ``, configure()'s settings when it ran (its
    ``experiment_arms=`` / ``experiment_id=`` overrides included), else the process environment's."""
    return experiment_from_settings(current_settings() if environ is None else load_settings(environ))


@contextmanager
def experiment_arm(experiment: Experiment | None, key: object) -> Iterator[Arm | None]:
    """Assigns ``key`` to an arm for the duration of the block: baggage, plus attributes on the current span.

    Yields the arm (the app calls its provider/model), or None when ``experiment`` is None. Assignment
    problems never reach the app: they are logged and the block runs without an arm.
    """
    arm = token = None
    if experiment is not None:
        try:
            arm = experiment.assign(key)
            token = context.attach(experiment.context_for(arm))
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attributes(experiment.attributes_for(arm))
        except Exception:
            _rate_limited.exception("otel-llm experiment assignment failed")
    try:
        yield arm
    finally:
        if token is not None:
            context.detach(token)


def _split(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        return tuple(part for part in value.split(",") if part)
    if isinstance(value, (list, tuple)):
        return tuple(str(part) for part in value)
    return ()


def assigned_provider_model(attributes: Mapping[str, object]) -> tuple[str, str] | None:
    """The assigned ``(provider, model)`` of a span: ``llm.experiment.provider``/``model``, else the arm's."""
    provider = semconv.normalize_provider(attributes.get(semconv.EXPERIMENT_PROVIDER))
    model = semconv.normalize_model(attributes.get(semconv.EXPERIMENT_MODEL))
    if provider is not None and model is not None:
        return provider, model
    arm = parse_arm_name(attributes.get(semconv.EXPERIMENT_ARM))  # type: ignore[arg-type]
    if arm is None:
        return None
    provider = semconv.normalize_provider(arm[0])
    return (provider, arm[1]) if provider is not None else None


def fallback_of(span: ReadableSpan) -> dict[str, str] | None:
    """Counter labels when ``span`` is a local root whose LLM calls missed its arm's provider or model;
    else None."""
    if span.parent is not None and not span.parent.is_remote:
        return None
    attributes = span.attributes or {}
    models = _split(attributes.get(semconv.ROLLUP_MODELS)) or _split(attributes.get(semconv.ROLLUP_MODEL))
    if not models:  # no LLM call beneath: nothing to compare (most local roots; checked before normalising)
        return None
    assigned = assigned_provider_model(attributes)
    if assigned is None:
        return None
    providers = _split(attributes.get(semconv.ROLLUP_PROVIDERS)) or _split(
        attributes.get(semconv.ROLLUP_PROVIDER)
    )
    provider, model = assigned
    # Providers are compared only when the roll-up names them (a roll-up of models alone cannot tell).
    if model in models and (not providers or provider in providers):
        return None
    return {
        semconv.EXPERIMENT_ID: str(attributes.get(semconv.EXPERIMENT_ID, DEFAULT_EXPERIMENT_ID)),
        semconv.EXPERIMENT_ARM: str(attributes.get(semconv.EXPERIMENT_ARM)),
        semconv.GEN_AI_PROVIDER_NAME: ",".join(providers) or semconv.UNKNOWN,
        semconv.GEN_AI_REQUEST_MODEL: ",".join(models),
    }


class ExperimentFallbackExporter(SpanExporter):
    """Marks fallback local roots (``llm.experiment.fallback=true``), counts them, forwards to ``inner``.

    Place it behind the roll-up stage: ``RollupSpanExporter(ExperimentFallbackExporter(otlp_exporter))``.
    """

    def __init__(self, inner: SpanExporter, meter_provider: metrics.MeterProvider | None = None) -> None:
        if not callable(getattr(inner, "export", None)):
            raise ValueError("inner must be a SpanExporter (an object with export())")
        self._inner = inner
        self._fallbacks = metrics.get_meter(__name__, meter_provider=meter_provider).create_counter(
            FALLBACK_COUNTER,
            "{request}",
            "Requests whose LLM calls did not use their experiment arm's provider and model",
        )

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            spans = [self._mark(span) for span in spans]
        except Exception:
            _rate_limited.exception("otel-llm fallback detection failed; spans forwarded unmarked")
        return self._inner.export(spans)

    def _mark(self, span: ReadableSpan) -> ReadableSpan:
        labels = fallback_of(span)
        if labels is None:
            return span
        self._fallbacks.add(1, labels)
        return with_attributes(span, {semconv.EXPERIMENT_FALLBACK: True})

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self._inner.shutdown()


def with_fallback_detection(
    exporter: SpanExporter, settings: Settings, meter_provider: metrics.MeterProvider | None = None,
) -> SpanExporter:
    """``exporter`` behind an :class:`ExperimentFallbackExporter` (counting on ``meter_provider``) when this
    process takes part in an experiment (``settings.experiment_id`` or ``experiment_arms`` set, from
    OTEL_LLM_EXPERIMENT_ID / _ARMS or configure()), else ``exporter`` itself.

    ``configure()`` applies it once, behind the roll-up stage and before the fan-out to the exporters, so
    every exporter sees the mark and a fallback is counted once per request.
    """
    if settings.experiment_id is None and not settings.experiment_arms:
        return exporter
    return ExperimentFallbackExporter(exporter, meter_provider)
