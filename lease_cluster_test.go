package abacus_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// A lease keeps its remaining time through a change of leader: killed two
// seconds into a five-second lease, the leader's successor neither ends it
// before five seconds nor much after.
func TestLeaseSurvivesLeaderChange(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 30*time.Second)
	leader := c.Leader()
	const ttl = 5 * time.Second
	start := time.Now()
	id, err := c.Nodes[leader].Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	testcluster.Eventually(t, 5*time.Second, "two seconds", func() bool { return time.Since(start) >= 2*time.Second })
	killed := time.Now()
	c.Stop(leader)
	next := c.Leader()
	// State-machine time stands still from the last time the old leader
	// recorded (at most TickInterval before it died) until the new leader
	// takes office, so the lease may end that much late, and no earlier.
	gap := time.Since(killed) + c.Configs[next].TickInterval

	var ended time.Duration
	testcluster.Eventually(t, 20*time.Second, "the lease to end", func() bool {
		_, err := c.Nodes[next].TimeToLive(ctx, id)
		if errors.Is(err, abacus.ErrLeaseExpired) {
			ended = time.Since(start)
			return true
		}
		return false
	})
	if ended < ttl {
		t.Fatalf("lease ended %v after grant, before its %v TTL", ended, ttl)
	}
	if limit := ttl + gap + time.Second; ended > limit {
		t.Fatalf("lease ended %v after grant, later than TTL %v plus the leaderless gap %v (and 1s to notice)", ended, ttl, gap)
	}
	t.Logf("lease of %v ended %v after grant, across a leader change with a %v gap", ttl, ended, gap)
}

// A leader whose wall clock is hours ahead, or jumps, expires nothing
// early: state-machine time advances by elapsed time, not wall time.
func TestLeaderClockAheadExpiresNothingEarly(t *testing.T) {
	clocks := make([]*abacus.OffsetClock, 3)
	c := testcluster.New(t, 3, func(i int, cfg *abacus.Config) {
		clocks[i] = &abacus.OffsetClock{}
		clocks[i].SetOffset(time.Duration(i+1) * time.Hour)
		cfg.Clock = clocks[i]
	})
	ctx := testcluster.Context(t, 30*time.Second)
	leader := c.Leader()
	start := time.Now()
	id, err := c.Nodes[leader].Grant(ctx, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	clocks[leader].SetOffset(5 * time.Hour) // the leader's clock jumps
	c.Stop(leader)                          // and a leader whose clock is hours off takes over
	next := c.Leader()
	clocks[next].SetOffset(10 * time.Hour)
	testcluster.Eventually(t, 10*time.Second, "2.5 seconds", func() bool { return time.Since(start) >= 2500*time.Millisecond })
	info, err := c.Nodes[next].TimeToLive(ctx, id)
	if err != nil {
		t.Fatalf("lease ended early under leaders whose clocks are hours off: %v", err)
	}
	if info.Remaining <= 0 || info.Remaining > 3*time.Second {
		t.Fatalf("remaining %v", info.Remaining)
	}
}

// A holder that stops renewing loses the lock to the next holder, whose
// token is larger, and the old holder's fenced writes are refused: across
// a three-node cluster, with the two holders on different nodes.
func TestFencingAcrossNodes(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 30*time.Second)
	a := c.Nodes[0].NewMutex("deploy", "a", abacus.MutexOptions{TTL: 500 * time.Millisecond})
	if err := a.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Nodes[0].Set(ctx, "version", 1, a.Fence()); err != nil {
		t.Fatal(err)
	}
	abacus.StopKeeperForTest(a)
	b := c.Nodes[2].NewMutex("deploy", "b", abacus.MutexOptions{TTL: 5 * time.Second})
	if err := b.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	if b.Token() <= a.Token() {
		t.Fatalf("token %d after %d", b.Token(), a.Token())
	}
	if _, err := c.Nodes[1].Set(ctx, "version", 99, a.Fence()); !errors.Is(err, abacus.ErrStaleToken) {
		t.Fatalf("stale fenced write: %v", err)
	}
	if _, err := c.Nodes[2].Set(ctx, "version", 2, b.Fence()); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Nodes[1].Get(ctx, "version"); got.Value != 2 {
		t.Fatalf("version %d", got.Value)
	}
}

// One hundred holders contend for one lock from three nodes: each is
// served once, in queue order, with strictly increasing tokens and no lost
// wake-up.
func TestHundredContendingHolders(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 60*time.Second)
	first := c.Nodes[0].NewMutex("hot", "first", abacus.MutexOptions{TTL: 10 * time.Second})
	if err := first.Lock(ctx); err != nil {
		t.Fatal(err)
	}
	const holders = 100
	tokens := make(map[string]uint64)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for i := range holders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("h%03d", i)
			m := c.Nodes[i%3].NewMutex("hot", name, abacus.MutexOptions{TTL: 10 * time.Second})
			if err := m.Lock(ctx); err != nil {
				t.Error(err)
				return
			}
			// Inside the lock: a fenced read-modify-write that would lose
			// updates if two holders overlapped.
			got, err := c.Nodes[i%3].Get(ctx, "inside")
			if err == nil {
				_, err = c.Nodes[i%3].Set(ctx, "inside", got.Value+1, m.Fence())
			}
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			tokens[name] = m.Token()
			mu.Unlock()
			if err := m.Unlock(ctx); err != nil {
				t.Error(err)
			}
		}()
	}
	leader := c.Leader()
	var queue []string
	testcluster.Eventually(t, 30*time.Second, "all holders queued", func() bool {
		queue = abacus.LockQueueHoldersForTest(c.Nodes[leader], "hot")
		return len(queue) == holders
	})
	if err := first.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if len(tokens) != holders {
		t.Fatalf("%d of %d holders served", len(tokens), holders)
	}
	for i := 1; i < len(queue); i++ {
		if tokens[queue[i]] <= tokens[queue[i-1]] {
			t.Fatalf("served out of queue order: %s (token %d) after %s (token %d)",
				queue[i], tokens[queue[i]], queue[i-1], tokens[queue[i-1]])
		}
	}
	if got, _ := c.Nodes[0].Get(ctx, "inside"); got.Value != holders {
		t.Fatalf("fenced read-modify-writes: %d, want %d", got.Value, holders)
	}
}

// A waiting request granted while its node is cut off, whose lease ends
// before the node hears of the grant, fails with ErrLeaseExpired: it held
// the lock in between, so ErrLockHeld ("never had it") would be untrue.
// The fault harness caught that answer on a partitioned node.
func TestWaiterGrantedWhileCutOff(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 30*time.Second)
	leader := c.Leader()
	cut := c.Followers(leader)[0]
	first, err := c.Nodes[leader].AcquireLock(ctx, "L", "a", 10*time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	const ttl = time.Second
	done := make(chan error, 1)
	go func() {
		_, err := c.Nodes[cut].AcquireLock(ctx, "L", "b", ttl, 20*time.Second)
		done <- err
	}()
	c.Eventually(10*time.Second, "b to wait in line", func() bool {
		return abacus.LockQueueLenForTest(c.Nodes[leader], "L") == 1
	})
	if err := c.Nodes[cut].Faults().Isolate(); err != nil {
		t.Fatal(err)
	}
	if err := c.Nodes[leader].ReleaseLock(ctx, "L", first.Token); err != nil {
		t.Fatal(err)
	}
	// b is granted, and its lease, which its cut-off node cannot renew,
	// ends on the connected side.
	var granted bool
	c.Eventually(10*time.Second, "b's hold to begin and end", func() bool {
		info, err := c.Nodes[leader].GetLock(ctx, "L")
		if err != nil {
			return false
		}
		granted = granted || (info.Held && info.Holder == "b" && info.Token > first.Token)
		return granted && !info.Held
	})
	if err := c.Nodes[cut].Faults().Heal(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, abacus.ErrLeaseExpired) {
		t.Fatalf("acquire granted and expired while cut off: %v, want ErrLeaseExpired", err)
	}
}
