package abacus

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"
)

// TestFSMRestoreNotifiesObserver restores a replica that lags behind from
// a snapshot of one that moved on, and checks that its observer hears of
// every change the restore made, and of nothing else, in order: counters
// changed, deleted and created; locks that passed to a waiter, were freed
// or were taken; the lease that ended.
func TestFSMRestoreNotifiesObserver(t *testing.T) {
	src := newFSMHarness(t, FSMOptions{})
	dst := newFSMHarness(t, FSMOptions{})
	both := func(c Command) Result {
		t.Helper()
		r := src.ok(c)
		if r2 := dst.ok(c); r2.Lease != r.Lease || r2.Token != r.Token {
			t.Fatalf("%s: replicas answered %+v and %+v", c.Op, r, r2)
		}
		return r
	}
	for _, name := range []string{"a", "b", "c"} {
		both(Command{Op: OpAdd, Name: name, Delta: 1})
	}
	l1 := both(Command{Op: OpLeaseGrant, TTL: time.Minute}).Lease
	l2 := both(Command{Op: OpLeaseGrant, TTL: time.Minute}).Lease
	both(fsmAcquire("m", l1, "h1", false))
	both(fsmAcquire("n", l1, "h1", false))
	both(fsmAcquire("k", l2, "h2", false))
	both(fsmAcquire("m", l2, "h2", true)) // waits behind h1

	// Only src moves on.
	src.ok(Command{Op: OpAdd, Name: "a", Delta: 10})
	src.ok(Command{Op: OpDelete, Name: "c"})
	src.ok(Command{Op: OpAdd, Name: "d", Delta: 4})
	src.ok(Command{Op: OpLeaseRevoke, Lease: l1}) // m passes to h2, n is freed
	src.ok(fsmAcquire("p", l2, "h2", false))
	mTok := src.f.Read(Command{Op: OpLockGet, Name: "m"}).Token
	pTok := src.f.Read(Command{Op: OpLockGet, Name: "p"}).Token

	dst.obs.take()
	snap := fsmSnapshotBytes(t, src.f)
	if err := dst.f.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"counter a=11 exists=true",
		"counter c=0 exists=false",
		"counter d=4 exists=true",
		fmt.Sprintf("lock m holder=%q lease=%d token=%d", "h2", l2, mTok),
		fmt.Sprintf("lock n holder=%q lease=0 token=0", ""),
		fmt.Sprintf("lock p holder=%q lease=%d token=%d", "h2", l2, pTok),
		fmt.Sprintf("lease-ended %d", l1),
	}
	if got := dst.obs.take(); !slices.Equal(got, want) {
		t.Fatalf("observer after restore:\n got %q\nwant %q", got, want)
	}
	if dst.hash() != src.hash() {
		t.Fatal("restored state differs from its source")
	}
	// Restoring the same state again changes nothing and tells nothing.
	if err := dst.f.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	if got := dst.obs.take(); len(got) != 0 {
		t.Fatalf("observer after a restore that changed nothing: %q", got)
	}
}

// TestFSMRestoreAtRefusesOtherIndex: a snapshot whose index is not the one
// the caller expects is refused as corrupt, and the state and the observer
// are left alone.
func TestFSMRestoreAtRefusesOtherIndex(t *testing.T) {
	src := newFSMHarness(t, FSMOptions{})
	src.ok(Command{Op: OpAdd, Name: "a", Delta: 5})
	src.ok(Command{Op: OpAdd, Name: "b", Delta: 6})
	snap := fsmSnapshotBytes(t, src.f)

	dst := newFSMHarness(t, FSMOptions{})
	dst.ok(Command{Op: OpAdd, Name: "a", Delta: 1})
	dst.obs.take()
	before := dst.hash()
	for _, index := range []uint64{src.index - 1, src.index + 1} {
		err := dst.f.RestoreAt(bytes.NewReader(snap), index)
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("RestoreAt(%d) of a snapshot at %d: %v, want ErrCorrupt", index, src.index, err)
		}
		if dst.hash() != before || len(dst.obs.take()) != 0 {
			t.Fatalf("a refused RestoreAt(%d) changed the state or told the observer", index)
		}
	}
	if err := dst.f.RestoreAt(bytes.NewReader(snap), src.index); err != nil {
		t.Fatalf("RestoreAt at the snapshot's index: %v", err)
	}
	if dst.hash() != src.hash() {
		t.Fatal("RestoreAt did not install the snapshot")
	}
}
