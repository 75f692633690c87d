package abacus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// The leader lease. A leader that confirms its leadership with a quorum
// (VerifyLeader) knows that no other node can have become leader until
// each of those followers has gone HeartbeatTimeout without hearing from
// it. The lease starts at a time taken before the confirmation round began
// and lasts ReadLease, which Config.Validate keeps below HeartbeatTimeout
// minus the drift margin, so it ends before any rival's term can begin;
// while it lasts the leader serves linearizable reads from local state.
// It is tied to the term, dropped on any change of leadership and when a
// leadership transfer starts, and a new term's writes wait one lease (see
// leaderTerm) to cover followers that vote early: a restarted one, or the
// target of a transfer.

type readLease struct {
	p atomic.Pointer[leaseGrant]
}

type leaseGrant struct {
	term  uint64
	until time.Time
}

// remaining returns how long the lease of term has to run at now, and
// whether it is valid at all.
func (l *readLease) remaining(term uint64, now time.Time) (time.Duration, bool) {
	g := l.p.Load()
	if g == nil || g.term != term || !now.Before(g.until) {
		return 0, false
	}
	return g.until.Sub(now), true
}

func (l *readLease) extend(term uint64, until time.Time) {
	for {
		old := l.p.Load()
		if old != nil && old.term == term && !until.After(old.until) {
			return
		}
		if l.p.CompareAndSwap(old, &leaseGrant{term: term, until: until}) {
			return
		}
	}
}

func (l *readLease) drop() { l.p.Store(nil) }

// confirmer shares confirmation rounds among concurrent reads: a read
// joins the next round to start, never one already under way (which could
// have begun before the read arrived), and every read waiting when a round
// starts is answered by it.
type confirmer struct {
	mu      sync.Mutex
	next    *round
	running bool
	run     func() error
}

type round struct {
	done chan struct{}
	err  error
}

func (c *confirmer) wait(ctx context.Context) error {
	c.mu.Lock()
	if c.next == nil {
		c.next = &round{done: make(chan struct{})}
	}
	rd := c.next
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	select {
	case <-rd.done:
		return rd.err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// kick starts a round unless one is already pending or running, without
// waiting for it.
func (c *confirmer) kick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	c.next = &round{done: make(chan struct{})}
	c.running = true
	go c.loop()
}

func (c *confirmer) loop() {
	for {
		c.mu.Lock()
		rd := c.next
		c.next = nil
		if rd == nil {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		rd.err = c.run()
		close(rd.done)
	}
}

// confirmLeadership runs one confirmation round and extends the lease.
func (r *raftReplicator) confirmLeadership() error {
	lt := r.term.Load()
	if lt == nil {
		return fmt.Errorf("%w: not the leader", ErrUnavailable)
	}
	start := time.Now()
	if err := r.raft.VerifyLeader().Error(); err != nil {
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	if r.term.Load() == lt && !r.transferring.Load() {
		r.lease.extend(lt.term, start.Add(r.cfg.ReadLease))
	}
	return nil
}

// renewLease keeps the lease fresh while this node leads, so reads rarely
// wait for a round.
func (r *raftReplicator) renewLease(lt *leaderTerm) {
	t := time.NewTicker(r.cfg.ReadLease / 3)
	defer t.Stop()
	for {
		_ = r.confirm.wait(lt.ctx)
		select {
		case <-t.C:
		case <-lt.ctx.Done():
			return
		}
	}
}
