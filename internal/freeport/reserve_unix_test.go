//go:build unix

package freeport

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAddrsAreReserved: a port handed out is locked until released, so a
// second claim on it (here from another descriptor, as another process's
// would be) is refused, and it is not handed out again meanwhile.
func TestAddrsAreReserved(t *testing.T) {
	r, err := Reserve(5)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Release)
	for _, a := range r.Addrs() {
		if c, ok := reserve(port(t, a)); ok {
			c.release()
			t.Fatalf("%s claimed twice", a)
		}
	}
}

// TestReleaseRemovesTheFilesAndFreesThePorts: after Release nothing of the
// reservation is left in the shared directory, and its ports can be
// claimed again.
func TestReleaseRemovesTheFilesAndFreesThePorts(t *testing.T) {
	r, err := Reserve(5)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range r.Addrs() {
		if _, err := os.Stat(filepath.Join(dir(), strconv.Itoa(port(t, a)))); err != nil {
			t.Fatalf("reservation of %s has no file: %v", a, err)
		}
	}
	r.Release()
	r.Release() // a second call does nothing
	for _, a := range r.Addrs() {
		p := port(t, a)
		if _, err := os.Stat(filepath.Join(dir(), strconv.Itoa(p))); !os.IsNotExist(err) {
			t.Fatalf("file of %s left after Release: %v", a, err)
		}
		c, ok := reserve(p)
		if !ok {
			t.Fatalf("%s still reserved after Release", a)
		}
		c.release()
	}
}

// TestSweepRemovesOnlyEndedReservations: a file nobody holds a lock on
// (what a process that exited leaves behind) is removed; a live
// reservation's file stays and stays locked.
func TestSweepRemovesOnlyEndedReservations(t *testing.T) {
	d := t.TempDir()
	stale := filepath.Join(d, "20001")
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	live, ok := reserveIn(d, 20002)
	if !ok {
		t.Fatal("fresh port refused")
	}
	defer live.release()

	sweepIn(d)

	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Fatalf("stale reservation file kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(d, "20002")); err != nil {
		t.Fatalf("live reservation file removed: %v", err)
	}
	if c, ok := reserveIn(d, 20002); ok {
		c.release()
		t.Fatal("live reservation lost its lock in the sweep")
	}
	// The swept port can be had again.
	c, ok := reserveIn(d, 20001)
	if !ok {
		t.Fatal("swept port refused")
	}
	c.release()
	if entries, _ := os.ReadDir(d); len(entries) != 1 {
		t.Fatalf("directory holds %d files, want only the live one", len(entries))
	}
}
