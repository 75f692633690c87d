package abacus_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
)

func TestLeaseLifecycle(t *testing.T) {
	n := testcluster.New(t, 1).Nodes[0]
	ctx := testcluster.Context(t, 10*time.Second)
	id, err := n.Grant(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	info, err := n.TimeToLive(ctx, id)
	if err != nil || info.TTL != time.Minute || info.Remaining <= 0 || info.Remaining > time.Minute {
		t.Fatalf("ttl: %+v %v", info, err)
	}
	if ttl, err := n.KeepAliveOnce(ctx, id); err != nil || ttl != time.Minute {
		t.Fatalf("keepalive: %v %v", ttl, err)
	}
	if err := n.Revoke(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := n.KeepAliveOnce(ctx, id); !errors.Is(err, abacus.ErrLeaseExpired) {
		t.Fatalf("keepalive after revoke: %v", err)
	}
	if _, err := n.KeepAliveOnce(ctx, id+1000); !errors.Is(err, abacus.ErrNotFound) {
		t.Fatalf("keepalive of unknown lease: %v", err)
	}
	if _, err := n.Grant(ctx, 0); !errors.Is(err, abacus.ErrInvalidArgument) {
		t.Fatalf("grant of 0: %v", err)
	}
}

func TestMutexFencing(t *testing.T) {
	n := testcluster.New(t, 1).Nodes[0]
	ctx := testcluster.Context(t, 20*time.Second)

	a := n.NewMutex("job", "a", abacus.MutexOptions{TTL: 300 * time.Millisecond})
	if err := a.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Add(ctx, "x", 1, a.Fence()); err != nil {
		t.Fatalf("fenced write by the holder: %v", err)
	}
	b := n.NewMutex("job", "b", abacus.MutexOptions{TTL: time.Second})
	var oe *abacus.OpError
	if err := b.TryLock(ctx); !errors.Is(err, abacus.ErrLockHeld) || !errors.As(err, &oe) || oe.Holder != "a" {
		t.Fatalf("trylock of a held lock: %v", err)
	}

	// a stops renewing (as a paused process would): its lease expires and
	// b, waiting in line, gets the lock with a larger token.
	staleToken := a.Token()
	abacus.StopKeeperForTest(a)
	if err := b.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Token() <= staleToken {
		t.Fatalf("token did not increase: %d then %d", staleToken, b.Token())
	}
	if _, err := n.Add(ctx, "x", 1, abacus.WithFence("job", staleToken)); !errors.Is(err, abacus.ErrStaleToken) {
		t.Fatalf("fenced write with the stale token: %v", err)
	}
	if got, _ := n.Get(ctx, "x"); got.Value != 1 {
		t.Fatalf("stale fenced write changed the counter: %d", got.Value)
	}
	if err := b.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	if info, err := n.GetLock(ctx, "job"); err != nil || info.Held {
		t.Fatalf("after unlock: %+v %v", info, err)
	}
}

func TestMutexWaitersServedInOrder(t *testing.T) {
	n := testcluster.New(t, 1).Nodes[0]
	ctx := testcluster.Context(t, 30*time.Second)
	first := n.NewMutex("q", "first", abacus.MutexOptions{TTL: 5 * time.Second})
	if err := first.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	const waiters = 20
	var mu sync.Mutex
	var order []int
	var wg sync.WaitGroup
	for i := range waiters {
		// Queue them one at a time so the queue order is known.
		before := abacus.LockQueueLenForTest(n, "q")
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := n.NewMutex("q", "w", abacus.MutexOptions{TTL: 5 * time.Second})
			if err := m.Lock(ctx); err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			order = append(order, i)
			mu.Unlock()
			if err := m.Unlock(ctx); err != nil {
				t.Error(err)
			}
		}()
		testcluster.Eventually(t, 5*time.Second, "waiter queued", func() bool {
			return abacus.LockQueueLenForTest(n, "q") > before
		})
	}
	if err := first.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(order) != waiters {
		t.Fatalf("served %d of %d", len(order), waiters)
	}
	for i, w := range order {
		if w != i {
			t.Fatalf("served out of order: %v", order)
		}
	}
}

func TestInstanceCounters(t *testing.T) {
	n := testcluster.New(t, 1).Nodes[0]
	ctx := testcluster.Context(t, 20*time.Second)
	a, err := n.NewInstance(ctx, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	b, err := n.NewInstance(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Add(ctx, "workers", 3); err != nil {
		t.Fatal(err)
	}
	got, err := b.Add(ctx, "workers", 2)
	if err != nil || got.Value != 5 || got.Mine != 2 {
		t.Fatalf("b add: %+v %v", got, err)
	}
	if got, _ := a.Get(ctx, "workers"); got.Value != 5 || got.Mine != 3 {
		t.Fatalf("a get: %+v", got)
	}
	// a stops renewing: its slice leaves the total without anyone touching it.
	abacus.StopInstanceForTest(a)
	testcluster.Eventually(t, 5*time.Second, "a's slice to leave the total", func() bool {
		got, err := n.Get(ctx, "workers")
		return err == nil && got.Value == 2
	})
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got, _ := n.Get(ctx, "workers"); got.Value != 0 {
		t.Fatalf("after close: %+v", got)
	}
}

func TestExpiringCounterRateLimit(t *testing.T) {
	n := testcluster.New(t, 1).Nodes[0]
	ctx := testcluster.Context(t, 20*time.Second)
	limit := func() error {
		_, err := n.Add(ctx, "rl:alice", 1, abacus.WithMax(3), abacus.WithExpiry(300*time.Millisecond))
		return err
	}
	for i := 0; i < 3; i++ {
		if err := limit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := limit(); !errors.Is(err, abacus.ErrOutOfRange) {
		t.Fatalf("fourth call in the window: %v", err)
	}
	testcluster.Eventually(t, 5*time.Second, "the window to reset", func() bool {
		got, err := n.Get(ctx, "rl:alice")
		return err == nil && !got.Exists
	})
	if err := limit(); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestWatch(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 20*time.Second)
	follower := c.Nodes[(c.Leader()+1)%3]
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := follower.Watch(wctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Exists || ev.Value != 0 {
		t.Fatalf("initial event: %+v", ev)
	}
	for i := 1; i <= 5; i++ {
		if _, err := c.Nodes[c.Leader()].Add(ctx, "w", 1); err != nil {
			t.Fatal(err)
		}
	}
	var last abacus.WatchEvent
	for last.Value != 5 {
		select {
		case ev := <-events:
			if ev.Revision < last.Revision || ev.Value < last.Value {
				t.Fatalf("watch went backwards: %+v after %+v", ev, last)
			}
			last = ev
		case <-ctx.Done():
			t.Fatalf("watch stopped at %+v", last)
		}
	}
	cancel()
	for range events {
	}
}

// TestWatchBound: past Config.MaxWatches a watch is refused with
// ErrLimitReached; ending one makes room for the next.
func TestWatchBound(t *testing.T) {
	c := testcluster.New(t, 1, func(_ int, cfg *abacus.Config) { cfg.MaxWatches = 2 })
	ctx := testcluster.Context(t, 10*time.Second)
	n := c.Nodes[0]
	first, cancel := context.WithCancel(ctx)
	events, err := n.Watch(first, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Watch(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Watch(ctx, "c"); !errors.Is(err, abacus.ErrLimitReached) {
		t.Fatalf("third watch: %v, want ErrLimitReached", err)
	}
	cancel()
	for range events { // closed once the watch has ended and released its place
	}
	if _, err := n.Watch(ctx, "c"); err != nil {
		t.Fatalf("watch after one ended: %v", err)
	}
}
