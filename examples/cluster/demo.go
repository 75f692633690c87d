//go:build unix

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/abacuskit/abacus/client"
	"github.com/abacuskit/abacus/internal/freeport"
)

// child is one node process.
type child struct {
	id, peerAddr, httpAddr string
	dir, logPath           string
	args                   []string

	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
}

// launcher starts and stops node processes.
type launcher struct {
	self    string
	out     io.Writer
	backend string

	mu       sync.Mutex
	children []*child
}

func (l *launcher) printf(format string, args ...any) { fmt.Fprintf(l.out, format, args...) }

// plan lays out three nodes on the given addresses under dir.
func (l *launcher) plan(dir string, peerAddrs, httpAddrs []string) []*child {
	var peers, httpPeers []string
	ids := []string{"n1", "n2", "n3"}
	for i, id := range ids {
		peers = append(peers, id+"="+peerAddrs[i])
		httpPeers = append(httpPeers, id+"="+httpAddrs[i])
	}
	var out []*child
	for i, id := range ids {
		c := &child{id: id, peerAddr: peerAddrs[i], httpAddr: httpAddrs[i],
			dir: filepath.Join(dir, id), logPath: filepath.Join(dir, id+".log")}
		c.args = []string{"node", "--id", id, "--data", c.dir, "--peer-addr", c.peerAddr, "--http-addr", c.httpAddr,
			"--peers", strings.Join(peers, ","), "--peer-http", strings.Join(httpPeers, ","), "--backend", l.backend}
		out = append(out, c)
	}
	return out
}

// start runs c's process, in its own process group, logging to its file.
func (l *launcher) start(c *child) error {
	if err := os.MkdirAll(filepath.Dir(c.logPath), 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(l.self, c.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = childAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting %s: %w", c.id, err)
	}
	c.cmd, c.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		_ = cmd.Wait()
		close(done)
	}(c.done)
	l.mu.Lock()
	l.children = append(l.children, c)
	l.mu.Unlock()
	return nil
}

func (c *child) running() bool {
	if c.done == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// kill sends SIGKILL to c's process group and waits for it to exit.
func (c *child) kill() {
	if c.running() {
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// stopAll stops every child: SIGTERM, then SIGKILL to its process group
// after a grace period. No child outlives it.
func (l *launcher) stopAll() {
	l.mu.Lock()
	children := append([]*child(nil), l.children...)
	l.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range children {
		if !c.running() {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGTERM)
			t := time.NewTimer(10 * time.Second)
			defer t.Stop()
			select {
			case <-c.done:
				// The group may hold nothing else, but make sure.
				_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
			case <-t.C:
				c.kill()
			}
		}()
	}
	wg.Wait()
}

// logTail returns the end of c's log, for error messages.
func (c *child) logTail() string {
	b, err := os.ReadFile(c.logPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > 8 {
		lines = lines[len(lines)-8:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls c's /readyz until it answers 200.
func waitReady(ctx context.Context, c *child, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hc := &http.Client{Timeout: time.Second}
	for {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+c.httpAddr+"/readyz", nil)
		if resp, err := hc.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.done:
			return fmt.Errorf("%s exited while starting; its log ends:\n%s", c.id, c.logTail())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %v: %w; its log ends:\n%s", c.id, timeout, ctx.Err(), c.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// freeAddrs returns n distinct loopback addresses whose ports were free a
// moment ago, from outside the range other processes' connections draw from.
func freeAddrs(n int) ([]string, error) { return freeport.Addrs(n) }

func (l *launcher) startAll(ctx context.Context, children []*child) error {
	for _, c := range children {
		if err := l.start(c); err != nil {
			return err
		}
		l.printf("  started %s  pid %d  http://%s  peer %s\n", c.id, c.cmd.Process.Pid, c.httpAddr, c.peerAddr)
	}
	for _, c := range children {
		if err := waitReady(ctx, c, 60*time.Second); err != nil {
			return err
		}
	}
	return nil
}

func endpoints(children []*child) []string {
	var out []string
	for _, c := range children {
		out = append(out, "http://"+c.httpAddr)
	}
	return out
}

// serve keeps three nodes up until ctx ends.
func (l *launcher) serve(ctx context.Context, dir string, peerPort, httpPort int) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	var peerAddrs, httpAddrs []string
	for i := range 3 {
		peerAddrs = append(peerAddrs, fmt.Sprintf("127.0.0.1:%d", peerPort+i))
		httpAddrs = append(httpAddrs, fmt.Sprintf("127.0.0.1:%d", httpPort+i))
	}
	children := l.plan(dir, peerAddrs, httpAddrs)
	defer l.stopAll()
	l.printf("abacus: three nodes, data and logs in %s\n", dir)
	if err := l.startAll(ctx, children); err != nil {
		return err
	}
	eps := strings.Join(endpoints(children), ",")
	l.printf("ready. endpoints: %s\n\n  export ABACUS_CLUSTER=%s\n  go run ./cmd/abacus add hits 1\n\nCtrl-C stops the cluster.\n", eps, eps)
	for {
		select {
		case <-ctx.Done():
			l.printf("stopping\n")
			return nil
		case <-anyExit(children):
			for _, c := range children {
				if !c.running() && c.done != nil {
					l.printf("%s exited; its log ends:\n%s\n", c.id, c.logTail())
					c.done = nil
				}
			}
		}
	}
}

// anyExit returns a channel closed when any running child exits.
func anyExit(children []*child) <-chan struct{} {
	ch := make(chan struct{})
	var once sync.Once
	for _, c := range children {
		if c.done == nil {
			continue
		}
		go func(done chan struct{}) {
			<-done
			once.Do(func() { close(ch) })
		}(c.done)
	}
	return ch
}

// demo starts three nodes, shows them working through failures, and
// stops them.
func (l *launcher) demo(ctx context.Context, dir string) (err error) {
	begin := time.Now()
	if dir == "" {
		tmp, err := os.MkdirTemp("", "abacus-demo-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		dir = tmp
	}
	addrs, err := freeAddrs(6)
	if err != nil {
		return err
	}
	children := l.plan(dir, addrs[:3], addrs[3:])
	defer l.stopAll()
	defer func() {
		if ctx.Err() != nil {
			err = ctx.Err()
		}
	}()

	l.printf("abacus demo: three node processes on loopback (data in %s)\n", dir)
	if err := l.startAll(ctx, children); err != nil {
		return err
	}
	all, err := client.New(endpoints(children))
	if err != nil {
		return err
	}
	defer all.Close()
	perNode := make([]*client.Client, len(children))
	for i, c := range children {
		if perNode[i], err = client.New([]string{"http://" + c.httpAddr}); err != nil {
			return err
		}
		defer perNode[i].Close()
	}
	st, err := all.Cluster(ctx)
	if err != nil {
		return err
	}
	who := fmt.Sprintf("leader %s, term %d", st.Leader, st.Term)
	if st.Leader == "" {
		who = "leaderless " + st.Backend
	}
	l.printf("[1/5] cluster ready after %.1fs: %s, %d members\n", time.Since(begin).Seconds(), who, len(st.Members))

	// Writes through every node: followers forward to the leader.
	const name, perStep = "demo:hits", 10
	want := int64(0)
	for i, c := range children {
		var last int64
		for range perStep {
			r, err := perNode[i].Add(ctx, name, 1)
			if err != nil {
				return fmt.Errorf("add via %s: %w", c.id, err)
			}
			last = r.Value
			want++
		}
		l.printf("      %d adds via %s -> %s = %d\n", perStep, c.id, name, last)
	}
	for i, c := range children {
		r, err := perNode[i].Get(ctx, name)
		if err != nil {
			return fmt.Errorf("read via %s: %w", c.id, err)
		}
		if r.Value != want {
			return fmt.Errorf("%s reads %s = %d, want %d", c.id, name, r.Value, want)
		}
	}
	l.printf("[2/5] writes via every node: %s = %d, read back linearizably from every node\n", name, want)

	// A lock and its fencing token.
	const lock = "demo:lock"
	acq, err := perNode[1].AcquireLock(ctx, lock, "demo-worker", 10*time.Second, 5*time.Second)
	if err != nil {
		return fmt.Errorf("acquire %s: %w", lock, err)
	}
	if _, err := perNode[1].Add(ctx, "demo:guarded", 1, client.WithFence(lock, acq.Token)); err != nil {
		return fmt.Errorf("fenced add: %w", err)
	}
	if err := perNode[1].ReleaseLock(ctx, lock, acq.Token); err != nil {
		return fmt.Errorf("release %s: %w", lock, err)
	}
	_, err = perNode[2].Add(ctx, "demo:guarded", 1, client.WithFence(lock, acq.Token))
	if !errors.Is(err, client.ErrStaleToken) {
		return fmt.Errorf("fenced add with a released token: got %v, want stale_token", err)
	}
	l.printf("[3/5] lock %s: fencing token %d; a fenced write with it succeeded, and after release the same token is refused (stale_token)\n", lock, acq.Token)

	// Kill the leader.
	st, err = all.Cluster(ctx)
	if err != nil {
		return err
	}
	var victim *child
	for _, c := range children {
		if c.id == st.Leader {
			victim = c
		}
	}
	role := "the leader"
	if victim == nil {
		if st.Leader != "" {
			return fmt.Errorf("leader %q is not among the children", st.Leader)
		}
		// A leaderless backend: any node will do.
		victim, role = children[0], "a replica"
	}
	killed := time.Now()
	victim.kill()
	var firstOK time.Duration
	for range perStep {
		if _, err := all.Add(ctx, name, 1); err != nil {
			return fmt.Errorf("add after killing the leader: %w", err)
		}
		if firstOK == 0 {
			firstOK = time.Since(killed)
		}
		want++
	}
	var survivorsAgree bool
	for i, c := range children {
		if c == victim {
			continue
		}
		r, err := perNode[i].Get(ctx, name)
		if err != nil {
			return fmt.Errorf("read via %s: %w", c.id, err)
		}
		if r.Value != want {
			return fmt.Errorf("%s reads %s = %d after the failover, want %d", c.id, name, r.Value, want)
		}
		survivorsAgree = true
	}
	st, err = all.Cluster(ctx)
	if err != nil {
		return err
	}
	l.printf("[4/5] killed %s %s (SIGKILL, pid %d); first write accepted %.2fs later; leader now %q; %d more adds -> %s = %d on the survivors (agree: %v)\n",
		role, victim.id, victim.cmd.Process.Pid, firstOK.Seconds(), st.Leader, perStep, name, want, survivorsAgree)

	// Restart it on its data directory and watch it catch up.
	restarted := time.Now()
	if err := l.start(victim); err != nil {
		return err
	}
	l.printf("  started %s  pid %d  http://%s  peer %s (restarted on %s)\n", victim.id, victim.cmd.Process.Pid, victim.httpAddr, victim.peerAddr, victim.dir)
	if err := waitReady(ctx, victim, 60*time.Second); err != nil {
		return err
	}
	vi := 0
	for i, c := range children {
		if c == victim {
			vi = i
		}
	}
	var caught int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		r, err := perNode[vi].Get(ctx, name, client.WithStale())
		if err == nil && r.Value == want {
			caught = r.Value
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("restarted %s reads %s = %d (err %v), want %d", victim.id, name, r.Value, err, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	l.printf("[5/5] restarted %s on its data directory; its own state reads %s = %d after %.2fs\n", victim.id, name, caught, time.Since(restarted).Seconds())

	var sum bytes.Buffer
	fmt.Fprintf(&sum, "\nsummary\n")
	fmt.Fprintf(&sum, "  nodes            3 processes, %s backend\n", l.backend)
	fmt.Fprintf(&sum, "  %-16s %d (expected %d: %d adds, each applied once)\n", name, caught, want, want)
	fmt.Fprintf(&sum, "  fencing token    %d; stale token refused\n", acq.Token)
	fmt.Fprintf(&sum, "  failover         %.2fs from SIGKILL of %s to the next acknowledged write\n", firstOK.Seconds(), role)
	fmt.Fprintf(&sum, "  wall time        %.1fs\n", time.Since(begin).Seconds())
	l.printf("%s", sum.String())
	return nil
}
