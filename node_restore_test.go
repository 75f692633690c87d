package abacus_test

import (
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// TestSnapshotInstallWakesWatchersAndWaiters cuts a follower off while it
// has a watch open and a lock request waiting, changes the watched counter
// and grants the lock to that request on the rest of the cluster, and
// writes past the log the leader keeps, so that the follower catches up
// by installing a snapshot. Both must learn of the changes the snapshot
// brought: the watch delivers the new value, the waiting request returns
// the lock, well before its wait ends.
func TestSnapshotInstallWakesWatchersAndWaiters(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithSnapshots(64, 16))
	ctx := testcluster.Context(t, 60*time.Second)
	leader := c.Leader()
	f := c.Followers(leader)[0]
	ln, fn := c.Nodes[leader], c.Nodes[f]

	if _, err := ln.Set(ctx, "w", 1); err != nil {
		t.Fatal(err)
	}
	c.ConvergeNodes("w", 1, f)
	events, err := fn.Watch(ctx, "w")
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Value != 1 {
		t.Fatalf("first watch event %+v", ev)
	}
	held, err := ln.AcquireLock(ctx, "L", "first", time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	type acquired struct {
		info abacus.LockInfo
		err  error
	}
	waiter := make(chan acquired, 1)
	go func() {
		info, err := fn.AcquireLock(ctx, "L", "second", time.Minute, 50*time.Second)
		waiter <- acquired{info, err}
	}()
	c.Eventually(10*time.Second, "the follower's request queued", func() bool {
		return abacus.LockQueueLenForTest(fn, "L") == 1
	})

	if err := fn.Faults().Isolate(); err != nil {
		t.Fatal(err)
	}
	if _, err := ln.Set(ctx, "w", 2); err != nil {
		t.Fatal(err)
	}
	if err := ln.ReleaseLock(ctx, "L", held.Token); err != nil {
		t.Fatal(err)
	}
	for range 200 {
		if _, err := ln.Add(ctx, "filler", 1); err != nil {
			t.Fatal(err)
		}
	}
	c.Eventually(10*time.Second, "a snapshot on the leader", func() bool { return snapshotCount(t, c, leader) > 0 })
	if fn.Status().AppliedIndex >= ln.Status().AppliedIndex {
		t.Fatal("the cut-off follower kept up")
	}
	if err := fn.Faults().Heal(); err != nil {
		t.Fatal(err)
	}

	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for got := false; !got; {
		select {
		case ev := <-events:
			got = ev.Value == 2
		case <-deadline.C:
			t.Fatal("the watch on the follower never saw the value the snapshot brought")
		}
	}
	select {
	case a := <-waiter:
		if a.err != nil || a.info.Holder != "second" {
			t.Fatalf("waiting request: %+v, %v", a.info, a.err)
		}
	case <-deadline.C:
		t.Fatal("the waiting request never saw the grant the snapshot brought")
	}
	if snapshotCount(t, c, f) == 0 {
		t.Fatal("the follower caught up without installing a snapshot")
	}
}
