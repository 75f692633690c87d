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
// is also reserved with an advisory lock on a file in a shared directory
// (see reserve), and no process using this package hands it out again
// until the reservation ends: at Reservation.Release, or when the process
// exits. Files of reservations that ended with their process are removed
// by the next process that picks ports, so the directory holds only live
// reservations.
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

// Reservation is a set of distinct loopback addresses, reserved among the
// processes using this package until Release.
type Reservation struct {
	addrs  []string
	claims []claim
}

// Reserve returns n distinct loopback addresses (127.0.0.1:port) whose
// ports were free when chosen, reserved until Release or the end of the
// process.
func Reserve(n int) (*Reservation, error) {
	sweep()
	hi := ephemeralStart()
	held := make([]net.Listener, 0, n)
	defer func() {
		for _, ln := range held {
			ln.Close()
		}
	}()
	r := &Reservation{addrs: make([]string, 0, n), claims: make([]claim, 0, n)}
	for tries := 0; len(r.addrs) < n; tries++ {
		if tries >= attempts*n {
			r.Release()
			return nil, fmt.Errorf("freeport: no free port in [%d, %d) after %d tries", lowest, hi, tries)
		}
		port := lowest + rand.IntN(hi-lowest)
		addr := "127.0.0.1:" + strconv.Itoa(port)
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		c, ok := reserve(port)
		if !ok {
			ln.Close()
			continue
		}
		held = append(held, ln)
		r.addrs = append(r.addrs, addr)
		r.claims = append(r.claims, c)
	}
	return r, nil
}

// Addrs returns the reserved addresses.
func (r *Reservation) Addrs() []string { return append([]string(nil), r.addrs...) }

// Release ends the reservation: its addresses may be handed out again and
// its files are removed. Calling it again does nothing.
func (r *Reservation) Release() {
	for _, c := range r.claims {
		c.release()
	}
	r.claims = nil
}

// Addrs returns n distinct loopback addresses (127.0.0.1:port) whose ports
// were free when chosen, reserved for the rest of the process's life.
func Addrs(n int) ([]string, error) {
	r, err := Reserve(n)
	if err != nil {
		return nil, err
	}
	return r.addrs, nil
}

// Addr returns one loopback address whose port was free when chosen,
// reserved for the rest of the process's life.
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
