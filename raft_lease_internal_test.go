package abacus

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
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
