package abacus_test

import (
	"context"
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// Benchmarks of a three-node cluster on loopback with a durable log
// (fsync on), production timeouts and no fault injection. cmd/abacus-load
// runs the same workloads for a fixed duration.

// callers is how many goroutines the parallel benchmarks run: the target
// load is 1,000 concurrent callers spread over the nodes.
const callers = 1000

func benchCluster(b *testing.B) *testcluster.Cluster {
	b.Helper()
	c := testcluster.New(b, 3, testcluster.Production())
	ctx := testcluster.Context(b, 30*time.Second)
	// Wait until the leader accepts writes.
	if _, err := c.Nodes[0].Add(ctx, "warm", 0); err != nil {
		b.Fatal(err)
	}
	return c
}

func counterNames(n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = "c" + strconv.Itoa(i)
	}
	return names
}

// runCallers runs op from `callers` goroutines spread over the nodes and
// reports adds per second.
func runCallers(b *testing.B, c *testcluster.Cluster, op func(ctx context.Context, n *abacus.Node, rng *rand.Rand) error) {
	b.Helper()
	ctx := context.Background()
	var next atomic.Uint64
	b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		i := next.Add(1)
		n := c.Nodes[int(i)%len(c.Nodes)]
		rng := rand.New(rand.NewPCG(i, 1))
		for pb.Next() {
			if err := op(ctx, n, rng); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkAddMany: 1,000 callers over the three nodes, Add on 1,000
// counters.
func BenchmarkAddMany(b *testing.B) {
	c := benchCluster(b)
	names := counterNames(1000)
	runCallers(b, c, func(ctx context.Context, n *abacus.Node, rng *rand.Rand) error {
		_, err := n.Add(ctx, names[rng.IntN(len(names))], 1)
		return err
	})
}

// BenchmarkAddOne: 1,000 callers over the three nodes, all on one counter.
func BenchmarkAddOne(b *testing.B) {
	c := benchCluster(b)
	runCallers(b, c, func(ctx context.Context, n *abacus.Node, _ *rand.Rand) error {
		_, err := n.Add(ctx, "one", 1)
		return err
	})
}

// BenchmarkAddSerial: one caller on the leader; reports latency
// percentiles.
func BenchmarkAddSerial(b *testing.B) {
	benchAddSerial(b, func(c *testcluster.Cluster) int { return c.Leader() })
}

// BenchmarkAddSerialFollower: one caller on a follower (one forwarding
// hop more).
func BenchmarkAddSerialFollower(b *testing.B) {
	benchAddSerial(b, func(c *testcluster.Cluster) int { return c.Followers(c.Leader())[0] })
}

// benchAddSerial times serial adds by one caller on the node pick chooses.
func benchAddSerial(b *testing.B, pick func(*testcluster.Cluster) int) {
	c := benchCluster(b)
	n := c.Nodes[pick(c)]
	ctx := context.Background()
	benchSerial(b, func() error {
		_, err := n.Add(ctx, "serial", 1)
		return err
	})
}

// benchSerial times b.N calls of op, one after another, and reports their
// latency percentiles.
func benchSerial(b *testing.B, op func() error) {
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if err := op(); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	reportPercentiles(b, lat)
}

func reportPercentiles(b *testing.B, lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkGetLeader: linearizable Gets on the leader, served under its
// read lease, from GOMAXPROCS goroutines.
func BenchmarkGetLeader(b *testing.B) {
	c := benchCluster(b)
	n := c.Nodes[c.Leader()]
	names := counterNames(1000)
	preloadCounters(b, n, names)
	var seed atomic.Uint64
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(seed.Add(1), 2))
		ctx := context.Background()
		for pb.Next() {
			if _, err := n.Get(ctx, names[rng.IntN(len(names))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "ops/s")
}

// BenchmarkGetLeaderSerial: one caller's linearizable Gets on the leader;
// ns/op is the latency of one read.
func BenchmarkGetLeaderSerial(b *testing.B) {
	c := benchCluster(b)
	n := c.Nodes[c.Leader()]
	ctx := context.Background()
	preloadCounters(b, n, []string{"g"})
	b.ResetTimer()
	for range b.N {
		if _, err := n.Get(ctx, "g"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetStale: stale reads on a follower, from GOMAXPROCS
// goroutines.
func BenchmarkGetStale(b *testing.B) {
	c := benchCluster(b)
	n := c.Nodes[c.Followers(c.Leader())[0]]
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := n.Get(ctx, "warm", abacus.WithStale()); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func preloadCounters(b *testing.B, n *abacus.Node, names []string) {
	b.Helper()
	ctx := testcluster.Context(b, 30*time.Second)
	for i := 0; i < len(names); i += abacus.MaxBatchOps {
		var ops []abacus.Command
		for _, name := range names[i:min(i+abacus.MaxBatchOps, len(names))] {
			ops = append(ops, abacus.Command{Op: abacus.OpAdd, Name: name, Delta: 1})
		}
		if _, err := n.Batch(ctx, ops); err != nil {
			b.Fatal(err)
		}
	}
}
