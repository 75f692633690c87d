//go:build unix

package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestAddrsAreReserved: a port handed out is locked for the life of the
// process, so a second claim on it (here from another descriptor, as
// another process's would be) is refused, and it is never handed out
// again.
func TestAddrsAreReserved(t *testing.T) {
	addrs, err := Addrs(5)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		_, p, _ := net.SplitHostPort(a)
		port, _ := strconv.Atoi(p)
		if reserve(port) {
			t.Fatalf("port %d claimed twice", port)
		}
	}
}
