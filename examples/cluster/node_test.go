package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/abacuskit/abacus/client"
	"github.com/abacuskit/abacus/httpapi"
	"github.com/abacuskit/abacus/internal/freeport"
	"github.com/abacuskit/abacus/internal/testca"
)

// TestWarnUnauthenticated: without TLS, each address reachable from
// beyond this machine gets a warning naming what it exposes; loopback
// addresses get none.
func TestWarnUnauthenticated(t *testing.T) {
	for _, tc := range []struct {
		http, peer string
		want       []string // substrings of the warnings, in order
	}{
		{"127.0.0.1:8080", "127.0.0.1:7000", nil},
		{"[::1]:8080", "localhost:7000", nil},
		{"127.0.0.2:8080", "LOCALHOST:7000", nil},
		{":8080", "127.0.0.1:7000", []string{"UNAUTHENTICATED HTTP API", "http=:8080"}},
		{"0.0.0.0:8080", "[::]:7000", []string{"UNAUTHENTICATED HTTP API", "http=0.0.0.0:8080", "UNAUTHENTICATED PEER PORT", "peer=[::]:7000"}},
		{"127.0.0.1:8080", "10.1.2.3:7000", []string{"UNAUTHENTICATED PEER PORT", "peer=10.1.2.3:7000"}},
		{"node1.example:8080", "127.0.0.1:7000", []string{"UNAUTHENTICATED HTTP API"}},
	} {
		var buf bytes.Buffer
		warnUnauthenticated(slog.New(slog.NewTextHandler(&buf, nil)), tc.http, tc.peer)
		out := buf.String()
		if len(tc.want) == 0 {
			if out != "" {
				t.Errorf("http %s peer %s: warned %q", tc.http, tc.peer, out)
			}
			continue
		}
		rest := out
		for _, w := range tc.want {
			i := strings.Index(rest, w)
			if i < 0 {
				t.Errorf("http %s peer %s: %q lacks %q", tc.http, tc.peer, out, w)
				break
			}
			rest = rest[i+len(w):]
		}
		if n := strings.Count(out, "level=WARN"); n != strings.Count(strings.Join(tc.want, " "), "UNAUTHENTICATED") {
			t.Errorf("http %s peer %s: %d warnings in %q", tc.http, tc.peer, n, out)
		}
	}
}

// logBuffer collects a node's log and signals each write.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	written chan struct{} // one pending signal at most
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	select {
	case b.written <- struct{}{}:
	default:
	}
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// runFor runs a one-node node with extra flags until it logs "serving"
// and then stops it, returning its log.
func runFor(t *testing.T, httpHost string, extra ...string) string {
	t.Helper()
	addrs, err := freeport.Addrs(2)
	if err != nil {
		t.Fatal(err)
	}
	httpAddr := addrs[1]
	if httpHost != "" {
		_, port, _ := strings.Cut(httpAddr, ":")
		httpAddr = httpHost + ":" + port
	}
	args := append([]string{"--id", "n1", "--data", filepath.Join(t.TempDir(), "n1"), "--peer-addr", addrs[0],
		"--http-addr", httpAddr, "--peers", "n1=" + addrs[0]}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &logBuffer{written: make(chan struct{}, 1)}
	done := make(chan error, 1)
	go func() { done <- runNode(ctx, args, log) }()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for !strings.Contains(log.String(), "msg=serving") {
		select {
		case <-log.written:
		case err := <-done:
			t.Fatalf("node stopped: %v\n%s", err, log.String())
		case <-deadline.C:
			t.Fatalf("the node did not start:\n%s", log.String())
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("node: %v\n%s", err, log.String())
	}
	return log.String()
}

// TestNodeWarnsWhenPlainBeyondLoopback: a node without TLS whose HTTP
// address listens on every interface logs the warning; one on loopback
// does not.
func TestNodeWarnsWhenPlainBeyondLoopback(t *testing.T) {
	if out := runFor(t, "0.0.0.0"); !strings.Contains(out, "level=WARN msg=\"UNAUTHENTICATED HTTP API") || strings.Contains(out, "UNAUTHENTICATED PEER") {
		t.Errorf("a plain node on 0.0.0.0 logged:\n%s", out)
	}
	if out := runFor(t, ""); strings.Contains(out, "UNAUTHENTICATED") {
		t.Errorf("a plain node on loopback logged:\n%s", out)
	}
}

// TestRolesFlag: --roles needs TLS, and a bad roles file stops the node
// with an error naming the file and the line.
func TestRolesFlag(t *testing.T) {
	base := []string{"--id", "n1", "--data", "d", "--peer-addr", "127.0.0.1:1", "--http-addr", "127.0.0.1:2"}
	if _, err := parseNodeFlags(append(base, "--roles", "r"), io.Discard); err == nil || !strings.Contains(err.Error(), "--roles needs --tls-cert") {
		t.Errorf("--roles without TLS: %v", err)
	}
	dir := t.TempDir()
	cert, key, ca := testca.New(t, "abacus test CA").WriteFiles(t, dir, "node")
	tlsFlags := []string{"--tls-cert", cert, "--tls-key", key, "--tls-ca", ca}
	f, err := parseNodeFlags(append(append(base, tlsFlags...), "--roles", "r"), io.Discard)
	if err != nil || f.roles != "r" {
		t.Fatalf("--roles with TLS: %+v %v", f, err)
	}
	roles := filepath.Join(dir, "roles")
	if err := os.WriteFile(roles, []byte("admin cn=node\nwrite cn=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	err = runNode(context.Background(), append(append(base, tlsFlags...), "--roles", roles), io.Discard)
	if err == nil || !strings.Contains(err.Error(), roles) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("a bad roles file: %v", err)
	}
}

// TestJoinRefusedStops: a joining node whose certificate lacks the admin
// role stops at the first refusal with an error that says so, rather than
// retrying for ever.
func TestJoinRefusedStops(t *testing.T) {
	ca := testca.New(t, "abacus test CA")
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"error": {"code": "permission_denied", "message": "cn=n4 has role write; POST /v1/cluster/members needs admin"}}`)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{ca.Issue(t, "member")}, ClientCAs: ca.Pool, ClientAuth: tls.RequireAndVerifyClientCert}
	srv.StartTLS()
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := &nodeFlags{id: "n4", peerAddr: "127.0.0.1:1", httpAddr: "127.0.0.1:2", join: strings.TrimPrefix(srv.URL, "https://")}
	conf := ca.TLSConfig(t, "n4")
	err := join(ctx, f, conf, httpapi.NewDirectory(nil), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !errors.Is(err, client.ErrPermissionDenied) || !strings.Contains(err.Error(), "admin role") {
		t.Fatalf("join refused: %v", err)
	}
	if ctx.Err() != nil {
		t.Fatal("join retried until its context ended")
	}
}
