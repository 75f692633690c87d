package rabia_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
	"github.com/abacuskit/abacus/rabia"
)

func newCluster(t testing.TB, n int, opts ...testcluster.Option) *testcluster.Cluster {
	t.Helper()
	opts = append([]testcluster.Option{testcluster.WithBackend(rabia.Backend(rabia.Options{}))}, opts...)
	c := testcluster.NewLeaderless(t, n, opts...)
	c.Ready("ready")
	return c
}

// TestConcurrentWriters runs writers through every node at once and checks
// that the counts are exact everywhere and every add returned a distinct
// value.
func TestConcurrentWriters(t *testing.T) {
	newCluster(t, 3).ConcurrentWriters(t, 8, 25)
}

func withOptions(o rabia.Options) testcluster.Option {
	return testcluster.WithBackend(rabia.Backend(o))
}

// addN adds 1 to counter name n times through the given nodes, from a few
// goroutines.
func addN(t *testing.T, c *testcluster.Cluster, name string, n int, nodes ...int) {
	t.Helper()
	ctx := testcluster.Context(t, 30*time.Second)
	var wg sync.WaitGroup
	const writers = 4
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := c.Nodes[nodes[w%len(nodes)]]
			for k := w; k < n; k += writers {
				if _, err := node.Add(ctx, name, 1); err != nil {
					t.Errorf("%s: add: %v", node.ID(), err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// TestRestartCatchesUp stops a node, writes far past what the others keep
// in their logs (so it needs a snapshot), restarts it and checks that it
// catches up and takes writes again.
func TestRestartCatchesUp(t *testing.T) {
	c := newCluster(t, 3, withOptions(rabia.Options{SnapshotEvery: 32, TrailingSlots: 8}))
	addN(t, c, "a", 20, 0, 1, 2)
	c.Stop(2)
	addN(t, c, "a", 300, 0, 1)
	c.Start(2)
	c.Converge("a", 320)
	addN(t, c, "a", 10, 2)
	c.Converge("a", 330)
	c.StateHash()
	if st := c.Nodes[2].Status(); st.Backend != "rabia" || st.State != "replica" || len(st.Members) != 3 || st.AppliedIndex == 0 {
		t.Fatalf("status after catch-up: %+v", st)
	}
}

// TestPartitionRejoins isolates a node while the others take writes, heals
// the partition and checks that the node catches up and serves writes.
func TestPartitionRejoins(t *testing.T) {
	c := newCluster(t, 3)
	addN(t, c, "p", 10, 0, 1, 2)
	if err := c.Nodes[2].Faults().Isolate(); err != nil {
		t.Fatal(err)
	}
	// A write through the isolated node cannot complete; it was
	// disseminated (locally), so its outcome is unknown.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := c.Nodes[2].Add(ctx, "p", 1)
	cancel()
	if !errors.Is(err, abacus.ErrIndeterminate) {
		t.Fatalf("add on an isolated node: %v, want ErrIndeterminate", err)
	}
	addN(t, c, "p", 100, 0, 1)
	if err := c.Nodes[2].Faults().Heal(); err != nil {
		t.Fatal(err)
	}
	addN(t, c, "p", 10, 2)
	// The indeterminate add may have applied once (never twice).
	var final int64
	c.Eventually(15*time.Second, "p converged", func() bool {
		final = -1
		for _, n := range c.Nodes {
			got, err := n.Get(context.Background(), "p", abacus.WithStale())
			if err != nil || (final >= 0 && got.Value != final) {
				return false
			}
			final = got.Value
		}
		return true
	})
	if final != 120 && final != 121 {
		t.Fatalf("p = %d, want 120 or 121", final)
	}
	c.StateHash()
}

// TestKillOneKeepsProgress cuts one node of three off the network and
// closes it, as a crash would leave it (it cannot let its open slots
// decide first): writes through the other two keep completing. Restarted,
// it may only learn the slots it may have voted in, which the others
// decide, and it catches up and takes writes.
func TestKillOneKeepsProgress(t *testing.T) {
	c := newCluster(t, 3)
	addN(t, c, "k", 20, 0, 1, 2)
	// Writers on the victim keep slots open on it when it dies; their
	// outcomes are unknown, so they write a counter of their own.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	victim := c.Nodes[0]
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := victim.Add(ctx, "victim", 1); errors.Is(err, abacus.ErrClosed) {
					return
				}
			}
		}()
	}
	addN(t, c, "k", 20, 1, 2)
	if err := victim.Faults().Isolate(); err != nil {
		t.Fatal(err)
	}
	c.Stop(0)
	cancel()
	wg.Wait()
	addN(t, c, "k", 100, 1, 2)
	c.ConvergeNodes("k", 140, 1, 2)
	tctx := testcluster.Context(t, 10*time.Second)
	for _, i := range []int{1, 2} {
		if got, err := c.Nodes[i].Get(tctx, "k"); err != nil || got.Value != 140 {
			t.Fatalf("%s: get = %+v, %v", c.Nodes[i].ID(), got, err)
		}
	}
	c.Start(0)
	addN(t, c, "k", 30, 0, 1, 2)
	c.Converge("k", 170)
	c.StateHash()
}

// TestWholeClusterRestart restarts every node on its data directory and
// checks that every acknowledged write survived, then writes again.
func TestWholeClusterRestart(t *testing.T) {
	c := newCluster(t, 3, withOptions(rabia.Options{SnapshotEvery: 16, TrailingSlots: 4}))
	addN(t, c, "r", 150, 0, 1, 2)
	ctx := testcluster.Context(t, 30*time.Second)
	for i := range 5 {
		if _, err := c.Nodes[i%3].Set(ctx, fmt.Sprintf("s%d", i), int64(i*10)); err != nil {
			t.Fatal(err)
		}
	}
	c.StateHash()
	c.Close()
	for i := range c.Nodes {
		c.Start(i)
	}
	// Slots still open at the stop may decide now (nulls, or repeats the
	// exactly-once table answers), so the state may move on; every
	// acknowledged write must be there, identically on every node.
	c.StateHash()
	for i, n := range c.Nodes {
		if got, err := n.Get(ctx, "r"); err != nil || got.Value != 150 {
			t.Fatalf("%s: r = %+v, %v", n.ID(), got, err)
		}
		if got, err := n.Get(ctx, fmt.Sprintf("s%d", i)); err != nil || got.Value != int64(i*10) {
			t.Fatalf("%s: s%d = %+v, %v", n.ID(), i, got, err)
		}
	}
	addN(t, c, "r", 30, 0, 1, 2)
	c.Converge("r", 180)
}

// TestMessageLoss drops a fifth of every node's peer messages: the engine
// repeats what was lost, and every add still applies exactly once.
func TestMessageLoss(t *testing.T) {
	c := newCluster(t, 3)
	for _, n := range c.Nodes {
		if err := n.Faults().Loss(0.2); err != nil {
			t.Fatal(err)
		}
	}
	addN(t, c, "lossy", 60, 0, 1, 2)
	for _, n := range c.Nodes {
		if err := n.Faults().Heal(); err != nil {
			t.Fatal(err)
		}
	}
	c.Converge("lossy", 60)
	c.StateHash()
}

// TestSingleNode runs Rabia on a one-node cluster: every slot decides on
// its own proposal, and a restart keeps the state.
func TestSingleNode(t *testing.T) {
	c := testcluster.NewLeaderless(t, 1, withOptions(rabia.Options{}))
	ctx := testcluster.Context(t, 10*time.Second)
	for i := 1; i <= 20; i++ {
		if got, err := c.Nodes[0].Add(ctx, "solo", 1); err != nil || got.Value != int64(i) {
			t.Fatalf("add %d: %+v, %v", i, got, err)
		}
	}
	c.Stop(0)
	c.Start(0)
	if got, err := c.Nodes[0].Get(ctx, "solo"); err != nil || got.Value != 20 {
		t.Fatalf("after restart: %+v, %v", got, err)
	}
}

// TestMutualTLS runs Rabia over mutual TLS: protocol messages, batches and
// catch-up all use the node's peer port.
func TestMutualTLS(t *testing.T) {
	ca := testcluster.NewCA(t, "abacus test CA")
	c := newCluster(t, 3, func(_ int, cfg *abacus.Config) { cfg.TLS = ca.TLSConfig(t, cfg.ID) })
	addN(t, c, "tls", 30, 0, 1, 2)
	c.Converge("tls", 30)
}

// copyDir copies a data directory as a crash would leave it on disk.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestWholeClusterCrashWhileIdle takes every node's files as a power cut
// of the whole, quiet cluster would leave them (no Close) and starts a
// cluster on them: it must keep its state and take writes, so no replica
// may have left reserved slots that a majority would only learn.
func TestWholeClusterCrashWhileIdle(t *testing.T) {
	c := newCluster(t, 3)
	addN(t, c, "idle", 50, 0, 1, 2)
	c.Converge("idle", 50)
	// Idle replicas trim their proposal marks to slots already decided.
	c.Eventually(10*time.Second, "marks at decided slots", func() bool {
		for i, n := range c.Nodes {
			b, err := os.ReadFile(filepath.Join(c.Configs[i].Dir, "rabia", "meta"))
			if err != nil || len(b) < 8 {
				return false
			}
			if binary.BigEndian.Uint64(b) >= n.Status().AppliedIndex {
				return false
			}
		}
		return true
	})
	crashed := make([]string, len(c.Nodes))
	for i := range c.Nodes {
		crashed[i] = filepath.Join(t.TempDir(), c.Configs[i].ID)
		copyDir(t, c.Configs[i].Dir, crashed[i])
	}
	c.Close()
	for i := range c.Nodes {
		c.Configs[i].Dir = crashed[i]
		c.Start(i)
	}
	c.Converge("idle", 50)
	addN(t, c, "idle", 20, 0, 1, 2)
	c.Converge("idle", 70)
}

// TestClockAheadExpiresNothingEarly gives one node a wall clock an hour
// ahead and a lease granted through it: state-machine time advances by
// elapsed time, not by wall clocks, so the lease keeps its TTL on every
// node and its lock is not freed early.
func TestClockAheadExpiresNothingEarly(t *testing.T) {
	clock := &abacus.OffsetClock{}
	clock.SetOffset(time.Hour)
	// No Ready: the lease is granted before the fast node proposes
	// anything.
	c := testcluster.NewLeaderless(t, 3, withOptions(rabia.Options{}), func(i int, cfg *abacus.Config) {
		if i == 0 {
			cfg.Clock = clock
		}
	})
	ctx := testcluster.Context(t, 20*time.Second)
	info, err := c.Nodes[1].AcquireLock(ctx, "skew", "h", 5*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	addN(t, c, "skewed", 30, 0) // proposals stamped by the fast node
	for i, n := range c.Nodes {
		ttl, err := n.TimeToLive(ctx, info.Lease)
		if err != nil || ttl.Remaining < 3*time.Second {
			t.Fatalf("node %d: lease %+v, %v", i, ttl, err)
		}
		if got, err := n.GetLock(ctx, "skew"); err != nil || !got.Held || got.Token != info.Token {
			t.Fatalf("node %d: lock %+v, %v", i, got, err)
		}
	}
}

// TestRestartedNodeGrantsFullLease restarts a node after the cluster sat
// idle while it was down, and grants a lease through it at once. The
// node's copy of state-machine time stood still while it was down, so it
// must learn the cluster's time from its peers before it stamps anything;
// otherwise the lease would start in the past and the next stamp of a
// peer would cut it short by the downtime.
func TestRestartedNodeGrantsFullLease(t *testing.T) {
	c := newCluster(t, 3)
	addN(t, c, "before", 10, 0, 1, 2)
	c.Stop(2)
	// The downtime is the fault under test, not synchronisation: for this
	// long nothing is proposed and state-machine time stands still.
	const downtime = time.Second
	<-time.After(downtime)
	c.Start(2)
	ctx := testcluster.Context(t, 20*time.Second)
	const ttl = 5 * time.Second
	sent := time.Now()
	lease, err := c.Nodes[2].Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	addN(t, c, "after", 3, 0, 1) // stamps of the nodes that stayed up
	for i, n := range c.Nodes {
		got, err := n.TimeToLive(ctx, lease)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		// What the holder may count on is its TTL from sending, less the
		// delay of the status that taught the node the cluster's time
		// (under a loaded race build, up to a few hundred milliseconds).
		// A lease started in the past would lose the whole downtime.
		floor := ttl - time.Since(sent) - downtime/2
		if got.Remaining < floor {
			t.Fatalf("node %d: %v of the lease remain, want at least %v: it lost about the downtime", i, got.Remaining, floor)
		}
	}
}

// TestProposalOutcomes checks how a write that cannot complete ends: once
// its batch was disseminated the outcome is unknown (ErrIndeterminate);
// while it still waited to be batched, because the node's outstanding
// batch was in flight, it definitely did not apply (ErrUnavailable).
func TestProposalOutcomes(t *testing.T) {
	c := newCluster(t, 3, withOptions(rabia.Options{Pipeline: 1, MaxOutstanding: 1}))
	n := c.Nodes[2]
	if err := n.Faults().Isolate(); err != nil {
		t.Fatal(err)
	}
	// The first add is batched and disseminated (it holds the one
	// outstanding batch) but cannot be decided.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err := n.Add(ctx, "out", 1)
	cancel()
	if !errors.Is(err, abacus.ErrIndeterminate) {
		t.Fatalf("disseminated add: %v, want ErrIndeterminate", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = n.Add(ctx, "out", 10)
	cancel()
	if !errors.Is(err, abacus.ErrUnavailable) {
		t.Fatalf("add never batched: %v, want ErrUnavailable", err)
	}
	if err := n.Faults().Heal(); err != nil {
		t.Fatal(err)
	}
	// The disseminated add applies once the node rejoins; the other never.
	c.Converge("out", 1)
}

// TestRestartCatchesUpFromLog stops a node while the others decide a few
// hundred slots, fewer than they keep in their logs: restarted, it learns
// them from its peers (their engines, or their logs for slots compacted
// there), without a snapshot.
func TestRestartCatchesUpFromLog(t *testing.T) {
	c := newCluster(t, 3)
	addN(t, c, "l", 10, 0, 1, 2)
	c.Stop(2)
	addN(t, c, "l", 300, 0, 1)
	c.Start(2)
	c.Converge("l", 310)
	addN(t, c, "l", 10, 2)
	c.Converge("l", 320)
	c.StateHash()
	if _, err := os.Stat(filepath.Join(c.Configs[2].Dir, "rabia", "snapshot")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the restarted node has a snapshot (%v): it did not catch up from the log", err)
	}
}

// TestMajorityCrashRecovers cuts two nodes of three off and has each
// propose in a slot that cannot decide, then closes them as a crash would
// leave them. Restarted, they may not vote again in those slots, and the
// third node cannot decide them alone: the replicas must agree that nobody
// decided them and end them as null, then carry on.
func TestMajorityCrashRecovers(t *testing.T) {
	rec := testcluster.NewRecorder()
	c := newCluster(t, 3, testcluster.WithLogger(rec))
	addN(t, c, "m", 60, 0, 1, 2)
	for _, i := range []int{1, 2} {
		if err := c.Nodes[i].Faults().Isolate(); err != nil {
			t.Fatal(err)
		}
	}
	// A write through a cut-off node waits long enough for it to start a
	// slot with the write's batch (once its peers have been silent for a
	// few ticks).
	var cut sync.WaitGroup
	for _, i := range []int{1, 2} {
		cut.Add(1)
		go func() {
			defer cut.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			if _, err := c.Nodes[i].Add(ctx, "cut", 1); !errors.Is(err, abacus.ErrIndeterminate) {
				t.Errorf("add on a cut-off node: %v, want ErrIndeterminate", err)
			}
		}()
	}
	cut.Wait()
	var stop sync.WaitGroup
	for _, i := range []int{1, 2} {
		stop.Add(1)
		go func() { defer stop.Done(); c.Stop(i) }()
	}
	stop.Wait()
	c.Start(1)
	c.Start(2)
	addN(t, c, "m", 30, 0, 1, 2)
	c.Converge("m", 90)
	c.StateHash()
	if rec.Count("ending slots nobody can decide as null") == 0 {
		t.Fatal("the cluster carried on without recovering a slot: the crash left none undecided")
	}
}
