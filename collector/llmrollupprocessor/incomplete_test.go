package llmrollupprocessor

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.opentelemetry.io/collector/component/componenttest"
	"go.opentelemetry.io/collector/consumer/consumertest"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// chain is a trace of n spans, each the child of the one before; from (1 or more) is the first span's id, so
// from > 1 leaves out the root and the first span's parent.
func chain(trace byte, from, n uint64) ptrace.Traces {
	specs := make([]spec, 0, n)
	for id := from; id < from+n; id++ {
		specs = append(specs, spec{id: id, parent: id - 1, service: "api", name: "step", end: 1})
	}
	return build(traceID(trace), specs...)
}

// asGroups is td's spans as the processor holds them (one group per scope).
func asGroups(td ptrace.Traces) []group {
	var groups []group
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		for j := 0; j < td.ResourceSpans().At(i).ScopeSpans().Len(); j++ {
			groups = append(groups, group{spans: td.ResourceSpans().At(i).ScopeSpans().At(j).Spans()})
		}
	}
	return groups
}

// TestIncomplete: a trace is incomplete exactly when a span's parent is missing from it, small or large.
func TestIncomplete(t *testing.T) {
	merged := apiBatch(1)
	workerBatch(1).ResourceSpans().MoveAndAppendTo(merged.ResourceSpans())
	for _, c := range []struct {
		name string
		td   ptrace.Traces
		want bool
	}{
		{"whole request across services", merged, false},
		{"worker part without the API root", workerBatch(1), true},
		{"root alone", apiBatch(1), false},
		{"small chain", chain(1, 1, smallTrace), false},
		{"small chain without its root", chain(1, 2, smallTrace-1), true},
		{"large chain", chain(1, 1, 3*smallTrace), false},
		{"large chain without its root", chain(1, 2, 3*smallTrace), true},
		{"large chain with a hole", func() ptrace.Traces {
			td := chain(1, 1, 40)
			spans := td.ResourceSpans().At(0).ScopeSpans().At(0).Spans()
			spans.RemoveIf(func(s ptrace.Span) bool { return s.SpanID() == spanID(20) })
			return td
		}(), true},
	} {
		if got := incomplete(asGroups(c.td)); got != c.want {
			t.Errorf("%s: incomplete = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestIncompleteTracesCounted: the worker's part of a request whose API root never arrived (held by a
// gateway that died) is released as it is and counted; a whole request is not.
func TestIncompleteTracesCounted(t *testing.T) {
	h := newHarness(t, nil)
	h.consume(t, workerBatch(1))
	h.consume(t, apiBatch(2))
	h.consume(t, workerBatch(2))
	h.clock.advance(time.Minute)
	h.p.releaseDue(context.Background())
	if h.sink.SpanCount() != 2+4 {
		t.Fatalf("%d spans forwarded, want 2 (split trace, as it is) + 4 (whole request with llm.request)", h.sink.SpanCount())
	}
	if got := h.metric(t, metricTracesIncomplete, ""); got != 1 {
		t.Fatalf("traces_incomplete = %v, want 1", got)
	}
}

// TestShutdownCountsWhatItCannotForward: at shutdown the held traces go downstream; what the next consumer
// refuses then is counted as lost, not dropped silently.
func TestShutdownCountsWhatItCannotForward(t *testing.T) {
	h := newHarness(t, nil)
	h.p.next = consumertest.NewErr(errors.New("exporter stopped"))
	h.consume(t, apiBatch(1))
	h.consume(t, workerBatch(1))
	if err := h.p.Start(context.Background(), componenttest.NewNopHost()); err != nil {
		t.Fatal(err)
	}
	if err := h.p.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h.metric(t, metricSpansNotForwarded, "") != 4 || h.metric(t, metricReleasedEarly, reasonShutdown) != 1 {
		t.Fatal("spans refused at shutdown not counted")
	}
	if h.metric(t, metricTracesHeld, "") != 0 || h.metric(t, metricSpansHeld, "") != 0 {
		t.Fatal("still holding spans after shutdown")
	}
}
