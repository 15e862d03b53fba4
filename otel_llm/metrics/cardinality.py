"""A cap on distinct label values per GenAI instrument (the Python metrics SDK has none).

Adds to every recording on a ``gen_ai.*`` histogram or counter, otel-llm's own and any instrumentation's
(whatever gets its Meter from the MeterProvider otel-llm installs): once an instrument name has seen
``limit`` distinct values of a key in ``CAPPED_ATTRIBUTES`` (provider, request and response model,
experiment id and arm, LangGraph node), each further new value is recorded as ``_OTHER`` (the semantic
conventions' fallback value) and counted in the ``otel_llm.metrics.overflow`` counter (attributes
``otel_llm.metric.name``, ``otel_llm.attribute.key``). Values admitted before the cap keep their own series.

The SDK's own per-view limit (``aggregation_cardinality_limit``, 2000 attribute sets by default) folds a
whole data point into ``otel.metric.overflow=true`` and loses every attribute; this cap keeps operation,
error type and the rest, and folds only the one unbounded value.

The same wrapper is otel-llm's one view of every GenAI recording, so two more things happen there, before
the cap:

- Provider label: ``semconv.metric_provider`` (data in ``semconv.HOST_RULES``): a point whose
  ``server.address`` is an Azure OpenAI host gets ``gen_ai.provider.name=azure.ai.openai`` whatever the
  instrumentation wrote; a point with only the deprecated ``gen_ai.system`` (contrib botocore:
  ``aws.bedrock``) gets it as ``gen_ai.provider.name``. Translated, not allowlisted: dashboards and alerts
  group by one label name, and the views then drop ``gen_ai.system`` as before.
- Duration and token-usage recordings by meters other than otel-llm's are noted in ``recorded_calls``
  (otel_llm.metrics.recorded), so span-derived metrics skip the calls an instrumentation counted.

Cost per recording on a capped instrument: one dict read per capped key and a set-membership test per key
present (~0.5 µs for six keys, four present); a lock only the first time a value is seen; two dict reads for
the provider (a regex search when ``server.address`` is set); the note above on the two watched instruments.
Other instruments are returned unwrapped and cost nothing extra.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.metrics import Counter, Histogram, Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.util.types import Attributes

from otel_llm import semconv
from otel_llm.metrics.recorded import WATCHED_INSTRUMENTS, RecordedCalls

_logger = logging.getLogger(__name__)

OVERFLOW_VALUE = "_OTHER"
OVERFLOW_METRIC = "otel_llm.metrics.overflow"
OVERFLOW_METRIC_NAME_KEY = "otel_llm.metric.name"
OVERFLOW_ATTRIBUTE_KEY = "otel_llm.attribute.key"
LIMITED_NAME_PREFIX = "gen_ai."
LIMITED_NAMES = frozenset({semconv.METRIC_TOKEN_USAGE_DETAIL})  # otel-llm's own GenAI instruments
# The labels the GenAI views keep whose values come from outside the code: provider and model names (whatever
# an instrumentation reports), the experiment id and arm (baggage; a client sets them when
# OTEL_LLM_BAGGAGE_TRUST_INCOMING=true) and the LangGraph node (graphs can be built from data).
CAPPED_ATTRIBUTES: tuple[str, ...] = (
    semconv.GEN_AI_PROVIDER_NAME,
    semconv.GEN_AI_REQUEST_MODEL,
    semconv.GEN_AI_RESPONSE_MODEL,
    semconv.EXPERIMENT_ID,
    semconv.EXPERIMENT_ARM,
    semconv.LANGGRAPH_NODE,
)
SELF_METER_NAME = "otel_llm"
# Meters of otel-llm itself (their GenAI recordings are not an instrumentation's): names start with this.
OWN_METER_PREFIX = "otel_llm"


def _check_limit(name: str, limit: Any) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"{name} must be a positive integer, got {limit!r}")


class AttributeValueLimiter:
    """Admits up to ``limit`` distinct values per capped key for one instrument; folds the rest to _OTHER."""

    def __init__(self, metric_name: str, limit: int, overflow: Counter,
                 keys: Sequence[str] = CAPPED_ATTRIBUTES):
        _check_limit("limit", limit)
        self._limit = limit
        # (key, its admitted values); the sets are only added to, under the lock.
        self._seen: tuple[tuple[str, set[Any]], ...] = tuple((key, set()) for key in keys)
        self._lock = threading.Lock()
        self._overflow = overflow
        self._overflow_attributes = {
            key: {OVERFLOW_METRIC_NAME_KEY: metric_name, OVERFLOW_ATTRIBUTE_KEY: key} for key, _ in self._seen
        }

    def limit(self, attributes: Attributes) -> Attributes:
        """The attributes to record: the same mapping if nothing is over the cap, else a copy with _OTHER."""
        if not attributes:
            return attributes
        limited: dict[str, Any] | None = None
        for key, seen in self._seen:
            value = attributes.get(key)
            if value is None:
                continue
            try:
                # A set read while another thread adds to it is safe under the GIL; admitting takes the lock.
                if value in seen:
                    continue
            except TypeError:  # unhashable (a list): never a valid label value, folded
                pass
            else:
                if value == OVERFLOW_VALUE or self._admit(seen, value):
                    continue
            if limited is None:
                limited = dict(attributes)
            limited[key] = OVERFLOW_VALUE
            self._overflow.add(1, self._overflow_attributes[key])
        return attributes if limited is None else limited

    def _admit(self, seen: set[Any], value: Any) -> bool:
        with self._lock:
            if value in seen:
                return True
            if len(seen) < self._limit:
                seen.add(value)
                return True
        return False


_failure_logged = threading.Event()


def _with_provider(attributes: Attributes) -> Attributes:
    """``attributes`` with the provider ``semconv.metric_provider`` gives (the server's host beats the
    recorded provider; the deprecated ``gen_ai.system`` is translated), or the same mapping when none."""
    if not attributes:
        return attributes
    provider = semconv.metric_provider(attributes)
    if provider is None:
        return attributes
    return {**attributes, semconv.GEN_AI_PROVIDER_NAME: provider}


def _safe_limit(limiter: AttributeValueLimiter, attributes: Attributes) -> Attributes:
    """The provider-translated attributes after the limiter, or the attributes unchanged if either fails:
    telemetry never raises into the app."""
    try:
        return limiter.limit(_with_provider(attributes))
    except Exception:  # boundary into user code; log the first failure only
        if not _failure_logged.is_set():
            _failure_logged.set()
            _logger.warning("otel-llm: metric cardinality limit failed; recording unchanged", exc_info=True)
        return attributes


class _Limiting:
    """A proxy around an SDK instrument: folds over-cap label values, then calls the instrument.

    ``note``: called with the recording's context before recording (``RecordedCalls.note`` bound to the
    meter's scope), or None.
    """

    def __init__(self, inner: Any, limiter: AttributeValueLimiter,
                 note: Callable[[Any], None] | None = None):  # no base state: the inner one is real
        self._inner = inner
        self._limiter = limiter
        self._note = note

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _LimitedHistogram(_Limiting, Histogram):
    def record(self, amount: float, attributes: Attributes = None, context: Any = None) -> None:
        if self._note is not None:
            _safe_note(self._note, context)
        self._inner.record(amount, _safe_limit(self._limiter, attributes), context)


class _LimitedCounter(_Limiting, Counter):
    def add(self, amount: float, attributes: Attributes = None, context: Any = None) -> None:
        if self._note is not None:
            _safe_note(self._note, context)
        self._inner.add(amount, _safe_limit(self._limiter, attributes), context)


def _safe_note(note: Callable[[Any], None], context: Any) -> None:
    try:
        note(context)
    except Exception:  # boundary into user code; log the first failure only
        if not _failure_logged.is_set():
            _failure_logged.set()
            _logger.warning("otel-llm: noting a GenAI metric recording failed", exc_info=True)


class _LimitedMeter(Meter):
    """Delegates to an SDK Meter; wraps ``gen_ai.*`` histograms and counters with the provider's limiters."""

    def __init__(self, inner: Meter, provider: CardinalityLimitedMeterProvider):
        super().__init__(inner.name, inner.version, inner.schema_url)
        self._inner = inner
        self._provider = provider

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def create_histogram(self, name, unit="", description="", **kwargs) -> Histogram:
        histogram = self._inner.create_histogram(name, unit, description, **kwargs)
        limiter = self._provider.limiter_for(name)
        return histogram if limiter is None else _LimitedHistogram(histogram, limiter, self._note_for(name))

    def create_counter(self, name, unit="", description="") -> Counter:
        counter = self._inner.create_counter(name, unit, description)
        limiter = self._provider.limiter_for(name)
        return counter if limiter is None else _LimitedCounter(counter, limiter, self._note_for(name))

    def _note_for(self, instrument_name: str) -> Callable[[Any], None] | None:
        """What records that this meter recorded a watched GenAI instrument; None for otel-llm's own meters
        and other instruments."""
        if str(instrument_name).lower() not in WATCHED_INSTRUMENTS or self.name.startswith(OWN_METER_PREFIX):
            return None
        return functools.partial(self._provider.recorded_calls.note, self.name)

    def create_up_down_counter(self, name, unit="", description=""):
        return self._inner.create_up_down_counter(name, unit, description)

    def create_gauge(self, name, unit="", description=""):
        return self._inner.create_gauge(name, unit, description)

    def create_observable_counter(self, name, callbacks=None, unit="", description=""):
        return self._inner.create_observable_counter(name, callbacks, unit, description)

    def create_observable_gauge(self, name, callbacks=None, unit="", description=""):
        return self._inner.create_observable_gauge(name, callbacks, unit, description)

    def create_observable_up_down_counter(self, name, callbacks=None, unit="", description=""):
        return self._inner.create_observable_up_down_counter(name, callbacks, unit, description)


class CardinalityLimitedMeterProvider(MeterProvider):
    """An SDK MeterProvider whose meters cap the ``CAPPED_ATTRIBUTES`` values on ``gen_ai.*`` instruments.

    ``cardinality_limit``: distinct values admitted per capped key per instrument name (shared by every meter
    creating an instrument of that name). Every other argument is the SDK MeterProvider's.
    """

    def __init__(self, *args: Any, cardinality_limit: int, **kwargs: Any):
        _check_limit("cardinality_limit", cardinality_limit)
        # Set before the SDK's constructor: with OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED it calls get_meter.
        self._cardinality_limit = cardinality_limit
        self._limiters: dict[str, AttributeValueLimiter] = {}
        self._wrapped_meters: dict[Meter, _LimitedMeter] = {}
        self._registry_lock = threading.Lock()
        self.recorded_calls = RecordedCalls()
        super().__init__(*args, **kwargs)
        self._overflow = super().get_meter(SELF_METER_NAME).create_counter(
            OVERFLOW_METRIC, "{measurement}",
            "GenAI measurements with a label value the cardinality cap folded to _OTHER",
        )

    def get_meter(self, name: str, version: str | None = None, schema_url: str | None = None,
                  attributes: Attributes = None) -> Meter:
        meter = super().get_meter(name, version, schema_url, attributes)
        with self._registry_lock:
            # One wrapper per SDK Meter (the SDK keeps one per scope), so repeated get_meter calls agree.
            wrapped = self._wrapped_meters.get(meter)
            if wrapped is None:
                wrapped = self._wrapped_meters[meter] = _LimitedMeter(meter, self)
        return wrapped

    def limiter_for(self, instrument_name: str) -> AttributeValueLimiter | None:
        """The shared limiter of a ``gen_ai.*`` or ``LIMITED_NAMES`` instrument name (case-insensitive); None
        for other names."""
        key = str(instrument_name).lower()
        if not key.startswith(LIMITED_NAME_PREFIX) and key not in LIMITED_NAMES:
            return None
        with self._registry_lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                limiter = AttributeValueLimiter(key, self._cardinality_limit, self._overflow)
                self._limiters[key] = limiter
        return limiter
