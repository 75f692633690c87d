package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// ErrNetnsUnavailable reports that network namespaces cannot be used here.
var ErrNetnsUnavailable = errors.New("jepsen: network namespaces need root and iproute2's ip")

// netns is the kernel network of a cluster under test (-netns): every node
// runs in a network namespace of its own, with the address 10.77.K.i on its
// loopback, joined to each peer by a veth pair of its own and to the
// harness (10.77.K.254 in the root namespace) by another. A partition sets
// the veth pairs between the two sides down, so the nodes' real TCP
// connections are cut by the kernel (a sender sees the network
// unreachable) rather than by the in-process fault layer. Delay, loss and
// clock faults still go through the nodes' admin endpoint.
type netns struct {
	prefix string // names: <prefix>n<i> namespaces, <prefix>h<i> harness links
	subnet string // "10.77.K."
	n      int
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newNetns builds the network for n nodes. Its names and subnet are free
// ones, so that runs can share a host; Teardown removes it all.
func newNetns(ctx context.Context, n int) (*netns, error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("%w: not running as root", ErrNetnsUnavailable)
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNetnsUnavailable, err)
	}
	start := os.Getpid()
	for try := range 200 {
		k := (start+try)%200 + 20
		s := &netns{prefix: "abj" + strconv.Itoa(k), subnet: "10.77." + strconv.Itoa(k) + ".", n: n}
		// Creating the first namespace claims the name (and with it the
		// subnet) or finds it taken by another run.
		if err := ipCmd(ctx, "netns", "add", s.ns(1)); err != nil {
			continue
		}
		if err := s.build(ctx); err != nil {
			return nil, errors.Join(err, s.Teardown())
		}
		return s, nil
	}
	return nil, fmt.Errorf("%w: no free namespace names", ErrNetnsUnavailable)
}

func (s *netns) ns(i int) string       { return s.prefix + "n" + strconv.Itoa(i) }
func (s *netns) ip(i int) string       { return s.subnet + strconv.Itoa(i) }
func (s *netns) harnessIP() string     { return s.subnet + "254" }
func (s *netns) peerLink(j int) string { return "p" + strconv.Itoa(j) }

func (s *netns) build(ctx context.Context) error {
	var steps [][]string
	for i := 1; i <= s.n; i++ {
		if i > 1 {
			steps = append(steps, []string{"netns", "add", s.ns(i)})
		}
		steps = append(steps,
			[]string{"-n", s.ns(i), "link", "set", "lo", "up"},
			[]string{"-n", s.ns(i), "addr", "add", s.ip(i) + "/32", "dev", "lo"})
	}
	for i := 1; i <= s.n; i++ {
		for j := i + 1; j <= s.n; j++ {
			steps = append(steps, []string{"link", "add", s.peerLink(j), "netns", s.ns(i), "type", "veth",
				"peer", "name", s.peerLink(i), "netns", s.ns(j)})
		}
		host := s.prefix + "h" + strconv.Itoa(i)
		steps = append(steps,
			[]string{"link", "add", host, "type", "veth", "peer", "name", "host", "netns", s.ns(i)},
			[]string{"link", "set", host, "up"},
			[]string{"-n", s.ns(i), "link", "set", "host", "up"},
			[]string{"addr", "add", s.harnessIP() + "/32", "dev", host},
			[]string{"route", "add", s.ip(i) + "/32", "dev", host, "src", s.harnessIP()},
			[]string{"-n", s.ns(i), "route", "add", s.harnessIP() + "/32", "dev", "host", "src", s.ip(i)})
	}
	for _, step := range steps {
		if err := ipCmd(ctx, step...); err != nil {
			return err
		}
	}
	for i := 1; i <= s.n; i++ {
		for j := 1; j <= s.n; j++ {
			if i != j {
				if err := s.setLink(ctx, i, j, true); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// setLink sets node i's link to node j up (with its route) or down.
func (s *netns) setLink(ctx context.Context, i, j int, up bool) error {
	state := "down"
	if up {
		state = "up"
	}
	if err := ipCmd(ctx, "-n", s.ns(i), "link", "set", s.peerLink(j), state); err != nil || !up {
		return err
	}
	// Setting a link down drops its routes: put this one back.
	return ipCmd(ctx, "-n", s.ns(i), "route", "replace", s.ip(j)+"/32", "dev", s.peerLink(j), "src", s.ip(i))
}

// Command returns the command running bin with args in node i's namespace.
// ip netns exec switches namespaces and then executes bin in its own
// process, so the command's PID is the node's.
func (s *netns) Command(i int, bin string, args []string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", s.ns(i), bin}, args...)...)
}

// Teardown removes the namespaces, and with them every link and address.
func (s *netns) Teardown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	for i := 1; i <= s.n; i++ {
		if err := ipCmd(ctx, "netns", "del", s.ns(i)); err != nil && !strings.Contains(err.Error(), "No such file") {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// UseNamespaces moves the cluster, which must not have started, onto a
// kernel network of its own (see netns): addresses 10.77.K.i with fixed
// ports, processes started in their namespaces, partitions cut in the
// kernel. Teardown removes it.
func (c *Cluster) UseNamespaces(ctx context.Context) error {
	ns, err := newNetns(ctx, len(c.nodes))
	if err != nil {
		return err
	}
	c.ns = ns
	for i, n := range c.nodes {
		n.peerAddr = ns.ip(i+1) + ":7000"
		n.httpAddr = ns.ip(i+1) + ":8000"
		n.admin.Close()
		if n.admin, err = newAdmin(n.httpAddr); err != nil {
			return err
		}
	}
	return nil
}

// Teardown removes the cluster's kernel network, if it has one. Call it
// once its processes have stopped.
func (c *Cluster) Teardown() error {
	if c.ns == nil {
		return nil
	}
	return c.ns.Teardown()
}

func (c *Cluster) index(id string) int {
	for i, n := range c.nodes {
		if n.id == id {
			return i + 1
		}
	}
	return 0
}
