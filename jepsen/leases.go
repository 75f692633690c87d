package main

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/abacuskit/abacus/jepsen/internal/check"
	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// NameLeaseExpiry is the runner's check that no lock lease ends early.
const NameLeaseExpiry = "lease-expiry"

// leaseExpiry checks what a lock holder relies on (docs/DESIGN.md: its lease is
// valid until its clock when it sent the request plus the TTL, less a drift
// margin): while a holder's lease must still be valid by that rule, and it
// has not begun to release the lock, no one else acquires the lock.
//
// For every acquisition A that returned a token, its lease is valid until
// the latest of A's call and the calls of A's acknowledged keep-alives,
// plus the TTL, less margin, or until A's release was called. Another
// acquisition B of the same lock that returned a later token before that
// time was granted while A's lease was still valid: a violation (a state
// machine whose clock ran ahead of real time, for instance). The check
// needs no assumption about faults: a paused or partitioned holder's lease
// may lapse, but not before its TTL has passed in real time.
func leaseExpiry(h *history.History, margin time.Duration, limit int) check.Result {
	start := time.Now()
	res := check.Result{Name: NameLeaseExpiry, Status: check.StatusSkipped}
	type lease struct {
		acq   *history.Op
		token uint64
		until int64 // ns since the start of the run
	}
	byLock := map[string][]*lease{}
	byToken := map[string]map[uint64]*lease{}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Kind != history.Acquire || op.Outcome != history.Ok || op.Out.Error != "" || op.In.TTLMillis <= 0 {
			continue
		}
		l := &lease{acq: op, token: op.Out.Token,
			until: op.Call + op.In.TTLMillis*int64(time.Millisecond) - margin.Nanoseconds()}
		byLock[op.Key] = append(byLock[op.Key], l)
		if byToken[op.Key] == nil {
			byToken[op.Key] = map[uint64]*lease{}
		}
		byToken[op.Key][l.token] = l
	}
	// Keep-alives extend leases; then releases cap them: from its call on,
	// the holder may have given the lock up.
	for _, kind := range []history.Kind{history.KeepAlive, history.Release} {
		for i := range h.Ops {
			op := &h.Ops[i]
			l := byToken[op.Key][op.In.Token]
			if op.Kind != kind || l == nil || op.Outcome == history.Fail || op.Call < l.acq.Call {
				continue
			}
			if kind == history.Release {
				l.until = min(l.until, op.Call)
			} else if op.Outcome == history.Ok && op.Out.Error == "" {
				l.until = max(l.until, op.Call+l.acq.In.TTLMillis*int64(time.Millisecond)-margin.Nanoseconds())
			}
		}
	}
	locks := 0
	for key, leases := range byLock {
		locks++
		res.Status = check.Combine(res.Status, check.StatusValid)
		slices.SortFunc(leases, func(a, b *lease) int { return cmp.Compare(a.token, b.token) })
		for i, a := range leases {
			for _, b := range leases[i+1:] {
				if b.token == a.token || b.acq.Return >= a.until {
					continue
				}
				res.Violate(limit, check.Violation{Key: key, Ops: []int{a.acq.Index, b.acq.Index},
					Message: fmt.Sprintf("#%d acquired %q with token %d, its lease valid until %.3fs (call, keep-alives, TTL %dms, margin %v), but #%d was granted token %d by %.3fs",
						a.acq.Index, key, a.token, float64(a.until)/1e9, a.acq.In.TTLMillis, margin, b.acq.Index, b.token, float64(b.acq.Return)/1e9)})
			}
		}
	}
	res.Detail = fmt.Sprintf("%d locks, %d acquisitions, %d granted while an earlier lease was still valid", locks, countLeases(byLock), res.ViolationCount)
	res.Elapsed = time.Since(start)
	return res
}

func countLeases[T any](m map[string][]T) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}
