package llmrollupprocessor

import (
	"slices"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// smallTrace: up to this many spans a trace's span ids are compared pairwise on the stack (no map to allocate);
// most requests are a few dozen spans at most.
const smallTrace = 32

// incomplete tells whether a released trace lacks a span that one of its spans names as parent: its root or an
// ancestor never reached this processor (lost upstream, lost with a gateway that died holding it, or the
// caller's root is outside the traced services) or left earlier (a bound released it and its id was
// forgotten). The trace leaves as it is; the caller counts it (otelcol_processor_llm_rollup_traces_incomplete),
// so a trace split by a crash is not split silently.
// Cost: one pass over the spans, pairwise up to smallTrace spans (no allocation), a set of span ids past it.
func incomplete(groups []group) bool {
	count := 0
	for _, g := range groups {
		count += g.spans.Len()
	}
	if count <= smallTrace {
		var ids [smallTrace]pcommon.SpanID
		n := 0
		for _, g := range groups {
			for k := 0; k < g.spans.Len(); k++ {
				ids[n] = g.spans.At(k).SpanID()
				n++
			}
		}
		for _, g := range groups {
			for k := 0; k < g.spans.Len(); k++ {
				parent := g.spans.At(k).ParentSpanID()
				if !parent.IsEmpty() && !slices.Contains(ids[:n], parent) {
					return true
				}
			}
		}
		return false
	}
	ids := make(map[pcommon.SpanID]struct{}, count)
	for _, g := range groups {
		for k := 0; k < g.spans.Len(); k++ {
			ids[g.spans.At(k).SpanID()] = struct{}{}
		}
	}
	for _, g := range groups {
		for k := 0; k < g.spans.Len(); k++ {
			if parent := g.spans.At(k).ParentSpanID(); !parent.IsEmpty() {
				if _, ok := ids[parent]; !ok {
					return true
				}
			}
		}
	}
	return false
}
