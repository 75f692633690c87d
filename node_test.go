package abacus_test

import (
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
