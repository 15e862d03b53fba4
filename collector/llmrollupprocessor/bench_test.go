package llmrollupprocessor

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Benchmarks, not run by `go test ./...` (results and commands in docs/performance.md):
//   go test -run '^$' -bench . -benchmem ./collector/llmrollupprocessor

// requestBatch is 20 five-span requests (API root, worker entry span, graph, two LLM calls without otel_llm).
func requestBatch(n int) ptrace.Traces {
	td := ptrace.NewTraces()
	for i := 0; i < 20; i++ {
		trace := traceID(byte(i))
		trace[8], trace[9], trace[10] = byte(n), byte(n>>8), byte(n>>16)
		llm := map[string]any{"gen_ai.operation.name": "chat", "gen_ai.system": "anthropic",
			"gen_ai.request.model": "anthropic.claude-3-haiku-20240307-v1:0", "gen_ai.usage.input_tokens": 120}
		build(trace,
			spec{id: 1, service: "bench", name: "POST", kind: server, end: 3},
			spec{id: 2, parent: 1, service: "bench", name: "process", kind: consumerKind, end: 900},
			spec{id: 3, parent: 2, service: "bench", name: "graph", end: 800},
			spec{id: 4, parent: 3, service: "bench", name: "chat", kind: client, end: 400, attrs: llm},
			spec{id: 5, parent: 3, service: "bench", name: "chat", kind: client, end: 700, attrs: llm},
		).ResourceSpans().MoveAndAppendTo(td.ResourceSpans())
	}
	return td
}

// BenchmarkRequests: ns per span to hold, roll up and forward requests (one batch of 100 spans per op).
func BenchmarkRequests(b *testing.B) {
	batches := make([]ptrace.Traces, b.N)
	for i := range batches {
		batches[i] = requestBatch(i)
	}
	holdAndRelease(b, batches)
}

// holdAndRelease times ConsumeTraces and the release of each batch of 100 spans (one per op), in ns per span.
func holdAndRelease(b *testing.B, batches []ptrace.Traces) {
	h := newHarness(&testing.T{}, nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		_ = h.p.ConsumeTraces(context.Background(), batches[i])
		h.clock.advance(time.Minute)
		h.p.releaseDue(context.Background())
		h.sink.Reset()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*100), "ns/span")
}

// BenchmarkHeldBytes: heap bytes per held span, everything included (the span's pdata, its share of the
// copied resource and scope, the store's bookkeeping); the spans carry the attributes of requestBatch.
func BenchmarkHeldBytes(b *testing.B) {
	for i := 0; i < b.N; i++ {
		h := newHarness(&testing.T{}, func(c *Config) { c.MaxSpans, c.MaxSpansPerTrace, c.NumTraces = 1<<30, 1<<20, 1<<20 })
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for j := 0; j < 500; j++ {
			_ = h.p.ConsumeTraces(context.Background(), requestBatch(j))
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(after.HeapAlloc-before.HeapAlloc)/float64(h.p.store.spans), "bytes/held-span")
		runtime.KeepAlive(h)
	}
}

// BenchmarkIncomplete: ns per span of the missing-parent check on a released trace: a 5-span request (the
// pairwise path) and a 200-span agent run (the set path).
func BenchmarkIncomplete(b *testing.B) {
	for _, size := range []int{5, 200} {
		groups := asGroups(chain(1, 1, uint64(size)))
		b.Run(fmt.Sprintf("spans=%d", size), func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				if incomplete(groups) {
					b.Fatal("a whole chain reported incomplete")
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/span")
		})
	}
}

// BenchmarkLoneSpans: ns per span for lone server spans (each its own trace, nothing to roll up), 100 traces
// in one scope per batch: the span-by-span hold, the store's bookkeeping and the per-trace telemetry.
func BenchmarkLoneSpans(b *testing.B) {
	batches := make([]ptrace.Traces, b.N)
	for i := range batches {
		batches[i] = ptrace.NewTraces()
		spans := batches[i].ResourceSpans().AppendEmpty().ScopeSpans().AppendEmpty().Spans()
		for j := 0; j < 100; j++ {
			trace := traceID(byte(j))
			trace[8], trace[9], trace[10] = byte(i), byte(i>>8), byte(i>>16)
			build(trace, spec{id: 1, service: "bench", name: "GET", kind: server, end: 3}).
				ResourceSpans().At(0).ScopeSpans().At(0).Spans().MoveAndAppendTo(spans)
		}
	}
	holdAndRelease(b, batches)
}
