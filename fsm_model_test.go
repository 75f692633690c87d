package abacus

import (
	"fmt"
	"maps"
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// model is an independent reference for counter operations: a plain map,
// with arithmetic range checks done in math/big rather than by the
// overflow tests the FSM uses.
type counterModel map[string]int64

var (
	modelBigMax = big.NewInt(math.MaxInt64)
	modelBigMin = big.NewInt(math.MinInt64)
)

type counterModelResult struct {
	code     Code
	value    int64
	previous int64
	exists   bool
	swapped  bool
}

// apply runs one counter operation against m (a batch's scratch copy or
// the model itself) and reports the outcome the FSM must give.
func (m counterModel) apply(c Command) counterModelResult {
	cur, ok := m[c.Name]
	switch c.Op {
	case OpGet:
		return counterModelResult{value: cur, exists: ok}
	case OpAdd:
		sum := new(big.Int).Add(big.NewInt(cur), big.NewInt(c.Delta))
		if sum.Cmp(modelBigMax) > 0 {
			return counterModelResult{code: CodeOverflow}
		}
		if sum.Cmp(modelBigMin) < 0 {
			return counterModelResult{code: CodeUnderflow}
		}
		v := sum.Int64()
		if c.Flags&FlagMin != 0 && v < c.Min || c.Flags&FlagMax != 0 && v > c.Max {
			return counterModelResult{code: CodeOutOfRange}
		}
		m[c.Name] = v
		return counterModelResult{value: v, exists: true}
	case OpSet:
		m[c.Name] = c.Value
		return counterModelResult{value: c.Value, previous: cur, exists: true}
	case OpCompareAndSet:
		if cur != c.Old {
			return counterModelResult{value: cur, exists: ok}
		}
		m[c.Name] = c.Value
		return counterModelResult{value: c.Value, previous: cur, exists: true, swapped: true}
	case OpDelete:
		delete(m, c.Name)
		return counterModelResult{previous: cur}
	}
	panic("model: unexpected op " + c.Op.String())
}

// batch applies ops all or nothing; on failure it returns the code and the
// failing index and leaves m untouched.
func (m counterModel) batch(ops []Command) ([]counterModelResult, Code, int) {
	scratch := maps.Clone(m)
	out := make([]counterModelResult, len(ops))
	for i, op := range ops {
		r := scratch.apply(op)
		if r.code == CodeOK && op.Op == OpCompareAndSet && !r.swapped {
			r.code = CodeMismatch
		}
		if r.code != CodeOK {
			return nil, r.code, i
		}
		out[i] = r
	}
	clear(m)
	maps.Copy(m, scratch)
	return out, CodeOK, -1
}

func checkModelResult(t *testing.T, where string, op Command, got Result, want counterModelResult) {
	t.Helper()
	if got.Code != want.code {
		t.Fatalf("%s: %s %q: code %v, want %v", where, op.Op, op.Name, got.Code, want.code)
	}
	if want.code != CodeOK {
		return
	}
	if got.Value != want.value || got.Exists != want.exists || got.Swapped != want.swapped ||
		(op.Op == OpSet || op.Op == OpDelete || op.Op == OpCompareAndSet && want.swapped) && got.Previous != want.previous {
		t.Fatalf("%s: %+v: got %+v, want %+v", where, op, got, want)
	}
}

func TestFSMModel(t *testing.T) {
	names := []string{"a", "b", "c"}
	for seed := uint64(1); seed <= 10; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		interesting := []int64{0, 1, -1, 2, math.MaxInt64, math.MinInt64, math.MaxInt64 - 1, math.MinInt64 + 1}
		val := func() int64 {
			if rng.IntN(3) == 0 {
				return interesting[rng.IntN(len(interesting))]
			}
			return rng.Int64N(11) - 5
		}
		op := func() Command {
			c := Command{Name: names[rng.IntN(len(names))]}
			switch rng.IntN(8) {
			case 0:
				c.Op = OpGet
			case 1, 2, 3:
				c.Op, c.Delta = OpAdd, val()
				if rng.IntN(3) == 0 {
					c.Flags |= FlagMin
					c.Min = val()
				}
				if rng.IntN(3) == 0 {
					c.Flags |= FlagMax
					c.Max = val()
				}
				if c.Flags == FlagMin|FlagMax && c.Min > c.Max {
					c.Min, c.Max = c.Max, c.Min
				}
			case 4:
				c.Op, c.Value = OpSet, val()
			case 5, 6:
				c.Op, c.Old, c.Value = OpCompareAndSet, val(), val()
			default:
				c.Op = OpDelete
			}
			return c
		}

		h := newFSMHarness(t, FSMOptions{})
		m := counterModel{}
		for step := range 2000 {
			where := fmt.Sprintf("seed %d step %d", seed, step)
			if rng.IntN(4) == 0 {
				ops := make([]Command, 1+rng.IntN(6))
				for i := range ops {
					ops[i] = op()
				}
				cmd := Command{Op: OpBatch, Ops: ops}
				got := h.do(cmd)
				want, code, index := m.batch(ops)
				if got.Code != code || got.Index != index {
					t.Fatalf("%s: batch %+v: code %v at %d, want %v at %d", where, ops, got.Code, got.Index, code, index)
				}
				if code == CodeOK {
					if len(got.Results) != len(ops) {
						t.Fatalf("%s: %d batch results", where, len(got.Results))
					}
					for i := range ops {
						checkModelResult(t, where, ops[i], got.Results[i], want[i])
					}
				}
			} else {
				c := op()
				checkModelResult(t, where, c, h.do(c), m.apply(c))
			}
			for _, n := range names {
				v, ok := h.value(n)
				mv, mok := m[n]
				if v != mv || ok != mok {
					t.Fatalf("%s: %s = %d,%v, model %d,%v", where, n, v, ok, mv, mok)
				}
			}
		}
	}
}
