package abacus

import "time"

// Hooks for the external tests of this package.

// StopKeeperForTest stops a mutex's keeper without releasing the lock, as
// a frozen holder would.
func StopKeeperForTest(m *Mutex) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.session != nil {
		m.session.Stop()
	}
}

// StopInstanceForTest stops an instance's keeper without revoking it.
func StopInstanceForTest(i *Instance) { i.keeper.Stop() }

// LockQueueLenForTest returns how many requests wait for lock name on n.
func LockQueueLenForTest(n *Node, name string) int {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	if lk := n.fsm.locks[name]; lk != nil {
		return len(lk.waiters)
	}
	return 0
}

// LockQueueHoldersForTest returns the holders waiting for lock name on n,
// in queue order.
func LockQueueHoldersForTest(n *Node, name string) []string {
	n.fsm.mu.RLock()
	defer n.fsm.mu.RUnlock()
	var out []string
	if lk := n.fsm.locks[name]; lk != nil {
		for _, w := range lk.waiters {
			out = append(out, w.holder)
		}
	}
	return out
}

// ReadLeaseForTest reports how long n's read lease has left to run, and
// whether n holds one at all.
func ReadLeaseForTest(n *Node) (time.Duration, bool) {
	r, ok := n.repl.(*raftReplicator)
	if !ok {
		return 0, false
	}
	lt := r.term.Load()
	if lt == nil {
		return 0, false
	}
	return r.lease.remaining(lt.term, time.Now())
}

// LeaderTermForTest returns the term n leads and the time from which it
// serves reads and writes in it; ok is false while n does not lead.
func LeaderTermForTest(n *Node) (term uint64, serves time.Time, ok bool) {
	r, isRaft := n.repl.(*raftReplicator)
	if !isRaft {
		return 0, time.Time{}, false
	}
	lt := r.term.Load()
	if lt == nil {
		return 0, time.Time{}, false
	}
	return lt.term, lt.servesAt, true
}
