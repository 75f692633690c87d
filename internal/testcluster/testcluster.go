// Package testcluster runs abacus clusters of real nodes over TCP on
// loopback, for tests. Nodes have fault injection enabled and short
// timeouts so elections and failover finish quickly.
package testcluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
)

// Cluster is a set of nodes on loopback. A nil entry in Nodes is a node
// that is stopped.
type Cluster struct {
	t       testing.TB
	Nodes   []*abacus.Node
	Configs []abacus.Config
}

// Option adjusts every node's configuration.
type Option func(i int, c *abacus.Config)

// FastConfig returns a configuration with short timeouts for tests.
func FastConfig(id, dir, addr string) abacus.Config {
	c := abacus.DefaultConfig()
	c.ID, c.Dir, c.BindAddr = id, dir, addr
	c.HeartbeatTimeout = 150 * time.Millisecond
	c.ElectionTimeout = 150 * time.Millisecond
	c.LeaderLeaseTimeout = 100 * time.Millisecond
	c.ReadLease = 100 * time.Millisecond
	c.DriftMargin = 20 * time.Millisecond
	c.RetryBackoff = 5 * time.Millisecond
	c.Faults = true
	c.Logger = Logger()
	return c
}

// Logger returns a logger for test nodes: quiet unless ABACUS_TEST_LOG is set.
func Logger() *slog.Logger {
	if os.Getenv("ABACUS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// FreeAddr returns a loopback address with a port that was free a moment ago.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// New starts n nodes that bootstrap one cluster, and waits for a leader.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := &Cluster{t: t, Nodes: make([]*abacus.Node, n), Configs: make([]abacus.Config, n)}
	base := t.TempDir()
	var peers []abacus.Member
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		cfg := FastConfig(id, filepath.Join(base, id), FreeAddr(t))
		peers = append(peers, abacus.Member{ID: id, Addr: cfg.BindAddr, Voter: true})
		c.Configs[i] = cfg
	}
	for i := range c.Configs {
		if n > 1 {
			c.Configs[i].Peers = peers
		}
		for _, o := range opts {
			o(i, &c.Configs[i])
		}
	}
	for i := range c.Configs {
		c.Start(i)
	}
	t.Cleanup(c.Close)
	c.Leader()
	return c
}

// Start opens node i (again) on its configuration and data directory.
func (c *Cluster) Start(i int) *abacus.Node {
	c.t.Helper()
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.Nodes[i], err = abacus.Open(c.Configs[i])
		if err == nil || time.Now().After(deadline) {
			break
		}
		// The port can linger briefly after a stop.
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		c.t.Fatalf("open %s: %v", c.Configs[i].ID, err)
	}
	return c.Nodes[i]
}

// Stop closes node i.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if n := c.Nodes[i]; n != nil {
		if err := n.Close(); err != nil {
			c.t.Logf("close %s: %v", n.ID(), err)
		}
		c.Nodes[i] = nil
	}
}

// Close stops every node.
func (c *Cluster) Close() {
	for i := range c.Nodes {
		c.Stop(i)
	}
}

// Leader waits for a running node to report itself leader and returns its
// index.
func (c *Cluster) Leader() int {
	c.t.Helper()
	idx := -1
	c.Eventually(10*time.Second, "a leader", func() bool {
		for i, n := range c.Nodes {
			if n != nil && n.Status().State == "leader" {
				idx = i
				return true
			}
		}
		return false
	})
	return idx
}

// Eventually polls cond until it holds or timeout passes, then fails the
// test naming what.
func (c *Cluster) Eventually(timeout time.Duration, what string, cond func() bool) {
	c.t.Helper()
	Eventually(c.t, timeout, what, cond)
}

// Eventually polls cond until it holds or timeout passes, then fails the
// test naming what.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Context returns a context that ends with the test or after d.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
