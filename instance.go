package abacus

import (
	"context"
	"errors"
	"time"
)

// Instance-aware counters. An application process registers an instance,
// which is a lease. Writes made WithInstance are kept as that instance's
// own slice of each counter as well as in the total, and reads report both.
// When the instance's lease ends (it stops renewing, or is revoked) its
// slices leave the totals at once, in the state machine: counts of live
// workers, connections or reservations clean themselves up.

// RegisterInstance creates an instance (a lease of ttl) and returns its
// id. The caller renews it with KeepAliveOnce and ends it with Revoke; see
// NewInstance for one that renews itself.
func (n *Node) RegisterInstance(ctx context.Context, ttl time.Duration) (uint64, error) {
	return n.Grant(ctx, ttl)
}

// Instance is a registered instance whose lease a keeper renews.
type Instance struct {
	n      *Node
	keeper *Keeper
}

// NewInstance registers an instance and keeps it alive until Close or
// until ctx ends.
func (n *Node) NewInstance(ctx context.Context, ttl time.Duration) (*Instance, error) {
	k, err := n.grantKept(ctx, ctx, ttl)
	if err != nil {
		return nil, err
	}
	return &Instance{n: n, keeper: k}, nil
}

// ID returns the instance's id (its lease id).
func (i *Instance) ID() uint64 { return i.keeper.ID() }

// Lost closes when the instance's lease is lost.
func (i *Instance) Lost() <-chan struct{} { return i.keeper.Lost() }

// Add adds delta to this instance's slice of counter name (and to its
// total). The returned Counter has the total in Value and the slice in Mine.
func (i *Instance) Add(ctx context.Context, name string, delta int64, opts ...Option) (Counter, error) {
	return i.n.Add(ctx, name, delta, append(opts, WithInstance(i.ID()))...)
}

// Set sets this instance's slice of counter name to value.
func (i *Instance) Set(ctx context.Context, name string, value int64, opts ...Option) (previous int64, err error) {
	return i.n.Set(ctx, name, value, append(opts, WithInstance(i.ID()))...)
}

// Delete removes this instance's slice of counter name from its total.
func (i *Instance) Delete(ctx context.Context, name string, opts ...Option) (previous int64, err error) {
	return i.n.Delete(ctx, name, append(opts, WithInstance(i.ID()))...)
}

// Get reads counter name: its total in Value, this instance's slice in Mine.
func (i *Instance) Get(ctx context.Context, name string, opts ...Option) (Counter, error) {
	return i.n.Get(ctx, name, append(opts, WithInstance(i.ID()))...)
}

// Close stops renewing and revokes the instance: its slices leave every
// counter at once.
func (i *Instance) Close(ctx context.Context) error {
	i.keeper.Stop()
	err := i.n.Revoke(ctx, i.ID())
	if errors.Is(err, ErrLeaseExpired) {
		return nil
	}
	return err
}
