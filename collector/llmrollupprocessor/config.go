package llmrollupprocessor

import (
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/collector/component"
)

// Config of the llm_rollup processor (README.md has the table with defaults and what each costs).
type Config struct {
	// WaitDuration: a trace is released this long after its last span arrived.
	WaitDuration time.Duration `mapstructure:"wait_duration"`
	// MaxWait: a trace is released at the latest this long after its first span arrived.
	MaxWait time.Duration `mapstructure:"max_wait"`
	// NumTraces: traces held at most; a new trace past it releases the oldest early.
	NumTraces int `mapstructure:"num_traces"`
	// MaxSpans: spans held at most over all traces; past it the oldest trace is released early.
	MaxSpans int `mapstructure:"max_spans"`
	// MaxSpansPerTrace: a trace reaching it is released early; its further spans pass as late spans.
	MaxSpansPerTrace int `mapstructure:"max_spans_per_trace"`
	// RequestSpan: add the llm.request summary span beneath each trace root with LLM calls under it.
	RequestSpan bool `mapstructure:"request_span"`
	// Storage: a storage extension (file_storage) where the processor keeps how much it holds, so that after
	// a crash its next run counts what was lost from memory (checkpoint.go). None by default.
	Storage *component.ID `mapstructure:"storage"`

	_ struct{}
}

// Validate names the field and the rule it breaks.
func (c *Config) Validate() error {
	var errs []error
	if c.WaitDuration <= 0 {
		errs = append(errs, fmt.Errorf("wait_duration must be > 0, got %s", c.WaitDuration))
	}
	if c.MaxWait < c.WaitDuration {
		errs = append(errs, fmt.Errorf("max_wait must be >= wait_duration (%s), got %s", c.WaitDuration, c.MaxWait))
	}
	if c.NumTraces < 1 {
		errs = append(errs, fmt.Errorf("num_traces must be >= 1, got %d", c.NumTraces))
	}
	if c.MaxSpans < 1 {
		errs = append(errs, fmt.Errorf("max_spans must be >= 1, got %d", c.MaxSpans))
	}
	if c.MaxSpansPerTrace < 1 || c.MaxSpansPerTrace > c.MaxSpans {
		errs = append(errs, fmt.Errorf("max_spans_per_trace must be between 1 and max_spans (%d), got %d",
			c.MaxSpans, c.MaxSpansPerTrace))
	}
	return errors.Join(errs...)
}
