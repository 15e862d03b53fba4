package llmrollupprocessor

import (
	"container/list"
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
	byFirstSeen *list.Element
	byLastSeen  *list.Element
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
	byFirstSeen *list.List // oldest first: evicted first, and max_wait is checked from the front
	byLastSeen  *list.List // least recently extended first: wait_duration is checked from the front
	spans       int
	recent      map[pcommon.TraceID]struct{}
	recentRing  []pcommon.TraceID
	recentNext  int
}

func newStore(cfg Config) *store {
	return &store{
		cfg:         cfg,
		traces:      map[pcommon.TraceID]*heldTrace{},
		byFirstSeen: list.New(),
		byLastSeen:  list.New(),
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
		*out = append(*out, released{s.remove(s.byFirstSeen.Front().Value.(*heldTrace)), reasonNumTraces})
	}
	held := &heldTrace{id: id, firstSeen: now, lastSeen: now}
	held.byFirstSeen = s.byFirstSeen.PushBack(held)
	held.byLastSeen = s.byLastSeen.PushBack(held)
	s.traces[id] = held
	return held
}

// added records n spans appended to held and enforces the span bounds.
func (s *store) added(held *heldTrace, n int, now time.Time, out *[]released) {
	held.count += n
	s.spans += n
	held.lastSeen = now
	s.byLastSeen.MoveToBack(held.byLastSeen)
	if held.count >= s.cfg.MaxSpansPerTrace {
		*out = append(*out, released{s.remove(held), reasonMaxSpansPerTrace})
	}
	for s.spans > s.cfg.MaxSpans {
		*out = append(*out, released{s.remove(s.byFirstSeen.Front().Value.(*heldTrace)), reasonMaxSpans})
	}
}

// remove takes a trace out of the store and remembers its id as released.
func (s *store) remove(held *heldTrace) *heldTrace {
	delete(s.traces, held.id)
	s.byFirstSeen.Remove(held.byFirstSeen)
	s.byLastSeen.Remove(held.byLastSeen)
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
	for front := s.byLastSeen.Front(); front != nil; front = s.byLastSeen.Front() {
		held := front.Value.(*heldTrace)
		if now.Sub(held.lastSeen) < s.cfg.WaitDuration {
			break
		}
		*out = append(*out, released{s.remove(held), reasonWait})
	}
	for front := s.byFirstSeen.Front(); front != nil; front = s.byFirstSeen.Front() {
		held := front.Value.(*heldTrace)
		if now.Sub(held.firstSeen) < s.cfg.MaxWait {
			break
		}
		*out = append(*out, released{s.remove(held), reasonMaxWait})
	}
}

// all releases every held trace (shutdown).
func (s *store) all(out *[]released) {
	for front := s.byFirstSeen.Front(); front != nil; front = s.byFirstSeen.Front() {
		*out = append(*out, released{s.remove(front.Value.(*heldTrace)), reasonShutdown})
	}
}
