package testcluster

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
)

// WithBackend makes every node use backend b (nil: Raft).
func WithBackend(b abacus.Backend) Option {
	return func(_ int, c *abacus.Config) { c.Backend = b }
}

// NewLeaderless starts n nodes that form one cluster, like New, but waits
// for no leader: it is for leaderless backends (package rabia), whose
// nodes are ready once open. Use Ready to wait until writes go through.
func NewLeaderless(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	base := t.TempDir()
	c := &Cluster{t: t, base: base, opts: opts, Nodes: make([]*abacus.Node, n), Configs: make([]abacus.Config, n)}
	var peers []abacus.Member
	for i := range n {
		id := fmt.Sprintf("n%d", i+1)
		cfg := FastConfig(id, filepath.Join(base, id), FreeAddr(t))
		peers = append(peers, abacus.Member{ID: id, Addr: cfg.BindAddr, Voter: true})
		c.Configs[i] = cfg
	}
	for i := range c.Configs {
		c.Configs[i].Peers = peers
		for _, o := range opts {
			o(i, &c.Configs[i])
		}
	}
	for i := range c.Configs {
		c.Start(i)
	}
	t.Cleanup(c.Close)
	return c
}

// Ready waits until an add of 0 to counter name succeeds through every
// running node.
func (c *Cluster) Ready(name string) {
	c.t.Helper()
	for _, i := range c.running() {
		ctx := Context(c.t, 15*time.Second)
		if _, err := c.Nodes[i].Add(ctx, name, 0); err != nil {
			c.t.Fatalf("%s not ready: %v", c.Configs[i].ID, err)
		}
	}
}
