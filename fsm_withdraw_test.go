package abacus

import (
	"testing"
	"time"
)

// A waiter that gives up withdraws with FlagWithdraw: a request still in
// the queue is removed, and a hold granted meanwhile is kept and reported,
// so the giver-up learns it won instead of releasing a lock it was told
// it never had.
func TestFSMLockWithdraw(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{})
	a := h.ok(Command{Op: OpLeaseGrant, TTL: time.Minute}).Lease
	b := h.ok(Command{Op: OpLeaseGrant, TTL: time.Minute}).Lease
	c := h.ok(Command{Op: OpLeaseGrant, TTL: time.Minute}).Lease
	held := h.ok(Command{Op: OpLockAcquire, Name: "L", Holder: "a", Lease: a})
	h.ok(Command{Op: OpLockAcquire, Name: "L", Holder: "b", Lease: b, Flags: FlagWait})
	h.ok(Command{Op: OpLockAcquire, Name: "L", Holder: "c", Lease: c, Flags: FlagWait})

	// c gives up while still queued: withdrawn, and told who holds it.
	r := h.ok(Command{Op: OpLockRelease, Name: "L", Lease: c, Flags: FlagWithdraw})
	if r.Token != 0 || r.Holder != "a" || r.Lease != a {
		t.Fatalf("withdraw while queued: %+v", r)
	}
	// a releases: b, the only waiter left, is granted.
	h.ok(Command{Op: OpLockRelease, Name: "L", Token: held.Token})
	// b gives up just after the grant: the hold stands and is reported.
	r = h.ok(Command{Op: OpLockRelease, Name: "L", Lease: b, Flags: FlagWithdraw})
	if r.Token <= held.Token || r.Lease != b || r.Holder != "b" {
		t.Fatalf("withdraw after the grant: %+v", r)
	}
	if info := h.ok(Command{Op: OpLockGet, Name: "L"}); info.Token != r.Token || info.Holder != "b" {
		t.Fatalf("lock after withdraw: %+v", info)
	}
	// Without the flag, release by lease gives the hold up.
	h.ok(Command{Op: OpLockRelease, Name: "L", Lease: b})
	if info := h.ok(Command{Op: OpLockGet, Name: "L"}); info.Exists {
		t.Fatalf("lock after release by lease: %+v", info)
	}
	// d is granted while it waits, and its lease ends before it learns
	// so: the withdraw says the lease ended, not that d was refused.
	d := h.ok(Command{Op: OpLeaseGrant, TTL: time.Second}).Lease
	h.ok(Command{Op: OpLockAcquire, Name: "M", Holder: "a", Lease: a})
	h.ok(Command{Op: OpLockAcquire, Name: "M", Holder: "d", Lease: d, Flags: FlagWait})
	h.ok(Command{Op: OpLockRelease, Name: "M", Lease: a})
	if info := h.ok(Command{Op: OpLockGet, Name: "M"}); info.Lease != d {
		t.Fatalf("lock M after a's release: %+v", info)
	}
	h.advance(time.Second)
	if r := h.do(Command{Op: OpLockRelease, Name: "M", Lease: d, Flags: FlagWithdraw}); r.Code != CodeLeaseExpired {
		t.Fatalf("withdraw under an ended lease: %v, want lease expired", r.Code)
	}
	if r := h.do(Command{Op: OpAdd, Name: "x", Delta: 1, Flags: FlagWithdraw}); r.Code != CodeInvalidArgument {
		t.Fatalf("withdraw flag on a counter op: %v", r.Code)
	}
}
