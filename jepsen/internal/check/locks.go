package check

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// Locks checks fencing tokens directly, per lock, in real-time order:
//
//   - acquisitions: one that returned token a and completed before another
//     started that returned b requires a < b; two acquisitions by different
//     holders never return the same token;
//   - accepted fenced writes: one with token t that completed before another
//     with token u started requires t <= u;
//   - staleness: once an acquisition returning u has completed, no fenced
//     write, release or keep-alive that starts later is accepted with a
//     token below u.
//
// Unlike the porcupine lock model these hold whether or not leases expire.
func Locks(ctx context.Context, h *history.History, opts Options) Result {
	opts = opts.withDefaults()
	start := time.Now()
	res := Result{Name: NameLocks, Status: StatusSkipped}
	type tokenOp struct {
		op    *history.Op
		token uint64
	}
	acquired := map[string][]tokenOp{} // ok acquisitions, by lock
	accepted := map[string][]tokenOp{} // accepted fenced writes, by lock
	used := map[string][]tokenOp{}     // accepted fenced writes, releases and keep-alives
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Outcome != history.Ok {
			continue
		}
		switch {
		case op.Kind == history.Acquire && op.Out.Error == "":
			acquired[op.Key] = append(acquired[op.Key], tokenOp{op, op.Out.Token})
		case (op.Kind == history.Release || op.Kind == history.KeepAlive) && op.Out.Error == "":
			used[op.Key] = append(used[op.Key], tokenOp{op, op.In.Token})
		case op.Fenced():
			if passed, _ := fencePassed(op.Out.Error); passed {
				t := tokenOp{op, op.In.Fence.Token}
				accepted[op.In.Fence.Lock] = append(accepted[op.In.Fence.Lock], t)
				used[op.In.Fence.Lock] = append(used[op.In.Fence.Lock], t)
			}
		}
	}
	locks := map[string]bool{}
	for _, m := range []map[string][]tokenOp{acquired, used} {
		for k := range m {
			locks[k] = true
		}
	}
	keys := make([]string, 0, len(locks))
	for k := range locks {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) > 0 {
		res.Status = StatusValid
	}

	// sweep calls check(later, prevMax) for every op of later, where prevMax
	// is the op with the largest token among earlier that completed
	// strictly before later's op started.
	sweep := func(earlier, later []tokenOp, check func(op tokenOp, prev tokenOp)) {
		byReturn := slices.Clone(earlier)
		slices.SortFunc(byReturn, func(a, b tokenOp) int { return cmp.Compare(a.op.Return, b.op.Return) })
		byCall := slices.Clone(later)
		slices.SortFunc(byCall, func(a, b tokenOp) int { return cmp.Compare(a.op.Call, b.op.Call) })
		var best tokenOp
		j := 0
		for _, o := range byCall {
			for ; j < len(byReturn) && byReturn[j].op.Return < o.op.Call; j++ {
				if best.op == nil || byReturn[j].token > best.token {
					best = byReturn[j]
				}
			}
			if best.op != nil {
				check(o, best)
			}
		}
	}

	var nAcq, nWrites int
	for _, lock := range keys {
		if ctx.Err() != nil {
			return cancelled(ctx, NameLocks, start)
		}
		acq := acquired[lock]
		nAcq += len(acq)
		nWrites += len(accepted[lock])
		sweep(acq, acq, func(b, a tokenOp) {
			reentrant := a.token == b.token && a.op.In.Holder == b.op.In.Holder
			if a.token >= b.token && !reentrant {
				res.Violate(opts.MaxViolations, Violation{Key: lock, Ops: []int{a.op.Index, b.op.Index},
					Message: fmt.Sprintf("token did not increase: #%d acquired %d and completed before #%d started, which acquired %d",
						a.op.Index, a.token, b.op.Index, b.token)})
			}
		})
		byToken := map[uint64]tokenOp{}
		for _, a := range acq {
			if prev, ok := byToken[a.token]; ok && prev.op.In.Holder != a.op.In.Holder {
				res.Violate(opts.MaxViolations, Violation{Key: lock, Ops: []int{prev.op.Index, a.op.Index},
					Message: fmt.Sprintf("token %d granted twice: to %q (#%d) and to %q (#%d)",
						a.token, prev.op.In.Holder, prev.op.Index, a.op.In.Holder, a.op.Index)})
			} else if !ok {
				byToken[a.token] = a
			}
		}
		sweep(accepted[lock], accepted[lock], func(u, t tokenOp) {
			if t.token > u.token {
				res.Violate(opts.MaxViolations, Violation{Key: lock, Ops: []int{t.op.Index, u.op.Index},
					Message: fmt.Sprintf("fenced writes out of token order: #%d with token %d was accepted and completed before #%d with token %d started and was accepted",
						t.op.Index, t.token, u.op.Index, u.token)})
			}
		})
		sweep(acq, used[lock], func(w, a tokenOp) {
			if w.token < a.token {
				res.Violate(opts.MaxViolations, Violation{Key: lock, Ops: []int{a.op.Index, w.op.Index},
					Message: fmt.Sprintf("stale token accepted: #%d (%s) with token %d started after #%d had acquired token %d",
						w.op.Index, w.op.Kind, w.token, a.op.Index, a.token)})
			}
		})
	}
	res.Detail = fmt.Sprintf("%d locks, %d acquisitions, %d accepted fenced writes, %d violations", len(keys), nAcq, nWrites, res.ViolationCount)
	res.Elapsed = time.Since(start)
	return res
}
