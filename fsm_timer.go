package abacus

import (
	"container/heap"
	"slices"
)

// Timers fire as state-machine time passes: when a proposal's time moves
// the clock to or past a deadline, the thing due expires within that same
// proposal, before the proposal's own command runs. Entries are checked
// against the current state when they fire, so a renewed lease or a counter
// deleted since leaves a stale entry that does nothing. The heap is derived
// state: it is rebuilt on restore and not part of a snapshot.

type timerKind uint8

const (
	timerLease timerKind = iota + 1
	timerCounter
	timerLockDelay
)

type timer struct {
	at   int64
	kind timerKind
	id   uint64 // lease id
	name string // counter or lock name
}

func (a timer) less(b timer) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	if a.kind != b.kind {
		return a.kind < b.kind
	}
	if a.id != b.id {
		return a.id < b.id
	}
	return a.name < b.name
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].less(h[j]) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}

func (h *timerHeap) push(t timer) { heap.Push(h, t) }

// fireTimers expires everything due at or before the current time.
func (f *FSM) fireTimers() {
	if len(f.timers) > 2*(len(f.leases)+len(f.locks)+len(f.counters))+1024 {
		f.rebuildTimers()
	}
	for len(f.timers) > 0 && f.timers[0].at <= f.now {
		t := heap.Pop(&f.timers).(timer)
		switch t.kind {
		case timerLease:
			if l := f.leases[t.id]; l != nil && l.deadline == t.at {
				f.endLease(l)
			}
		case timerCounter:
			if k := f.counters[t.name]; k != nil && k.expires == t.at {
				f.expireCounter(t.name, k)
			}
		case timerLockDelay:
			if lk := f.locks[t.name]; lk != nil && lk.delayUntil == t.at {
				lk.delayUntil = 0
				f.tidyLock(t.name, lk)
			}
		}
	}
}

// NextDeadline returns the earliest time at which something in the state
// expires, if anything does. A leader proposes a tick at that time so that
// expiry happens without waiting for other traffic.
func (f *FSM) NextDeadline() (int64, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	if len(f.timers) == 0 {
		return 0, false
	}
	return f.timers[0].at, true
}

// rebuildTimers replaces the heap with one entry per pending deadline in
// the state. Renewed leases, counters deleted before their expiry and
// undone batches leave superseded entries behind; without this they would
// accumulate for up to MaxTTL. Which entries are stale never changes what
// fires, so when this runs does not affect results.
func (f *FSM) rebuildTimers() {
	ts := make(timerHeap, 0, len(f.leases))
	for id, l := range f.leases {
		ts = append(ts, timer{at: l.deadline, kind: timerLease, id: id})
	}
	for name, k := range f.counters {
		if k.expires != 0 {
			ts = append(ts, timer{at: k.expires, kind: timerCounter, name: name})
		}
	}
	for name, lk := range f.locks {
		if lk.delayUntil != 0 {
			ts = append(ts, timer{at: lk.delayUntil, kind: timerLockDelay, name: name})
		}
	}
	slices.SortFunc(ts, func(a, b timer) int {
		if a.less(b) {
			return -1
		}
		if b.less(a) {
			return 1
		}
		return 0
	}) // a sorted slice is a valid heap
	f.timers = ts
}
