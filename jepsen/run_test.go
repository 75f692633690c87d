package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/abacuskit/abacus/client"
	"github.com/abacuskit/abacus/jepsen/internal/check"
	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// shortRun runs the harness once against bin and returns its outcome;
// opts adjust its configuration.
func shortRun(t *testing.T, bin, backend string, faults []string, seed uint64, dur time.Duration, opts ...func(*Config)) *Outcome {
	t.Helper()
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := Config{
		Bin: bin, Backend: backend, Nodes: 3, Faults: faults, Duration: dur, Seed: seed, Workload: DefaultWorkload(),
		Dir: runDir(t), Quiet: 700 * time.Millisecond, Hold: 1500 * time.Millisecond,
		CheckTimeout: 30 * time.Second, Progress: &progress, ProgressEvery: time.Second,
		Log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn})),
	}
	for _, o := range opts {
		o(&cfg)
	}
	o, err := Run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v\nprogress:\n%s", err, progress.String())
	}
	faultLog, _ := os.ReadFile(filepath.Join(o.Dir, FaultLogFile))
	t.Logf("%s\nfaults:\n%s", o.Line, faultLog)
	if len(faults) > 0 && o.Info.Figures.Faults == 0 {
		t.Errorf("no fault was injected\nprogress:\n%s", progress.String())
	}
	if c := o.Verdict.Check(check.NameConvergence); c == nil || !strings.HasPrefix(c.Detail, "3 node states") {
		t.Errorf("convergence did not compare the nodes' state hashes: %+v (notes %q)", c, o.Info.Notes)
	}
	for _, f := range []string{"history.jsonl", "results.json", "verdict.txt", RunFile, FaultLogFile, "nodes/n1.log"} {
		if _, err := os.Stat(filepath.Join(o.Dir, f)); err != nil {
			t.Errorf("run directory lacks %s: %v", f, err)
		}
	}
	return o
}

// runDir returns the run directory for a short run: under
// $ABACUS_JEPSEN_KEEP when it is set, so the run outlives the test for
// study, and in the test's temporary directory otherwise.
func runDir(t *testing.T) string {
	keep := os.Getenv("ABACUS_JEPSEN_KEEP")
	if keep == "" {
		return filepath.Join(t.TempDir(), "run")
	}
	name := strings.NewReplacer("/", "-", " ", "_").Replace(t.Name())
	dir, err := os.MkdirTemp(keep, name+"-")
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "run")
}

// requireValid fails t unless the run's verdict is valid, citing what the
// checkers found.
func requireValid(t *testing.T, o *Outcome) {
	t.Helper()
	if o.Info.Status == check.StatusValid && len(o.Info.Crashes) == 0 {
		return
	}
	var b strings.Builder
	for _, c := range o.Verdict.Checks {
		fmt.Fprintf(&b, "%s: %s: %s\n", c.Name, c.Status, c.Detail)
		for _, v := range c.Violations {
			fmt.Fprintf(&b, "  %s: %s\n", v.Key, v.Message)
		}
	}
	if len(o.Info.Crashes) > 0 {
		// The run directory goes with the test: keep the nodes' last words.
		logs, _ := filepath.Glob(filepath.Join(o.Dir, "nodes", "*.log"))
		for _, l := range logs {
			data, _ := os.ReadFile(l)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			fmt.Fprintf(&b, "--- last lines of %s:\n%s\n", filepath.Base(l), strings.Join(lines[max(0, len(lines)-8):], "\n"))
		}
	}
	t.Fatalf("verdict %s, crashes %q (run directory %s)\n%s", o.Line, o.Info.Crashes, o.Dir, b.String())
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func buildNode(t *testing.T, tags string) string {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin, err := BuildNode(ctx, root, t.TempDir(), tags)
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// rabiaExpected reports whether the module has a buildable rabia package,
// so the node program must accept --backend rabia.
func rabiaExpected(t *testing.T) bool {
	t.Helper()
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(root, "rabia", "*.go"))
	if len(files) == 0 {
		return false
	}
	cmd := exec.Command("go", "build", "./rabia")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rabia/ is present but does not build: %v\n%s", err, out)
	}
	return true
}

// acceptsBackend starts the node program once as a one-node cluster of
// backend and reports whether it came up (served /healthz) rather than
// refusing the backend.
func acceptsBackend(t *testing.T, bin, backend string) (bool, string) {
	t.Helper()
	peer, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	httpAddr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "node", "--id", "probe", "--data", t.TempDir(), "--peer-addr", peer,
		"--http-addr", httpAddr, "--peers", "probe="+peer, "--backend", backend)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return false, fmt.Sprintf("exited: %v\n%s", err, out.String())
		default:
		}
		resp, err := http.Get("http://" + httpAddr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return true, ""
			}
		}
		time.Sleep(50 * time.Millisecond) // polling the probe's start, not synchronising
	}
	return false, "did not serve /healthz within 15s\n" + out.String()
}

// TestShortRuns runs the harness against real node processes once per
// fault kind, on raft and (when the module has it) rabia, and requires
// every verdict to be valid.
func TestShortRuns(t *testing.T) {
	bin := buildNode(t, "")
	dur := 6 * time.Second
	if testing.Short() {
		dur = 3 * time.Second
	}
	kinds := []string{"none", FaultKill, FaultPause, FaultPartition, FaultClock}
	backends := []string{"raft"}
	if ok, why := acceptsBackend(t, bin, "rabia"); ok {
		backends = append(backends, "rabia")
	} else if rabiaExpected(t) {
		t.Fatalf("the rabia package is present but the node program does not run --backend rabia: %s", why)
	} else {
		t.Logf("no rabia backend in this module; raft only")
	}
	for _, backend := range backends {
		for i, kind := range kinds {
			t.Run(backend+"/"+kind, func(t *testing.T) {
				faults, err := ParseFaults(kind)
				if err != nil {
					t.Fatal(err)
				}
				requireValid(t, shortRun(t, bin, backend, faults, uint64(100+i), dur))
			})
		}
	}
}

// TestNamespaceRun runs a short partition run with every node in a network
// namespace of its own and the partitions cut in the kernel, and requires a
// valid verdict and no namespace left behind. It needs root and iproute2.
func TestNamespaceRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("network namespaces need iproute2's ip")
	}
	bin := buildNode(t, "")
	o := shortRun(t, bin, "raft", []string{FaultPartition}, 105, 4*time.Second, func(c *Config) { c.NetNS = true })
	requireValid(t, o)
	nodeLog, err := os.ReadFile(filepath.Join(o.Dir, "nodes", "n1.log"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`--peer-addr 10\.77\.(\d+)\.1:7000`).FindSubmatch(nodeLog)
	if m == nil {
		t.Fatalf("node n1 did not run on a namespace address:\n%.500s", nodeLog)
	}
	logs, _ := filepath.Glob(filepath.Join(o.Dir, "nodes", "*.log"))
	cut := false
	for _, l := range logs {
		b, _ := os.ReadFile(l)
		cut = cut || strings.Contains(string(b), "network is unreachable")
	}
	if !cut {
		t.Errorf("no node saw a link cut in the kernel")
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if prefix := "abj" + string(m[1]) + "n"; strings.Contains(string(out), prefix) {
		t.Fatalf("namespaces %s* left behind:\n%s", prefix, out)
	}
}

// TestBuggyReadsCaught builds the node program with a deliberate bug
// (linearizable reads served from any node's local state) and requires a
// short partition run to be judged invalid.
func TestBuggyReadsCaught(t *testing.T) {
	bin := buildNode(t, "abacus_buggy_reads")
	dur := 6 * time.Second
	if testing.Short() {
		dur = 4 * time.Second
	}
	o := shortRun(t, bin, "raft", []string{FaultPartition}, 7, dur)
	if o.Info.Status != check.StatusInvalid {
		t.Fatalf("the harness did not catch stale local reads: %s (run directory %s)", o.Line, o.Dir)
	}
	lin := o.Verdict.Check(check.NameLinearizable)
	bounds := o.Verdict.Check(check.NameCounterBounds)
	if lin.Status != check.StatusInvalid && bounds.Status != check.StatusInvalid {
		t.Errorf("stale reads were not reported by the linearizability or bounds checks: %s", o.Line)
	}
	for _, c := range o.Verdict.Checks {
		for _, v := range c.Violations[:min(2, len(c.Violations))] {
			t.Logf("%s: %s: %s", c.Name, v.Key, v.Message)
		}
	}
}

// TestParseFaults covers the -faults flag.
func TestParseFaults(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "", want: nil},
		{in: "none", want: nil},
		{in: "kill", want: []string{FaultKill}},
		{in: "kill, pause,kill", want: []string{FaultKill, FaultPause}},
		{in: "all", want: AllFaults()},
		{in: "kill,fire", err: true},
	}
	for _, tc := range tests {
		got, err := ParseFaults(tc.in)
		if (err != nil) != tc.err || (err != nil && !errors.Is(err, ErrUnknownFault)) {
			t.Errorf("ParseFaults(%q) error %v, want error %v", tc.in, err, tc.err)
			continue
		}
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("ParseFaults(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestPartitions checks the shapes of the partitions the nemesis draws on
// five nodes: cuts are symmetric, an isolated node is cut from all, halves
// leave a strict majority, a ring leaves each node two neighbours, a
// bridge leaves one node talking to both sides.
func TestPartitions(t *testing.T) {
	cl, err := NewCluster("unused", "raft", t.TempDir(), 5, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for seed := range uint64(200) {
		n := NewNemesis(cl, nil, nil, seed, nil, slog.New(slog.DiscardHandler))
		desc, blocks := n.partition(context.Background())
		variant := strings.Fields(desc)[0]
		seen[variant] = true
		for a, peers := range blocks {
			for _, b := range peers {
				if !slices.Contains(blocks[b], a) {
					t.Fatalf("%s: %s blocks %s but not the reverse", desc, a, b)
				}
			}
		}
		reach := func(id string) int { return 4 - len(blocks[id]) }
		switch variant {
		case "isolate", "isolate-leader":
			isolated := 0
			for _, id := range cl.IDs() {
				if reach(id) == 0 {
					isolated++
				} else if reach(id) != 3 {
					t.Fatalf("%s: %s reaches %d peers", desc, id, reach(id))
				}
			}
			if isolated != 1 {
				t.Fatalf("%s: %d nodes isolated", desc, isolated)
			}
		case "halves":
			big := 0
			for _, id := range cl.IDs() {
				if reach(id) == 2 {
					big++
				}
			}
			if big != 3 {
				t.Fatalf("%s: majority side has %d nodes", desc, big)
			}
		case "ring":
			for _, id := range cl.IDs() {
				if reach(id) != 2 {
					t.Fatalf("%s: %s reaches %d peers, want 2", desc, id, reach(id))
				}
			}
		case "bridge":
			full := 0
			for _, id := range cl.IDs() {
				switch reach(id) {
				case 4:
					full++
				case 2:
				default:
					t.Fatalf("%s: %s reaches %d peers", desc, id, reach(id))
				}
			}
			if full != 1 {
				t.Fatalf("%s: %d bridge nodes", desc, full)
			}
		default:
			t.Fatalf("unknown partition %q", desc)
		}
	}
	for _, v := range []string{"isolate", "isolate-leader", "halves", "ring", "bridge"} {
		if !seen[v] {
			t.Errorf("partition %s never drawn in 200 seeds", v)
		}
	}
}

// TestClassify covers how client errors map onto op outcomes.
func TestClassify(t *testing.T) {
	tests := []struct {
		err     error
		outcome history.Outcome
		code    string
	}{
		{err: nil, outcome: history.Ok},
		{err: &client.Error{Status: 409, Code: "overflow"}, outcome: history.Ok, code: history.CodeOverflow},
		{err: &client.Error{Status: 409, Code: "lock_held", Holder: "h"}, outcome: history.Ok, code: history.CodeLockHeld},
		{err: &client.Error{Status: 409, Code: "stale_token"}, outcome: history.Ok, code: history.CodeStaleToken},
		{err: &client.Error{Status: 404, Code: "not_found"}, outcome: history.Ok, code: history.CodeNotFound},
		{err: &client.Error{Status: 503, Code: "unavailable"}, outcome: history.Fail},
		{err: &client.Error{Code: "unavailable", Message: "connection refused"}, outcome: history.Fail},
		{err: &client.Error{Status: 504, Code: "indeterminate"}, outcome: history.Info},
		{err: &client.Error{Code: "indeterminate", Message: "connection reset"}, outcome: history.Info},
		{err: &client.Error{Status: 500, Code: "internal"}, outcome: history.Info},
		{err: context.DeadlineExceeded, outcome: history.Info},
	}
	for _, tc := range tests {
		o, out, _ := classify(tc.err)
		if o != tc.outcome || out.Error != tc.code {
			t.Errorf("classify(%v) = %s %q, want %s %q", tc.err, o, out.Error, tc.outcome, tc.code)
		}
	}
	if _, out, _ := classify(&client.Error{Status: 409, Code: "lock_held", Holder: "h"}); out.Holder != "h" {
		t.Errorf("lock_held lost its holder: %+v", out)
	}
}

// TestInstancesEnded checks the runner's instance check against nodes
// that serve a fixed value: 0 everywhere is valid, a contribution left on
// one node is a violation.
func TestInstancesEnded(t *testing.T) {
	tests := []struct {
		name  string
		value map[string]int64 // per node
		want  check.Status
	}{
		{name: "all zero", value: map[string]int64{"n1": 0, "n2": 0, "n3": 0}, want: check.StatusValid},
		{name: "left on one node", value: map[string]int64{"n1": 0, "n2": 4, "n3": 0}, want: check.StatusInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := NewCluster("unused", "raft", t.TempDir(), 3, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range cl.nodes {
				srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Query().Get("consistency") != "stale" {
						http.Error(w, "want a stale read", http.StatusBadRequest)
						return
					}
					fmt.Fprintf(w, `{"value": %d, "exists": true}`, tc.value[n.id])
				}))
				t.Cleanup(srv.Close)
				if n.admin, err = client.New([]string{srv.URL}, client.WithoutRetries()); err != nil {
					t.Fatal(err)
				}
			}
			res := instancesEnded(context.Background(), cl, []string{"inst-0", "inst-1"}, 300*time.Millisecond)
			if res.Status != tc.want {
				t.Fatalf("status %s, want %s: %s %+v", res.Status, tc.want, res.Detail, res.Violations)
			}
			if tc.want == check.StatusInvalid && (res.ViolationCount != 2 || !strings.Contains(res.Violations[0].Message, "n2")) {
				t.Fatalf("violations %+v, want both counters on n2", res.Violations)
			}
		})
	}
}
