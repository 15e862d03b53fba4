package llmrollupprocessor

import (
	"context"
	"sync/atomic"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// The processor's own metrics, on the collector's telemetry MeterProvider (service.telemetry.metrics; its
// Prometheus reader serves them under these names). Every point carries processor=<component id>, so two
// instances (one per pipeline) are told apart.
const (
	metricTracesHeld        = "otelcol_processor_llm_rollup_traces_held"
	metricSpansHeld         = "otelcol_processor_llm_rollup_spans_held"
	metricReleasedEarly     = "otelcol_processor_llm_rollup_traces_released_early"
	metricLateSpans         = "otelcol_processor_llm_rollup_late_spans"
	metricProcessing        = "otelcol_processor_llm_rollup_processing_duration"
	metricFallbacks         = "otelcol_processor_llm_rollup_experiment_fallbacks"
	metricSpansNotForwarded = "otelcol_processor_llm_rollup_spans_not_forwarded"
	metricTracesIncomplete  = "otelcol_processor_llm_rollup_traces_incomplete"
	metricTracesLost        = "otelcol_processor_llm_rollup_traces_lost"
	metricSpansLost         = "otelcol_processor_llm_rollup_spans_lost"
)

type telemetry struct {
	processor             attribute.KeyValue
	instance              metric.MeasurementOption
	tracesHeld, spansHeld atomic.Int64
	releasedEarly         metric.Int64Counter
	lateSpans             metric.Int64Counter
	processing            metric.Float64Histogram
	fallbacks             metric.Int64Counter
	notForwarded          metric.Int64Counter
	incomplete            metric.Int64Counter
	tracesLost, spansLost metric.Int64Counter
	registration          metric.Registration
}

func newTelemetry(meter metric.Meter, id string) (*telemetry, error) {
	t := &telemetry{processor: attribute.String("processor", id)}
	t.instance = metric.WithAttributes(t.processor)
	var err error
	if t.releasedEarly, err = meter.Int64Counter(metricReleasedEarly, metric.WithUnit("{trace}"),
		metric.WithDescription("Traces released before their wait ended, by reason (a memory bound, max_wait, shutdown).")); err != nil {
		return nil, err
	}
	if t.lateSpans, err = meter.Int64Counter(metricLateSpans, metric.WithUnit("{span}"),
		metric.WithDescription("Spans that arrived after their trace was released; forwarded unchanged.")); err != nil {
		return nil, err
	}
	if t.processing, err = meter.Float64Histogram(metricProcessing, metric.WithUnit("s"),
		metric.WithDescription("Time to normalise and roll up one released trace."),
		metric.WithExplicitBucketBoundaries(0.00001, 0.0001, 0.001, 0.01, 0.1, 1, 10)); err != nil {
		return nil, err
	}
	if t.fallbacks, err = meter.Int64Counter(metricFallbacks, metric.WithUnit("{trace}"),
		metric.WithDescription("Traces whose LLM calls missed the experiment arm assigned on a root (llm.experiment.fallback).")); err != nil {
		return nil, err
	}
	if t.notForwarded, err = meter.Int64Counter(metricSpansNotForwarded, metric.WithUnit("{span}"),
		metric.WithDescription("Spans of released traces the next consumer refused (lost).")); err != nil {
		return nil, err
	}
	if t.incomplete, err = meter.Int64Counter(metricTracesIncomplete, metric.WithUnit("{trace}"),
		metric.WithDescription("Traces released with a span whose parent is not in the trace (root or ancestor lost, e.g. with a gateway that died holding it).")); err != nil {
		return nil, err
	}
	if t.tracesLost, err = meter.Int64Counter(metricTracesLost, metric.WithUnit("{trace}"),
		metric.WithDescription("Traces the previous run held when it ended without shutdown (a crash), as of its last tick; with the storage setting.")); err != nil {
		return nil, err
	}
	if t.spansLost, err = meter.Int64Counter(metricSpansLost, metric.WithUnit("{span}"),
		metric.WithDescription("Spans the previous run held when it ended without shutdown (a crash), as of its last tick; with the storage setting.")); err != nil {
		return nil, err
	}
	tracesHeld, err := meter.Int64ObservableGauge(metricTracesHeld, metric.WithUnit("{trace}"),
		metric.WithDescription("Traces held, waiting for their release."))
	if err != nil {
		return nil, err
	}
	spansHeld, err := meter.Int64ObservableGauge(metricSpansHeld, metric.WithUnit("{span}"),
		metric.WithDescription("Spans held, waiting for their trace's release."))
	if err != nil {
		return nil, err
	}
	t.registration, err = meter.RegisterCallback(func(_ context.Context, o metric.Observer) error {
		o.ObserveInt64(tracesHeld, t.tracesHeld.Load(), t.instance)
		o.ObserveInt64(spansHeld, t.spansHeld.Load(), t.instance)
		return nil
	}, tracesHeld, spansHeld)
	if err != nil {
		return nil, err
	}
	return t, nil
}

func (t *telemetry) releasedEarlyBy(ctx context.Context, reason string) {
	t.releasedEarly.Add(ctx, 1, metric.WithAttributes(t.processor, attribute.String("reason", reason)))
}
