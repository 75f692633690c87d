package abacus

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Leases live in state-machine time (docs/DESIGN.md, rule 4): a lease's
// remaining time survives a change of leader, and a leader with a wrong
// wall clock cannot end one early. A lease ends by a replicated command
// whose time reaches its deadline, and everything attached to it (locks it
// holds or waits for, instance slices) is released in that same command.

// LeaseInfo describes a lease.
type LeaseInfo struct {
	// ID is the lease's id.
	ID uint64
	// TTL is the time to live it is granted and renewed with.
	TTL time.Duration
	// Remaining is the time left, in state-machine time.
	Remaining time.Duration
}

// Grant creates a lease that lives for ttl unless renewed.
func (n *Node) Grant(ctx context.Context, ttl time.Duration) (uint64, error) {
	r, err := n.Do(ctx, Command{Op: OpLeaseGrant, TTL: ttl})
	return r.Lease, err
}

// KeepAliveOnce renews lease id for its TTL and returns the TTL. A lease
// that has ended fails with ErrLeaseExpired; an id never granted with
// ErrNotFound.
func (n *Node) KeepAliveOnce(ctx context.Context, id uint64) (time.Duration, error) {
	r, err := n.Do(ctx, Command{Op: OpLeaseKeepAlive, Lease: id})
	return r.TTL, err
}

// Revoke ends lease id at once, releasing everything attached to it.
func (n *Node) Revoke(ctx context.Context, id uint64) error {
	_, err := n.Do(ctx, Command{Op: OpLeaseRevoke, Lease: id})
	return err
}

// TimeToLive reports lease id's TTL and remaining time.
func (n *Node) TimeToLive(ctx context.Context, id uint64, opts ...Option) (LeaseInfo, error) {
	r, err := n.Do(ctx, Command{Op: OpLeaseGet, Lease: id}, opts...)
	return LeaseInfo{ID: r.Lease, TTL: r.TTL, Remaining: r.Remaining}, err
}

// KeepAlive renews lease id now and then in the background, every third
// of its TTL, until ctx ends or Stop is called. The keeper's Lost channel
// closes when the lease is lost: it ended, or no renewal succeeded before
// the holder's conservative deadline (see Keeper.ValidUntil).
func (n *Node) KeepAlive(ctx context.Context, id uint64) (*Keeper, error) {
	sent := time.Now()
	ttl, err := n.KeepAliveOnce(ctx, id)
	if err != nil {
		return nil, err
	}
	return n.keep(ctx, id, ttl, sent), nil
}

// Keeper renews a lease in the background.
type Keeper struct {
	n      *Node
	id     uint64
	ttl    time.Duration
	lost   chan struct{}
	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex
	validUntil time.Time
}

// keep starts a keeper for a lease renewed (or granted) by a request sent
// at sent.
func (n *Node) keep(ctx context.Context, id uint64, ttl time.Duration, sent time.Time) *Keeper {
	ctx, cancel := context.WithCancel(ctx)
	k := &Keeper{n: n, id: id, ttl: ttl, lost: make(chan struct{}), cancel: cancel, done: make(chan struct{})}
	k.validUntil = k.deadline(sent, ttl)
	go k.run(ctx)
	return k
}

// grantKept grants a lease of ttl and keeps it alive under keepCtx. The
// holder's view of it counts from before the grant was sent.
func (n *Node) grantKept(ctx, keepCtx context.Context, ttl time.Duration) (*Keeper, error) {
	sent := time.Now()
	id, err := n.Grant(ctx, ttl)
	if err != nil {
		return nil, err
	}
	return n.keep(keepCtx, id, ttl, sent), nil
}

// deadline is the holder's conservative view of a renewal sent at sent:
// its clock then, plus the TTL, less the drift margin.
func (k *Keeper) deadline(sent time.Time, ttl time.Duration) time.Time {
	return sent.Add(ttl - k.n.cfg.DriftMargin)
}

func (k *Keeper) run(ctx context.Context) {
	defer close(k.done)
	interval := max(k.ttl/3, time.Millisecond)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.n.done:
			return
		case <-t.C:
		}
		sent := time.Now()
		until := k.ValidUntil()
		if !sent.Before(until) {
			close(k.lost)
			return
		}
		rctx, cancel := context.WithDeadline(ctx, until)
		ttl, err := k.n.KeepAliveOnce(rctx, k.id)
		cancel()
		switch {
		case err == nil:
			k.mu.Lock()
			k.validUntil = k.deadline(sent, ttl)
			k.mu.Unlock()
		case errors.Is(err, ErrLeaseExpired), errors.Is(err, ErrNotFound):
			close(k.lost)
			return
		case ctx.Err() != nil:
			return
		}
		// After a failure, try again soon, but never past the deadline.
		next := interval
		if err != nil {
			next = min(interval/4+time.Millisecond, time.Until(k.ValidUntil()))
		}
		t.Reset(max(next, time.Millisecond))
	}
}

// ID returns the lease id.
func (k *Keeper) ID() uint64 { return k.id }

// Lost closes when the lease is lost. It stays open after Stop.
func (k *Keeper) Lost() <-chan struct{} { return k.lost }

// ValidUntil returns the time, by this node's clock, until which the
// holder may rely on the lease: when the last successful renewal was sent,
// plus the TTL, less Config.DriftMargin.
func (k *Keeper) ValidUntil() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.validUntil
}

// Stop ends the renewals and waits for the keeper to finish. The lease
// itself lives on until its TTL runs out (Revoke ends it at once).
func (k *Keeper) Stop() {
	k.cancel()
	<-k.done
}
