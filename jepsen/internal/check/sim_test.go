package check

import (
	"container/heap"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// A small discrete-event simulation of clients using a correct
// (linearizable) abacus: each op takes effect at one instant inside its
// interval, so every history it produces must be judged valid. Unknown
// outcomes may take effect after the client gave up, or never.

type simConfig struct {
	seed      uint64
	clients   int
	ops       int      // per client
	counters  []string // any counter op
	addOnly   []string // adds and reads only
	locks     []string // each with a fenced counter "fenced-<lock>"
	infoRate  float64
	failRate  float64
	mayExpire bool
	// bug makes the simulated cluster misbehave: "stale-read" serves a
	// third of the reads from a state up to 300 ns old, "lost-write"
	// acknowledges its tenth non-zero add without applying it.
	bug string
}

// simPast records a counter's states over time, for stale reads.
type simPast struct {
	at    []int64
	state []CounterState
}

func (p *simPast) asOf(t int64) CounterState {
	i, _ := slices.BinarySearch(p.at, t+1)
	if i == 0 {
		return CounterState{}
	}
	return p.state[i-1]
}

type simEvent struct {
	at     int64
	seq    int
	apply  bool // take effect (else: return to the client)
	client int
	op     int // index into ops
}

type simQueue []simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type simLock struct {
	held   bool
	token  uint64
	holder string
	last   uint64
}

func simulate(cfg simConfig) (*history.History, []FinalRead) {
	rng := rand.New(rand.NewPCG(cfg.seed, 42))
	counters := map[string]*CounterState{}
	past := map[string]*simPast{}
	okAdds := 0
	locks := map[string]*simLock{}
	for _, l := range cfg.locks {
		locks[l] = &simLock{}
	}
	mine := make([]map[string]uint64, cfg.clients) // tokens each client believes it holds
	done := make([]int, cfg.clients)
	h := &history.History{}
	var q simQueue
	seq := 0
	push := func(e simEvent) { e.seq = seq; seq++; heap.Push(&q, e) }
	applied := map[int]bool{} // ops whose effect is still to come or came

	// call starts client c's next op at time t.
	call := func(c int, t int64) {
		if done[c] == cfg.ops {
			return
		}
		done[c]++
		op := history.Op{Index: len(h.Ops), Process: c, Node: fmt.Sprintf("n%d", 1+rng.IntN(3)), Call: t, Outcome: history.Ok}
		r := rng.Float64()
		var keys []string
		keys = append(keys, cfg.counters...)
		keys = append(keys, cfg.addOnly...)
		keys = append(keys, cfg.locks...)
		key := keys[rng.IntN(len(keys))]
		op.Key = key
		switch {
		case locks[key] != nil:
			if tok, ok := mine[c][key]; ok {
				switch {
				case r < 0.6:
					op.Kind, op.Key = history.Add, "fenced-"+key
					op.In = history.Input{Delta: 1, Fence: &history.Fence{Lock: key, Token: tok}}
				case r < 0.7:
					op.Kind, op.In.Token = history.KeepAlive, tok
				default:
					op.Kind, op.In.Token = history.Release, tok
				}
			} else if r < 0.85 {
				op.Kind, op.In = history.Acquire, history.Input{Holder: fmt.Sprintf("c%d", c), TTLMillis: 1000}
			} else {
				op.Kind = history.LockGet
			}
		case contains(cfg.addOnly, key):
			if r < 0.6 {
				op.Kind, op.In.Delta = history.Add, rng.Int64N(11)-3
			} else {
				op.Kind = history.Get
			}
		default:
			switch {
			case r < 0.3:
				op.Kind, op.In.Delta = history.Add, rng.Int64N(5)-2
				if rng.IntN(4) == 0 {
					op.In.Min, op.In.Max = history.Int64(-3), history.Int64(3)
				}
			case r < 0.45:
				op.Kind, op.In.Value = history.Set, rng.Int64N(4)
			case r < 0.6:
				op.Kind, op.In.Old, op.In.New = history.CAS, rng.Int64N(4), rng.Int64N(4)
			case r < 0.65:
				op.Kind = history.Delete
			default:
				op.Kind = history.Get
			}
		}
		lin := t + 1 + rng.Int64N(100)
		ret := lin + 1 + rng.Int64N(100)
		switch x := rng.Float64(); {
		case x < cfg.failRate:
			op.Outcome, op.Reason = history.Fail, "503"
		case x < cfg.failRate+cfg.infoRate:
			op.Outcome, op.Reason = history.Info, "timeout"
			if rng.IntN(2) == 0 {
				lin = t + 1 + rng.Int64N(400) // may take effect after the client gave up
				applied[op.Index] = true
			}
		default:
			applied[op.Index] = true
		}
		op.Return = ret
		h.Ops = append(h.Ops, op)
		if applied[op.Index] {
			push(simEvent{at: lin, apply: true, client: c, op: op.Index})
		}
		push(simEvent{at: ret, client: c, op: op.Index})
	}

	for c := range cfg.clients {
		mine[c] = map[string]uint64{}
		call(c, rng.Int64N(50))
	}
	for q.Len() > 0 {
		e := heap.Pop(&q).(simEvent)
		op := &h.Ops[e.op]
		if !e.apply {
			if op.Outcome == history.Ok {
				learn(mine[e.client], op)
			} else if op.Kind == history.Release || op.Kind == history.Acquire {
				delete(mine[e.client], op.Key) // unsure: act as if not holding
			}
			call(e.client, op.Return+1+rng.Int64N(30))
			continue
		}
		var out history.Output
		if op.Kind.IsLock() || op.Fenced() {
			lk := op.Key
			if op.Fenced() {
				lk = op.In.Fence.Lock
			}
			l := locks[lk]
			if cfg.mayExpire && l.held && rng.IntN(8) == 0 {
				l.held = false // the holder's lease expired
			}
			out = applyLock(l, op, rng)
		}
		if op.Kind.IsCounter() && out.Error == "" {
			s := counters[op.Key]
			if s == nil {
				s = &CounterState{}
				counters[op.Key] = s
				past[op.Key] = &simPast{}
			}
			before := *s
			out = applyCounter(s, op)
			switch {
			case cfg.bug == "stale-read" && op.Kind == history.Get && rng.IntN(3) == 0:
				old := past[op.Key].asOf(e.at - rng.Int64N(300))
				out = history.Output{Value: old.Value, Exists: old.Exists}
			case cfg.bug == "lost-write" && op.Kind == history.Add && op.Outcome == history.Ok && out.Error == "" && op.In.Delta != 0:
				if okAdds++; okAdds == 10 {
					*s = before // acknowledged, never applied
				}
			}
			if *s != before {
				past[op.Key].at = append(past[op.Key].at, e.at)
				past[op.Key].state = append(past[op.Key].state, *s)
			}
		}
		if op.Outcome == history.Ok {
			op.Out = out
		}
	}
	var finals []FinalRead
	for k, s := range counters {
		for _, n := range []string{"n1", "n2", "n3"} {
			finals = append(finals, FinalRead{Node: n, Key: k, Value: s.Value, Exists: s.Exists})
		}
	}
	return h, finals
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// learn updates a client's belief about the locks it holds from an op's
// answer.
func learn(mine map[string]uint64, op *history.Op) {
	switch {
	case op.Kind == history.Acquire && op.Out.Error == "":
		mine[op.Key] = op.Out.Token
	case op.Kind == history.Release || op.Kind == history.KeepAlive && op.Out.Error != "":
		delete(mine, op.Key)
	case op.Fenced() && op.Out.Error == history.CodeStaleToken:
		delete(mine, op.In.Fence.Lock)
	}
}

func applyLock(l *simLock, op *history.Op, rng *rand.Rand) history.Output {
	switch op.Kind {
	case history.Acquire:
		if l.held {
			return history.Output{Error: history.CodeLockHeld, Holder: l.holder}
		}
		l.last += 1 + uint64(rng.IntN(3))
		l.held, l.token, l.holder = true, l.last, op.In.Holder
		return history.Output{Token: l.token}
	case history.Release, history.KeepAlive:
		if !l.held || l.token != op.In.Token {
			return history.Output{Error: history.CodeStaleToken}
		}
		if op.Kind == history.Release {
			l.held = false
		}
		return history.Output{}
	case history.LockGet:
		if !l.held {
			return history.Output{}
		}
		return history.Output{Held: true, Holder: l.holder, Token: l.token}
	}
	if !l.held || l.token != op.In.Fence.Token { // fenced write
		return history.Output{Error: history.CodeStaleToken}
	}
	return history.Output{}
}

func applyCounter(s *CounterState, op *history.Op) history.Output {
	switch op.Kind {
	case history.Get:
		return history.Output{Value: s.Value, Exists: s.Exists}
	case history.Add:
		total, code := addResult(s.Value, &op.In)
		if code != "" {
			return history.Output{Error: code}
		}
		*s = CounterState{Value: total, Exists: true}
		return history.Output{Value: total}
	case history.Set:
		prev := s.Value
		*s = CounterState{Value: op.In.Value, Exists: true}
		return history.Output{Value: op.In.Value, Previous: prev}
	case history.CAS:
		if s.Value != op.In.Old {
			return history.Output{Value: s.Value}
		}
		*s = CounterState{Value: op.In.New, Exists: true}
		return history.Output{Swapped: true, Value: op.In.New}
	}
	prev := s.Value // delete
	*s = CounterState{}
	return history.Output{Previous: prev}
}

func TestSimulatedHistoriesAreValid(t *testing.T) {
	for seed := range uint64(24) {
		cfg := simConfig{
			seed: seed, clients: 5, ops: 40,
			counters: []string{"a", "b"}, addOnly: []string{"n"}, locks: []string{"L"},
			infoRate: 0.05 + 0.05*float64(seed%4), failRate: 0.05, mayExpire: seed%2 == 0,
		}
		t.Run(fmt.Sprintf("seed%d-expire%v", seed, cfg.mayExpire), func(t *testing.T) {
			h, finals := simulate(cfg)
			if err := h.Validate(); err != nil {
				t.Fatal(err)
			}
			v := Run(context.Background(), Input{History: h, FinalReads: finals,
				NodeStates: []NodeState{{"n1", "s"}, {"n2", "s"}, {"n3", "s"}}},
				Options{Timeout: 20 * time.Second, StrictLocks: !cfg.mayExpire})
			if v.Status != StatusValid {
				for _, c := range v.Checks {
					t.Logf("%s: %s %s %+v", c.Name, c.Status, c.Detail, c.Violations)
				}
				t.Fatalf("simulated correct run judged %s", v.String())
			}
		})
	}
}

func TestSimulatedCorruptionsAreCaught(t *testing.T) {
	cfg := simConfig{seed: 7, clients: 4, ops: 40, addOnly: []string{"n"}, counters: []string{"a"},
		locks: []string{"L"}, infoRate: 0.05, failRate: 0.05}
	corrupt := []struct {
		name   string
		mutate func(h *history.History) bool // false: nothing to corrupt
		checks []string
	}{
		{"add-only read off by a lot", func(h *history.History) bool {
			for i := range h.Ops {
				if op := &h.Ops[i]; op.Key == "n" && op.Kind == history.Get && op.Outcome == history.Ok {
					op.Out.Value += 1_000_003
					return true
				}
			}
			return false
		}, []string{NameLinearizable, NameCounterBounds}},
		{"add applied twice in its reply", func(h *history.History) bool {
			for i := range h.Ops {
				if op := &h.Ops[i]; op.Key == "a" && op.Kind == history.Add && op.Outcome == history.Ok && op.Out.Error == "" && op.In.Delta != 0 {
					op.Out.Value += op.In.Delta
					return true
				}
			}
			return false
		}, []string{NameLinearizable}},
		{"token reissued", func(h *history.History) bool {
			var first *history.Op
			for i := range h.Ops {
				op := &h.Ops[i]
				if op.Kind != history.Acquire || op.Outcome != history.Ok || op.Out.Error != "" {
					continue
				}
				if first == nil {
					first = op
				} else if op.Call > first.Return && op.In.Holder != first.In.Holder {
					op.Out.Token = first.Out.Token
					return true
				}
			}
			return false
		}, []string{NameLinearizable, NameLocks}},
	}
	for _, tt := range corrupt {
		t.Run(tt.name, func(t *testing.T) {
			h, finals := simulate(cfg)
			if !tt.mutate(h) {
				t.Fatal("the simulated history has nothing to corrupt; change the seed")
			}
			v := Run(context.Background(), Input{History: h, FinalReads: finals}, Options{Timeout: 20 * time.Second})
			for _, name := range tt.checks {
				if c := v.Check(name); c.Status != StatusInvalid {
					t.Errorf("%s: %s (%s)", name, c.Status, c.Detail)
				}
			}
		})
	}
}

func TestSimulatedBuggyClustersAreCaught(t *testing.T) {
	tests := []struct {
		bug      string
		checks   []string // each must find the bug in every seed
		infoRate float64
	}{
		{"stale-read", []string{NameLinearizable, NameCounterBounds}, 0.05},
		// Unknown adds would widen the final range enough to hide a lost one.
		{"lost-write", []string{NameLinearizable, NameLostWrites}, 0},
	}
	for _, tt := range tests {
		for seed := range uint64(6) {
			t.Run(fmt.Sprintf("%s-seed%d", tt.bug, seed), func(t *testing.T) {
				h, finals := simulate(simConfig{seed: seed, clients: 5, ops: 60, addOnly: []string{"n"},
					infoRate: tt.infoRate, failRate: 0.05, bug: tt.bug})
				v := Run(context.Background(), Input{History: h, FinalReads: finals}, Options{Timeout: 20 * time.Second})
				for _, name := range tt.checks {
					if c := v.Check(name); c.Status != StatusInvalid {
						t.Errorf("%s: %s (%s)", name, c.Status, c.Detail)
					}
				}
			})
		}
	}
}

func BenchmarkLinearizable(b *testing.B) {
	h, finals := simulate(simConfig{seed: 1, clients: 10, ops: 300, counters: []string{"a", "b", "c"},
		addOnly: []string{"n"}, locks: []string{"L"}, infoRate: 0.02, failRate: 0.02})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res := Linearizable(context.Background(), h, finals, nil, Options{}); res.Status != StatusValid {
			b.Fatalf("status %s: %s", res.Status, res.Detail)
		}
	}
	b.ReportMetric(float64(len(h.Ops)), "ops/history")
}

func BenchmarkCounterBounds(b *testing.B) {
	h, _ := simulate(simConfig{seed: 2, clients: 20, ops: 5000, addOnly: []string{"n", "m"}, infoRate: 0.02, failRate: 0.02})
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if res := CounterBounds(context.Background(), h, nil, Options{}); res.Status != StatusValid {
			b.Fatalf("status %s: %s", res.Status, res.Detail)
		}
	}
	b.ReportMetric(float64(len(h.Ops)), "ops/history")
}
