package wmvc

import (
	"errors"
	"slices"
	"testing"
)

var testSecret = []byte("engine test coin secret")

func newTestEngine(t *testing.T, id, n int) *Engine {
	t.Helper()
	e, err := NewEngine(Config{ID: id, N: n, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func mustStep(t *testing.T, e *Engine, from int, m Message) Ready {
	t.Helper()
	if err := e.Step(from, m); err != nil {
		t.Fatalf("step from %d %+v: %v", from, m, err)
	}
	return e.Ready()
}

func proposal(slot uint64, v *Value) Message {
	return Message{Kind: KindProposal, Slot: slot, Value: v}
}

func stateMsg(slot uint64, phase uint32, bit uint8) Message {
	return Message{Kind: KindState, Slot: slot, Phase: phase, Bit: bit}
}

func voteMsg(slot uint64, phase uint32, bit uint8) Message {
	return Message{Kind: KindVote, Slot: slot, Phase: phase, Bit: bit}
}

// broadcasts returns the broadcast messages of kind in r.
func broadcasts(r Ready, kind Kind) []Message {
	var out []Message
	for _, env := range r.Messages {
		if env.To == Broadcast && env.Msg.Kind == kind {
			out = append(out, env.Msg)
		}
	}
	return out
}

// TestProposalRoundOnEngine drives replica 0's proposal round message by
// message and checks the state it broadcasts, which must be computed on
// exactly the first n-f proposals.
func TestProposalRoundOnEngine(t *testing.T) {
	a, b := valueFor(1, "A"), valueFor(1, "B")
	type in struct {
		from int
		v    *Value
	}
	cases := []struct {
		name  string
		n     int
		own   *Value
		peers []in
		state uint8 // state broadcast once n-f proposals are in
	}{
		{"n3 agree", 3, a, []in{{1, a}}, 1},
		{"n3 split", 3, a, []in{{1, b}, {2, a}}, 0},
		{"n3 own null", 3, nil, []in{{2, a}}, 0},
		{"n5 exactly majority", 5, a, []in{{1, a}, {2, a}, {3, b}, {4, b}}, 1},
		{"n5 split", 5, a, []in{{3, b}, {1, a}, {2, a}, {4, a}}, 0},
		{"n5 majority of the other value", 5, a, []in{{1, b}, {2, b}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestEngine(t, 0, tc.n)
			if err := e.Propose(1, tc.own); err != nil {
				t.Fatal(err)
			}
			if got := broadcasts(e.Ready(), KindProposal); len(got) != 1 || !got[0].Value.Equal(tc.own) {
				t.Fatalf("proposal broadcast %+v", got)
			}
			var states []Message
			for i, p := range tc.peers {
				r := mustStep(t, e, p.from, proposal(1, p.v))
				s := broadcasts(r, KindState)
				if i+2 < e.Quorum() && len(s) > 0 {
					t.Fatalf("state after %d proposals, quorum %d", i+2, e.Quorum())
				}
				states = append(states, s...)
			}
			if len(states) != 1 {
				t.Fatalf("%d state broadcasts, want 1", len(states))
			}
			s := states[0]
			if s.Phase != 1 || s.Bit != tc.state {
				t.Fatalf("state %+v, want phase 1 bit %d", s, tc.state)
			}
			if s.Bit == 1 && (!s.HasDigest || s.Digest != tc.own.Digest()) {
				t.Fatalf("state 1 must carry the majority value's digest")
			}
		})
	}
}

// TestCountedOnce: repeated messages from one sender never fill a round.
func TestCountedOnce(t *testing.T) {
	a := valueFor(2, "A")
	e := newTestEngine(t, 0, 5)
	if err := e.Propose(2, a); err != nil {
		t.Fatal(err)
	}
	e.Ready()
	for i := 0; i < 5; i++ {
		if r := mustStep(t, e, 1, proposal(2, a)); len(broadcasts(r, KindState)) != 0 {
			t.Fatalf("duplicate proposal %d completed the round", i)
		}
	}
	// A different value from the same sender is a duplicate too.
	if r := mustStep(t, e, 1, proposal(2, valueFor(2, "B"))); len(broadcasts(r, KindState)) != 0 {
		t.Fatal("second proposal from one sender counted")
	}
	r := mustStep(t, e, 2, proposal(2, a))
	if s := broadcasts(r, KindState); len(s) != 1 || s[0].Bit != 1 {
		t.Fatalf("third distinct proposal: %+v", s)
	}
	for i := 0; i < 3; i++ {
		if r := mustStep(t, e, 3, stateMsg(2, 1, 1)); len(broadcasts(r, KindVote)) != 0 {
			t.Fatal("duplicate states completed the round")
		}
	}
	r = mustStep(t, e, 4, stateMsg(2, 1, 1))
	if v := broadcasts(r, KindVote); len(v) != 1 || v[0].Bit != 1 {
		t.Fatalf("vote %+v", v)
	}
	for i := 0; i < 3; i++ {
		if r := mustStep(t, e, 1, voteMsg(2, 1, 1)); len(r.Decisions) != 0 {
			t.Fatal("duplicate votes decided")
		}
	}
	r = mustStep(t, e, 3, voteMsg(2, 1, 1))
	if len(r.Decisions) != 1 || !r.Decisions[0].Value.Equal(a) {
		t.Fatalf("decisions %+v", r.Decisions)
	}
}

// TestPhaseRules walks replica 0 of five through phases with chosen votes:
// adopt a seen value, flip the coin when all votes are '?', and the
// exact-quorum rule (messages after the first n-f do not count).
func TestPhaseRules(t *testing.T) {
	a := valueFor(3, "A")
	e := newTestEngine(t, 0, 5)
	if err := e.Propose(3, a); err != nil {
		t.Fatal(err)
	}
	mustStep(t, e, 1, proposal(3, a))
	r := mustStep(t, e, 2, proposal(3, a))
	if s := broadcasts(r, KindState); len(s) != 1 || s[0].Bit != 1 {
		t.Fatalf("state %+v", s)
	}
	// Phase 1 states: own 1, then 0 and 1: not unanimous, vote '?'. A
	// fourth state arriving later changes nothing.
	mustStep(t, e, 1, stateMsg(3, 1, 0))
	r = mustStep(t, e, 2, stateMsg(3, 1, 1))
	if v := broadcasts(r, KindVote); len(v) != 1 || v[0].Bit != VoteUnknown || !v[0].HasDigest {
		t.Fatalf("vote %+v, want '?' with digest", v)
	}
	if r := mustStep(t, e, 3, stateMsg(3, 1, 1)); len(r.Messages) != 0 {
		t.Fatalf("state after quorum produced %+v", r.Messages)
	}
	// Votes: own '?', 1, '?': one vote 1 (< f+1): adopt state 1.
	mustStep(t, e, 3, voteMsg(3, 1, 1))
	r = mustStep(t, e, 4, voteMsg(3, 1, VoteUnknown))
	if s := broadcasts(r, KindState); len(s) != 1 || s[0].Phase != 2 || s[0].Bit != 1 {
		t.Fatalf("phase 2 state %+v, want 1", s)
	}
	if len(r.Decisions) != 0 {
		t.Fatal("decided with fewer than f+1 votes")
	}
	// Phase 2: states 1, 0, 0 -> '?'; votes all '?' -> coin(3, 2).
	mustStep(t, e, 1, stateMsg(3, 2, 0))
	mustStep(t, e, 2, stateMsg(3, 2, 0))
	mustStep(t, e, 1, voteMsg(3, 2, VoteUnknown))
	r = mustStep(t, e, 2, voteMsg(3, 2, VoteUnknown))
	s := broadcasts(r, KindState)
	if len(s) != 1 || s[0].Phase != 3 || s[0].Bit != Coin(testSecret, 3, 2) {
		t.Fatalf("phase 3 state %+v, want coin %d", s, Coin(testSecret, 3, 2))
	}
	if st := e.Stats(); st.CoinFlips != 1 {
		t.Fatalf("coin flips %d", st.CoinFlips)
	}
	// Phases 3 and on: peers all say 0. With own state 0 the replica votes
	// 0 and decides null in phase 3; with own state 1 (the coin) it votes
	// '?', sees 0 votes below f+1, adopts 0 and decides null in phase 4.
	var dec []Decision
	for phase := uint32(3); phase <= 4 && len(dec) == 0; phase++ {
		mustStep(t, e, 1, stateMsg(3, phase, 0))
		mustStep(t, e, 2, stateMsg(3, phase, 0))
		mustStep(t, e, 1, voteMsg(3, phase, 0))
		r = mustStep(t, e, 2, voteMsg(3, phase, 0))
		dec = r.Decisions
		if wantPhase := 3 + uint32(s[0].Bit); (len(dec) > 0) != (phase == wantPhase) {
			t.Fatalf("phase %d: decisions %+v, own phase-3 state %d", phase, dec, s[0].Bit)
		}
	}
	if len(dec) != 1 || dec[0].Value != nil {
		t.Fatalf("decisions %+v, want null", dec)
	}
	// Not durable yet: nobody hears of the decision, not even a late
	// vote's sender (it repeats its vote on Tick).
	if d := broadcasts(r, KindDecision); len(d) != 0 {
		t.Fatalf("decision announced before it was persisted: %+v", d)
	}
	if r = mustStep(t, e, 4, voteMsg(3, 4, 0)); len(r.Messages) != 0 {
		t.Fatalf("late vote answered before the decision was persisted: %+v", r.Messages)
	}
	e.Persisted(3)
	if d := broadcasts(e.Ready(), KindDecision); len(d) != 1 || d[0].Bit != 0 {
		t.Fatalf("decision announcement %+v", d)
	}
	e.Persisted(3) // once only
	if r := e.Ready(); !r.Empty() {
		t.Fatalf("second Persisted produced %+v", r)
	}
	// A late vote is answered with the decision, to its sender only.
	r = mustStep(t, e, 4, voteMsg(3, 4, 0))
	if len(r.Messages) != 1 || r.Messages[0].To != 4 || r.Messages[0].Msg.Kind != KindDecision {
		t.Fatalf("late vote answered with %+v", r.Messages)
	}
}

// TestBufferedFuturePhase: messages of later rounds and phases that arrive
// first are kept and used when the replica gets there.
func TestBufferedFuturePhase(t *testing.T) {
	a := valueFor(4, "A")
	e := newTestEngine(t, 1, 3)
	mustStep(t, e, 0, stateMsg(4, 1, 1))
	mustStep(t, e, 0, voteMsg(4, 1, 1))
	r := mustStep(t, e, 0, proposal(4, a))
	if len(r.Joins) != 0 {
		t.Fatalf("join reported twice: %v", r.Joins)
	}
	if err := e.Propose(4, a); err != nil {
		t.Fatal(err)
	}
	r = e.Ready()
	if len(r.Decisions) != 1 || !r.Decisions[0].Value.Equal(a) {
		t.Fatalf("decisions %+v", r.Decisions)
	}
}

func TestJoinReportedOnce(t *testing.T) {
	e := newTestEngine(t, 1, 3)
	if err := e.Propose(2, nil); err != nil {
		t.Fatal(err)
	}
	e.Ready()
	// Activity on slot 7 means slots 0..7 must all be settled; 2 already is.
	r := mustStep(t, e, 0, proposal(7, valueFor(7, "A")))
	if want := []uint64{0, 1, 3, 4, 5, 6, 7}; !slices.Equal(r.Joins, want) {
		t.Fatalf("joins %v, want %v", r.Joins, want)
	}
	if r := mustStep(t, e, 2, stateMsg(5, 1, 0)); len(r.Joins) != 0 {
		t.Fatalf("joins again %v", r.Joins)
	}
	if r := mustStep(t, e, 2, proposal(7, nil)); len(r.Joins) != 0 {
		t.Fatalf("joins again %v", r.Joins)
	}
	// Joining with null: the two proposals seen are A and null, so the
	// replica's state is 0.
	if err := e.Propose(7, nil); err != nil {
		t.Fatal(err)
	}
	if s := broadcasts(e.Ready(), KindState); len(s) != 1 || s[0].Bit != 0 {
		t.Fatalf("state %+v", s)
	}
}

func TestProposeErrors(t *testing.T) {
	e, err := NewEngine(Config{ID: 0, N: 3, Secret: testSecret, SlotWindow: 10, Floor: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Propose(5, nil); err != nil {
		t.Fatal(err)
	}
	if err := e.Propose(5, nil); !errors.Is(err, ErrAlreadyProposed) {
		t.Fatalf("second propose: %v", err)
	}
	for _, slot := range []uint64{4, 15, 1 << 60} {
		if err := e.Propose(slot, nil); !errors.Is(err, ErrSlotOutOfWindow) {
			t.Fatalf("propose %d: %v", slot, err)
		}
	}
	if err := e.Propose(6, &Value{Payload: make([]byte, DefaultMaxPayload+1)}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("oversized proposal: %v", err)
	}
	if err := e.Learn(8); err != nil {
		t.Fatal(err)
	}
	if err := e.Propose(8, nil); !errors.Is(err, ErrLearnOnly) {
		t.Fatalf("propose learn-only: %v", err)
	}
	if err := e.Learn(5); !errors.Is(err, ErrAlreadyProposed) {
		t.Fatalf("learn proposed slot: %v", err)
	}
}

func TestStepRejects(t *testing.T) {
	e := newTestEngine(t, 0, 3)
	cases := []struct {
		name string
		from int
		m    Message
		want error
	}{
		{"from self", 0, proposal(1, nil), ErrBadPeer},
		{"from outside", 3, proposal(1, nil), ErrBadPeer},
		{"negative sender", -1, proposal(1, nil), ErrBadPeer},
		{"state phase 0", 1, stateMsg(1, 0, 1), ErrMalformed},
		{"state bit 2", 1, stateMsg(1, 1, 2), ErrMalformed},
		{"vote bit 3", 1, voteMsg(1, 1, 3), ErrMalformed},
		{"unknown kind", 1, Message{Kind: 99}, ErrMalformed},
		{"decision 1 without digest", 1, Message{Kind: KindDecision, Slot: 1, Bit: 1}, ErrMalformed},
		{"decision value mismatch", 1, Message{Kind: KindDecision, Slot: 1, Bit: 1, HasDigest: true, Value: valueFor(1, "A")}, ErrMalformed},
		{"long id", 1, proposal(1, &Value{ID: make([]byte, MaxIDLen+1)}), ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.Step(tc.from, tc.m); !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if r := e.Ready(); !r.Empty() {
				t.Fatalf("rejected message produced %+v", r)
			}
		})
	}
}

// TestValueFetch: a replica that learns "decided 1" with only the digest
// asks for the value and reports the decision once a peer sends it; a peer
// still running the slot answers from the proposals it holds.
func TestValueFetch(t *testing.T) {
	a := valueFor(9, "A")
	holder := newTestEngine(t, 1, 3)
	mustStep(t, holder, 0, proposal(9, a)) // holds A, undecided

	e := newTestEngine(t, 2, 3)
	r := mustStep(t, e, 0, Message{Kind: KindDecision, Slot: 9, Bit: 1, HasDigest: true, Digest: a.Digest()})
	if len(r.Decisions) != 0 {
		t.Fatal("reported a decision without its value")
	}
	req := broadcasts(r, KindCatchUp)
	if len(req) != 1 || !req[0].HasDigest || req[0].Digest != a.Digest() {
		t.Fatalf("catch-up request %+v", req)
	}
	e.Tick()
	if again := broadcasts(e.Ready(), KindCatchUp); len(again) != 1 {
		t.Fatalf("tick repeats catch-up: %+v", again)
	}
	r = mustStep(t, holder, 2, req[0])
	if len(r.Messages) != 1 || r.Messages[0].To != 2 || r.Messages[0].Msg.Value == nil {
		t.Fatalf("holder answered %+v", r.Messages)
	}
	r = mustStep(t, e, 1, r.Messages[0].Msg)
	if len(r.Decisions) != 1 || !r.Decisions[0].Value.Equal(a) {
		t.Fatalf("decisions %+v", r.Decisions)
	}
	if v, ok := e.Decided(9); !ok || !v.Equal(a) {
		t.Fatalf("Decided(9) = %v, %v", v, ok)
	}
	if st := e.Stats(); st.ValueFetches != 1 || st.Learned != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// TestLearnAndStale: a restarted replica learns a slot's decision without
// voting; messages for compacted slots are reported for the caller to
// answer from its log.
func TestLearnAndStale(t *testing.T) {
	a := valueFor(0, "A")
	e0, e1 := newTestEngine(t, 0, 3), newTestEngine(t, 1, 3)
	if err := e0.Propose(0, a); err != nil {
		t.Fatal(err)
	}
	if err := e1.Propose(0, a); err != nil {
		t.Fatal(err)
	}
	// Exchange until both decide (FIFO, no loss).
	engines := []*Engine{e0, e1}
	type pkt struct {
		from, to int
		m        Message
	}
	var q []pkt
	flush := func(from int) {
		rd := engines[from].Ready()
		for _, d := range rd.Decisions {
			engines[from].Persisted(d.Slot)
		}
		rd.Messages = append(rd.Messages, engines[from].Ready().Messages...)
		for _, env := range rd.Messages {
			for to := range engines {
				if to != from && (env.To == Broadcast || env.To == to) {
					q = append(q, pkt{from, to, env.Msg})
				}
			}
		}
	}
	flush(0)
	flush(1)
	for len(q) > 0 {
		p := q[0]
		q = q[1:]
		if err := engines[p.to].Step(p.from, p.m); err != nil {
			t.Fatal(err)
		}
		flush(p.to)
	}
	for i, e := range engines {
		if v, ok := e.Decided(0); !ok || !v.Equal(a) {
			t.Fatalf("replica %d: %v %v", i, v, ok)
		}
	}

	restarted := newTestEngine(t, 2, 3)
	if err := restarted.Learn(0); err != nil {
		t.Fatal(err)
	}
	req := broadcasts(restarted.Ready(), KindCatchUp)
	if len(req) != 1 || req[0].HasDigest {
		t.Fatalf("learn request %+v", req)
	}
	r := mustStep(t, e0, 2, req[0])
	if len(r.Messages) != 1 || r.Messages[0].To != 2 {
		t.Fatalf("answer %+v", r.Messages)
	}
	r = mustStep(t, restarted, 0, r.Messages[0].Msg)
	if len(r.Decisions) != 1 || !r.Decisions[0].Value.Equal(a) {
		t.Fatalf("learnt %+v", r.Decisions)
	}

	e0.Compact(0)
	if e0.Floor() != 1 {
		t.Fatalf("floor %d", e0.Floor())
	}
	r = mustStep(t, e0, 2, stateMsg(0, 1, 1))
	if len(r.Stale) != 1 || r.Stale[0] != (StaleRequest{From: 2, Slot: 0}) || len(r.Messages) != 0 {
		t.Fatalf("stale %+v", r)
	}
	if r := mustStep(t, e0, 2, DecisionMessage(0, a)); !r.Empty() {
		t.Fatalf("decision for compacted slot produced %+v", r)
	}
}

func TestSingleReplica(t *testing.T) {
	e := newTestEngine(t, 0, 1)
	a := valueFor(0, "A")
	if err := e.Propose(0, a); err != nil {
		t.Fatal(err)
	}
	if err := e.Propose(1, nil); err != nil {
		t.Fatal(err)
	}
	r := e.Ready()
	if len(r.Decisions) != 2 || !r.Decisions[0].Value.Equal(a) || r.Decisions[1].Value != nil {
		t.Fatalf("decisions %+v", r.Decisions)
	}
}

// TestTickAsksMissingPeers: Tick re-sends the current round's message with
// Ask only to peers not yet heard from, and a peer past that round answers
// with its own message for it.
func TestTickAsksMissingPeers(t *testing.T) {
	a := valueFor(5, "A")
	e := newTestEngine(t, 0, 5)
	if err := e.Propose(5, a); err != nil {
		t.Fatal(err)
	}
	mustStep(t, e, 3, proposal(5, a))
	e.Ready()
	e.Tick()
	r := e.Ready()
	var to []int
	for _, env := range r.Messages {
		if env.Msg.Kind != KindProposal || !env.Msg.Ask {
			t.Fatalf("tick sent %+v", env)
		}
		to = append(to, env.To)
	}
	if len(to) != 3 || to[0] != 1 || to[1] != 2 || to[2] != 4 {
		t.Fatalf("tick asked %v, want [1 2 4]", to)
	}
	// Peer 1 has proposed; it answers the ask with its proposal, without Ask.
	p := newTestEngine(t, 1, 5)
	if err := p.Propose(5, a); err != nil {
		t.Fatal(err)
	}
	p.Ready()
	r = mustStep(t, p, 0, r.Messages[0].Msg)
	if len(r.Messages) != 1 || r.Messages[0].To != 0 || r.Messages[0].Msg.Kind != KindProposal || r.Messages[0].Msg.Ask {
		t.Fatalf("answer %+v", r.Messages)
	}
}

// TestNoPhaseCap: as long as peers keep disagreeing, phases go on (each
// state after the first from the coin); once they agree, the slot decides.
func TestNoPhaseCap(t *testing.T) {
	a := valueFor(6, "A")
	e := newTestEngine(t, 0, 3)
	if err := e.Propose(6, a); err != nil {
		t.Fatal(err)
	}
	r := mustStep(t, e, 1, proposal(6, a))
	own := broadcasts(r, KindState)[0].Bit
	const phases = 200
	for p := uint32(1); p <= phases; p++ {
		// Peer 1 contradicts this replica's state, so the vote is '?'.
		r = mustStep(t, e, 1, Message{Kind: KindState, Slot: 6, Phase: p, Bit: 1 - own, HasDigest: true, Digest: a.Digest()})
		if v := broadcasts(r, KindVote); len(v) != 1 || v[0].Bit != VoteUnknown {
			t.Fatalf("phase %d vote %+v", p, v)
		}
		r = mustStep(t, e, 1, Message{Kind: KindVote, Slot: 6, Phase: p, Bit: VoteUnknown, HasDigest: true, Digest: a.Digest()})
		s := broadcasts(r, KindState)
		if len(s) != 1 || s[0].Phase != p+1 || s[0].Bit != Coin(testSecret, 6, p) {
			t.Fatalf("phase %d: next state %+v, want coin %d", p, s, Coin(testSecret, 6, p))
		}
		own = s[0].Bit
	}
	if ph, _ := e.Phase(6); ph != phases+1 {
		t.Fatalf("phase %d", ph)
	}
	if st := e.Stats(); st.CoinFlips != phases {
		t.Fatalf("coin flips %d", st.CoinFlips)
	}
	p := uint32(phases + 1)
	mustStep(t, e, 1, Message{Kind: KindState, Slot: 6, Phase: p, Bit: own, HasDigest: own == 1, Digest: digestIf(own, a)})
	r = mustStep(t, e, 1, Message{Kind: KindVote, Slot: 6, Phase: p, Bit: own, HasDigest: own == 1, Digest: digestIf(own, a)})
	var want *Value
	if own == 1 {
		want = a
	}
	if len(r.Decisions) != 1 || !r.Decisions[0].Value.Equal(want) {
		t.Fatalf("decisions %+v, want %s", r.Decisions, show(want))
	}
}

func digestIf(bit uint8, v *Value) Digest {
	if bit == 1 {
		return v.Digest()
	}
	return Digest{}
}

// TestAbandonAndDecideNull recovers a slot nobody can decide any more:
// replica 0 voted in it, replicas 1 and 2 restarted without their votes
// and only learn it. Once 0 abandons it too, DecideNull ends it as null on
// 0 and, through the announcement, on the others; a decided slot is left
// as it is.
func TestAbandonAndDecideNull(t *testing.T) {
	a := valueFor(0, "A")
	e0 := newTestEngine(t, 0, 3)
	if err := e0.Propose(0, a); err != nil {
		t.Fatal(err)
	}
	mustStep(t, e0, 1, proposal(0, a)) // e0 moves on to its state round
	if st := e0.State(0); st != SlotVoting {
		t.Fatalf("started slot: state %d", st)
	}
	if st := e0.State(7); st != SlotVoting {
		t.Fatalf("untouched slot: state %d", st)
	}
	learners := []*Engine{newTestEngine(t, 1, 3), newTestEngine(t, 2, 3)}
	for _, e := range learners {
		if err := e.Learn(0); err != nil {
			t.Fatal(err)
		}
		e.Ready()
		if st := e.State(0); st != SlotLearnOnly {
			t.Fatalf("learnt slot: state %d", st)
		}
	}
	if err := e0.Abandon(0); err != nil {
		t.Fatal(err)
	}
	if st := e0.State(0); st != SlotLearnOnly {
		t.Fatalf("abandoned slot: state %d", st)
	}
	// Abandoned, it counts nothing: a vote that would have decided it is
	// ignored.
	if r := mustStep(t, e0, 1, stateMsg(0, 1, 1)); len(r.Decisions) != 0 || len(r.Messages) != 0 {
		t.Fatalf("abandoned slot still runs: %+v", r)
	}
	if err := e0.Propose(0, a); !errors.Is(err, ErrLearnOnly) {
		t.Fatalf("propose in an abandoned slot: %v", err)
	}
	if err := e0.DecideNull(0); err != nil {
		t.Fatal(err)
	}
	r := e0.Ready()
	if len(r.Decisions) != 1 || r.Decisions[0].Slot != 0 || r.Decisions[0].Value != nil {
		t.Fatalf("decisions %+v", r.Decisions)
	}
	ann := broadcasts(r, KindDecision)
	if len(ann) != 1 || ann[0].Bit != 0 {
		t.Fatalf("announcement %+v", ann)
	}
	for i, e := range learners {
		got := mustStep(t, e, 0, ann[0])
		if len(got.Decisions) != 1 || got.Decisions[0].Value != nil || e.State(0) != SlotDecided {
			t.Fatalf("learner %d: %+v", i+1, got.Decisions)
		}
	}
	// Decided slots stay as they are.
	if err := e0.Abandon(0); err != nil || e0.State(0) != SlotDecided {
		t.Fatalf("abandon a decided slot: %v, state %d", err, e0.State(0))
	}
	if err := e0.DecideNull(0); err != nil {
		t.Fatal(err)
	}
	if r := e0.Ready(); !r.Empty() {
		t.Fatalf("deciding a decided slot again produced %+v", r)
	}
	e0.Compact(0)
	if e0.State(0) != SlotDecided || e0.Abandon(0) != nil || e0.DecideNull(0) != nil {
		t.Fatal("compacted slot")
	}
	if err := e0.Abandon(DefaultSlotWindow + 5); !errors.Is(err, ErrSlotOutOfWindow) {
		t.Fatalf("abandon beyond the window: %v", err)
	}
}

// TestAdopt: a decision known from the caller's log is reported once, and
// the slot counts as decided; adopting it again changes nothing.
func TestAdopt(t *testing.T) {
	a := valueFor(3, "A")
	e := newTestEngine(t, 0, 3)
	if err := e.Adopt(3, a); err != nil {
		t.Fatal(err)
	}
	r := e.Ready()
	if len(r.Decisions) != 1 || r.Decisions[0].Slot != 3 || !r.Decisions[0].Value.Equal(a) || e.State(3) != SlotDecided {
		t.Fatalf("adopted %+v, state %d", r.Decisions, e.State(3))
	}
	if err := e.Adopt(3, nil); err != nil {
		t.Fatal(err)
	}
	if r := e.Ready(); !r.Empty() {
		t.Fatalf("adopting a decided slot again produced %+v", r)
	}
	if v, ok := e.Decided(3); !ok || !v.Equal(a) {
		t.Fatalf("decided %v %v", v, ok)
	}
}
