package httpapi

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// httpMetrics counts requests per route and status code, and their latency
// per route. It is a prometheus.Collector. A route's series appear once it
// has served a request.
type httpMetrics struct {
	requests *prometheus.CounterVec   // labels route, code
	latency  *prometheus.HistogramVec // label route
	routes   []routeMetrics           // one per route, plus one for unmatched requests
	page     http.Handler             // GET /metrics, set by New
}

// routeMetrics holds one route's resolved series, so that recording a
// request builds no label strings once a route has seen a status code.
type routeMetrics struct {
	label   string
	latency atomic.Pointer[observer]
	codes   atomic.Pointer[[]codeCounter] // copied on write, under mu
	mu      sync.Mutex
}

type observer struct{ prometheus.Observer }

type codeCounter struct {
	code int
	c    prometheus.Counter
}

func newHTTPMetrics(names []string) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "abacus_http_requests_total",
			Help: "HTTP requests by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "abacus_http_request_seconds",
			Help:    "HTTP request latency by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"}),
		routes: make([]routeMetrics, len(names)+1),
	}
	for i, name := range names {
		m.routes[i].label = name
	}
	m.routes[len(names)].label = "other"
	return m
}

// observe records a request to route (-1: none matched).
func (m *httpMetrics) observe(route, status int, d time.Duration) {
	if route < 0 || route >= len(m.routes)-1 {
		route = len(m.routes) - 1
	}
	rm := &m.routes[route]
	rm.counter(m.requests, status).Inc()
	o := rm.latency.Load()
	if o == nil {
		rm.mu.Lock()
		if o = rm.latency.Load(); o == nil {
			o = &observer{m.latency.WithLabelValues(rm.label)}
			rm.latency.Store(o)
		}
		rm.mu.Unlock()
	}
	o.Observe(d.Seconds())
}

// counter returns the route's request counter for status, resolving it on
// the route's first request with that status.
func (rm *routeMetrics) counter(vec *prometheus.CounterVec, status int) prometheus.Counter {
	if cs := rm.codes.Load(); cs != nil {
		for _, cc := range *cs {
			if cc.code == status {
				return cc.c
			}
		}
	}
	rm.mu.Lock()
	defer rm.mu.Unlock()
	var old []codeCounter
	if cs := rm.codes.Load(); cs != nil {
		old = *cs
	}
	for _, cc := range old {
		if cc.code == status {
			return cc.c
		}
	}
	cc := codeCounter{status, vec.WithLabelValues(rm.label, strconv.Itoa(status))}
	cs := append(old[:len(old):len(old)], cc)
	rm.codes.Store(&cs)
	return cc.c
}

// Describe implements prometheus.Collector.
func (m *httpMetrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.latency.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *httpMetrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.latency.Collect(ch)
}

// Collector returns a prometheus.Collector of the handler's request
// metrics: abacus_http_requests_total by route and status code, and the
// latency histogram abacus_http_request_seconds by route. GET /metrics
// serves them with the node's (abacus.Node.Collector) from a registry of
// the handler's own; a service that gathers metrics in its own registry
// registers this collector there.
func (h *Handler) Collector() prometheus.Collector { return h.metrics }

// newMetricsPage returns the handler of GET /metrics: a registry holding
// the node's collector and the handler's request metrics, served in the
// Prometheus exposition format.
func newMetricsPage(node *abacus.Node, m *httpMetrics, log *slog.Logger) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(m)
	if node != nil {
		reg.MustRegister(node.Collector())
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: promLogger{log}})
}

// metricsPage serves the node's metrics and the HTTP metrics.
func (h *Handler) metricsPage(q *request) (any, error) {
	h.metrics.page.ServeHTTP(q.w, q.r)
	return nil, nil
}

// promLogger passes the metrics page's errors to the handler's logger.
type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) { l.log.Error("metrics: " + fmt.Sprint(v...)) }
