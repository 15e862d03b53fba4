package llmrollupprocessor

// links are a held trace's neighbours in one of the store's two orders.
type links struct{ prev, next *heldTrace }

// traceList is an intrusive doubly linked list of held traces: the links live in heldTrace itself, so holding
// a trace in both of the store's orders allocates nothing beyond the trace (container/list would allocate an
// element per trace and order).
type traceList struct {
	head, tail *heldTrace
	of         func(*heldTrace) *links
}

func (l *traceList) front() *heldTrace { return l.head }

func (l *traceList) pushBack(t *heldTrace) {
	at := l.of(t)
	at.prev, at.next = l.tail, nil
	if l.tail != nil {
		l.of(l.tail).next = t
	} else {
		l.head = t
	}
	l.tail = t
}

func (l *traceList) remove(t *heldTrace) {
	at := l.of(t)
	if at.prev != nil {
		l.of(at.prev).next = at.next
	} else {
		l.head = at.next
	}
	if at.next != nil {
		l.of(at.next).prev = at.prev
	} else {
		l.tail = at.prev
	}
	at.prev, at.next = nil, nil
}

func (l *traceList) moveToBack(t *heldTrace) {
	if l.tail != t {
		l.remove(t)
		l.pushBack(t)
	}
}
