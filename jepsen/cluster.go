package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/abacuskit/abacus/client"
	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/internal/freeport"
)

// ErrNodeDown reports an operation on a node process that is not running.
var ErrNodeDown = errors.New("jepsen: node process not running")

// BuildNode builds the node program (./examples/cluster) of the module whose
// root is moduleDir into dir and returns the binary's path. tags, when not
// empty, is passed to go build as -tags.
func BuildNode(ctx context.Context, moduleDir, dir, tags string) (string, error) {
	bin := filepath.Join(dir, "abacus-node")
	args := []string{"build", "-o", bin}
	if tags != "" {
		args = append(args, "-tags", tags)
	}
	args = append(args, "./examples/cluster")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = moduleDir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("building the node program: %w\n%s", err, out)
	}
	return bin, nil
}

// ModuleRoot returns the directory of the go.mod enclosing the working
// directory.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("jepsen: no go.mod above the working directory")
		}
		dir = parent
	}
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, from outside the range other processes' connections draw from.
func freeAddr() (string, error) { return freeport.Addr() }

// newAdmin returns the runner's client of one node's HTTP endpoint at
// httpAddr (host:port): that endpoint only, no retries, 2s per attempt.
func newAdmin(httpAddr string) (*client.Client, error) {
	return client.New([]string{"http://" + httpAddr}, client.WithoutRetries(), client.WithAttemptTimeout(2*time.Second))
}

// nodeProc is one node of the cluster under test: its fixed addresses and
// data directory, and its current process, if any.
type nodeProc struct {
	id       string
	peerAddr string
	httpAddr string
	dataDir  string
	logPath  string
	admin    *client.Client // single endpoint, no retries

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{} // closed when the current process has been reaped
	paused bool
	// expect is set when the harness signals the process to end, so an
	// exit without it is a crash.
	expect bool
}

// Cluster is the set of node processes under test. Processes are started,
// signalled and stopped by PID only.
type Cluster struct {
	bin     string
	backend string
	nodes   []*nodeProc
	log     *slog.Logger
	ns      *netns // nil: loopback, faults through the nodes' transport

	mu      sync.Mutex
	crashes []string // exits the harness did not cause
}

// Crashes describes every node process exit the harness did not cause.
func (c *Cluster) Crashes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.crashes)
}

// NewCluster prepares n nodes (ids n1..nN) with free loopback ports, data
// directories under dir/data and logs under dir/nodes. It starts nothing.
func NewCluster(bin, backend, dir string, n int, log *slog.Logger) (*Cluster, error) {
	c := &Cluster{bin: bin, backend: backend, log: log}
	for _, sub := range []string{"data", "nodes"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, err
		}
	}
	for i := 1; i <= n; i++ {
		peer, err := freeAddr()
		if err != nil {
			return nil, err
		}
		httpAddr, err := freeAddr()
		if err != nil {
			return nil, err
		}
		id := "n" + strconv.Itoa(i)
		admin, err := newAdmin(httpAddr)
		if err != nil {
			return nil, err
		}
		c.nodes = append(c.nodes, &nodeProc{
			id: id, peerAddr: peer, httpAddr: httpAddr, admin: admin,
			dataDir: filepath.Join(dir, "data", id), logPath: filepath.Join(dir, "nodes", id+".log"),
		})
	}
	return c, nil
}

// IDs returns the node ids in order.
func (c *Cluster) IDs() []string {
	ids := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		ids[i] = n.id
	}
	return ids
}

// other returns the id of the first node, in order, other than id; "" if
// there is none.
func (c *Cluster) other(id string) string {
	for _, n := range c.nodes {
		if n.id != id {
			return n.id
		}
	}
	return ""
}

func (c *Cluster) node(id string) *nodeProc {
	for _, n := range c.nodes {
		if n.id == id {
			return n
		}
	}
	return nil
}

func (c *Cluster) addrList(http bool) string {
	parts := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		a := n.peerAddr
		if http {
			a = n.httpAddr
		}
		parts[i] = n.id + "=" + a
	}
	return strings.Join(parts, ",")
}

// StartAll starts every node as an initial member.
func (c *Cluster) StartAll() error {
	for _, n := range c.nodes {
		if err := c.Start(n.id, ""); err != nil {
			return err
		}
	}
	return nil
}

// Start starts node id's process. With join empty it starts as an initial
// member (--peers); otherwise it joins through the member at HTTP address
// join (--join).
func (c *Cluster) Start(id, join string) error {
	n := c.node(id)
	if n == nil {
		return fmt.Errorf("jepsen: unknown node %q", id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		return fmt.Errorf("jepsen: node %s is already running (pid %d)", id, n.cmd.Process.Pid)
	}
	if err := os.MkdirAll(n.dataDir, 0o755); err != nil {
		return err
	}
	logf, err := os.OpenFile(n.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	args := []string{"node", "--id", n.id, "--data", n.dataDir, "--peer-addr", n.peerAddr,
		"--http-addr", n.httpAddr, "--peer-http", c.addrList(true), "--backend", c.backend, "--faults"}
	if join == "" {
		args = append(args, "--peers", c.addrList(false))
	} else {
		args = append(args, "--join", join)
	}
	cmd := exec.Command(c.bin, args...)
	if c.ns != nil {
		cmd = c.ns.Command(c.index(id), c.bin, args)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = procAttr()
	fmt.Fprintf(logf, "=== jepsen: starting %s %s\n", c.bin, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("jepsen: starting node %s: %w", id, err)
	}
	done := make(chan struct{})
	n.cmd, n.done, n.paused, n.expect = cmd, done, false, false
	c.log.Debug("node started", "node", id, "pid", cmd.Process.Pid, "join", join)
	go func() {
		err := cmd.Wait()
		fmt.Fprintf(logf, "=== jepsen: process %d exited: %v\n", cmd.Process.Pid, err)
		logf.Close()
		n.mu.Lock()
		expected := n.expect
		if n.cmd == cmd {
			n.cmd, n.paused = nil, false
		}
		n.mu.Unlock()
		if !expected {
			c.mu.Lock()
			c.crashes = append(c.crashes, fmt.Sprintf("node %s (pid %d) exited by itself: %v", id, cmd.Process.Pid, err))
			c.mu.Unlock()
			c.log.Warn("node exited unexpectedly", "node", id, "pid", cmd.Process.Pid, "err", err)
		}
		close(done)
	}()
	return nil
}

// signal sends sig to node id's process by PID and returns the channel
// closed when that process is reaped.
func (c *Cluster) signal(id string, sig syscall.Signal) (<-chan struct{}, error) {
	n := c.node(id)
	if n == nil {
		return nil, fmt.Errorf("jepsen: unknown node %q", id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return nil, fmt.Errorf("%w: %s", ErrNodeDown, id)
	}
	if err := syscall.Kill(n.cmd.Process.Pid, sig); err != nil {
		return nil, fmt.Errorf("jepsen: signalling node %s (pid %d): %w", id, n.cmd.Process.Pid, err)
	}
	switch sig {
	case syscall.SIGKILL, syscall.SIGTERM:
		n.expect = true
	case syscall.SIGSTOP:
		n.paused = true
	case syscall.SIGCONT:
		n.paused = false
	}
	return n.done, nil
}

// Kill kills node id with SIGKILL and waits until its process is reaped.
func (c *Cluster) Kill(ctx context.Context, id string) error {
	done, err := c.signal(id, syscall.SIGKILL)
	if err != nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// Pause stops node id with SIGSTOP.
func (c *Cluster) Pause(id string) error {
	_, err := c.signal(id, syscall.SIGSTOP)
	return err
}

// Resume continues node id with SIGCONT.
func (c *Cluster) Resume(id string) error {
	_, err := c.signal(id, syscall.SIGCONT)
	return err
}

// Running reports whether node id has a live process.
func (c *Cluster) Running(id string) bool {
	n := c.node(id)
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cmd != nil
}

// Wipe deletes node id's data directory; the node must be down.
func (c *Cluster) Wipe(id string) error {
	if c.Running(id) {
		return fmt.Errorf("jepsen: node %s is running; not wiping its data", id)
	}
	return os.RemoveAll(c.node(id).dataDir)
}

// StopAll stops every node: SIGCONT if paused, SIGTERM, and SIGKILL if it
// has not exited within grace.
func (c *Cluster) StopAll(grace time.Duration) {
	var wg sync.WaitGroup
	for _, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _ = c.signal(n.id, syscall.SIGCONT)
			done, err := c.signal(n.id, syscall.SIGTERM)
			if err != nil {
				return
			}
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-done:
			case <-t.C:
				if done, err := c.signal(n.id, syscall.SIGKILL); err == nil {
					<-done
				}
			}
		}()
	}
	wg.Wait()
	for _, n := range c.nodes {
		n.admin.Close()
	}
}

// Status returns node id's view of the cluster.
func (c *Cluster) Status(ctx context.Context, id string) (wire.ClusterStatus, error) {
	return c.node(id).admin.NodeStatus(ctx, 0)
}

// Faults posts a fault request to node id's admin endpoint.
func (c *Cluster) Faults(ctx context.Context, id string, f wire.FaultsRequest) error {
	return c.node(id).admin.Faults(ctx, 0, f)
}

// Partition cuts node id off from peers: in the kernel on a cluster with
// its own network (UseNamespaces), else through id's fault layer. A cut
// made on one end only may leave the other end's sends going through.
func (c *Cluster) Partition(ctx context.Context, id string, peers []string) error {
	if c.ns == nil {
		return c.Faults(ctx, id, wire.FaultsRequest{Partition: peers})
	}
	var errs []error
	for _, p := range peers {
		errs = append(errs, c.ns.setLink(ctx, c.index(id), c.index(p), false))
	}
	return errors.Join(errs...)
}

// HealNet removes the network faults on node id: its fault layer's, and
// on a cluster with its own network, the cuts of id's links.
func (c *Cluster) HealNet(ctx context.Context, id string) error {
	var errs []error
	if c.ns != nil {
		i := c.index(id)
		for j := 1; j <= len(c.nodes); j++ {
			if j != i {
				errs = append(errs, c.ns.setLink(ctx, i, j, true))
			}
		}
	}
	return errors.Join(append(errs, c.Faults(ctx, id, wire.FaultsRequest{Heal: true}))...)
}

// Leader returns the leader as most running nodes report it, or "" if
// none is known.
func (c *Cluster) Leader(ctx context.Context) string {
	votes := map[string]int{}
	best := ""
	for _, n := range c.nodes {
		if !c.Running(n.id) {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, time.Second)
		st, err := c.Status(sctx, n.id)
		cancel()
		if err != nil || st.Leader == "" {
			continue
		}
		votes[st.Leader]++
		if votes[st.Leader] > votes[best] {
			best = st.Leader
		}
	}
	return best
}

// WaitReady waits until every running node answers its status with a
// leader known and a leader agreed on by all of them.
func (c *Cluster) WaitReady(ctx context.Context) error {
	var last string
	for {
		leader, ok := "", true
		for _, n := range c.nodes {
			if !c.Running(n.id) {
				continue
			}
			sctx, cancel := context.WithTimeout(ctx, time.Second)
			st, err := c.Status(sctx, n.id)
			cancel()
			switch {
			case err != nil:
				ok, last = false, fmt.Sprintf("%s: %v", n.id, err)
			case c.backend == "raft" && st.Leader == "":
				ok, last = false, n.id+" knows no leader"
			case leader != "" && st.Leader != leader:
				ok, last = false, fmt.Sprintf("%s sees leader %s, others %s", n.id, st.Leader, leader)
			default:
				leader = st.Leader
			}
		}
		if ok {
			return nil
		}
		if err := pause(ctx, 100*time.Millisecond); err != nil {
			return fmt.Errorf("jepsen: cluster not ready (%s): %w", last, err)
		}
	}
}

// pause waits d or until ctx ends.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
