package abacus

// The state machine's main tests: a reference model of counter operations,
// and determinism across replicas, snapshots and restores.

import (
	"bytes"
	"fmt"
	"maps"
	"math"
	"math/big"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
	"time"
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

// gen produces random but reproducible proposals covering every operation,
// including invalid ones, failing batches, retries and stale clocks.
type fsmGen struct {
	rng     *rand.Rand
	now     int64
	leases  uint64 // leases granted so far, as far as the generator knows
	tokens  uint64 // a guess at the highest token issued
	opened  uint64 // sessions opened so far: the last id issued
	clients []fsmGenClient
	sent    []Proposal // earlier session and keyed proposals, for retries
}

type fsmGenClient struct {
	id, next, ack uint64
}

func newFSMGen(seed uint64) *fsmGen {
	return &fsmGen{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), now: int64(time.Hour)}
}

var fsmGenNames = []string{"a", "b", "c", "d", "e"}

func (g *fsmGen) name() string { return fsmGenNames[g.rng.IntN(len(fsmGenNames))] }
func (g *fsmGen) lock() string { return []string{"l1", "l2", "l3"}[g.rng.IntN(3)] }

func (g *fsmGen) delta() int64 {
	switch g.rng.IntN(10) {
	case 0:
		return math.MaxInt64 - g.rng.Int64N(3)
	case 1:
		return math.MinInt64 + g.rng.Int64N(3)
	default:
		return g.rng.Int64N(21) - 10
	}
}

func (g *fsmGen) lease() uint64 {
	if g.leases == 0 || g.rng.IntN(10) == 0 {
		return g.leases + 1 // unknown yet
	}
	return 1 + g.rng.Uint64N(g.leases)
}

func (g *fsmGen) ttl() time.Duration {
	return time.Duration(1+g.rng.IntN(20)) * time.Second
}

func (g *fsmGen) counterOp() Command {
	c := Command{Name: g.name()}
	switch g.rng.IntN(10) {
	case 0:
		c.Op = OpGet
	case 1, 2, 3, 4:
		c.Op = OpAdd
		c.Delta = g.delta()
		if g.rng.IntN(3) == 0 {
			c.Flags |= FlagMin
			c.Min = g.rng.Int64N(10) - 15
		}
		if g.rng.IntN(3) == 0 {
			c.Flags |= FlagMax
			c.Max = g.rng.Int64N(10) + 5
		}
		if g.rng.IntN(5) == 0 {
			c.TTL = g.ttl()
		}
	case 5, 6:
		c.Op = OpSet
		c.Value = g.delta()
	case 7, 8:
		c.Op = OpCompareAndSet
		c.Old = g.rng.Int64N(5)
		c.Value = g.delta()
	default:
		c.Op = OpDelete
	}
	if c.Op != OpGet && g.rng.IntN(8) == 0 {
		c.FenceLock, c.FenceToken = g.lock(), 1+g.rng.Uint64N(g.tokens+2)
	}
	if g.rng.IntN(4) == 0 {
		c.Instance = g.lease()
	}
	return c
}

func (g *fsmGen) command() Command {
	switch n := g.rng.IntN(100); {
	case n < 40:
		return g.counterOp()
	case n < 50:
		k := 1 + g.rng.IntN(5)
		c := Command{Op: OpBatch}
		for range k {
			c.Ops = append(c.Ops, g.counterOp())
		}
		return c
	case n < 52:
		return Command{Op: OpTick}
	case n < 60:
		g.leases++
		return Command{Op: OpLeaseGrant, TTL: g.ttl()}
	case n < 66:
		return Command{Op: OpLeaseKeepAlive, Lease: g.lease()}
	case n < 69:
		return Command{Op: OpLeaseRevoke, Lease: g.lease()}
	case n < 71:
		return Command{Op: OpLeaseGet, Lease: g.lease()}
	case n < 82:
		c := Command{Op: OpLockAcquire, Name: g.lock(), Lease: g.lease(), Holder: []string{"p", "q", "r"}[g.rng.IntN(3)]}
		if g.rng.IntN(2) == 0 {
			c.Flags = FlagWait
		}
		if g.rng.IntN(3) == 0 {
			c.Delay = time.Duration(g.rng.IntN(5)) * time.Second
		}
		g.tokens++
		return c
	case n < 92:
		c := Command{Op: OpLockRelease, Name: g.lock()}
		if g.rng.IntN(2) == 0 {
			c.Token = 1 + g.rng.Uint64N(g.tokens+1)
		} else {
			c.Lease = g.lease()
		}
		return c
	case n < 94:
		return Command{Op: OpLockGet, Name: g.lock()}
	default: // invalid
		return []Command{
			{Op: OpAdd},
			{Op: OpBatch},
			{Op: OpLeaseGrant},
			{Op: Op(200), Name: "a"},
			{Op: OpBatch, Ops: []Command{{Op: OpLeaseGrant, TTL: time.Second}}},
		}[g.rng.IntN(5)]
	}
}

func (g *fsmGen) proposal() Proposal {
	// Time mostly moves forward; sometimes a proposer's clock lags.
	switch g.rng.IntN(10) {
	case 0:
		g.now -= int64(g.rng.IntN(3)) * int64(time.Second)
	case 1, 2, 3:
		g.now += int64(g.rng.IntN(4000)) * int64(time.Millisecond)
	default:
		g.now += int64(g.rng.IntN(50)) * int64(time.Millisecond)
	}
	p := Proposal{Time: g.now}
	if len(g.clients) == 0 || g.rng.IntN(80) == 0 {
		// A new session: opens are never retried here, so the ids issued
		// are 1, 2, 3... in order. Old ones are dropped now and then, and
		// some are forgotten by the state machine meanwhile.
		g.opened++
		g.clients = append(g.clients, fsmGenClient{id: g.opened, next: 1, ack: 1})
		if len(g.clients) > 3 {
			g.clients = g.clients[1:]
		}
		p.Cmd = Command{Op: OpSessionOpen}
		return p
	}
	switch r := g.rng.IntN(10); {
	case r < 2 && len(g.sent) > 0:
		// A retry of an earlier proposal, possibly stale or out of order.
		p = g.sent[len(g.sent)-1-g.rng.IntN(min(len(g.sent), 20))]
		p.Time = g.now
		return p
	case r < 7:
		c := &g.clients[g.rng.IntN(len(g.clients))]
		p.Client = c.id
		p.Seq = c.next + g.rng.Uint64N(3) // sometimes skips ahead (out of order)
		c.next = max(c.next, p.Seq) + 1
		if g.rng.IntN(3) == 0 && c.ack < c.next {
			c.ack += g.rng.Uint64N(c.next - c.ack)
		}
		p.Ack = c.ack
		if g.rng.IntN(200) == 0 {
			p.Seq += 1 << 20 // far outside the window
		}
		p.Cmd = g.command()
		g.sent = append(g.sent, p)
		return p
	case r < 8:
		// A keyed write, from a small pool of keys so that some repeat.
		p.Key = KeyIDOf(fmt.Sprintf("key-%d", g.rng.IntN(40)))
		p.Cmd = g.command()
		g.sent = append(g.sent, p)
		return p
	}
	p.Cmd = g.command()
	return p
}

func (g *fsmGen) entry() []Proposal {
	props := make([]Proposal, 1+g.rng.IntN(4))
	for i := range props {
		props[i] = g.proposal()
	}
	return props
}

// fsmGenOptions are small bounds, so that random logs reach them.
var fsmGenOptions = FSMOptions{
	SessionTTL: 30 * time.Second, SessionWindow: 64, MaxSessions: 4, MaxResults: 128,
	KeyTTL: 20 * time.Second, MaxKeys: 12, MaxCounters: 4, MaxLocks: 3,
}

// TestFSMDeterminism applies the same random log to three replicas: a, b,
// and c, which is restored from b's snapshot half way. Every result, every
// observer event, the snapshot bytes and the hash must agree.
func TestFSMDeterminism(t *testing.T) {
	opts := fsmGenOptions
	for seed := uint64(1); seed <= 12; seed++ {
		g := newFSMGen(seed)
		const entries = 1500
		log := make([][]Proposal, entries)
		for i := range log {
			log[i] = g.entry()
		}
		obsA, obsB, obsC := &fsmRecorder{}, &fsmRecorder{}, &fsmRecorder{}
		a, b := NewFSM(opts, obsA), NewFSM(opts, obsB)
		var c *FSM
		for i, props := range log {
			index := uint64(i + 1)
			ra := a.Apply(index, slices.Clone(props))
			rb := b.Apply(index, slices.Clone(props))
			if !reflect.DeepEqual(ra, rb) {
				t.Fatalf("seed %d entry %d: results differ:\n%+v\n%+v", seed, i, ra, rb)
			}
			if c != nil {
				rc := c.Apply(index, slices.Clone(props))
				if !reflect.DeepEqual(ra, rc) {
					t.Fatalf("seed %d entry %d: restored replica's results differ:\n%+v\n%+v\nproposals %+v", seed, i, ra, rc, props)
				}
			}
			if i == entries/2 {
				c = cloneFSM(t, b, opts, obsC)
				obsA.take()
				obsC.take() // the restore's own events (TestFSMRestoreNotifiesObserver)
			}
			if c != nil && i%100 == 0 {
				if ha, hc := fsmMustHash(t, a), fsmMustHash(t, c); ha != hc {
					t.Fatalf("seed %d entry %d: hashes differ", seed, i)
				}
			}
		}
		sa, sb, sc := fsmSnapshotBytes(t, a), fsmSnapshotBytes(t, b), fsmSnapshotBytes(t, c)
		if !bytes.Equal(sa, sb) || !bytes.Equal(sa, sc) {
			t.Fatalf("seed %d: snapshots differ (%d, %d, %d bytes)", seed, len(sa), len(sb), len(sc))
		}
		if fsmMustHash(t, a) != fsmMustHash(t, c) {
			t.Fatalf("seed %d: hashes differ", seed)
		}
		if !slices.Equal(obsA.events, obsC.events) {
			t.Fatalf("seed %d: observers differ after the restore:\n%q\n%q", seed, obsA.events, obsC.events)
		}
		if !slices.Equal(obsB.events[len(obsB.events)-len(obsC.events):], obsC.events) {
			t.Fatalf("seed %d: restored replica's observer differs", seed)
		}
		sta, stc := a.Stats(), c.Stats()
		sta.Timers, stc.Timers = 0, 0 // stale timer entries are not state
		if sta != stc {
			t.Fatalf("seed %d: stats differ: %v vs %v", seed, sta, stc)
		}
		// The log must have exercised what it is meant to.
		if s := a.Stats(); s.Ops == 0 || s.NextToken == 0 || seed == 1 && testing.Verbose() {
			t.Logf("seed %d: %v", seed, s)
		}
	}
}

// TestFSMDeterminismCoverage checks the generator reaches the interesting
// outcomes, so TestFSMDeterminism is not comparing trivial runs.
func TestFSMDeterminismCoverage(t *testing.T) {
	opts := fsmGenOptions
	seen := map[Code]int{}
	var swapped, batches, tokens int
	obs := &fsmRecorder{}
	for seed := uint64(1); seed <= 4; seed++ {
		g := newFSMGen(seed)
		f := NewFSM(opts, obs)
		for i := range 1500 {
			props := g.entry()
			for j, r := range f.Apply(uint64(i+1), props) {
				seen[r.Code]++
				if r.Swapped {
					swapped++
				}
				if r.Code == CodeOK && props[j].Cmd.Op == OpBatch {
					batches++
				}
				if r.Token != 0 {
					tokens++
				}
			}
		}
	}
	for code := CodeOK; code < codeLimit; code++ {
		if seen[code] == 0 {
			t.Errorf("no result with code %v", code)
		}
	}
	if swapped == 0 || batches == 0 || tokens == 0 {
		t.Errorf("swapped=%d batches=%d tokens=%d", swapped, batches, tokens)
	}
	if len(obs.matching("lease-ended")) == 0 || len(obs.matching("counter")) == 0 {
		t.Error("observer saw no lease ends or counter changes")
	}
}

// TestFSMSnapshotConcurrentWrite encodes a snapshot while applies continue:
// the bytes are those of the state when Snapshot was called.
func TestFSMSnapshotConcurrentWrite(t *testing.T) {
	g := newFSMGen(99)
	f := NewFSM(FSMOptions{}, nil)
	index := uint64(0)
	for range 500 {
		index++
		f.Apply(index, g.entry())
	}
	want := fsmMustHash(t, f)
	snap := f.Snapshot()
	done := make(chan []byte)
	go func() {
		var buf bytes.Buffer
		if _, err := snap.WriteTo(&buf); err != nil {
			t.Errorf("WriteTo: %v", err)
		}
		done <- buf.Bytes()
	}()
	for range 500 {
		index++
		f.Apply(index, g.entry())
	}
	b := <-done
	r := NewFSM(FSMOptions{}, nil)
	if err := r.Restore(bytes.NewReader(b)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if got := fsmMustHash(t, r); got != want {
		t.Fatal("snapshot encoded during applies differs from the state it was taken of")
	}
	if snap.Index() != 500 {
		t.Fatalf("snapshot index %d, want 500", snap.Index())
	}
}

// TestFSMFailuresChangeNothing applies random commands of every kind and
// checks that each one refused with an error code left the state exactly as
// it was: no partial batch, no stray lock record, no moved counter.
func TestFSMFailuresChangeNothing(t *testing.T) {
	for seed := uint64(1); seed <= 2; seed++ {
		g := newFSMGen(seed)
		f := NewFSM(FSMOptions{}, nil)
		index := uint64(0)
		failures := 0
		for range 1500 {
			for _, p := range g.entry() {
				index++
				f.Apply(index, []Proposal{{Time: p.Time, Cmd: Command{Op: OpTick}}})
				before := fsmMustHash(t, f)
				// Index 0 keeps the applied index; the time is already reached.
				r := f.Apply(0, []Proposal{{Time: f.Now(), Cmd: p.Cmd}})[0]
				if r.Code == CodeOK {
					continue
				}
				failures++
				if fsmMustHash(t, f) != before {
					t.Fatalf("seed %d: %+v failed with %v and changed the state", seed, p.Cmd, r.Code)
				}
			}
		}
		if failures < 100 {
			t.Fatalf("seed %d: only %d failures exercised", seed, failures)
		}
	}
}
