// Package sequence numbers the proposals of one exactly-once session: each
// gets the next sequence number, and each carries the lowest number whose
// outcome its sender has not yet seen (the acknowledgement), so the state
// machine can drop the results below it.
package sequence

import "sync"

// Numbers hands out sequence numbers from 1 and tracks which have
// finished. It is safe for concurrent use.
type Numbers struct {
	mu   sync.Mutex
	next uint64              // next sequence number to hand out
	low  uint64              // lowest sequence number not yet finished
	done map[uint64]struct{} // finished numbers above low
}

// New returns Numbers starting at 1.
func New() *Numbers { return &Numbers{next: 1, low: 1, done: make(map[uint64]struct{})} }

// Begin hands out the next sequence number and the current
// acknowledgement: every number below ack has finished.
func (n *Numbers) Begin() (seq, ack uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	seq = n.next
	n.next++
	return seq, n.low
}

// Finish marks seq as seen by its sender, whatever its outcome.
func (n *Numbers) Finish(seq uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if seq < n.low || seq >= n.next {
		return
	}
	n.done[seq] = struct{}{}
	for {
		if _, ok := n.done[n.low]; !ok {
			return
		}
		delete(n.done, n.low)
		n.low++
	}
}
