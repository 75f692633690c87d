package abacus

import (
	"context"
	"fmt"
	"time"
)

// Election elects one of several application instances on top of a
// Mutex: the leader is the holder of the election's lock, its value is the
// holder id, and its term's fencing token guards its writes. Campaigners
// queue in order, so leadership passes to the longest-waiting candidate.
type Election struct {
	n    *Node
	name string
	ttl  time.Duration
	m    *Mutex
}

// NewElection returns an election named name whose leaders hold a lease of
// ttl (default 10s when ttl <= 0).
func (n *Node) NewElection(name string, ttl time.Duration) *Election {
	return &Election{n: n, name: name, ttl: ttl}
}

// Campaign waits until this caller is elected with value (its id), or ctx
// ends.
func (e *Election) Campaign(ctx context.Context, value string) error {
	if e.m != nil {
		return fmt.Errorf("%w: already campaigning", ErrInvalidArgument)
	}
	m := e.n.NewMutex(e.name, value, MutexOptions{TTL: e.ttl})
	if err := m.Lock(ctx); err != nil {
		_ = m.Close(context.WithoutCancel(ctx))
		return err
	}
	e.m = m
	return nil
}

// Resign gives up leadership, which passes at once to the next candidate.
func (e *Election) Resign(ctx context.Context) error {
	if e.m == nil {
		return fmt.Errorf("%w: not the leader", ErrInvalidArgument)
	}
	m := e.m
	e.m = nil
	return m.Close(ctx)
}

// Token returns the fencing token of this caller's term (0 if not leader).
func (e *Election) Token() uint64 {
	if e.m == nil {
		return 0
	}
	return e.m.Token()
}

// Lost closes when this caller's leadership ends without Resign; nil when
// not leader.
func (e *Election) Lost() <-chan struct{} {
	if e.m == nil {
		return nil
	}
	return e.m.Lost()
}

// Leader returns the current leader's value and term token.
func (e *Election) Leader(ctx context.Context) (string, uint64, error) {
	info, err := e.n.GetLock(ctx, e.name)
	if err != nil {
		return "", 0, err
	}
	if !info.Held {
		return "", 0, ErrNoLeader
	}
	return info.Holder, info.Token, nil
}

// Observe delivers the leader's value (empty while there is none) now and
// at every change, until ctx ends. A slow reader sees the latest leader.
func (e *Election) Observe(ctx context.Context) <-chan string {
	in := e.n.watchLock(ctx, e.name)
	out := make(chan string)
	go func() {
		defer close(out)
		last, first := "", true
		for ev := range in {
			if !first && ev.Holder == last {
				continue
			}
			first, last = false, ev.Holder
			select {
			case out <- ev.Holder:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}
