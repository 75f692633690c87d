package wmvc

// tally collects one round's messages of one slot, counted once per sender:
// the first message from a sender is kept and any later one from the same
// sender for the same (slot, phase, round) is ignored, whatever it says.
// Arrival order is kept because a round is evaluated on exactly the first
// n-f senders.
type tally struct {
	seen    uint64  // bit i set: sender i counted
	senders []uint8 // arrival order
	bits    []uint8 // bit (state/vote; 1 = non-null for proposals) per arrival
	digests []Digest
}

// add counts from's message; it reports false for a duplicate.
func (t *tally) add(from int, bit uint8, d Digest) bool {
	if t.seen&(1<<uint(from)) != 0 {
		return false
	}
	t.seen |= 1 << uint(from)
	t.senders = append(t.senders, uint8(from))
	t.bits = append(t.bits, bit)
	t.digests = append(t.digests, d)
	return true
}

func (t *tally) count() int { return len(t.senders) }

func (t *tally) has(from int) bool { return t.seen&(1<<uint(from)) != 0 }

// instance is one slot's Weak-MVC run on this replica.
//
// Stages: phase 0 is the proposal exchange; phase p >= 1 has round 1 (state)
// and round 2 (vote). The instance only moves forward when the round it is in
// has messages from exactly n-f distinct senders (its own included); messages
// for later rounds and phases wait in their tallies.
type instance struct {
	slot      uint64
	learnOnly bool // Learn: never proposes or votes, only learns the decision
	started   bool // proposed: takes part in the rounds
	joinSent  bool // Join already reported

	own    *Value // own proposal (nil = null)
	props  tally  // proposal round; bit 1 = non-null, digest of the value
	values map[Digest]*Value

	// known is set once this replica knows the digest of the value proposed
	// by a majority (from its own proposal round or from a peer's state or
	// vote message carrying it).
	known       bool
	knownDigest Digest

	phase    uint32 // 0: proposal round, else the phase
	round    uint8  // 1: state, 2: vote (phase >= 1)
	states   map[uint32]*tally
	votes    map[uint32]*tally
	myStates []uint8 // own state of phase i+1
	myVotes  []uint8 // own vote of phase i+1

	decided  bool
	decBit   uint8
	decValue *Value // the decided value when decBit is 1 and it is held
	reported bool   // decision handed to the caller
	// decidedAt is the phase in which this replica decided by its own
	// votes, or 0 when it learnt the decision from a peer.
	decidedAt uint32
	// held: decided by this replica's own votes and not yet reported
	// durable (Engine.Persisted), so the decision is told to nobody.
	held bool
}

func newInstance(slot uint64) *instance {
	return &instance{slot: slot, states: map[uint32]*tally{}, votes: map[uint32]*tally{}}
}

func (in *instance) tallyFor(kind Kind, phase uint32) *tally {
	m := in.states
	if kind == KindVote {
		m = in.votes
	}
	t := m[phase]
	if t == nil {
		t = &tally{}
		m[phase] = t
	}
	return t
}

// ownMessage returns this replica's message for (kind, phase), if it has
// sent one.
func (in *instance) ownMessage(kind Kind, phase uint32) (Message, bool) {
	m := Message{Kind: kind, Slot: in.slot, Phase: phase}
	switch kind {
	case KindProposal:
		if !in.started {
			return m, false
		}
		m.Value = in.own
		return m, true
	case KindState:
		if phase == 0 || int(phase) > len(in.myStates) {
			return m, false
		}
		m.Bit = in.myStates[phase-1]
	case KindVote:
		if phase == 0 || int(phase) > len(in.myVotes) {
			return m, false
		}
		m.Bit = in.myVotes[phase-1]
	default:
		return m, false
	}
	// A state or vote that is not 0 is backed by the majority value; carry
	// its digest so a receiver that decides 1 can name the value.
	if m.Bit != 0 && in.known {
		m.HasDigest = true
		m.Digest = in.knownDigest
	}
	return m, true
}

// current returns the kind and phase of the round this instance waits in.
func (in *instance) current() (Kind, uint32) {
	switch {
	case in.phase == 0:
		return KindProposal, 0
	case in.round == 1:
		return KindState, in.phase
	default:
		return KindVote, in.phase
	}
}

func (in *instance) currentTally() *tally {
	kind, phase := in.current()
	if kind == KindProposal {
		return &in.props
	}
	return in.tallyFor(kind, phase)
}

// decisionMessage is the announcement of this instance's decision.
func (in *instance) decisionMessage() Message {
	m := Message{Kind: KindDecision, Slot: in.slot, Bit: in.decBit}
	if in.decBit == 1 {
		m.HasDigest = in.known
		m.Digest = in.knownDigest
		m.Value = in.decValue
	}
	return m
}

// release drops what a decided instance no longer needs.
func (in *instance) release() {
	in.states, in.votes = nil, nil
	in.props = tally{}
	in.values = nil
	in.myStates, in.myVotes = nil, nil
	in.own = nil
}
