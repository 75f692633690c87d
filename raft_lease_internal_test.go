package abacus

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// openOneNode opens a one-node Raft cluster and waits until it accepts
// writes.
func openOneNode(t *testing.T) (*Node, *raftReplicator) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.ID, cfg.Dir, cfg.BindAddr = "n1", t.TempDir(), "127.0.0.1:0"
	cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 100*time.Millisecond, 100*time.Millisecond, 50*time.Millisecond
	cfg.ReadLease, cfg.DriftMargin = 50*time.Millisecond, 10*time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := n.Add(ctx, "warm", 1); err != nil {
		t.Fatal(err)
	}
	return n, n.repl.(*raftReplicator)
}

// TestBatcherHoldsTermWriteWait hands the batcher a proposal that was
// admitted before the current term began (it passed an earlier term's
// checks and is already queued) while the current term's write wait is
// still running: the batcher must not submit it.
func TestBatcherHoldsTermWriteWait(t *testing.T) {
	n, r := openOneNode(t)
	cur := r.term.Load()
	// The same node leading the same Raft term, as its state would be
	// right after taking office again: ready, but inside the wait.
	fresh := &leaderTerm{
		term:     cur.term,
		took:     time.Now(),
		servesAt: time.Now().Add(time.Hour),
		ready:    cur.ready,
		ctx:      cur.ctx,
		cancel:   func() {},
		baseSM:   cur.baseSM,
		baseMono: cur.baseMono,
		last:     cur.last,
	}
	r.term.Store(fresh)
	defer r.term.CompareAndSwap(fresh, cur)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pd, err := r.enqueue(ctx, Proposal{Cmd: Command{Op: OpAdd, Name: "queued", Delta: 1}})
	if err != nil {
		t.Fatal(err)
	}
	o := r.await(ctx, pd)
	if !errors.Is(o.err, ErrUnavailable) {
		t.Fatalf("a proposal reached the batcher inside its term's write wait: %+v %v; want ErrUnavailable", o.res, o.err)
	}
	if got := n.fsm.Read(Command{Op: OpGet, Name: "queued"}); got.Exists {
		t.Fatalf("the refused proposal applied: %+v", got)
	}
}

// TestEntryAppendedInAnotherTermIsSkipped: an entry whose leader made it
// for one term but which Raft appended in another changes nothing, on
// every replica alike, and reports that it was not applied; entries of the
// right term, and entries without a term, apply.
func TestEntryAppendedInAnotherTermIsSkipped(t *testing.T) {
	add := func(name string) []byte {
		b, err := EncodeEntry([]Proposal{{Cmd: Command{Op: OpAdd, Name: name, Delta: 1}}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	logs := []*raft.Log{
		{Index: 1, Term: 3, Type: raft.LogCommand, Data: add("old-format")},
		{Index: 2, Term: 3, Type: raft.LogCommand, Data: add("made-for-3"), Extensions: termExtension(3)},
		{Index: 3, Term: 5, Type: raft.LogCommand, Data: add("made-for-4"), Extensions: termExtension(4)},
		{Index: 4, Term: 5, Type: raft.LogCommand, Data: add("made-for-5"), Extensions: termExtension(5)},
	}
	for replica := range 2 {
		fsm := NewFSM(FSMOptions{}, nil)
		h := raftFSMHook{RaftFSM{fsm}, make(chan struct{}, 1)}
		var out []any
		if replica == 0 {
			out = h.ApplyBatch(logs)
		} else {
			for _, l := range logs {
				out = append(out, h.Apply(l))
			}
		}
		if len(out) != len(logs) {
			t.Fatalf("replica %d: %d results for %d logs", replica, len(out), len(logs))
		}
		for i, name := range []string{"old-format", "made-for-3", "made-for-4", "made-for-5"} {
			got := fsm.Read(Command{Op: OpGet, Name: name})
			err, isErr := out[i].(error)
			if name == "made-for-4" {
				if !isErr || !errors.Is(err, ErrUnavailable) || got.Exists {
					t.Errorf("replica %d: misplaced entry: result %v, counter %+v; want ErrUnavailable and nothing applied", replica, out[i], got)
				}
				continue
			}
			if isErr || got.Value != 1 {
				t.Errorf("replica %d: %s: result %v, counter %+v; want applied", replica, name, out[i], got)
			}
		}
		if fsm.Index() != 4 {
			t.Errorf("replica %d: applied index %d, want 4", replica, fsm.Index())
		}
	}
}

// TestLeaseExtensionAfterTransferStartIsDiscarded: a round that began
// before a leadership transfer started extends nothing, even when the
// transfer has failed and ended by the time the round completes; nor does
// a round that began during the transfer. A round begun after it does.
func TestLeaseExtensionAfterTransferStartIsDiscarded(t *testing.T) {
	var l readLease
	const term = 7
	until := time.Now().Add(time.Hour)

	before := l.generation()
	l.beginTransfer()
	during := l.generation()
	if l.extend(during, term, until) {
		t.Fatal("a round extended the lease during a transfer")
	}
	l.endTransfer()
	if l.extend(before, term, until) {
		t.Fatal("a round begun before the transfer extended the lease after it")
	}
	if l.extend(during, term, until) {
		t.Fatal("a round begun during the transfer extended the lease after it")
	}
	if _, ok := l.remaining(term, time.Now()); ok {
		t.Fatal("lease valid after discarded extensions")
	}
	after := l.generation()
	if !l.extend(after, term, until) {
		t.Fatal("a round begun after the transfer was refused")
	}
	if _, ok := l.remaining(term, time.Now()); !ok {
		t.Fatal("no lease after a round begun after the transfer")
	}
	// A change of leadership revokes the lease and discards rounds under way.
	l.reset()
	if _, ok := l.remaining(term, time.Now()); ok || l.extend(after, term, until) {
		t.Fatal("lease survived a change of leadership")
	}
}

// TestLeaseTransferDuringRound runs a real round on a one-node cluster
// and starts a transfer while the round is between its send time and its
// extension: the round extends nothing.
func TestLeaseTransferDuringRound(t *testing.T) {
	_, r := openOneNode(t)
	lt := r.term.Load()
	gen := r.lease.generation()
	sent := time.Now()
	if err := r.gatherAcks(lt, r.lease.rounds.Add(1)); err != nil {
		t.Fatal(err)
	}
	r.lease.beginTransfer()
	r.lease.endTransfer() // a one-node cluster has no one to transfer to
	if r.lease.extend(gen, lt.term, sent.Add(r.cfg.ReadLease)) {
		t.Fatal("a round begun before the transfer extended the lease")
	}
	// Only a round that begins after the transfer restores the lease.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.confirm.wait(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := r.lease.remaining(lt.term, time.Now()); !ok {
		t.Fatal("no lease after a fresh round")
	}
}

// TestServeLeaseAsk: a follower acknowledges only the leader it knows, in
// its own term, and echoes the round; anything else is refused, and a
// malformed request changes nothing.
func TestServeLeaseAsk(t *testing.T) {
	_, r := openOneNode(t)
	term := r.raft.CurrentTerm()
	// The node under test leads, so it acknowledges no one.
	if resp := r.serveLeaseAsk("n1", encodeLeaseAsk(term, 1)); len(resp) == 0 || resp[0] != statusUnavailable {
		t.Fatalf("a leader acknowledged a round: %q", resp)
	}
	for _, payload := range [][]byte{nil, {1, 2, 3}, make([]byte, leaseAskLen+1)} {
		if resp := r.serveLeaseAsk("n1", payload); len(resp) == 0 || resp[0] != statusInvalid {
			t.Fatalf("malformed request %x: %q", payload, resp)
		}
	}
	if resp := r.serveLeaseAsk("n2", encodeLeaseAsk(term+1, 9)); len(resp) == 0 || resp[0] != statusUnavailable {
		t.Fatalf("a round of another term was acknowledged: %q", resp)
	}
}
