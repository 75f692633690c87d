package abacus_test

import (
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// leaseTimeouts gives the nodes a heartbeat timeout long enough that the
// followers' replies can be held back for several read leases without
// anyone standing for election.
func leaseTimeouts(readLease, drift time.Duration) testcluster.Option {
	return func(_ int, c *abacus.Config) {
		c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout = time.Second, time.Second, time.Second
		c.ReadLease, c.DriftMargin = readLease, drift
	}
}

// TestReadLeaseOnlyFromRepliesAfterItsRound holds back every reply the
// followers send the leader by more than a read lease. A confirmation
// round's replies then arrive after the lease it would grant has ended, so
// the leader must hold no lease, and each linearizable read must wait for
// replies to a round that began after the read did: no read can be
// answered in less than the hold-back. Replies to heartbeats sent before
// the read keep arriving all the while; counting them would confirm the
// lease from knowledge older than the read.
func TestReadLeaseOnlyFromRepliesAfterItsRound(t *testing.T) {
	const readLease, holdBack = 100 * time.Millisecond, 300 * time.Millisecond
	c := testcluster.New(t, 3, leaseTimeouts(readLease, 50*time.Millisecond))
	ctx := testcluster.Context(t, 30*time.Second)
	li := c.Leader()
	leader := c.Nodes[li]
	if _, err := leader.Set(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	c.Eventually(5*time.Second, "a read lease", func() bool {
		_, ok := abacus.ReadLeaseForTest(leader)
		return ok
	})
	for _, i := range c.Followers(li) {
		if err := c.Nodes[i].Faults().DelayPeer(leader.ID(), holdBack); err != nil {
			t.Fatal(err)
		}
	}
	// A round sent before the hold-back began confirms at most one lease
	// from then.
	delayed := time.Now()
	c.Eventually(5*time.Second, "the lease confirmed before the hold-back to run out", func() bool {
		_, ok := abacus.ReadLeaseForTest(leader)
		return !ok && time.Since(delayed) > readLease
	})
	for i := range 5 {
		start := time.Now()
		got, err := leader.Get(ctx, "x")
		took := time.Since(start)
		if err != nil || got.Value != 1 {
			t.Fatalf("read %d: %+v %v", i, got, err)
		}
		if took < holdBack {
			t.Fatalf("read %d answered in %v: no reply to a confirmation sent after it began can arrive in less than %v",
				i, took, holdBack)
		}
		if left, ok := abacus.ReadLeaseForTest(leader); ok {
			t.Fatalf("read %d: the leader holds a lease (%v left) although every reply is older than a lease", i, left)
		}
	}
	for _, i := range c.Followers(li) {
		if err := c.Nodes[i].Faults().Heal(); err != nil {
			t.Fatal(err)
		}
	}
	c.Eventually(5*time.Second, "the lease back once replies are prompt", func() bool {
		_, ok := abacus.ReadLeaseForTest(leader)
		return ok
	})
}

// TestNewLeaderServesReadsAfterItsWait transfers leadership and reads on
// the new leader at once: the read is answered only once the new term's
// wait (a read lease plus the drift margin) is over, since the term's
// first entry can commit entries a deposed leader, still serving reads
// under its lease, has not applied.
func TestNewLeaderServesReadsAfterItsWait(t *testing.T) {
	c := testcluster.New(t, 3, leaseTimeouts(500*time.Millisecond, 100*time.Millisecond))
	ctx := testcluster.Context(t, 30*time.Second)
	old := c.Leader()
	if _, err := c.Nodes[old].Set(ctx, "x", 1); err != nil {
		t.Fatal(err)
	}
	oldTerm, _, _ := abacus.LeaderTermForTest(c.Nodes[old])
	if err := c.Nodes[old].TransferLeadership(ctx, ""); err != nil {
		t.Fatal(err)
	}
	next := c.Nodes[c.LeaderAmong(c.Followers(old)...)]
	var serves time.Time
	c.Eventually(5*time.Second, "the new leader's term", func() bool {
		term, at, ok := abacus.LeaderTermForTest(next)
		serves = at
		return ok && term > oldTerm
	})
	got, err := next.Get(ctx, "x")
	done := time.Now()
	if err != nil || got.Value != 1 {
		t.Fatalf("read on the new leader: %+v %v", got, err)
	}
	if done.Before(serves) {
		t.Fatalf("the new leader answered a read %v before its term's wait ended", serves.Sub(done))
	}
}
