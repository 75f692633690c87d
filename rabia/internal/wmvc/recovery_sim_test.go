package wmvc

import (
	"math/rand/v2"
	"testing"
)

// recoverySim runs one slot on n replicas over a randomly ordered network,
// crashes a majority partway (each restarts knowing only the decision it
// had persisted, and learns the slot), and runs the recovery of the rabia
// package on top of the engine: query every replica's part; if more than f
// only learn and none decided, every replica abandons the slot, one at a
// time amid deliveries; if all then only learn, one decides null. Messages
// the crashed incarnations sent stay in flight throughout.
type recoverySim struct {
	t       *testing.T
	rng     *rand.Rand
	n, f    int
	eng     []*Engine
	net     []simPacket
	decided []map[int]*Value // per replica, per incarnation: its decision
	inc     []int            // current incarnation per replica
}

type simPacket struct {
	from, to int
	m        Message
}

func (s *recoverySim) collect(r int) {
	rd := s.eng[r].Ready()
	for _, env := range rd.Messages {
		for to := range s.n {
			if to != r && (env.To == Broadcast || env.To == to) {
				s.net = append(s.net, simPacket{r, to, env.Msg})
			}
		}
	}
	for _, d := range rd.Decisions {
		if prev, ok := s.decided[r][s.inc[r]]; ok && !prev.Equal(d.Value) {
			s.t.Fatalf("replica %d decided twice: %v then %v", r, prev, d.Value)
		}
		s.decided[r][s.inc[r]] = d.Value
	}
}

func (s *recoverySim) deliverOne() bool {
	if len(s.net) == 0 {
		return false
	}
	i := s.rng.IntN(len(s.net))
	p := s.net[i]
	s.net[i] = s.net[len(s.net)-1]
	s.net = s.net[:len(s.net)-1]
	if err := s.eng[p.to].Step(p.from, p.m); err != nil {
		s.t.Fatal(err)
	}
	s.collect(p.to)
	return true
}

// deliverSome delivers up to k packets.
func (s *recoverySim) deliverSome(k int) {
	for range k {
		if !s.deliverOne() {
			return
		}
	}
}

func (s *recoverySim) newEngine(r int) *Engine {
	e, err := NewEngine(Config{ID: r, N: s.n, Secret: testSecret})
	if err != nil {
		s.t.Fatal(err)
	}
	return e
}

func (s *recoverySim) crash(r int) {
	v, had := s.decided[r][s.inc[r]]
	s.inc[r]++
	s.eng[r] = s.newEngine(r)
	if had { // its log holds the decision
		if err := s.eng[r].Step((r+1)%s.n, DecisionMessage(0, v)); err != nil {
			s.t.Fatal(err)
		}
	} else if err := s.eng[r].Learn(0); err != nil {
		s.t.Fatal(err)
	}
	s.collect(r)
}

func (s *recoverySim) states() (learners, decided int) {
	for _, e := range s.eng {
		switch e.State(0) {
		case SlotLearnOnly:
			learners++
		case SlotDecided:
			decided++
		}
	}
	return learners, decided
}

func runRecoverySim(t *testing.T, n int, seed uint64) (recovered bool) {
	s := &recoverySim{t: t, rng: rand.New(rand.NewPCG(seed, 7)), n: n, f: (n - 1) / 2}
	a, b := valueFor(0, "A"), valueFor(0, "B")
	for r := range n {
		s.eng = append(s.eng, s.newEngine(r))
		s.decided = append(s.decided, map[int]*Value{})
		s.inc = append(s.inc, 0)
		v := []*Value{a, a, b, nil}[s.rng.IntN(4)]
		if err := s.eng[r].Propose(0, v); err != nil {
			t.Fatal(err)
		}
		s.collect(r)
	}
	s.deliverSome(s.rng.IntN(6 * n * n))
	for _, r := range s.rng.Perm(n)[:s.f+1] {
		s.crash(r)
		s.deliverSome(s.rng.IntN(n))
	}
	// Query, amid deliveries.
	if learners, decided := s.states(); learners > s.f && decided == 0 {
		all := true
		for _, r := range s.rng.Perm(n) {
			s.deliverSome(s.rng.IntN(2 * n))
			if err := s.eng[r].Abandon(0); err != nil {
				t.Fatal(err)
			}
			all = all && s.eng[r].State(0) == SlotLearnOnly
		}
		s.deliverSome(s.rng.IntN(2 * n))
		if all {
			c := s.rng.IntN(n)
			if err := s.eng[c].DecideNull(0); err != nil {
				t.Fatal(err)
			}
			s.collect(c)
			recovered = true
		}
	}
	// Run to the end: deliver everything, then tick, until all decide.
	for round := 0; ; round++ {
		for s.deliverOne() {
		}
		if _, decided := s.states(); decided == n {
			break
		}
		if round == 1000 {
			t.Fatalf("seed %d: slot never decided on every replica (recovered %v)", seed, recovered)
		}
		for r := range n {
			s.eng[r].Tick()
			s.collect(r)
		}
	}
	// Agreement across every incarnation, the crashed ones included.
	var first *Value
	seen := false
	for r := range n {
		for inc, v := range s.decided[r] {
			if seen && !first.Equal(v) {
				t.Fatalf("seed %d: replica %d (incarnation %d) decided %v, another %v", seed, r, inc, v, first)
			}
			first, seen = v, true
		}
	}
	return recovered
}

// TestRecoveryAfterMajorityCrash checks the recovery of slots a crashed
// majority left undecided over many random schedules: every replica
// decides, all incarnations agree, and recovery is needed in some runs.
func TestRecoveryAfterMajorityCrash(t *testing.T) {
	for _, n := range []int{3, 5} {
		recovered := 0
		for seed := range uint64(400) {
			if runRecoverySim(t, n, seed) {
				recovered++
			}
		}
		if recovered == 0 {
			t.Fatalf("n=%d: no run needed recovery", n)
		}
		t.Logf("n=%d: %d of 400 runs recovered a slot", n, recovered)
	}
}
