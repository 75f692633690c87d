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

// TestPartitionedLeaderServesNoStaleRead isolates the leader while a reader
// keeps reading from it linearizably, writes a new value through the
// majority's new leader, and checks that no read which started after that
// write was acknowledged returned the old value. The old leader's stale
// reads may (and here must) still show the old value.
func TestPartitionedLeaderServesNoStaleRead(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 30*time.Second)
	if _, err := c.Nodes[0].Set(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	c.Converge("x", 1)
	old := c.Leader()
	oldNode := c.Nodes[old]

	type read struct {
		start, end time.Time
		value      int64
		err        error
	}
	var (
		mu    sync.Mutex
		reads []read
		wg    sync.WaitGroup
		stop  = make(chan struct{})
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			rctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			start := time.Now()
			got, err := oldNode.Get(rctx, "x")
			end := time.Now()
			cancel()
			mu.Lock()
			reads = append(reads, read{start, end, got.Value, err})
			mu.Unlock()
		}
	}()
	c.Eventually(5*time.Second, "reads before the partition", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(reads) > 10
	})

	if err := oldNode.Faults().Isolate(); err != nil {
		t.Fatal(err)
	}
	others := c.Followers(old)
	newLeader := c.LeaderAmong(others...)
	if _, err := c.Nodes[newLeader].Set(ctx, "x", 2); err != nil {
		t.Fatalf("write through the new leader: %v", err)
	}
	acked := time.Now()
	// A linearizable read through the majority's follower sees it.
	for _, i := range others {
		if got, err := c.Nodes[i].Get(ctx, "x"); err != nil || got.Value != 2 {
			t.Fatalf("%s after the write: %+v %v", c.Configs[i].ID, got, err)
		}
	}
	// Let the isolated node's reader run well past the write.
	c.Eventually(5*time.Second, "reads on the old leader after the write", func() bool {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, r := range reads {
			if r.start.After(acked) {
				n++
			}
		}
		return n >= 3
	})
	// A read with a longer context fails rather than answer.
	rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	got, err := oldNode.Get(rctx, "x")
	cancel()
	if !errors.Is(err, abacus.ErrUnavailable) {
		t.Errorf("linearizable read on the isolated former leader: %+v, %v; want ErrUnavailable", got, err)
	}
	if got, err := oldNode.Get(ctx, "x", abacus.WithStale()); err != nil || got.Value != 1 {
		t.Errorf("stale read on the isolated former leader: %+v %v; want the old value 1", got, err)
	}
	if err := oldNode.Faults().Heal(); err != nil {
		t.Fatal(err)
	}
	c.Converge("x", 2)
	if got, err := oldNode.Get(ctx, "x"); err != nil || got.Value != 2 {
		t.Fatalf("linearizable read on the healed former leader: %+v %v", got, err)
	}
	close(stop)
	wg.Wait()

	var okBefore, failedAfter int
	for _, r := range reads {
		switch {
		case r.err != nil:
			if !errors.Is(r.err, abacus.ErrUnavailable) {
				t.Errorf("read failed with %v, want ErrUnavailable", r.err)
			}
			if r.start.After(acked) {
				failedAfter++
			}
		case r.start.After(acked) && r.value != 2:
			t.Errorf("stale linearizable read: started %v after the write of 2 was acknowledged, returned %d",
				r.start.Sub(acked), r.value)
		case r.end.Before(acked):
			okBefore++
		}
	}
	if okBefore == 0 || failedAfter == 0 {
		t.Fatalf("reader saw %d successful reads before the write and %d failures after; the test did not exercise the partition",
			okBefore, failedAfter)
	}
}

// TestLinearizableReadsEverywhere checks that a write acknowledged by any
// node is visible to a linearizable read on every node at once, and that
// the leader serves reads under its lease.
func TestLinearizableReadsEverywhere(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 30*time.Second)
	for k := int64(1); k <= 30; k++ {
		w := c.Nodes[k%3]
		if _, err := w.Set(ctx, "r", k); err != nil {
			t.Fatal(err)
		}
		for _, n := range c.Nodes {
			got, err := n.Get(ctx, "r")
			if err != nil || got.Value != k {
				t.Fatalf("after set %d through %s, read on %s: %+v %v", k, w.ID(), n.ID(), got, err)
			}
		}
	}
	got, err := c.Nodes[0].Get(ctx, "never-written")
	if err != nil || got.Exists || got.Value != 0 {
		t.Fatalf("a counter never written: %+v %v", got, err)
	}
}

// TestReadsAfterLeaderChange transfers leadership and checks that the new
// leader's reads show everything the old one acknowledged.
func TestReadsAfterLeaderChange(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 30*time.Second)
	for round := int64(1); round <= 3; round++ {
		leader := c.Leader()
		if _, err := c.Nodes[leader].Set(ctx, "t", round); err != nil {
			t.Fatal(err)
		}
		if err := c.Nodes[leader].TransferLeadership(ctx, ""); err != nil {
			t.Fatalf("transfer: %v", err)
		}
		next := c.LeaderAmong(c.Followers(leader)...)
		if got, err := c.Nodes[next].Get(ctx, "t"); err != nil || got.Value != round {
			t.Fatalf("round %d: new leader %s reads %+v %v", round, c.Nodes[next].ID(), got, err)
		}
		if got, err := c.Nodes[leader].Get(ctx, "t"); err != nil || got.Value != round {
			t.Fatalf("round %d: former leader reads %+v %v", round, got, err)
		}
	}
}
