package llmrollupprocessor

import (
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/confmap/confmaptest"
)

// TestConfigVariants loads each named variant of testdata/config.yaml into the default config and validates it.
func TestConfigVariants(t *testing.T) {
	custom := &Config{WaitDuration: 2 * time.Second, MaxWait: 30 * time.Second, NumTraces: 100, MaxSpans: 5000,
		MaxSpansPerTrace: 500, RequestSpan: false}
	withStorage := createDefaultConfig().(*Config)
	queue := component.MustNewIDWithName("file_storage", "queue")
	withStorage.Storage = &queue
	tests := []struct {
		id      string
		want    component.Config
		wantErr string
	}{
		{id: "llm_rollup", want: createDefaultConfig()},
		{id: "llm_rollup/custom", want: custom},
		{id: "llm_rollup/storage", want: withStorage},
		{id: "llm_rollup/zero_wait", wantErr: "wait_duration must be > 0"},
		{id: "llm_rollup/max_wait_below_wait", wantErr: "max_wait must be >= wait_duration"},
		{id: "llm_rollup/no_traces", wantErr: "num_traces must be >= 1"},
		{id: "llm_rollup/no_spans", wantErr: "max_spans must be >= 1"},
		{id: "llm_rollup/per_trace_above_total", wantErr: "max_spans_per_trace must be between 1 and max_spans (100)"},
		{id: "llm_rollup/unknown_field", wantErr: "wait"},
	}
	conf, err := confmaptest.LoadConf(filepath.Join("testdata", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			sub, err := conf.Sub(tt.id)
			if err != nil {
				t.Fatal(err)
			}
			cfg := NewFactory().CreateDefaultConfig().(*Config)
			err = sub.Unmarshal(cfg)
			if err == nil {
				err = cfg.Validate()
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("want error containing %q, got %v", tt.wantErr, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg, tt.want) {
				t.Fatalf("got %+v, want %+v", cfg, tt.want)
			}
		})
	}
}

// TestFactoryType checks the type name and that the default config is valid.
func TestFactoryType(t *testing.T) {
	factory := NewFactory()
	if factory.Type().String() != "llm_rollup" {
		t.Fatalf("type %q", factory.Type())
	}
	if err := factory.CreateDefaultConfig().(*Config).Validate(); err != nil {
		t.Fatal(err)
	}
}
