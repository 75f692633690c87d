package abacus_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
)

func TestElection(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 30*time.Second)
	e1 := c.Nodes[0].NewElection("scheduler", 5*time.Second)
	e2 := c.Nodes[1].NewElection("scheduler", 5*time.Second)
	if _, _, err := e1.Leader(ctx); !errors.Is(err, abacus.ErrNoLeader) {
		t.Fatalf("leader before any campaign: %v", err)
	}
	octx, cancel := context.WithCancel(ctx)
	defer cancel()
	observed := c.Nodes[2].NewElection("scheduler", 0).Observe(octx)
	if v := <-observed; v != "" {
		t.Fatalf("first observation %q", v)
	}

	if err := e1.Campaign(ctx, "alpha"); err != nil {
		t.Fatal(err)
	}
	won := make(chan error, 1)
	go func() { won <- e2.Campaign(ctx, "beta") }()
	if v := <-observed; v != "alpha" {
		t.Fatalf("observed %q, want alpha", v)
	}
	if v, tok, err := e2.Leader(ctx); err != nil || v != "alpha" || tok != e1.Token() {
		t.Fatalf("leader: %q %d %v", v, tok, err)
	}
	testcluster.Eventually(t, 10*time.Second, "beta queued", func() bool {
		return abacus.LockQueueLenForTest(c.Nodes[0], "scheduler") == 1
	})
	if err := e1.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-won; err != nil {
		t.Fatal(err)
	}
	if v := <-observed; v != "beta" {
		t.Fatalf("observed %q after resign, want beta", v)
	}
	if e2.Token() <= e1.Token() {
		t.Fatalf("term tokens: %d then %d", e1.Token(), e2.Token())
	}
	if err := e2.Resign(ctx); err != nil {
		t.Fatal(err)
	}
}
