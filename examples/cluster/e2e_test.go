//go:build unix

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/internal/freeport"
	"github.com/abacuskit/abacus/internal/testca"
)

// End-to-end tests: the node program and the command line, built as real
// binaries (without -race, for speed), run as separate processes on
// loopback.

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// binaries builds the cluster program and the abacus command once.
func binaries(t *testing.T) (clusterBin, abacusBin string) {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "abacus-e2e-bin-")
		if buildErr != nil {
			return
		}
		for pkg, out := range map[string]string{".": "cluster", "../../cmd/abacus": "abacus"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, out), pkg)
			if b, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(binDir, "cluster"), filepath.Join(binDir, "abacus")
}

func freePorts(t *testing.T, n int) []string {
	t.Helper()
	ports, err := freeport.Reserve(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ports.Release)
	addrs := ports.Addrs()
	return addrs
}

// proc is a node process started by a test.
type proc struct {
	id, peer, http, dir string
	args                []string
	cmd                 *exec.Cmd
	log                 *bytes.Buffer
	done                chan struct{}
}

type testCluster struct {
	t          *testing.T
	clusterBin string
	abacusBin  string
	nodes      []*proc
	cliArgs    []string // flags every command-line run gets
	mu         sync.Mutex
}

func startCluster(t *testing.T, nodeArgs ...string) *testCluster {
	t.Helper()
	clusterBin, abacusBin := binaries(t)
	tc := &testCluster{t: t, clusterBin: clusterBin, abacusBin: abacusBin}
	addrs := freePorts(t, 6)
	base := t.TempDir()
	var peers []string
	for i := range 3 {
		id := fmt.Sprintf("n%d", i+1)
		peers = append(peers, id+"="+addrs[i])
	}
	// Only the flags docs/API.md lists: the nodes learn each other's HTTP
	// addresses themselves.
	for i := range 3 {
		p := &proc{id: fmt.Sprintf("n%d", i+1), peer: addrs[i], http: addrs[3+i], dir: filepath.Join(base, fmt.Sprintf("n%d", i+1))}
		p.args = []string{"node", "--id", p.id, "--data", p.dir, "--peer-addr", p.peer, "--http-addr", p.http,
			"--peers", strings.Join(peers, ","), "--log-level", "warn"}
		p.args = append(p.args, nodeArgs...)
		tc.nodes = append(tc.nodes, p)
	}
	t.Cleanup(tc.stopAll)
	for _, p := range tc.nodes {
		tc.start(p)
	}
	return tc
}

func (tc *testCluster) ready() *testCluster {
	for _, p := range tc.nodes {
		tc.waitReady(p)
	}
	return tc
}

func (tc *testCluster) start(p *proc) {
	tc.t.Helper()
	p.cmd = exec.Command(tc.clusterBin, p.args...)
	p.log = &bytes.Buffer{}
	p.cmd.Stdout, p.cmd.Stderr = &syncWriter{w: p.log, mu: &tc.mu}, &syncWriter{w: p.log, mu: &tc.mu}
	if err := p.cmd.Start(); err != nil {
		tc.t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(p.cmd, p.done)
}

func (tc *testCluster) logOf(p *proc) string {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	return p.log.String()
}

type syncWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

func (tc *testCluster) stopAll() {
	for _, p := range tc.nodes {
		if p.cmd == nil || p.done == nil {
			continue
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
}

func (tc *testCluster) waitReady(p *proc) {
	tc.t.Helper()
	eventually(tc.t, 30*time.Second, p.id+" ready", func() bool {
		select {
		case <-p.done:
			tc.t.Fatalf("%s exited:\n%s", p.id, tc.logOf(p))
		default:
		}
		_, code := tc.cli(p.http, "get", "ready-probe", "--no-retries", "--timeout", "1s")
		return code == 0
	})
}

func (tc *testCluster) endpoints() string {
	var eps []string
	for _, p := range tc.nodes {
		eps = append(eps, p.http)
	}
	return strings.Join(eps, ",")
}

// cli runs the abacus command against endpoints and returns its stdout and
// exit code.
func (tc *testCluster) cli(endpoints string, args ...string) (string, int) {
	tc.t.Helper()
	out, _, code := tc.cliFull(endpoints, nil, args...)
	return out, code
}

func (tc *testCluster) cliFull(endpoints string, env []string, args ...string) (string, string, int) {
	tc.t.Helper()
	cmd := exec.Command(tc.abacusBin, append(append([]string{"--cluster", endpoints}, tc.cliArgs...), args...)...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			tc.t.Fatalf("running abacus %v: %v", args, err)
		}
		code = ee.ExitCode()
	}
	return strings.TrimSpace(stdout.String()), strings.TrimSpace(stderr.String()), code
}

// writer adds 1 to a counter through the command line, one add after
// another, and counts the adds acknowledged. The command line retries with
// one idempotency key per add, so each add it counts applied once.
type writer struct {
	tc        *testCluster
	mu        sync.Mutex
	succeeded int
	failures  []string
	done      chan struct{}
	stopping  chan struct{}
}

// countedWriter starts a writer on counter name through endpoints, each add
// bounded by timeout.
func (tc *testCluster) countedWriter(endpoints, name, timeout string) *writer {
	w := &writer{tc: tc, done: make(chan struct{}), stopping: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			select {
			case <-w.stopping:
				return
			default:
			}
			_, stderr, code := tc.cliFull(endpoints, nil, "add", name, "1", "--timeout", timeout)
			w.mu.Lock()
			if code == 0 {
				w.succeeded++
			} else {
				w.failures = append(w.failures, fmt.Sprintf("exit %d: %s", code, stderr))
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.succeeded
}

// stop ends the writer, fails the test if any add failed, and returns how
// many were acknowledged.
func (w *writer) stop() int {
	close(w.stopping)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.failures) > 0 {
		w.tc.t.Errorf("%d counted adds failed: %v", len(w.failures), w.failures)
	}
	return w.succeeded
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCommandLine runs every command of the command line against a
// three-process cluster.
func TestCommandLine(t *testing.T) {
	tc := startCluster(t).ready()
	eps := tc.endpoints()
	for _, c := range []struct {
		args []string
		out  string
		code int
	}{
		{[]string{"add", "hits"}, "1", 0},
		{[]string{"add", "hits", "41"}, "42", 0},
		{[]string{"add", "hits", "-2", "--width", "8"}, "00000040", 0},
		{[]string{"get", "hits"}, "40", 0},
		{[]string{"get", "--stale", "hits"}, "", 0}, // any value: checked below
		{[]string{"--json", "get", "hits"}, `{"value":40,"exists":true}`, 0},
		{[]string{"get", "never-written", "--json"}, `{"value":0,"exists":false}`, 0},
		{[]string{"set", "hits", "5"}, "40", 0},
		{[]string{"cas", "hits", "4", "6"}, "5", 3},
		{[]string{"cas", "hits", "5", "6"}, "6", 0},
		{[]string{"add", "hits", "1", "--max", "6"}, "", 3},
		{[]string{"add", "big", "9223372036854775807"}, "9223372036854775807", 0},
		{[]string{"add", "big"}, "", 3},
		{[]string{"del", "hits"}, "6", 0},
		{[]string{"get", "hits"}, "0", 0},
		{[]string{"add", "hits", "x"}, "", 2},
		{[]string{"frobnicate"}, "", 2},
		{[]string{"cas", "hits", "1"}, "", 2},
	} {
		out, code := tc.cli(eps, c.args...)
		if code != c.code || (c.out != "" && out != c.out) {
			t.Errorf("abacus %v: %q exit %d, want %q exit %d", c.args, out, code, c.out, c.code)
		}
	}
	// Unreachable endpoints: unavailable, exit 4.
	dead := freePorts(t, 1)[0]
	if _, code := tc.cli(dead, "get", "hits", "--timeout", "500ms"); code != 4 {
		t.Errorf("get from a dead endpoint: exit %d, want 4", code)
	}

	var st wire.ClusterStatus
	eventually(t, 20*time.Second, "status to list every member's HTTP address", func() bool {
		out, code := tc.cli(eps, "status", "--json")
		st = wire.ClusterStatus{}
		if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Leader == "" || len(st.Members) != 3 {
			t.Fatalf("status: %q exit %d", out, code)
		}
		for _, m := range st.Members {
			if m.HTTPAddr == "" {
				return false
			}
		}
		return true
	})
	for _, m := range st.Members {
		if m.PeerAddr == "" || !m.Voter {
			t.Errorf("status member %+v", m)
		}
	}
	if out, code := tc.cli(eps, "status"); code != 0 || !strings.Contains(out, "leader         "+st.Leader) {
		t.Errorf("status text: %q exit %d", out, code)
	}

	// watch: one line per change, starting with the current value.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	watch := exec.CommandContext(ctx, tc.abacusBin, "--cluster", eps, "watch", "w")
	pipe, err := watch.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := watch.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		defer close(lines)
		buf := make([]byte, 4096)
		var acc string
		for {
			n, err := pipe.Read(buf)
			acc += string(buf[:n])
			for {
				i := strings.IndexByte(acc, '\n')
				if i < 0 {
					break
				}
				lines <- acc[:i]
				acc = acc[i+1:]
			}
			if err != nil {
				return
			}
		}
	}()
	expect := func(want string) {
		t.Helper()
		select {
		case got := <-lines:
			if got != want {
				t.Fatalf("watch printed %q, want %q", got, want)
			}
		case <-ctx.Done():
			t.Fatalf("watch printed nothing; want %q", want)
		}
	}
	expect("0")
	for _, v := range []string{"3", "4"} {
		if _, code := tc.cli(eps, "set", "w", v); code != 0 {
			t.Fatalf("set w %s: exit %d", v, code)
		}
		expect(v)
	}
	_ = watch.Process.Signal(syscall.SIGTERM)
	if err := watch.Wait(); err != nil {
		t.Errorf("watch after SIGTERM: %v", err)
	}
}

// TestLockCommand: competing `abacus lock -- CMD` runs never overlap, and
// each sees a larger fencing token.
func TestLockCommand(t *testing.T) {
	tc := startCluster(t).ready()
	eps := tc.endpoints()
	marks := filepath.Join(t.TempDir(), "marks")
	script := `echo "start $ABACUS_LOCK_TOKEN" >> "$MARKS"; sleep 0.2; echo "end $ABACUS_LOCK_TOKEN" >> "$MARKS"`
	const competitors, rounds = 3, 2
	var wg sync.WaitGroup
	codes := make(chan int, competitors*rounds)
	for i := range competitors {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range rounds {
				_, stderr, code := tc.cliFull(eps, []string{"MARKS=" + marks}, "lock", "job", "--ttl", "5s", "--wait", "40s",
					"--holder", fmt.Sprintf("worker-%d", i), "--", "sh", "-c", script)
				if code != 0 {
					t.Errorf("lock run: exit %d: %s", code, stderr)
				}
				codes <- code
			}
		}()
	}
	wg.Wait()
	b, err := os.ReadFile(marks)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2*competitors*rounds {
		t.Fatalf("%d marks, want %d:\n%s", len(lines), 2*competitors*rounds, b)
	}
	var last uint64
	for i := 0; i < len(lines); i += 2 {
		var a, z uint64
		if _, err := fmt.Sscanf(lines[i], "start %d", &a); err != nil {
			t.Fatalf("mark %d %q: %v\n%s", i, lines[i], err, b)
		}
		if _, err := fmt.Sscanf(lines[i+1], "end %d", &z); err != nil || z != a {
			t.Fatalf("runs overlap at mark %d:\n%s", i+1, b)
		}
		if a <= last {
			t.Fatalf("token %d after %d: tokens must increase\n%s", a, last, b)
		}
		last = a
	}

	// A held lock with no wait: exit 3, CMD not run.
	hold := exec.Command(tc.abacusBin, "--cluster", eps, "lock", "job", "--ttl", "5s", "--", "sleep", "30")
	if err := hold.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hold.Process.Kill(); _ = hold.Wait() }()
	eventually(t, 20*time.Second, "the lock to be held", func() bool {
		o, code := tcLock(tc, eps, "job")
		return code == 0 && o.Held
	})
	if _, _, code := tc.cliFull(eps, nil, "lock", "job", "--wait", "0s", "--", "touch", filepath.Join(t.TempDir(), "ran")); code != 3 {
		t.Fatalf("lock of a held lock: exit %d, want 3", code)
	}
	// The exit code of CMD is passed through, and SIGTERM to the holder
	// reaches CMD and releases the lock.
	_ = hold.Process.Signal(syscall.SIGTERM)
	_ = hold.Wait()
	eventually(t, 20*time.Second, "the lock to be released", func() bool {
		o, code := tcLock(tc, eps, "job")
		return code == 0 && !o.Held
	})
	if _, _, code := tc.cliFull(eps, nil, "lock", "job", "--", "sh", "-c", "exit 7"); code != 7 {
		t.Fatalf("lock -- sh -c 'exit 7': exit %d", code)
	}
}

// tcLock reads a lock through the HTTP API.
func tcLock(tc *testCluster, eps, name string) (wire.LockResponse, int) {
	ep := strings.Split(eps, ",")[0]
	resp, err := http.Get("http://" + ep + "/v1/locks/" + name)
	if err != nil {
		return wire.LockResponse{}, 1
	}
	defer resp.Body.Close()
	var r wire.LockResponse
	if resp.StatusCode != http.StatusOK || json.NewDecoder(resp.Body).Decode(&r) != nil {
		return r, 1
	}
	return r, 0
}

// TestLeaderKilledAndRestarted: writes through the command line keep
// succeeding while the leader is SIGKILLed, each applied exactly once; the
// killed node, restarted on its data directory, catches up.
func TestLeaderKilledAndRestarted(t *testing.T) {
	tc := startCluster(t).ready()
	eps := tc.endpoints()
	out, code := tc.cli(eps, "status", "--json")
	var st wire.ClusterStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status: %q exit %d", out, code)
	}
	var leader *proc
	for _, p := range tc.nodes {
		if p.id == st.Leader {
			leader = p
		}
	}
	if leader == nil {
		t.Fatalf("leader %q unknown", st.Leader)
	}

	w := tc.countedWriter(eps, "k", "20s")
	eventually(t, 20*time.Second, "writes before the kill", func() bool { return w.count() >= 5 })
	if err := leader.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-leader.done
	before := w.count()
	eventually(t, 30*time.Second, "writes after the kill", func() bool { return w.count() >= before+10 })
	total := w.stop()

	var live []string
	for _, p := range tc.nodes {
		if p != leader {
			live = append(live, p.http)
		}
	}
	if out, code := tc.cli(strings.Join(live, ","), "get", "k"); code != 0 || out != strconv.Itoa(total) {
		t.Fatalf("after the failover k = %q (exit %d), want %d: every acknowledged add applied once", out, code, total)
	}

	// Restart the killed node on its data directory; it catches up.
	tc.start(leader)
	tc.waitReady(leader)
	eventually(t, 30*time.Second, "the restarted node to catch up", func() bool {
		out, code := tc.cli(leader.http, "get", "k", "--stale", "--no-retries")
		return code == 0 && out == strconv.Itoa(total)
	})
	if out, code := tc.cli(leader.http, "add", "k", "1"); code != 0 || out != strconv.Itoa(total+1) {
		t.Fatalf("add through the restarted node: %q exit %d, want %d", out, code, total+1)
	}
}

// TestDemo runs the demo on each backend: it must exit 0 and leave no
// process behind.
func TestDemo(t *testing.T) {
	for _, backend := range []string{"raft", "rabia"} {
		t.Run(backend, func(t *testing.T) { testDemo(t, backend) })
	}
}

func testDemo(t *testing.T, backend string) {
	clusterBin, _ := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, clusterBin, "-backend", backend)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	t.Logf("demo ran in %v", time.Since(start))
	if err != nil {
		t.Fatalf("demo: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"[5/5]", "summary", "demo:hits        40 (expected 40", "stale token refused"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	pids := regexp.MustCompile(`started n\d  pid (\d+)`).FindAllStringSubmatch(out, -1)
	if len(pids) != 4 {
		t.Fatalf("demo started %d processes, want 4 (three, then one restart):\n%s", len(pids), out)
	}
	for _, m := range pids {
		pid, _ := strconv.Atoi(m[1])
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("node process %d outlived the demo (kill -0: %v)", pid, err)
		}
		if err := syscall.Kill(-pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("process group %d outlived the demo (kill -0: %v)", pid, err)
		}
	}
}

// TestDemoInterrupted: SIGINT stops the demo early, with its children.
func TestDemoInterrupted(t *testing.T) {
	clusterBin, _ := binaries(t)
	cmd := exec.Command(clusterBin)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	defer func() { _ = cmd.Process.Kill() }()
	var out bytes.Buffer
	buf := make([]byte, 4096)
	re := regexp.MustCompile(`started n\d  pid (\d+)`)
	deadline := time.Now().Add(60 * time.Second)
	// Interrupt once the cluster is up (mid-demo).
	for !strings.Contains(out.String(), "[1/5]") && time.Now().Before(deadline) {
		n, err := pr.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			break
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	drained := make(chan struct{})
	go func() { _, _ = out.ReadFrom(pr); close(drained) }()
	err = cmd.Wait()
	<-drained
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("interrupted demo: %v, want a non-zero exit", err)
	}
	for _, m := range re.FindAllStringSubmatch(out.String(), -1) {
		pid, _ := strconv.Atoi(m[1])
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("node process %d outlived the interrupted demo", pid)
		}
	}
}

// TestNodeFlags: a node refuses bad flags with exit status 2.
func TestNodeFlags(t *testing.T) {
	clusterBin, _ := binaries(t)
	dir := t.TempDir()
	addr := freePorts(t, 2)
	for _, args := range [][]string{
		{"node"},
		{"node", "--id", "n1", "--data", dir, "--peer-addr", addr[0]},
		{"node", "--id", "n1", "--data", dir, "--peer-addr", addr[0], "--http-addr", addr[1], "--backend", "paxos"},
		{"node", "--id", "n1", "--data", dir, "--peer-addr", addr[0], "--http-addr", addr[1], "--peers", "n1"},
		{"node", "--id", "n1", "--data", dir, "--peer-addr", addr[0], "--http-addr", addr[1], "--join", "x:1", "--peers", "n1=" + addr[0]},
		{"node", "--bogus"},
	} {
		err := exec.Command(clusterBin, args...).Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("cluster %v: %v, want exit 2", args, err)
		}
	}
}

// TestJoin: a fourth node started with --join becomes a member, learns the
// members' HTTP addresses and serves requests.
func TestJoin(t *testing.T) {
	tc := startCluster(t).ready()
	eps := tc.endpoints()
	if _, code := tc.cli(eps, "add", "j", "5"); code != 0 {
		t.Fatalf("add: exit %d", code)
	}
	addrs := freePorts(t, 2)
	p := &proc{id: "n4", peer: addrs[0], http: addrs[1], dir: filepath.Join(t.TempDir(), "n4")}
	p.args = []string{"node", "--id", p.id, "--data", p.dir, "--peer-addr", p.peer, "--http-addr", p.http,
		"--join", tc.nodes[0].http, "--log-level", "warn"}
	tc.nodes = append(tc.nodes, p)
	tc.start(p)
	tc.waitReady(p)
	out, code := tc.cli(p.http, "status", "--json", "--no-retries")
	var st wire.ClusterStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		t.Fatalf("status from n4: %q exit %d", out, code)
	}
	if len(st.Members) != 4 {
		t.Fatalf("members after the join: %+v", st.Members)
	}
	for _, m := range st.Members {
		if m.HTTPAddr == "" {
			t.Errorf("n4 does not know the HTTP address of %s: %+v", m.ID, st.Members)
		}
	}
	if out, code := tc.cli(p.http, "add", "j", "1", "--no-retries"); code != 0 || out != "6" {
		t.Fatalf("add via the new node: %q exit %d", out, code)
	}
	eventually(t, 20*time.Second, "the new node to apply", func() bool {
		out, code := tc.cli(p.http, "get", "j", "--stale", "--no-retries")
		return code == 0 && out == "6"
	})
}

// TestHTTPAddrsLearned: nodes started with only the documented flags (no
// --peer-http) learn each other's HTTP addresses over the peer port, and
// every node's GET /v1/cluster reports every member's.
func TestHTTPAddrsLearned(t *testing.T) {
	tc := startCluster(t).ready()
	want := map[string]string{}
	for _, p := range tc.nodes {
		want[p.id] = p.http
	}
	for _, p := range tc.nodes {
		var got map[string]string
		eventually(t, 20*time.Second, p.id+" to report every member's HTTP address", func() bool {
			out, code := tc.cli(p.http, "status", "--json", "--no-retries")
			var st wire.ClusterStatus
			if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
				return false
			}
			got = map[string]string{}
			for _, m := range st.Members {
				got[m.ID] = m.HTTPAddr
			}
			return fmt.Sprint(got) == fmt.Sprint(want)
		})
	}
}

// writeCerts writes a CA and a certificate for 127.0.0.1 signed by it,
// good for both ends of mutual TLS, and returns their paths.
func writeCerts(t *testing.T) (cert, key, ca string) {
	t.Helper()
	return testca.New(t, "abacus test CA").WriteFiles(t, t.TempDir(), "node")
}

// TestTLS: with --tls-* the nodes talk mutual TLS to each other and to
// clients; a client without a certificate is refused.
func TestTLS(t *testing.T) {
	cert, key, ca := writeCerts(t)
	tlsFlags := []string{"--tls-cert", cert, "--tls-key", key, "--tls-ca", ca}
	tc := startCluster(t, tlsFlags...)
	tc.cliArgs = tlsFlags
	tc.ready()
	eps := tc.endpoints()
	if out, code := tc.cli(eps, "add", "secure", "3"); code != 0 || out != "3" {
		t.Fatalf("add over TLS: %q exit %d", out, code)
	}
	if out, code := tc.cli(tc.nodes[1].http, "get", "secure", "--no-retries"); code != 0 || out != "3" {
		t.Fatalf("get via another node over TLS: %q exit %d", out, code)
	}
	tc.cliArgs = []string{"--tls-ca", ca}
	if _, code := tc.cli(eps, "get", "secure", "--no-retries", "--timeout", "2s"); code == 0 {
		t.Fatalf("a client without a certificate was served")
	}
}

// TestLockLost: when the lock cannot be renewed while CMD runs (here no
// quorum: two nodes are stopped), CMD is signalled and lock exits 1.
func TestLockLost(t *testing.T) {
	tc := startCluster(t).ready()
	eps := tc.endpoints()
	started := filepath.Join(t.TempDir(), "started")
	cmd := exec.Command(tc.abacusBin, "--cluster", eps, "lock", "job", "--ttl", "1s", "--",
		"sh", "-c", `touch "$STARTED"; exec sleep 60`)
	cmd.Env = append(os.Environ(), "STARTED="+started)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()
	eventually(t, 20*time.Second, "CMD to start", func() bool {
		_, err := os.Stat(started)
		return err == nil
	})
	stopped := tc.nodes[1:]
	for _, p := range stopped {
		if err := p.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		for _, p := range stopped {
			_ = p.cmd.Process.Signal(syscall.SIGCONT)
		}
	}()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("lock after losing the lock: %v, want exit 1\n%s", err, stderr.String())
		}
		if !strings.Contains(stderr.String(), "lost") {
			t.Errorf("stderr does not say the lock was lost: %s", stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("lock kept running without its lock\n%s", stderr.String())
	}
}

// TestRabiaMajorityKilled kills two of three rabia node processes at once
// while writers keep slots in flight on every node, and restarts them. They
// may only learn the slots they may have voted in, which the third node
// cannot decide alone; recovery ends those slots, every acknowledged add is
// kept, and writes go on.
func TestRabiaMajorityKilled(t *testing.T) {
	tc := startCluster(t, "--backend", "rabia").ready()
	n1, victims := tc.nodes[0], tc.nodes[1:]
	var wg sync.WaitGroup
	stop := make(chan struct{})
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	// Writers on the victims keep slots open there; their outcomes are
	// unknown once the processes die, so they write counters of their own.
	for _, p := range victims {
		for range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for !stopped() {
					tc.cli(p.http, "add", "busy-"+p.id, "1", "--no-retries", "--timeout", "2s")
				}
			}()
		}
	}
	// The counted writer goes through the node that stays up.
	w := tc.countedWriter(n1.http, "k", "30s")
	eventually(t, 20*time.Second, "writes before the kill", func() bool { return w.count() >= 5 })
	for _, p := range victims {
		if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range victims {
		<-p.done
		tc.start(p)
	}
	for _, p := range victims {
		tc.waitReady(p)
	}
	before := w.count()
	eventually(t, 30*time.Second, "writes after the restart", func() bool { return w.count() >= before+10 })
	total := w.stop()
	close(stop)
	wg.Wait()
	for _, p := range tc.nodes {
		eventually(t, 30*time.Second, p.id+" to hold every counted add", func() bool {
			out, code := tc.cli(p.http, "get", "k", "--stale", "--no-retries")
			return code == 0 && out == strconv.Itoa(total)
		})
	}
	recovered := false
	for _, p := range tc.nodes {
		recovered = recovered || strings.Contains(tc.logOf(p), "ending slots nobody can decide as null")
	}
	t.Logf("%d counted adds; a recovery round ended undecided slots: %v", total, recovered)
}
