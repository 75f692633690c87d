package httpapi

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// httpMetrics counts requests per route and status, and their latency per
// route.
type httpMetrics struct {
	names  []string // route labels, by index; unmatched requests are "other"
	latBkt []float64

	mu     sync.Mutex
	counts map[routeStatus]uint64
	hists  []*histogram // one per route, plus one for unmatched requests
}

type routeStatus struct {
	route  int
	status int
}

type histogram struct {
	counts []atomic.Uint64
	sum    atomic.Uint64 // float64 bits
}

func newHTTPMetrics(names []string) *httpMetrics {
	m := &httpMetrics{
		names:  names,
		latBkt: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		counts: make(map[routeStatus]uint64),
	}
	m.hists = make([]*histogram, len(names)+1)
	for i := range m.hists {
		m.hists[i] = &histogram{counts: make([]atomic.Uint64, len(m.latBkt)+1)}
	}
	return m
}

func (m *httpMetrics) label(route int) string {
	if route < 0 || route >= len(m.names) {
		return "other"
	}
	return m.names[route]
}

// observe records a request to route (-1: none matched).
func (m *httpMetrics) observe(route, status int, d time.Duration) {
	if route < 0 || route >= len(m.names) {
		route = len(m.names)
	}
	m.mu.Lock()
	m.counts[routeStatus{route, status}]++
	m.mu.Unlock()
	h := m.hists[route]
	v := d.Seconds()
	i := sort.SearchFloat64s(m.latBkt, v)
	h.counts[i].Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			break
		}
	}
}

func (m *httpMetrics) write(w io.Writer) {
	m.mu.Lock()
	keys := make([]routeStatus, 0, len(m.counts))
	for k := range m.counts {
		keys = append(keys, k)
	}
	counts := make(map[routeStatus]uint64, len(m.counts))
	for k, v := range m.counts {
		counts[k] = v
	}
	m.mu.Unlock()
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].route != keys[j].route {
			return keys[i].route < keys[j].route
		}
		return keys[i].status < keys[j].status
	})
	fmt.Fprintf(w, "# HELP abacus_http_requests_total HTTP requests by route and status code.\n# TYPE abacus_http_requests_total counter\n")
	for _, k := range keys {
		fmt.Fprintf(w, "abacus_http_requests_total{route=%q,code=\"%d\"} %d\n", m.label(k.route), k.status, counts[k])
	}
	fmt.Fprintf(w, "# HELP abacus_http_request_seconds HTTP request latency by route.\n# TYPE abacus_http_request_seconds histogram\n")
	for i, h := range m.hists {
		var total uint64
		for j := range h.counts {
			total += h.counts[j].Load()
		}
		if total == 0 {
			continue
		}
		label := m.label(i)
		var cum uint64
		for j, b := range m.latBkt {
			cum += h.counts[j].Load()
			fmt.Fprintf(w, "abacus_http_request_seconds_bucket{route=%q,le=%q} %d\n", label, strconv.FormatFloat(b, 'g', -1, 64), cum)
		}
		cum += h.counts[len(m.latBkt)].Load()
		fmt.Fprintf(w, "abacus_http_request_seconds_bucket{route=%q,le=\"+Inf\"} %d\n", label, cum)
		fmt.Fprintf(w, "abacus_http_request_seconds_sum{route=%q} %g\n", label, math.Float64frombits(h.sum.Load()))
		fmt.Fprintf(w, "abacus_http_request_seconds_count{route=%q} %d\n", label, cum)
	}
}
