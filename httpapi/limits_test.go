package httpapi_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/abacuskit/abacus/httpapi"
	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// newLimitServer serves a one-node cluster the way a node program
// should: the server's header limit from httpapi and its listener wrapped
// by httpapi.Listener; tls starts it with TLS (and HTTP/2 when h2).
func newLimitServer(t *testing.T, tls, h2 bool) *httptest.Server {
	t.Helper()
	c := testcluster.New(t, 1)
	srv := httptest.NewUnstartedServer(httpapi.New(c.Nodes[0], httpapi.WithLogger(testcluster.Logger())))
	srv.Config.MaxHeaderBytes = httpapi.ServerMaxHeaderBytes
	srv.Listener = httpapi.Listener(srv.Listener)
	srv.EnableHTTP2 = h2
	if tls {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	t.Cleanup(srv.Close)
	return srv
}

func wantJSONError(t *testing.T, what string, resp *http.Response, status int, code string) {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s: reading the body: %v", what, err)
	}
	if resp.StatusCode != status {
		t.Errorf("%s: status %d, want %d (%q)", what, resp.StatusCode, status, b)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q, want application/json (%q)", what, ct, b)
	}
	var body wire.ErrorBody
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatalf("%s: body %q is not the JSON error body: %v", what, b, err)
	}
	if body.Error.Code != code || body.Error.Message == "" {
		t.Errorf("%s: error %+v, want code %q and a message", what, body.Error, code)
	}
}

// TestHeaderOverTheLimitIsJSON: a URL over MaxHeaderBytes gets 431 with
// the JSON error body, over plain HTTP, HTTP/1.1 with TLS and HTTP/2.
func TestHeaderOverTheLimitIsJSON(t *testing.T) {
	path := "/v1/counters/" + strings.Repeat("x", httpapi.MaxHeaderBytes+1)
	for _, tc := range []struct {
		name    string
		tls, h2 bool
	}{{"plain", false, false}, {"tls", true, false}, {"h2", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newLimitServer(t, tc.tls, tc.h2)
			resp, err := srv.Client().Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			if tc.h2 && resp.ProtoMajor != 2 {
				t.Fatalf("served over %s, want HTTP/2", resp.Proto)
			}
			wantJSONError(t, "long URL", resp, http.StatusRequestHeaderFieldsTooLarge, "invalid_argument")

			// A request under the limit is served as usual.
			resp, err = srv.Client().Get(srv.URL + "/v1/counters/" + strings.Repeat("x", 200))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("short URL: status %d", resp.StatusCode)
			}
		})
	}
}

// rawExchange writes req on a new connection to srv while reading the
// reply (the server stops reading a request it refuses).
func rawExchange(t *testing.T, srv *httptest.Server, req string) *http.Response {
	t.Helper()
	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	go func() { _, _ = io.WriteString(conn, req) }()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestServerErrorsAreJSON: what net/http answers itself before any
// handler runs (a request line over the server's own limit, a malformed
// request) reaches the client as the JSON error body too.
func TestServerErrorsAreJSON(t *testing.T) {
	srv := newLimitServer(t, false, false)
	huge := "GET /v1/counters/" + strings.Repeat("x", 2*httpapi.ServerMaxHeaderBytes) + " HTTP/1.1\r\nHost: a\r\n\r\n"
	wantJSONError(t, "URL over the server's limit", rawExchange(t, srv, huge), http.StatusRequestHeaderFieldsTooLarge, "invalid_argument")
	wantJSONError(t, "malformed request", rawExchange(t, srv, "NOT HTTP AT ALL\r\n\r\n"), http.StatusBadRequest, "invalid_argument")
	wantJSONError(t, "bad header line", rawExchange(t, srv, "GET / HTTP/1.1\r\nHost: a\r\nno colon here\r\n\r\n"), http.StatusBadRequest, "invalid_argument")
}
