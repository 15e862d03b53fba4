package llmrollupprocessor

import (
	"context"
	"fmt"
	"sync"
	"time"

	"go.opentelemetry.io/collector/component"
	"go.opentelemetry.io/collector/consumer"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/processor"
	"go.uber.org/zap"
)

// Ticks of the release loop: a quarter of wait_duration, within these bounds.
const (
	minTick = 50 * time.Millisecond
	maxTick = time.Second
)

// rollupProcessor groups spans by trace id across batches, holds each trace until wait_duration passed since its
// last span (or a bound forces it out), then normalises and rolls it up (rollup.go) and forwards it whole. Spans
// of a trace already released pass at once, unchanged (late spans). ConsumeTraces never returns an error of
// its own: what the next consumer refuses is logged and counted, and so is a trace released with a parent
// missing (incomplete.go: a trace split by a crash upstream).
type rollupProcessor struct {
	cfg    Config
	id     component.ID
	rules  *rules
	next   consumer.Traces
	logger *zap.Logger
	now    func() time.Time
	tel    *telemetry

	mu      sync.Mutex
	store   *store
	sources uint64 // counts incoming resources and scopes (under mu)

	checkpoint *checkpoint // nil without the storage setting; used by the release loop and Shutdown only
	stop       chan struct{}
	done       sync.WaitGroup
}

func newProcessor(set processor.Settings, cfg *Config, next consumer.Traces, r *rules, now func() time.Time) (*rollupProcessor, error) {
	tel, err := newTelemetry(set.MeterProvider.Meter(scopeName), set.ID.String())
	if err != nil {
		return nil, err
	}
	return &rollupProcessor{
		cfg: *cfg, id: set.ID, rules: r, next: next, logger: set.Logger, now: now, tel: tel,
		store: newStore(*cfg), stop: make(chan struct{}),
	}, nil
}

func (p *rollupProcessor) Capabilities() consumer.Capabilities {
	return consumer.Capabilities{MutatesData: true}
}

// Start counts what the previous run lost in a crash (with the storage setting) and starts the release loop.
func (p *rollupProcessor) Start(ctx context.Context, host component.Host) error {
	if p.cfg.Storage != nil {
		var err error
		if p.checkpoint, err = openCheckpoint(ctx, host, *p.cfg.Storage, p.id); err != nil {
			return err
		}
		lost, err := p.checkpoint.previous(ctx)
		if err != nil {
			p.logger.Warn("llm_rollup: cannot read what the previous run held", zap.Error(err))
		}
		if lost.traces > 0 || lost.spans > 0 {
			p.tel.tracesLost.Add(ctx, lost.traces, p.tel.instance)
			p.tel.spansLost.Add(ctx, lost.spans, p.tel.instance)
			p.logger.Warn("llm_rollup: the previous run ended without shutdown; what it held is lost",
				zap.Int64("traces", lost.traces), zap.Int64("spans", lost.spans))
		}
		p.saveCheckpoint(ctx)
	}
	tick := min(maxTick, max(minTick, p.cfg.WaitDuration/4))
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		ticker := time.NewTicker(tick)
		defer ticker.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-ticker.C:
				p.releaseDue(context.Background())
				p.saveCheckpoint(context.Background())
			}
		}
	}()
	return nil
}

// Shutdown stops the release loop and forwards every held trace (then the checkpoint says nothing is held).
func (p *rollupProcessor) Shutdown(ctx context.Context) error {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.done.Wait()
	var out []released
	p.mu.Lock()
	p.store.all(&out)
	p.updateHeld()
	p.mu.Unlock()
	p.forward(ctx, out, ptrace.NewTraces())
	if p.checkpoint != nil {
		p.saveCheckpoint(ctx) // zero now: nothing held, nothing to count on the next start
		return p.checkpoint.client.Close(ctx)
	}
	return nil
}

// saveCheckpoint records how much is held now, for the next run to count if this one crashes.
func (p *rollupProcessor) saveCheckpoint(ctx context.Context) {
	if p.checkpoint == nil {
		return
	}
	held := heldCounts{p.tel.tracesHeld.Load(), p.tel.spansHeld.Load()}
	err := p.checkpoint.save(ctx, held)
	if err != nil && !p.checkpoint.failing {
		p.logger.Warn("llm_rollup: cannot record what it holds; a crash now would go uncounted", zap.Error(err))
	}
	p.checkpoint.failing = err != nil
}

// releaseDue forwards the traces whose wait has passed (the release loop calls it; tests call it with a
// chosen clock).
func (p *rollupProcessor) releaseDue(ctx context.Context) {
	var out []released
	p.mu.Lock()
	p.store.due(p.now(), &out)
	p.updateHeld()
	p.mu.Unlock()
	p.forward(ctx, out, ptrace.NewTraces())
}

func (p *rollupProcessor) updateHeld() {
	p.tel.tracesHeld.Store(int64(len(p.store.traces)))
	p.tel.spansHeld.Store(int64(p.store.spans))
}

func (p *rollupProcessor) ConsumeTraces(ctx context.Context, td ptrace.Traces) error {
	now := p.now()
	var out []released
	passing := ptrace.NewTraces() // late spans and spans without a trace id, unchanged
	late := 0
	p.mu.Lock()
	for i := 0; i < td.ResourceSpans().Len(); i++ {
		rs := td.ResourceSpans().At(i)
		p.sources++
		resource := resourceCopy{id: p.sources}
		for j := 0; j < rs.ScopeSpans().Len(); j++ {
			ss := rs.ScopeSpans().At(j)
			p.sources++
			scopeID := p.sources
			var from *origin // made when the first span is held
			var passInto *ptrace.SpanSlice
			spans := ss.Spans()
			// A scope of one trace's spans (what a gateway gets from the loadbalancing exporter, which splits
			// batches per trace) is held whole: its span slice moves at once instead of span by span, one
			// allocation less per span. At a span bound it goes span by span below, as the bounds are per span.
			if id := oneTrace(spans); !id.IsEmpty() && !p.store.wasReleased(id) && p.store.fits(id, spans.Len()) {
				from = p.originOf(&resource, rs, ss, scopeID)
				held := p.store.trace(id, now, &out)
				held.groups = append(held.groups, group{from, ptrace.NewSpanSlice()})
				held.lastScope = scopeID
				n := spans.Len()
				spans.MoveAndAppendTo(held.groups[len(held.groups)-1].spans)
				p.store.added(held, n, now, &out)
				continue
			}
			for k := 0; k < spans.Len(); k++ {
				span := spans.At(k)
				id := span.TraceID()
				if id.IsEmpty() || p.store.wasReleased(id) {
					if passInto == nil {
						slice := appendScope(passing, rs, ss)
						passInto = &slice
					}
					span.MoveTo(passInto.AppendEmpty())
					if !id.IsEmpty() {
						late++
					}
					continue
				}
				held := p.store.trace(id, now, &out)
				if held.lastScope != scopeID || len(held.groups) == 0 { // the trace's first span of this scope
					if from == nil {
						from = p.originOf(&resource, rs, ss, scopeID)
					}
					held.groups = append(held.groups, group{from, ptrace.NewSpanSlice()})
					held.lastScope = scopeID
				}
				span.MoveTo(held.groups[len(held.groups)-1].spans.AppendEmpty())
				p.store.added(held, 1, now, &out)
			}
		}
	}
	p.updateHeld()
	p.mu.Unlock()
	if late > 0 {
		p.tel.lateSpans.Add(ctx, int64(late), p.tel.instance)
	}
	p.forward(ctx, out, passing)
	return nil
}

// oneTrace is the trace id every span of spans has, or the empty id (no spans, or of several traces).
func oneTrace(spans ptrace.SpanSlice) pcommon.TraceID {
	if spans.Len() == 0 {
		return pcommon.NewTraceIDEmpty()
	}
	id := spans.At(0).TraceID()
	for k := 1; k < spans.Len(); k++ {
		if spans.At(k).TraceID() != id {
			return pcommon.NewTraceIDEmpty()
		}
	}
	return id
}

// resourceCopy is an incoming resource copied once, when its first span is held.
type resourceCopy struct {
	id       uint64
	resource *pcommon.Resource
	service  string
}

// originOf copies the incoming resource (once per resource) and scope that held spans come under.
func (p *rollupProcessor) originOf(resource *resourceCopy, rs ptrace.ResourceSpans, ss ptrace.ScopeSpans, scopeID uint64) *origin {
	if resource.resource == nil {
		copied := pcommon.NewResource()
		rs.Resource().CopyTo(copied)
		resource.resource = &copied
		if value, ok := copied.Attributes().Get(p.rules.Names.ServiceName); ok {
			resource.service = value.AsString()
		}
	}
	scope := pcommon.NewInstrumentationScope()
	ss.Scope().CopyTo(scope)
	return &origin{
		key: source{resource.id, scopeID}, resource: *resource.resource, resourceSchema: rs.SchemaUrl(),
		scope: scope, scopeSchema: ss.SchemaUrl(), service: resource.service,
	}
}

// appendScope adds to td a resource and scope like rs/ss (attributes copied) and returns its empty span slice.
func appendScope(td ptrace.Traces, rs ptrace.ResourceSpans, ss ptrace.ScopeSpans) ptrace.SpanSlice {
	toRS := td.ResourceSpans().AppendEmpty()
	rs.Resource().CopyTo(toRS.Resource())
	toRS.SetSchemaUrl(rs.SchemaUrl())
	toSS := toRS.ScopeSpans().AppendEmpty()
	ss.Scope().CopyTo(toSS.Scope())
	toSS.SetSchemaUrl(ss.SchemaUrl())
	return toSS.Spans()
}

// forward rolls up each released trace and sends them with the passing spans in one batch, spans that came
// under the same resource and scope merged under one copy of them again.
func (p *rollupProcessor) forward(ctx context.Context, out []released, passing ptrace.Traces) {
	resources := map[uint64]ptrace.ResourceSpans{}
	scopes := map[source]ptrace.ScopeSpans{}
	split := 0
	for _, item := range out {
		if item.reason != reasonWait {
			p.tel.releasedEarlyBy(ctx, item.reason)
		}
		if incomplete(item.trace.groups) {
			split++
		}
		started := time.Now()
		outcome, request := p.rollUp(item.trace)
		p.tel.processing.Record(ctx, time.Since(started).Seconds(), p.tel.instance)
		if outcome.fallback {
			p.tel.fallbacks.Add(ctx, 1, p.tel.instance)
		}
		for _, g := range item.trace.groups {
			merge(g, passing, resources, scopes)
		}
		if request != nil {
			merge(*request, passing, resources, scopes)
		}
		recycle(item.trace)
	}
	if split > 0 {
		p.tel.incomplete.Add(ctx, int64(split), p.tel.instance)
	}
	count := passing.SpanCount()
	if count == 0 {
		return
	}
	if err := p.next.ConsumeTraces(ctx, passing); err != nil {
		p.tel.notForwarded.Add(ctx, int64(count), p.tel.instance)
		p.logger.Warn("llm_rollup: the next consumer refused spans; they are lost", zap.Int("spans", count), zap.Error(err))
	}
}

// merge moves a group's spans into out, under the resource and scope already there for its origin, or under
// new copies of them.
func merge(g group, out ptrace.Traces, resources map[uint64]ptrace.ResourceSpans, scopes map[source]ptrace.ScopeSpans) {
	dest, ok := scopes[g.from.key]
	if !ok {
		rs, seen := resources[g.from.key.resource]
		if !seen {
			rs = out.ResourceSpans().AppendEmpty()
			g.from.resource.CopyTo(rs.Resource())
			rs.SetSchemaUrl(g.from.resourceSchema)
			resources[g.from.key.resource] = rs
		}
		dest = rs.ScopeSpans().AppendEmpty()
		g.from.scope.CopyTo(dest.Scope())
		dest.SetSchemaUrl(g.from.scopeSchema)
		scopes[g.from.key] = dest
	}
	g.spans.MoveAndAppendTo(dest.Spans())
}

// rollUp processes one trace; a panic on malformed input is logged and the trace forwarded as it is by then.
func (p *rollupProcessor) rollUp(held *heldTrace) (outcome traceOutcome, request *group) {
	defer func() {
		if recovered := recover(); recovered != nil {
			p.logger.Error("llm_rollup: could not roll up a trace; forwarding it as is",
				zap.String("trace_id", held.id.String()), zap.String("panic", fmt.Sprint(recovered)))
		}
	}()
	return p.rules.rollUp(held.groups, p.cfg.RequestSpan)
}
