package rabia

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/rabia/internal/wmvc"
)

// applier persists decisions (one sync for all that arrived together),
// then applies every slot whose predecessors are applied, in slot order,
// and answers the callers of this replica's batches. Nothing is answered
// before the decision that carries it is on disk.
func (r *replica) applier() {
	pend := map[uint64]*wmvc.Value{}
	lastSnap := r.applied.Load()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	wake := func() {
		select {
		case r.applyWake <- struct{}{}:
		default:
		}
	}
	wake() // decisions found in the log beyond a gap at startup
	for {
		select {
		case <-r.applyWake:
		case <-retry.C:
		case <-r.ctx.Done():
			return
		}
		r.applyMu.Lock()
		ds, snap := r.applyQ, r.restoreQ
		r.applyQ, r.restoreQ = nil, nil
		r.applyMu.Unlock()
		applied := r.applied.Load()
		if snap != nil {
			if slots, ok := r.install(snap); ok {
				for s := range pend {
					if s < slots {
						delete(pend, s)
					}
				}
				applied, lastSnap = slots, slots
			}
		}
		var fresh []decided
		for _, d := range ds {
			if d.slot < applied {
				continue
			}
			if _, ok := pend[d.slot]; ok {
				continue
			}
			fresh = append(fresh, d)
		}
		if err := r.store.Append(fresh); err != nil {
			r.log.Error("rabia: cannot persist decisions; retrying", "err", err)
			r.applyMu.Lock()
			r.applyQ = append(fresh, r.applyQ...)
			r.applyMu.Unlock()
			retry.Reset(100 * time.Millisecond)
			continue
		}
		for _, d := range fresh {
			pend[d.slot] = d.v
		}
		r.persisted(ds)
		start := applied
		applied = r.applyFrom(pend, applied)
		if applied != start || snap != nil {
			r.observe()
			r.applied.Store(applied)
			select {
			case r.appliedCh <- struct{}{}:
			default:
			}
		}
		if applied-lastSnap >= r.opts.SnapshotEvery {
			if err := r.snapshot(applied); err != nil {
				r.log.Error("rabia: snapshot failed", "err", err)
			}
			lastSnap = applied
		}
	}
}

// persisted hands the loop the slots of ds, whose decisions are now on
// disk (appended, or already in the log or a snapshot), so that the
// engine may announce them (see onDurable).
func (r *replica) persisted(ds []decided) {
	if len(ds) == 0 {
		return
	}
	r.applyMu.Lock()
	for _, d := range ds {
		r.durableQ = append(r.durableQ, d.slot)
	}
	r.applyMu.Unlock()
	select {
	case r.durableCh <- struct{}{}:
	default:
	}
}

// applyOne applies one decided slot at index slot+1 (a null decision only
// advances the index) and answers the callers of this replica's batch.
// applyFrom applies the decisions in pend from slot `from` on, while they
// follow each other, removes them from pend, and returns the first slot
// not applied.
func (r *replica) applyFrom(pend map[uint64]*wmvc.Value, from uint64) uint64 {
	for {
		v, ok := pend[from]
		if !ok {
			return from
		}
		delete(pend, from)
		r.applyOne(from, v)
		from++
	}
}

func (r *replica) applyOne(slot uint64, v *wmvc.Value) {
	if v == nil {
		r.fsm.Apply(slot+1, nil)
		return
	}
	results, err := r.fsm.ApplyEntry(slot+1, v.Payload)
	r.waitMu.Lock()
	ob := r.waiting[string(v.ID)]
	delete(r.waiting, string(v.ID))
	r.waitMu.Unlock()
	if ob == nil {
		return
	}
	<-r.credits
	r.metrics.ObserveCommit(time.Since(ob.start), len(ob.pend))
	if err != nil || len(results) != len(ob.pend) {
		for _, pd := range ob.pend {
			pd.ch <- outcome{err: fmt.Errorf("%w: batch was not applied as submitted: %v", abacus.ErrIndeterminate, err)}
		}
		return
	}
	for i, pd := range ob.pend {
		pd.ch <- outcome{res: results[i]}
	}
}

// snapshot saves the state machine, which covers every slot below
// applied, and compacts the log behind it.
func (r *replica) snapshot(applied uint64) error {
	snap := r.fsm.Snapshot()
	if snap.Index() != applied {
		return fmt.Errorf("state machine at index %d, %d slots applied", snap.Index(), applied)
	}
	if err := r.store.SaveSnapshot(applied, snap); err != nil {
		return err
	}
	keep := uint64(0)
	if applied > r.opts.TrailingSlots {
		keep = applied - r.opts.TrailingSlots
	}
	return r.store.Compact(keep)
}

// install replaces the state with a snapshot file received from a peer,
// if it is ahead of this replica.
func (r *replica) install(data []byte) (uint64, bool) {
	if len(data) < 8 {
		return 0, false
	}
	slots := binary.BigEndian.Uint64(data)
	if slots <= r.applied.Load() {
		return 0, false
	}
	// The state must be at index slots (slot s applies at index s+1): a
	// snapshot whose state is elsewhere is corrupt, and taking it would
	// apply every later slot at a wrong index. It is refused like a
	// damaged one: the current state stays, nothing is saved, and catch-up
	// fetches a snapshot again.
	if err := r.fsm.RestoreAt(bytes.NewReader(data[8:]), slots); err != nil {
		r.log.Error("rabia: snapshot from peer refused", "slots", slots, "err", err)
		return 0, false
	}
	if err := r.store.SaveSnapshotBytes(data); err != nil {
		r.log.Error("rabia: saving snapshot from peer", "err", err)
	}
	if err := r.store.Compact(slots); err != nil {
		r.log.Error("rabia: compacting log after snapshot", "err", err)
	}
	r.restored.Store(true)
	r.log.Info("rabia: installed snapshot from peer", "slots", slots)
	return slots, true
}

// RPC methods, served on the node's KindRPC connections.
const (
	methodFetch    uint8 = 1
	methodSnapshot uint8 = 2
	methodTime     uint8 = 3 // see syncTime
	methodRecover  uint8 = 4 // see recovery.go
)

const (
	fetchOK        byte = 0
	fetchCompacted byte = 1

	fetchMaxBytes   = 4 << 20
	fetchMaxRecords = 1024
	snapshotChunk   = 1 << 20
	// maxSnapshot bounds a snapshot fetched from a peer.
	maxSnapshot = 1 << 32
)

// maybeCatchUp starts fetching from the most advanced peer when this
// replica is far behind it, or has made no progress for a few ticks while
// a peer is ahead (for example after a partition healed).
func (r *replica) maybeCatchUp() {
	applied := r.applied.Load()
	best, bestApplied := -1, applied
	for i, a := range r.peerApplied {
		if i != r.self && a > bestApplied {
			best, bestApplied = i, a
		}
	}
	if applied != r.lastApplied {
		r.lastApplied, r.stuckTicks = applied, 0
	} else {
		r.stuckTicks++
	}
	if best < 0 || (bestApplied-applied < 64 && r.stuckTicks < 3) {
		return
	}
	if !r.fetching.CompareAndSwap(false, true) {
		return
	}
	r.goroutine(func() {
		defer r.fetching.Store(false)
		if err := r.fetch(best, applied); err != nil && r.ctx.Err() == nil {
			r.log.Debug("rabia: catch-up failed", "peer", r.members[best].ID, "err", err)
		}
	})
}

// fetch asks peer for the decisions from slot `from` on, or for its
// snapshot when it has compacted them away.
func (r *replica) fetch(peer int, from uint64) error {
	ctx, cancel := context.WithTimeout(r.ctx, 10*time.Second)
	defer cancel()
	req := binary.BigEndian.AppendUint64(nil, from)
	resp, err := r.rpc.Call(ctx, r.members[peer].Addr, methodFetch, req)
	if err != nil {
		return err
	}
	if len(resp) == 0 {
		return fmt.Errorf("%w: empty fetch response", abacus.ErrCorrupt)
	}
	if resp[0] == fetchCompacted {
		return r.fetchSnapshot(ctx, peer)
	}
	br := bufio.NewReader(bytes.NewReader(resp[1:]))
	for n := 0; n < fetchMaxRecords; n++ {
		d, _, err := readRecord(br)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if d.v != nil && len(d.v.Payload) > wmvc.DefaultMaxPayload {
			return fmt.Errorf("%w: fetched payload too large", abacus.ErrCorrupt)
		}
		select {
		case r.inbox <- inbound{kind: inFetched, from: peer, d: d}:
		case <-r.ctx.Done():
			return r.ctx.Err()
		}
	}
	return nil
}

func (r *replica) fetchSnapshot(ctx context.Context, peer int) error {
	var buf []byte
	var slots, want uint64
	for {
		req := binary.BigEndian.AppendUint64(nil, uint64(len(buf)))
		resp, err := r.rpc.Call(ctx, r.members[peer].Addr, methodSnapshot, req)
		if err != nil {
			return err
		}
		if len(resp) < 16 {
			return fmt.Errorf("%w: short snapshot chunk", abacus.ErrCorrupt)
		}
		s, total := binary.BigEndian.Uint64(resp), binary.BigEndian.Uint64(resp[8:])
		chunk := resp[16:]
		if total > maxSnapshot {
			return fmt.Errorf("%w: snapshot of %d bytes", abacus.ErrCorrupt, total)
		}
		if len(buf) == 0 {
			slots, want = s, total
			// Grown as chunks arrive: the announced size is the peer's word.
			buf = make([]byte, 0, min(total, snapshotChunk))
		} else if s != slots || total != want {
			return errors.New("peer's snapshot changed during the transfer")
		}
		if len(chunk) == 0 && uint64(len(buf)) < total {
			return fmt.Errorf("%w: empty snapshot chunk", abacus.ErrCorrupt)
		}
		if uint64(len(buf)+len(chunk)) > total {
			return fmt.Errorf("%w: snapshot longer than announced", abacus.ErrCorrupt)
		}
		buf = append(buf, chunk...)
		if uint64(len(buf)) == total {
			break
		}
	}
	if slots <= r.applied.Load() {
		return nil
	}
	r.applyMu.Lock()
	r.restoreQ = buf
	r.applyMu.Unlock()
	select {
	case r.applyWake <- struct{}{}:
	default:
	}
	return nil
}

// serveRPC answers catch-up requests from members.
func (r *replica) serveRPC(ctx context.Context, from string, method uint8, req []byte) ([]byte, error) {
	if _, ok := r.byID[from]; !ok {
		return nil, fmt.Errorf("%w: %q is not a member", abacus.ErrInvalidArgument, from)
	}
	switch method {
	case methodFetch:
		if len(req) != 8 {
			return nil, fmt.Errorf("%w: fetch request", abacus.ErrInvalidArgument)
		}
		slot := binary.BigEndian.Uint64(req)
		recs := r.store.Range(slot, fetchMaxBytes, fetchMaxRecords)
		if len(recs) == 0 && slot < r.applied.Load() {
			return []byte{fetchCompacted}, nil
		}
		out := []byte{fetchOK}
		for _, d := range recs {
			out = appendRecord(out, d)
		}
		return out, nil
	case methodSnapshot:
		if len(req) != 8 {
			return nil, fmt.Errorf("%w: snapshot request", abacus.ErrInvalidArgument)
		}
		off := binary.BigEndian.Uint64(req)
		if off > maxSnapshot {
			return nil, fmt.Errorf("%w: snapshot offset", abacus.ErrInvalidArgument)
		}
		slots, total, data, err := r.store.SnapshotChunk(int64(off), snapshotChunk)
		if err != nil {
			return nil, err
		}
		out := binary.BigEndian.AppendUint64(nil, slots)
		out = binary.BigEndian.AppendUint64(out, uint64(total))
		return append(out, data...), nil
	case methodTime:
		return r.serveTime(req)
	case methodRecover:
		return r.serveRecover(ctx, req)
	}
	return nil, fmt.Errorf("%w: unknown method %d", abacus.ErrInvalidArgument, method)
}
