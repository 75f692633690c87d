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
// the crashed incarnations sent stay in flight throughout. A decision is
// persisted (and reported with Engine.Persisted) some deliveries after it
// is reached, so a crash can lose it, as a replica crashing between its
// decision and the sync of its log does.
type recoverySim struct {
	t       *testing.T
	rng     *rand.Rand
	n, f    int
	eng     []*Engine
	net     []simPacket
	decided []map[int]*Value // per replica, per incarnation: its decision
	durable []map[int]*Value // per replica, per incarnation: its persisted decision
	inc     []int            // current incarnation per replica
}

// persist makes replica r's decision, if it has one, durable.
func (s *recoverySim) persist(r int) {
	v, ok := s.decided[r][s.inc[r]]
	if _, done := s.durable[r][s.inc[r]]; !ok || done {
		return
	}
	s.durable[r][s.inc[r]] = v
	s.eng[r].Persisted(0)
	s.collect(r)
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
	if r := s.rng.IntN(2 * s.n); r < s.n {
		s.persist(r)
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
	v, had := s.durable[r][s.inc[r]]
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
		s.durable = append(s.durable, map[int]*Value{})
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
		for r := range n {
			s.persist(r)
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
	// Agreement across every incarnation, the crashed ones included, on
	// every decision that was persisted (one lost in a crash was told to
	// nobody and answered no client).
	var first *Value
	seen := false
	for r := range n {
		for inc, v := range s.durable[r] {
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

// TestLateAnnouncementAfterRecovery replays one schedule step by step:
// replicas 0 and 1 decide slot 0 by their votes while replica 2 hears
// nothing; both crash before persisting the decision and restart learning
// the slot; recovery finds every replica learn-only and ends the slot null;
// then everything the crashed incarnations sent reaches replica 2. Had a
// decision been announced before it was durable, replica 2 would learn the
// lost value there while the others decided null.
func TestLateAnnouncementAfterRecovery(t *testing.T) {
	const n = 3
	a := valueFor(0, "A")
	eng := []*Engine{newTestEngine(t, 0, n), newTestEngine(t, 1, n), newTestEngine(t, 2, n)}
	decided := make([]map[int]*Value, n) // per replica, per incarnation
	inc := make([]int, n)
	for r := range decided {
		decided[r] = map[int]*Value{}
	}
	var between, toTwo []simPacket // in flight among 0 and 1; towards 2
	collect := func(r int) {
		rd := eng[r].Ready()
		for _, env := range rd.Messages {
			for to := range n {
				if to == r || (env.To != Broadcast && env.To != to) {
					continue
				}
				p := simPacket{r, to, env.Msg}
				if to == 2 || r == 2 {
					toTwo = append(toTwo, p)
				} else {
					between = append(between, p)
				}
			}
		}
		for _, d := range rd.Decisions {
			decided[r][inc[r]] = d.Value
		}
	}
	step := func(p simPacket) {
		t.Helper()
		if err := eng[p.to].Step(p.from, p.m); err != nil {
			t.Fatal(err)
		}
		collect(p.to)
	}

	for r := range 2 {
		if err := eng[r].Propose(0, a); err != nil {
			t.Fatal(err)
		}
		collect(r)
	}
	for len(between) > 0 && (decided[0][0] == nil || decided[1][0] == nil) {
		p := between[0]
		between = between[1:]
		step(p)
	}
	if !decided[0][0].Equal(a) || !decided[1][0].Equal(a) {
		t.Fatalf("replicas 0 and 1 decided %v and %v, want %v", decided[0][0], decided[1][0], a)
	}
	// Both crash before their logs are synced: the decision is lost, and
	// after the restart each only learns the slot.
	for r := range 2 {
		inc[r]++
		eng[r] = newTestEngine(t, r, n)
		if err := eng[r].Learn(0); err != nil {
			t.Fatal(err)
		}
		collect(r)
	}
	// Recovery: more than f learn-only and none decided; every replica
	// abandons the slot; all are then learn-only, and one decides null.
	for r, e := range eng {
		if st := e.State(0); r < 2 && st != SlotLearnOnly || r == 2 && st != SlotVoting {
			t.Fatalf("replica %d: state %v before recovery", r, st)
		}
	}
	for r, e := range eng {
		if err := e.Abandon(0); err != nil {
			t.Fatal(err)
		}
		if e.State(0) != SlotLearnOnly {
			t.Fatalf("replica %d: state %v after abandoning", r, e.State(0))
		}
	}
	if err := eng[0].DecideNull(0); err != nil {
		t.Fatal(err)
	}
	collect(0)
	// The late messages first, then everything else, repeating on Tick.
	for round := 0; ; round++ {
		for len(toTwo) > 0 || len(between) > 0 {
			var p simPacket
			if len(toTwo) > 0 {
				p, toTwo = toTwo[0], toTwo[1:]
			} else {
				p, between = between[0], between[1:]
			}
			step(p)
		}
		done := true
		for _, e := range eng {
			done = done && e.State(0) == SlotDecided
		}
		if done {
			break
		}
		if round == 100 {
			t.Fatal("slot 0 never decided everywhere")
		}
		for r, e := range eng {
			e.Tick()
			collect(r)
		}
	}
	// Every replica decided null; a replica that learnt the lost value
	// without its payload has decided 1 but cannot report it (Decided
	// says no).
	for r, e := range eng {
		v, ok := e.Decided(0)
		if rep, had := decided[r][inc[r]]; !ok || v != nil || !had || rep != nil {
			t.Errorf("replica %d: decided %v (known %v) after recovery ended the slot null", r, v, ok)
		}
	}
}
