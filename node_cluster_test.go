package abacus_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// TestClusterConcurrentWriters runs writers on every node at once, on one
// shared counter and on a counter of their own, and checks that the counts
// are exact everywhere and that every add returned a distinct value.
func TestClusterConcurrentWriters(t *testing.T) {
	testcluster.New(t, 3).ConcurrentWriters(t, 8, 25)
}

// writerLog is one sequential writer's account of its adds of 1 to its
// own counter: acknowledged ones, and ones whose outcome it does not know.
type writerLog struct {
	name          string
	node          int
	acked, unsure int64
	lastValue     int64
	err           error
}

// TestClusterLeaderKilledMidLoad stops the leader while writers on every
// node are adding. Writers on the surviving nodes must see every call
// succeed (the node retries across the failover) and their counters must
// equal exactly what was acknowledged; writers on the stopped node may
// have adds of unknown outcome, but none is applied twice.
func TestClusterLeaderKilledMidLoad(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 60*time.Second)
	leader := c.Leader()

	const perNode = 4
	var (
		wg     sync.WaitGroup
		logs   []*writerLog
		killed atomic.Bool
		acked  atomic.Int64
		after  atomic.Int64 // acknowledged after the kill
		stop   = make(chan struct{})
	)
	for i, n := range c.Nodes {
		for w := range perNode {
			wl := &writerLog{name: fmt.Sprintf("w-%d-%d", i, w), node: i}
			logs = append(logs, wl)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					got, err := n.Add(cctx, wl.name, 1)
					cancel()
					switch {
					case err == nil:
						wl.acked++
						// Earlier unsure adds may or may not be in the value.
						if got.Value < wl.acked || got.Value > wl.acked+wl.unsure {
							wl.err = fmt.Errorf("add returned %d after %d acknowledged and %d unsure adds", got.Value, wl.acked, wl.unsure)
							return
						}
						wl.lastValue = got.Value
						acked.Add(1)
						if killed.Load() {
							after.Add(1)
						}
					case errors.Is(err, abacus.ErrIndeterminate):
						wl.unsure++
					case errors.Is(err, abacus.ErrClosed), errors.Is(err, abacus.ErrUnavailable):
						if i != leader {
							wl.err = fmt.Errorf("add on a surviving node failed: %w", err)
						}
						return
					default:
						wl.err = fmt.Errorf("add: %w", err)
						return
					}
				}
			}()
		}
	}
	c.Eventually(20*time.Second, "adds before the kill", func() bool { return acked.Load() >= 200 })
	killed.Store(true)
	c.Stop(leader)
	newLeader := c.LeaderAmong(c.Followers(leader)...)
	c.Eventually(30*time.Second, "adds after the kill", func() bool { return after.Load() >= 300 })
	close(stop)
	wg.Wait()
	t.Logf("leader %s stopped, %s took over; %d adds acknowledged, %d after the kill",
		c.Configs[leader].ID, c.Configs[newLeader].ID, acked.Load(), after.Load())

	c.Start(leader)
	for _, wl := range logs {
		if wl.err != nil {
			t.Errorf("%s (on %s): %v", wl.name, c.Configs[wl.node].ID, wl.err)
			continue
		}
		got, err := c.Nodes[newLeader].Get(ctx, wl.name)
		if err != nil {
			t.Fatalf("get %s: %v", wl.name, err)
		}
		if wl.node != leader && (wl.unsure != 0 || got.Value != wl.acked) {
			t.Errorf("%s (surviving %s): value %d, acknowledged %d, unsure %d; want exactly the acknowledged adds",
				wl.name, c.Configs[wl.node].ID, got.Value, wl.acked, wl.unsure)
		}
		if got.Value < wl.acked || got.Value > wl.acked+wl.unsure {
			t.Errorf("%s: value %d outside [%d, %d]: an add was lost or applied twice",
				wl.name, got.Value, wl.acked, wl.acked+wl.unsure)
		}
		// The restarted former leader catches up with the same values.
		c.ConvergeNodes(wl.name, got.Value, leader)
	}
}

// TestClusterRetryAppliesOnce makes forwarded proposals' outcome unknown
// to the follower that forwarded them: the leader's replies to it are
// held back, and once the leader has applied the adds the link is cut, so
// the follower sees its calls lost after sending and retries them with the
// same client id and sequence numbers. When the link heals every call
// succeeds and each add was applied exactly once.
func TestClusterRetryAppliesOnce(t *testing.T) {
	rec := testcluster.NewRecorder()
	c := testcluster.New(t, 3, testcluster.WithLogger(rec))
	ctx := testcluster.Context(t, 30*time.Second)
	leader := c.Leader()
	f := c.Followers(leader)[0]
	fid := c.Configs[f].ID
	if _, err := c.Nodes[f].Add(ctx, "x", 0); err != nil { // warm the forwarding connection
		t.Fatal(err)
	}
	if err := c.Nodes[leader].Faults().DelayPeer(fid, time.Minute); err != nil {
		t.Fatal(err)
	}
	retriesBefore := rec.Count("retrying proposal")

	const calls = 20
	values := make(chan int64, calls)
	errs := make(chan error, calls)
	var wg sync.WaitGroup
	for range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := c.Nodes[f].Add(ctx, "x", 1)
			if err != nil {
				errs <- err
				return
			}
			values <- got.Value
		}()
	}
	// Every add reaches the leader's state machine, but no reply has left.
	c.Eventually(10*time.Second, "the adds applied on the leader", func() bool {
		got, _ := c.Nodes[leader].Get(ctx, "x", abacus.WithStale())
		return got.Value == calls
	})
	if n := rec.Count("retrying proposal"); n != retriesBefore {
		t.Fatalf("%d retries before the link was cut", n-retriesBefore)
	}
	// Cut the link: the held-back replies are lost, the follower's calls
	// fail after sending, and it retries them.
	if err := c.Nodes[leader].Faults().Partition(fid); err != nil {
		t.Fatal(err)
	}
	c.Eventually(10*time.Second, "retries of every add", func() bool {
		return rec.Count("retrying proposal") >= retriesBefore+calls
	})
	if err := c.Nodes[leader].Faults().Heal(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(values)
	close(errs)
	for err := range errs {
		t.Errorf("add: %v", err)
	}
	seen := map[int64]bool{}
	for v := range values {
		if v < 1 || v > calls || seen[v] {
			t.Errorf("add returned %d (seen before: %v)", v, seen[v])
		}
		seen[v] = true
	}
	c.Converge("x", calls)
	if got, err := c.Nodes[f].Get(ctx, "x"); err != nil || got.Value != calls {
		t.Fatalf("linearizable get: %+v %v; want %d", got, err, calls)
	}
}

// TestClusterRetryUnderLoss adds through a follower whose link to the
// leader loses a fifth of its writes: every call still succeeds, once.
func TestClusterRetryUnderLoss(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 60*time.Second)
	leader := c.Leader()
	f := c.Followers(leader)[0]
	if err := c.Nodes[f].Faults().LossPeer(c.Configs[leader].ID, 0.2); err != nil {
		t.Fatal(err)
	}
	if err := c.Nodes[leader].Faults().LossPeer(c.Configs[f].ID, 0.2); err != nil {
		t.Fatal(err)
	}
	const adds = 60
	for k := int64(1); k <= adds; k++ {
		got, err := c.Nodes[f].Add(ctx, "lossy", 1)
		if err != nil {
			t.Fatalf("add %d: %v", k, err)
		}
		if got.Value != k {
			t.Fatalf("add %d returned %d: applied more than once", k, got.Value)
		}
	}
	for _, n := range c.Nodes {
		if err := n.Faults().Heal(); err != nil {
			t.Fatal(err)
		}
	}
	c.Converge("lossy", adds)
}

// TestClusterIdempotencyKey retries a write with the same key through
// different nodes: it applies once and every retry returns its result.
func TestClusterIdempotencyKey(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 20*time.Second)
	for round := range 3 {
		for i, n := range c.Nodes {
			got, err := n.Add(ctx, "keyed", 5, abacus.WithIdempotencyKey("request-1"))
			if err != nil || got.Value != 5 {
				t.Fatalf("round %d, %s: %+v %v; want the first result, 5", round, c.Configs[i].ID, got, err)
			}
		}
	}
	if got, err := c.Nodes[0].Add(ctx, "keyed", 5, abacus.WithIdempotencyKey("request-2")); err != nil || got.Value != 10 {
		t.Fatalf("a new key: %+v %v; want 10", got, err)
	}
	c.Converge("keyed", 10)
}

// snapshotCount returns how many snapshots node i has on disk.
func snapshotCount(t *testing.T, c *testcluster.Cluster, i int) int {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(c.Configs[i].Dir, "snapshots"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if e.IsDir() && filepath.Ext(e.Name()) != ".tmp" {
			n++
		}
	}
	return n
}

// TestClusterRestart stops a follower, writes past the log the leader
// keeps after a snapshot (so the follower must install a snapshot),
// restarts it from its data directory and checks that it catches up; then
// restarts the whole cluster and checks that all state survived.
func TestClusterRestart(t *testing.T) {
	c := testcluster.New(t, 3, testcluster.WithSnapshots(64, 16))
	ctx := testcluster.Context(t, 60*time.Second)
	if _, err := c.Nodes[0].Add(ctx, "a", 1); err != nil {
		t.Fatal(err)
	}
	c.Converge("a", 1)
	leader := c.Leader()
	f := c.Followers(leader)[0]
	c.Stop(f)

	// Concurrent writers through the leader and the other follower.
	var wg sync.WaitGroup
	live := []int{leader, c.Followers(leader)[0]}
	if live[1] == f {
		live[1] = c.Followers(leader)[1]
	}
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := c.Nodes[live[w%2]]
			for k := range 40 {
				if _, err := n.Add(ctx, "a", 1); err != nil {
					t.Errorf("add: %v", err)
					return
				}
				if _, err := n.Set(ctx, fmt.Sprintf("s%d", w), int64(k)); err != nil {
					t.Errorf("set: %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const a = 1 + 8*40
	c.Eventually(10*time.Second, "a snapshot on the leader", func() bool { return snapshotCount(t, c, leader) > 0 })

	c.Start(f)
	c.Converge("a", a)
	for w := range 8 {
		c.ConvergeNodes(fmt.Sprintf("s%d", w), 39, f)
	}
	if st := c.Nodes[f].Status(); len(st.Members) != 3 {
		t.Fatalf("restarted follower sees members %v", st.Members)
	}

	// Whole-cluster restart: everything comes back from the data
	// directories (snapshots plus the trailing log).
	wantHash := c.StateHash()
	c.Close()
	for i := range c.Nodes {
		c.Start(i)
	}
	c.Leader()
	c.Converge("a", a)
	for i, n := range c.Nodes {
		if snapshotCount(t, c, i) == 0 {
			t.Errorf("%s has no snapshot", n.ID())
		}
		got, err := n.Get(ctx, "s7")
		if err != nil || got.Value != 39 {
			t.Fatalf("%s: s7 = %+v %v", n.ID(), got, err)
		}
	}
	if got := c.StateHash(); got != wantHash {
		t.Fatalf("state after restart differs: hash %s, before %s", got, wantHash)
	}
	if got, err := c.Nodes[0].Add(ctx, "a", 1); err != nil || got.Value != a+1 {
		t.Fatalf("add after restart: %+v %v", got, err)
	}
}

// TestClusterMembership adds a fourth node through a follower, moves
// leadership to it, and removes an original member, with writes working
// throughout.
func TestClusterMembership(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 60*time.Second)
	for k := range 20 {
		if _, err := c.Nodes[k%3].Add(ctx, "m", 1); err != nil {
			t.Fatal(err)
		}
	}
	leader := c.Leader()
	f := c.Followers(leader)[0]

	n4 := c.Join()
	if err := retryMembership(ctx, func() error { return c.Nodes[f].AddMember(ctx, c.Member(n4)) }); err != nil {
		t.Fatalf("add member through a follower: %v", err)
	}
	c.Converge("m", 20)
	if st := c.Nodes[leader].Status(); len(st.Members) != 4 {
		t.Fatalf("members after add: %v", st.Members)
	}
	if got, err := c.Nodes[n4].Add(ctx, "m", 1); err != nil || got.Value != 21 {
		t.Fatalf("add through the new node: %+v %v", got, err)
	}

	// Hand leadership to the new node, from a node that is not the leader.
	if err := retryMembership(ctx, func() error { return c.Nodes[f].TransferLeadership(ctx, c.Configs[n4].ID) }); err != nil {
		t.Fatalf("transfer leadership: %v", err)
	}
	c.Eventually(10*time.Second, "the new node leading", func() bool {
		return c.Nodes[n4].Status().State == "leader"
	})
	if got, err := c.Nodes[leader].Add(ctx, "m", 1); err != nil || got.Value != 22 {
		t.Fatalf("add after transfer: %+v %v", got, err)
	}

	// Remove an original member; the remaining three keep working.
	gone := leader
	if err := retryMembership(ctx, func() error { return c.Nodes[f].RemoveMember(ctx, c.Configs[gone].ID) }); err != nil {
		t.Fatalf("remove member: %v", err)
	}
	c.Eventually(10*time.Second, "three members", func() bool {
		return len(c.Nodes[n4].Status().Members) == 3
	})
	c.Stop(gone)
	for _, i := range c.Followers(gone) {
		if _, err := c.Nodes[i].Add(ctx, "m", 1); err != nil {
			t.Fatalf("add after removal through %s: %v", c.Configs[i].ID, err)
		}
	}
	c.Converge("m", 25)

	// Any-voter transfer.
	before := c.LeaderAmong(c.Followers(gone)...)
	if err := retryMembership(ctx, func() error { return c.Nodes[before].TransferLeadership(ctx, "") }); err != nil {
		t.Fatalf("transfer to any voter: %v", err)
	}
	c.Eventually(10*time.Second, "another leader", func() bool {
		for _, i := range c.Followers(gone) {
			if i != before && c.Nodes[i].Status().State == "leader" {
				return true
			}
		}
		return false
	})
	if got, err := c.Nodes[before].Add(ctx, "m", 1); err != nil || got.Value != 26 {
		t.Fatalf("add after second transfer: %+v %v", got, err)
	}
	if err := c.Nodes[before].AddMember(ctx, abacus.Member{ID: "x"}); !errors.Is(err, abacus.ErrInvalidArgument) {
		t.Fatalf("add member without an address: %v, want ErrInvalidArgument", err)
	}
}

// retryMembership retries a membership change while its outcome is
// unknown or no leader could take it, as an application would: adding,
// removing or transferring again is harmless once it has happened.
func retryMembership(ctx context.Context, change func() error) error {
	for {
		err := change()
		if err == nil || (!errors.Is(err, abacus.ErrUnavailable) && !errors.Is(err, abacus.ErrIndeterminate)) || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return err
		}
	}
}

// TestClusterContextEnds checks that calls whose context ends return
// promptly with ErrUnavailable or ErrIndeterminate, whatever the cluster
// is doing.
func TestClusterContextEnds(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 30*time.Second)
	if _, err := c.Nodes[0].Add(ctx, "c", 1); err != nil {
		t.Fatal(err)
	}
	leader := c.Leader()
	fs := c.Followers(leader)

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	type call struct {
		name string
		fn   func(context.Context) error
	}
	on := func(i int) []call {
		n := func() *abacus.Node { return c.Nodes[i] }
		return []call{
			{"add", func(ctx context.Context) error { _, err := n().Add(ctx, "c", 1); return err }},
			{"get", func(ctx context.Context) error { _, err := n().Get(ctx, "c"); return err }},
			{"batch", func(ctx context.Context) error {
				_, err := n().Batch(ctx, []abacus.Command{{Op: abacus.OpAdd, Name: "c", Delta: 1}})
				return err
			}},
		}
	}
	check := func(t *testing.T, ctx context.Context, timeout time.Duration, calls []call) {
		for _, cl := range calls {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			start := time.Now()
			err := cl.fn(cctx)
			cancel()
			took := time.Since(start)
			if !errors.Is(err, abacus.ErrUnavailable) && !errors.Is(err, abacus.ErrIndeterminate) {
				t.Errorf("%s: %v, want ErrUnavailable or ErrIndeterminate", cl.name, err)
			}
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s: %v does not wrap the context's error", cl.name, err)
			}
			// Promptness, not speed: a hang would take the test's whole budget.
			if took > timeout+2*time.Second {
				t.Errorf("%s took %v with a %v context", cl.name, took, timeout)
			}
		}
	}
	t.Run("cancelled before the call", func(t *testing.T) {
		for _, i := range []int{leader, fs[0]} {
			check(t, cancelled, time.Second, on(i))
		}
	})
	t.Run("isolated follower", func(t *testing.T) {
		if err := c.Nodes[fs[0]].Faults().Isolate(); err != nil {
			t.Fatal(err)
		}
		check(t, ctx, 300*time.Millisecond, on(fs[0]))
		if err := c.Nodes[fs[0]].Faults().Heal(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no quorum", func(t *testing.T) {
		c.Stop(fs[0])
		c.Stop(fs[1])
		check(t, ctx, 300*time.Millisecond, on(leader))
	})
}

// TestConfigValidation checks that bad configurations are refused with
// ErrInvalidArgument, by Validate and by Open, before anything starts.
func TestConfigValidation(t *testing.T) {
	base := func() abacus.Config {
		c := abacus.DefaultConfig()
		c.ID, c.Dir, c.BindAddr = "n1", t.TempDir(), "127.0.0.1:0"
		c.Logger = testcluster.Logger()
		return c
	}
	peers := []abacus.Member{{ID: "n1", Addr: "127.0.0.1:1", Voter: true}, {ID: "n2", Addr: "127.0.0.1:2", Voter: true}}
	cases := []struct {
		name string
		mod  func(*abacus.Config)
	}{
		{"no id", func(c *abacus.Config) { c.ID = "" }},
		{"long id", func(c *abacus.Config) { c.ID = string(make([]byte, 256)) }},
		{"no dir", func(c *abacus.Config) { c.Dir = "" }},
		{"bad bind address", func(c *abacus.Config) { c.BindAddr = "localhost" }},
		{"bad advertise address", func(c *abacus.Config) { c.AdvertiseAddr = "nowhere" }},
		{"read lease reaches heartbeat timeout", func(c *abacus.Config) { c.ReadLease = c.HeartbeatTimeout }},
		{"read lease plus drift reaches heartbeat timeout", func(c *abacus.Config) {
			c.ReadLease = c.HeartbeatTimeout - c.DriftMargin
		}},
		{"negative read lease", func(c *abacus.Config) { c.ReadLease = -time.Millisecond }},
		{"negative drift", func(c *abacus.Config) { c.DriftMargin = -time.Millisecond }},
		{"leader lease above heartbeat timeout", func(c *abacus.Config) { c.LeaderLeaseTimeout = c.HeartbeatTimeout + 1 }},
		{"tiny heartbeat timeout", func(c *abacus.Config) {
			c.HeartbeatTimeout, c.ElectionTimeout, c.LeaderLeaseTimeout, c.ReadLease, c.DriftMargin = time.Millisecond, time.Millisecond, time.Millisecond, time.Microsecond, 1
		}},
		{"election timeout below heartbeat timeout", func(c *abacus.Config) { c.ElectionTimeout = 100 * time.Millisecond }},
		{"snapshot interval too short", func(c *abacus.Config) { c.SnapshotInterval = time.Millisecond }},
		{"too many proposals per entry", func(c *abacus.Config) { c.MaxEntryProposals = abacus.MaxEntryProposals + 1 }},
		{"negative proposals per entry", func(c *abacus.Config) { c.MaxEntryProposals = -1 }},
		{"negative in-flight entries", func(c *abacus.Config) { c.MaxInflightEntries = -1 }},
		{"peers without this node", func(c *abacus.Config) { c.ID = "n3"; c.Peers = peers }},
		{"duplicate peers", func(c *abacus.Config) { c.Peers = append(peers, peers[1]) }},
		{"peer with a bad address", func(c *abacus.Config) {
			c.Peers = []abacus.Member{peers[0], {ID: "n2", Addr: "n2", Voter: true}}
		}},
		{"join with peers", func(c *abacus.Config) { c.Join = true; c.Peers = peers }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base()
			tc.mod(&cfg)
			n, err := abacus.Open(cfg)
			if err == nil {
				n.Close()
				t.Fatal("Open accepted the configuration")
			}
			if !errors.Is(err, abacus.ErrInvalidArgument) {
				t.Fatalf("Open: %v, want ErrInvalidArgument", err)
			}
		})
	}
	if err := base().Validate(); err != nil {
		t.Fatalf("the default configuration is invalid: %v", err)
	}
}
