package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/client"
	"github.com/abacuskit/abacus/httpapi"
	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// serve runs the HTTP API of every node of a fresh cluster.
func serve(t *testing.T, n int) (*testcluster.Cluster, []*httptest.Server) {
	t.Helper()
	return serveB(t, n)
}

func serveB(t testing.TB, n int, opts ...testcluster.Option) (*testcluster.Cluster, []*httptest.Server) {
	t.Helper()
	c := testcluster.New(t, n, opts...)
	ctx := testcluster.Context(t, 10*time.Second)
	// Wait until the leader serves, so shutting down never races its
	// first barrier.
	if _, err := c.Nodes[c.Leader()].Get(ctx, "warm-up"); err != nil {
		t.Fatal(err)
	}
	srvs := make([]*httptest.Server, n)
	for i, node := range c.Nodes {
		srvs[i] = httptest.NewServer(httpapi.New(node, httpapi.WithLogger(testcluster.Logger())))
		t.Cleanup(srvs[i].Close)
	}
	return c, srvs
}

func urls(srvs ...*httptest.Server) []string {
	var out []string
	for _, s := range srvs {
		out = append(out, s.URL)
	}
	return out
}

func TestCounters(t *testing.T) {
	_, srvs := serve(t, 1)
	c, err := client.New(urls(srvs...))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testcluster.Context(t, 20*time.Second)
	if r, err := c.Add(ctx, "a/b", 5); err != nil || r.Value != 5 {
		t.Fatalf("add: %+v %v", r, err)
	}
	if r, err := c.Get(ctx, "a/b"); err != nil || r.Value != 5 || !r.Exists {
		t.Fatalf("get: %+v %v", r, err)
	}
	if r, err := c.Get(ctx, "a/b", client.WithStale()); err != nil || r.Value != 5 {
		t.Fatalf("stale get: %+v %v", r, err)
	}
	_, err = c.Add(ctx, "a/b", 1, client.WithMax(5))
	var apiErr *client.Error
	if !errors.Is(err, client.ErrOutOfRange) || !errors.Is(err, abacus.ErrOutOfRange) || !errors.As(err, &apiErr) || apiErr.Status != 409 {
		t.Fatalf("bounded add: %v", err)
	}
	if client.Indeterminate(err) {
		t.Fatalf("a refused add is not indeterminate")
	}
	if r, err := c.Set(ctx, "a/b", 9); err != nil || r.Previous != 5 || r.Value != 9 {
		t.Fatalf("set: %+v %v", r, err)
	}
	if r, err := c.CompareAndSet(ctx, "a/b", 1, 2); err != nil || r.Swapped || r.Value != 9 {
		t.Fatalf("cas mismatch: %+v %v", r, err)
	}
	if r, err := c.CompareAndSet(ctx, "a/b", 9, 10); err != nil || !r.Swapped || r.Value != 10 {
		t.Fatalf("cas: %+v %v", r, err)
	}
	one, old := int64(1), int64(99)
	_, err = c.Batch(ctx, []wire.BatchOp{{Op: "add", Name: "x", Delta: &one}, {Op: "cas", Name: "a/b", Old: &old, New: &one}})
	if !errors.Is(err, client.ErrMismatch) || !errors.As(err, &apiErr) || apiErr.Index != 1 {
		t.Fatalf("batch with a mismatch: %v", err)
	}
	if r, err := c.Delete(ctx, "a/b"); err != nil || r.Previous != 10 {
		t.Fatalf("delete: %+v %v", r, err)
	}
	if _, err := c.Add(ctx, "", 1); !errors.Is(err, client.ErrInvalidArgument) {
		t.Fatalf("empty name: %v", err)
	}
	st, err := c.Cluster(ctx)
	if err != nil || st.Leader != "n1" || len(st.Members) != 1 {
		t.Fatalf("cluster: %+v %v", st, err)
	}
	events := make(chan wire.WatchEvent, 16)
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- c.Watch(wctx, "w", func(ev wire.WatchEvent) error { events <- ev; return nil })
	}()
	if ev := <-events; ev.Exists {
		t.Fatalf("first event of a counter never written: %+v", ev)
	}
	if _, err := c.Add(ctx, "w", 3); err != nil {
		t.Fatal(err)
	}
	if ev := <-events; ev.Value != 3 || !ev.Exists {
		t.Fatalf("event after add: %+v", ev)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("watch ended with %v", err)
	}
}

// TestFailover: a dead endpoint is skipped; without retries its failure is
// reported as unavailable (definitely not applied).
func TestFailover(t *testing.T) {
	_, srvs := serve(t, 1)
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	ctx := testcluster.Context(t, 20*time.Second)

	c, err := client.New([]string{dead.URL, srvs[0].URL})
	if err != nil {
		t.Fatal(err)
	}
	if r, err := c.Add(ctx, "f", 1); err != nil || r.Value != 1 {
		t.Fatalf("add with a dead first endpoint: %+v %v", r, err)
	}

	once, err := client.New([]string{dead.URL, srvs[0].URL}, client.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	_, err = once.Add(ctx, "f", 1)
	if !errors.Is(err, client.ErrUnavailable) || client.Indeterminate(err) {
		t.Fatalf("add without retries to a dead endpoint: %v", err)
	}
	if r, err := c.Get(ctx, "f"); err != nil || r.Value != 1 {
		t.Fatalf("after the refused add: %+v %v", r, err)
	}
}

// TestRetryIsExactlyOnce: an endpoint that applies a write and then loses
// the reply leaves the outcome unknown; the client retries on the next
// endpoint with the same session and sequence number, and the write
// applies once.
func TestRetryIsExactlyOnce(t *testing.T) {
	cl, srvs := serve(t, 3)
	var (
		mu   sync.Mutex
		keys []string
		lost atomic.Int32
	)
	api := httpapi.New(cl.Nodes[0], httpapi.WithLogger(testcluster.Logger()))
	lossy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/counters/") {
			api.ServeHTTP(w, r) // the session is opened here, normally
			return
		}
		mu.Lock()
		keys = append(keys, r.Header.Get(wire.SessionHeader)+"/"+r.Header.Get(wire.SeqHeader))
		mu.Unlock()
		api.ServeHTTP(httptest.NewRecorder(), r) // applied, reply lost
		lost.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusGatewayTimeout)
		_, _ = w.Write([]byte(`{"error":{"code":"indeterminate","message":"reply lost"}}`))
	}))
	t.Cleanup(lossy.Close)
	ctx := testcluster.Context(t, 20*time.Second)

	// A generous attempt timeout: the lossy attempt must finish, however
	// loaded the machine, for the test to know it was applied.
	c, err := client.New([]string{lossy.URL, srvs[1].URL, srvs[2].URL}, client.WithAttemptTimeout(30*time.Second), client.WithTimeout(60*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Add(ctx, "once", 7)
	if err != nil || r.Value != 7 {
		t.Fatalf("retried add: %+v %v (attempts on the lossy node: %d)", r, err, lost.Load())
	}
	mu.Lock()
	var firstKey string
	if len(keys) > 0 {
		firstKey = keys[0]
	}
	attempts := lost.Load()
	mu.Unlock()
	if attempts != 1 || firstKey == "/" {
		t.Fatalf("lossy node saw %d attempts, first session/seq %q", attempts, firstKey)
	}
	if g, err := c.Get(ctx, "once"); err != nil || g.Value != 7 {
		t.Fatalf("after the retry: %+v %v, want 7", g, err)
	}

	// Without retries the caller sees the unknown outcome.
	one, err := client.New([]string{lossy.URL}, client.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := one.Add(ctx, "once", 1); !client.Indeterminate(err) {
		t.Fatalf("add through a lossy node without retries: %v", err)
	}
}

func TestLocksAndInstances(t *testing.T) {
	_, srvs := serve(t, 1)
	c, err := client.New(urls(srvs...))
	if err != nil {
		t.Fatal(err)
	}
	ctx := testcluster.Context(t, 20*time.Second)
	got, err := c.AcquireLock(ctx, "L", "w1", time.Minute, 0)
	if err != nil || got.Token == 0 || got.TTLMS != 60000 {
		t.Fatalf("acquire: %+v %v", got, err)
	}
	_, err = c.AcquireLock(ctx, "L", "w2", time.Minute, 20*time.Millisecond)
	var apiErr *client.Error
	if !errors.Is(err, client.ErrLockHeld) || !errors.As(err, &apiErr) || apiErr.Holder != "w1" {
		t.Fatalf("contended acquire: %v", err)
	}
	if ttl, err := c.KeepAliveLock(ctx, "L", got.Token); err != nil || ttl != time.Minute {
		t.Fatalf("keepalive: %v %v", ttl, err)
	}
	if info, err := c.GetLock(ctx, "L"); err != nil || !info.Held || info.Holder != "w1" || info.Token != got.Token {
		t.Fatalf("get lock: %+v %v", info, err)
	}
	if _, err := c.Add(ctx, "fenced", 1, client.WithFence("L", got.Token)); err != nil {
		t.Fatalf("fenced add: %v", err)
	}
	if err := c.ReleaseLock(ctx, "L", got.Token); err != nil {
		t.Fatalf("release: %v", err)
	}
	if _, err := c.Add(ctx, "fenced", 1, client.WithFence("L", got.Token)); !errors.Is(err, client.ErrStaleToken) {
		t.Fatalf("fenced add after release: %v", err)
	}
	if _, err := c.KeepAliveLock(ctx, "L", got.Token); !errors.Is(err, client.ErrStaleToken) {
		t.Fatalf("keepalive after release: %v", err)
	}

	id, err := c.RegisterInstance(ctx, time.Minute)
	if err != nil || id == 0 {
		t.Fatalf("register: %d %v", id, err)
	}
	if r, err := c.Add(ctx, "conns", 2, client.WithInstance(id)); err != nil || r.Value != 2 || r.InstanceValue == nil || *r.InstanceValue != 2 {
		t.Fatalf("instance add: %+v %v", r, err)
	}
	if _, err := c.Add(ctx, "conns", 1); err != nil {
		t.Fatal(err)
	}
	if ttl, err := c.KeepAliveInstance(ctx, id); err != nil || ttl != time.Minute {
		t.Fatalf("instance keepalive: %v %v", ttl, err)
	}
	if err := c.DeleteInstance(ctx, id); err != nil {
		t.Fatalf("delete instance: %v", err)
	}
	if r, err := c.Get(ctx, "conns"); err != nil || r.Value != 1 {
		t.Fatalf("after the instance ended: %+v %v", r, err)
	}
	if _, err := c.KeepAliveInstance(ctx, 123456789); !errors.Is(err, client.ErrNotFound) {
		t.Fatalf("unknown instance: %v", err)
	}
}

// TestSessionReopened: when the cluster forgets a client's session between
// two writes, the next write is refused before it can apply, and the
// client opens a new session and applies it once.
func TestSessionReopened(t *testing.T) {
	cl, srvs := serveB(t, 1, func(_ int, cfg *abacus.Config) { cfg.FSM.MaxSessions = 2 })
	ctx := testcluster.Context(t, 20*time.Second)
	c, err := client.New(urls(srvs...))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Add(ctx, "r", 1); err != nil {
		t.Fatal(err)
	}
	for range 3 { // evicts the client's session
		if _, err := cl.Nodes[0].OpenSession(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if r, err := c.Add(ctx, "r", 1); err != nil || r.Value != 2 {
		t.Fatalf("write after the session was evicted: %+v %v", r, err)
	}
	if r, err := c.Add(ctx, "r", 1); err != nil || r.Value != 3 {
		t.Fatalf("next write: %+v %v", r, err)
	}
}
