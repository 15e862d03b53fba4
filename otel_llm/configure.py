"""Auto-configuration: the ``opentelemetry-instrument`` distro and configurator, and ``otel_llm.configure()``.

With otel-llm installed, ``opentelemetry-instrument python app.py`` loads, through the entry points in
pyproject.toml:

- ``OtelLLMDistro``: only ``os.environ.setdefault`` of ``DISTRO_DEFAULTS`` (OTLP exporters, our edge baggage
  propagator, a span queue that survives bursts, a short batch delay for the roll-up window, ...). The
  user's environment always wins.
- ``OtelLLMConfigurator``: builds the providers the way the SDK's configurator does, reusing its helpers, so
  every standard variable keeps working (OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_*_EXPORTER incl.
  ``console`` and ``none``, OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER(_ARG), OTEL_BSP_*,
  OTEL_METRIC_EXPORT_INTERVAL, OTEL_PYTHON_ID_GENERATOR, OTEL_LOGS_EXPORTER), and adds otel-llm's pieces:
  ``BaggageAttributesProcessor`` first; then one export pipeline, each stage built once however many
  exporters are configured (``_export_pipeline`` shows the order): one batch processor; with
  OTEL_LLM_ROLLUP=process the roll-up stage (``RollupSpanExporter``, feeding span-derived and cost metrics),
  with ``collector`` normalisation (``NormalizeSpanExporter``), with ``off`` nothing; experiment fallback
  detection; redaction (``RedactingSpanExporter``, unless OTEL_LLM_REDACT=false); the fan-out
  (``FanOutSpanExporter``) to every exporter, OTEL_LLM_METRIC_LOG's METRIC lines included, each behind its own
  delivery stage (``DeliveryExporter``: bounded export calls, a retry queue, lost spans counted). A
  MeterProvider with the GenAI views and the label cardinality cap; dropped-span and roll-up counters as
  ``otel_llm.*`` metrics.

``configure(**overrides)`` does the same for apps that do not use the launcher: idempotent (a second call
returns the first call's ``Telemetry``), keyword arguments override OTEL_LLM_* variables (by the variables'
rules: a bad value or unknown name warns and is ignored). With
OTEL_LLM_ENABLED=false everything is plain SDK behaviour. A broken optional piece warns once and the SDK
default takes its place; a malformed standard OTEL_* variable warns once and is dropped
(``otel_llm.environment``); nothing here raises into the application.

Cost: setup only; the per-span costs are those of the pieces (see their modules).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import threading
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from importlib.metadata import entry_points
from typing import Any, TypeVar

from opentelemetry import metrics, propagate, trace
from opentelemetry.environment_variables import OTEL_METRICS_EXPORTER, OTEL_PROPAGATORS, OTEL_TRACES_EXPORTER
from opentelemetry.instrumentation.distro import BaseDistro
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.sdk import _configuration as sdk_configuration
from opentelemetry.sdk.environment_variables import (
    _OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED,
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE,
    OTEL_BSP_MAX_QUEUE_SIZE,
    OTEL_BSP_SCHEDULE_DELAY,
    OTEL_CONFIG_FILE,
    OTEL_METRIC_EXPORT_INTERVAL,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_llm.environment import check_standard_variables
from otel_llm.experiment import with_fallback_detection
from otel_llm.exporters.delivery import DeliveryExporter
from otel_llm.exporters.fanout import FanOutSpanExporter
from otel_llm.exporters.metric_log import exporter_from_settings
from otel_llm.metrics.cardinality import CardinalityLimitedMeterProvider, sdk_cardinality_limit
from otel_llm.metrics.cost import CostMetrics
from otel_llm.metrics.from_spans import SpanDerivedMetrics
from otel_llm.metrics.health import DropCounter, count_dropped_spans, register_pipeline_metrics
from otel_llm.metrics.views import genai_views
from otel_llm.processors.baggage import BaggageAttributesProcessor, EdgeBaggagePropagator
from otel_llm.processors.cost import Pricer, pricer_from_file
from otel_llm.processors.normalize import NormalizeSpanExporter
from otel_llm.processors.redact import RedactingSpanExporter, Redactor
from otel_llm.processors.rollup import RollupBatchSpanProcessor, RollupSpanExporter
from otel_llm.settings import ROLLUP_COLLECTOR, Settings, load_settings, use_settings

_logger = logging.getLogger(__name__)
T = TypeVar("T")

OTEL_SEMCONV_STABILITY_OPT_IN = "OTEL_SEMCONV_STABILITY_OPT_IN"
EDGE_BAGGAGE_PROPAGATOR = "otel_llm_baggage"  # its opentelemetry_propagator entry point name
_TELEMETRY_AUTO_VERSION = "telemetry.auto.version"
SDK_SCHEDULE_DELAY_MS = 5000  # the BatchSpanProcessor's delay without (or with an unparsable) variable
SDK_MAX_EXPORT_BATCH_SIZE = 512  # and its export batch size

# What the distro sets when the user has not (docs/configuration.md explains each choice).
DISTRO_DEFAULTS: Mapping[str, str] = {
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_METRICS_EXPORTER: "otlp",
    # W3C trace context in and out; baggage out, and in only when OTEL_LLM_BAGGAGE_TRUST_INCOMING=true.
    OTEL_PROPAGATORS: f"tracecontext,{EDGE_BAGGAGE_PROPAGATOR}",
    # The SDK's 2048 dropped spans of a tight loop here; 32768 dropped none (bench/bench_span_queue.py).
    OTEL_BSP_MAX_QUEUE_SIZE: "32768",
    # 5000 ms would let late LLM spans reach the roll-up stage after its 2 s window closed; 500 ms leaves the
    # window 1.5 s for spans made after the request ended (langsmith: ~0.25 s).
    OTEL_BSP_SCHEDULE_DELAY: "500",
    # Dashboards and alerts see LLM latency within a Prometheus scrape or two, not after a minute.
    OTEL_METRIC_EXPORT_INTERVAL: "15000",
    # GenAI instrumentations emit the current conventions (gen_ai.provider.name, ...).
    OTEL_SEMCONV_STABILITY_OPT_IN: "gen_ai_latest_experimental",
}


def apply_distro_defaults(environ: MutableMapping[str, str] = os.environ) -> None:
    """``setdefault`` every ``DISTRO_DEFAULTS`` entry: a variable the user set, even to "", is kept."""
    for name, value in DISTRO_DEFAULTS.items():
        environ.setdefault(name, value)


class OtelLLMDistro(BaseDistro):
    """The ``opentelemetry_distro`` entry point: environment defaults for LLM apps, nothing else."""

    def _configure(self, **kwargs: Any) -> None:
        if load_settings().enabled:
            apply_distro_defaults(os.environ)
        check_standard_variables()


@dataclasses.dataclass(frozen=True)
class Telemetry:
    """What configure() installed: the providers, the settings used, and the pipeline's own counters."""

    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    settings: Settings
    rollup_stages: tuple[RollupSpanExporter, ...] = ()
    drop_counters: tuple[DropCounter, ...] = ()
    _shut_down: threading.Event = dataclasses.field(default_factory=threading.Event, repr=False)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flush spans (through the roll-up stages), then metrics (including the span-derived ones)."""
        try:
            traced = self.tracer_provider.force_flush(timeout_millis)
            return bool(self.meter_provider.force_flush(timeout_millis)) and traced
        except Exception:
            _logger.warning("otel-llm: force_flush failed", exc_info=True)
            return False

    def shutdown(self) -> None:
        """Shut tracing down first (its last spans record metrics), then metrics. Idempotent."""
        if self._shut_down.is_set():
            return
        self._shut_down.set()
        for provider in (self.tracer_provider, self.meter_provider):
            try:
                provider.shutdown()
            except Exception:
                _logger.warning("otel-llm: shutting down %s failed", type(provider).__name__, exc_info=True)


def _optional(piece: str, build: Callable[[], T], fallback: Callable[[], T]) -> T:
    """``build()``, or, if it raises, one warning naming the piece and ``fallback()`` (the SDK default)."""
    try:
        return build()
    except Exception as error:
        _logger.warning("otel-llm: %s could not be set up (%s); using the SDK default", piece, error,
                        exc_info=True)
        return fallback()


def build_telemetry(
    settings: Settings,
    *,
    resource: Resource,
    span_exporters: Sequence[SpanExporter],
    metric_readers: Sequence[MetricReader],
    sampler: Any = None,
    id_generator: Any = None,
    span_processors: Sequence[SpanProcessor] = (),
    tracer_configurator: Any = None,
    meter_configurator: Any = None,
) -> Telemetry:
    """The providers and pipeline for ``settings``, without touching any global. Plain SDK when disabled."""

    def plain_meter_provider() -> MeterProvider:
        return MeterProvider(metric_readers, resource, _meter_configurator=meter_configurator)

    tracer_provider = TracerProvider(sampler=sampler, resource=resource, id_generator=id_generator,
                                     _tracer_configurator=tracer_configurator)
    if not settings.enabled:
        for processor in (*span_processors, *(BatchSpanProcessor(exporter) for exporter in span_exporters)):
            tracer_provider.add_span_processor(processor)
        return Telemetry(tracer_provider, plain_meter_provider(), settings)

    meter_provider = _optional(
        "the GenAI metric views and cardinality cap",
        lambda: CardinalityLimitedMeterProvider(
            metric_readers, resource,
            views=genai_views(sdk_cardinality_limit(settings.metrics_cardinality_limit)),
            cardinality_limit=settings.metrics_cardinality_limit, _meter_configurator=meter_configurator,
        ),
        plain_meter_provider,
    )
    span_metrics = None
    if settings.span_metrics and settings.rollup_enabled:  # recorded by the roll-up stage only
        span_metrics = _optional(
            "span-derived metrics",
            lambda: SpanDerivedMetrics(meter_provider, settings.span_metrics_skip_scopes,
                                       getattr(meter_provider, "recorded_calls", None)),
            lambda: None,
        )
    pricer = cost_metrics = None
    if settings.cost:
        pricer = _optional("LLM call pricing", lambda: pricer_from_file(settings.cost_prices_file),
                           lambda: None)
        cost_metrics = _optional("cost metrics", lambda: CostMetrics(meter_provider), lambda: None)
    baggage = _optional(
        "the baggage-to-attributes processor",
        lambda: BaggageAttributesProcessor(settings.baggage_keys, settings.baggage_max_value_length),
        lambda: None,
    )
    for processor in (baggage, *span_processors):
        if processor is not None:
            tracer_provider.add_span_processor(processor)

    if settings.rollup_enabled and span_exporters:
        warn_about_rollup_timing(settings)
    stages: list[RollupSpanExporter] = []
    drop_counters: list[DropCounter] = []
    if span_exporters:
        processor, stage = _export_pipeline(settings, span_exporters, drop_counters, meter_provider, pricer,
                                            _each((span_metrics, cost_metrics)))
        stages.extend(() if stage is None else (stage,))
        counter = DropCounter()
        drop_counters.append(counter)
        _optional("dropped-span counting", lambda: count_dropped_spans(processor, counter), lambda: None)
        tracer_provider.add_span_processor(processor)

    _optional(
        "the otel_llm.* pipeline metrics",
        lambda: register_pipeline_metrics(meter_provider, drop_counters, stages),
        lambda: None,
    )
    return Telemetry(tracer_provider, meter_provider, settings, tuple(stages), tuple(drop_counters))


def warn_about_rollup_timing(settings: Settings, environ: Mapping[str, str] = os.environ) -> None:
    """One warning for each timing that makes the roll-up miss late LLM spans, naming both variables.

    Spans reach the roll-up stage when the batch processor exports (every OTEL_BSP_SCHEDULE_DELAY), and a
    trace waits OTEL_LLM_ROLLUP_WINDOW_MS after its root arrived, but at most OTEL_LLM_ROLLUP_MAX_AGE_MS after
    its first span arrived. A window of 0 (roll up at once) is a choice not to wait, so it is not questioned.
    """
    window = settings.rollup_window_ms
    delay = _batch_delay_ms(environ)
    if window and delay >= window:
        _logger.warning(
            "otel-llm: OTEL_BSP_SCHEDULE_DELAY (%d ms) is not shorter than OTEL_LLM_ROLLUP_WINDOW_MS "
            "(%d ms): LLM spans made after their request ended (langsmith: ~0.25 s later) reach the roll-up "
            "stage after the window closed and are not rolled up onto the request. Keep the delay well "
            "under the window (otel-llm's defaults: 500 and 2000).", delay, window)
    max_age = settings.rollup_max_age_ms
    if window > max_age:
        _logger.warning(
            "otel-llm: OTEL_LLM_ROLLUP_WINDOW_MS (%d ms) is larger than OTEL_LLM_ROLLUP_MAX_AGE_MS (%d ms): "
            "traces are exported at the max age, before their window closes, so the window is cut to %d ms. "
            "Keep the max age above the window.", window, max_age, max_age)


def _batch_delay_ms(environ: Mapping[str, str]) -> int:
    """OTEL_BSP_SCHEDULE_DELAY as the SDK's BatchSpanProcessor reads it (the SDK reports a bad value)."""
    return _bsp_int(environ, OTEL_BSP_SCHEDULE_DELAY, SDK_SCHEDULE_DELAY_MS)


def _bsp_int(environ: Mapping[str, str], name: str, default: int) -> int:
    """An OTEL_BSP_* integer as the SDK's BatchSpanProcessor reads it (the SDK reports a bad value)."""
    try:
        return int(environ.get(name, default))
    except ValueError:
        return default


def _export_pipeline(
    settings: Settings, exporters: Sequence[SpanExporter], drop_counters: list[DropCounter],
    meter_provider: MeterProvider, pricer: Pricer | None, hook: Callable | None,
) -> tuple[BatchSpanProcessor, RollupSpanExporter | None]:
    """The one export pipeline, every stage built once whatever the number of exporters, in this order:

    batch processor -> roll-up (buffer whole traces, price, roll up, span-derived and cost metrics) or, with
    OTEL_LLM_ROLLUP=collector, normalisation -> experiment fallback detection (behind a roll-up only) ->
    redaction -> fan-out -> for each exporter: delivery (its own limits, retry queue, drop count) -> exporter.

    Appends the drop counters it makes to ``drop_counters``.
    """
    targets: list[SpanExporter] = []
    for index, exporter in enumerate(exporters):
        own_drops = getattr(exporter, "drops", None)  # the METRIC line exporter counts the lines it lost
        if isinstance(own_drops, DropCounter):
            drop_counters.append(own_drops)
        counter = DropCounter(component=component_name(exporter, index))
        drop_counters.append(counter)
        targets.append(_optional("bounded, retried delivery (OTEL_LLM_EXPORT_*)",
                                 lambda e=exporter, c=counter: _delivery(settings, e, c),
                                 lambda e=exporter: e))
    chain: SpanExporter = targets[0] if len(targets) == 1 else FanOutSpanExporter(targets)
    if settings.redact:
        redactor = _optional("redaction", lambda: Redactor(settings.redact_keys, settings.redact_patterns),
                             lambda: None)
        if redactor is not None:
            chain = RedactingSpanExporter(chain, redactor)
            drop_counters.append(chain.drops)
    if settings.rollup_enabled:  # fallbacks are read from the roll-up attributes
        chain = _optional("experiment fallback detection",
                          lambda e=chain: with_fallback_detection(e, settings, meter_provider),
                          lambda e=chain: e)
    return _export_processor(settings, chain, hook, meter_provider, pricer)


def component_name(exporter: SpanExporter, index: int) -> str:
    """``otel.component.name`` of the ``index``-th exporter: its type in snake case, then the index
    (``OTLPSpanExporter`` -> ``otlp_span_exporter/0``), as the SDK self-observability conventions
    name them."""
    kind = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", type(exporter).__name__).lower()
    return f"{kind}/{index}"


def _delivery(settings: Settings, exporter: SpanExporter, counter: DropCounter) -> DeliveryExporter:
    """``exporter`` behind the delivery stage: the batch processor's batch size, otel-llm's byte bound and
    retry queue; what it drops is counted in ``counter``."""
    batch_size = _bsp_int(os.environ, OTEL_BSP_MAX_EXPORT_BATCH_SIZE, SDK_MAX_EXPORT_BATCH_SIZE)
    return DeliveryExporter(
        exporter,
        max_batch_spans=batch_size if batch_size > 0 else SDK_MAX_EXPORT_BATCH_SIZE,
        max_batch_bytes=settings.export_max_batch_bytes,
        retry_max_spans=settings.export_retry_max_spans,
        retry_max_age_s=settings.export_retry_max_age_ms / 1000,
        on_drop=counter.add,
    )


def _each(recorders: Sequence[Any]) -> Callable | None:
    """One ``on_llm_span`` hook calling ``record`` of each recorder that is not None (each one's failure
    logged and contained, so one cannot stop the other); None when there is none."""
    records = tuple(recorder.record for recorder in recorders if recorder is not None)
    if len(records) <= 1:
        return records[0] if records else None

    def record_each(*args: Any) -> None:
        for record in records:
            try:
                record(*args)
            except Exception:
                _logger.warning("otel-llm: recording metrics of an LLM call failed", exc_info=True)

    return record_each


def _export_processor(
    settings: Settings, exporter: SpanExporter, hook: Callable | None, meter_provider: MeterProvider,
    pricer: Pricer | None = None,
) -> tuple[BatchSpanProcessor, RollupSpanExporter | None]:
    """The batch processor for one exporter and its roll-up stage (None when off or broken).

    The processors report the SDK's own metrics (OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED) to our provider.
    """

    def plain() -> tuple[BatchSpanProcessor, None]:
        return BatchSpanProcessor(exporter, meter_provider=meter_provider), None

    if settings.rollup == ROLLUP_COLLECTOR:
        return _optional(
            "LLM span normalisation",
            lambda: (BatchSpanProcessor(NormalizeSpanExporter(exporter, pricer),
                                        meter_provider=meter_provider), None),
            plain,
        )
    if not settings.rollup_enabled:
        return plain()

    def staged() -> tuple[BatchSpanProcessor, RollupSpanExporter]:
        stage = RollupSpanExporter(
            exporter,
            window_s=settings.rollup_window_ms / 1000,
            max_traces=settings.rollup_max_traces,
            max_spans_per_trace=settings.rollup_max_spans_per_trace,
            max_buffered_spans=settings.rollup_max_buffered_spans,
            max_age_s=settings.rollup_max_age_ms / 1000,
            on_llm_span=hook,
            pricer=pricer,
        )
        return RollupBatchSpanProcessor(stage, meter_provider=meter_provider), stage

    return _optional("the roll-up stage", staged, plain)


# --- from the environment, the SDK's way ----------------------------------------------------------------

# Keyword arguments of the SDK's _initialize_components that the configurator honours.
_SDK_KWARGS = frozenset({
    "auto_instrumentation_version", "resource_attributes", "trace_exporter_names", "metric_exporter_names",
    "log_exporter_names", "sampler", "id_generator", "exporter_args_map", "span_processors",
    "setup_logging_handler", "tracer_configurator", "meter_configurator", "logger_configurator",
})


def build_from_environment(
    settings: Settings,
    *,
    resource: Resource | None = None,
    span_exporters: Sequence[SpanExporter] | None = None,
    metric_readers: Sequence[MetricReader] | None = None,
    **sdk_kwargs: Any,
) -> Telemetry:
    """``build_telemetry`` with what the standard OTEL_* variables select, read by the SDK's own helpers.

    ``sdk_kwargs`` are those of the SDK's ``_initialize_components`` (``_SDK_KWARGS``). Explicit
    ``span_exporters`` / ``metric_readers`` replace those OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER
    name. Touches no global.
    """
    sdk = sdk_configuration
    ignored = sorted(set(sdk_kwargs) - _SDK_KWARGS)
    if ignored:
        _logger.warning("otel-llm: configurator arguments %s are not supported and were ignored", ignored)
    span_classes, metric_classes, _ = sdk._import_exporters(
        list(sdk_kwargs.get("trace_exporter_names") or []) + sdk._get_exporter_names("traces"),
        list(sdk_kwargs.get("metric_exporter_names") or []) + sdk._get_exporter_names("metrics"),
        [],
    )
    args_map = sdk_kwargs.get("exporter_args_map") or {}
    if span_exporters is None:
        span_exporters = [cls(**args_map.get(cls, {})) for cls in span_classes.values()]
    if settings.enabled:
        # METRIC| lines need the roll-up attributes: one more exporter behind the fan-out.
        metric_lines = _optional("METRIC log lines (OTEL_LLM_METRIC_LOG)",
                                 lambda: exporter_from_settings(settings), lambda: None)
        span_exporters = [*span_exporters, *([metric_lines] if metric_lines is not None else [])]
    if metric_readers is None:
        metric_readers = [_metric_reader(cls, args_map.get(cls, {})) for cls in metric_classes.values()]
    return build_telemetry(
        settings,
        resource=resource or _resource(sdk_kwargs),
        span_exporters=span_exporters,
        metric_readers=metric_readers,
        sampler=sdk_kwargs.get("sampler") or sdk._import_sampler(sdk._get_sampler()),
        id_generator=sdk_kwargs.get("id_generator") or sdk._import_id_generator(sdk._get_id_generator()),
        span_processors=tuple(sdk_kwargs.get("span_processors") or ()),
        tracer_configurator=sdk_kwargs.get("tracer_configurator")
        or sdk._import_tracer_configurator(sdk._get_tracer_configurator()),
        meter_configurator=sdk_kwargs.get("meter_configurator")
        or sdk._import_meter_configurator(sdk._get_meter_configurator()),
    )


def _resource(sdk_kwargs: Mapping[str, Any]) -> Resource:
    attributes = dict(sdk_kwargs.get("resource_attributes") or {})
    if sdk_kwargs.get("auto_instrumentation_version"):
        attributes[_TELEMETRY_AUTO_VERSION] = sdk_kwargs["auto_instrumentation_version"]
    # Reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, and runs the OTEL_EXPERIMENTAL_RESOURCE_DETECTORS.
    return Resource.create(attributes)


def _install(settings: Settings, **build_kwargs: Any) -> Telemetry:
    """What the SDK's ``_initialize_components`` does, with otel-llm's pipeline: build, then set globals."""
    sdk = sdk_configuration
    resource = _resource(build_kwargs)
    _run_opamp(sdk, "pre_sdk_init_function", resource)
    telemetry = build_from_environment(settings, resource=resource, **build_kwargs)
    trace.set_tracer_provider(telemetry.tracer_provider)
    metrics.set_meter_provider(telemetry.meter_provider)
    if settings.enabled:
        # opentelemetry.propagate read OTEL_PROPAGATORS when first imported, maybe before the distro ran.
        _optional("OTEL_PROPAGATORS", lambda: propagate.set_global_textmap(_propagators(settings)),
                  lambda: None)
    _, _, log_classes = sdk._import_exporters(
        [], [], list(build_kwargs.get("log_exporter_names") or []) + sdk._get_exporter_names("logs"))
    setup_logging_handler = build_kwargs.get("setup_logging_handler")
    if setup_logging_handler is None:
        setup_logging_handler = os.getenv(
            _OTEL_PYTHON_LOGGING_AUTO_INSTRUMENTATION_ENABLED, "false").strip().lower() == "true"
    sdk._init_logging(
        log_classes, resource, setup_logging_handler, exporter_args_map=build_kwargs.get("exporter_args_map"),
        logger_configurator=build_kwargs.get("logger_configurator")
        or sdk._import_logger_configurator(sdk._get_logger_configurator()),
    )
    _run_opamp(sdk, "post_sdk_init_function", resource)
    return telemetry


def _propagators(settings: Settings) -> CompositePropagator:
    """OTEL_PROPAGATORS read as the API does, with our edge propagator built from ``settings``, so that
    configure()'s overrides apply to it too. (An unknown name already failed the API's own import.)"""
    names = [name.strip() for name in os.environ.get(OTEL_PROPAGATORS, "").split(",") if name.strip()]
    if not names or any(name.lower() == "none" for name in names):
        return CompositePropagator([])
    propagators: list[TextMapPropagator] = []
    for name in names:
        if name == EDGE_BAGGAGE_PROPAGATOR:
            propagators.append(EdgeBaggagePropagator(
                settings.baggage_keys, settings.baggage_max_value_length, settings.baggage_trust_incoming))
        else:
            entry_point, = entry_points(group="opentelemetry_propagator", name=name)
            propagators.append(entry_point.load()())
    return CompositePropagator(propagators)


def _metric_reader(cls: type, args: Mapping[str, Any]) -> MetricReader:
    # A pull exporter (e.g. Prometheus) is a MetricReader itself; push exporters get the periodic reader,
    # which reads OTEL_METRIC_EXPORT_INTERVAL and OTEL_METRIC_EXPORT_TIMEOUT.
    return cls(**args) if issubclass(cls, MetricReader) else PeriodicExportingMetricReader(cls(**args))


def _run_opamp(sdk: Any, name: str, resource: Resource) -> None:
    init = sdk._import_opamp(name)
    if init is not None:
        init(resource)


class OtelLLMConfigurator(sdk_configuration._OTelSDKConfigurator):
    """The ``opentelemetry_configurator`` entry point: the SDK's configuration plus otel-llm's pieces.

    Plain SDK behaviour when OTEL_LLM_ENABLED=false or when OTEL_CONFIG_FILE (declarative configuration) is
    set. If otel-llm's setup fails as a whole, it warns and the SDK's configuration runs instead.
    """

    def _configure(self, **kwargs: Any) -> None:
        check_standard_variables()
        settings = load_settings()
        if not settings.enabled or os.environ.get(OTEL_CONFIG_FILE):
            super()._configure(**kwargs)
            return
        _configure_once(settings, fallback_to_sdk=functools.partial(super()._configure, **kwargs), **kwargs)


# --- the programmatic entry point -----------------------------------------------------------------------

_state_lock = threading.Lock()
_installed: Telemetry | None = None


def _configure_once(settings: Settings, *, fallback_to_sdk: Callable[[], None] | None = None,
                    **install_kwargs: Any) -> Telemetry | None:
    global _installed
    with _state_lock:
        if _installed is not None:
            return _installed
        try:
            _installed = _install(settings, **install_kwargs)
            use_settings(settings)
        except Exception as error:
            _logger.warning("otel-llm: setup failed (%s); %s", error,
                            "falling back to the SDK's configuration" if fallback_to_sdk else
                            "OpenTelemetry is not configured", exc_info=True)
            if fallback_to_sdk is not None:
                fallback_to_sdk()
        return _installed


def configure(
    *,
    span_exporters: Sequence[SpanExporter] | None = None,
    metric_readers: Sequence[MetricReader] | None = None,
    resource_attributes: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Telemetry | None:
    """Configure OpenTelemetry with otel-llm for this process, once; later calls return the same Telemetry.

    ``overrides`` are ``Settings`` fields (``rollup_window_ms=500``, ``enabled=False``, ...) and win over the
    OTEL_LLM_* variables; they follow the variables' rules (``load_settings``): a bad value or an unknown
    name logs a warning and is ignored. ``span_exporters`` / ``metric_readers`` replace the ones
    OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER name. Applies the distro's environment defaults first (the
    user's variables win). Never raises: returns None, with a warning, only if setup failed; the application
    runs on without telemetry.
    """
    settings = load_settings(overrides=overrides)
    if settings.enabled:
        apply_distro_defaults(os.environ)
    check_standard_variables()
    return _configure_once(settings, span_exporters=span_exporters, metric_readers=metric_readers,
                           resource_attributes=resource_attributes)
