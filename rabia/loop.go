package rabia

import (
	"context"
	"slices"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/rabia/internal/wmvc"
)

// The loop: the one goroutine that owns the consensus engine, the batch
// queue and the bookkeeping of open slots.

// loop owns the engine and the queue.
func (r *replica) loop() {
	ticker := time.NewTicker(r.opts.TickInterval)
	defer ticker.Stop()
	settle := time.NewTimer(time.Hour)
	defer settle.Stop()
	drain, draining := r.drain, false
	r.pump(settle)
	for {
		select {
		case <-r.ctx.Done():
			return
		case in := <-r.inbox:
			r.handle(in)
		more:
			for range 512 {
				select {
				case in := <-r.inbox:
					r.handle(in)
				default:
					break more
				}
			}
		case v := <-r.own:
			r.enqueue(v, true)
		case <-ticker.C:
			r.trimMark()
			r.engine.Tick()
			r.broadcast(encodeStatusFrame(r.applied.Load(), r.stamp(0)))
			r.maybeCatchUp()
			r.maybeRecover()
			r.maybeTick()
		case <-r.appliedCh:
			r.onApplied()
		case <-r.durableCh:
			r.onDurable()
		case <-settle.C:
		case <-drain:
			drain, draining = nil, true
		}
		r.pump(settle)
		// Draining ends once no slot of ours is open and every decision
		// made here is on disk and announced, so that peers still deciding
		// can learn it before this replica stops.
		if draining && len(r.open) == 0 && len(r.unsynced) == 0 {
			close(r.drained)
			draining = false
		}
	}
}

func (r *replica) handle(in inbound) {
	if in.kind != inFetched && in.kind != inRecover {
		r.lastHeard[in.from] = time.Now()
	}
	switch in.kind {
	case inConsensus:
		if m := &in.msg; m.Kind == wmvc.KindProposal && r.inWindow(m.Slot) {
			if _, ok := r.seen[m.Slot]; !ok {
				r.seen[m.Slot] = m.Value
			}
		}
		if err := r.engine.Step(in.from, in.msg); err != nil {
			r.log.Debug("rabia: message refused", "from", in.from, "err", err)
		}
	case inBatch:
		r.enqueue(in.v, false)
	case inStatus:
		r.peerApplied[in.from] = max(r.peerApplied[in.from], in.applied)
	case inRecover:
		r.recoverStep(in.rec)
	case inFetched:
		if in.d.slot < r.engine.Floor() || !r.inWindow(in.d.slot) {
			return
		}
		if err := r.engine.Step(in.from, wmvc.DecisionMessage(in.d.slot, in.d.v)); err != nil {
			r.log.Debug("rabia: fetched decision refused", "slot", in.d.slot, "err", err)
		}
	}
}

// enqueue adds a batch to the queue unless it was decided already.
func (r *replica) enqueue(v *wmvc.Value, own bool) {
	if _, ok := r.decidedIDs[string(v.ID)]; ok {
		return
	}
	if !own && r.q.Len() >= maxQueued {
		return // its proposer still holds it
	}
	r.q.Push(v, time.Now())
	if own {
		r.ownQ = append(r.ownQ, v)
	}
}

// pump proposes where it should and processes the engine's output until
// there is none.
func (r *replica) pump(settle *time.Timer) {
	for range 64 {
		rd := r.engine.Ready()
		r.joins = append(r.joins, rd.Joins...)
		plan := r.plan(settle)
		if len(plan) > 0 {
			var top uint64
			for _, p := range plan {
				top = max(top, p.slot)
			}
			if !r.hasHWM || top > r.hwm {
				// Reserve slots ahead so that the mark costs one sync per
				// markAhead slots; Close records the exact mark.
				if err := r.saveMark(top + markAhead); err != nil {
					// Without the mark a restart could vote twice: propose
					// nothing, put the batches back.
					r.log.Error("rabia: cannot persist proposal mark", "err", err)
					for _, p := range plan {
						if p.v != nil {
							r.requeue(p.v)
						}
					}
					plan = nil
				}
			}
		}
		for _, p := range plan {
			if err := r.engine.Propose(p.slot, p.v); err != nil {
				r.log.Debug("rabia: propose refused", "slot", p.slot, "err", err)
				if p.v != nil {
					r.requeue(p.v)
				}
				continue
			}
			r.open[p.slot] = p.v
			if p.start {
				r.mine[p.slot] = true
			}
			if p.v != nil {
				r.openIDs[string(p.v.ID)] = p.slot
			}
			r.next = max(r.next, p.slot+1)
			r.proposedTop, r.hasTop = max(r.proposedTop, p.slot), true
			r.lastPropose = time.Now()
		}
		if len(plan) > 0 {
			more := r.engine.Ready()
			rd.Messages = append(rd.Messages, more.Messages...)
			rd.Decisions = append(rd.Decisions, more.Decisions...)
			rd.Stale = append(rd.Stale, more.Stale...)
			rd.Joins = append(rd.Joins, more.Joins...)
			r.joins = append(r.joins, more.Joins...)
		}
		r.send(rd.Messages)
		r.decide(rd.Decisions)
		for _, st := range rd.Stale {
			if d, ok := r.store.Get(st.Slot); ok {
				r.sendConsensus(st.From, wmvc.DecisionMessage(st.Slot, d.v))
			}
		}
		if len(plan) == 0 && rd.Empty() {
			return
		}
	}
}

type proposal struct {
	slot  uint64
	v     *wmvc.Value
	start bool // a slot this replica starts (see startSlot), not one it joins
}

// plan picks what to propose: in every slot peers started, what its
// starter proposed (see joinValue); then new slots of this replica's turn
// (see startSlot) while fewer than Pipeline slots it started are open.
func (r *replica) plan(settle *time.Timer) []proposal {
	select {
	case <-r.drain:
		r.joins = nil
		return nil
	default:
	}
	var out []proposal
	wake := time.Duration(-1)
	wakeIn := func(d time.Duration) {
		if wake < 0 || d < wake {
			wake = d
		}
	}
	defer func() {
		if wake >= 0 {
			settle.Reset(wake)
		}
	}()
	planned := map[uint64]bool{}
	peersAhead := slices.Max(r.peerApplied)
	now := time.Now()
	joins := r.joins
	r.joins = r.joins[:0:0]
	for _, s := range joins {
		if _, ok := r.engine.Decided(s); ok || s < r.engine.Floor() || planned[s] {
			delete(r.joinSince, s)
			continue
		}
		if _, ok := r.open[s]; ok {
			delete(r.joinSince, s)
			continue
		}
		var v *wmvc.Value
		if s >= peersAhead { // peers have not all moved past it
			seen, ok := r.seen[s]
			switch {
			case ok:
				v = r.joinValue(seen)
			case r.owns(s, now):
				// Peers are waiting for this replica to start its slot:
				// with its own batch, or null when it has none.
				v, _ = r.nextStart(now, wakeIn)
			default:
				// Activity on a later slot revealed this one: give its
				// starter's proposal a moment to arrive and join with it.
				since, waiting := r.joinSince[s]
				if !waiting {
					since = now
					r.joinSince[s] = now
				}
				if wait := since.Add(joinWait).Sub(now); wait > 0 {
					r.joins = append(r.joins, s)
					wakeIn(wait)
					continue
				}
			}
		}
		delete(r.joinSince, s)
		planned[s] = true
		out = append(out, proposal{slot: s, v: v})
	}
	started := len(r.mine)
	cand := max(r.next, peersAhead) // slots below peersAhead are decided
	for started < r.opts.Pipeline {
		slot, ok := r.startSlot(&cand, planned, now)
		if !ok {
			break
		}
		v, ok := r.nextStart(now, wakeIn)
		if !ok {
			break
		}
		planned[slot] = true
		started++
		out = append(out, proposal{slot: slot, v: v, start: true})
	}
	return out
}

// startSlot finds the lowest slot from *cand on that this replica may
// start: one it has not proposed in, not decided, and that it owns. Slot s
// belongs to replica s mod n; when that replica has been silent for a few
// ticks, to the next one in index order that is not. Starting only its
// own slots keeps two replicas from putting different batches into one
// slot at the same moment, the main cause of null decisions.
func (r *replica) startSlot(cand *uint64, planned map[uint64]bool, now time.Time) (uint64, bool) {
	limit := *cand + uint64(2*len(r.members)*r.opts.Pipeline)
	for ; *cand < limit; *cand++ {
		c := *cand
		if !r.inWindow(c + 1) {
			return 0, false
		}
		if planned[c] {
			continue
		}
		if _, ok := r.open[c]; ok {
			continue
		}
		if _, ok := r.engine.Decided(c); ok {
			continue
		}
		if r.owns(c, now) {
			*cand = c + 1
			return c, true
		}
	}
	return 0, false
}

func (r *replica) owns(slot uint64, now time.Time) bool {
	n := len(r.members)
	o := int(slot % uint64(n))
	for k := range n {
		i := (o + k) % n
		if i == r.self {
			return true
		}
		if r.alive(i, now) {
			return false
		}
	}
	return true
}

// joinValue picks this replica's proposal for a slot a peer started with
// v: v itself, null included, when this replica has not proposed it
// elsewhere and it is not decided (so the replicas agree at once and the
// slot decides in its first phase); otherwise its queue head, or null.
func (r *replica) joinValue(v *wmvc.Value) *wmvc.Value {
	if v == nil {
		return nil
	}
	id := string(v.ID)
	_, done := r.decidedIDs[id]
	_, busy := r.openIDs[id]
	if p, ok := batchProposer(v.ID); ok && p < len(r.members) && !done && !busy {
		r.q.Remove(id)
		return v
	}
	if e, ok := r.q.Pop(); ok {
		return e.v
	}
	return nil
}

func (r *replica) send(envs []wmvc.Envelope) {
	for _, env := range envs {
		frame, err := env.Msg.AppendBinary([]byte{frameConsensus})
		if err != nil {
			r.log.Error("rabia: encoding message", "err", err)
			continue
		}
		if env.To == wmvc.Broadcast {
			r.broadcast(frame)
		} else {
			r.sendTo(env.To, frame)
		}
	}
}

func (r *replica) sendConsensus(to int, m wmvc.Message) {
	r.send([]wmvc.Envelope{{To: to, Msg: m}})
}

// decide records decisions: the decided batch leaves the queue for good,
// a batch of this replica's that lost its slot goes back, and the
// decision goes to the applier.
func (r *replica) decide(ds []wmvc.Decision) {
	if len(ds) == 0 {
		return
	}
	batch := make([]decided, 0, len(ds))
	for _, d := range ds {
		if d.Value != nil {
			id := string(d.Value.ID)
			r.decidedIDs[id] = d.Slot
			r.q.Remove(id)
		}
		delete(r.seen, d.Slot)
		if mine, ok := r.open[d.Slot]; ok {
			r.closeSlot(d.Slot, mine)
			if mine != nil && (d.Value == nil || string(d.Value.ID) != string(mine.ID)) {
				if _, done := r.decidedIDs[string(mine.ID)]; !done {
					r.requeue(mine) // lost: first in line again
				}
			}
		}
		r.next = max(r.next, d.Slot+1)
		r.unsynced[d.Slot] = struct{}{}
		batch = append(batch, decided{slot: d.Slot, v: d.Value})
	}
	r.applyMu.Lock()
	r.applyQ = append(r.applyQ, batch...)
	r.applyMu.Unlock()
	select {
	case r.applyWake <- struct{}{}:
	default:
	}
}

// onDurable lets the engine announce the decisions the applier has
// persisted.
//
// A decision reached by this replica's votes is told to no peer before it
// is on disk (wmvc.Engine.Persisted). Announcing it earlier is unsafe with
// recovery (recovery.go): a replica that crashes between its decision and
// the sync restarts without it and may only learn the slot; when a
// majority does so, recovery abandons the slot everywhere and ends it
// null, and an announcement still in flight from before the crash would
// then teach a replica that had abandoned the slot the lost value, two
// decisions for one slot. With announcements held until the decision is
// durable, every decision a peer can hear of is in the log of a replica
// that reports the slot decided after any restart, so recovery never
// ends such a slot null. Ignoring announcements for abandoned slots
// instead would not do: a slot is abandoned before the round learns
// whether some replica had decided it, and then the abandoned replicas
// must learn that decision.
func (r *replica) onDurable() {
	r.applyMu.Lock()
	slots := r.durableQ
	r.durableQ = nil
	r.applyMu.Unlock()
	for _, s := range slots {
		delete(r.unsynced, s)
		r.engine.Persisted(s)
	}
}

// trimMark lowers the persisted mark from its reservation to the highest
// slot really proposed in once this replica has been idle for a while (no
// open slot, nothing proposed for idleMark), so that a crash of the whole
// cluster while it is quiet leaves no reserved slot learn-only on every
// replica (such a slot would need recovery, see recovery.go).
func (r *replica) trimMark() {
	if len(r.open) > 0 || !r.hasTop || !r.hasHWM || r.hwm <= r.proposedTop || time.Since(r.lastPropose) < idleMark {
		return
	}
	if err := r.saveMark(r.proposedTop); err != nil {
		r.log.Error("rabia: recording the proposal mark", "err", err)
	}
}

// saveMark persists the proposal mark m and then takes it as this
// replica's.
func (r *replica) saveMark(m uint64) error {
	if err := r.store.SaveMark(m); err != nil {
		return err
	}
	r.hwm, r.hasHWM = m, true
	return nil
}

// requeue puts back a batch that did not get the slot it was proposed in:
// first in line (its id orders it before newer batches, and this
// replica's own batches go to the front of its start queue).
func (r *replica) requeue(v *wmvc.Value) {
	r.q.Push(v, time.Time{})
	if p, ok := batchProposer(v.ID); ok && p == r.self {
		r.ownQ = append([]*wmvc.Value{v}, r.ownQ...)
	}
}

// nextStart takes the batch this replica should start a slot with: its
// own oldest batch still queued; failing that, one whose proposer has gone
// silent and whose slots fall to this replica (see owns), once it has
// waited Settle here.
func (r *replica) nextStart(now time.Time, wakeIn func(time.Duration)) (*wmvc.Value, bool) {
	for len(r.ownQ) > 0 {
		v := r.ownQ[0]
		r.ownQ[0] = nil
		r.ownQ = r.ownQ[1:]
		if r.q.Has(string(v.ID)) {
			r.q.Remove(string(v.ID))
			return v, true
		}
	}
	// Takeover: the queued batches of silent peers, in heap order.
	for _, e := range r.q.h {
		p, ok := batchProposer(e.v.ID)
		if !ok || p == r.self || p >= len(r.members) || !r.takesOver(p, now) {
			continue
		}
		if wait := e.arrived.Add(r.opts.Settle).Sub(now); wait > 0 {
			wakeIn(wait)
			continue
		}
		r.q.Remove(string(e.v.ID))
		return e.v, true
	}
	return nil, false
}

// takesOver reports whether peer p has been silent and this replica is
// the first replica after it, in index order, that has not.
func (r *replica) takesOver(p int, now time.Time) bool {
	n := len(r.members)
	for k := 1; k < n; k++ {
		i := (p + k) % n
		if i == r.self {
			return !r.alive(p, now)
		}
		if r.alive(i, now) {
			return false
		}
	}
	return false
}

func (r *replica) alive(i int, now time.Time) bool {
	return i == r.self || now.Sub(r.lastHeard[i]) < silentAfter*r.opts.TickInterval
}

// closeSlot forgets this replica's proposal in slot.
func (r *replica) closeSlot(slot uint64, mine *wmvc.Value) {
	delete(r.open, slot)
	delete(r.mine, slot)
	if mine != nil && r.openIDs[string(mine.ID)] == slot {
		delete(r.openIDs, string(mine.ID))
	}
}

// onApplied compacts the engine behind the applier and, after a snapshot
// from a peer replaced the state, re-queues this replica's batches whose
// fate the snapshot hides (the exactly-once table answers them).
func (r *replica) onApplied() {
	applied := r.applied.Load()
	if applied > engineRetain && applied-engineRetain > r.engine.Floor() {
		r.engine.Compact(applied - engineRetain - 1)
	}
	floor := r.engine.Floor()
	if r.restored.Swap(false) {
		if floor < applied {
			r.engine.Compact(applied - 1)
			floor = applied
		}
		r.waitMu.Lock()
		for id, ob := range r.waiting {
			delete(r.decidedIDs, id)
			r.requeue(ob.v)
		}
		r.waitMu.Unlock()
	}
	for s, mine := range r.open {
		if s < floor {
			r.closeSlot(s, mine)
			if mine != nil {
				if _, done := r.decidedIDs[string(mine.ID)]; !done {
					r.requeue(mine)
				}
			}
		}
	}
	for s := range r.seen {
		if s < floor {
			delete(r.seen, s)
		}
	}
	for s := range r.unsynced {
		if s < applied { // applied, hence on disk
			delete(r.unsynced, s)
		}
	}
	r.next = max(r.next, floor)
	if applied > decidedMemory && applied-r.lastPrune >= decidedMemory/16 {
		r.lastPrune = applied
		for id, s := range r.decidedIDs {
			if s+decidedMemory < applied {
				delete(r.decidedIDs, id)
			}
		}
	}
}

// maybeTick proposes an expiry tick when state-machine time, as this
// replica would stamp it, has reached the next deadline. Every replica
// does so; duplicate ticks are harmless.
func (r *replica) maybeTick() {
	deadline, ok := r.fsm.NextDeadline()
	if !ok || r.stamp(0) < deadline || !r.ticking.CompareAndSwap(false, true) {
		return
	}
	r.goroutine(func() {
		defer r.ticking.Store(false)
		ctx, cancel := context.WithTimeout(r.ctx, 2*time.Second)
		defer cancel()
		if _, err := r.Propose(ctx, abacus.Proposal{Cmd: abacus.Command{Op: abacus.OpTick}}); err != nil {
			r.log.Debug("rabia: tick failed", "err", err)
		}
	})
}
