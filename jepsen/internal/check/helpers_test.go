package check

import (
	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// Builders for hand-written histories. Each returns an op; hist numbers
// them. Process ids come from the p argument; times are [call, ret].

func hist(ops ...history.Op) *history.History {
	h := &history.History{Ops: ops}
	for i := range h.Ops {
		h.Ops[i].Index = i
		if h.Ops[i].Node == "" {
			h.Ops[i].Node = "n1"
		}
	}
	return h
}

func mk(p int, kind history.Kind, key string, call, ret int64) history.Op {
	return history.Op{Process: p, Kind: kind, Key: key, Call: call, Return: ret, Outcome: history.Ok}
}

func add(p int, key string, delta int64, call, ret, value int64) history.Op {
	op := mk(p, history.Add, key, call, ret)
	op.In.Delta, op.Out.Value = delta, value
	return op
}

// addRefused is an add the cluster refused with code.
func addRefused(p int, key string, delta int64, call, ret int64, code string) history.Op {
	op := mk(p, history.Add, key, call, ret)
	op.In.Delta, op.Out.Error = delta, code
	return op
}

func bounded(op history.Op, lo, hi *int64) history.Op {
	op.In.Min, op.In.Max = lo, hi
	return op
}

func info(op history.Op) history.Op {
	op.Outcome, op.Out, op.Reason = history.Info, history.Output{}, "timeout"
	return op
}

func fail(op history.Op) history.Op {
	op.Outcome, op.Out, op.Reason = history.Fail, history.Output{}, "503 unavailable"
	return op
}

func get(p int, key string, call, ret, value int64) history.Op {
	op := mk(p, history.Get, key, call, ret)
	op.Out.Value, op.Out.Exists = value, true
	return op
}

func getAbsent(p int, key string, call, ret int64) history.Op {
	return mk(p, history.Get, key, call, ret)
}

func set(p int, key string, value int64, call, ret, prev int64) history.Op {
	op := mk(p, history.Set, key, call, ret)
	op.In.Value, op.Out.Value, op.Out.Previous = value, value, prev
	return op
}

func cas(p int, key string, old, new int64, call, ret int64, swapped bool, value int64) history.Op {
	op := mk(p, history.CAS, key, call, ret)
	op.In.Old, op.In.New, op.Out.Swapped, op.Out.Value = old, new, swapped, value
	return op
}

func del(p int, key string, call, ret, prev int64) history.Op {
	op := mk(p, history.Delete, key, call, ret)
	op.Out.Previous = prev
	return op
}

func acquire(p int, lock, holder string, call, ret int64, token uint64) history.Op {
	op := mk(p, history.Acquire, lock, call, ret)
	op.In.Holder, op.In.TTLMillis, op.Out.Token = holder, 2000, token
	return op
}

func acquireHeld(p int, lock, holder string, call, ret int64) history.Op {
	op := mk(p, history.Acquire, lock, call, ret)
	op.In.Holder, op.In.TTLMillis, op.Out.Error = holder, 2000, history.CodeLockHeld
	return op
}

func withError(op history.Op, code string) history.Op {
	op.Out.Error = code
	return op
}

func release(p int, lock string, token uint64, call, ret int64, code string) history.Op {
	op := mk(p, history.Release, lock, call, ret)
	op.In.Token, op.Out.Error = token, code
	return op
}

func lockGet(p int, lock string, call, ret int64, holder string, token uint64) history.Op {
	op := mk(p, history.LockGet, lock, call, ret)
	op.Out.Held, op.Out.Holder, op.Out.Token = holder != "", holder, token
	return op
}

// fenced guards a counter write with lock/token; refused marks it refused
// with stale_token.
func fenced(op history.Op, lock string, token uint64, refused bool) history.Op {
	op.In.Fence = &history.Fence{Lock: lock, Token: token}
	if refused {
		op.Out = history.Output{Error: history.CodeStaleToken}
	}
	return op
}
