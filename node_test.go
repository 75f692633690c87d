package abacus_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
)

func TestSingleNodeEmbedded(t *testing.T) {
	c := testcluster.New(t, 1)
	ctx := testcluster.Context(t, 10*time.Second)
	n := c.Nodes[0]
	for i := 1; i <= 5; i++ {
		got, err := n.Add(ctx, "hits", 1)
		if err != nil {
			t.Fatal(err)
		}
		if got.Value != int64(i) {
			t.Fatalf("add %d: value %d", i, got.Value)
		}
	}
	got, err := n.Get(ctx, "hits")
	if err != nil || got.Value != 5 || !got.Exists {
		t.Fatalf("get: %+v %v", got, err)
	}
}

func TestClusterWritesThroughEveryNode(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 20*time.Second)
	for round := 0; round < 10; round++ {
		for _, n := range c.Nodes {
			if _, err := n.Add(ctx, "c", 1); err != nil {
				t.Fatalf("%s: %v", n.ID(), err)
			}
		}
	}
	for _, n := range c.Nodes {
		got, err := n.Get(ctx, "c")
		if err != nil || got.Value != 30 {
			t.Fatalf("%s: %+v %v", n.ID(), got, err)
		}
	}
	_ = abacus.ErrClosed
}

// A node idle past the state machine's session TTL has its session
// forgotten; its next write starts a new session instead of failing.
func TestIdleSessionRestarts(t *testing.T) {
	c := testcluster.New(t, 1, func(_ int, cfg *abacus.Config) {
		cfg.FSM.SessionTTL = 200 * time.Millisecond
	})
	ctx := testcluster.Context(t, 10*time.Second)
	n := c.Nodes[0]
	if _, err := n.Add(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	// Writes from other sessions move state-machine time past the TTL.
	start := time.Now()
	for i := 0; time.Since(start) < 500*time.Millisecond; i++ {
		if _, err := n.Add(ctx, "b", 1, abacus.WithIdempotencyKey(fmt.Sprint("k", i))); err != nil {
			t.Fatal(err)
		}
	}
	got, err := n.Add(ctx, "a", 1)
	if err != nil || got.Value != 2 {
		t.Fatalf("write after the session expired: %+v %v", got, err)
	}
}

// TestRetryAfterSessionsEvicted: on a real node whose state machine keeps
// only four sessions, a keyed write and a write in a caller's session, then
// enough other writes and sessions to evict sessions, then the retries.
// Neither applies twice: the keyed retry returns its first result, and the
// retry in the evicted session fails with ErrSessionExpired.
func TestRetryAfterSessionsEvicted(t *testing.T) {
	c := testcluster.New(t, 1, func(_ int, cfg *abacus.Config) { cfg.FSM.MaxSessions = 4 })
	ctx := testcluster.Context(t, 10*time.Second)
	n := c.Nodes[0]
	first, err := n.Add(ctx, "pay-42", 1, abacus.WithIdempotencyKey("pay-42"))
	if err != nil {
		t.Fatal(err)
	}
	sess, err := n.OpenSession(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Add(ctx, "pay-42", 10, abacus.WithSession(sess, 1, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Add(ctx, "own", 1); err != nil { // opens the node's own session
		t.Fatal(err)
	}
	for i := range 8 {
		if _, err := n.Add(ctx, "other", 1, abacus.WithIdempotencyKey(fmt.Sprint("other-", i))); err != nil {
			t.Fatal(err)
		}
		if _, err := n.OpenSession(ctx); err != nil {
			t.Fatal(err)
		}
	}
	again, err := n.Add(ctx, "pay-42", 1, abacus.WithIdempotencyKey("pay-42"))
	if err != nil || again != first {
		t.Fatalf("keyed retry: %+v %v, want the first result %+v", again, err, first)
	}
	if _, err := n.Add(ctx, "pay-42", 10, abacus.WithSession(sess, 1, 1)); !errors.Is(err, abacus.ErrSessionExpired) {
		t.Fatalf("retry in an evicted session: %v, want ErrSessionExpired", err)
	}
	if got, err := n.Get(ctx, "pay-42"); err != nil || got.Value != 11 {
		t.Fatalf("pay-42 = %+v %v, want 11", got, err)
	}
	// The node's own session was evicted too; its next write opens another.
	if got, err := n.Add(ctx, "own", 1); err != nil || got.Value != 2 {
		t.Fatalf("write after the node's session was evicted: %+v %v", got, err)
	}
}

// TestSingleVoterElectsItselfAtOnce: the only voter of a cluster does not
// wait out a heartbeat timeout before it leads. The timeouts here are an
// hour, so a node that waited would not serve the Add for an hour; one
// that elects itself at once serves it straight away.
func TestSingleVoterElectsItselfAtOnce(t *testing.T) {
	cfg := testcluster.FastConfig("n1", t.TempDir(), testcluster.FreeAddr(t))
	cfg.HeartbeatTimeout = time.Hour
	cfg.ElectionTimeout = time.Hour
	cfg.Peers = []abacus.Member{{ID: "n1", Addr: cfg.BindAddr, Voter: true}}
	for round := range 2 { // a fresh cluster, then the same node restarted
		n, err := abacus.Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx := testcluster.Context(t, 20*time.Second)
		got, err := n.Add(ctx, "hits", 1)
		if err != nil {
			n.Close()
			t.Fatalf("round %d: first Add: %v", round, err)
		}
		if got.Value != int64(round+1) {
			t.Errorf("round %d: Add = %d", round, got.Value)
		}
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
