package freeport

import (
	"net"
	"strconv"
	"testing"
)

func TestAddrsAreDistinctFreeAndBelowTheEphemeralRange(t *testing.T) {
	r, err := Reserve(20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Release)
	addrs := r.Addrs()
	seen := map[string]bool{}
	hi := ephemeralStart()
	for _, a := range addrs {
		if seen[a] {
			t.Fatalf("%s handed out twice", a)
		}
		seen[a] = true
		_, p, err := net.SplitHostPort(a)
		if err != nil {
			t.Fatal(err)
		}
		port, _ := strconv.Atoi(p)
		if port < lowest || port >= hi {
			t.Fatalf("port %d outside [%d, %d)", port, lowest, hi)
		}
		ln, err := net.Listen("tcp", a)
		if err != nil {
			t.Fatalf("%s is not free: %v", a, err)
		}
		ln.Close()
	}
}
