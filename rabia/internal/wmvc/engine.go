package wmvc

import (
	"fmt"
	"log/slog"
	"slices"
)

// MaxReplicas bounds Config.N.
const MaxReplicas = 64

// Broadcast as Envelope.To means "every replica but this one".
const Broadcast = -1

// Defaults for zero Config fields.
const (
	DefaultSlotWindow  = 4096
	DefaultPhaseWindow = 8
)

// Config configures an Engine.
type Config struct {
	// ID is this replica's index in [0, N).
	ID int
	// N is the number of replicas (1..MaxReplicas). The engine tolerates
	// F = (N-1)/2 crashed replicas.
	N int
	// Secret keys the common coin. Every replica of the cluster must use
	// the same secret, of at least MinSecretLen bytes; it should be secret
	// from whoever can influence message scheduling.
	Secret []byte
	// MaxPayload bounds Value.Payload (0: DefaultMaxPayload). Use the same
	// bound for DecodeMessage.
	MaxPayload int
	// SlotWindow is how many slots, counted from the compaction floor
	// (see Compact), the engine keeps state for (0: DefaultSlotWindow).
	// Messages for slots at or beyond floor+SlotWindow are dropped; their
	// senders repeat them on Tick.
	SlotWindow uint64
	// PhaseWindow is how many phases ahead of a slot's current phase
	// messages are buffered (0: DefaultPhaseWindow). Later ones are dropped
	// and asked for again once the slot gets there.
	PhaseWindow uint32
	// Floor is the first slot the engine accepts. A replica restarting
	// from a persisted log sets it to the first slot it has not applied.
	Floor uint64
	// Logger receives debug and error records (nil: discard).
	Logger *slog.Logger
}

// Envelope is a message to send: to one peer (To in [0, N)) or to every
// other replica (To == Broadcast).
type Envelope struct {
	To  int
	Msg Message
}

// Decision is a slot's outcome on this replica. Value nil is the null
// decision (nothing is applied for the slot, and any proposal made for it
// must be proposed again in a later slot).
type Decision struct {
	Slot  uint64
	Value *Value
}

// StaleRequest reports that peer From sent a message for Slot, which is
// below the compaction floor: the peer is behind. The caller answers it from
// its persisted log with DecisionMessage(Slot, value), sent to From.
type StaleRequest struct {
	From int
	Slot uint64
}

// Ready is the output the engine has produced since the previous call to
// Engine.Ready. The caller must persist Decisions before acting on them
// externally (answering clients), and then call Engine.Persisted for each,
// which lets the engine announce it; messages may be sent in any order and
// lost: the protocol copes with loss as long as Tick keeps being called.
// Values and byte slices in a Ready are shared with the engine: read-only.
type Ready struct {
	// Messages to send, in the order produced.
	Messages []Envelope
	// Decisions, each slot exactly once, in the order they were reached
	// (not necessarily slot order).
	Decisions []Decision
	// Joins lists slots this replica has not proposed in although peers
	// are active on them or on a later slot (slots are dense: activity on
	// slot s means every slot below it must be settled too); each slot is
	// reported once, in increasing order. The caller must Propose in each
	// (its next batch, or nil for null), or Learn it, or the slot may not
	// terminate when F replicas are down.
	Joins []uint64
	// Stale lists messages received for compacted slots.
	Stale []StaleRequest
}

// Empty reports whether r holds nothing.
func (r *Ready) Empty() bool {
	return len(r.Messages) == 0 && len(r.Decisions) == 0 && len(r.Joins) == 0 && len(r.Stale) == 0
}

// Engine runs Weak-MVC for many slots. It is a pure state machine: it does
// no I/O, starts no goroutines, reads no clock and no randomness, so the
// same sequence of calls gives the same outputs. It is not safe for
// concurrent use; callers serialize calls (typically one goroutine owns it).
type Engine struct {
	id, n, f, maj int
	maxPayload    int
	slotWindow    uint64
	phaseWindow   uint32
	floor         uint64
	coin          *coin
	log           *slog.Logger
	slots         map[uint64]*instance
	out           Ready
	stats         Stats
	// joinFrom: every slot in [floor, joinFrom) is proposed, learn-only,
	// decided or already reported in Joins.
	joinFrom uint64
}

// Stats counts engine events since NewEngine, for metrics and tests.
type Stats struct {
	// Decided counts slots decided by this replica's own vote rounds.
	Decided uint64
	// Learned counts slots whose decision came from a peer's announcement.
	Learned uint64
	// NullDecisions counts null decisions (included in the two above).
	NullDecisions uint64
	// CoinFlips counts phases whose next state came from the common coin.
	CoinFlips uint64
	// MaxPhase is the highest phase in which this replica decided.
	MaxPhase uint32
	// ValueFetches counts decisions of 1 reached without holding the value
	// (the value then came from a peer).
	ValueFetches uint64
	// Dropped counts messages dropped for being beyond the slot or phase
	// window.
	Dropped uint64
	// Stale counts messages for compacted slots.
	Stale uint64
}

// NewEngine validates cfg and returns an engine with no slots.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.N < 1 || cfg.N > MaxReplicas {
		return nil, fmt.Errorf("%w: N=%d not in [1, %d]", ErrInvalidConfig, cfg.N, MaxReplicas)
	}
	if cfg.ID < 0 || cfg.ID >= cfg.N {
		return nil, fmt.Errorf("%w: ID=%d not in [0, %d)", ErrInvalidConfig, cfg.ID, cfg.N)
	}
	if len(cfg.Secret) < MinSecretLen {
		return nil, fmt.Errorf("%w: secret shorter than %d bytes", ErrInvalidConfig, MinSecretLen)
	}
	if cfg.MaxPayload < 0 {
		return nil, fmt.Errorf("%w: negative MaxPayload", ErrInvalidConfig)
	}
	e := &Engine{
		id:          cfg.ID,
		n:           cfg.N,
		f:           (cfg.N - 1) / 2,
		maj:         cfg.N/2 + 1,
		maxPayload:  cfg.MaxPayload,
		slotWindow:  cfg.SlotWindow,
		phaseWindow: cfg.PhaseWindow,
		floor:       cfg.Floor,
		coin:        newCoin(cfg.Secret),
		log:         cfg.Logger,
		slots:       map[uint64]*instance{},
	}
	if e.maxPayload == 0 {
		e.maxPayload = DefaultMaxPayload
	}
	if e.slotWindow == 0 {
		e.slotWindow = DefaultSlotWindow
	}
	if e.phaseWindow == 0 {
		e.phaseWindow = DefaultPhaseWindow
	}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	return e, nil
}

// Quorum returns n-f, the number of distinct senders every round waits for.
func (e *Engine) Quorum() int { return e.n - e.f }

// Stats returns the engine's counters.
func (e *Engine) Stats() Stats { return e.stats }

// Floor returns the compaction floor: the lowest slot the engine keeps.
func (e *Engine) Floor() uint64 { return e.floor }

// Ready returns the output accumulated since the last call and clears it.
func (e *Engine) Ready() Ready {
	r := e.out
	e.out = Ready{}
	return r
}

func (e *Engine) inWindow(slot uint64) bool {
	return slot >= e.floor && slot-e.floor < e.slotWindow
}

func (e *Engine) instance(slot uint64) *instance {
	in := e.slots[slot]
	if in == nil {
		in = newInstance(slot)
		e.slots[slot] = in
	}
	return in
}

func (e *Engine) send(to int, m Message) {
	e.out.Messages = append(e.out.Messages, Envelope{To: to, Msg: m})
}

// Propose starts this replica's part in slot with value v (nil: null). A
// replica proposes at most once per slot (ErrAlreadyProposed). Proposing
// for a slot that has already decided here is a no-op: the decision has
// been, or will be, reported in Ready. The engine keeps v; do not modify it.
func (e *Engine) Propose(slot uint64, v *Value) error {
	if !e.inWindow(slot) {
		return fmt.Errorf("%w: slot %d, floor %d", ErrSlotOutOfWindow, slot, e.floor)
	}
	if v != nil {
		if len(v.ID) > MaxIDLen || len(v.Payload) > e.maxPayload {
			return fmt.Errorf("%w: proposal value too large", ErrMalformed)
		}
	}
	in := e.instance(slot)
	switch {
	case in.learnOnly:
		return fmt.Errorf("%w: slot %d", ErrLearnOnly, slot)
	case in.started:
		return fmt.Errorf("%w: slot %d", ErrAlreadyProposed, slot)
	case in.decided:
		return nil
	}
	in.started = true
	in.own = v
	e.recordProposal(in, e.id, v)
	e.send(Broadcast, Message{Kind: KindProposal, Slot: slot, Value: v})
	e.advance(in)
	return nil
}

// Learn marks slot as learn-only: this replica will not propose or vote in
// it and asks its peers for the decision (again on every Tick until it is
// known). A replica that restarts without the protocol state of slots it
// may have voted in before the crash must Learn them instead of proposing,
// since voting again could contradict what it said before.
func (e *Engine) Learn(slot uint64) error {
	if !e.inWindow(slot) {
		return fmt.Errorf("%w: slot %d, floor %d", ErrSlotOutOfWindow, slot, e.floor)
	}
	in := e.instance(slot)
	if in.started {
		return fmt.Errorf("%w: slot %d", ErrAlreadyProposed, slot)
	}
	if in.learnOnly || in.decided {
		return nil
	}
	in.learnOnly = true
	in.release()
	e.send(Broadcast, Message{Kind: KindCatchUp, Slot: slot})
	return nil
}

// SlotState is this replica's part in a slot.
type SlotState uint8

// Slot states, as State reports them.
const (
	// SlotVoting: undecided here, and this replica may still vote in it
	// (whether or not it has started).
	SlotVoting SlotState = iota
	// SlotLearnOnly: undecided here, and this replica will never vote in
	// it (Learn or Abandon).
	SlotLearnOnly
	// SlotDecided: decided here (or compacted), though the value of a
	// decision for a batch may still be on its way.
	SlotDecided
)

// State returns this replica's part in slot.
func (e *Engine) State(slot uint64) SlotState {
	if slot < e.floor {
		return SlotDecided
	}
	in := e.slots[slot]
	switch {
	case in == nil:
		return SlotVoting
	case in.decided:
		return SlotDecided
	case in.learnOnly:
		return SlotLearnOnly
	}
	return SlotVoting
}

// Abandon stops this replica's part in slot, started or not: from now on
// it only learns the slot's decision, as after Learn. It does nothing to a
// decided slot. Abandoning is a promise never to vote in the slot again;
// the caller must keep it across restarts (by learning the slot after
// one). It is how replicas recover a slot nobody can decide any more (see
// DecideNull).
func (e *Engine) Abandon(slot uint64) error {
	in, err := e.undecided(slot)
	if in == nil || in.learnOnly {
		return err
	}
	in.learnOnly = true
	in.release()
	return nil
}

// Adopt records slot's decision v (nil: null), which the caller knows from
// its own log, as a peer's announcement would: this replica will never
// vote in the slot, and the decision is reported in Ready. It does nothing
// to a slot decided here.
func (e *Engine) Adopt(slot uint64, v *Value) error {
	in, err := e.undecided(slot)
	if in == nil {
		return err
	}
	m := DecisionMessage(slot, v)
	e.learnDecision(in, &m)
	return nil
}

// DecideNull decides slot null on this replica and announces it. It does
// nothing to a slot decided here. The caller must know that no replica
// decided the slot and none ever will in the protocol: every replica has
// abandoned it (Abandon, or Learn after a restart) and none had decided
// it. Then null is safe, since no decision exists to contradict, and every
// replica learns it.
func (e *Engine) DecideNull(slot uint64) error {
	in, err := e.undecided(slot)
	if in == nil {
		return err
	}
	e.learnDecision(in, &Message{Kind: KindDecision, Slot: slot})
	e.send(Broadcast, in.decisionMessage())
	return nil
}

// undecided returns slot's instance when the slot is in the window and not
// decided here; nil (and an error if it is beyond the window) otherwise.
func (e *Engine) undecided(slot uint64) (*instance, error) {
	if slot < e.floor {
		return nil, nil
	}
	if !e.inWindow(slot) {
		return nil, fmt.Errorf("%w: slot %d, floor %d", ErrSlotOutOfWindow, slot, e.floor)
	}
	if in := e.instance(slot); !in.decided {
		return in, nil
	}
	return nil, nil
}

// Step feeds one message received from replica from. Invalid messages and
// bad sender indexes return an error (wrapping ErrMalformed or ErrBadPeer)
// and change nothing; everything else, including duplicates, late and early
// messages, is absorbed.
func (e *Engine) Step(from int, m Message) error {
	if from < 0 || from >= e.n || from == e.id {
		return fmt.Errorf("%w: %d", ErrBadPeer, from)
	}
	if err := m.Validate(e.maxPayload); err != nil {
		return err
	}
	if m.Slot < e.floor {
		if m.Kind != KindDecision {
			e.stats.Stale++
			e.out.Stale = append(e.out.Stale, StaleRequest{From: from, Slot: m.Slot})
		}
		return nil
	}
	if !e.inWindow(m.Slot) {
		e.stats.Dropped++
		e.log.Debug("wmvc: message beyond slot window dropped", "slot", m.Slot, "from", from)
		return nil
	}
	in := e.instance(m.Slot)
	defer e.noteActivity(m.Slot)
	if in.decided {
		e.stepDecided(in, from, &m)
		return nil
	}
	if m.Kind == KindDecision {
		e.learnDecision(in, &m)
		return nil
	}
	if m.Kind == KindCatchUp {
		// The asker has decided 1 and lacks the value; a proposal we hold
		// with that digest is it.
		if m.HasDigest {
			if v, ok := in.values[m.Digest]; ok {
				e.send(from, Message{Kind: KindDecision, Slot: in.slot, Bit: 1, HasDigest: true, Digest: m.Digest, Value: v})
			}
		}
		return nil
	}
	if m.HasDigest && !in.known {
		in.known, in.knownDigest = true, m.Digest
	}
	if in.learnOnly {
		return nil
	}
	switch m.Kind {
	case KindProposal:
		e.recordProposal(in, from, m.Value)
	case KindState, KindVote:
		if m.Phase > in.phase+e.phaseWindow {
			e.stats.Dropped++
			return nil // asked for again when this replica gets there
		}
		if m.Phase < in.phase || (m.Phase == in.phase && m.Kind == KindState && in.round == 2) {
			// A round this replica is done with: nothing to count.
			break
		}
		in.tallyFor(m.Kind, m.Phase).add(from, m.Bit, m.Digest)
	}
	if m.Ask {
		if own, ok := in.ownMessage(m.Kind, m.Phase); ok {
			e.send(from, own)
		}
	}
	e.advance(in)
	return nil
}

// noteActivity reports in Joins every slot up to and including slot that
// this replica has not proposed in, learnt, decided or reported before.
func (e *Engine) noteActivity(slot uint64) {
	start := max(e.joinFrom, e.floor)
	if start > slot {
		return
	}
	for x := start; ; x++ {
		in := e.instance(x)
		if !in.started && !in.learnOnly && !in.decided && !in.joinSent {
			in.joinSent = true
			e.out.Joins = append(e.out.Joins, x)
		}
		if x == slot { // not x <= slot: slot may be the largest uint64
			break
		}
	}
	e.joinFrom = slot + 1
}

// stepDecided answers a message for a slot this replica has decided.
func (e *Engine) stepDecided(in *instance, from int, m *Message) {
	if in.held && m.Kind != KindDecision {
		return // not durable yet: told to nobody (see Persisted)
	}
	switch m.Kind {
	case KindDecision:
		// Never answered (no ping-pong); may bring the missing value.
		if in.decBit == 1 && in.decValue == nil && m.Value != nil && (!in.known || m.Digest == in.knownDigest) {
			in.known, in.knownDigest = true, m.Digest
			in.decValue = m.Value
			e.report(in)
		}
		if in.decBit == 1 && !in.known && m.Bit == 1 {
			in.known, in.knownDigest = true, m.Digest
		}
	case KindCatchUp:
		if m.HasDigest && in.decValue == nil {
			return // cannot help
		}
		e.send(from, in.decisionMessage())
	default:
		// The sender is still running the slot: tell it the outcome.
		e.send(from, in.decisionMessage())
	}
}

func (e *Engine) recordProposal(in *instance, from int, v *Value) {
	var bit uint8
	var d Digest
	if v != nil {
		bit, d = 1, v.Digest()
	}
	if !in.props.add(from, bit, d) || v == nil {
		return
	}
	if in.values == nil {
		in.values = map[Digest]*Value{}
	}
	in.values[d] = v
}

// advance runs the instance's rounds as far as the counted messages allow.
// Each round is evaluated once, on exactly the first n-f senders counted for
// it (Algorithm Weak-MVC of the Rabia paper):
//
//   - proposals: state = 1 if some value (null excluded) was proposed by at
//     least floor(n/2)+1 of them, else 0. That value, unique because two
//     majorities of the n replicas intersect, is "the majority value" m and
//     this replica now knows its digest.
//   - states of phase p: vote = v if at least floor(n/2)+1 of them are v,
//     else '?'. Since n-f = floor(n/2)+1, a vote v needs n-f equal states,
//     so two replicas never vote different non-'?' values in one phase.
//   - votes of phase p: decide v if at least f+1 are v (v not '?'); else
//     state = v if some vote is v; else state = coin(slot, p). Then p+1.
func (e *Engine) advance(in *instance) {
	q := e.n - e.f
	for !in.decided && in.started {
		t := in.currentTally()
		if t.count() < q {
			return
		}
		kind, phase := in.current()
		switch kind {
		case KindProposal:
			state, m := proposalRule(t.bits[:q], t.digests[:q], e.maj)
			if state == 1 {
				if in.known && in.knownDigest != m {
					e.log.Error("wmvc: two majority values", "slot", in.slot)
				}
				in.known, in.knownDigest = true, m
			}
			in.phase, in.round = 1, 1
			in.myStates = append(in.myStates, state)
			e.emitOwn(in, KindState, 1)
		case KindState:
			in.round = 2
			in.myVotes = append(in.myVotes, voteRule(t.bits[:q], e.maj))
			e.emitOwn(in, KindVote, phase)
		case KindVote:
			o := voteOutcome(t.bits[:q], e.f)
			if o.conflict {
				// Impossible by the vote rule: a peer is not following
				// the protocol. Neither value is adopted; the coin decides.
				e.log.Error("wmvc: votes for both values in one phase", "slot", in.slot, "phase", phase)
			}
			if o.decide {
				e.decide(in, o.bit, phase)
				return
			}
			state := o.bit
			if o.coin {
				e.stats.CoinFlips++
				state = e.coin.flip(in.slot, phase)
			}
			if state == 1 && !in.known {
				e.log.Error("wmvc: state 1 without a known majority value", "slot", in.slot, "phase", phase)
			}
			delete(in.states, phase)
			delete(in.votes, phase)
			in.phase, in.round = phase+1, 1
			in.myStates = append(in.myStates, state)
			e.emitOwn(in, KindState, in.phase)
		}
	}
}

// emitOwn counts this replica's own state or vote for (kind, phase) and
// broadcasts it.
func (e *Engine) emitOwn(in *instance, kind Kind, phase uint32) {
	m, _ := in.ownMessage(kind, phase)
	in.tallyFor(kind, phase).add(e.id, m.Bit, m.Digest)
	e.send(Broadcast, m)
}

// decide records this replica's own decision bit, reached in phase.
func (e *Engine) decide(in *instance, bit uint8, phase uint32) {
	in.decided, in.decBit, in.decidedAt = true, bit, phase
	e.stats.Decided++
	e.stats.MaxPhase = max(e.stats.MaxPhase, phase)
	if bit == 1 {
		if !in.known {
			e.log.Error("wmvc: decided 1 without a known majority value", "slot", in.slot)
		} else {
			in.decValue = in.values[in.knownDigest]
		}
	}
	in.release()
	// The decision is announced once the caller has persisted it (see
	// Persisted), not now.
	in.held = true
	e.afterDecide(in)
}

// Persisted tells the engine that slot's decision, reported in Ready, is
// durable on this replica, and announces a decision this replica reached
// by its own votes. Until then the engine tells nobody of such a decision:
// no announcement, and messages for the slot get no answer (their senders
// repeat them on Tick). It does nothing for a slot not decided here or
// already compacted.
//
// Why: a decision reached by votes exists only in this replica's memory
// until it is persisted. If this replica crashes before that, it restarts
// knowing nothing of the slot and may only learn it; were a majority to do
// so, recovery (Abandon, DecideNull) could end the slot null, and an
// announcement sent before the crash and still in flight would then teach
// a replica that had abandoned the slot the lost value: two decisions for
// one slot. Announcing only durable decisions keeps every decision that
// any peer hears of on the disk of a replica that reports it as decided
// (State) after a restart, which is what recovery relies on. Decisions
// learnt from a peer (announced, hence durable there), adopted from the
// caller's log, or recovered with DecideNull are told at once.
func (e *Engine) Persisted(slot uint64) {
	in := e.slots[slot]
	if slot < e.floor || in == nil || !in.decided || !in.held {
		return
	}
	in.held = false
	// The announcement names the value by digest only: peers that took
	// part in the proposal round hold the value already (invariant 7 in
	// the package documentation), and the others ask for it. Answers to
	// late messages and catch-up requests carry the value.
	ann := in.decisionMessage()
	ann.Value = nil
	e.send(Broadcast, ann)
}

// learnDecision adopts a decision announced by a peer.
func (e *Engine) learnDecision(in *instance, m *Message) {
	in.decided, in.decBit = true, m.Bit
	e.stats.Learned++
	if m.Bit == 1 {
		in.known, in.knownDigest = true, m.Digest
		in.decValue = m.Value
		if in.decValue == nil {
			in.decValue = in.values[m.Digest]
		}
	}
	in.release()
	e.afterDecide(in)
}

func (e *Engine) afterDecide(in *instance) {
	if in.decBit == 0 {
		e.stats.NullDecisions++
	}
	if in.decBit == 1 && in.decValue == nil {
		e.stats.ValueFetches++
		e.send(Broadcast, e.catchUp(in))
		return
	}
	e.report(in)
}

func (e *Engine) catchUp(in *instance) Message {
	return Message{Kind: KindCatchUp, Slot: in.slot, HasDigest: in.known, Digest: in.knownDigest}
}

func (e *Engine) report(in *instance) {
	if in.reported {
		return
	}
	in.reported = true
	var v *Value
	if in.decBit == 1 {
		v = in.decValue
	}
	e.out.Decisions = append(e.out.Decisions, Decision{Slot: in.slot, Value: v})
}

// Tick repeats what may have been lost. Call it periodically (for example
// every few milliseconds of quiet on a slot; the engine has no clock). For
// each slot in progress it re-sends this replica's message of its current
// round, with Ask set, to each peer it has not heard from in that round (a
// peer that is past that round answers with its own message, a peer that
// has decided with the decision); for a decided slot whose value is missing,
// and for a learn-only slot, it repeats the catch-up request.
func (e *Engine) Tick() {
	keys := make([]uint64, 0, len(e.slots))
	for s := range e.slots {
		keys = append(keys, s)
	}
	slices.Sort(keys)
	for _, s := range keys {
		in := e.slots[s]
		switch {
		case in.decided:
			if in.decBit == 1 && in.decValue == nil {
				e.send(Broadcast, e.catchUp(in))
			}
		case in.learnOnly:
			e.send(Broadcast, Message{Kind: KindCatchUp, Slot: s})
		case in.started:
			t := in.currentTally()
			kind, phase := in.current()
			m, _ := in.ownMessage(kind, phase)
			m.Ask = true
			for p := 0; p < e.n; p++ {
				if p != e.id && !t.has(p) {
					e.send(p, m)
				}
			}
		}
	}
}

// Compact forgets every slot up to and including through and raises the
// floor to through+1. Call it only for slots whose decisions are persisted
// (or covered by a snapshot): messages for them are then reported as Stale
// for the caller to answer from its log.
func (e *Engine) Compact(through uint64) {
	if through < e.floor {
		return
	}
	for s := range e.slots {
		if s <= through {
			delete(e.slots, s)
		}
	}
	e.floor = through + 1
}

// Decided returns slot's decision if this replica knows it with its value
// (v nil: null).
func (e *Engine) Decided(slot uint64) (v *Value, ok bool) {
	in := e.slots[slot]
	if in == nil || !in.reported {
		return nil, false
	}
	if in.decBit == 1 {
		return in.decValue, true
	}
	return nil, true
}

// Phase returns the phase slot is in on this replica (0: proposal round or
// not started) and whether the slot is known to the engine.
func (e *Engine) Phase(slot uint64) (uint32, bool) {
	in := e.slots[slot]
	if in == nil {
		return 0, false
	}
	return in.phase, true
}

// DecisionMessage builds the announcement of a decided slot (v nil: null),
// for answering a StaleRequest from a persisted log.
func DecisionMessage(slot uint64, v *Value) Message {
	m := Message{Kind: KindDecision, Slot: slot}
	if v != nil {
		m.Bit, m.HasDigest, m.Digest, m.Value = 1, true, v.Digest(), v
	}
	return m
}
