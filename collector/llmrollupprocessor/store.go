package llmrollupprocessor

import (
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/ptrace"
)

// Why a trace left the store (the reason attribute of the released-early counter; "wait" is not early).
const (
	reasonWait             = "wait"
	reasonMaxWait          = "max_wait"
	reasonNumTraces        = "num_traces"
	reasonMaxSpans         = "max_spans"
	reasonMaxSpansPerTrace = "max_spans_per_trace"
	reasonShutdown         = "shutdown"
)

// minRecentTraces: released trace ids remembered (at least this many, or num_traces) to recognise late spans.
const minRecentTraces = 1024

// source numbers an incoming resource and scope (unique per processor), so spans of traces released together
// leave under one copy of them again.
type source struct{ resource, scope uint64 }

// origin is an incoming resource and scope, copied once per batch and shared by every held trace with spans
// under it (read-only once made).
type origin struct {
	key            source
	resource       pcommon.Resource
	resourceSchema string
	scope          pcommon.InstrumentationScope
	scopeSchema    string
	service        string
	request        atomic.Pointer[origin] // the llm.request spans' origin: this resource, this processor's scope
}

// requestOrigin is where the llm.request span of a trace rooted under o goes: o's resource, under this
// processor's scope; made once per origin.
func (o *origin) requestOrigin() *origin {
	if made := o.request.Load(); made != nil {
		return made
	}
	scope := pcommon.NewInstrumentationScope()
	scope.SetName(scopeName)
	made := &origin{key: source{o.key.resource, 0}, resource: o.resource, resourceSchema: o.resourceSchema,
		scope: scope, service: o.service}
	if o.request.CompareAndSwap(nil, made) {
		return made
	}
	return o.request.Load()
}

// group is the spans of one held trace that came under one origin.
type group struct {
	from  *origin
	spans ptrace.SpanSlice
}

// heldTrace is one trace's spans, grouped by where they came from.
type heldTrace struct {
	id          pcommon.TraceID
	groups      []group
	count       int
	firstSeen   time.Time
	lastSeen    time.Time
	byFirstSeen links
	byLastSeen  links
	lastScope   uint64 // the incoming scope the last group was made for (ConsumeTraces appends to it)
}

// heldTraces recycles released traces (and their groups' backing array): one trace per request otherwise
// costs two allocations for the garbage collector to clear.
var heldTraces = sync.Pool{New: func() any { return new(heldTrace) }}

// recycle returns a released trace to the pool once its spans have been forwarded.
func recycle(held *heldTrace) {
	groups := held.groups[:0]
	clear(held.groups)
	*held = heldTrace{groups: groups}
	heldTraces.Put(held)
}

// released is a trace leaving the store and why.
type released struct {
	trace  *heldTrace
	reason string
}

// store holds traces with bounded memory: at most numTraces traces and maxSpans spans, a trace at most
// maxSpansPerTrace spans; the recently released ids (a bounded ring) make late spans recognisable. Not safe for
// concurrent use: the processor holds its lock around every call.
type store struct {
	cfg         Config
	traces      map[pcommon.TraceID]*heldTrace
	byFirstSeen traceList // oldest first: evicted first, and max_wait is checked from the front
	byLastSeen  traceList // least recently extended first: wait_duration is checked from the front
	spans       int
	recent      map[pcommon.TraceID]struct{}
	recentRing  []pcommon.TraceID
	recentNext  int
}

func newStore(cfg Config) *store {
	return &store{
		cfg:         cfg,
		traces:      map[pcommon.TraceID]*heldTrace{},
		byFirstSeen: traceList{of: func(t *heldTrace) *links { return &t.byFirstSeen }},
		byLastSeen:  traceList{of: func(t *heldTrace) *links { return &t.byLastSeen }},
		recent:      map[pcommon.TraceID]struct{}{},
		recentRing:  make([]pcommon.TraceID, max(minRecentTraces, cfg.NumTraces)),
	}
}

// wasReleased tells whether spans of this trace now are late.
func (s *store) wasReleased(id pcommon.TraceID) bool {
	_, ok := s.recent[id]
	return ok
}

// trace returns the held trace for id, creating it (and evicting the oldest when full) when new.
func (s *store) trace(id pcommon.TraceID, now time.Time, out *[]released) *heldTrace {
	if held, ok := s.traces[id]; ok {
		return held
	}
	for len(s.traces) >= s.cfg.NumTraces {
		*out = append(*out, released{s.remove(s.byFirstSeen.front()), reasonNumTraces})
	}
	held := heldTraces.Get().(*heldTrace)
	held.id, held.firstSeen, held.lastSeen = id, now, now
	s.byFirstSeen.pushBack(held)
	s.byLastSeen.pushBack(held)
	s.traces[id] = held
	return held
}

// fits tells whether n more spans of trace id can be held with no span bound reached (no release, no eviction).
func (s *store) fits(id pcommon.TraceID, n int) bool {
	count := 0
	if held, ok := s.traces[id]; ok {
		count = held.count
	}
	return count+n < s.cfg.MaxSpansPerTrace && s.spans+n <= s.cfg.MaxSpans
}

// added records n spans appended to held and enforces the span bounds.
func (s *store) added(held *heldTrace, n int, now time.Time, out *[]released) {
	held.count += n
	s.spans += n
	held.lastSeen = now
	s.byLastSeen.moveToBack(held)
	if held.count >= s.cfg.MaxSpansPerTrace {
		*out = append(*out, released{s.remove(held), reasonMaxSpansPerTrace})
	}
	for s.spans > s.cfg.MaxSpans {
		*out = append(*out, released{s.remove(s.byFirstSeen.front()), reasonMaxSpans})
	}
}

// remove takes a trace out of the store and remembers its id as released.
func (s *store) remove(held *heldTrace) *heldTrace {
	delete(s.traces, held.id)
	s.byFirstSeen.remove(held)
	s.byLastSeen.remove(held)
	s.spans -= held.count
	if old := s.recentRing[s.recentNext]; !old.IsEmpty() {
		delete(s.recent, old)
	}
	s.recentRing[s.recentNext] = held.id
	s.recentNext = (s.recentNext + 1) % len(s.recentRing)
	s.recent[held.id] = struct{}{}
	return held
}

// due releases the traces whose wait (since their last span) or max wait (since their first) has passed.
func (s *store) due(now time.Time, out *[]released) {
	for held := s.byLastSeen.front(); held != nil; held = s.byLastSeen.front() {
		if now.Sub(held.lastSeen) < s.cfg.WaitDuration {
			break
		}
		*out = append(*out, released{s.remove(held), reasonWait})
	}
	for held := s.byFirstSeen.front(); held != nil; held = s.byFirstSeen.front() {
		if now.Sub(held.firstSeen) < s.cfg.MaxWait {
			break
		}
		*out = append(*out, released{s.remove(held), reasonMaxWait})
	}
}

// all releases every held trace (shutdown).
func (s *store) all(out *[]released) {
	for held := s.byFirstSeen.front(); held != nil; held = s.byFirstSeen.front() {
		*out = append(*out, released{s.remove(held), reasonShutdown})
	}
}
