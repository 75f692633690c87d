package rabia_test

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
	"github.com/abacuskit/abacus/rabia"
)

// The conformance suite: the same API tests, run against a three-node
// cluster of each backend (Config.Backend nil: Raft; rabia.Backend).
// Calls go through every node in turn.

type conformance struct {
	name  string
	start func(t *testing.T) *testcluster.Cluster
}

var conformanceBackends = []conformance{
	{"raft", func(t *testing.T) *testcluster.Cluster {
		c := testcluster.New(t, 3, testcluster.WithBackend(nil))
		c.Ready("ready")
		return c
	}},
	{"rabia", func(t *testing.T) *testcluster.Cluster {
		c := testcluster.NewLeaderless(t, 3, testcluster.WithBackend(rabia.Backend(rabia.Options{})))
		c.Ready("ready")
		return c
	}},
}

var conformanceTests = []struct {
	name string
	fn   func(t *testing.T, c *testcluster.Cluster)
}{
	{"Counters", testCounters},
	{"Bounds", testBounds},
	{"Batch", testBatch},
	{"Leases", testLeases},
	{"LeaseExpiry", testLeaseExpiry},
	{"MutexFencing", testMutexFencing},
	{"Instances", testInstances},
	{"Watch", testWatch},
}

func TestConformance(t *testing.T) {
	for _, b := range conformanceBackends {
		t.Run(b.name, func(t *testing.T) {
			c := b.start(t)
			for _, tc := range conformanceTests {
				t.Run(tc.name, func(t *testing.T) { tc.fn(t, c) })
			}
		})
	}
}

func node(c *testcluster.Cluster, i int) *abacus.Node { return c.Nodes[i%len(c.Nodes)] }

func ctxFor(t *testing.T) context.Context { return testcluster.Context(t, 20*time.Second) }

func testCounters(t *testing.T, c *testcluster.Cluster) {
	ctx := ctxFor(t)
	if got, err := node(c, 0).Get(ctx, "cnt"); err != nil || got.Exists || got.Value != 0 {
		t.Fatalf("get of a new counter: %+v, %v", got, err)
	}
	for i := 1; i <= 6; i++ {
		got, err := node(c, i).Add(ctx, "cnt", 2)
		if err != nil || got.Value != int64(2*i) || !got.Exists {
			t.Fatalf("add %d through %s: %+v, %v", i, node(c, i).ID(), got, err)
		}
	}
	if got, err := node(c, 1).Get(ctx, "cnt"); err != nil || got.Value != 12 || !got.Exists || got.Revision == 0 {
		t.Fatalf("get: %+v, %v", got, err)
	}
	if prev, err := node(c, 2).Set(ctx, "cnt", 100); err != nil || prev != 12 {
		t.Fatalf("set: previous %d, %v", prev, err)
	}
	if swapped, v, err := node(c, 0).CompareAndSet(ctx, "cnt", 99, 1); err != nil || swapped || v != 100 {
		t.Fatalf("cas mismatch: %v %d %v", swapped, v, err)
	}
	if swapped, v, err := node(c, 1).CompareAndSet(ctx, "cnt", 100, 7); err != nil || !swapped || v != 7 {
		t.Fatalf("cas: %v %d %v", swapped, v, err)
	}
	if prev, err := node(c, 2).Delete(ctx, "cnt"); err != nil || prev != 7 {
		t.Fatalf("delete: previous %d, %v", prev, err)
	}
	if got, err := node(c, 0).Get(ctx, "cnt"); err != nil || got.Exists || got.Value != 0 {
		t.Fatalf("get after delete: %+v, %v", got, err)
	}
	// Overflow and underflow fail and change nothing.
	if _, err := node(c, 1).Set(ctx, "big", math.MaxInt64-1); err != nil {
		t.Fatal(err)
	}
	if _, err := node(c, 2).Add(ctx, "big", 2); !errors.Is(err, abacus.ErrOverflow) {
		t.Fatalf("overflowing add: %v", err)
	}
	if _, err := node(c, 0).Set(ctx, "small", math.MinInt64); err != nil {
		t.Fatal(err)
	}
	if _, err := node(c, 1).Add(ctx, "small", -1); !errors.Is(err, abacus.ErrUnderflow) {
		t.Fatalf("underflowing add: %v", err)
	}
	if got, err := node(c, 2).Get(ctx, "big"); err != nil || got.Value != math.MaxInt64-1 {
		t.Fatalf("big after refused add: %+v, %v", got, err)
	}
	if _, err := node(c, 0).Add(ctx, "", 1); !errors.Is(err, abacus.ErrInvalidArgument) {
		t.Fatalf("empty name: %v", err)
	}
}

func testBounds(t *testing.T, c *testcluster.Cluster) {
	ctx := ctxFor(t)
	for i := range 3 {
		if _, err := node(c, i).Add(ctx, "quota", 1, abacus.WithMax(3)); err != nil {
			t.Fatalf("add %d within bound: %v", i, err)
		}
	}
	if _, err := node(c, 1).Add(ctx, "quota", 1, abacus.WithMax(3)); !errors.Is(err, abacus.ErrOutOfRange) {
		t.Fatalf("add past max: %v", err)
	}
	if _, err := node(c, 2).Add(ctx, "quota", -4, abacus.WithMin(0)); !errors.Is(err, abacus.ErrOutOfRange) {
		t.Fatalf("add past min: %v", err)
	}
	if got, err := node(c, 0).Get(ctx, "quota"); err != nil || got.Value != 3 {
		t.Fatalf("quota: %+v, %v", got, err)
	}
}

func testBatch(t *testing.T, c *testcluster.Cluster) {
	ctx := ctxFor(t)
	rs, err := node(c, 0).Batch(ctx, []abacus.Command{
		{Op: abacus.OpAdd, Name: "b1", Delta: 5},
		{Op: abacus.OpSet, Name: "b2", Value: 9},
		{Op: abacus.OpGet, Name: "b1"},
	})
	if err != nil || len(rs) != 3 || rs[0].Value != 5 || rs[2].Value != 5 {
		t.Fatalf("batch: %+v, %v", rs, err)
	}
	_, err = node(c, 1).Batch(ctx, []abacus.Command{
		{Op: abacus.OpAdd, Name: "b1", Delta: 1},
		{Op: abacus.OpCompareAndSet, Name: "b2", Old: 0, Value: 1},
	})
	var oe *abacus.OpError
	if !errors.Is(err, abacus.ErrMismatch) || !errors.As(err, &oe) || oe.Index != 1 {
		t.Fatalf("failing batch: %v", err)
	}
	if got, err := node(c, 2).Get(ctx, "b1"); err != nil || got.Value != 5 {
		t.Fatalf("b1 after failed batch: %+v, %v", got, err)
	}
}

func testLeases(t *testing.T, c *testcluster.Cluster) {
	ctx := ctxFor(t)
	id, err := node(c, 0).Grant(ctx, 10*time.Second)
	if err != nil || id == 0 {
		t.Fatalf("grant: %d, %v", id, err)
	}
	info, err := node(c, 1).TimeToLive(ctx, id)
	if err != nil || info.TTL != 10*time.Second || info.Remaining <= 0 || info.Remaining > 10*time.Second {
		t.Fatalf("time to live: %+v, %v", info, err)
	}
	if ttl, err := node(c, 2).KeepAliveOnce(ctx, id); err != nil || ttl != 10*time.Second {
		t.Fatalf("keep alive: %v, %v", ttl, err)
	}
	if err := node(c, 0).Revoke(ctx, id); err != nil {
		t.Fatalf("revoke: %v", err)
	}
	if _, err := node(c, 1).TimeToLive(ctx, id); !errors.Is(err, abacus.ErrNotFound) && !errors.Is(err, abacus.ErrLeaseExpired) {
		t.Fatalf("time to live of a revoked lease: %v", err)
	}
}

// testLeaseExpiry checks that a lease nobody renews ends by itself (the
// backend proposes expiry ticks) and releases the lock it held.
func testLeaseExpiry(t *testing.T, c *testcluster.Cluster) {
	ctx := ctxFor(t)
	info, err := node(c, 0).AcquireLock(ctx, "exp-lock", "h1", 300*time.Millisecond, 0)
	if err != nil || info.Token == 0 {
		t.Fatalf("acquire: %+v, %v", info, err)
	}
	testcluster.Eventually(t, 10*time.Second, "the lease to expire", func() bool {
		_, err := node(c, 1).TimeToLive(ctx, info.Lease)
		return errors.Is(err, abacus.ErrNotFound) || errors.Is(err, abacus.ErrLeaseExpired)
	})
	got, err := node(c, 2).GetLock(ctx, "exp-lock")
	if err != nil || got.Held {
		t.Fatalf("lock after its lease expired: %+v, %v", got, err)
	}
}

func testMutexFencing(t *testing.T, c *testcluster.Cluster) {
	ctx := ctxFor(t)
	m1 := node(c, 0).NewMutex("mx", "holder-1", abacus.MutexOptions{TTL: 5 * time.Second})
	defer m1.Close(context.Background())
	m2 := node(c, 1).NewMutex("mx", "holder-2", abacus.MutexOptions{TTL: 5 * time.Second})
	defer m2.Close(context.Background())
	if err := m1.Lock(ctx); err != nil {
		t.Fatalf("m1 lock: %v", err)
	}
	t1 := m1.Token()
	if err := m2.TryLock(ctx); !errors.Is(err, abacus.ErrLockHeld) {
		t.Fatalf("m2 trylock while held: %v", err)
	}
	if _, err := node(c, 2).Add(ctx, "fenced", 1, m1.Fence()); err != nil {
		t.Fatalf("fenced write by the holder: %v", err)
	}
	if err := m1.Unlock(ctx); err != nil {
		t.Fatalf("m1 unlock: %v", err)
	}
	if err := m2.Lock(ctx); err != nil {
		t.Fatalf("m2 lock: %v", err)
	}
	if t2 := m2.Token(); t2 <= t1 {
		t.Fatalf("token went from %d to %d", t1, t2)
	}
	if _, err := node(c, 0).Add(ctx, "fenced", 1, abacus.WithFence("mx", t1)); !errors.Is(err, abacus.ErrStaleToken) {
		t.Fatalf("write with the old token: %v", err)
	}
	if _, err := node(c, 1).Add(ctx, "fenced", 1, m2.Fence()); err != nil {
		t.Fatalf("fenced write by the new holder: %v", err)
	}
	if got, err := node(c, 2).Get(ctx, "fenced"); err != nil || got.Value != 2 {
		t.Fatalf("fenced: %+v, %v", got, err)
	}
}

func testInstances(t *testing.T, c *testcluster.Cluster) {
	ctx := ctxFor(t)
	inst, err := node(c, 0).NewInstance(ctx, 5*time.Second)
	if err != nil {
		t.Fatalf("instance: %v", err)
	}
	if _, err := inst.Add(ctx, "ic", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := node(c, 1).Add(ctx, "ic", 3); err != nil {
		t.Fatal(err)
	}
	if got, err := inst.Get(ctx, "ic"); err != nil || got.Value != 8 || got.Mine != 5 {
		t.Fatalf("instance get: %+v, %v", got, err)
	}
	if err := inst.Close(ctx); err != nil {
		t.Fatalf("instance close: %v", err)
	}
	if got, err := node(c, 2).Get(ctx, "ic"); err != nil || got.Value != 3 {
		t.Fatalf("after the instance closed: %+v, %v", got, err)
	}
}

func testWatch(t *testing.T, c *testcluster.Cluster) {
	ctx := ctxFor(t)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := node(c, 0).Watch(wctx, "watched")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := node(c, i+1).Add(ctx, "watched", 1); err != nil {
			t.Fatal(err)
		}
	}
	var last abacus.WatchEvent
	for last.Value != 3 {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("watch closed early")
			}
			if ev.Revision < last.Revision || ev.Value < last.Value {
				t.Fatalf("watch went back: %+v after %+v", ev, last)
			}
			last = ev
		case <-ctx.Done():
			t.Fatalf("watch stuck at %+v", last)
		}
	}
	if !last.Exists {
		t.Fatalf("last event: %+v", last)
	}
}
