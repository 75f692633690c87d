package httpapi

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestHTTPMetricsRecordWithoutAllocating: once a route has seen a status
// code, recording another such request costs no allocation.
func TestHTTPMetricsRecordWithoutAllocating(t *testing.T) {
	m := newHTTPMetrics([]string{"GET /a", "POST /b"})
	m.observe(1, 200, time.Millisecond)
	m.observe(1, 503, time.Millisecond)
	m.observe(-1, 404, time.Millisecond)
	allocs := testing.AllocsPerRun(1000, func() {
		m.observe(1, 200, time.Millisecond)
		m.observe(1, 503, time.Millisecond)
		m.observe(-1, 404, time.Millisecond)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request", allocs)
	}
}

// TestHTTPMetricsConcurrent: requests recorded at once on one route with
// new status codes are all counted, each under its own code.
func TestHTTPMetricsConcurrent(t *testing.T) {
	m := newHTTPMetrics([]string{"GET /a"})
	const workers, each = 8, 200
	codes := []int{200, 400, 404, 409, 500, 503}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m.observe(0, codes[(w+i)%len(codes)], time.Microsecond)
			}
		}()
	}
	wg.Wait()
	var total float64
	for _, c := range codes {
		total += testutil.ToFloat64(m.requests.WithLabelValues("GET /a", strconv.Itoa(c)))
	}
	if total != workers*each {
		t.Errorf("%v requests counted, want %d", total, workers*each)
	}
	if n := testutil.CollectAndCount(m, "abacus_http_requests_total"); n != len(codes) {
		t.Errorf("%d request series, want %d", n, len(codes))
	}
	if n := testutil.CollectAndCount(m, "abacus_http_request_seconds"); n != 1 {
		t.Errorf("%d latency series, want 1", n)
	}
}

// TestHTTPMetricsLint checks the request metrics against Prometheus's
// naming and help conventions.
func TestHTTPMetricsLint(t *testing.T) {
	m := newHTTPMetrics([]string{"GET /a"})
	m.observe(0, 200, time.Millisecond)
	m.observe(-1, 404, time.Millisecond)
	problems, err := testutil.CollectAndLint(m)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}
