// Package freeport picks loopback addresses for clusters whose nodes must
// know each other's addresses before any of them starts (tests, the demo,
// the fault harness).
//
// Asking the kernel for port 0 and closing the listener is not enough when
// many processes run at once: such ports come from the ephemeral range,
// which every outgoing connection draws from too, so another process's
// connection can take the port before the node binds it. Ports here come
// from below the ephemeral range instead, where only listeners that chose
// them explicitly can collide, and a set of ports is held open until the
// whole set is chosen, so its members are distinct.
//
// Listeners that chose them explicitly are mostly other processes using
// this package (test binaries run in parallel), and a port is free for a
// while between the runs of one node (a restart). So each port handed out
// is also reserved for the rest of the process's life with an advisory
// lock (see reserve), and no process using this package hands it out
// again meanwhile.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

const (
	lowest   = 10000
	fallback = 32768 // the usual start of Linux's ephemeral range
	attempts = 200
)

// Addrs returns n distinct loopback addresses (127.0.0.1:port) whose ports
// were free when chosen.
func Addrs(n int) ([]string, error) {
	hi := ephemeralStart()
	held := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for tries := 0; len(addrs) < n; tries++ {
		if tries >= attempts*n {
			return nil, fmt.Errorf("freeport: no free port in [%d, %d) after %d tries", lowest, hi, tries)
		}
		port := lowest + rand.IntN(hi-lowest)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		if !reserve(port) {
			ln.Close()
			continue
		}
		held = append(held, ln)
		addrs = append(addrs, addr)
	}
	return addrs, nil
}

// Addr returns one loopback address whose port was free when chosen.
func Addr() (string, error) {
	a, err := Addrs(1)
	if err != nil {
		return "", err
	}
	return a[0], nil
}

// ephemeralStart reads where the kernel's ephemeral port range begins.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return fallback
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return fallback
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= lowest+1000 {
		return fallback
	}
	return lo
}
