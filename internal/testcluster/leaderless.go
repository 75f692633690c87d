package testcluster

import (
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
	return open(t, n, opts)
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
