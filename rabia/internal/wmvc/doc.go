// Package wmvc is the consensus core of abacus's leaderless replication
// path: Weak-MVC, the per-slot agreement protocol of Rabia ("Rabia:
// Simplifying State-Machine Replication Through Randomization", Pan et al.,
// SOSP 2021), as a pure, deterministic state machine over many slots.
//
// The package does no I/O, starts no goroutines, reads no clock and no global
// randomness. Its owner feeds it received messages (Engine.Step), local
// proposals (Engine.Propose) and timer ticks (Engine.Tick), and collects what
// it produced with Engine.Ready: messages to send, decided slots, slots to
// join, and requests for compacted slots. Calls must be serialized.
//
// # The protocol
//
// There are n replicas, f = (n-1)/2 of which may crash, and each slot is an
// independent instance. Every round waits for messages from exactly n-f
// distinct senders (its own message counts like any other, in arrival
// order, after messages buffered before it entered the round) and is
// evaluated once, on the first n-f counted; a sender counts once per
// (slot, phase, round), whatever it repeats. With maj = n/2+1 (and note n-f == maj for every n):
//
//	proposal round: broadcast the proposal (a Value, or null).
//	                On n-f proposals: state = 1 if some non-null value was
//	                proposed by >= maj of them (the "majority value" m),
//	                else state = 0.
//	phase p = 1, 2, ...
//	  round 1:      broadcast (STATE, p, state).
//	                On n-f states: vote = v if >= maj of them are v, else '?'.
//	  round 2:      broadcast (VOTE, p, vote).
//	                On n-f votes: if >= f+1 votes are v (not '?'): decide v;
//	                else if some vote is v: state = v;
//	                else state = coin(slot, p). Next phase.
//
// Deciding 1 decides the majority value m; deciding 0 decides null. The rules
// are in rules.go as pure functions with table tests. There is no cap on
// phases: each phase ends with all undecided replicas sharing a state with
// probability at least 1/2 (the common coin), after which the next phase
// decides.
//
// The common coin is coin(slot, phase) = the low bit of the first byte of
// HMAC-SHA256(secret, slot as 8 bytes big-endian || phase as 4 bytes
// big-endian) under the cluster secret (Config.Secret): the same on every
// replica, never a fixed-seed generator, and unpredictable to a scheduler
// that lacks the secret.
//
// # Invariants
//
// These hold when every replica follows the protocol (crash faults only);
// the tests check the observable ones over thousands of simulated slots.
//
//  1. Counted once: a tally keeps the first message of each sender per
//     (slot, phase, round); duplicates, retransmissions and conflicting
//     repeats never change a round's outcome.
//  2. At most one majority value per slot: a value needs maj proposers,
//     each replica proposes once per slot (Propose refuses a second
//     proposal), and two sets of maj replicas intersect.
//  3. No conflicting votes: a vote v needs maj = n-f states v from distinct
//     senders, one state per sender per phase, so no phase has both a 0 and
//     a 1 vote.
//  4. Agreement: a replica that decides v in phase p saw f+1 votes v; every
//     other replica's n-f votes of phase p then include a v (f+1 + n-f > n)
//     and, by 3, no other value, so it decides v or adopts state v; phase p+1
//     has only states v and everyone decides v there. A replica that stops
//     after deciding still answers every message of the slot with a
//     decision announcement (once its decision is durable, see
//     Engine.Persisted), so the others terminate even when f replicas are
//     down.
//  5. Validity: a decision of 1 names the majority value, which some replica
//     proposed. If every replica's proposal is the same value, every state
//     of phase 1 is 1 and phase 1 decides it. If no value has maj
//     proposers, every state of phase 1 is 0 and phase 1 decides null.
//  6. The majority value is always known where it is needed: a state 1, a
//     vote 1 and a vote '?' carry m's digest. A phase-1 state 1 comes from
//     seeing m's majority; a vote 1 from n-f states 1; a vote '?' from
//     states that were not unanimous, hence including a 1; a later state 1
//     from a vote 1 or from the coin after n-f votes '?'. So whoever decides
//     1 knows m's digest.
//  7. The majority value's payload is held by whoever decides by its own
//     votes: its n-f proposals (maj of them) intersect m's maj proposers.
//     That is why a replica announcing its decision names the value by
//     digest only (the announcement is n-1 messages per slot; the peers
//     that took part in the proposal round hold the value). A replica that
//     learns a decision without holding the value asks its peers
//     (KindCatchUp with the digest, repeated on Tick) until one answers with
//     it; answers to late messages and catch-up requests carry the value.
//     Decisions are reported only with their value.
//
// # Messages and encoding
//
// Message carries every kind (see its documentation for which fields each
// uses). Message.MarshalBinary encodes one message as a version byte
// followed by a msgpack array; DecodeMessage validates and bounds every
// length (Value.ID by MaxIDLen, the payload by a caller-given bound) before
// allocating, returns errors wrapping ErrMalformed and never panics
// (FuzzDecodeMessage). Messages carry no sender: the transport knows which
// peer a message came from and passes its index to Step.
//
// # Driving an Engine
//
// One goroutine owns the engine:
//
//	e, err := wmvc.NewEngine(wmvc.Config{ID: self, N: n, Secret: secret,
//		Floor: firstUnappliedSlot})
//	for slot := range mayHaveVoted { e.Learn(slot) } // after a restart, see below
//	for {
//		select {
//		case in := <-received: // (peer index, bytes) from the transport
//			m, err := wmvc.DecodeMessage(in.Data, maxPayload)
//			if err != nil { log and drop; continue }
//			e.Step(in.From, m) // errors only for invalid input: log and drop
//		case <-ticker.C: // e.g. every few round trips
//			e.Tick()
//		case b := <-batches: // next batch to order
//			persist "proposed up to slot" (see restarts), then
//			e.Propose(nextSlot, &wmvc.Value{ID: b.ID, Payload: b.Bytes})
//			nextSlot++
//		}
//		rd := e.Ready()
//		for _, env := range rd.Messages { // Broadcast: every other replica
//			b, _ := env.Msg.MarshalBinary(); send(env.To, b) // fire and forget
//		}
//		for _, d := range rd.Decisions { // any slot order
//			persist (slot, d.Value) durably; then e.Persisted(d.Slot)
//			(the engine announces a decision only then), apply slots in
//			order, a nil Value applying nothing, and answer clients only
//			after that; if one's own batch was not the decided value,
//			propose it again in a later slot.
//		}
//		for _, slot := range rd.Joins { // slots peers work on (or below them)
//			e.Propose(slot, nextBatchOrNil)
//		}
//		for _, st := range rd.Stale { // a lagging peer, slot compacted here
//			send(st.From, wmvc.DecisionMessage(st.Slot, valueFromLog(st.Slot)))
//		}
//		e.Compact(appliedAndPersistedThrough) // bounds memory
//	}
//
// Transport: messages may be lost, duplicated, delayed and reordered; the
// engine only needs Tick to be called periodically (it re-sends the current
// round's message, with Ask, to the peers it has not heard from, and peers
// answer with their message for that round or with the decision). A
// per-peer ordered, fire-and-forget byte channel is enough.
//
// Persistence: a decision is final once reached; persist it before
// answering clients so a restarted replica does not forget what it told
// them, and report it with Engine.Persisted: the engine tells no peer of a
// decision it reached by its own votes before that, so a decision that
// any peer heard of survives its maker's crash (recovery of undecided
// slots relies on it). A replica must never vote in a slot twice with different state, so
// after a restart it may not propose in slots it may have proposed in
// before the crash: persist a high-water mark of proposed slots before
// proposing past it (reserving slots in chunks keeps this cheap), restart
// with Config.Floor at the first unapplied slot, and call Learn for every
// slot from the floor to the high-water mark: the engine then asks peers for
// those decisions without voting. Slots above the mark are proposed in as
// usual.
//
// Memory: the engine keeps state for slots in [Floor, Floor+SlotWindow) and
// for phases up to PhaseWindow ahead of a slot's current one; further
// messages are dropped (and asked for again later). Per slot it holds at
// most one proposal per replica, a few bytes per phase for its own states
// and votes, and after the decision only the decided value.
package wmvc
