package abacus_test

import (
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
