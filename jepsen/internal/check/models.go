package check

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sync/atomic"

	"github.com/abacuskit/abacus/jepsen/internal/history"
	"github.com/anishathalye/porcupine"
)

// Porcupine operations built from history ops carry an *Event as Input and
// the op's *history.Output as Output (nil for an op whose outcome is
// unknown).

// Event is the Input of a porcupine operation built by CounterOperations or
// LockOperations: the history op and whether its outcome is unknown.
type Event struct {
	// Op is the history op (for final reads, a synthesised Get with
	// Index -1).
	Op *history.Op
	// Unknown is set for an Info op: it returns at +infinity and its output
	// is not checked, so the checker may place it anywhere after its call,
	// including after everything else (never applied).
	Unknown bool
	// Partition is the counter or lock name the operation is checked under.
	Partition string
}

// unknownReturn is the return time of ops whose outcome is unknown: after
// everything, final reads included.
const unknownReturn = math.MaxInt64

// ---- counters ----

// CounterState is the counter model's state: the value and whether the
// counter exists. A counter that does not exist has Value 0.
type CounterState struct {
	Value  int64
	Exists bool
	fresh  bool // the initial state before the partition's first step
}

// checkedAdd returns a+b, or the refusal code saying which way it left
// int64, exactly as the abacus state machine does.
func checkedAdd(a, b int64) (int64, string) {
	s := a + b
	switch {
	case b > 0 && s < a:
		return 0, history.CodeOverflow
	case b < 0 && s > a:
		return 0, history.CodeUnderflow
	}
	return s, ""
}

// addResult returns what an add of in to cur yields: the new value, or the
// refusal code (overflow and underflow are judged before the bounds, as in
// the state machine).
func addResult(cur int64, in *history.Input) (int64, string) {
	total, code := checkedAdd(cur, in.Delta)
	if code != "" {
		return 0, code
	}
	if (in.Min != nil && total < *in.Min) || (in.Max != nil && total > *in.Max) {
		return 0, history.CodeOutOfRange
	}
	return total, ""
}

// modelledRefusal reports whether the counter model predicts refusals with
// this code; other refusal codes (stale_token, which the lock model judges,
// and anything unexpected) are accepted as no-ops.
func modelledRefusal(code string) bool {
	return code == history.CodeOverflow || code == history.CodeUnderflow || code == history.CodeOutOfRange
}

// CounterStep is the sequential specification of one abacus counter. For
// an op whose outcome is unknown it returns the state if the op took effect
// (CounterModel also keeps the state where it did not).
func CounterStep(s CounterState, ev *Event, out *history.Output) (bool, CounterState) {
	op := ev.Op
	in := &op.In
	unknown := ev.Unknown || out == nil
	if !unknown && out.Error != "" && !modelledRefusal(out.Error) {
		return true, s // refused outside this model (e.g. stale fence): nothing changed
	}
	switch op.Kind {
	case history.Get:
		if unknown {
			return true, s
		}
		return out.Value == s.Value && out.Exists == s.Exists, s
	case history.Add:
		total, code := addResult(s.Value, in)
		next := s
		if code == "" {
			next = CounterState{Value: total, Exists: true}
		}
		if unknown {
			return true, next
		}
		if out.Error != "" || code != "" {
			return out.Error == code, s
		}
		return out.Value == total, next
	case history.Set:
		next := CounterState{Value: in.Value, Exists: true}
		if unknown {
			return true, next
		}
		return out.Error == "" && out.Previous == s.Value, next
	case history.CAS:
		swap := s.Value == in.Old
		next := s
		if swap {
			next = CounterState{Value: in.New, Exists: true}
		}
		if unknown {
			return true, next
		}
		if out.Error != "" || out.Swapped != swap {
			return false, s
		}
		if !swap {
			return out.Value == s.Value, s
		}
		return true, next
	case history.Delete:
		next := CounterState{}
		if unknown {
			return true, next
		}
		return out.Error == "" && out.Previous == s.Value, next
	}
	return false, s
}

// CounterModel returns the porcupine model of abacus counters, partitioned
// by counter name, for operations built by CounterOperations. initial gives
// the value of counters that exist before the run (absent ones start at 0,
// not existing).
//
// Its states are sets of CounterState (a power-set construction over
// CounterStep): a write whose outcome is unknown leads to both the state
// where it took effect and the one where it did not, which keeps the search
// from backtracking over where to place it. A set larger than
// DefaultMaxStates makes the step fail; Linearizable reports a check that
// hit that bound as unknown.
func CounterModel(initial map[string]int64) porcupine.Model {
	return counterModel(initial, DefaultMaxStates, new(atomic.Bool))
}

func counterModel(initial map[string]int64, maxStates int, exploded *atomic.Bool) porcupine.Model {
	return setModel(spec[CounterState]{
		// Init cannot know the partition's name, so the first step loads
		// the initial value of the counter it is applied to.
		init: CounterState{fresh: true},
		step: func(s CounterState, ev *Event, out *history.Output, dst []CounterState) []CounterState {
			if s.fresh {
				s = CounterState{}
				if v, ok := initial[ev.Partition]; ok {
					s = CounterState{Value: v, Exists: true}
				}
			}
			ok, next := CounterStep(s, ev, out)
			switch {
			case !ok:
				return dst
			case (ev.Unknown || out == nil) && next != s:
				return append(dst, s, next) // it may not have taken effect
			}
			return append(dst, next)
		},
		hash: func(s CounterState) uint64 {
			h := uint64(s.Value) * 0x9e3779b97f4a7c15
			if s.Exists {
				h ^= 1
			}
			if s.fresh {
				h ^= 2
			}
			return h
		},
		compare: func(a, b CounterState) int {
			return cmp.Or(cmp.Compare(a.Value, b.Value), cmpBool(a.Exists, b.Exists), cmpBool(a.fresh, b.fresh))
		},
		describe: func(s CounterState) string {
			switch {
			case s.fresh:
				return "initial"
			case !s.Exists:
				return "absent"
			}
			return fmt.Sprint(s.Value)
		},
	}, maxStates, exploded)
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case !a:
		return -1
	}
	return 1
}

// partitionByKey splits a history of *Event operations by partition name,
// in name order.
func partitionByKey(ops []porcupine.Operation) [][]porcupine.Operation {
	byKey := map[string][]porcupine.Operation{}
	for _, o := range ops {
		k := o.Input.(*Event).Partition
		byKey[k] = append(byKey[k], o)
	}
	keys := make([]string, 0, len(byKey))
	for k := range byKey {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([][]porcupine.Operation, len(keys))
	for i, k := range keys {
		parts[i] = byKey[k]
	}
	return parts
}

func describeOperation(input, output any) string {
	ev := input.(*Event)
	op := ev.Op
	var call string
	in := &op.In
	switch op.Kind {
	case history.Add:
		call = fmt.Sprintf("add(%+d", in.Delta)
		if in.Min != nil {
			call += fmt.Sprintf(", min %d", *in.Min)
		}
		if in.Max != nil {
			call += fmt.Sprintf(", max %d", *in.Max)
		}
		call += ")"
	case history.Set:
		call = fmt.Sprintf("set(%d)", in.Value)
	case history.CAS:
		call = fmt.Sprintf("cas(%d→%d)", in.Old, in.New)
	case history.Delete:
		call = "delete()"
	case history.Get:
		call = "get()"
		if op.Index < 0 {
			call = "final get@" + op.Node + "()"
		}
	case history.Acquire:
		call = fmt.Sprintf("acquire(%q)", in.Holder)
	case history.Release:
		call = fmt.Sprintf("release(%d)", in.Token)
	case history.KeepAlive:
		call = fmt.Sprintf("keepalive(%d)", in.Token)
	case history.LockGet:
		call = "lock_get()"
	}
	if in.Fence != nil {
		call = fmt.Sprintf("fenced[%s/%d] %s", in.Fence.Lock, in.Fence.Token, call)
		if op.Kind.IsCounter() && ev.Partition == in.Fence.Lock && op.Key != in.Fence.Lock {
			call += " on " + op.Key
		}
	}
	out, _ := output.(*history.Output)
	if ev.Unknown || out == nil {
		return call + " → ?"
	}
	var res string
	switch {
	case out.Error != "":
		res = out.Error
	case op.Kind == history.Get && !out.Exists:
		res = fmt.Sprintf("%d (absent)", out.Value)
	case op.Kind == history.Get || op.Kind == history.Add:
		res = fmt.Sprint(out.Value)
	case op.Kind == history.Set || op.Kind == history.Delete:
		res = fmt.Sprintf("prev %d", out.Previous)
	case op.Kind == history.CAS && out.Swapped:
		res = "swapped"
	case op.Kind == history.CAS:
		res = fmt.Sprintf("not swapped, %d", out.Value)
	case op.Kind == history.Acquire:
		res = fmt.Sprintf("token %d", out.Token)
	case op.Kind == history.LockGet && out.Held:
		res = fmt.Sprintf("%q/%d", out.Holder, out.Token)
	case op.Kind == history.LockGet:
		res = "free"
	default:
		res = "ok"
	}
	return call + " → " + res
}

// sortOps orders porcupine operations by call time, then history index, so
// that checks are deterministic.
func sortOps(ops []porcupine.Operation) {
	slices.SortStableFunc(ops, func(a, b porcupine.Operation) int {
		return cmp.Or(cmp.Compare(a.Call, b.Call), cmp.Compare(a.Input.(*Event).Op.Index, b.Input.(*Event).Op.Index))
	})
}

// describeMetadata describes the history op behind a porcupine operation
// (its Metadata) for visualisations.
func describeMetadata(info any) string {
	op, ok := info.(*history.Op)
	if !ok {
		return ""
	}
	if op.Index < 0 {
		return fmt.Sprintf("final read on %s", op.Node)
	}
	s := fmt.Sprintf("op #%d, process %d, node %s", op.Index, op.Process, op.Node)
	if op.Outcome != history.Ok {
		s += fmt.Sprintf(", %s", op.Outcome)
		if op.Reason != "" {
			s += ": " + op.Reason
		}
	}
	return s
}
