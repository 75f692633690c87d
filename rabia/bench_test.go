package rabia_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
	"github.com/abacuskit/abacus/rabia"
)

// Benchmarks of three-node clusters on loopback with durable logs (fsync
// on), production timeouts and no fault injection, the same load on both
// backends:
//
//	go test -run '^$' -bench . -benchtime 3s ./rabia/

// backends are the two replication paths compared.
var backends = []struct {
	name string
	new  func(b *testing.B) *testcluster.Cluster
}{
	{"raft", func(b *testing.B) *testcluster.Cluster {
		c := testcluster.New(b, 3, testcluster.Production(), withFaults)
		c.Ready("warm")
		return c
	}},
	{"rabia", func(b *testing.B) *testcluster.Cluster {
		c := testcluster.NewLeaderless(b, 3, testcluster.Production(), withFaults, testcluster.WithBackend(rabia.Backend(rabia.Options{})))
		c.Ready("warm")
		return c
	}},
}

// withFaults keeps fault injection on so that a kill can cut the victim
// off the network at once, as a crash would, before it is closed.
func withFaults(_ int, c *abacus.Config) { c.Faults = true }

// BenchmarkAdd: many concurrent callers spread over the nodes, each adding
// to one of 1,000 counters; reports adds per second.
func BenchmarkAdd(b *testing.B) {
	for _, callers := range []int{64, 1000} {
		for _, be := range backends {
			b.Run(be.name+"/callers="+strconv.Itoa(callers), func(b *testing.B) {
				c := be.new(b)
				names := make([]string, 1000)
				for i := range names {
					names[i] = "c" + strconv.Itoa(i)
				}
				var next atomic.Int64
				var wg sync.WaitGroup
				b.ResetTimer()
				start := time.Now()
				for w := range callers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						n := c.Nodes[w%len(c.Nodes)]
						rng := rand.New(rand.NewPCG(uint64(w), 1))
						for next.Add(1) <= int64(b.N) {
							if _, err := n.Add(context.Background(), names[rng.IntN(len(names))], 1); err != nil {
								b.Error(err)
								return
							}
						}
					}()
				}
				wg.Wait()
				b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "adds/s")
			})
		}
	}
}

// BenchmarkKillWindow: 64 callers on the two nodes that survive add
// continuously; one node is closed (on Raft, the leader) and the longest
// time with no completed add, from the kill to 2s after it, is reported
// as max-gap-ms. The victim is cut off the network before it is closed,
// so it cannot hand anything over as a graceful stop would. Run with
// -benchtime 1x.
func BenchmarkKillWindow(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			var gaps []float64
			for range b.N {
				gaps = append(gaps, killWindow(b, be.new(b), be.name == "raft").Seconds()*1000)
			}
			b.ReportMetric(slices.Max(gaps), "max-gap-ms")
		})
	}
}

func killWindow(b *testing.B, c *testcluster.Cluster, raft bool) time.Duration {
	victim := 0
	if raft {
		victim = c.Leader()
	}
	survivors := c.Followers(victim)
	ctx, cancel := context.WithCancel(context.Background())
	var (
		mu   sync.Mutex
		done []time.Time
		wg   sync.WaitGroup
	)
	for w := range 64 {
		n := c.Nodes[survivors[w%len(survivors)]]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if _, err := n.Add(ctx, "k"+strconv.Itoa(w), 1); err == nil {
					mu.Lock()
					done = append(done, time.Now())
					mu.Unlock()
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // load runs before the kill
	killed := time.Now()
	if err := c.Nodes[victim].Faults().Isolate(); err != nil {
		b.Fatal(err)
	}
	c.Stop(victim)
	time.Sleep(2 * time.Second)
	cancel()
	wg.Wait()
	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(done, func(a, b time.Time) int { return a.Compare(b) })
	last, gap := killed, time.Duration(0)
	for _, t := range done {
		if t.Before(killed) {
			continue
		}
		gap = max(gap, t.Sub(last))
		last = t
	}
	return max(gap, killed.Add(2*time.Second).Sub(last))
}
