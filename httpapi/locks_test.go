package httpapi_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/abacuskit/abacus/internal/testcluster"
)

// TestLocksAndInstances runs the lock, fence and instance endpoints and
// their documented errors against a real node.
func TestLocksAndInstances(t *testing.T) {
	c, srv := newServer(t)
	ctx := testcluster.Context(t, 30*time.Second)
	inst, err := c.Nodes[0].RegisterInstance(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	gone, err := c.Nodes[0].RegisterInstance(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Nodes[0].Revoke(ctx, gone); err != nil {
		t.Fatal(err)
	}
	runCases(t, srv, []apiCase{
		// Locks and fences.
		{name: "acquire", method: "POST", path: "/v1/locks/L/acquire", body: `{"holder": "w1", "ttl_ms": 60000, "wait_ms": 0}`, status: 200, want: map[string]any{"token": 1.0, "ttl_ms": 60000.0}},
		{name: "lock held", method: "POST", path: "/v1/locks/L/acquire", body: `{"holder": "w2", "ttl_ms": 60000, "wait_ms": 0}`, status: 409, code: "lock_held", holder: "w1"},
		{name: "lock held after waiting", method: "POST", path: "/v1/locks/L/acquire", body: `{"holder": "w2", "ttl_ms": 60000, "wait_ms": 50}`, status: 409, code: "lock_held", holder: "w1"},
		{name: "get lock", method: "GET", path: "/v1/locks/L", status: 200, want: map[string]any{"held": true, "holder": "w1", "token": 1.0}},
		{name: "keepalive lock", method: "POST", path: "/v1/locks/L/keepalive", body: `{"token": 1}`, status: 200, want: map[string]any{"ttl_ms": 60000.0}},
		{name: "keepalive stale token", method: "POST", path: "/v1/locks/L/keepalive", body: `{"token": 7}`, status: 409, code: "stale_token"},
		{name: "fenced add", method: "POST", path: "/v1/counters/f/add", body: `{"delta": 1, "fence": {"lock": "L", "token": 1}}`, status: 200, want: map[string]any{"value": 1.0}},
		{name: "fenced add stale", method: "POST", path: "/v1/counters/f/add", body: `{"delta": 1, "fence": {"lock": "L", "token": 2}}`, status: 409, code: "stale_token"},
		{name: "release stale token", method: "POST", path: "/v1/locks/L/release", body: `{"token": 2}`, status: 409, code: "stale_token"},
		{name: "release", method: "POST", path: "/v1/locks/L/release", body: `{"token": 1}`, status: 200},
		{name: "released lock", method: "GET", path: "/v1/locks/L", status: 200, want: map[string]any{"held": false}},
		{name: "fence after release", method: "PUT", path: "/v1/counters/f", body: `{"value": 5, "fence": {"lock": "L", "token": 1}}`, status: 409, code: "stale_token"},
		{name: "reacquire gets a larger token", method: "POST", path: "/v1/locks/L/acquire", body: `{"holder": "w2", "ttl_ms": 60000}`, status: 200},
		{name: "acquire without ttl", method: "POST", path: "/v1/locks/M/acquire", body: `{"holder": "w1"}`, status: 400, code: "invalid_argument"},
		{name: "acquire without holder", method: "POST", path: "/v1/locks/M/acquire", body: `{"ttl_ms": 1000}`, status: 400, code: "invalid_argument"},
		{name: "release without token", method: "POST", path: "/v1/locks/M/release", body: `{}`, status: 400, code: "invalid_argument"},

		// Instances.
		{name: "register instance", method: "POST", path: "/v1/instances", body: `{"ttl_ms": 30000}`, status: 200, want: map[string]any{"ttl_ms": 30000.0}},
		{name: "instance add", method: "POST", path: "/v1/counters/i/add", body: fmt.Sprintf(`{"delta": 3, "instance": "%d"}`, inst), status: 200, want: map[string]any{"value": 3.0, "instance_value": 3.0}},
		{name: "global add", method: "POST", path: "/v1/counters/i/add", body: `{"delta": 2}`, status: 200, want: map[string]any{"value": 5.0}},
		{name: "instance get", method: "GET", path: fmt.Sprintf("/v1/counters/i?instance=%d", inst), status: 200, want: map[string]any{"value": 5.0, "instance_value": 3.0}},
		{name: "instance keepalive", method: "POST", path: fmt.Sprintf("/v1/instances/%d/keepalive", inst), status: 200, want: map[string]any{"ttl_ms": 60000.0}},
		{name: "unknown instance", method: "POST", path: "/v1/instances/987654321/keepalive", status: 404, code: "not_found"},
		{name: "ended instance", method: "POST", path: fmt.Sprintf("/v1/instances/%d/keepalive", gone), status: 409, code: "lease_expired"},
		// An id that is not a positive number names no instance.
		{name: "keepalive id not a number", method: "POST", path: "/v1/instances/x1/keepalive", status: 404, code: "not_found"},
		{name: "delete id not a number", method: "DELETE", path: "/v1/instances/abc", status: 404, code: "not_found"},
		{name: "delete id beyond uint64", method: "DELETE", path: "/v1/instances/99999999999999999999999", status: 404, code: "not_found"},
		{name: "keepalive id zero", method: "POST", path: "/v1/instances/0/keepalive", status: 404, code: "not_found"},
		{name: "delete id zero", method: "DELETE", path: "/v1/instances/0", status: 404, code: "not_found"},
		{name: "delete unknown instance", method: "DELETE", path: "/v1/instances/987654321", status: 404, code: "not_found"},
		{name: "delete instance", method: "DELETE", path: fmt.Sprintf("/v1/instances/%d", inst), status: 200},
		{name: "its slice left the total", method: "GET", path: "/v1/counters/i", status: 200, want: map[string]any{"value": 2.0}},
		{name: "register without ttl", method: "POST", path: "/v1/instances", body: `{}`, status: 400, code: "invalid_argument"},
	})
}
