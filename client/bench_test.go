package client_test

import (
	"slices"
	"testing"
	"time"

	"github.com/abacuskit/abacus/client"
)

// BenchmarkAddViaFollower measures an HTTP add sent to a follower of a
// three-node cluster on loopback (forwarded to the leader), one at a time,
// and reports the median round trip.
func BenchmarkAddViaFollower(b *testing.B) {
	cl, srvs := serveB(b, 3)
	follower := (cl.Leader() + 1) % 3
	c, err := client.New([]string{srvs[follower].URL})
	if err != nil {
		b.Fatal(err)
	}
	ctx := b.Context()
	var lat []time.Duration
	for b.Loop() {
		start := time.Now()
		if _, err := c.Add(ctx, "bench", 1); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}
