package llmrollupprocessor

import (
	"context"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/processor"
)

// The component's identity (metadata.yaml says the same; no mdatagen step, the constants are hand-written).
const (
	typeName  = "llm_rollup"
	scopeName = "github.com/otel-llm/otel-llm/collector/llmrollupprocessor"
	stability = component.StabilityLevelAlpha
)

// Defaults: a worker's spans reach the collector seconds after the API's (the job runs, then the SDK's batch
// delay of up to 5 s), so a trace waits 10 s after its last span; memory is about max_spans times the size of a
// held span (README.md).
const (
	defaultWaitDuration     = 10 * time.Second
	defaultMaxWait          = 2 * time.Minute
	defaultNumTraces        = 10000
	defaultMaxSpans         = 200000
	defaultMaxSpansPerTrace = 10000
)

// NewFactory returns the llm_rollup processor factory.
func NewFactory() processor.Factory {
	return processor.NewFactory(
		component.MustNewType(typeName),
		createDefaultConfig,
		processor.WithTraces(createTraces, stability),
	)
}

func createDefaultConfig() component.Config {
	return &Config{
		WaitDuration:     defaultWaitDuration,
		MaxWait:          defaultMaxWait,
		NumTraces:        defaultNumTraces,
		MaxSpans:         defaultMaxSpans,
		MaxSpansPerTrace: defaultMaxSpansPerTrace,
		RequestSpan:      true,
	}
}

func createTraces(_ context.Context, set processor.Settings, cfg component.Config, next consumer.Traces) (processor.Traces, error) {
	r, err := embeddedRules()
	if err != nil {
		return nil, err
	}
	return newProcessor(set, cfg.(*Config), next, r, time.Now)
}
