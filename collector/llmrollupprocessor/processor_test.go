package llmrollupprocessor

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor/processortest"
)

// apiBatch and workerBatch are the two services' exports of one request, sent separately.
func apiBatch(trace byte) ptrace.Traces {
	return build(traceID(trace), spec{id: 1, service: "api", name: "POST /chat", kind: server, end: 3,
		attrs: map[string]any{"llm.experiment.arm": "openai:gpt-4o"}})
}

func workerBatch(trace byte) ptrace.Traces {
	return build(traceID(trace),
		spec{id: 3, parent: 1, service: "worker", name: "process", kind: consumerKind, start: 50, end: 900},
		spec{id: 4, parent: 3, service: "worker", name: "chat", kind: client, start: 60, end: 800,
			attrs: chat("anthropic", "claude-3-5-haiku", 3, 4)})
}

// TestGroupsAcrossBatchesAndWaits: nothing leaves before the wait after the last span; then the whole trace.
func TestGroupsAcrossBatchesAndWaits(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.consume(t, apiBatch(1))
	h.clock.advance(6 * time.Second)
	h.consume(t, workerBatch(1))
	h.clock.advance(9 * time.Second) // 15 s after the first span, 9 s after the last
	h.p.releaseDue(ctx)
	if h.sink.SpanCount() != 0 {
		t.Fatal("released before the wait after its last span")
	}
	if h.metric(t, metricTracesHeld, "") != 1 || h.metric(t, metricSpansHeld, "") != 3 {
		t.Fatal("held gauges wrong")
	}
	h.clock.advance(time.Second)
	h.p.releaseDue(ctx)
	spans := spansByName(h.sink.AllTraces()...)
	root := spans["POST /chat"]
	if attr(t, root, "llm.rollup.provider") != "anthropic" || attr(t, root, "llm.experiment.fallback") != true {
		t.Fatalf("root not rolled up across batches: %v", root.Attributes().AsRaw())
	}
	if _, ok := spans["llm.request"]; !ok || h.sink.SpanCount() != 4 {
		t.Fatalf("want 3 spans + llm.request, got %d", h.sink.SpanCount())
	}
	if h.metric(t, metricFallbacks, "") != 1 || h.metric(t, metricProcessing, "") != 1 {
		t.Fatal("fallback or processing not recorded")
	}
	if h.metric(t, metricReleasedEarly, "") != 0 || h.metric(t, metricTracesHeld, "") != 0 {
		t.Fatal("a normal release counted as early, or the trace is still held")
	}
}

// TestMaxWait: a trace that keeps growing leaves max_wait after its first span, counted.
func TestMaxWait(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.WaitDuration, c.MaxWait = 10*time.Second, 20*time.Second })
	h.consume(t, apiBatch(1))
	for i := 0; i < 2; i++ {
		h.clock.advance(8 * time.Second)
		h.consume(t, workerBatch(1))
		h.p.releaseDue(context.Background())
	}
	if h.sink.SpanCount() != 0 {
		t.Fatal("released early")
	}
	h.clock.advance(4 * time.Second)
	h.p.releaseDue(context.Background())
	if h.sink.SpanCount() == 0 || h.metric(t, metricReleasedEarly, reasonMaxWait) != 1 {
		t.Fatal("not released at max_wait")
	}
}

// TestNumTracesBoundAndLateSpans: past num_traces the oldest leaves early; its later spans pass unchanged.
func TestNumTracesBoundAndLateSpans(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.NumTraces = 2 })
	h.consume(t, apiBatch(1))
	h.consume(t, apiBatch(2))
	h.consume(t, apiBatch(3))
	if h.sink.SpanCount() != 1 || h.metric(t, metricReleasedEarly, reasonNumTraces) != 1 {
		t.Fatalf("oldest trace not released early: %d spans out", h.sink.SpanCount())
	}
	if h.sink.AllTraces()[0].ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).TraceID() != traceID(1) {
		t.Fatal("not the oldest trace released")
	}
	h.consume(t, workerBatch(1))
	late := h.sink.AllTraces()[1]
	if late.SpanCount() != 2 || h.metric(t, metricLateSpans, "") != 2 {
		t.Fatal("late spans not forwarded at once and counted")
	}
	if _, ok := spansByName(late)["chat"].Attributes().Get("llm.rollup.calls"); ok {
		t.Fatal("late span changed")
	}
	if h.metric(t, metricTracesHeld, "") != 2 {
		t.Fatal("held traces gauge wrong")
	}
}

// TestSpanBounds: a trace reaching max_spans_per_trace leaves at once; past max_spans the oldest leaves.
func TestSpanBounds(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxSpans, c.MaxSpansPerTrace = 4, 2 })
	h.consume(t, workerBatch(1)) // 2 spans: at the per-trace bound
	if h.sink.SpanCount() != 2 || h.metric(t, metricReleasedEarly, reasonMaxSpansPerTrace) != 1 {
		t.Fatal("per-trace bound not enforced")
	}
	h.consume(t, apiBatch(2))
	h.consume(t, apiBatch(3))
	h.consume(t, apiBatch(4))
	h.consume(t, apiBatch(5))
	h.consume(t, apiBatch(6))
	if h.metric(t, metricReleasedEarly, reasonMaxSpans) != 1 || h.metric(t, metricSpansHeld, "") != 4 {
		t.Fatalf("total bound not enforced: %v held", h.metric(t, metricSpansHeld, ""))
	}
}

// TestShutdownReleasesEverything and spans without a trace id pass at once.
func TestShutdownReleasesEverything(t *testing.T) {
	h := newHarness(t, nil)
	h.consume(t, apiBatch(1))
	noID := ptrace.NewTraces()
	noID.ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans().AppendEmpty().SetName("no trace id")
	h.consume(t, noID)
	if h.sink.SpanCount() != 1 || h.metric(t, metricLateSpans, "") != 0 {
		t.Fatal("a span without trace id should pass at once, not as late")
	}
	if err := h.p.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	if err := h.p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.sink.SpanCount() != 2 || h.metric(t, metricReleasedEarly, reasonShutdown) != 1 {
		t.Fatal("shutdown did not release the held trace")
	}
}

// TestRefusedSpansCounted: what the next consumer refuses is counted, not returned to the sender.
func TestRefusedSpansCounted(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.MaxSpans, c.MaxSpansPerTrace = 1, 1 })
	h.p.next = consumertest.NewErr(errors.New("queue full"))
	h.consume(t, apiBatch(1))
	if h.metric(t, metricSpansNotForwarded, "") != 1 {
		t.Fatal("refused spans not counted")
	}
}

// TestFactoryCreatesProcessor builds the processor through the factory, as the collector does.
func TestFactoryCreatesProcessor(t *testing.T) {
	factory := NewFactory()
	set := processortest.NewNopSettings(component.MustNewType(typeName))
	p, err := factory.CreateTraces(context.Background(), set, factory.CreateDefaultConfig(), &consumertest.TracesSink{})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestReleasedTogetherShareResourceAndScope: traces of one batch released together leave under one resource
// and scope, as they came (plus llm.request's own scope); the spans are all there.
func TestReleasedTogetherShareResourceAndScope(t *testing.T) {
	h := newHarness(t, nil)
	batch := workerBatch(1)
	apiBatch(2).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(0).CopyTo(
		batch.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty())
	h.consume(t, batch)
	h.consume(t, apiBatch(1))
	h.clock.advance(time.Minute)
	h.p.releaseDue(context.Background())
	out := h.sink.AllTraces()[0]
	if out.SpanCount() != 5 || out.ResourceSpans().Len() != 2 {
		t.Fatalf("%d spans under %d resources, want 5 under 2 (worker batch, api batch)", out.SpanCount(), out.ResourceSpans().Len())
	}
	if scopes := out.ResourceSpans().At(0).ScopeSpans().Len(); scopes != 1 {
		t.Fatalf("worker batch's two traces under %d scopes, want 1", scopes)
	}
}

// requestOf is a 2-span request: a server root "root N" and an LLM call "chat N" beneath it.
func requestOf(n byte) ptrace.Traces {
	return build(traceID(n),
		spec{id: 1, service: "api", name: fmt.Sprintf("root %d", n), kind: server, end: 900},
		spec{id: 2, parent: 1, service: "api", name: fmt.Sprintf("chat %d", n), kind: client, start: 10, end: 800,
			attrs: chat("anthropic", "claude-3-5-haiku", 3, 4)})
}

// TestScopeOfOneTraceOrMany: a scope of one trace's spans (held whole) and a scope of two traces' spans (held
// span by span) roll up alike; at the per-trace bound a one-trace scope goes span by span too: the bound's
// spans leave at once, the rest pass as late.
func TestScopeOfOneTraceOrMany(t *testing.T) {
	h := newHarness(t, nil)
	mixed := requestOf(2)
	requestOf(3).ResourceSpans().At(0).ScopeSpans().At(0).Spans().
		MoveAndAppendTo(mixed.ResourceSpans().At(0).ScopeSpans().At(0).Spans())
	h.consume(t, requestOf(1))
	h.consume(t, mixed)
	if h.sink.SpanCount() != 0 || h.metric(t, metricTracesHeld, "") != 3 || h.metric(t, metricSpansHeld, "") != 6 {
		t.Fatal("the three traces should be held")
	}
	h.clock.advance(time.Minute)
	h.p.releaseDue(context.Background())
	spans := spansByName(h.sink.AllTraces()...)
	for _, root := range []string{"root 1", "root 2", "root 3"} {
		if got := attr(t, spans[root], "llm.rollup.calls"); got != int64(1) {
			t.Fatalf("%s: llm.rollup.calls %v, want 1", root, got)
		}
	}

	bounded := newHarness(t, func(c *Config) { c.MaxSpansPerTrace = 2 })
	whole := requestOf(4)
	requestOf(4).ResourceSpans().At(0).ScopeSpans().At(0).Spans().At(1).
		CopyTo(whole.ResourceSpans().At(0).ScopeSpans().At(0).Spans().AppendEmpty())
	bounded.consume(t, whole) // 3 spans of one trace, bound 2
	// forwarded: the 2 spans at the bound, their trace's llm.request span, the late third span
	if bounded.sink.SpanCount() != 4 || bounded.metric(t, metricReleasedEarly, reasonMaxSpansPerTrace) != 1 ||
		bounded.metric(t, metricLateSpans, "") != 1 || bounded.metric(t, metricSpansHeld, "") != 0 {
		t.Fatal("a one-trace scope past max_spans_per_trace should release 2 spans and pass 1 as late")
	}
}
