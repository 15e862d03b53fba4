"""A cap on the series of every GenAI instrument (the Python metrics SDK folds whole points past 2000).

Adds to every recording on a ``gen_ai.*`` (or ``LIMITED_NAMES``) histogram or counter, otel-llm's own and
any instrumentation's (whatever gets its Meter from the MeterProvider otel-llm installs): each distinct
combination of the labels the instrument keeps (its view's allowlist, otel_llm.metrics.views; every
attribute for an instrument without a view) is a series; the first ``limit`` series of an instrument name
are recorded as they are, and every point of a further combination goes to an overflow series instead:
``otel.metric.overflow=true`` (the specification's overflow attribute), the ``gen_ai.provider.name`` when it
is a canonical provider (else ``_OTHER``), and ``gen_ai.token.type`` / ``llm.token.detail`` when they hold
one of their few values, nothing else. Every such point is counted in ``otel_llm.metrics.overflow``
(attribute ``otel_llm.metric.name``). So an instrument has at most ``limit + MAX_OVERFLOW_SERIES`` series,
whatever values a client forges in any label.

The SDK's own per-view limit (``aggregation_cardinality_limit``, 2000 by default) folds a point into
``otel.metric.overflow=true`` with every attribute lost; the GenAI views set theirs above this cap
(``genai_views(limit)``), so the provider survives.

The same wrapper is otel-llm's one view of every GenAI recording, so two more things happen there, before
the cap:

- Provider label: ``semconv.metric_provider`` (data in ``semconv.HOST_RULES``): a point whose
  ``server.address`` is an Azure OpenAI host gets ``gen_ai.provider.name=azure.ai.openai`` whatever the
  instrumentation wrote; a point with only the deprecated ``gen_ai.system`` (contrib botocore:
  ``aws.bedrock``) gets it as ``gen_ai.provider.name``. Translated, not allowlisted: dashboards and alerts
  group by one label name, and the views then drop ``gen_ai.system`` as before.
- Duration and token-usage recordings by meters other than otel-llm's are noted in ``recorded_calls``
  (otel_llm.metrics.recorded), so span-derived metrics skip the calls an instrumentation counted.

Cost per recording on a capped instrument: one tuple of the allowlisted values (or a frozenset of the
attributes) and a set-membership test; a lock only the first time a series is seen; two dict reads for the
provider (a regex search when ``server.address`` is set); the note above on the two watched instruments.
Other instruments are returned unwrapped and cost nothing extra.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable, Collection, Mapping
from typing import Any

from opentelemetry.metrics import Counter, Histogram, Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.util.types import Attributes

from otel_llm import semconv
from otel_llm.metrics.recorded import WATCHED_INSTRUMENTS, RecordedCalls
from otel_llm.metrics.views import GENAI_METRIC_VIEWS

_logger = logging.getLogger(__name__)

OVERFLOW_VALUE = "_OTHER"
OVERFLOW_ATTRIBUTE = semconv.OTEL_METRIC_OVERFLOW
OVERFLOW_METRIC = "otel_llm.metrics.overflow"
OVERFLOW_METRIC_NAME_KEY = "otel_llm.metric.name"
LIMITED_NAME_PREFIX = "gen_ai."
LIMITED_NAMES = frozenset({semconv.METRIC_TOKEN_USAGE_DETAIL})  # otel-llm's own GenAI instruments
# What an overflow point keeps: the provider when canonical, and the labels whose values are a small fixed set
# when they hold one of those values (input and output tokens, or token details, never summed together).
CANONICAL_PROVIDERS: frozenset[str] = frozenset(semconv.PROVIDER_ALIASES)
_TOKEN_TYPES = frozenset({semconv.TOKEN_TYPE_INPUT, semconv.TOKEN_TYPE_OUTPUT})
KEPT_IN_OVERFLOW: Mapping[str, frozenset[str]] = {
    semconv.GEN_AI_TOKEN_TYPE: _TOKEN_TYPES,
    semconv.TOKEN_DETAIL: frozenset(semconv.TOKEN_KEYS) - _TOKEN_TYPES,
}
# Overflow series of one instrument: (each canonical provider or _OTHER) x, per kept label, (a value or none).
MAX_OVERFLOW_SERIES = (len(CANONICAL_PROVIDERS) + 1) * math.prod(
    len(values) + 1 for values in KEPT_IN_OVERFLOW.values())
SELF_METER_NAME = "otel_llm"
# Meters of otel-llm itself (their GenAI recordings are not an instrumentation's): names start with this.
OWN_METER_PREFIX = "otel_llm"


def sdk_cardinality_limit(limit: int) -> int:
    """The SDK aggregation limit a view needs so that ``limit`` series and the overflow ones all fit."""
    return limit + MAX_OVERFLOW_SERIES


def _check_limit(name: str, limit: Any) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"{name} must be a positive integer, got {limit!r}")


def overflow_attributes(attributes: Attributes) -> dict[str, Any]:
    """The overflow series a point past the cap is recorded on."""
    attributes = attributes or {}
    provider = attributes.get(semconv.GEN_AI_PROVIDER_NAME)
    folded: dict[str, Any] = {
        OVERFLOW_ATTRIBUTE: True,
        semconv.GEN_AI_PROVIDER_NAME: provider if provider in CANONICAL_PROVIDERS else OVERFLOW_VALUE,
    }
    for key, values in KEPT_IN_OVERFLOW.items():
        value = attributes.get(key)
        if value in values:
            folded[key] = value
    return folded


class SeriesLimiter:
    """Admits the first ``limit`` label combinations of one instrument; points of others go to overflow.

    ``kept_keys``: the labels the instrument's view keeps (None: every attribute is a label).
    """

    def __init__(self, metric_name: str, limit: int, overflow: Counter,
                 kept_keys: Collection[str] | None = None):
        _check_limit("limit", limit)
        self._limit = limit
        self._keys = None if kept_keys is None else tuple(sorted(kept_keys))
        self._admitted: set[Any] = set()  # only added to, under the lock
        self._lock = threading.Lock()
        self._overflow = overflow
        self._overflow_counted = {OVERFLOW_METRIC_NAME_KEY: metric_name}

    def _series(self, attributes: Attributes) -> Any:
        if not attributes:
            return ()
        if self._keys is None:
            return frozenset(attributes.items())
        return tuple(map(attributes.get, self._keys))

    def limit(self, attributes: Attributes) -> Attributes:
        """The attributes to record: the same mapping for an admitted series, else the overflow series'."""
        try:
            series = self._series(attributes)
            # A set read while another thread adds to it is safe under the GIL; admitting takes the lock.
            if series in self._admitted or self._admit(series):
                return attributes
        except TypeError:  # an unhashable value (a list): never a valid label, folded
            pass
        self._overflow.add(1, self._overflow_counted)
        return overflow_attributes(attributes)

    def _admit(self, series: Any) -> bool:
        with self._lock:
            if series in self._admitted:
                return True
            if len(self._admitted) < self._limit:
                self._admitted.add(series)
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


def _safe_limit(limiter: SeriesLimiter, attributes: Attributes) -> Attributes:
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

    def __init__(self, inner: Any, limiter: SeriesLimiter,
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
    """An SDK MeterProvider whose meters cap the series of ``gen_ai.*`` instruments.

    ``cardinality_limit``: series admitted per instrument name (shared by every meter creating an instrument
    of that name), before the overflow series. Every other argument is the SDK MeterProvider's.
    """

    def __init__(self, *args: Any, cardinality_limit: int, **kwargs: Any):
        _check_limit("cardinality_limit", cardinality_limit)
        # Set before the SDK's constructor: with OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED it calls get_meter.
        self._cardinality_limit = cardinality_limit
        self._limiters: dict[str, SeriesLimiter] = {}
        self._wrapped_meters: dict[Meter, _LimitedMeter] = {}
        self._registry_lock = threading.Lock()
        self.recorded_calls = RecordedCalls()
        super().__init__(*args, **kwargs)
        self._overflow = super().get_meter(SELF_METER_NAME).create_counter(
            OVERFLOW_METRIC, "{measurement}",
            "GenAI measurements of a series past the cap, recorded on the overflow series",
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

    def limiter_for(self, instrument_name: str) -> SeriesLimiter | None:
        """The shared limiter of a ``gen_ai.*`` or ``LIMITED_NAMES`` instrument name (case-insensitive); None
        for other names."""
        key = str(instrument_name).lower()
        if not key.startswith(LIMITED_NAME_PREFIX) and key not in LIMITED_NAMES:
            return None
        with self._registry_lock:
            limiter = self._limiters.get(key)
            if limiter is None:
                view = GENAI_METRIC_VIEWS.get(key)
                limiter = SeriesLimiter(key, self._cardinality_limit, self._overflow,
                                        None if view is None else view[1])
                self._limiters[key] = limiter
        return limiter
