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
		{[]string{"add", "n", "99999999999999999999"}, "", 2, "DELTA 99999999999999999999 is out of range"},
		{[]string{"add", "n", "-99999999999999999999"}, "", 2, "DELTA -99999999999999999999 is out of range"},
		{[]string{"set", "n", "9223372036854775808"}, "", 2, "VALUE 9223372036854775808 is out of range"},
		{[]string{"add", "n", "--max", "99999999999999999999"}, "", 2, "--max 99999999999999999999 is out of range"},
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
		if strings.Contains(stderr.String(), "abacus: abacus:") {
			t.Errorf("abacus %q: the program's name twice: %q", tc.args, stderr.String())
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

// TestUsageErrors: a usage error is one line saying what is wrong and one
// pointing to the help of the command (or the overview), exit 2.
func TestUsageErrors(t *testing.T) {
	getenv := func(string) string { return "" }
	for _, tc := range []struct {
		args    []string
		msg     string
		pointer string
	}{
		{[]string{}, "abacus: no command", "Run 'abacus help' for usage."},
		{[]string{"nope"}, `abacus: unknown command "nope"`, "Run 'abacus help' for usage."},
		{[]string{"add"}, "abacus: add: want NAME [DELTA]", "Run 'abacus help add' for usage."},
		{[]string{"add", "n", "99999999999999999999"}, "abacus: DELTA 99999999999999999999 is out of range: values are 64-bit signed integers (-9223372036854775808 to 9223372036854775807)", "Run 'abacus help add' for usage."},
		{[]string{"get", "n", "--bogus"}, "abacus: unknown flag --bogus", "Run 'abacus help get' for usage."},
		{[]string{"delete"}, "abacus: del: want NAME", "Run 'abacus help delete' for usage."},
		{[]string{"lock", "L", "true"}, "abacus: lock: want NAME [--ttl D] [--wait D] -- CMD [ARGS...]", "Run 'abacus help lock' for usage."},
		{[]string{"help", "nope"}, `abacus: help: unknown command "nope"`, "Run 'abacus help' for usage."},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, getenv, &stdout, &stderr)
		want := tc.msg + "\n" + tc.pointer + "\n"
		if code != 2 || stderr.String() != want || stdout.Len() != 0 {
			t.Errorf("abacus %q: exit %d, stderr %q, stdout %q; want exit 2, stderr %q", tc.args, code, stderr.String(), stdout.String(), want)
		}
	}
}

// TestHelp: abacus help prints the overview; abacus help CMD, CMD -h and
// CMD --help print that command's help; all exit 0.
func TestHelp(t *testing.T) {
	getenv := func(string) string { return "" }
	helpOut := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, getenv, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
			t.Fatalf("abacus %q: exit %d, stderr %q", args, code, stderr.String())
		}
		return stdout.String()
	}
	overview := helpOut("help")
	for _, cmd := range []string{"add", "get", "set", "cas", "del", "watch", "lock", "status", "state", "help"} {
		if !strings.Contains(overview, "\n  "+cmd+" ") {
			t.Errorf("overview lacks %s:\n%s", cmd, overview)
		}
		h := helpOut("help", cmd)
		if !strings.HasPrefix(h, "usage: abacus "+cmd) || !strings.Contains(h, "--cluster") {
			t.Errorf("abacus help %s:\n%s", cmd, h)
		}
		if cmd == "help" {
			continue
		}
		if got := helpOut(cmd, "-h"); got != h {
			t.Errorf("abacus %s -h differs from abacus help %s:\n%s", cmd, cmd, got)
		}
		if got := helpOut("--json", cmd, "--help"); got != h {
			t.Errorf("abacus %s --help differs from abacus help %s:\n%s", cmd, cmd, got)
		}
	}
	if got := helpOut("-h"); got != overview {
		t.Errorf("abacus -h:\n%s", got)
	}
	if got := helpOut("help", "delete"); got != helpOut("help", "del") {
		t.Errorf("abacus help delete:\n%s", got)
	}
}
