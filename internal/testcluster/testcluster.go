// Package testcluster runs abacus clusters of real nodes over TCP on
// loopback, for tests. Nodes have fault injection enabled and short
// timeouts so elections and failover finish quickly.
package testcluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/freeport"
)

// Cluster is a set of nodes on loopback. A nil entry in Nodes is a node
// that is stopped.
type Cluster struct {
	t       testing.TB
	base    string
	opts    []Option
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

// FreeAddr returns a loopback address with a port that was free a moment
// ago, reserved until the test ends.
func FreeAddr(t testing.TB) string {
	t.Helper()
	r, err := freeport.Reserve(1)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Release)
	return r.Addrs()[0]
}

// New starts n nodes that bootstrap one cluster, and waits for a leader.
func New(t testing.TB, n int, opts ...Option) *Cluster {
	t.Helper()
	c := open(t, n, opts)
	c.Leader()
	return c
}

// open starts n nodes configured as one cluster's initial members.
func open(t testing.TB, n int, opts []Option) *Cluster {
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

// Join opens one more node with Config.Join set (it waits to be added by
// a member, see Node.AddMember) and returns its index. The cluster's
// options apply to it too.
func (c *Cluster) Join() int {
	c.t.Helper()
	i := len(c.Nodes)
	id := fmt.Sprintf("n%d", i+1)
	cfg := FastConfig(id, filepath.Join(c.base, id), FreeAddr(c.t))
	cfg.Join = true
	for _, o := range c.opts {
		o(i, &cfg)
	}
	cfg.Peers = nil
	c.Configs = append(c.Configs, cfg)
	c.Nodes = append(c.Nodes, nil)
	c.Start(i)
	return i
}

// Member returns node i as a voting member, for Node.AddMember.
func (c *Cluster) Member(i int) abacus.Member {
	return abacus.Member{ID: c.Configs[i].ID, Addr: c.Configs[i].BindAddr, Voter: true}
}

// LeaderAmong waits for one of the given running nodes to report itself
// leader and returns its index.
func (c *Cluster) LeaderAmong(idx ...int) int {
	c.t.Helper()
	found := -1
	c.Eventually(10*time.Second, fmt.Sprintf("a leader among %v", idx), func() bool {
		for _, i := range idx {
			if n := c.Nodes[i]; n != nil && n.Status().State == "leader" {
				found = i
				return true
			}
		}
		return false
	})
	return found
}

// Followers returns the indexes of the running nodes other than i.
func (c *Cluster) Followers(i int) []int {
	var out []int
	for j, n := range c.Nodes {
		if j != i && n != nil {
			out = append(out, j)
		}
	}
	return out
}

// Converge waits until every running node's stale read of counter name
// shows want.
func (c *Cluster) Converge(name string, want int64) {
	c.t.Helper()
	c.ConvergeNodes(name, want, c.running()...)
}

// ConvergeNodes waits until the stale reads of counter name on the given
// nodes show want.
func (c *Cluster) ConvergeNodes(name string, want int64, idx ...int) {
	c.t.Helper()
	var last []string
	Eventually(c.t, 15*time.Second, fmt.Sprintf("%q = %d on nodes %v (last %v)", name, want, idx, &last), func() bool {
		last = last[:0]
		ok := true
		for _, i := range idx {
			got, err := c.Nodes[i].Get(context.Background(), name, abacus.WithStale())
			last = append(last, fmt.Sprintf("%s=%d", c.Configs[i].ID, got.Value))
			if err != nil || got.Value != want {
				ok = false
			}
		}
		return ok
	})
}

func (c *Cluster) running() []int {
	var out []int
	for i, n := range c.Nodes {
		if n != nil {
			out = append(out, i)
		}
	}
	return out
}

// WithSnapshots makes nodes snapshot after threshold entries (checked
// every 20ms) and keep trailing entries after a snapshot, so tests reach
// log compaction and snapshot installation quickly.
func WithSnapshots(threshold, trailing uint64) Option {
	return func(_ int, c *abacus.Config) {
		c.SnapshotThreshold = threshold
		c.TrailingLogs = trailing
		c.SnapshotInterval = 20 * time.Millisecond
	}
}

// WithLogger sends every node's logs, at debug level and above, to h.
func WithLogger(h slog.Handler) Option {
	return func(_ int, c *abacus.Config) { c.Logger = slog.New(h) }
}

// Recorder is a slog.Handler that counts log records by message, for tests
// that need evidence that a code path ran (a retry, a refusal). With
// ABACUS_TEST_LOG set it also prints them.
type Recorder struct {
	mu    *sync.Mutex
	count map[string]int
	next  slog.Handler
}

// NewRecorder returns an empty recorder.
func NewRecorder() *Recorder {
	return &Recorder{mu: &sync.Mutex{}, count: make(map[string]int), next: Logger().Handler()}
}

// Enabled implements slog.Handler: debug and above are recorded.
func (r *Recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelDebug }

// Handle implements slog.Handler.
func (r *Recorder) Handle(ctx context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.count[rec.Message]++
	r.mu.Unlock()
	if r.next.Enabled(ctx, rec.Level) {
		return r.next.Handle(ctx, rec)
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (r *Recorder) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *r
	c.next = r.next.WithAttrs(attrs)
	return &c
}

// WithGroup implements slog.Handler.
func (r *Recorder) WithGroup(name string) slog.Handler {
	c := *r
	c.next = r.next.WithGroup(name)
	return &c
}

// Count returns how many records had a message containing substr.
func (r *Recorder) Count(substr string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for msg, k := range r.count {
		if strings.Contains(msg, substr) {
			n += k
		}
	}
	return n
}

// Production gives nodes the default timeouts and a durable log, and
// turns fault injection off, for benchmarks that should measure what a
// deployment would see.
func Production() Option {
	return func(_ int, c *abacus.Config) {
		d := abacus.DefaultConfig()
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = d.HeartbeatTimeout, d.ElectionTimeout, d.LeaderLeaseTimeout
		c.ReadLease, c.DriftMargin, c.RetryBackoff = d.ReadLease, d.DriftMargin, d.RetryBackoff
		c.Faults = false
		c.NoSync = false
	}
}
