package rabia

import (
	"context"
	"encoding/binary"
	"fmt"
	"slices"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/rabia/internal/wmvc"
)

// Recovery of slots nobody can decide any more.
//
// A replica keeps no votes on disk, so after a restart it only learns the
// slots it may have voted in (see doc.go, Durability and recovery). If a
// majority restarts at once while slots are in flight, more than f
// replicas only learn such a slot and the others cannot decide it: the
// protocol alone would stop there. A replica that only learns its next
// slot and has seen no progress for recoverAfter, while no peer is ahead,
// runs a round of recovery over the stuck range:
//
//  1. it asks every replica for its part in each slot of the range, and
//     keeps the prefix in which more than f replicas only learn and none
//     has decided;
//  2. it asks every replica to abandon those slots: each first raises its
//     persisted proposal mark over them (so that after a restart it still
//     never votes there), then stops voting in them, and answers with its
//     part, now learn-only unless it had decided;
//  3. with every replica's answer, it abandons the slots itself and
//     decides null each slot in which nobody had decided, in order, up to
//     the first one somebody had decided (that one is learnt as usual).
//
// Null is safe because no decision can contradict it: a replica that had
// decided a slot before it abandoned it said so in step 3, and after
// abandoning it nobody can decide it in the protocol. A decision lost in a
// crash (reached by votes, not yet synced) was told to nobody, since a
// replica announces only decisions it has persisted (see onDurable), so
// no late announcement can teach it to a replica that abandoned the slot. Two replicas that
// recover at once both decide null. Batches proposed in the slots return
// to their queues, as after any null decision. Every replica must answer,
// so a round waits for the cluster to be whole; step 1 keeps a merely slow
// slot, which the replicas that may vote can still decide, from being
// abandoned.

// A recovery step travels as methodRecover: request [u8 op][u64 from][u64
// to]; answer one byte per slot of [from, to], its wmvc.SlotState on the
// answering replica.
const (
	recoverQuery   byte = 0
	recoverAbandon byte = 1

	// recoverAfter is how long a replica that only learns its next slot
	// waits for progress before it starts a round.
	recoverAfter = time.Second
	// maxRecoverSlots bounds the range of one round.
	maxRecoverSlots = 1024
)

// recoverReq is a recovery step for the loop, which owns the engine.
type recoverReq struct {
	op       byte // recoverQuery, recoverAbandon, or recoverResolve (local only)
	from, to uint64
	reply    chan []byte // one wmvc.SlotState per slot; nil on failure
}

// recoverResolve, local only: abandon [from, to] and decide null the slots
// no replica decided (the prefix of [from, to]; to is the last of them).
const recoverResolve byte = 2

// maybeRecover starts a round of recovery when this replica is stuck on a
// slot it may only learn. Called on every tick by the loop.
func (r *replica) maybeRecover() {
	s := r.applied.Load()
	if len(r.members) == 1 || r.engine.State(s) != wmvc.SlotLearnOnly {
		r.stalled = time.Time{}
		return
	}
	if r.stalled.IsZero() || s != r.stalledAt {
		r.stalled, r.stalledAt = time.Now(), s
		return
	}
	if time.Since(r.stalled) < recoverAfter || time.Since(time.Unix(0, r.lastRound.Load())) < recoverAfter ||
		slices.Max(r.peerApplied) > s || !r.recovering.CompareAndSwap(false, true) {
		return
	}
	to := s
	for to+1 < s+maxRecoverSlots && r.inWindow(to+1) && r.engine.State(to+1) == wmvc.SlotLearnOnly {
		to++
	}
	r.goroutine(func() {
		defer r.recovering.Store(false)
		defer func() { r.lastRound.Store(time.Now().UnixNano()) }()
		if err := r.recoverSlots(s, to); err != nil && r.ctx.Err() == nil {
			r.log.Debug("rabia: recovery round", "from", s, "to", to, "err", err)
		}
	})
}

// recoverSlots runs one round of recovery over [from, to].
func (r *replica) recoverSlots(from, to uint64) error {
	ctx, cancel := context.WithTimeout(r.ctx, 5*time.Second)
	defer cancel()
	parts, err := r.askAll(ctx, recoverQuery, from, to)
	if err != nil {
		return err
	}
	last, ok := stuckPrefix(parts, from, len(r.members))
	if !ok {
		return nil
	}
	if parts, err = r.askAll(ctx, recoverAbandon, from, last); err != nil {
		return err
	}
	end, ok := abandonedPrefix(parts, from)
	if !ok {
		return nil
	}
	r.log.Warn("rabia: ending slots nobody can decide as null", "from", from, "to", end)
	_, err = r.askLoop(ctx, recoverResolve, from, end)
	return err
}

// stuckPrefix returns the last slot of the longest prefix of [from, ...]
// in which more than f replicas only learn and none has decided.
func stuckPrefix(parts [][]byte, from uint64, n int) (uint64, bool) {
	f := (n - 1) / 2
	width := len(parts[0])
	for k := range width {
		learners := 0
		for _, p := range parts {
			switch wmvc.SlotState(p[k]) {
			case wmvc.SlotDecided:
				return from + uint64(k) - 1, k > 0
			case wmvc.SlotLearnOnly:
				learners++
			}
		}
		if learners <= f {
			return from + uint64(k) - 1, k > 0
		}
	}
	return from + uint64(width) - 1, width > 0
}

// abandonedPrefix returns the last slot of the longest prefix of [from,
// ...] that every replica has abandoned (none had decided it, and none
// could not abandon it).
func abandonedPrefix(parts [][]byte, from uint64) (uint64, bool) {
	width := len(parts[0])
	for k := range width {
		for _, p := range parts {
			if wmvc.SlotState(p[k]) != wmvc.SlotLearnOnly {
				return from + uint64(k) - 1, k > 0
			}
		}
	}
	return from + uint64(width) - 1, width > 0
}

// askAll runs op over [from, to] on every replica, this one included, and
// returns their answers; it fails unless every replica answered.
func (r *replica) askAll(ctx context.Context, op byte, from, to uint64) ([][]byte, error) {
	type answer struct {
		i    int
		part []byte
		err  error
	}
	answers := make(chan answer, len(r.members))
	req := append([]byte{op}, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, from), to)...)
	for i, m := range r.members {
		go func() {
			var a answer
			if i == r.self {
				a.part, a.err = r.askLoop(ctx, op, from, to)
			} else {
				a.part, a.err = r.rpc.Call(ctx, m.Addr, methodRecover, req)
			}
			if a.err == nil && len(a.part) != int(to-from+1) {
				a.err = fmt.Errorf("%w: recovery answer of %d bytes for %d slots", abacus.ErrCorrupt, len(a.part), to-from+1)
			}
			a.i = i
			answers <- a
		}()
	}
	parts := make([][]byte, len(r.members))
	for range r.members {
		a := <-answers
		if a.err != nil {
			return nil, fmt.Errorf("replica %s: %w", r.members[a.i].ID, a.err)
		}
		parts[a.i] = a.part
	}
	return parts, nil
}

// serveRecover answers a peer's recovery step.
func (r *replica) serveRecover(ctx context.Context, req []byte) ([]byte, error) {
	if len(req) != 17 || (req[0] != recoverQuery && req[0] != recoverAbandon) {
		return nil, fmt.Errorf("%w: recovery request", abacus.ErrInvalidArgument)
	}
	from, to := binary.BigEndian.Uint64(req[1:]), binary.BigEndian.Uint64(req[9:])
	if to < from || to-from >= maxRecoverSlots {
		return nil, fmt.Errorf("%w: recovery range [%d, %d]", abacus.ErrInvalidArgument, from, to)
	}
	return r.askLoop(ctx, req[0], from, to)
}

// askLoop hands a recovery step to the loop and waits for its answer.
func (r *replica) askLoop(ctx context.Context, op byte, from, to uint64) ([]byte, error) {
	rq := &recoverReq{op: op, from: from, to: to, reply: make(chan []byte, 1)}
	select {
	case r.inbox <- inbound{kind: inRecover, rec: rq}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case part := <-rq.reply:
		if part == nil {
			return nil, fmt.Errorf("%w: recovery step refused", abacus.ErrUnavailable)
		}
		return part, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// recoverStep runs a recovery step on the loop and answers it.
func (r *replica) recoverStep(rq *recoverReq) {
	if rq.op != recoverQuery {
		// The promise never to vote in these slots must outlive a
		// restart: slots up to the persisted mark are only learnt after
		// one, and Close never lowers the mark below proposedTop.
		if !r.hasHWM || r.hwm < rq.to {
			if err := r.saveMark(rq.to); err != nil {
				r.log.Error("rabia: cannot persist proposal mark", "err", err)
				rq.reply <- nil
				return
			}
		}
		r.proposedTop, r.hasTop = max(r.proposedTop, rq.to), true
		r.next = max(r.next, rq.to+1)
	}
	part := make([]byte, 0, rq.to-rq.from+1)
	for s := rq.from; ; s++ {
		if rq.op != recoverQuery && r.inWindow(s) {
			_ = r.engine.Abandon(s)
		}
		if rq.op == recoverResolve && r.inWindow(s) {
			_ = r.engine.DecideNull(s)
		}
		part = append(part, byte(r.engine.State(s)))
		if s == rq.to {
			break
		}
	}
	rq.reply <- part
}
