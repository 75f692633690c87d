package httpapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/abacuskit/abacus/httpapi"
	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// FuzzRequest sends arbitrary requests to a real node's handler: whatever
// the client sends, the answer is never a 500 and errors are JSON.
func FuzzRequest(f *testing.F) {
	for _, s := range [][3]string{
		{"POST", "/v1/counters/a/add", `{"delta": 1, "min": 0, "max": 10}`},
		{"POST", "/v1/counters/a/add", `{"delta": 1, "fence": {"lock": "L", "token": 3}, "instance": "7"}`},
		{"PUT", "/v1/counters/a", `{"value": -5}`},
		{"POST", "/v1/counters/a/cas", `{"old": 0, "new": 1}`},
		{"DELETE", "/v1/counters/a", `{"instance": 99}`},
		{"GET", "/v1/counters/a?consistency=stale&instance=3", ``},
		{"POST", "/v1/batch", `{"ops": [{"op": "add", "name": "a", "delta": 1}, {"op": "cas", "name": "b", "old": 1, "new": 2}]}`},
		{"POST", "/v1/locks/L/acquire", `{"holder": "h", "ttl_ms": 1000, "wait_ms": 10}`},
		{"POST", "/v1/locks/L/keepalive", `{"token": 1}`},
		{"POST", "/v1/locks/L/release", `{"token": 1}`},
		{"GET", "/v1/locks/L", ``},
		{"POST", "/v1/instances", `{"ttl_ms": 1000}`},
		{"POST", "/v1/instances/1/keepalive", ``},
		{"DELETE", "/v1/instances/1", ``},
		{"POST", "/v1/cluster/members", `{"id": "n2", "peer_addr": "127.0.0.1:1"}`},
		{"DELETE", "/v1/cluster/members/n9", ``},
		{"POST", "/v1/cluster/leadership-transfer", `{"id": "n1"}`},
		{"POST", "/v1/admin/faults", `{"heal": true}`},
		{"GET", "/v1/counters/%C3%28", ``},
		{"POST", "/v1/counters/a/add", `{"delta": 1e400}`},
		{"POST", "/v1/batch", `{"ops": null}`},
	} {
		f.Add(s[0], s[1], s[2])
	}
	c := testcluster.New(f, 1)
	ctx := testcluster.Context(f, 10*time.Second)
	if _, err := c.Nodes[0].Get(ctx, "warm-up"); err != nil {
		f.Fatal(err)
	}
	h := httpapi.New(c.Nodes[0], httpapi.WithTimeout(time.Second), httpapi.WithLogger(testcluster.Logger()))
	f.Fuzz(func(t *testing.T, method, path, body string) {
		u, err := url.ParseRequestURI(path)
		if err != nil || strings.HasSuffix(u.Path, "/watch") || !validMethod(method) {
			return
		}
		// Membership changes would really change the one-node cluster.
		if strings.HasPrefix(u.Path, "/v1/cluster/") {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req := httptest.NewRequest("GET", "/", strings.NewReader(body)).WithContext(ctx)
		req.Method, req.URL, req.RequestURI = method, u, path
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusInternalServerError {
			t.Fatalf("%s %s %q: 500 %s", method, path, body, rec.Body.String())
		}
		if rec.Code != http.StatusOK {
			var e wire.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
				t.Fatalf("%s %s %q: %d with a body that is not an error: %q", method, path, body, rec.Code, rec.Body.String())
			}
		}
	})
}

func validMethod(m string) bool {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS":
		return true
	}
	return false
}
