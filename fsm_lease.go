package abacus

import (
	"slices"
	"time"
)

// Leases, locks and fencing inside the state machine. A lease lives in
// state-machine time: it ends when a command's time reaches its deadline,
// and everything attached to it ends in that same command: the locks it
// holds pass to their next waiter, its queued lock requests are withdrawn,
// and its instance slices leave their counters' totals.

// maxWaiters bounds one lock's queue; a further waiting request is refused
// with CodeLockHeld.
const maxWaiters = 4096

type lease struct {
	id       uint64
	ttl      int64
	deadline int64
	counters map[string]struct{} // counters holding a slice of this instance
	locks    map[string]int      // lock name -> holds + queued requests
}

type lock struct {
	holder     string
	lease      uint64
	token      uint64 // the holder's fencing token; 0 when free
	delay      int64  // the holder's lock-delay
	delayUntil int64  // free but unavailable until then; 0 when not delayed
	waiters    []waiter
}

type waiter struct {
	holder string
	lease  uint64
	delay  int64
}

// missingLease tells an id that once existed (its lease has ended) from one
// that never did.
func (f *FSM) missingLease(id uint64) Code {
	if id <= f.nextLease {
		return CodeLeaseExpired
	}
	return CodeNotFound
}

func (f *FSM) grantLease(c *Command) Result {
	if len(f.leases) >= f.opts.MaxLeases {
		return failed(CodeLimitReached)
	}
	f.nextLease++
	l := &lease{id: f.nextLease, ttl: int64(c.TTL), deadline: f.after(c.TTL)}
	f.leases[l.id] = l
	f.timers.push(timer{at: l.deadline, kind: timerLease, id: l.id})
	f.ops++
	return Result{Lease: l.id, TTL: c.TTL, Remaining: c.TTL, Index: -1}
}

func (f *FSM) keepAlive(c *Command) Result {
	l := f.leases[c.Lease]
	if l == nil {
		return failed(f.missingLease(c.Lease))
	}
	l.deadline = f.after(time.Duration(l.ttl))
	f.timers.push(timer{at: l.deadline, kind: timerLease, id: l.id})
	f.ops++
	return Result{Lease: l.id, TTL: time.Duration(l.ttl), Remaining: time.Duration(l.ttl), Index: -1}
}

func (f *FSM) revokeLease(c *Command) Result {
	l := f.leases[c.Lease]
	if l == nil {
		return failed(f.missingLease(c.Lease))
	}
	f.endLease(l)
	return Result{Lease: l.id, Index: -1}
}

func (f *FSM) leaseInfo(c *Command) Result {
	l := f.leases[c.Lease]
	if l == nil {
		return failed(f.missingLease(c.Lease))
	}
	return Result{Lease: l.id, TTL: time.Duration(l.ttl), Remaining: time.Duration(l.deadline - f.now), Exists: true, Index: -1}
}

// endLease removes l and releases everything attached to it, in name order.
func (f *FSM) endLease(l *lease) {
	delete(f.leases, l.id)
	f.ops++
	for _, name := range sortedKeys(l.counters) {
		k := f.counters[name]
		if k == nil {
			continue
		}
		v := k.slices[l.id]
		delete(k.slices, l.id)
		if len(k.slices) == 0 {
			k.slices = nil
		}
		k.value = saturatingSub(k.value, v)
		f.touch(k)
		f.notifyCounter(name)
	}
	for _, name := range sortedKeys(l.locks) {
		lk := f.locks[name]
		if lk == nil {
			continue
		}
		lk.waiters = slices.DeleteFunc(lk.waiters, func(w waiter) bool { return w.lease == l.id })
		if lk.token != 0 && lk.lease == l.id {
			f.vacate(name, lk, true)
		} else {
			f.tidyLock(name, lk)
		}
	}
	if f.obs != nil {
		f.obs.LeaseEnded(l.id)
	}
}

// fenceHolds reports whether token currently holds lock name.
func (f *FSM) fenceHolds(name string, token uint64) bool {
	lk := f.locks[name]
	return lk != nil && lk.token != 0 && lk.token == token
}

func (f *FSM) acquire(c *Command) Result {
	l := f.leases[c.Lease]
	if l == nil {
		return failed(f.missingLease(c.Lease))
	}
	lk := f.locks[c.Name]
	if lk == nil {
		if len(f.locks) >= f.opts.MaxLocks {
			return failed(CodeLimitReached)
		}
		lk = &lock{}
		f.locks[c.Name] = lk
	}
	switch {
	case lk.token != 0 && lk.lease == c.Lease && lk.holder == c.Holder:
		// Already held by this request's owner: acquiring again is a no-op,
		// so a retried acquire is safe without a session.
		return f.lockResult(lk)
	case lk.token == 0 && lk.delayUntil == 0 && len(lk.waiters) == 0:
		f.grant(c.Name, lk, waiter{holder: c.Holder, lease: c.Lease, delay: int64(c.Delay)})
		return f.lockResult(lk)
	case c.Flags&FlagWait == 0:
		r := failed(CodeLockHeld)
		r.Holder = lk.holder
		return r
	}
	for _, w := range lk.waiters {
		if w.lease == c.Lease && w.holder == c.Holder {
			return Result{Holder: lk.holder, Exists: lk.token != 0, Index: -1}
		}
	}
	if len(lk.waiters) >= maxWaiters {
		r := failed(CodeLockHeld)
		r.Holder = lk.holder
		return r
	}
	lk.waiters = append(lk.waiters, waiter{holder: c.Holder, lease: c.Lease, delay: int64(c.Delay)})
	f.attach(l, c.Name)
	f.ops++
	return Result{Holder: lk.holder, Exists: lk.token != 0, Index: -1}
}

func (f *FSM) release(c *Command) Result {
	lk := f.locks[c.Name]
	if c.Token != 0 {
		if lk == nil || lk.token != c.Token {
			return failed(CodeStaleToken)
		}
		f.vacate(c.Name, lk, false)
		return Result{Index: -1}
	}
	// Release by lease: withdraw its queued requests, and its hold if any.
	if c.Flags&FlagWithdraw != 0 && f.leases[c.Lease] == nil {
		// The lease ended, and its request with it. The request may have
		// been granted in between, which the state no longer tells, so a
		// withdraw reports the ending rather than a refusal.
		return failed(f.missingLease(c.Lease))
	}
	if lk == nil {
		return Result{Index: -1}
	}
	n := len(lk.waiters)
	lk.waiters = slices.DeleteFunc(lk.waiters, func(w waiter) bool { return w.lease == c.Lease })
	if l := f.leases[c.Lease]; l != nil {
		for range n - len(lk.waiters) {
			f.detach(l, c.Name)
		}
	}
	held := lk.token != 0 && lk.lease == c.Lease
	switch {
	case held && c.Flags&FlagWithdraw != 0:
		f.ops++
		return f.lockResult(lk)
	case held:
		f.vacate(c.Name, lk, false)
	default:
		f.tidyLock(c.Name, lk)
	}
	f.ops++
	r := Result{Holder: lk.holder, Exists: lk.token != 0, Index: -1}
	if lk.token != 0 {
		r.Lease = lk.lease
	}
	return r
}

func (f *FSM) lockInfo(c *Command) Result {
	lk := f.locks[c.Name]
	if lk == nil || lk.token == 0 {
		return Result{Index: -1}
	}
	return f.lockResult(lk)
}

func (f *FSM) lockResult(lk *lock) Result {
	r := Result{Exists: true, Holder: lk.holder, Token: lk.token, Lease: lk.lease, Index: -1}
	if l := f.leases[lk.lease]; l != nil {
		r.TTL, r.Remaining = time.Duration(l.ttl), time.Duration(l.deadline-f.now)
	}
	return r
}

// grant gives a free lock to w with the next fencing token.
func (f *FSM) grant(name string, lk *lock, w waiter) {
	f.nextToken++
	lk.holder, lk.lease, lk.token, lk.delay = w.holder, w.lease, f.nextToken, w.delay
	f.attach(f.leases[w.lease], name)
	f.ops++
	if f.obs != nil {
		f.obs.LockChanged(name, lk.holder, lk.lease, lk.token)
	}
}

// vacate frees a held lock. When the holder's lease ended (expired) rather
// than being released, its lock-delay applies; otherwise the next waiter
// gets the lock in the same command.
func (f *FSM) vacate(name string, lk *lock, leaseEnded bool) {
	if l := f.leases[lk.lease]; l != nil {
		f.detach(l, name)
	}
	delay := lk.delay
	lk.holder, lk.lease, lk.token, lk.delay = "", 0, 0, 0
	f.ops++
	if leaseEnded && delay > 0 {
		lk.delayUntil = f.after(time.Duration(delay))
		f.timers.push(timer{at: lk.delayUntil, kind: timerLockDelay, name: name})
	}
	f.tidyLock(name, lk)
	// A lock that passes straight to its next waiter was never observably
	// free: only the grant is reported.
	if lk.token == 0 && f.obs != nil {
		f.obs.LockChanged(name, "", 0, 0)
	}
}

// tidyLock hands a free, undelayed lock to its first waiter, or drops the
// record of a lock nobody holds or waits for (the fencing sequence is
// global, so tokens keep increasing when the name comes back).
func (f *FSM) tidyLock(name string, lk *lock) {
	if lk.token != 0 || lk.delayUntil != 0 {
		return
	}
	if len(lk.waiters) > 0 {
		w := lk.waiters[0]
		lk.waiters = lk.waiters[1:]
		if len(lk.waiters) == 0 {
			lk.waiters = nil
		}
		f.detach(f.leases[w.lease], name) // the queued request becomes the hold
		f.grant(name, lk, w)
		return
	}
	delete(f.locks, name)
}

func (f *FSM) attach(l *lease, name string) {
	if l == nil {
		return
	}
	if l.locks == nil {
		l.locks = make(map[string]int, 1)
	}
	l.locks[name]++
}

func (f *FSM) detach(l *lease, name string) {
	if l == nil {
		return
	}
	if l.locks[name]--; l.locks[name] <= 0 {
		delete(l.locks, name)
	}
}

// sortedKeys returns a map's keys in order, for deterministic iteration.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
