package httpapi_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/httpapi"
	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/internal/testcluster"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

type reply struct {
	status int
	body   map[string]any
	raw    string
}

func call(t *testing.T, srv *httptest.Server, method, path, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := reply{status: resp.StatusCode, raw: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &r.body); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, path, b, err)
		}
	}
	return r
}

func (r reply) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// newServer runs the API over a real one-node cluster.
func newServer(t *testing.T, opts ...httpapi.Option) (*testcluster.Cluster, *httptest.Server) {
	t.Helper()
	c := testcluster.New(t, 1)
	// A linearizable read succeeds once the leader's first barrier has
	// applied; closing a node before that can hang in Raft's shutdown.
	ctx := testcluster.Context(t, 10*time.Second)
	if _, err := c.Nodes[0].Get(ctx, "warm-up"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(c.Nodes[0], append([]httpapi.Option{httpapi.WithLogger(testcluster.Logger())}, opts...)...))
	t.Cleanup(srv.Close)
	return c, srv
}

// TestEndpoints runs every endpoint and every documented error against a
// real node, in order (later cases see the state earlier ones left).
func TestEndpoints(t *testing.T) {
	_, srv := newServer(t)
	long := strings.Repeat("x", 257)
	big := `{"delta": 1, "pad": "` + strings.Repeat("y", httpapi.MaxBodyBytes) + `"}`

	cases := []apiCase{
		// Counters.
		{name: "get never written", method: "GET", path: "/v1/counters/a", status: 200, want: map[string]any{"value": 0.0, "exists": false}},
		{name: "add", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 5}`, status: 200, want: map[string]any{"value": 5.0}},
		{name: "add negative", method: "POST", path: "/v1/counters/a/add", body: `{"delta": -2}`, status: 200, want: map[string]any{"value": 3.0}},
		{name: "get", method: "GET", path: "/v1/counters/a?consistency=linearizable", status: 200, want: map[string]any{"value": 3.0, "exists": true}},
		{name: "get stale", method: "GET", path: "/v1/counters/a?consistency=stale", status: 200, want: map[string]any{"value": 3.0, "exists": true}},
		{name: "get unknown consistency", method: "GET", path: "/v1/counters/a?consistency=eventual", status: 400, code: "invalid_argument"},
		{name: "add within bounds", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 1, "min": 0, "max": 4}`, status: 200, want: map[string]any{"value": 4.0}},
		{name: "add out of range", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 1, "max": 4}`, status: 409, code: "out_of_range"},
		{name: "add below min", method: "POST", path: "/v1/counters/a/add", body: `{"delta": -5, "min": 0}`, status: 409, code: "out_of_range"},
		{name: "set max", method: "PUT", path: "/v1/counters/big", body: `{"value": 9223372036854775807}`, status: 200, want: map[string]any{"previous": 0.0}},
		{name: "overflow", method: "POST", path: "/v1/counters/big/add", body: `{"delta": 1}`, status: 409, code: "overflow"},
		{name: "set min", method: "PUT", path: "/v1/counters/small", body: `{"value": -9223372036854775808}`, status: 200},
		{name: "underflow", method: "POST", path: "/v1/counters/small/add", body: `{"delta": -1}`, status: 409, code: "underflow"},
		{name: "set", method: "PUT", path: "/v1/counters/a", body: `{"value": 10}`, status: 200, want: map[string]any{"previous": 4.0, "value": 10.0}},
		{name: "cas swaps", method: "POST", path: "/v1/counters/a/cas", body: `{"old": 10, "new": 11}`, status: 200, want: map[string]any{"swapped": true, "value": 11.0}},
		{name: "cas mismatch", method: "POST", path: "/v1/counters/a/cas", body: `{"old": 10, "new": 12}`, status: 200, want: map[string]any{"swapped": false, "value": 11.0}},
		{name: "cas missing new", method: "POST", path: "/v1/counters/a/cas", body: `{"old": 10}`, status: 400, code: "invalid_argument"},
		{name: "delete", method: "DELETE", path: "/v1/counters/a", status: 200, want: map[string]any{"previous": 11.0}},
		{name: "deleted reads as never written", method: "GET", path: "/v1/counters/a", status: 200, want: map[string]any{"value": 0.0, "exists": false}},
		{name: "escaped slash in a name", method: "POST", path: "/v1/counters/x%2Fy/add", body: `{"delta": 7}`, status: 200, want: map[string]any{"value": 7.0}},
		{name: "escaped slash read back", method: "GET", path: "/v1/counters/x%2Fy", status: 200, want: map[string]any{"value": 7.0}},
		{name: "unicode name", method: "POST", path: "/v1/counters/%C3%A9t%C3%A9/add", body: `{"delta": 1}`, status: 200, want: map[string]any{"value": 1.0}},
		{name: "expiry window", method: "POST", path: "/v1/counters/rate/add", body: `{"delta": 1, "max": 10, "expiry_ms": 60000}`, status: 200, want: map[string]any{"value": 1.0}},

		// Client mistakes are 400s.
		{name: "malformed JSON", method: "POST", path: "/v1/counters/a/add", body: `{"delta": `, status: 400, code: "invalid_argument"},
		{name: "not an object", method: "POST", path: "/v1/counters/a/add", body: `[1]`, status: 400, code: "invalid_argument"},
		{name: "trailing data", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 1} {}`, status: 400, code: "invalid_argument"},
		{name: "trailing bracket", method: "POST", path: "/v1/counters/a/add", body: `{"delta":1}]`, status: 400, code: "invalid_argument"},
		{name: "trailing brace", method: "POST", path: "/v1/counters/a/add", body: `{"delta":1}}`, status: 400, code: "invalid_argument"},
		{name: "wrong type", method: "POST", path: "/v1/counters/a/add", body: `{"delta": "1"}`, status: 400, code: "invalid_argument"},
		{name: "fraction", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 1.5}`, status: 400, code: "invalid_argument"},
		{name: "beyond int64", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 9223372036854775808}`, status: 400, code: "invalid_argument"},
		{name: "unknown field", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 1, "bogus": 2}`, status: 400, code: "invalid_argument"},
		{name: "missing delta", method: "POST", path: "/v1/counters/a/add", body: `{}`, status: 400, code: "invalid_argument"},
		{name: "empty body", method: "POST", path: "/v1/counters/a/add", status: 400, code: "invalid_argument"},
		{name: "body over 1 MiB", method: "POST", path: "/v1/counters/a/add", body: big, status: 400, code: "invalid_argument"},
		{name: "empty name", method: "POST", path: "/v1/counters//add", body: `{"delta": 1}`, status: 400, code: "invalid_argument"},
		{name: "name over 256 bytes", method: "POST", path: "/v1/counters/" + long + "/add", body: `{"delta": 1}`, status: 400, code: "invalid_argument"},
		{name: "name not UTF-8", method: "GET", path: "/v1/counters/%FF%FE", status: 400, code: "invalid_argument"},
		{name: "min above max", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 1, "min": 5, "max": 1}`, status: 400, code: "invalid_argument"},
		{name: "negative expiry", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 1, "expiry_ms": -1}`, status: 400, code: "invalid_argument"},
		{name: "expiry over the longest lease", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 1, "expiry_ms": ` + strconv.FormatInt(abacus.MaxTTL.Milliseconds()+1, 10) + `}`, status: 400, code: "invalid_argument"},
		{name: "fence without token", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 1, "fence": {"lock": "L"}}`, status: 400, code: "invalid_argument"},
		{name: "instance not a number", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 1, "instance": "abc"}`, status: 400, code: "invalid_argument"},
		{name: "unknown endpoint", method: "GET", path: "/v1/nothing", status: 404, code: "not_found"},
		{name: "wrong method", method: "PATCH", path: "/v1/counters/a", status: 405, code: "method_not_allowed"},

		// Batches.
		{name: "batch", method: "POST", path: "/v1/batch", body: `{"ops": [{"op": "add", "name": "b1", "delta": 2}, {"op": "set", "name": "b2", "value": 3}, {"op": "cas", "name": "b2", "old": 3, "new": 4}, {"op": "get", "name": "b1"}, {"op": "delete", "name": "b1"}]}`,
			status: 200, want: map[string]any{"results": []any{
				map[string]any{"value": 2.0},
				map[string]any{"previous": 0.0, "value": 3.0},
				map[string]any{"swapped": true, "value": 4.0},
				map[string]any{"value": 2.0, "exists": true},
				map[string]any{"previous": 2.0},
			}}},
		{name: "batch cas mismatch", method: "POST", path: "/v1/batch", body: `{"ops": [{"op": "add", "name": "b3", "delta": 1}, {"op": "cas", "name": "b2", "old": 99, "new": 1}]}`, status: 409, code: "cas_mismatch", want: map[string]any{"error": map[string]any{"index": 1.0}}},
		{name: "batch was all or nothing", method: "GET", path: "/v1/counters/b3", status: 200, want: map[string]any{"value": 0.0, "exists": false}},
		{name: "batch overflow", method: "POST", path: "/v1/batch", body: `{"ops": [{"op": "add", "name": "big", "delta": 1}]}`, status: 409, code: "overflow"},
		{name: "empty batch", method: "POST", path: "/v1/batch", body: `{"ops": []}`, status: 400, code: "invalid_argument"},
		{name: "batch unknown op", method: "POST", path: "/v1/batch", body: `{"ops": [{"op": "mul", "name": "a"}]}`, status: 400, code: "invalid_argument"},
		{name: "batch field of another op", method: "POST", path: "/v1/batch", body: `{"ops": [{"op": "add", "name": "a", "delta": 1, "old": 2}]}`, status: 400, code: "invalid_argument"},
		{name: "batch bad name", method: "POST", path: "/v1/batch", body: `{"ops": [{"op": "get", "name": ""}]}`, status: 400, code: "invalid_argument"},

		// Cluster and operations.
		{name: "cluster", method: "GET", path: "/v1/cluster", status: 200, want: map[string]any{"node": "n1", "backend": "raft", "leader": "n1", "state": "leader"}},
		{name: "healthz", method: "GET", path: "/healthz", status: 200},
		{name: "readyz", method: "GET", path: "/readyz", status: 200},
		{name: "faults refused", method: "POST", path: "/v1/admin/faults", body: `{"heal": true}`, status: 403, code: "permission_denied"},
		{name: "join bad address", method: "POST", path: "/v1/cluster/members", body: `{"id": "n9", "peer_addr": "nowhere"}`, status: 400, code: "invalid_argument"},
		{name: "idempotency key too long", method: "POST", path: "/v1/counters/a/add", body: `{"delta": 1}`, header: strings.Repeat("k", 257), status: 400, code: "invalid_argument"},
	}
	runCases(t, srv, cases)
}

// apiCase is one request and what its reply must be.
type apiCase struct {
	name           string
	method, path   string
	body           string
	status         int
	code           string         // error code, for errors
	want           map[string]any // fields of the reply that must match
	holder, header string
}

func runCases(t *testing.T, srv *httptest.Server, cases []apiCase) {
	t.Helper()
	for _, tc := range cases {
		var hdr []string
		if tc.header != "" {
			hdr = []string{"Idempotency-Key", tc.header}
		}
		r := call(t, srv, tc.method, tc.path, tc.body, hdr...)
		if r.status != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.name, r.status, tc.status, r.raw)
			continue
		}
		if r.errCode() != tc.code {
			t.Errorf("%s: error code %q, want %q (%s)", tc.name, r.errCode(), tc.code, r.raw)
		}
		if tc.code != "" {
			msg, _ := r.body["error"].(map[string]any)["message"].(string)
			if msg == "" {
				t.Errorf("%s: error without a message: %s", tc.name, r.raw)
			}
		}
		if tc.holder != "" {
			if h, _ := r.body["error"].(map[string]any)["holder"].(string); h != tc.holder {
				t.Errorf("%s: holder %q, want %q", tc.name, h, tc.holder)
			}
		}
		if !matches(r.body, tc.want) {
			t.Errorf("%s: reply %s does not match %v", tc.name, r.raw, tc.want)
		}
	}
}

// matches reports whether got has every field of want (recursively for
// objects; arrays must match element by element).
func matches(got, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return w == nil
		}
		for k, v := range w {
			if !matches(g[k], v) {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !matches(g[i], w[i]) {
				return false
			}
		}
		return true
	}
	return got == want
}

// TestIdempotencyKey: the same key twice applies once and answers the
// same; another key applies again.
func TestIdempotencyKey(t *testing.T) {
	_, srv := newServer(t)
	first := call(t, srv, "POST", "/v1/counters/k/add", `{"delta": 10}`, "Idempotency-Key", "key-1")
	again := call(t, srv, "POST", "/v1/counters/k/add", `{"delta": 10}`, "Idempotency-Key", "key-1")
	if first.status != 200 || again.status != 200 || first.raw != again.raw {
		t.Fatalf("retry answered %d %s, first %d %s", again.status, again.raw, first.status, first.raw)
	}
	if r := call(t, srv, "GET", "/v1/counters/k", ""); !matches(r.body, map[string]any{"value": 10.0}) {
		t.Fatalf("after a retried add: %s, want value 10", r.raw)
	}
	other := call(t, srv, "POST", "/v1/counters/k/add", `{"delta": 10}`, "Idempotency-Key", "key-2")
	if !matches(other.body, map[string]any{"value": 20.0}) {
		t.Fatalf("a new key: %s, want value 20", other.raw)
	}
	// A refused write is remembered too: its retry is refused the same way.
	for range 2 {
		r := call(t, srv, "POST", "/v1/counters/k/add", `{"delta": 1, "max": 20}`, "Idempotency-Key", "key-3")
		if r.status != 409 || r.errCode() != "out_of_range" {
			t.Fatalf("bounded add: %d %s", r.status, r.raw)
		}
	}
	for range 2 {
		r := call(t, srv, "POST", "/v1/batch", `{"ops": [{"op": "add", "name": "k", "delta": -5}]}`, "Idempotency-Key", "key-4")
		if !matches(r.body, map[string]any{"results": []any{map[string]any{"value": 15.0}}}) {
			t.Fatalf("batch retry: %s", r.raw)
		}
	}
	for range 2 {
		r := call(t, srv, "PUT", "/v1/counters/k", `{"value": 1}`, "Idempotency-Key", "key-5")
		if !matches(r.body, map[string]any{"previous": 15.0, "value": 1.0}) {
			t.Fatalf("set retry: %s", r.raw)
		}
	}
}

// TestUnavailable: a closed node answers 503 unavailable, and /readyz
// turns 503 while /healthz stays 200.
func TestUnavailable(t *testing.T) {
	c, srv := newServer(t)
	if r := call(t, srv, "POST", "/v1/counters/a/add", `{"delta": 1}`); r.status != 200 {
		t.Fatalf("add: %d %s", r.status, r.raw)
	}
	c.Stop(0)
	for _, tc := range []struct{ method, path, body string }{
		{"POST", "/v1/counters/a/add", `{"delta": 1}`},
		{"GET", "/v1/counters/a", ""},
		{"GET", "/readyz", ""},
	} {
		r := call(t, srv, tc.method, tc.path, tc.body)
		if r.status != 503 || r.errCode() != "unavailable" {
			t.Errorf("%s %s on a closed node: %d %s", tc.method, tc.path, r.status, r.raw)
		}
	}
	if r := call(t, srv, "GET", "/healthz", ""); r.status != 200 {
		t.Errorf("healthz: %d", r.status)
	}
}

// TestIndeterminate: a write the leader submits but cannot commit in time
// answers 504 indeterminate; a read that cannot be served, 503.
func TestIndeterminate(t *testing.T) {
	c := testcluster.New(t, 3)
	li := c.Leader()
	srv := httptest.NewServer(httpapi.New(c.Nodes[li], httpapi.WithTimeout(300*time.Millisecond), httpapi.WithLogger(testcluster.Logger())))
	t.Cleanup(srv.Close)
	if _, err := c.Nodes[li].Add(testcluster.Context(t, 10*time.Second), "a", 1); err != nil {
		t.Fatalf("add before the fault: %v", err)
	}
	for i, n := range c.Nodes {
		if i != li {
			if err := n.Faults().Isolate(); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := call(t, srv, "POST", "/v1/counters/a/add", `{"delta": 1}`)
	t.Logf("add without a quorum: %d %s", r.status, r.raw)
	if r.status != 504 && r.status != 503 {
		t.Fatalf("add without a quorum: %d %s", r.status, r.raw)
	}
	if r.status == 504 && r.errCode() != "indeterminate" || r.status == 503 && r.errCode() != "unavailable" {
		t.Fatalf("add without a quorum: %d %s", r.status, r.raw)
	}
	// Once the leader has stepped down, writes are refused up front.
	testcluster.Eventually(t, 10*time.Second, "a 503 from a deposed leader", func() bool {
		return call(t, srv, "POST", "/v1/counters/a/add", `{"delta": 1}`).status == 503
	})
	if r := call(t, srv, "GET", "/v1/counters/a", ""); r.status != 503 || r.errCode() != "unavailable" {
		t.Fatalf("linearizable read without a quorum: %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "GET", "/readyz", ""); r.status != 503 {
		t.Fatalf("readyz without a quorum: %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "GET", "/v1/counters/a?consistency=stale", ""); r.status != 200 {
		t.Fatalf("stale read without a quorum: %d %s", r.status, r.raw)
	}
}

// TestWatch streams the current value, then each change.
func TestWatch(t *testing.T) {
	c, srv := newServer(t)
	ctx := testcluster.Context(t, 20*time.Second)
	if _, err := c.Nodes[0].Add(ctx, "w", 1); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/counters/w/watch", nil)
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	sc := bufio.NewScanner(resp.Body)
	next := func() wire.WatchEvent {
		t.Helper()
		for sc.Scan() {
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var ev wire.WatchEvent
			if err := json.Unmarshal([]byte(line), &ev); err != nil {
				t.Fatalf("event %q: %v", line, err)
			}
			return ev
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return wire.WatchEvent{}
	}
	first := next()
	if first.Value != 1 || !first.Exists || first.Revision == 0 {
		t.Fatalf("first event %+v", first)
	}
	for want := int64(2); want <= 4; want++ {
		if _, err := c.Nodes[0].Add(ctx, "w", 1); err != nil {
			t.Fatal(err)
		}
		ev := next()
		if ev.Value != want || ev.Revision <= first.Revision {
			t.Fatalf("event %+v, want value %d after revision %d", ev, want, first.Revision)
		}
		first = ev
	}
	if _, err := c.Nodes[0].Delete(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if ev := next(); ev.Exists || ev.Value != 0 {
		t.Fatalf("after delete: %+v", ev)
	}
}

// TestFaultsEndpoint drives fault injection when enabled.
func TestFaultsEndpoint(t *testing.T) {
	clock := &abacus.OffsetClock{}
	_, srv := newServer(t, httpapi.WithFaults(clock))
	for _, tc := range []struct {
		body   string
		status int
	}{
		{`{"partition": ["n2"]}`, 200},
		{`{"delay_ms": 5}`, 200},
		{`{"loss": 0.5}`, 200},
		{`{"clock_offset_ms": -1500}`, 200},
		{`{"heal": true}`, 200},
		{`{"loss": 2}`, 400},
		{`{"delay_ms": -1}`, 400},
		{`{"bogus": 1}`, 400},
	} {
		if r := call(t, srv, "POST", "/v1/admin/faults", tc.body); r.status != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.body, r.status, r.raw, tc.status)
		}
	}
	if clock.Offset() != -1500*time.Millisecond {
		t.Errorf("clock offset %v", clock.Offset())
	}
}

// TestMetrics serves the node's metrics and per-route request counts, in
// the Prometheus text format, under their names and labels.
func TestMetrics(t *testing.T) {
	_, srv := newServer(t)
	call(t, srv, "POST", "/v1/counters/m/add", `{"delta": 1}`)
	call(t, srv, "POST", "/v1/counters/m/add", `{"delta": "x"}`)
	r := call(t, srv, "GET", "/metrics", "")
	if r.status != 200 {
		t.Fatalf("metrics: %d %s", r.status, r.raw)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(r.raw))
	if err != nil {
		t.Fatalf("metrics do not parse: %v\n%s", err, r.raw)
	}
	const add = "POST /v1/counters/{}/add"
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"abacus_writes_total", nil, 1},
		{"abacus_state", map[string]string{"state": "leader"}, 1},
		{"abacus_http_requests_total", map[string]string{"route": add, "code": "200"}, 1},
		{"abacus_http_requests_total", map[string]string{"route": add, "code": "400"}, 1},
		{"abacus_http_request_seconds", map[string]string{"route": add}, 2},
	} {
		got, ok := metricValue(fams[tc.name], tc.labels)
		if !ok || got != tc.want {
			t.Errorf("%s%v = %v (found %v), want %v:\n%s", tc.name, tc.labels, got, ok, tc.want, r.raw)
		}
	}
}

// metricValue is the value of f's series with exactly labels: a counter's
// or gauge's value, or a histogram's sample count.
func metricValue(f *dto.MetricFamily, labels map[string]string) (float64, bool) {
next:
	for _, m := range f.GetMetric() {
		if len(m.GetLabel()) != len(labels) {
			continue
		}
		for _, l := range m.GetLabel() {
			if v, ok := labels[l.GetName()]; !ok || v != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

// TestStateEndpoint: GET /v1/cluster/state hashes the node's state machine
// at the position it reports, and the hash moves with a write.
func TestStateEndpoint(t *testing.T) {
	c, srv := newServer(t)
	before := call(t, srv, "GET", "/v1/cluster/state", "")
	if before.status != 200 {
		t.Fatalf("state: %d %s", before.status, before.raw)
	}
	want, err := c.Nodes[0].FSM().Hash()
	if err != nil {
		t.Fatal(err)
	}
	if before.body["hash"] != want || before.body["applied_index"] != float64(c.Nodes[0].FSM().Index()) {
		t.Fatalf("state %v, want hash %s at index %d", before.body, want, c.Nodes[0].FSM().Index())
	}
	if r := call(t, srv, "POST", "/v1/counters/h/add", `{"delta": 1}`); r.status != 200 {
		t.Fatalf("add: %d %s", r.status, r.raw)
	}
	after := call(t, srv, "GET", "/v1/cluster/state", "")
	if after.body["hash"] == before.body["hash"] || after.body["applied_index"].(float64) <= before.body["applied_index"].(float64) {
		t.Fatalf("state after a write %v, before %v", after.body, before.body)
	}
}

// TestExactlyOnceUnderPressure: a keyed write and a session write, then
// more keyed writes and sessions than the node keeps sessions for, then
// the retries: each returns its first result and nothing applies twice.
// Past the key bound a new key is refused with 429 limit_reached.
func TestExactlyOnceUnderPressure(t *testing.T) {
	c := testcluster.New(t, 1, func(_ int, cfg *abacus.Config) {
		cfg.FSM.MaxSessions = 4
		cfg.FSM.MaxKeys = 12
	})
	srv := httptest.NewServer(httpapi.New(c.Nodes[0], httpapi.WithLogger(testcluster.Logger())))
	t.Cleanup(srv.Close)
	open := func() string {
		t.Helper()
		r := call(t, srv, "POST", "/v1/sessions", "")
		id, ok := r.body["session"].(string)
		if r.status != 200 || !ok {
			t.Fatalf("open session: %d %s", r.status, r.raw)
		}
		return id
	}
	first := call(t, srv, "POST", "/v1/counters/pay/add", `{"delta": 1}`, "Idempotency-Key", "pay-42")
	sess := open()
	sessFirst := call(t, srv, "POST", "/v1/counters/pay/add", `{"delta": 100}`, wire.SessionHeader, sess, wire.SeqHeader, "1", wire.AckHeader, "1")
	if first.status != 200 || sessFirst.status != 200 {
		t.Fatalf("first writes: %s %s", first.raw, sessFirst.raw)
	}
	for i := range 8 {
		if r := call(t, srv, "POST", "/v1/counters/other/add", `{"delta": 1}`, "Idempotency-Key", fmt.Sprint("other-", i)); r.status != 200 {
			t.Fatalf("keyed write %d: %d %s", i, r.status, r.raw)
		}
		open()
	}
	if again := call(t, srv, "POST", "/v1/counters/pay/add", `{"delta": 1}`, "Idempotency-Key", "pay-42"); again.raw != first.raw {
		t.Fatalf("keyed retry: %s, want %s", again.raw, first.raw)
	}
	// The session has been evicted: its retry is refused, not applied.
	r := call(t, srv, "POST", "/v1/counters/pay/add", `{"delta": 100}`, wire.SessionHeader, sess, wire.SeqHeader, "1", wire.AckHeader, "1")
	if r.status != 410 || r.errCode() != "session_expired" {
		t.Fatalf("retry in an evicted session: %d %s", r.status, r.raw)
	}
	if g := call(t, srv, "GET", "/v1/counters/pay", ""); !matches(g.body, map[string]any{"value": 101.0}) {
		t.Fatalf("pay after retries: %s, want 101", g.raw)
	}
	// 9 keys held; three more fit, the next is refused and changes nothing.
	for i := range 3 {
		call(t, srv, "POST", "/v1/counters/more/add", `{"delta": 1}`, "Idempotency-Key", fmt.Sprint("more-", i))
	}
	r = call(t, srv, "POST", "/v1/counters/more/add", `{"delta": 1}`, "Idempotency-Key", "one-too-many")
	if r.status != 429 || r.errCode() != "limit_reached" {
		t.Fatalf("key past the bound: %d %s", r.status, r.raw)
	}
	if g := call(t, srv, "GET", "/v1/counters/more", ""); !matches(g.body, map[string]any{"value": 3.0}) {
		t.Fatalf("more: %s, want 3", g.raw)
	}
}

// TestSessionHeaders: a session write's retry returns its first result;
// malformed or conflicting exactly-once headers are 400 and change nothing.
func TestSessionHeaders(t *testing.T) {
	_, srv := newServer(t)
	r := call(t, srv, "POST", "/v1/sessions", "")
	sess, _ := r.body["session"].(string)
	if r.status != 200 || sess == "" {
		t.Fatalf("open: %d %s", r.status, r.raw)
	}
	h := func(seq, ack string) []string {
		return []string{wire.SessionHeader, sess, wire.SeqHeader, seq, wire.AckHeader, ack}
	}
	a := call(t, srv, "POST", "/v1/counters/s/add", `{"delta": 5}`, h("1", "1")...)
	b := call(t, srv, "POST", "/v1/counters/s/add", `{"delta": 5}`, h("1", "1")...)
	c := call(t, srv, "POST", "/v1/counters/s/add", `{"delta": 5}`, h("2", "2")...)
	if a.raw != b.raw || !matches(c.body, map[string]any{"value": 10.0}) {
		t.Fatalf("session writes: %s %s %s", a.raw, b.raw, c.raw)
	}
	if r := call(t, srv, "POST", "/v1/counters/s/add", `{"delta": 5}`, h("1", "2")...); r.errCode() != "invalid_argument" {
		t.Fatalf("ack above seq: %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "POST", "/v1/counters/s/add", `{"delta": 5}`, h("3", "3")[:4]...); r.errCode() != "invalid_argument" {
		t.Fatalf("missing ack header: %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "POST", "/v1/counters/s/add", `{"delta": 5}`, append(h("3", "3"), "Idempotency-Key", "k")...); r.errCode() != "invalid_argument" {
		t.Fatalf("session and key: %d %s", r.status, r.raw)
	}
	if r := call(t, srv, "POST", "/v1/counters/s/add", `{"delta": 5}`, wire.SessionHeader, "999", wire.SeqHeader, "1", wire.AckHeader, "1"); r.status != 410 {
		t.Fatalf("unissued session: %d %s", r.status, r.raw)
	}
	if g := call(t, srv, "GET", "/v1/counters/s", ""); !matches(g.body, map[string]any{"value": 10.0}) {
		t.Fatalf("s: %s, want 10", g.raw)
	}
}
