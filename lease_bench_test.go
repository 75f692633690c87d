package abacus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// BenchmarkLockUnlock measures an uncontended lock and unlock round trip
// by a Mutex on the leader of a three-node cluster (durable log), and
// reports its latency percentiles.
func BenchmarkLockUnlock(b *testing.B) {
	c := testcluster.New(b, 3)
	ctx := context.Background()
	n := c.Nodes[c.Leader()]
	m := n.NewMutex("bench", "b", abacus.MutexOptions{TTL: 10 * time.Second})
	defer m.Close(ctx)
	benchSerial(b, func() error {
		if err := m.Lock(ctx); err != nil {
			return err
		}
		return m.Unlock(ctx)
	})
}

// BenchmarkContendedHolders measures 100 holders on three nodes taking
// turns at one lock; each op is one full round of 100 holds.
func BenchmarkContendedHolders(b *testing.B) {
	c := testcluster.New(b, 3)
	ctx := context.Background()
	const holders = 100
	mutexes := make([]*abacus.Mutex, holders)
	for i := range mutexes {
		mutexes[i] = c.Nodes[i%3].NewMutex("contended", fmt.Sprint("h", i), abacus.MutexOptions{TTL: 10 * time.Second})
		defer mutexes[i].Close(ctx)
	}
	b.ResetTimer()
	for range b.N {
		var wg sync.WaitGroup
		for _, m := range mutexes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := m.Lock(ctx); err != nil {
					b.Error(err)
					return
				}
				if err := m.Unlock(ctx); err != nil {
					b.Error(err)
				}
			}()
		}
		wg.Wait()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*holders), "ns/hold")
}
