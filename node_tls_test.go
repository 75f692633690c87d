package abacus_test

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// TestClusterMutualTLS runs a cluster whose nodes talk mutual TLS: writes
// and linearizable reads work through every node, forwarding included.
func TestClusterMutualTLS(t *testing.T) {
	ca := testcluster.NewCA(t, "abacus test CA")
	c := testcluster.New(t, 3, func(i int, cfg *abacus.Config) {
		cfg.TLS = ca.TLSConfig(t, cfg.ID)
	})
	ctx := testcluster.Context(t, 20*time.Second)
	for k := range 9 {
		if _, err := c.Nodes[k%3].Add(ctx, "tls", 1); err != nil {
			t.Fatalf("add through %s: %v", c.Nodes[k%3].ID(), err)
		}
	}
	for _, n := range c.Nodes {
		if got, err := n.Get(ctx, "tls"); err != nil || got.Value != 9 {
			t.Fatalf("%s: %+v %v", n.ID(), got, err)
		}
	}
	// A node joining with a certificate from the same CA is let in.
	j := c.Join()
	if err := retryMembership(ctx, func() error { return c.Nodes[0].AddMember(ctx, c.Member(j)) }); err != nil {
		t.Fatal(err)
	}
	c.Converge("tls", 9)
}

// TestClusterRogueCertificate runs a three-node cluster in which one node
// holds a certificate from another CA. Its peers refuse it: it never
// becomes part of the quorum, writes through it fail with ErrUnavailable
// within their deadline, and the two good nodes work undisturbed.
func TestClusterRogueCertificate(t *testing.T) {
	ca := testcluster.NewCA(t, "abacus test CA")
	rogueCA := testcluster.NewCA(t, "rogue CA")
	const rogue = 2
	rec := testcluster.NewRecorder()
	c := testcluster.New(t, 3, func(i int, cfg *abacus.Config) {
		if i != rogue {
			cfg.Logger = slog.New(rec)
		}
		if i == rogue {
			// Its own certificate is from another CA, though it trusts
			// the cluster's CA: the peers are the ones that refuse it.
			tc := ca.TLSConfig(t, cfg.ID)
			tc.Certificates = []tls.Certificate{rogueCA.Issue(t, cfg.ID)}
			cfg.TLS = tc
		} else {
			cfg.TLS = ca.TLSConfig(t, cfg.ID)
		}
	})
	ctx := testcluster.Context(t, 30*time.Second)
	c.LeaderAmong(0, 1)
	for k := range 20 {
		if _, err := c.Nodes[k%2].Add(ctx, "good", 1); err != nil {
			t.Fatalf("add through %s: %v", c.Nodes[k%2].ID(), err)
		}
	}
	for _, call := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"add", func(ctx context.Context) error { _, err := c.Nodes[rogue].Add(ctx, "good", 1); return err }},
		{"get", func(ctx context.Context) error { _, err := c.Nodes[rogue].Get(ctx, "good"); return err }},
	} {
		cctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		start := time.Now()
		err := call.fn(cctx)
		cancel()
		if !errors.Is(err, abacus.ErrUnavailable) {
			t.Errorf("%s through the rogue node: %v, want ErrUnavailable", call.name, err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("%s through the rogue node took %v with a 500ms deadline", call.name, took)
		}
	}
	if got, _ := c.Nodes[rogue].Get(ctx, "good", abacus.WithStale()); got.Exists {
		t.Errorf("the rogue node received state: %+v", got)
	}
	if st := c.Nodes[rogue].Status(); st.State == "leader" || st.Leader != "" {
		t.Errorf("the rogue node thinks %+v", st)
	}
	for _, i := range []int{0, 1} {
		if got, err := c.Nodes[i].Get(ctx, "good"); err != nil || got.Value != 20 {
			t.Fatalf("%s: %+v %v", c.Nodes[i].ID(), got, err)
		}
	}
	for _, i := range []int{0, 1} {
		if st := c.Nodes[i].Status(); st.Leader == c.Configs[rogue].ID {
			t.Fatalf("%s follows the rogue node: %+v", c.Nodes[i].ID(), st)
		}
	}
	// The refusals happened where they should: in the good nodes' TLS
	// handshakes.
	if rec.Count("tls handshake failed") == 0 {
		t.Fatal("the good nodes logged no refused TLS handshake")
	}
}
