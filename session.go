package abacus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/abacuskit/abacus/internal/sequence"
)

// clientSession is a node's identity in the state machine's exactly-once
// table: a session id the state machine issued, and the numbering of the
// node's proposals under it.
type clientSession struct {
	id  uint64
	seq *sequence.Numbers
}

// OpenSession opens a client session for WithSession and returns its id.
// The state machine issues ids in increasing order and never reuses one.
// Sessions cost nothing while unused and are forgotten after
// FSMOptions.SessionTTL without a write.
func (n *Node) OpenSession(ctx context.Context) (uint64, error) {
	if n.closed.Load() {
		return 0, ErrClosed
	}
	// An open carries no session of its own: if its outcome is unknown
	// and it is retried, the worst case is a second session that nobody
	// uses and that expires when idle.
	res, err := n.propose(ctx, Proposal{Cmd: Command{Op: OpSessionOpen}})
	if err != nil {
		return 0, err
	}
	if res.Code != CodeOK || res.Value <= 0 {
		return 0, fmt.Errorf("%w: opening a session: %v", ErrUnavailable, res.Code)
	}
	return uint64(res.Value), nil
}

// clientSession returns the node's session, opening one through the log
// when it has none. Concurrent callers share one open.
func (n *Node) clientSession(ctx context.Context) (*clientSession, error) {
	if s := n.session.Load(); s != nil {
		return s, nil
	}
	n.sessionMu.Lock()
	defer n.sessionMu.Unlock()
	if s := n.session.Load(); s != nil {
		return s, nil
	}
	id, err := n.OpenSession(ctx)
	if err != nil {
		return nil, err
	}
	s := &clientSession{id: id, seq: sequence.New()}
	n.session.Store(s)
	return s, nil
}

// propose sends p through the replicator until its outcome is known or ctx
// ends. A proposal whose outcome is unknown is retried with the same client
// id and sequence number, which the state machine deduplicates, so the
// caller sees exactly one application. When ctx ends first, the error wraps
// ErrIndeterminate if any attempt may have been applied, else
// ErrUnavailable.
func (n *Node) propose(ctx context.Context, p Proposal) (Result, error) {
	uncertain := false
	backoff := n.cfg.RetryBackoff
	for attempt := 0; ; attempt++ {
		if n.closed.Load() {
			return Result{}, n.giveUp(uncertain, ErrClosed)
		}
		res, err := n.repl.Propose(ctx, p)
		if err == nil {
			if res.Code == CodeSessionExpired && !uncertain {
				// Refused before it could apply, and no earlier attempt
				// can have applied: the caller may start a new session.
				return res, errSessionRestart
			}
			return res, nil
		}
		switch {
		case errors.Is(err, ErrIndeterminate):
			uncertain = true
		case errors.Is(err, ErrUnavailable):
		case errors.Is(err, ErrClosed):
			return Result{}, n.giveUp(uncertain, err)
		default:
			return Result{}, err
		}
		if ctx.Err() != nil {
			return Result{}, n.giveUp(uncertain, ctx.Err())
		}
		n.log.Debug("retrying proposal", "client", p.Client, "seq", p.Seq, "attempt", attempt+1, "err", err)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return Result{}, n.giveUp(uncertain, ctx.Err())
		case <-n.done:
			t.Stop()
			return Result{}, n.giveUp(uncertain, ErrClosed)
		case <-t.C:
		}
		backoff = min(2*backoff, 16*n.cfg.RetryBackoff)
	}
}

// errSessionRestart tells write that a proposal was refused because the
// state machine forgot the node's session, and that nothing was applied.
var errSessionRestart = errors.New("abacus: session restart")

func (n *Node) giveUp(uncertain bool, cause error) error {
	if uncertain {
		return fmt.Errorf("%w: %w", ErrIndeterminate, cause)
	}
	if errors.Is(cause, ErrClosed) {
		return cause
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, cause)
}

// read runs a read-only command linearizably, retrying while no leader can
// serve it, or from local state with the WithStale option.
func (n *Node) read(ctx context.Context, cmd Command, stale bool) (Result, error) {
	if stale {
		return n.fsm.Read(cmd), nil
	}
	backoff := n.cfg.RetryBackoff
	for {
		if n.closed.Load() {
			return Result{}, ErrClosed
		}
		res, err := n.repl.Read(ctx, cmd)
		if err == nil {
			return res, nil
		}
		if !errors.Is(err, ErrUnavailable) && !errors.Is(err, ErrIndeterminate) {
			return Result{}, err
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		case <-n.done:
			t.Stop()
			return Result{}, ErrClosed
		case <-t.C:
		}
		backoff = min(2*backoff, 16*n.cfg.RetryBackoff)
	}
}
