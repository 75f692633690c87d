package rabia_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

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
	c := newCluster(t, 3)
	ctx := testcluster.Context(t, 30*time.Second)
	const perNode, adds = 8, 25
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[int64]bool{}
	)
	for i, n := range c.Nodes {
		for w := range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				own := fmt.Sprintf("own-%d-%d", i, w)
				for k := 1; k <= adds; k++ {
					got, err := n.Add(ctx, "shared", 1)
					if err != nil {
						t.Errorf("%s: shared add: %v", n.ID(), err)
						return
					}
					mu.Lock()
					if seen[got.Value] {
						t.Errorf("%s: shared add returned %d twice", n.ID(), got.Value)
					}
					seen[got.Value] = true
					mu.Unlock()
					mine, err := n.Add(ctx, own, 2)
					if err != nil {
						t.Errorf("%s: own add: %v", n.ID(), err)
						return
					}
					if mine.Value != int64(2*k) {
						t.Errorf("%s: own counter %s = %d after %d adds", n.ID(), own, mine.Value, k)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	total := int64(len(c.Nodes) * perNode * adds)
	c.Converge("shared", total)
	for _, n := range c.Nodes {
		got, err := n.Get(ctx, "shared")
		if err != nil || got.Value != total || !got.Exists {
			t.Fatalf("%s: linearizable get: %+v, %v; want %d", n.ID(), got, err, total)
		}
	}
}
