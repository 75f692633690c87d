// Package httpapi serves an abacus node over HTTP with the JSON API of
// docs/API.md: counters, batches, watches, locks, instances, cluster status and
// membership, health, readiness and Prometheus metrics. Any service that
// embeds abacus can mount it:
//
//	node, err := abacus.Open(cfg)
//	...
//	http.Handle("/", httpapi.New(node))
//
// Every endpoint answers JSON; errors carry a status code and
// {"error": {"code": "...", "message": "..."}}. Client mistakes (malformed
// JSON, wrong types, unknown fields, bad names, bodies over 1 MiB) are 400
// invalid_argument, never a 500. The request and response bodies are
// package wire's types, and the error codes and statuses come from package
// errcode's table.
//
// Without WithAuthorizer every client that reaches the handler may do
// everything, membership changes included. With it (for example a Roles
// allow-list over mutual-TLS client certificates), each endpoint needs a
// Role and a client below it gets 403 permission_denied.
package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/abacuskit/abacus"
)

// MaxBodyBytes bounds every request body.
const MaxBodyBytes = 1 << 20

// MaxIdempotencyKeyLen bounds the Idempotency-Key header.
const MaxIdempotencyKeyLen = 256

// Handler serves the HTTP API of one node. It is safe for concurrent use.
type Handler struct {
	node    *abacus.Node
	log     *slog.Logger
	timeout time.Duration
	ready   time.Duration
	ping    time.Duration
	dir     *Directory
	clock   *abacus.OffsetClock
	faults  bool
	routes  []*route
	metrics *httpMetrics
	auth    Authorizer // nil: every client is admin
}

// Option configures a Handler.
type Option func(*Handler)

// WithTimeout sets the deadline of each request (default 10s; watches have
// none). A write that runs out of time answers 504 indeterminate, a read
// 503 unavailable.
func WithTimeout(d time.Duration) Option {
	return func(h *Handler) {
		if d > 0 {
			h.timeout = d
		}
	}
}

// WithReadyTimeout sets how quickly the linearizable read behind /readyz
// must succeed (default 1s).
func WithReadyTimeout(d time.Duration) Option {
	return func(h *Handler) {
		if d > 0 {
			h.ready = d
		}
	}
}

// WithLogger sets the handler's logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(h *Handler) {
		if l != nil {
			h.log = l
		}
	}
}

// WithDirectory gives the handler the members' HTTP addresses, reported as
// http_addr by /v1/cluster and updated by joins and removals through this
// handler. A member it does not list is reported with the address the
// member advertises itself (Config.HTTPAddr, see Node.HTTPAddr).
func WithDirectory(d *Directory) Option {
	return func(h *Handler) {
		if d != nil {
			h.dir = d
		}
	}
}

// WithFaults enables POST /v1/admin/faults, which drives the node's
// transport fault injection (the node must be opened with Config.Faults)
// and clock, which should be the node's Config.Clock. Without this option
// the endpoint answers 403.
func WithFaults(clock *abacus.OffsetClock) Option {
	return func(h *Handler) {
		h.faults = true
		h.clock = clock
	}
}

// New returns a handler serving node.
func New(node *abacus.Node, opts ...Option) *Handler {
	h := &Handler{
		node:    node,
		log:     slog.Default(),
		timeout: 10 * time.Second,
		ready:   time.Second,
		ping:    15 * time.Second,
		dir:     NewDirectory(nil),
	}
	for _, o := range opts {
		if o != nil {
			o(h)
		}
	}
	h.routes = []*route{
		{method: "POST", path: "/v1/counters/{}/add", write: true, fn: h.add},
		{method: "GET", path: "/v1/counters/{}", fn: h.get},
		{method: "PUT", path: "/v1/counters/{}", write: true, fn: h.set},
		{method: "POST", path: "/v1/counters/{}/cas", write: true, fn: h.cas},
		{method: "DELETE", path: "/v1/counters/{}", write: true, fn: h.del},
		{method: "POST", path: "/v1/batch", write: true, fn: h.batch},
		{method: "POST", path: "/v1/sessions", write: true, fn: h.openSession},
		{method: "GET", path: "/v1/counters/{}/watch", stream: true, fn: h.watch},
		{method: "POST", path: "/v1/locks/{}/acquire", write: true, fn: h.acquire},
		{method: "POST", path: "/v1/locks/{}/keepalive", write: true, fn: h.keepAliveLock},
		{method: "POST", path: "/v1/locks/{}/release", write: true, fn: h.release},
		{method: "GET", path: "/v1/locks/{}", fn: h.getLock},
		{method: "POST", path: "/v1/instances", write: true, fn: h.registerInstance},
		{method: "POST", path: "/v1/instances/{}/keepalive", write: true, fn: h.keepAliveInstance},
		{method: "DELETE", path: "/v1/instances/{}", write: true, fn: h.deleteInstance},
		{method: "GET", path: "/v1/cluster", fn: h.cluster},
		{method: "GET", path: "/v1/cluster/state", fn: h.state},
		{method: "POST", path: "/v1/cluster/members", write: true, fn: h.join},
		{method: "DELETE", path: "/v1/cluster/members/{}", write: true, fn: h.removeMember},
		{method: "POST", path: "/v1/cluster/leadership-transfer", write: true, fn: h.transfer},
		{method: "POST", path: "/v1/admin/faults", fn: h.adminFaults},
		{method: "GET", path: "/healthz", fn: h.healthz},
		{method: "GET", path: "/readyz", fn: h.readyz},
		{method: "GET", path: "/metrics", stream: true, fn: h.metricsPage},
	}
	names := make([]string, len(h.routes))
	for i, rt := range h.routes {
		rt.segs = strings.Split(strings.TrimPrefix(rt.path, "/"), "/")
		rt.need = routeRole(rt.method, rt.path)
		names[i] = rt.method + " " + rt.path
	}
	h.metrics = newHTTPMetrics(names)
	h.metrics.page = newMetricsPage(node, h.metrics, h.log)
	return h
}

// route is one endpoint: a method and a path whose "{}" segments are
// parameters (URL-escaped in the request, unescaped for the handler).
type route struct {
	method string
	path   string
	segs   []string
	write  bool // a write: a timeout leaves its outcome unknown
	stream bool // no per-request deadline
	need   Role // the role a client needs (with an Authorizer)
	fn     func(*request) (any, error)
}

// request is what an endpoint function sees.
type request struct {
	w      http.ResponseWriter
	r      *http.Request
	ctx    context.Context
	params []string
	route  *route
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
	idx, params, err := h.match(r)
	if err != nil {
		h.writeError(rec, err, false)
		h.metrics.observe(-1, rec.status, time.Since(start))
		return
	}
	rt := h.routes[idx]
	if err := h.authorize(r, rt); err != nil {
		h.writeError(rec, err, false)
		h.metrics.observe(idx, rec.status, time.Since(start))
		return
	}
	ctx := r.Context()
	if !rt.stream {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.timeout)
		defer cancel()
	}
	req := &request{w: rec, r: r, ctx: ctx, params: params, route: rt}
	resp, err := rt.fn(req)
	switch {
	case err != nil:
		h.writeError(rec, err, rt.write)
	case resp != nil:
		writeJSON(rec, http.StatusOK, resp)
	}
	h.metrics.observe(idx, rec.status, time.Since(start))
}

// match finds the route of r. Path segments are matched in their escaped
// form, so a name may contain an escaped slash.
func (h *Handler) match(r *http.Request) (int, []string, error) {
	if headerBytes(r) > MaxHeaderBytes {
		return 0, nil, errHeaderTooLarge
	}
	segs := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/"), "/")
	pathFound := false
	for i, rt := range h.routes {
		if len(rt.segs) != len(segs) {
			continue
		}
		var params []string
		ok := true
		for j, s := range rt.segs {
			if s == "{}" {
				p, err := url.PathUnescape(segs[j])
				if err != nil {
					return 0, nil, invalid("bad escape in path segment %q", segs[j])
				}
				params = append(params, p)
				continue
			}
			if s != segs[j] {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		pathFound = true
		if rt.method == r.Method || (rt.method == "GET" && r.Method == "HEAD") {
			return i, params, nil
		}
	}
	if pathFound {
		return 0, nil, errMethod
	}
	return 0, nil, errNoRoute
}

type statusRecorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (s *statusRecorder) WriteHeader(code int) {
	if !s.wrote {
		s.status, s.wrote = code, true
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	s.wrote = true
	return s.ResponseWriter.Write(b)
}

// Flush passes flushes through, for event streams.
func (s *statusRecorder) Flush() {
	s.wrote = true
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Directory maps member ids to their HTTP addresses. It is safe for
// concurrent use.
type Directory struct {
	mu sync.RWMutex
	m  map[string]string
}

// NewDirectory returns a directory holding a copy of m.
func NewDirectory(m map[string]string) *Directory {
	d := &Directory{m: make(map[string]string, len(m))}
	for k, v := range m {
		d.m[k] = v
	}
	return d
}

// Set records id's HTTP address.
func (d *Directory) Set(id, addr string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.m[id] = addr
}

// Get returns id's HTTP address.
func (d *Directory) Get(id string) (string, bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	a, ok := d.m[id]
	return a, ok
}

// Delete forgets id.
func (d *Directory) Delete(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.m, id)
}

// Snapshot returns a copy of the map.
func (d *Directory) Snapshot() map[string]string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	m := make(map[string]string, len(d.m))
	for k, v := range d.m {
		m[k] = v
	}
	return m
}
