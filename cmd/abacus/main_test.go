package main

import (
	"bytes"
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/abacuskit/abacus/httpapi"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// oneNode starts a one-node cluster, waits until it serves reads and
// puts the HTTP API in front of it. The context ends with the test.
func oneNode(t *testing.T) (*testcluster.Cluster, context.Context, *httptest.Server) {
	t.Helper()
	c := testcluster.New(t, 1)
	ctx := testcluster.Context(t, 30*time.Second)
	if _, err := c.Nodes[0].Get(ctx, "warm-up"); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(httpapi.New(c.Nodes[0], httpapi.WithLogger(testcluster.Logger())))
	t.Cleanup(srv.Close)
	return c, ctx, srv
}

// TestCommands runs the command line in-process against a real node.
func TestCommands(t *testing.T) {
	c, _, srv := oneNode(t)
	env := map[string]string{"ABACUS_CLUSTER": srv.URL}
	getenv := func(k string) string { return env[k] }

	for _, tc := range []struct {
		args   []string
		out    string // expected stdout (trimmed); "*" for any
		code   int
		stderr string // substring of stderr
	}{
		{[]string{"add", "n"}, "1", 0, ""},
		{[]string{"add", "n", "-3"}, "-2", 0, ""},
		{[]string{"add", "n", "5", "--width", "4"}, "0003", 0, ""},
		{[]string{"--width=6", "get", "n"}, "000003", 0, ""},
		{[]string{"--json", "add", "n", "2"}, `{"value":5}`, 0, ""},
		{[]string{"get", "n", "--stale"}, "5", 0, ""},
		{[]string{"add", "n", "1", "--max", "5"}, "", 3, "out_of_range"},
		{[]string{"add", "n", "--min", "0", "-9"}, "", 3, "out_of_range"},
		{[]string{"set", "n", "9"}, "5", 0, ""},
		{[]string{"cas", "n", "8", "10"}, "9", 3, "not swapped"},
		{[]string{"cas", "n", "9", "10"}, "10", 0, ""},
		{[]string{"--json", "cas", "n", "10", "11"}, `{"swapped":true,"value":11}`, 0, ""},
		{[]string{"del", "n"}, "11", 0, ""},
		{[]string{"get", "--json", "n"}, `{"value":0,"exists":false}`, 0, ""},
		{[]string{"status"}, "*", 0, ""},
		{[]string{"state"}, "*", 0, ""},
		{[]string{"state", "x"}, "", 2, "no arguments"},
		{[]string{"--cluster", srv.URL, "get", "n"}, "0", 0, ""},
		{[]string{}, "", 2, "no command"},
		{[]string{"nope"}, "", 2, "unknown command"},
		{[]string{"add"}, "", 2, "want NAME"},
		{[]string{"add", "n", "x"}, "", 2, "not an integer"},
		{[]string{"get", "n", "--bogus"}, "", 2, "unknown flag"},
		{[]string{"get", "n", "--width"}, "", 2, "needs a value"},
		{[]string{"lock", "L", "true"}, "", 2, "want NAME"},
		{[]string{"lock", "L", "--ttl", "10ms", "--", "true"}, "", 2, "at least"},
		{[]string{"help"}, "*", 0, ""},
		{[]string{"add", ""}, "", 1, "invalid_argument"},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, getenv, &stdout, &stderr)
		out := strings.TrimSpace(stdout.String())
		if code != tc.code || (tc.out != "*" && out != tc.out) || !strings.Contains(stderr.String(), tc.stderr) {
			t.Errorf("abacus %q: %q exit %d (stderr %q), want %q exit %d (stderr with %q)",
				tc.args, out, code, stderr.String(), tc.out, tc.code, tc.stderr)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"state"}, getenv, &stdout, &stderr); code != 0 {
		t.Fatalf("abacus state: exit %d (%s)", code, stderr.String())
	}
	if want, err := c.Nodes[0].FSM().Hash(); err != nil || !strings.Contains(stdout.String(), srv.URL) || !strings.Contains(stdout.String(), want) {
		t.Fatalf("abacus state printed %q, want %s's hash %s (%v)", stdout.String(), srv.URL, want, err)
	}
}

// TestLock runs a command under a lock and passes its exit code through.
func TestLock(t *testing.T) {
	c, ctx, srv := oneNode(t)
	getenv := func(string) string { return "" }
	var stdout, stderr bytes.Buffer
	code := run(ctx, []string{"--cluster", srv.URL, "lock", "L", "--", "sh", "-c", `echo "token $ABACUS_LOCK_TOKEN $ABACUS_LOCK_NAME"; exit 5`}, getenv, &stdout, &stderr)
	if code != 5 || strings.TrimSpace(stdout.String()) != "token 1 L" {
		t.Fatalf("lock: %q exit %d, stderr %q", stdout.String(), code, stderr.String())
	}
	info, err := c.Nodes[0].GetLock(ctx, "L")
	if err != nil || info.Held {
		t.Fatalf("after the command the lock is %+v (%v), want released", info, err)
	}
	stdout.Reset()
	if code := run(ctx, []string{"--cluster", srv.URL, "lock", "L", "--", "sh", "-c", `echo $ABACUS_LOCK_TOKEN`}, getenv, &stdout, &stderr); code != 0 || strings.TrimSpace(stdout.String()) != "2" {
		t.Fatalf("second lock: %q exit %d", stdout.String(), code)
	}
}
