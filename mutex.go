package abacus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Locks. A lock is held under a lease and identified by its fencing
// token, which strictly increases per lock name for ever (across releases,
// snapshots, restarts and leader changes). Writes guarded WithFence are
// refused once their token no longer holds the lock, so a holder that was
// paused or partitioned past its lease cannot do harm. Requests that wait
// are served in order, and a release hands the lock to the first waiter
// only.

// LockInfo describes a lock.
type LockInfo struct {
	// Held reports whether anyone holds the lock.
	Held bool
	// Holder is the holder's id.
	Holder string
	// Token is the holder's fencing token.
	Token uint64
	// Lease is the lease the lock is held under.
	Lease uint64
	// TTL is the lease's time to live.
	TTL time.Duration
	// Remaining is the time left on the lease, in state-machine time.
	Remaining time.Duration
}

func lockInfo(r Result) LockInfo {
	return LockInfo{Held: r.Token != 0, Holder: r.Holder, Token: r.Token, Lease: r.Lease, TTL: r.TTL, Remaining: r.Remaining}
}

// GetLock reports who holds lock name.
func (n *Node) GetLock(ctx context.Context, name string, opts ...Option) (LockInfo, error) {
	r, err := n.Do(ctx, Command{Op: OpLockGet, Name: name}, opts...)
	return lockInfo(r), err
}

// AcquireLock acquires lock name for holder under a new lease of ttl,
// waiting up to wait (and while ctx lasts) behind earlier requests. It
// returns the lock with its fencing token; the caller renews it with
// KeepAliveLock and ends it with ReleaseLock. When the lock cannot be had
// in time the error wraps ErrLockHeld and is an *OpError naming the holder;
// the lease is then revoked. When the lease ends while the request waits
// (this node could not renew it, for example while cut off from the
// cluster), the error wraps ErrLeaseExpired: the request may have held the
// lock in between, and holds nothing now.
func (n *Node) AcquireLock(ctx context.Context, name, holder string, ttl, wait time.Duration) (LockInfo, error) {
	if err := (&Command{Op: OpLockAcquire, Name: name, Holder: holder, Lease: 1}).Validate(); err != nil {
		return LockInfo{}, err
	}
	// The keeper holds the lease while the request waits in the queue.
	k, err := n.grantKept(ctx, context.Background(), ttl)
	if err != nil {
		return LockInfo{}, err
	}
	defer k.Stop()
	info, err := n.acquireUnder(ctx, name, holder, k, wait, 0)
	if err != nil {
		n.abandon(k.ID())
	}
	return info, err
}

// acquireUnder acquires lock name for holder under the lease k keeps,
// waiting in line up to wait. A request still queued when the wait ends is
// withdrawn; one whose lease is lost meanwhile fails with ErrLeaseExpired.
func (n *Node) acquireUnder(ctx context.Context, name, holder string, k *Keeper, wait, delay time.Duration) (LockInfo, error) {
	lease := k.ID()
	cmd := Command{Op: OpLockAcquire, Name: name, Holder: holder, Lease: lease, Delay: delay}
	if wait > 0 {
		cmd.Flags |= FlagWait
	}
	grants := n.watchLockGrant(ctx, name)
	defer grants.stop()
	r, err := n.Do(ctx, cmd)
	if err == nil && r.Token == 0 {
		// A refusal from awaitGrant was settled through the log; any other
		// error leaves the request's fate open, so take it off the lock.
		if r, err = n.awaitGrant(ctx, name, lease, wait, grants, k.Lost()); err != nil && !errors.Is(err, ErrLockHeld) {
			n.withdraw(name, lease)
		}
	}
	if err != nil {
		return LockInfo{}, err
	}
	return lockInfo(r), nil
}

// awaitGrant waits for a queued request to be granted. Every way out but
// a confirmed grant settles the request through the log (giveUpWaiting):
// the request stays queued until withdrawn and may be granted at any
// moment, so only the log can say whether it was.
func (n *Node) awaitGrant(ctx context.Context, name string, lease uint64, wait time.Duration, g *grantWatch, lost <-chan struct{}) (Result, error) {
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case ev, ok := <-g.ch:
			if !ok { // the watch ends with ctx or the node
				return n.giveUpWaiting(name, lease)
			}
			if ev.Lease != lease || ev.Token == 0 {
				continue
			}
			// Confirm with a linearizable read: this node's state may lag
			// and still show an earlier hold of the same lease.
			r, err := n.Do(ctx, Command{Op: OpLockGet, Name: name})
			if err != nil {
				return n.giveUpWaiting(name, lease)
			}
			if r.Lease == lease && r.Token != 0 {
				return r, nil
			}
		case <-lost: // renewals failed: by the holder's clock the lease is gone
			return n.giveUpWaiting(name, lease)
		case <-t.C:
			return n.giveUpWaiting(name, lease)
		case <-ctx.Done():
			return n.giveUpWaiting(name, lease)
		}
	}
}

// giveUpWaiting withdraws a queued request through the log. The lock may
// have been granted in the meantime: then the grant stands and is the
// result, so an acquire never reports a refusal for a lock it held. If the
// lease ended meanwhile, the request may have held the lock in between;
// the acquire fails with ErrLeaseExpired, not ErrLockHeld.
func (n *Node) giveUpWaiting(name string, lease uint64) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
	defer cancel()
	r, err := n.Do(ctx, Command{Op: OpLockRelease, Flags: FlagWithdraw, Name: name, Lease: lease})
	if errors.Is(err, ErrLeaseExpired) {
		return Result{}, &OpError{Code: CodeLeaseExpired, Op: OpLockAcquire, Name: name, Index: -1}
	}
	if err != nil {
		return Result{}, fmt.Errorf("%w: withdrawing a lock request: %w", ErrIndeterminate, err)
	}
	if r.Lease == lease && r.Token != 0 {
		return r, nil
	}
	return Result{}, &OpError{Code: CodeLockHeld, Op: OpLockAcquire, Name: name, Index: -1, Holder: r.Holder}
}

// withdraw takes a lease's queued request (or a hold granted just as the
// wait ended) off lock name, in the background so the caller's ended
// context does not stop it.
func (n *Node) withdraw(name string, lease uint64) {
	n.cleanUp(func(ctx context.Context) {
		if _, err := n.Do(ctx, Command{Op: OpLockRelease, Name: name, Lease: lease}); err != nil {
			n.log.Debug("withdrawing lock request", "lock", name, "lease", lease, "err", err)
		}
	})
}

// abandon withdraws a lease that did not get its lock, in the background
// so the caller's ended context does not stop the clean-up.
func (n *Node) abandon(lease uint64) {
	n.cleanUp(func(ctx context.Context) {
		if err := n.Revoke(ctx, lease); err != nil && !errors.Is(err, ErrLeaseExpired) && !errors.Is(err, ErrClosed) {
			n.log.Debug("revoking abandoned lock lease", "lease", lease, "err", err)
		}
	})
}

// cleanupTimeout bounds a lock clean-up the caller does not wait for, or
// whose outcome it needs although its own context has ended.
const cleanupTimeout = 5 * time.Second

// cleanUp runs fn in the background under a deadline of its own.
func (n *Node) cleanUp(fn func(ctx context.Context)) {
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		fn(ctx)
	}()
}

// KeepAliveLock renews the lease of the lock holder whose token is given.
// It fails with ErrStaleToken when the token no longer holds the lock.
func (n *Node) KeepAliveLock(ctx context.Context, name string, token uint64) (time.Duration, error) {
	info, err := n.holding(ctx, name, token)
	if err != nil {
		return 0, err
	}
	return n.KeepAliveOnce(ctx, info.Lease)
}

// ReleaseLock releases lock name held with token and ends its lease (in
// the background: the lease holds nothing once released). It fails with
// ErrStaleToken when the token no longer holds the lock.
func (n *Node) ReleaseLock(ctx context.Context, name string, token uint64) error {
	info, err := n.holding(ctx, name, token)
	if err != nil {
		return err
	}
	if _, err := n.Do(ctx, Command{Op: OpLockRelease, Name: name, Token: token}); err != nil {
		return err
	}
	// The release is done: ending its lease is clean-up, and a failure of
	// it must not report the release as failed.
	n.abandon(info.Lease)
	return nil
}

func (n *Node) holding(ctx context.Context, name string, token uint64) (LockInfo, error) {
	if token == 0 {
		return LockInfo{}, invalidf("token must be positive")
	}
	info, err := n.GetLock(ctx, name)
	if err != nil {
		return LockInfo{}, err
	}
	if !info.Held || info.Token != token {
		return LockInfo{}, &OpError{Code: CodeStaleToken, Op: OpLockRelease, Name: name, Index: -1}
	}
	return info, nil
}

// grantWatch follows lock changes on this node while a request waits.
type grantWatch struct {
	ch   <-chan LockEvent
	stop context.CancelFunc
}

func (n *Node) watchLockGrant(ctx context.Context, name string) *grantWatch {
	ctx, cancel := context.WithCancel(ctx)
	return &grantWatch{ch: n.watchLock(ctx, name), stop: cancel}
}

// Mutex is a distributed lock with fencing. It holds the lock under a
// session lease of its own, granted at the first Lock and renewed in the
// background until Close, so a lock and unlock cost one log write each.
// Use one Mutex per holder; it is safe for concurrent use, but Lock and
// Unlock pair like a sync.Mutex's.
type Mutex struct {
	n      *Node
	name   string
	holder string
	opts   MutexOptions

	mu      sync.Mutex
	session *Keeper // the lease the lock is held under; nil until needed
	held    bool
	info    LockInfo
	gen     uint64
}

// MutexOptions tune a Mutex.
type MutexOptions struct {
	// TTL is the session lease's time to live: how long the lock outlives
	// a holder that stops renewing. Default 10s.
	TTL time.Duration
	// LockDelay keeps the lock unavailable for this long after the
	// holder's lease ends without a release (a holder that died may still
	// have writes in flight). Default 0.
	LockDelay time.Duration
}

// NewMutex returns a mutex on lock name for holder, an id that names the
// process or task in LockInfo and logs. Close it when done.
func (n *Node) NewMutex(name, holder string, opts MutexOptions) *Mutex {
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Second
	}
	return &Mutex{n: n, name: name, holder: holder, opts: opts}
}

// Lock acquires the mutex, waiting in order behind earlier requests until
// ctx ends. The error wraps ErrLockHeld when ctx ended first, and
// ErrLeaseExpired when the session lease ended while it waited (the next
// Lock starts a new session).
func (m *Mutex) Lock(ctx context.Context) error {
	wait := MaxTTL
	if d, ok := ctx.Deadline(); ok {
		wait = max(time.Until(d), time.Millisecond)
	}
	return m.lock(ctx, wait)
}

// TryLock acquires the mutex if it is free, else fails at once with
// ErrLockHeld.
func (m *Mutex) TryLock(ctx context.Context) error { return m.lock(ctx, 0) }

// LockAttempts tries to acquire the mutex up to attempts times, a lease
// TTL apart, without queueing: lock(holder_id, max_attempts).
func (m *Mutex) LockAttempts(ctx context.Context, attempts int) error {
	var err error
	for i := 0; i < attempts; i++ {
		if err = m.TryLock(ctx); err == nil || !errors.Is(err, ErrLockHeld) {
			return err
		}
		if i+1 < attempts {
			t := time.NewTimer(m.opts.TTL)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return err
			}
		}
	}
	return err
}

// lease returns the live session lease, granting a new one when there is
// none or the last was lost.
func (m *Mutex) lease(ctx context.Context) (*Keeper, error) {
	if m.session != nil {
		select {
		case <-m.session.Lost():
			m.session.Stop()
			m.session, m.held = nil, false
		default:
			return m.session, nil
		}
	}
	k, err := m.n.grantKept(ctx, context.Background(), m.opts.TTL)
	if err != nil {
		return nil, err
	}
	m.session = k
	return k, nil
}

func (m *Mutex) lock(ctx context.Context, wait time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k, err := m.lease(ctx)
	if err != nil {
		return err
	}
	if m.held {
		return fmt.Errorf("%w: mutex %q already held by this Mutex", ErrInvalidArgument, m.name)
	}
	info, err := m.n.acquireUnder(ctx, m.name, m.holder, k, wait, m.opts.LockDelay)
	if err != nil {
		return err
	}
	m.info, m.held = info, true
	m.gen++
	return nil
}

// Unlock releases the mutex. It fails with ErrStaleToken when the lock was
// lost meanwhile.
func (m *Mutex) Unlock(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.held {
		return fmt.Errorf("%w: mutex %q not held", ErrInvalidArgument, m.name)
	}
	m.held = false
	_, err := m.n.Do(ctx, Command{Op: OpLockRelease, Name: m.name, Token: m.info.Token})
	return err
}

// Close releases the mutex if held and ends its session lease.
func (m *Mutex) Close(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.held = false
	if m.session == nil {
		return nil
	}
	k := m.session
	m.session = nil
	k.Stop()
	if err := m.n.Revoke(ctx, k.ID()); err != nil && !errors.Is(err, ErrLeaseExpired) {
		return err
	}
	return nil
}

// Token returns the fencing token of the current (or last) hold: pass it
// to WithFence on writes made under the lock, and to outside systems that
// check fencing tokens.
func (m *Mutex) Token() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.info.Token
}

// Generation counts the times this Mutex has acquired the lock, for logs.
func (m *Mutex) Generation() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gen
}

// Lost returns a channel that closes when the session lease is lost, and
// with it any hold. It is nil before the first Lock.
func (m *Mutex) Lost() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.session == nil {
		return nil
	}
	return m.session.Lost()
}

// ValidUntil returns the holder's conservative view of its hold: the time
// by this node's clock until which the lock certainly remains held (the
// zero time when not held).
func (m *Mutex) ValidUntil() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.held || m.session == nil {
		return time.Time{}
	}
	return m.session.ValidUntil()
}

// Fence returns an Option that guards a write with this mutex's token.
func (m *Mutex) Fence() Option { return WithFence(m.name, m.Token()) }
