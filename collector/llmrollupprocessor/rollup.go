package llmrollupprocessor

import (
	"encoding/binary"
	"hash/fnv"
	"slices"
	"sort"
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// What releasing one trace adds to it (README.md, "What it writes"):
//   - every LLM span: normalised gen_ai.provider.name / gen_ai.request.model; llm.langgraph.node from LangSmith
//     metadata on any span;
//   - targets (the trace root, every span without a parent, every SERVER/CONSUMER span whose parent is missing
//     or in another service): the llm.rollup.* of the LLM calls beneath, with otel_llm's semantics (a call counts
//     for every target up to and including the first LLM span above it, so an LLM span wrapping another counts
//     once above the outer one); llm.experiment.fallback when the calls missed the target's assigned arm;
//   - the root of a trace with LLM calls beneath it: the end-to-end facts (llm.trace.*), and optionally the
//     llm.request summary span beneath it, whose duration is the request's end-to-end time.
// Only LLM spans are counted, never an llm.rollup.* already present, so spans the SDK rolled up in-process add
// nothing twice; a target's existing llm.rollup.* is replaced by the trace-wide answer.
//
// Cost: linear in the trace's spans (one pass to index, one memoised pass to link each span to its nearest
// target-or-LLM ancestor, then per LLM span a walk over the targets above it). Parent cycles, missing parents
// and duplicate span ids are tolerated: a cycle is cut where it is found, a missing parent continues at the
// trace root.

const (
	noParent      = -1 // a span with an empty parent span id
	missingParent = -2 // a parent span id not held in this trace
	none          = -1
)

type node struct {
	span     ptrace.Span
	from     *origin
	call     *llmCall
	parent   int
	target   bool
	interest bool // a target or an LLM span: where a walk up can stop
}

// totals is what the LLM calls beneath one target add up to (rollup._Totals).
type totals struct {
	providers, models map[string]bool
	calls, errorCalls int64
	input, output     int64
	hasInput          bool
	hasOutput         bool
}

func (t *totals) add(call *llmCall) {
	if t.providers == nil {
		t.providers, t.models = map[string]bool{}, map[string]bool{}
	}
	t.providers[call.provider] = true
	t.models[call.model] = true
	t.calls++
	if call.failed {
		t.errorCalls++
	}
	if call.hasInput {
		t.input += call.inputTokens
		t.hasInput = true
	}
	if call.hasOutput {
		t.output += call.outputTokens
		t.hasOutput = true
	}
}

// bounded is rollup._bounded_sorted: sorted, past the limit the rest is one overflow value.
func (r *rules) bounded(values map[string]bool) []string {
	ordered := make([]string, 0, len(values))
	for value := range values {
		ordered = append(ordered, value)
	}
	sort.Strings(ordered)
	if len(ordered) <= r.MaxRollupValues {
		return ordered
	}
	return append(ordered[:r.MaxRollupValues-1], r.RollupOverflowValue)
}

func putStrings(attrs pcommon.Map, key string, values []string) {
	slice := attrs.PutEmptySlice(key)
	slice.EnsureCapacity(len(values))
	for _, value := range values {
		slice.AppendEmpty().SetStr(value)
	}
}

// write puts the llm.rollup.* attributes of t on attrs and returns the bounded providers and models.
func (r *rules) write(attrs pcommon.Map, t *totals) (providers, models []string) {
	providers, models = r.bounded(t.providers), r.bounded(t.models)
	putStrings(attrs, r.Names.RollupProviders, providers)
	attrs.PutStr(r.Names.RollupProvider, strings.Join(providers, ","))
	putStrings(attrs, r.Names.RollupModels, models)
	attrs.PutStr(r.Names.RollupModel, strings.Join(models, ","))
	attrs.PutInt(r.Names.RollupCalls, t.calls)
	attrs.PutInt(r.Names.RollupErrorCalls, t.errorCalls)
	attrs.PutBool(r.Names.RollupError, t.errorCalls > 0)
	if t.hasInput {
		attrs.PutInt(r.Names.RollupInputTokens, t.input)
	}
	if t.hasOutput {
		attrs.PutInt(r.Names.RollupOutputTokens, t.output)
	}
	return providers, models
}

// assigned is experiment.assigned_provider_model: the arm a span was assigned, or ok=false.
func (r *rules) assigned(attrs pcommon.Map) (provider, model string, ok bool) {
	provider = r.providerOf(attrs, r.Names.ExperimentProvider)
	if value, found := lookup(attrs, r.Names.ExperimentModel); found {
		model = r.normalizeModel(value)
	}
	if provider != "" && model != "" {
		return provider, model, true
	}
	arm, found := lookup(attrs, r.Names.ExperimentArm)
	if !found || arm.Type() != pcommon.ValueTypeStr {
		return "", "", false
	}
	armProvider, armModel, cut := strings.Cut(arm.Str(), ":")
	if !cut || armProvider == "" || armModel == "" {
		return "", "", false
	}
	provider = r.normalizeProvider(pcommon.NewValueStr(armProvider))
	return provider, armModel, provider != ""
}

// traceOutcome is what the processor counts for a released trace.
type traceOutcome struct {
	calls    int
	fallback bool
}

// indexSpans lists the trace's spans with their service and LLM call, enriching each; calls tells whether any
// span is an LLM call.
func indexSpans(groups []group, r *rules) (nodes []node, calls bool) {
	count := 0
	for _, g := range groups {
		count += g.spans.Len()
	}
	nodes = make([]node, 0, count)
	for _, g := range groups {
		for k := 0; k < g.spans.Len(); k++ {
			span := g.spans.At(k)
			call := r.callOf(span)
			r.enrich(span, call)
			calls = calls || call != nil
			nodes = append(nodes, node{span: span, from: g.from, call: call})
		}
	}
	return nodes, calls
}

// findRoot is the trace root: the earliest-starting span without a parent, or none.
func findRoot(nodes []node) int {
	root := none
	for i := range nodes {
		if nodes[i].parent == noParent && (root == none || nodes[i].span.StartTimestamp() < nodes[root].span.StartTimestamp()) {
			root = i
		}
	}
	return root
}

// nearestAbove links every span to its nearest target-or-LLM ancestor (none at the top). A missing parent
// continues at the root; a parent cycle is cut where the walk meets it, so the links form no cycle.
func nearestAbove(nodes []node, root int) []int {
	const unvisited, active, done = 0, 1, 2
	state := make([]uint8, len(nodes))
	above := make([]int, len(nodes))
	effectiveParent := func(i int) int {
		switch p := nodes[i].parent; {
		case p >= 0:
			return p
		case p == missingParent && root != none && i != root:
			return root
		}
		return none
	}
	var stack []int
	for start := range nodes {
		if state[start] == done {
			continue
		}
		stack = append(stack[:0], start)
		state[start] = active
		for {
			top := stack[len(stack)-1]
			parent := effectiveParent(top)
			if parent != none && state[parent] == unvisited {
				state[parent] = active
				stack = append(stack, parent)
				continue
			}
			break
		}
		for n := len(stack) - 1; n >= 0; n-- {
			i := stack[n]
			parent := effectiveParent(i)
			switch {
			case parent == none || state[parent] != done:
				above[i] = none // the top, or a cycle cut here
			case nodes[parent].interest:
				above[i] = parent
			default:
				above[i] = above[parent]
			}
			state[i] = done
		}
	}
	return above
}

// requestSpanID is the llm.request span's id: derived from the trace id, so a repeated release gives the same.
func requestSpanID(traceID pcommon.TraceID, name string, taken map[pcommon.SpanID]int) pcommon.SpanID {
	hash := fnv.New64a()
	hash.Write(traceID[:])
	hash.Write([]byte(name))
	sum := hash.Sum64()
	for {
		var id pcommon.SpanID
		binary.BigEndian.PutUint64(id[:], sum)
		if _, used := taken[id]; !used && !id.IsEmpty() {
			return id
		}
		sum++
	}
}

// rollUp processes one whole trace in place; with requestSpan it returns the llm.request span as a group of
// its own (nil when the trace gets none).
func (r *rules) rollUp(groups []group, requestSpan bool) (traceOutcome, *group) {
	nodes, calls := indexSpans(groups, r)
	if !calls { // nothing to roll up: the spans are enriched, that is all (most traces)
		return traceOutcome{}, nil
	}
	byID := make(map[pcommon.SpanID]int, len(nodes))
	for i := len(nodes) - 1; i >= 0; i-- { // the first of duplicate ids wins
		byID[nodes[i].span.SpanID()] = i
	}
	for i := range nodes {
		n := &nodes[i]
		n.parent = noParent
		if parentID := n.span.ParentSpanID(); !parentID.IsEmpty() {
			n.parent = missingParent
			if p, ok := byID[parentID]; ok && p != i {
				n.parent = p
			}
		}
	}
	root := findRoot(nodes)
	for i := range nodes {
		n := &nodes[i]
		kind := n.span.Kind()
		entry := kind == ptrace.SpanKindServer || kind == ptrace.SpanKindConsumer
		n.target = n.parent == noParent ||
			(entry && (n.parent == missingParent || nodes[n.parent].from.service != n.from.service))
		n.interest = n.target || n.call != nil
	}
	above := nearestAbove(nodes, root)
	sums := map[int]*totals{}
	var outermost []int
	for i := range nodes {
		if nodes[i].call == nil {
			continue
		}
		nested := false
		for at := above[i]; at != none; at = above[at] {
			if nodes[at].target {
				if sums[at] == nil {
					sums[at] = &totals{}
				}
				sums[at].add(nodes[i].call)
			}
			if nodes[at].call != nil {
				nested = true
				break
			}
		}
		if !nested {
			outermost = append(outermost, i)
		}
	}
	outcome := traceOutcome{calls: len(outermost)}
	for at, sum := range sums {
		attrs := nodes[at].span.Attributes()
		providers, models := r.write(attrs, sum)
		if provider, model, ok := r.assigned(attrs); ok &&
			!(slices.Contains(models, model) && slices.Contains(providers, provider)) {
			attrs.PutBool(r.Names.ExperimentFallback, true)
			outcome.fallback = true
		}
	}
	if root == none || sums[root] == nil { // no call beneath the root (a lone LLM span is its own request)
		return outcome, nil
	}
	start, end := r.writeFacts(nodes, root, outermost)
	if !requestSpan {
		return outcome, nil
	}
	return outcome, r.requestSpan(nodes[root], start, end, byID)
}

// writeFacts puts the end-to-end facts on the root and returns the trace's first start and last end.
func (r *rules) writeFacts(nodes []node, root int, outermost []int) (pcommon.Timestamp, pcommon.Timestamp) {
	start, end := nodes[root].span.StartTimestamp(), nodes[root].span.EndTimestamp()
	services := map[string]bool{}
	for i := range nodes {
		span := nodes[i].span
		start, end = min(start, span.StartTimestamp()), max(end, span.EndTimestamp())
		if nodes[i].from.service != "" {
			services[nodes[i].from.service] = true
		}
	}
	type interval struct{ from, to pcommon.Timestamp }
	calls := make([]interval, 0, len(outermost))
	for _, i := range outermost {
		calls = append(calls, interval{nodes[i].span.StartTimestamp(), max(nodes[i].span.StartTimestamp(), nodes[i].span.EndTimestamp())})
	}
	sort.Slice(calls, func(a, b int) bool { return calls[a].from < calls[b].from })
	var covered, reach pcommon.Timestamp
	for _, call := range calls {
		from := max(call.from, reach)
		if call.to > from {
			covered += call.to - from
		}
		reach = max(reach, call.to)
	}
	attrs := nodes[root].span.Attributes()
	duration := float64(end-start) / 1e6
	attrs.PutDouble(r.Names.TraceDurationMs, duration)
	attrs.PutDouble(r.Names.TraceLLMDurationMs, float64(covered)/1e6)
	share := 0.0
	if end > start {
		share = min(1, float64(covered)/float64(end-start))
	}
	attrs.PutDouble(r.Names.TraceLLMShare, share)
	putStrings(attrs, r.Names.TraceServices, r.bounded(services))
	attrs.PutInt(r.Names.TraceSpanCount, int64(len(nodes)))
	return start, end
}

// requestSpan makes the llm.request span beneath the root, in the root's resource, under this processor's
// scope: from the trace's first start to its last end, carrying the root's roll-up, arm and facts.
func (r *rules) requestSpan(root node, start, end pcommon.Timestamp, taken map[pcommon.SpanID]int) *group {
	scope := pcommon.NewInstrumentationScope()
	scope.SetName(scopeName)
	from := &origin{key: source{root.from.key.resource, 0}, resource: root.from.resource,
		resourceSchema: root.from.resourceSchema, scope: scope, service: root.from.service}
	request := &group{from: from, spans: ptrace.NewSpanSlice()}
	span := request.spans.AppendEmpty()
	span.SetTraceID(root.span.TraceID())
	span.SetSpanID(requestSpanID(root.span.TraceID(), r.Names.RequestSpan, taken))
	span.SetParentSpanID(root.span.SpanID())
	span.SetName(r.Names.RequestSpan)
	span.SetKind(ptrace.SpanKindInternal)
	span.SetStartTimestamp(start)
	span.SetEndTimestamp(end)
	root.span.Status().CopyTo(span.Status())
	rootAttrs, to := root.span.Attributes(), span.Attributes()
	for _, key := range []string{
		r.Names.RollupProvider, r.Names.RollupModel, r.Names.RollupProviders, r.Names.RollupModels,
		r.Names.RollupCalls, r.Names.RollupErrorCalls, r.Names.RollupError, r.Names.RollupInputTokens,
		r.Names.RollupOutputTokens, r.Names.ExperimentID, r.Names.ExperimentArm, r.Names.ExperimentProvider,
		r.Names.ExperimentModel, r.Names.ExperimentFallback, r.Names.TraceDurationMs, r.Names.TraceLLMDurationMs,
		r.Names.TraceLLMShare, r.Names.TraceServices, r.Names.TraceSpanCount,
	} {
		if value, ok := rootAttrs.Get(key); ok {
			value.CopyTo(to.PutEmpty(key))
		}
	}
	return request
}
