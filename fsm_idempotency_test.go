package abacus

import (
	"fmt"
	"testing"
	"time"
)

func keyed(h *fsmHarness, key string, c Command) Result {
	h.t.Helper()
	return h.propose(Proposal{Key: KeyIDOf(key), Time: h.now, Cmd: c})
}

// TestFSMKeyRetry is the HTTP Idempotency-Key promise in the state machine:
// more keyed writes than MaxSessions in between, and the retry still
// returns the first result without applying again.
func TestFSMKeyRetry(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{MaxSessions: 4})
	first := keyed(h, "pay-42", fsmAdd("balance", 1))
	if first.Code != CodeOK || first.Value != 1 {
		t.Fatalf("first write: %+v", first)
	}
	for i := range 8 {
		keyed(h, fmt.Sprint("other-", i), fsmAdd("balance", 10))
		h.openSession() // and sessions, which do not disturb keys
	}
	retry := keyed(h, "pay-42", fsmAdd("balance", 1))
	if retry.Value != first.Value || retry.Revision != first.Revision {
		t.Fatalf("retry returned %+v, want the first result %+v", retry, first)
	}
	if v, _ := h.value("balance"); v != 81 {
		t.Fatalf("balance %d, want 81: the retry applied again", v)
	}
	// A refused write is remembered as refused: its retry does not run
	// even once the refusal would no longer hold.
	keyed(h, "cap", Command{Op: OpAdd, Name: "q", Delta: 5, Flags: FlagMax, Max: 3})
	if r := keyed(h, "cap", Command{Op: OpAdd, Name: "q", Delta: 1}); r.Code != CodeOutOfRange {
		t.Fatalf("retry of a refused write: %v, want its first result out_of_range", r.Code)
	}
	if _, ok := h.value("q"); ok {
		t.Fatal("retry of a refused write ran")
	}
}

// TestFSMKeyTTL: a key is kept for exactly KeyTTL of state-machine time.
func TestFSMKeyTTL(t *testing.T) {
	ttl := 10 * time.Minute
	h := newFSMHarness(t, FSMOptions{KeyTTL: ttl})
	keyed(h, "k", fsmAdd("c", 1))
	h.now += int64(ttl) - 1
	h.do(Command{Op: OpTick})
	if r := keyed(h, "k", fsmAdd("c", 1)); r.Value != 1 {
		t.Fatalf("retry just inside KeyTTL: %+v", r)
	}
	h.now++
	h.do(Command{Op: OpTick})
	if s := h.f.Stats(); s.Keys != 0 {
		t.Fatalf("keys %d at KeyTTL, want 0", s.Keys)
	}
	if r := keyed(h, "k", fsmAdd("c", 1)); r.Value != 2 {
		t.Fatalf("key used after KeyTTL: %+v, want a new write", r)
	}
}

// TestFSMKeyBound: at MaxKeys a new key is refused and changes nothing,
// a known key still answers, and room returns as keys expire.
func TestFSMKeyBound(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{MaxKeys: 4, KeyTTL: time.Minute})
	keyed(h, "a", fsmAdd("c", 1))
	h.now += int64(time.Second)
	keyed(h, "batch", Command{Op: OpBatch, Ops: []Command{fsmAdd("c", 1), fsmAdd("d", 1)}}) // costs 3
	if r := keyed(h, "b", fsmAdd("c", 1)); r.Code != CodeLimitReached {
		t.Fatalf("key past the bound: %v, want limit_reached", r.Code)
	}
	if v, _ := h.value("c"); v != 2 {
		t.Fatalf("c = %d, want 2: a refused key ran", v)
	}
	if r := keyed(h, "a", fsmAdd("c", 1)); r.Code != CodeOK || r.Value != 1 {
		t.Fatalf("known key at the bound: %+v", r)
	}
	// "a" expires first and frees one: b fits, the next does not.
	h.now += int64(time.Minute - time.Second)
	h.do(Command{Op: OpTick})
	if r := keyed(h, "b", fsmAdd("c", 1)); r.Code != CodeOK || r.Value != 3 {
		t.Fatalf("after a key expired: %+v", r)
	}
	if r := keyed(h, "e", fsmAdd("c", 1)); r.Code != CodeLimitReached {
		t.Fatalf("bound again: %v", r.Code)
	}
	// Restored replicas keep the keys, their order and their expiry.
	g := cloneFSM(t, h.f, FSMOptions{MaxKeys: 4, KeyTTL: time.Minute}, nil)
	gh := &fsmHarness{t: t, f: g, now: h.now, index: h.index}
	if r := keyed(gh, "b", fsmAdd("c", 1)); r.Value != 3 {
		t.Fatalf("restored replica forgot key b: %+v", r)
	}
	gh.now += int64(time.Second)
	gh.do(Command{Op: OpTick})
	if s := g.Stats(); s.Keys != 1 {
		t.Fatalf("restored replica: %d keys after the batch's expiry, want 1", s.Keys)
	}
}

// TestFSMLimits: counters, leases and locks stop at their bounds with
// CodeLimitReached and change nothing; existing ones keep working.
func TestFSMLimits(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{MaxCounters: 2, MaxLeases: 2, MaxLocks: 1})
	h.ok(fsmAdd("a", 1))
	h.ok(Command{Op: OpSet, Name: "b", Value: 1})
	for _, c := range []Command{fsmAdd("c", 1), {Op: OpSet, Name: "c", Value: 1}, {Op: OpCompareAndSet, Name: "c", Old: 0, Value: 1}} {
		if r := h.do(c); r.Code != CodeLimitReached {
			t.Fatalf("%s of a third counter: %v, want limit_reached", c.Op, r.Code)
		}
	}
	if r := h.do(Command{Op: OpBatch, Ops: []Command{fsmAdd("a", 1), fsmAdd("c", 1)}}); r.Code != CodeLimitReached || r.Index != 1 {
		t.Fatalf("batch creating a third counter: %+v", r)
	}
	if v, _ := h.value("a"); v != 1 {
		t.Fatalf("a = %d: the refused batch changed it", v)
	}
	h.ok(fsmAdd("a", 1))
	h.ok(Command{Op: OpDelete, Name: "b"})
	h.ok(fsmAdd("c", 1)) // room again

	l1, l2 := fsmGrant(h, time.Minute), fsmGrant(h, time.Minute)
	if r := h.do(Command{Op: OpLeaseGrant, TTL: time.Minute}); r.Code != CodeLimitReached {
		t.Fatalf("third lease: %v", r.Code)
	}
	h.ok(fsmAcquire("x", l1, "p", false))
	if r := h.do(fsmAcquire("y", l2, "q", false)); r.Code != CodeLimitReached {
		t.Fatalf("second lock: %v", r.Code)
	}
	if r := h.do(fsmAcquire("x", l2, "q", true)); r.Code != CodeOK {
		t.Fatalf("waiting on the existing lock: %v", r.Code)
	}
	if s := h.f.Stats(); s.Leases != 2 || s.Locks != 1 || s.Counters != 2 {
		t.Fatalf("stats %v", s)
	}
}
