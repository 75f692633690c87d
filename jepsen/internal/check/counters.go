package check

import (
	"cmp"
	"context"
	"fmt"
	"math/big"
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// int128 is a signed 128-bit integer: sums of int64 deltas over a whole
// history cannot overflow it, so bounds are exact.
type int128 struct {
	hi int64
	lo uint64
}

func i128(v int64) int128 { return int128{hi: v >> 63, lo: uint64(v)} }

func (a int128) add(b int128) int128 {
	lo, carry := bits.Add64(a.lo, b.lo, 0)
	return int128{hi: a.hi + b.hi + int64(carry), lo: lo}
}

func (a int128) cmp(b int128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// String returns a in decimal.
func (a int128) String() string {
	if a.hi == int64(a.lo)>>63 {
		return strconv.FormatInt(int64(a.lo), 10)
	}
	b := new(big.Int).Lsh(big.NewInt(a.hi), 64)
	return b.Add(b, new(big.Int).SetUint64(a.lo)).String()
}

// addOnly holds one add-only counter's adds, indexed for bound queries.
type addOnly struct {
	key string
	// definite: adds certainly applied, by return time, with prefix sums of
	// their positive and negative deltas.
	definite         []*history.Op
	defPos, defNeg   []int128
	possible         []*history.Op // applied or unknown, by call time
	possPos, possNeg []int128
	initial          int64
	initialExists    bool
	reads            []*history.Op
	infoPos, infoNeg int128 // sums over unknown adds
}

// addOnlyCounters returns the counters of h whose only operations are adds
// and reads (ignoring failed ops), without instance-aware operations.
func addOnlyCounters(h *history.History, initial map[string]int64) []*addOnly {
	eligible := map[string]bool{}
	for i := range h.Ops {
		op := &h.Ops[i]
		if !op.Kind.IsCounter() {
			continue
		}
		ok, seen := eligible[op.Key]
		ok = (ok || !seen) && op.In.Instance == "" &&
			(op.Kind == history.Add || op.Kind == history.Get || op.Outcome == history.Fail)
		eligible[op.Key] = ok
	}
	byKey := map[string]*addOnly{}
	var out []*addOnly
	for i := range h.Ops {
		op := &h.Ops[i]
		if !op.Kind.IsCounter() || !eligible[op.Key] || op.Outcome == history.Fail {
			continue
		}
		c := byKey[op.Key]
		if c == nil {
			c = &addOnly{key: op.Key}
			c.initial, c.initialExists = initial[op.Key]
			byKey[op.Key] = c
			out = append(out, c)
		}
		switch {
		case op.Kind == history.Get:
			if op.Outcome == history.Ok && !op.In.Stale && op.Out.Error == "" {
				c.reads = append(c.reads, op)
			}
		case op.Outcome == history.Info:
			c.possible = append(c.possible, op)
			if op.In.Delta > 0 {
				c.infoPos = c.infoPos.add(i128(op.In.Delta))
			} else {
				c.infoNeg = c.infoNeg.add(i128(op.In.Delta))
			}
		case op.Applied():
			c.definite = append(c.definite, op)
			c.possible = append(c.possible, op)
		}
	}
	for _, c := range out {
		slices.SortStableFunc(c.definite, func(a, b *history.Op) int { return cmp.Compare(a.Return, b.Return) })
		slices.SortStableFunc(c.possible, func(a, b *history.Op) int { return cmp.Compare(a.Call, b.Call) })
		c.defPos, c.defNeg = prefixSums(c.definite)
		c.possPos, c.possNeg = prefixSums(c.possible)
	}
	slices.SortFunc(out, func(a, b *addOnly) int { return cmp.Compare(a.key, b.key) })
	return out
}

// prefixSums returns, for i in [0, len(ops)], the sums of the positive and
// of the negative deltas of ops[:i].
func prefixSums(ops []*history.Op) (pos, neg []int128) {
	pos, neg = make([]int128, len(ops)+1), make([]int128, len(ops)+1)
	for i, op := range ops {
		pos[i+1], neg[i+1] = pos[i], neg[i]
		if op.In.Delta > 0 {
			pos[i+1] = pos[i+1].add(i128(op.In.Delta))
		} else {
			neg[i+1] = neg[i+1].add(i128(op.In.Delta))
		}
	}
	return pos, neg
}

// bounds returns the range a read over [call, ret] may see: from the
// initial value plus every positive delta certainly applied before call and
// every negative delta possibly applied by ret, to the symmetric upper
// bound. before counts the adds certainly applied before call.
func (c *addOnly) bounds(call, ret int64) (lo, hi int128, before int) {
	before = sort.Search(len(c.definite), func(i int) bool { return c.definite[i].Return >= call })
	possible := sort.Search(len(c.possible), func(i int) bool { return c.possible[i].Call > ret })
	init := i128(c.initial)
	lo = init.add(c.defPos[before]).add(c.possNeg[possible])
	hi = init.add(c.possPos[possible]).add(c.defNeg[before])
	return lo, hi, before
}

// CounterBounds checks every counter that only sees adds and reads (Jepsen's
// counter check): each ok, linearizable read must lie within
//
//	lower = initial + Σ positive deltas of adds applied before the read started
//	                + Σ negative deltas of adds (applied or unknown) called by its return
//	upper = initial + Σ positive deltas of adds (applied or unknown) called by its return
//	                + Σ negative deltas of adds applied before the read started
//
// and a read that finds the counter absent must follow no applied add.
// Adds refused (overflow, out_of_range, stale fence) and failed adds count
// as not applied; unknown (Info) adds may or may not have been.
func CounterBounds(ctx context.Context, h *history.History, initial map[string]int64, opts Options) Result {
	opts = opts.withDefaults()
	start := time.Now()
	res := Result{Name: NameCounterBounds, Status: StatusSkipped}
	counters := addOnlyCounters(h, initial)
	reads := 0
	for _, c := range counters {
		if ctx.Err() != nil {
			return cancelled(ctx, NameCounterBounds, start)
		}
		for _, r := range c.reads {
			reads++
			res.Status = Combine(res.Status, StatusValid)
			lo, hi, before := c.bounds(r.Call, r.Return)
			v := i128(r.Out.Value)
			switch {
			case !r.Out.Exists && (before > 0 || c.initialExists):
				res.Violate(opts.MaxViolations, Violation{Key: c.key, Ops: []int{r.Index, c.definite[max(before-1, 0)].Index},
					Message: fmt.Sprintf("read #%d found the counter absent after %d acknowledged adds", r.Index, before)})
			case v.cmp(lo) < 0 || v.cmp(hi) > 0:
				res.Violate(opts.MaxViolations, Violation{Key: c.key, Ops: []int{r.Index},
					Message: fmt.Sprintf("read #%d saw %d outside the possible range [%v, %v]", r.Index, r.Out.Value, lo, hi)})
			}
		}
	}
	res.Detail = fmt.Sprintf("%d add-only counters, %d reads, %d out of bounds", len(counters), reads, res.ViolationCount)
	res.Elapsed = time.Since(start)
	return res
}

// LostWrites checks the final reads of every add-only counter: each must
// account for every acknowledged add and for no more than the adds that may
// have happened, that is lie within
//
//	[initial + Σ applied + Σ negative unknown, initial + Σ applied + Σ positive unknown]
//
// and find the counter present if any add was applied. Counters with other
// writes are covered by Linearizable, which appends the final reads to their
// histories.
func LostWrites(ctx context.Context, h *history.History, finals []FinalRead, initial map[string]int64, opts Options) Result {
	opts = opts.withDefaults()
	start := time.Now()
	res := Result{Name: NameLostWrites, Status: StatusSkipped}
	if len(finals) == 0 {
		res.Detail = "no final reads"
		return res
	}
	byKey := map[string][]FinalRead{}
	for _, f := range finals {
		byKey[f.Key] = append(byKey[f.Key], f)
	}
	var checked, unread int
	for _, c := range addOnlyCounters(h, initial) {
		if ctx.Err() != nil {
			return cancelled(ctx, NameLostWrites, start)
		}
		fs := byKey[c.key]
		if len(fs) == 0 {
			if len(c.definite) > 0 {
				unread++
			}
			continue
		}
		checked++
		res.Status = Combine(res.Status, StatusValid)
		applied := i128(c.initial).add(c.defPos[len(c.definite)]).add(c.defNeg[len(c.definite)])
		lo, hi := applied.add(c.infoNeg), applied.add(c.infoPos)
		for _, f := range fs {
			v := i128(f.Value)
			switch {
			case !f.Exists && (len(c.definite) > 0 || c.initialExists):
				res.Violate(opts.MaxViolations, Violation{Key: c.key, Ops: []int{-1},
					Message: fmt.Sprintf("final read on %s found the counter absent after %d acknowledged adds", f.Node, len(c.definite))})
			case v.cmp(lo) < 0 || v.cmp(hi) > 0:
				res.Violate(opts.MaxViolations, Violation{Key: c.key, Ops: []int{-1},
					Message: fmt.Sprintf("final read on %s saw %d; acknowledged adds give %v and unknown ones allow [%v, %v]",
						f.Node, f.Value, applied, lo, hi)})
			}
		}
	}
	res.Detail = fmt.Sprintf("%d add-only counters checked against %d final reads; %d with acknowledged adds had no final read", checked, len(finals), unread)
	res.Elapsed = time.Since(start)
	return res
}

// Convergence checks that every node reports the same state hash, and that
// final reads of each counter agree across nodes.
func Convergence(ctx context.Context, states []NodeState, finals []FinalRead, opts Options) Result {
	opts = opts.withDefaults()
	start := time.Now()
	res := Result{Name: NameConvergence, Status: StatusSkipped}
	if len(states) == 0 && len(finals) == 0 {
		res.Detail = "no node states or final reads"
		return res
	}
	if ctx.Err() != nil {
		return cancelled(ctx, NameConvergence, start)
	}
	res.Status = StatusValid
	for _, s := range states[min(1, len(states)):] {
		if s.Hash != states[0].Hash {
			res.Violate(opts.MaxViolations, Violation{Message: fmt.Sprintf("node %s has state %s but node %s has %s",
				s.Node, s.Hash, states[0].Node, states[0].Hash)})
		}
	}
	first := map[string]FinalRead{}
	for _, f := range finals {
		p, ok := first[f.Key]
		if !ok {
			first[f.Key] = f
			continue
		}
		if p.Value != f.Value || p.Exists != f.Exists {
			res.Violate(opts.MaxViolations, Violation{Key: f.Key, Ops: []int{-1},
				Message: fmt.Sprintf("final reads differ: %s read %d (exists %v), %s read %d (exists %v)",
					p.Node, p.Value, p.Exists, f.Node, f.Value, f.Exists)})
		}
	}
	res.Detail = fmt.Sprintf("%d node states, %d final reads of %d counters", len(states), len(finals), len(first))
	res.Elapsed = time.Since(start)
	return res
}
