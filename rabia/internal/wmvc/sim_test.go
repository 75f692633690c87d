package wmvc

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// The simulated network: a seeded scheduler delivers in-flight packets in
// random order, loses and duplicates some, ticks replicas (the only way lost
// messages come back), crashes up to f replicas at random steps, and lets
// replicas propose their planned values slot by slot. Replicas compact their
// decided prefix and answer Stale requests from their record of decisions,
// as a real node answers from its log.

type simConfig struct {
	n, slots int
	seed     uint64
	loss     float64 // probability a delivered packet is dropped
	dup      float64 // probability a delivered packet stays in flight (a later duplicate)
	redeliv  float64 // probability a packet is delivered twice in a row (counted-once check)
	crashes  int     // replicas to crash for good
	restarts int     // replicas to crash and restart (crashes+restarts <= f)
	mixed    bool    // proposals differ (values A, B, null, none); else all propose A
	encode   bool    // pass every message through MarshalBinary/DecodeMessage
	pipeline int     // slots a replica may have proposed ahead of its first undecided
	maxSteps int
}

type packet struct {
	from, to int
	data     []byte
	msg      Message
}

type sim struct {
	t          testing.TB
	cfg        simConfig
	rng        *rand.Rand
	secret     []byte
	eng        []*Engine
	crashed    []bool
	crashAt    []int
	restartAt  []int
	reported   []map[uint64]bool // decisions reported by the current incarnation
	restarted  int
	crashCount int
	net        []packet

	plan      [][]*Value // plan[r][s]: what r proposes for s
	noPlan    [][]bool   // r does not propose s on its own (only on Join, with null)
	proposed  []map[uint64]bool
	cursor    []int
	decided   []map[uint64]*Value
	prefix    []int // every slot below prefix[r] is decided on r
	proposals map[uint64][]*Value

	steps      int
	delivered  int
	decisions  int
	redelivers int
}

func valueFor(slot int, tag string) *Value {
	return &Value{ID: []byte(fmt.Sprintf("%s-%d", tag, slot)), Payload: []byte(fmt.Sprintf("payload %s of slot %d", tag, slot))}
}

func newSim(t testing.TB, cfg simConfig) *sim {
	s := &sim{
		t:         t,
		cfg:       cfg,
		rng:       rand.New(rand.NewPCG(cfg.seed, 0x9e3779b97f4a7c15)),
		secret:    []byte("simulated cluster coin secret"),
		proposals: map[uint64][]*Value{},
	}
	if cfg.pipeline == 0 {
		s.cfg.pipeline = 4
	}
	f := (cfg.n - 1) / 2
	if cfg.crashes+cfg.restarts > f {
		t.Fatalf("crashes %d + restarts %d > f %d", cfg.crashes, cfg.restarts, f)
	}
	for r := 0; r < cfg.n; r++ {
		e, err := NewEngine(Config{ID: r, N: cfg.n, Secret: s.secret, PhaseWindow: 4})
		if err != nil {
			t.Fatal(err)
		}
		s.eng = append(s.eng, e)
		s.crashed = append(s.crashed, false)
		s.crashAt = append(s.crashAt, -1)
		s.restartAt = append(s.restartAt, -1)
		s.reported = append(s.reported, map[uint64]bool{})
		s.proposed = append(s.proposed, map[uint64]bool{})
		s.cursor = append(s.cursor, 0)
		s.decided = append(s.decided, map[uint64]*Value{})
		s.prefix = append(s.prefix, 0)
		s.plan = append(s.plan, make([]*Value, cfg.slots))
		s.noPlan = append(s.noPlan, make([]bool, cfg.slots))
	}
	for slot := 0; slot < cfg.slots; slot++ {
		a, b := valueFor(slot, "A"), valueFor(slot, "B")
		for r := 0; r < cfg.n; r++ {
			s.plan[r][slot] = a
			if cfg.mixed {
				switch x := s.rng.IntN(10); {
				case x < 6:
				case x < 7:
					s.plan[r][slot] = b
				case x < 8:
					s.plan[r][slot] = nil
				default:
					s.plan[r][slot], s.noPlan[r][slot] = nil, true
				}
			}
		}
	}
	// Crash distinct replicas at random points of the expected run.
	perm := s.rng.Perm(cfg.n)
	for _, r := range perm[:cfg.crashes] {
		s.crashAt[r] = s.rng.IntN(cfg.slots*cfg.n*8 + 1)
	}
	for _, r := range perm[cfg.crashes : cfg.crashes+cfg.restarts] {
		s.restartAt[r] = 1 + s.rng.IntN(cfg.slots*cfg.n*8+1)
		s.crashAt[r] = s.restartAt[r] - 1 - s.rng.IntN(min(s.restartAt[r], 500))
	}
	// Someone that never crashes starts each slot; the others may only
	// join it.
	for slot := 0; slot < cfg.slots; slot++ {
		starter := -1
		for r := 0; r < cfg.n; r++ {
			if s.crashAt[r] < 0 && s.restartAt[r] < 0 && !s.noPlan[r][slot] {
				starter = r
			}
		}
		if starter < 0 {
			for r := 0; r < cfg.n; r++ {
				if s.crashAt[r] < 0 && s.restartAt[r] < 0 {
					s.noPlan[r][slot] = false
					break
				}
			}
		}
	}
	return s
}

func (s *sim) live(r int) bool { return !s.crashed[r] }

func (s *sim) done() bool {
	for r := range s.eng {
		if s.live(r) && s.prefix[r] < s.cfg.slots {
			return false
		}
	}
	return true
}

func (s *sim) randomLive() int {
	for {
		if r := s.rng.IntN(s.cfg.n); s.live(r) {
			return r
		}
	}
}

// propose lets r propose slot, recording it for the validity check.
func (s *sim) propose(r int, slot uint64, v *Value) {
	if s.proposed[r][slot] {
		return
	}
	if err := s.eng[r].Propose(slot, v); err != nil {
		s.t.Fatalf("seed %d: replica %d propose %d: %v", s.cfg.seed, r, slot, err)
	}
	s.proposed[r][slot] = true
	rd := s.eng[r].Ready()
	// Record the proposal for the validity checks only if it was sent (a
	// slot already decided here ignores it).
	for _, env := range rd.Messages {
		if env.Msg.Kind == KindProposal && env.Msg.Slot == slot {
			s.proposals[slot] = append(s.proposals[slot], v)
		}
	}
	s.handle(r, rd, false)
}

// proposeNext proposes r's next planned slot, keeping at most pipeline slots
// ahead of its first undecided one.
func (s *sim) proposeNext(r int) {
	for s.cursor[r] < s.cfg.slots && (s.proposed[r][uint64(s.cursor[r])] || s.noPlan[r][s.cursor[r]] || s.cursor[r] < s.prefix[r]) {
		s.cursor[r]++
	}
	c := s.cursor[r]
	if c >= s.cfg.slots || c >= s.prefix[r]+s.cfg.pipeline {
		return
	}
	s.propose(r, uint64(c), s.plan[r][c])
}

func (s *sim) drain(r int, duplicate bool) { s.handle(r, s.eng[r].Ready(), duplicate) }

// handle sends r's messages, records its decisions, answers its joins with
// its planned value (null if it has none) and its stale requests from its
// record of decisions, then compacts its decided prefix.
func (s *sim) handle(r int, rd Ready, duplicate bool) {
	if duplicate {
		// Counted once: a message delivered again right away changes
		// nothing: no round advances (no broadcast), nothing decides, no
		// new join. Direct answers to Ask or to a decided slot are fine.
		for _, env := range rd.Messages {
			if env.To == Broadcast {
				s.t.Fatalf("seed %d: duplicate delivery to %d produced broadcast %+v", s.cfg.seed, r, env.Msg)
			}
		}
		if len(rd.Decisions) > 0 || len(rd.Joins) > 0 {
			s.t.Fatalf("seed %d: duplicate delivery to %d produced decisions %v joins %v", s.cfg.seed, r, rd.Decisions, rd.Joins)
		}
	}
	for _, env := range rd.Messages {
		if env.To == Broadcast {
			for p := 0; p < s.cfg.n; p++ {
				if p != r {
					s.enqueue(r, p, env.Msg)
				}
			}
		} else {
			if env.To == r {
				s.t.Fatalf("replica %d sent to itself", r)
			}
			s.enqueue(r, env.To, env.Msg)
		}
	}
	for _, d := range rd.Decisions {
		if s.reported[r][d.Slot] {
			s.t.Fatalf("seed %d: replica %d reported slot %d twice", s.cfg.seed, r, d.Slot)
		}
		s.reported[r][d.Slot] = true
		if old, ok := s.decided[r][d.Slot]; ok && !old.Equal(d.Value) {
			s.t.Fatalf("seed %d: replica %d decided slot %d as %s, after restart as %s", s.cfg.seed, r, d.Slot, show(old), show(d.Value))
		}
		s.decided[r][d.Slot] = d.Value.clone()
		s.decisions++
		s.checkAgreement(d.Slot)
		s.eng[r].Persisted(d.Slot) // the record above is r's log
	}
	for _, slot := range rd.Joins {
		v := s.plan[r][slot]
		if s.noPlan[r][slot] {
			v = nil
		}
		if !s.proposed[r][slot] {
			s.propose(r, slot, v)
		}
	}
	for _, st := range rd.Stale {
		v, ok := s.decided[r][st.Slot]
		if !ok {
			s.t.Fatalf("seed %d: replica %d has no decision for compacted slot %d", s.cfg.seed, r, st.Slot)
		}
		s.enqueue(r, st.From, DecisionMessage(st.Slot, v))
	}
	for s.prefix[r] < s.cfg.slots {
		if _, ok := s.decided[r][uint64(s.prefix[r])]; !ok {
			break
		}
		s.prefix[r]++
	}
	// Keep the last two decided slots, compact the rest.
	if p := s.prefix[r]; p >= 3 && uint64(p-3) >= s.eng[r].Floor() {
		s.eng[r].Compact(uint64(p - 3))
	}
	if len(rd.Decisions) > 0 {
		s.drain(r, false) // the announcements Persisted released
	}
}

func (s *sim) enqueue(from, to int, m Message) {
	p := packet{from: from, to: to, msg: m}
	if s.cfg.encode {
		b, err := m.MarshalBinary()
		if err != nil {
			s.t.Fatal(err)
		}
		p.data = b
	}
	s.net = append(s.net, p)
}

// deliver picks a random packet among the oldest ones in flight (bounded
// reordering, so a packet's delay does not grow with the load).
func (s *sim) deliver() {
	i := s.rng.IntN(min(len(s.net), 4*s.cfg.n*s.cfg.n))
	p := s.net[i]
	s.net = slices.Delete(s.net, i, i+1)
	if s.crashed[p.to] || s.rng.Float64() < s.cfg.loss {
		return
	}
	if s.rng.Float64() < s.cfg.dup {
		s.net = append(s.net, p)
	}
	m := p.msg
	if s.cfg.encode {
		var err error
		if m, err = DecodeMessage(p.data, 0); err != nil {
			s.t.Fatalf("decode: %v", err)
		}
	}
	if err := s.eng[p.to].Step(p.from, m); err != nil {
		s.t.Fatalf("seed %d: step %d->%d %+v: %v", s.cfg.seed, p.from, p.to, m, err)
	}
	s.delivered++
	s.drain(p.to, false)
	if s.rng.Float64() < s.cfg.redeliv {
		s.redelivers++
		if err := s.eng[p.to].Step(p.from, m); err != nil {
			s.t.Fatal(err)
		}
		s.drain(p.to, true)
	}
}

func (s *sim) checkAgreement(slot uint64) {
	var first *Value
	var seen bool
	for r := range s.decided {
		v, ok := s.decided[r][slot]
		if !ok {
			continue
		}
		if seen && !first.Equal(v) {
			s.t.Fatalf("seed %d: agreement violated on slot %d: %s vs %s", s.cfg.seed, slot, show(first), show(v))
		}
		first, seen = v, true
	}
	// Validity: a non-null decision was proposed by some replica.
	if seen && first != nil {
		found := false
		for _, p := range s.proposals[slot] {
			found = found || p.Equal(first)
		}
		if !found {
			s.t.Fatalf("seed %d: slot %d decided %s, which nobody proposed", s.cfg.seed, slot, show(first))
		}
	}
}

func show(v *Value) string {
	if v == nil {
		return "null"
	}
	return string(v.ID)
}

// run executes the schedule until every live replica decided every slot, or
// fails the test when maxSteps pass first (termination).
func (s *sim) run() {
	maxSteps := s.cfg.maxSteps
	if maxSteps == 0 {
		maxSteps = 1000 * s.cfg.slots * s.cfg.n
	}
	for s.steps = 0; !s.done(); s.steps++ {
		if s.steps >= maxSteps {
			for r := range s.eng {
				s.t.Logf("replica %d crashed=%v prefix=%d", r, s.crashed[r], s.prefix[r])
				if in := s.eng[r].slots[uint64(s.prefix[r])]; s.live(r) && in != nil {
					s.t.Logf("  slot %d: started=%v learn=%v phase=%d round=%d decided=%v bit=%d val=%v known=%v props=%v states=%v votes=%v", in.slot, in.started, in.learnOnly, in.phase, in.round, in.decided, in.decBit, in.decValue != nil, in.known, in.props.senders, in.myStates, in.myVotes)
				}
			}
			s.t.Fatalf("seed %d: no termination within %d steps", s.cfg.seed, maxSteps)
		}
		for r, at := range s.crashAt {
			if at == s.steps {
				s.crashed[r] = true
				s.crashCount++
			}
			if s.restartAt[r] == s.steps {
				s.restart(r)
			}
		}
		x := s.rng.IntN(100)
		switch {
		case x < 88 && len(s.net) > 0:
			s.deliver()
		case x < 97:
			s.proposeNext(s.randomLive())
		case len(s.net) < 2*s.cfg.n*s.cfg.n:
			// A retransmission timer fires only when the network is
			// fairly quiet, as timeouts do when they exceed the delay.
			r := s.randomLive()
			s.eng[r].Tick()
			s.drain(r, false)
		}
	}
	s.checkFinal()
}

// restart brings r back with a fresh engine, as a node restarting from its
// persisted log: decisions it reported are kept (persisted), its floor is
// its first undecided slot, and every slot up to the highest it proposed in
// is learnt, not voted in again.
func (s *sim) restart(r int) {
	e, err := NewEngine(Config{ID: r, N: s.cfg.n, Secret: s.secret, PhaseWindow: 4, Floor: uint64(s.prefix[r])})
	if err != nil {
		s.t.Fatal(err)
	}
	s.eng[r], s.crashed[r] = e, false
	s.reported[r] = map[uint64]bool{}
	s.restarted++
	high := -1
	for slot := range s.proposed[r] {
		high = max(high, int(slot))
	}
	for slot := s.prefix[r]; slot <= high; slot++ {
		s.proposed[r][uint64(slot)] = true
		if err := e.Learn(uint64(slot)); err != nil {
			s.t.Fatal(err)
		}
	}
	s.drain(r, false)
}

func (s *sim) checkFinal() {
	for slot := 0; slot < s.cfg.slots; slot++ {
		s.checkAgreement(uint64(slot))
		// Validity: when every proposal made for the slot is the same value,
		// that value is decided.
		props := s.proposals[uint64(slot)]
		same := len(props) > 0
		for _, p := range props {
			same = same && p != nil && p.Equal(props[0])
		}
		if !same {
			continue
		}
		for r := range s.eng {
			if v, ok := s.decided[r][uint64(slot)]; ok && !v.Equal(props[0]) {
				s.t.Fatalf("seed %d: slot %d: all proposed %s, replica %d decided %s", s.cfg.seed, slot, show(props[0]), r, show(v))
			}
		}
	}
}

func TestSimulatedNetwork(t *testing.T) {
	cases := []struct {
		name  string
		seeds int
		cfg   simConfig
	}{
		{"n3/restart/clean", 20, simConfig{n: 3, slots: 20, restarts: 1}},
		{"n3/clean", 20, simConfig{n: 3, slots: 40}},
		{"n3/unanimous/faults", 100, simConfig{n: 3, slots: 20, loss: 0.05, dup: 0.05, redeliv: 0.05, crashes: 1, encode: true}},
		{"n3/mixed/faults", 150, simConfig{n: 3, slots: 20, loss: 0.05, dup: 0.05, redeliv: 0.05, crashes: 1, mixed: true, encode: true}},
		{"n3/mixed/lossy", 100, simConfig{n: 3, slots: 20, loss: 0.3, dup: 0.1, redeliv: 0.05, mixed: true, pipeline: 8}},
		{"n5/clean", 20, simConfig{n: 5, slots: 30}},
		{"n5/unanimous/faults", 80, simConfig{n: 5, slots: 15, loss: 0.05, dup: 0.05, redeliv: 0.05, crashes: 2, encode: true}},
		{"n5/mixed/faults", 100, simConfig{n: 5, slots: 15, loss: 0.05, dup: 0.05, redeliv: 0.05, crashes: 2, mixed: true, encode: true}},
		{"n3/restart", 60, simConfig{n: 3, slots: 20, loss: 0.05, dup: 0.05, redeliv: 0.05, restarts: 1, mixed: true, encode: true}},
		{"n5/restart", 60, simConfig{n: 5, slots: 15, loss: 0.05, dup: 0.05, redeliv: 0.05, crashes: 1, restarts: 1, mixed: true, encode: true}},
		{"n5/mixed/lossy", 80, simConfig{n: 5, slots: 15, loss: 0.3, dup: 0.1, redeliv: 0.05, crashes: 1, mixed: true, pipeline: 8}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var slots, steps, delivered, crashes, restarts, redelivers int
			var st Stats
			for seed := 1; seed <= tc.seeds; seed++ {
				cfg := tc.cfg
				cfg.seed = uint64(seed)
				s := newSim(t, cfg)
				s.run()
				slots += cfg.slots
				steps += s.steps
				delivered += s.delivered
				crashes += s.crashCount
				restarts += s.restarted
				redelivers += s.redelivers
				for _, e := range s.eng {
					x := e.Stats()
					st.Decided += x.Decided
					st.Learned += x.Learned
					st.NullDecisions += x.NullDecisions
					st.CoinFlips += x.CoinFlips
					st.MaxPhase = max(st.MaxPhase, x.MaxPhase)
					st.ValueFetches += x.ValueFetches
					st.Dropped += x.Dropped
					st.Stale += x.Stale
				}
			}
			t.Logf("%d slots over %d seeds, %d steps, %d deliveries, %d crashes, %d restarts, %d immediate duplicates; %+v",
				slots, tc.seeds, steps, delivered, crashes, restarts, redelivers, st)
		})
	}
}

// TestSimulationDeterministic: the engine is a pure function of its inputs,
// so one seed replays exactly: same steps, decisions and counters.
func TestSimulationDeterministic(t *testing.T) {
	cfg := simConfig{n: 5, slots: 15, seed: 7, loss: 0.1, dup: 0.1, redeliv: 0.05, crashes: 1, restarts: 1, mixed: true, encode: true}
	a, b := newSim(t, cfg), newSim(t, cfg)
	a.run()
	b.run()
	if a.steps != b.steps || a.delivered != b.delivered {
		t.Fatalf("replay differs: %d/%d steps, %d/%d deliveries", a.steps, b.steps, a.delivered, b.delivered)
	}
	for r := range a.eng {
		if a.eng[r].Stats() != b.eng[r].Stats() {
			t.Fatalf("replica %d stats %+v vs %+v", r, a.eng[r].Stats(), b.eng[r].Stats())
		}
		for slot, v := range a.decided[r] {
			if w, ok := b.decided[r][slot]; !ok || !v.Equal(w) {
				t.Fatalf("replica %d slot %d: %s vs %s", r, slot, show(v), show(w))
			}
		}
	}
}
