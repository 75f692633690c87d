package abacus

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
