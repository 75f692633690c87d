package testcluster

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// ConcurrentWriters runs perNode writers on every node, each adding adds
// times to one shared counter and to a counter of its own, and checks that
// every shared add returned a distinct value and that every node ends
// with the exact totals.
func (c *Cluster) ConcurrentWriters(t testing.TB, perNode, adds int) {
	t.Helper()
	ctx := Context(t, 30*time.Second)
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
						t.Errorf("%s: own counter %s = %d after %d adds of 2", n.ID(), own, mine.Value, k)
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
	for i, n := range c.Nodes {
		got, err := n.Get(ctx, "shared")
		if err != nil || got.Value != total || !got.Exists {
			t.Fatalf("%s: linearizable get: %+v, %v; want %d", n.ID(), got, err, total)
		}
		for w := range perNode {
			own := fmt.Sprintf("own-%d-%d", i, w)
			if got, err := n.Get(ctx, own); err != nil || got.Value != int64(2*adds) {
				t.Fatalf("%s: %s = %+v, %v; want %d", n.ID(), own, got, err, 2*adds)
			}
		}
	}
}

// StateHash waits until every running node holds the same state and
// returns that state's hash.
func (c *Cluster) StateHash() string {
	c.t.Helper()
	var hash string
	c.Eventually(15*time.Second, "identical state on every node", func() bool {
		hash = ""
		for _, n := range c.Nodes {
			if n == nil {
				continue
			}
			h, err := n.FSM().Hash()
			if err != nil {
				c.t.Fatal(err)
			}
			if hash != "" && h != hash {
				return false
			}
			hash = h
		}
		return true
	})
	return hash
}
