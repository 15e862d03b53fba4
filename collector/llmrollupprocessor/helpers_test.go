package llmrollupprocessor

import (
	"context"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/metric/metricdata"
)

// spec is one span of a test trace; parent 0 means no parent.
type spec struct {
	id, parent uint64
	service    string
	name       string
	kind       ptrace.SpanKind
	start, end int64 // ms since the test epoch
	attrs      map[string]any
	failed     bool
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func traceID(n byte) pcommon.TraceID { return pcommon.TraceID{1, 2, 3, n} }

func spanID(n uint64) pcommon.SpanID {
	var id pcommon.SpanID
	for i := 0; i < 8; i++ {
		id[7-i] = byte(n >> (8 * i))
	}
	return id
}

func ts(ms int64) pcommon.Timestamp {
	return pcommon.NewTimestampFromTime(epoch.Add(time.Duration(ms) * time.Millisecond))
}

// build makes one batch: one resource per service, in order of first appearance.
func build(trace pcommon.TraceID, specs ...spec) ptrace.Traces {
	td := ptrace.NewTraces()
	scopes := map[string]ptrace.SpanSlice{}
	for _, s := range specs {
		spans, ok := scopes[s.service]
		if !ok {
			rs := td.ResourceSpans().AppendEmpty()
			rs.Resource().Attributes().PutStr("service.name", s.service)
			spans = rs.ScopeSpans().AppendEmpty().Spans()
			scopes[s.service] = spans
		}
		span := spans.AppendEmpty()
		span.SetTraceID(trace)
		span.SetSpanID(spanID(s.id))
		if s.parent != 0 {
			span.SetParentSpanID(spanID(s.parent))
		}
		span.SetName(s.name)
		span.SetKind(s.kind)
		span.SetStartTimestamp(ts(s.start))
		span.SetEndTimestamp(ts(s.end))
		if s.failed {
			span.Status().SetCode(ptrace.StatusCodeError)
		}
		if err := span.Attributes().FromRaw(s.attrs); err != nil {
			panic(err)
		}
	}
	return td
}

// chat is the attributes of an official-instrumentation chat span.
func chat(provider, model string, in, out int) map[string]any {
	return map[string]any{"gen_ai.operation.name": "chat", "gen_ai.provider.name": provider,
		"gen_ai.request.model": model, "gen_ai.usage.input_tokens": in, "gen_ai.usage.output_tokens": out}
}

// spansByName indexes every span of td by name (the last one wins).
func spansByName(tds ...ptrace.Traces) map[string]ptrace.Span {
	out := map[string]ptrace.Span{}
	for _, td := range tds {
		for i := 0; i < td.ResourceSpans().Len(); i++ {
			scopes := td.ResourceSpans().At(i).ScopeSpans()
			for j := 0; j < scopes.Len(); j++ {
				spans := scopes.At(j).Spans()
				for k := 0; k < spans.Len(); k++ {
					out[spans.At(k).Name()] = spans.At(k)
				}
			}
		}
	}
	return out
}

func attr(t *testing.T, span ptrace.Span, key string) any {
	t.Helper()
	value, ok := span.Attributes().Get(key)
	if !ok {
		return nil
	}
	return value.AsRaw()
}

func mustRules(t *testing.T) *rules {
	t.Helper()
	r, err := embeddedRules()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// clock is a settable time source.
type clock struct{ now time.Time }

func (c *clock) Now() time.Time          { return c.now }
func (c *clock) advance(d time.Duration) { c.now = c.now.Add(d) }

// harness is a processor with an injected clock, a sink and a manual metric reader.
type harness struct {
	p      *rollupProcessor
	sink   *consumertest.TracesSink
	clock  *clock
	reader *sdkmetric.ManualReader
}

func newHarness(t *testing.T, edit func(*Config)) *harness {
	t.Helper()
	cfg := createDefaultConfig().(*Config)
	if edit != nil {
		edit(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	h := &harness{sink: &consumertest.TracesSink{}, clock: &clock{now: epoch}, reader: sdkmetric.NewManualReader()}
	set := processortest.NewNopSettings(component.MustNewType(typeName))
	set.MeterProvider = sdkmetric.NewMeterProvider(sdkmetric.WithReader(h.reader))
	p, err := newProcessor(set, cfg, h.sink, mustRules(t), h.clock.Now)
	if err != nil {
		t.Fatal(err)
	}
	h.p = p
	return h
}

func (h *harness) consume(t *testing.T, td ptrace.Traces) {
	t.Helper()
	if err := h.p.ConsumeTraces(context.Background(), td); err != nil {
		t.Fatal(err)
	}
}

// metric sums the data points of one metric whose attributes include the given reason ("" for any).
func (h *harness) metric(t *testing.T, name, reason string) float64 {
	t.Helper()
	var rm metricdata.ResourceMetrics
	if err := h.reader.Collect(context.Background(), &rm); err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, sm := range rm.ScopeMetrics {
		for _, m := range sm.Metrics {
			if m.Name != name {
				continue
			}
			switch data := m.Data.(type) {
			case metricdata.Sum[int64]:
				for _, point := range data.DataPoints {
					if value, ok := point.Attributes.Value("reason"); reason == "" || (ok && value.AsString() == reason) {
						total += float64(point.Value)
					}
				}
			case metricdata.Gauge[int64]:
				for _, point := range data.DataPoints {
					total += float64(point.Value)
				}
			case metricdata.Histogram[float64]:
				for _, point := range data.DataPoints {
					total += float64(point.Count)
				}
			}
		}
	}
	return total
}

// rollUpTraces runs rules.rollUp over td's spans in place, grouped as the processor holds them, and puts the
// llm.request span (if any) under the root's resource, so a test inspects one ptrace.Traces.
func rollUpTraces(r *rules, td ptrace.Traces, requestSpan bool) traceOutcome {
	var groups []group
	resources := map[uint64]ptrace.ResourceSpans{}
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		resources[uint64(i+1)] = rs
		service := ""
		if value, ok := rs.Resource().Attributes().Get("service.name"); ok {
			service = value.AsString()
		}
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			from := &origin{key: source{uint64(i + 1), uint64(j + 1)}, resource: rs.Resource(), scope: ss.Scope(), service: service}
			groups = append(groups, group{from, ss.Spans()})
		}
	}
	outcome, request := r.rollUp(groups, requestSpan)
	if request != nil {
		ss := resources[request.from.key.resource].ScopeSpans().AppendEmpty()
		request.from.scope.CopyTo(ss.Scope())
		request.spans.MoveAndAppendTo(ss.Spans())
	}
	return outcome
}
