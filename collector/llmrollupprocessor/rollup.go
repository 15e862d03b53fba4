package llmrollupprocessor

import (
	"cmp"
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
	providers, models distinct
	calls, errorCalls int64
	tokens            tokenCounts        // sums per token kind; has: some call reported the kind
	costs             map[string]float64 // currency -> sum of the calls with a cost
	unpriced          int64              // calls without one
}

// smallDistinct: up to this many values a distinct set is a slice searched linearly (no map to allocate).
const smallDistinct = 8

// distinct is a set of strings in the order first added: a slice while small, indexed by a map past
// smallDistinct so a trace with many distinct values stays linear.
type distinct struct {
	values []string
	index  map[string]struct{}
}

func (d *distinct) add(value string) {
	if d.index != nil {
		if _, ok := d.index[value]; ok {
			return
		}
		d.index[value] = struct{}{}
	} else if slices.Contains(d.values, value) {
		return
	}
	d.values = append(d.values, value)
	if d.index == nil && len(d.values) > smallDistinct {
		d.index = make(map[string]struct{}, 2*len(d.values))
		for _, v := range d.values {
			d.index[v] = struct{}{}
		}
	}
}

func (t *totals) add(call *llmCall) {
	t.providers.add(call.provider)
	t.models.add(call.model)
	t.calls++
	if call.failed {
		t.errorCalls++
	}
	for i, reported := range call.tokens.has {
		if reported {
			t.tokens.count[i] += call.tokens.count[i]
			t.tokens.has[i] = true
		}
	}
	if !call.hasCost {
		t.unpriced++
		return
	}
	if t.costs == nil {
		t.costs = map[string]float64{}
	}
	t.costs[call.currency] += call.cost
}

// writtenPerTarget is at most how many attributes a target gets: write's seven and token counts, writeCost's
// three, the fallback flag, and on the root writeFacts' five.
func (r *rules) writtenPerTarget() int {
	return 7 + len(r.tokenKinds) + 3 + 1 + 5
}

// writeCost puts llm.rollup.cost.* as the SDK's roll-up does (processors/cost.CostTotals): the amount when the
// priced calls share a currency, the currency (or the currencies sorted and joined by ","), the calls without a
// cost. Only when a call beneath has a cost (a trace of services without otel-llm's pricer gets none); else an
// in-process llm.rollup.cost.* is removed with the rest of the answer replaced.
func (r *rules) writeCost(attrs pcommon.Map, t *totals) {
	if len(t.costs) == 0 {
		for _, key := range []string{r.Names.RollupCostAmount, r.Names.RollupCostCurrency, r.Names.RollupUnpricedCalls} {
			attrs.Remove(key)
		}
		return
	}
	currencies := make([]string, 0, len(t.costs))
	for currency := range t.costs {
		currencies = append(currencies, currency)
	}
	sort.Strings(currencies)
	if len(currencies) == 1 {
		attrs.PutDouble(r.Names.RollupCostAmount, t.costs[currencies[0]])
	} else {
		attrs.Remove(r.Names.RollupCostAmount)
	}
	attrs.PutStr(r.Names.RollupCostCurrency, strings.Join(currencies, ","))
	attrs.PutInt(r.Names.RollupUnpricedCalls, t.unpriced)
}

// bounded is rollup._bounded_sorted: sorted (in place), past the limit the rest is one overflow value.
func (r *rules) bounded(ordered []string) []string {
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
	providers, models = r.bounded(t.providers.values), r.bounded(t.models.values)
	putStrings(attrs, r.Names.RollupProviders, providers)
	attrs.PutStr(r.Names.RollupProvider, strings.Join(providers, ","))
	putStrings(attrs, r.Names.RollupModels, models)
	attrs.PutStr(r.Names.RollupModel, strings.Join(models, ","))
	attrs.PutInt(r.Names.RollupCalls, t.calls)
	attrs.PutInt(r.Names.RollupErrorCalls, t.errorCalls)
	attrs.PutBool(r.Names.RollupError, t.errorCalls > 0)
	for i, kind := range r.tokenKinds {
		if t.tokens.has[i] {
			attrs.PutInt(kind.attribute, t.tokens.count[i])
		}
	}
	r.writeCost(attrs, t)
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

// indexSpans enriches the trace's spans and, when any is an LLM call (calls), lists them with their service and
// call; a trace without one (most traces) costs no list.
func indexSpans(groups []group, r *rules) (nodes []node, calls bool) {
	for g := range groups {
		spans := groups[g].spans
		for k := 0; k < spans.Len(); k++ {
			span := spans.At(k)
			call := r.callOf(span)
			r.enrich(span, call)
			if call != nil && !calls {
				calls = true
				nodes = spansBefore(groups, g, k)
			}
			if calls {
				nodes = append(nodes, node{span: span, from: groups[g].from, call: call})
			}
		}
	}
	return nodes, calls
}

// spansBefore lists the spans ahead of groups[g]'s k-th (none of them an LLM call), with room for them all.
func spansBefore(groups []group, g, k int) []node {
	count := 0
	for _, each := range groups {
		count += each.spans.Len()
	}
	nodes := make([]node, 0, count)
	for i := 0; i <= g; i++ {
		end := groups[i].spans.Len()
		if i == g {
			end = k
		}
		for j := 0; j < end; j++ {
			nodes = append(nodes, node{span: groups[i].spans.At(j), from: groups[i].from})
		}
	}
	return nodes
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
	sums := make([]*totals, len(nodes)) // per target with calls beneath
	var targets []int                   // the targets with a sum, in the order first met
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
					targets = append(targets, at)
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
	for _, at := range targets {
		attrs := nodes[at].span.Attributes()
		attrs.EnsureCapacity(attrs.Len() + r.writtenPerTarget()) // one growth instead of one per few attributes
		providers, models := r.write(attrs, sums[at])
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
	var services distinct
	for i := range nodes {
		span := nodes[i].span
		start, end = min(start, span.StartTimestamp()), max(end, span.EndTimestamp())
		if nodes[i].from.service != "" {
			services.add(nodes[i].from.service)
		}
	}
	type interval struct{ from, to pcommon.Timestamp }
	calls := make([]interval, 0, len(outermost))
	for _, i := range outermost {
		calls = append(calls, interval{nodes[i].span.StartTimestamp(), max(nodes[i].span.StartTimestamp(), nodes[i].span.EndTimestamp())})
	}
	slices.SortFunc(calls, func(a, b interval) int { return cmp.Compare(a.from, b.from) })
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
	putStrings(attrs, r.Names.TraceServices, r.bounded(services.values))
	attrs.PutInt(r.Names.TraceSpanCount, int64(len(nodes)))
	return start, end
}

// requestSpan makes the llm.request span beneath the root, in the root's resource, under this processor's
// scope: from the trace's first start to its last end, carrying the root's roll-up, arm and facts.
func (r *rules) requestSpan(root node, start, end pcommon.Timestamp, taken map[pcommon.SpanID]int) *group {
	request := &group{from: root.from.requestOrigin(), spans: ptrace.NewSpanSlice()}
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
	copied := []string{
		r.Names.RollupProvider, r.Names.RollupModel, r.Names.RollupProviders, r.Names.RollupModels,
		r.Names.RollupCalls, r.Names.RollupErrorCalls, r.Names.RollupError, r.Names.RollupCostAmount,
		r.Names.RollupCostCurrency, r.Names.RollupUnpricedCalls, r.Names.ExperimentID, r.Names.ExperimentArm,
		r.Names.ExperimentProvider, r.Names.ExperimentModel, r.Names.ExperimentFallback, r.Names.TraceDurationMs,
		r.Names.TraceLLMDurationMs, r.Names.TraceLLMShare, r.Names.TraceServices, r.Names.TraceSpanCount,
	}
	to.EnsureCapacity(len(r.tokenKinds) + len(copied)) // allocated once, not grown attribute by attribute
	for _, kind := range r.tokenKinds {
		if value, ok := rootAttrs.Get(kind.attribute); ok {
			value.CopyTo(to.PutEmpty(kind.attribute))
		}
	}
	for _, key := range copied {
		if value, ok := rootAttrs.Get(key); ok {
			value.CopyTo(to.PutEmpty(key))
		}
	}
	return request
}
