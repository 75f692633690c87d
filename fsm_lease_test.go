package abacus

import (
	"slices"
	"testing"
	"time"
)

func fsmGrant(h *fsmHarness, ttl time.Duration) uint64 {
	h.t.Helper()
	return h.ok(Command{Op: OpLeaseGrant, TTL: ttl}).Lease
}

func fsmAcquire(name string, lease uint64, holder string, wait bool) Command {
	c := Command{Op: OpLockAcquire, Name: name, Lease: lease, Holder: holder}
	if wait {
		c.Flags = FlagWait
	}
	return c
}

func TestFSMTimeMonotonic(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{})
	h.advance(0)
	start := h.f.Now()
	l := fsmGrant(h, 10*time.Second)
	prev := start
	for _, ts := range []int64{start - 1, 0, -1 << 62, start + 5, start + 3} {
		h.propose(Proposal{Time: ts, Cmd: Command{Op: OpTick}})
		if now := h.f.Now(); now < prev || now != max(prev, ts) {
			t.Fatalf("after a proposal at %d: now %d, was %d", ts, now, prev)
		}
		prev = h.f.Now()
	}
	if got := h.f.Now(); got != start+5 {
		t.Fatalf("now %d, want %d (the largest time proposed)", got, start+5)
	}
	r := h.f.Read(Command{Op: OpLeaseGet, Lease: l})
	if r.Code != CodeOK || r.Remaining != 10*time.Second-5 {
		t.Fatalf("lease %+v, want 10s-5ns remaining", r)
	}
}

func TestFSMLeaseExpiry(t *testing.T) {
	const ttl = 10 * time.Second
	h := newFSMHarness(t, FSMOptions{})
	l := fsmGrant(h, ttl)
	granted := h.now
	if d, ok := h.f.NextDeadline(); !ok || d != granted+int64(ttl) {
		t.Fatalf("NextDeadline = %d,%v, want %d", d, ok, granted+int64(ttl))
	}

	h.now = granted + int64(ttl) - 1
	h.do(Command{Op: OpTick})
	r := h.f.Read(Command{Op: OpLeaseGet, Lease: l})
	if r.Code != CodeOK || r.Remaining != 1 || r.TTL != ttl {
		t.Fatalf("one nanosecond before the deadline: %+v, want 1ns remaining", r)
	}
	h.obs.take()
	h.now++
	h.do(Command{Op: OpTick})
	if r := h.f.Read(Command{Op: OpLeaseGet, Lease: l}); r.Code != CodeLeaseExpired {
		t.Fatalf("at the deadline: code %v, want lease_expired", r.Code)
	}
	if ev := h.obs.take(); !slices.Equal(ev, []string{"lease-ended 1"}) {
		t.Fatalf("observer saw %q", ev)
	}
	if r := h.do(Command{Op: OpLeaseKeepAlive, Lease: l}); r.Code != CodeLeaseExpired {
		t.Fatalf("keepalive after expiry: code %v", r.Code)
	}
	if r := h.do(Command{Op: OpLeaseGet, Lease: 99}); r.Code != CodeNotFound {
		t.Fatalf("unknown lease: code %v, want not_found", r.Code)
	}
	if _, ok := h.f.NextDeadline(); ok {
		t.Fatal("a deadline remains after the only lease expired")
	}

	// Expiry happens within the proposal whose time reaches the deadline,
	// before its command: a keepalive sent at the deadline is too late.
	l2 := fsmGrant(h, ttl)
	h.now += int64(ttl)
	if r := h.do(Command{Op: OpLeaseKeepAlive, Lease: l2}); r.Code != CodeLeaseExpired {
		t.Fatalf("keepalive at the deadline: code %v, want lease_expired", r.Code)
	}
}

func TestFSMLeaseKeepAliveAndRevoke(t *testing.T) {
	const ttl = 10 * time.Second
	h := newFSMHarness(t, FSMOptions{})
	l := fsmGrant(h, ttl)
	start := h.now
	h.now += int64(6 * time.Second)
	r := h.ok(Command{Op: OpLeaseKeepAlive, Lease: l})
	if r.Remaining != ttl || r.TTL != ttl {
		t.Fatalf("keepalive result %+v", r)
	}
	h.now = start + int64(ttl) // the original deadline passes
	h.do(Command{Op: OpTick})
	if r := h.f.Read(Command{Op: OpLeaseGet, Lease: l}); r.Code != CodeOK || r.Remaining != 6*time.Second {
		t.Fatalf("after the original deadline: %+v, want 6s left", r)
	}
	h.now = start + int64(16*time.Second)
	h.do(Command{Op: OpTick})
	if r := h.f.Read(Command{Op: OpLeaseGet, Lease: l}); r.Code != CodeLeaseExpired {
		t.Fatalf("at the renewed deadline: code %v", r.Code)
	}

	// Revoke releases the lock the lease holds and hands it on.
	a, b := fsmGrant(h, time.Hour), fsmGrant(h, time.Hour)
	h.ok(fsmAcquire("m", a, "A", false))
	h.ok(fsmAcquire("m", b, "B", true))
	h.obs.take()
	if r := h.ok(Command{Op: OpLeaseRevoke, Lease: a}); r.Lease != a {
		t.Fatalf("revoke result %+v", r)
	}
	if g := h.f.Read(Command{Op: OpLockGet, Name: "m"}); g.Holder != "B" || g.Lease != b {
		t.Fatalf("after revoke lock is %+v, want held by B", g)
	}
	if r := h.do(Command{Op: OpLeaseRevoke, Lease: a}); r.Code != CodeLeaseExpired {
		t.Fatalf("second revoke: code %v", r.Code)
	}
	h.ok(Command{Op: OpLeaseRevoke, Lease: b})
	if g := h.f.Read(Command{Op: OpLockGet, Name: "m"}); g.Exists {
		t.Fatalf("lock still held after every lease ended: %+v", g)
	}
	if s := h.f.Stats(); s.Leases != 0 || s.Locks != 0 {
		t.Fatalf("stats %v, want no leases and no locks", s)
	}
}

func TestFSMFencingTokens(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{})
	var last uint64
	for round := range 6 {
		if round == 3 {
			// Continue on a replica restored from a snapshot.
			h.f = cloneFSM(t, h.f, FSMOptions{}, h.obs)
		}
		l := fsmGrant(h, time.Minute)
		name := []string{"x", "y"}[round%2]
		r := h.ok(fsmAcquire(name, l, "h", false))
		if r.Token <= last {
			t.Fatalf("round %d: token %d not above %d", round, r.Token, last)
		}
		last = r.Token
		// Acquiring again with the same holder and lease is a no-op.
		if again := h.ok(fsmAcquire(name, l, "h", false)); again.Token != r.Token {
			t.Fatalf("re-acquire token %d, want %d", again.Token, r.Token)
		}
		// A fenced write with the current token passes.
		h.ok(Command{Op: OpAdd, Name: "guarded", Delta: 1, FenceLock: name, FenceToken: r.Token})
		switch round % 3 {
		case 0:
			h.ok(Command{Op: OpLockRelease, Name: name, Token: r.Token})
		case 1:
			h.ok(Command{Op: OpLeaseRevoke, Lease: l})
		case 2:
			h.advance(time.Minute) // expiry
		}
		// Afterwards the token is refused, and nothing changes.
		before := h.hash()
		for _, c := range []Command{
			{Op: OpAdd, Name: "guarded", Delta: 1, FenceLock: name, FenceToken: r.Token},
			{Op: OpSet, Name: "guarded", Value: 0, FenceLock: name, FenceToken: r.Token},
			{Op: OpDelete, Name: "guarded", FenceLock: name, FenceToken: r.Token},
			{Op: OpLockRelease, Name: name, Token: r.Token},
		} {
			if res := h.probe(c); res.Code != CodeStaleToken {
				t.Fatalf("round %d: %s with a released token: code %v, want stale_token", round, c.Op, res.Code)
			}
		}
		if h.hash() != before {
			t.Fatalf("round %d: refused fenced writes changed the state", round)
		}
	}
	if v, _ := h.value("guarded"); v != 6 {
		t.Fatalf("guarded = %d, want 6", v)
	}
	// A token of another lock does not fence this one.
	l := fsmGrant(h, time.Minute)
	tok := h.ok(fsmAcquire("x", l, "h", false)).Token
	if r := h.do(Command{Op: OpAdd, Name: "guarded", Delta: 1, FenceLock: "y", FenceToken: tok}); r.Code != CodeStaleToken {
		t.Fatalf("token of x fencing y: code %v", r.Code)
	}
}

func TestFSMLockWaitersFIFO(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{})
	leases := map[string]uint64{}
	for _, who := range []string{"A", "B", "C", "D", "E"} {
		leases[who] = fsmGrant(h, time.Hour)
	}
	h.ok(fsmAcquire("m", leases["A"], "A", true))
	// Without FlagWait a held lock is refused and names its holder.
	r := h.do(fsmAcquire("m", leases["B"], "B", false))
	if r.Code != CodeLockHeld || r.Holder != "A" {
		t.Fatalf("acquire of a held lock: %+v", r)
	}
	for _, who := range []string{"B", "C", "D", "E"} {
		r := h.ok(fsmAcquire("m", leases[who], who, true))
		if r.Token != 0 || r.Holder != "A" || !r.Exists {
			t.Fatalf("queued request of %s: %+v", who, r)
		}
	}
	// A duplicate queued request does not queue twice.
	h.ok(fsmAcquire("m", leases["C"], "C", true))
	// D withdraws; E's lease expires by revoke.
	h.ok(Command{Op: OpLockRelease, Name: "m", Lease: leases["D"]})
	h.ok(Command{Op: OpLeaseRevoke, Lease: leases["E"]})

	var order []string
	var lastTok uint64
	for range 3 {
		g := h.f.Read(Command{Op: OpLockGet, Name: "m"})
		if !g.Exists || g.Token <= lastTok {
			t.Fatalf("lock %+v, token not above %d", g, lastTok)
		}
		lastTok = g.Token
		order = append(order, g.Holder)
		h.obs.take()
		h.ok(Command{Op: OpLockRelease, Name: "m", Token: g.Token})
		grants := 0
		for _, e := range h.obs.matching("lock ") {
			if e != `lock m holder="" lease=0 token=0` {
				grants++
			}
		}
		want := 1 // the next waiter, and only it
		if len(order) == 3 {
			want = 0 // nobody left
		}
		if grants != want {
			t.Fatalf("release by %s: %d grants observed (%q), want %d", g.Holder, grants, h.obs.events, want)
		}
	}
	if !slices.Equal(order, []string{"A", "B", "C"}) {
		t.Fatalf("holders in order %q, want A B C", order)
	}
	if s := h.f.Stats(); s.Locks != 0 {
		t.Fatalf("stats %v: lock record kept after everyone left", s)
	}
	for _, who := range []string{"A", "B", "C", "D"} {
		if len(h.f.leases[leases[who]].locks) != 0 {
			t.Fatalf("lease of %s still attached to locks %v", who, h.f.leases[leases[who]].locks)
		}
	}
}

func TestFSMLockDelay(t *testing.T) {
	const delay = 5 * time.Second
	h := newFSMHarness(t, FSMOptions{})
	a := fsmGrant(h, 10*time.Second)
	b := fsmGrant(h, time.Hour)
	c := fsmAcquire("m", a, "A", false)
	c.Delay = delay
	h.ok(c)
	h.advance(10 * time.Second) // A's lease expires without a release
	expired := h.now
	if r := h.do(fsmAcquire("m", b, "B", false)); r.Code != CodeLockHeld {
		t.Fatalf("acquire during lock-delay: code %v, want lock_held", r.Code)
	}
	h.ok(fsmAcquire("m", b, "B", true)) // queue
	if g := h.f.Read(Command{Op: OpLockGet, Name: "m"}); g.Exists {
		t.Fatalf("lock reads as held during its delay: %+v", g)
	}
	h.now = expired + int64(delay) - 1
	h.do(Command{Op: OpTick})
	if g := h.f.Read(Command{Op: OpLockGet, Name: "m"}); g.Exists {
		t.Fatalf("lock granted before the delay ended: %+v", g)
	}
	h.obs.take()
	h.now++
	h.do(Command{Op: OpTick})
	if g := h.f.Read(Command{Op: OpLockGet, Name: "m"}); g.Holder != "B" {
		t.Fatalf("lock after the delay: %+v, want B", g)
	}
	if ev := h.obs.matching("lock "); len(ev) != 1 {
		t.Fatalf("observer saw %q, want one grant", ev)
	}

	// An explicit release applies no delay.
	tok := h.f.Read(Command{Op: OpLockGet, Name: "m"}).Token
	h.ok(Command{Op: OpLockRelease, Name: "m", Token: tok})
	c2 := fsmAcquire("m", b, "B2", false)
	c2.Delay = delay
	r := h.ok(c2)
	h.ok(Command{Op: OpLockRelease, Name: "m", Token: r.Token})
	h.ok(fsmAcquire("m", b, "B3", false))
}

func TestFSMInstanceSlices(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{})
	l1, l2 := fsmGrant(h, 10*time.Second), fsmGrant(h, time.Hour)
	r := h.ok(Command{Op: OpAdd, Name: "c", Delta: 5, Instance: l1})
	if r.Value != 5 || r.Mine != 5 {
		t.Fatalf("instance add %+v", r)
	}
	h.ok(Command{Op: OpAdd, Name: "c", Delta: 3, Instance: l2})
	h.ok(Command{Op: OpAdd, Name: "c", Delta: 10})
	h.ok(Command{Op: OpAdd, Name: "d", Delta: 7, Instance: l1})
	if g := h.f.Read(Command{Op: OpGet, Name: "c", Instance: l1}); g.Value != 18 || g.Mine != 5 {
		t.Fatalf("read %+v, want 18 total, 5 mine", g)
	}
	// An instance set replaces only its own slice.
	if r := h.ok(Command{Op: OpSet, Name: "c", Value: 1, Instance: l2}); r.Value != 16 || r.Mine != 1 || r.Previous != 18 {
		t.Fatalf("instance set %+v, want 16 total, 1 mine", r)
	}
	h.obs.take()
	h.advance(10 * time.Second) // l1 expires
	if v, _ := h.value("c"); v != 11 {
		t.Fatalf("c = %d after l1 expired, want 11", v)
	}
	if v, ok := h.value("d"); v != 0 || !ok {
		t.Fatalf("d = %d,%v after l1 expired, want 0", v, ok)
	}
	ev := h.obs.take()
	if !slices.Equal(ev, []string{"counter c=11 exists=true", "counter d=0 exists=true", "lease-ended 1"}) {
		t.Fatalf("observer saw %q", ev)
	}
	// Adds under an ended instance are refused.
	if r := h.do(Command{Op: OpAdd, Name: "c", Delta: 1, Instance: l1}); r.Code != CodeLeaseExpired {
		t.Fatalf("add under an expired instance: code %v", r.Code)
	}
	// An instance delete removes only its slice.
	if r := h.ok(Command{Op: OpDelete, Name: "c", Instance: l2}); r.Value != 10 {
		t.Fatalf("instance delete %+v, want 10 left", r)
	}

	// A global set or delete clears every slice: the lease ending later
	// takes nothing away.
	l3, l4 := fsmGrant(h, time.Hour), fsmGrant(h, time.Hour)
	h.ok(Command{Op: OpAdd, Name: "c", Delta: 4, Instance: l3})
	h.ok(Command{Op: OpAdd, Name: "e", Delta: 4, Instance: l4})
	h.ok(Command{Op: OpSet, Name: "c", Value: 100})
	h.ok(Command{Op: OpDelete, Name: "e"})
	h.ok(Command{Op: OpLeaseRevoke, Lease: l3})
	h.ok(Command{Op: OpLeaseRevoke, Lease: l4})
	if v, _ := h.value("c"); v != 100 {
		t.Fatalf("c = %d, want 100: the set cleared l3's slice", v)
	}
	if _, ok := h.value("e"); ok {
		t.Fatal("e exists after delete")
	}
	if g := h.f.Read(Command{Op: OpGet, Name: "c", Instance: l3}); g.Mine != 0 {
		t.Fatalf("mine = %d after a global set", g.Mine)
	}
	// A batch that fails after an instance add leaves the lease detached.
	l5 := fsmGrant(h, time.Hour)
	r = h.do(Command{Op: OpBatch, Ops: []Command{
		{Op: OpAdd, Name: "f", Delta: 1, Instance: l5},
		{Op: OpAdd, Name: "f", Delta: 1, Flags: FlagMax, Max: 1},
	}})
	if r.Code != CodeOutOfRange {
		t.Fatalf("batch code %v", r.Code)
	}
	if n := len(h.f.leases[l5].counters); n != 0 {
		t.Fatalf("lease attached to %d counters after an undone batch", n)
	}
	h.ok(Command{Op: OpLeaseRevoke, Lease: l5})
	if _, ok := h.value("f"); ok {
		t.Fatal("f exists after an undone batch")
	}
}

func TestFSMExpiringCounter(t *testing.T) {
	const ttl = time.Minute
	h := newFSMHarness(t, FSMOptions{})
	start := h.now
	h.ok(Command{Op: OpAdd, Name: "rate", Delta: 1, TTL: ttl})
	h.now += int64(ttl / 2)
	// A later add does not extend the window.
	if r := h.ok(Command{Op: OpAdd, Name: "rate", Delta: 1, TTL: ttl}); r.Value != 2 {
		t.Fatalf("second add %+v", r)
	}
	h.now = start + int64(ttl) - 1
	h.do(Command{Op: OpTick})
	if v, ok := h.value("rate"); v != 2 || !ok {
		t.Fatalf("rate = %d,%v one nanosecond before expiry", v, ok)
	}
	h.obs.take()
	h.now++
	h.do(Command{Op: OpTick})
	if _, ok := h.value("rate"); ok {
		t.Fatal("rate exists at its expiry")
	}
	if ev := h.obs.take(); !slices.Equal(ev, []string{"counter rate=0 exists=false"}) {
		t.Fatalf("observer saw %q", ev)
	}
	// It reads as new: the next add starts a fresh window.
	if r := h.ok(Command{Op: OpAdd, Name: "rate", Delta: 1, TTL: ttl}); r.Value != 1 {
		t.Fatalf("add after expiry %+v, want 1", r)
	}
	h.advance(ttl - 1)
	if v, _ := h.value("rate"); v != 1 {
		t.Fatalf("rate = %d before the new window ended", v)
	}
	h.advance(1)
	if _, ok := h.value("rate"); ok {
		t.Fatal("rate survived its second window")
	}
	// A delete and a re-add without TTL cancels the expiry.
	h.ok(Command{Op: OpAdd, Name: "k", Delta: 1, TTL: ttl})
	h.ok(Command{Op: OpDelete, Name: "k"})
	h.ok(Command{Op: OpAdd, Name: "k", Delta: 1})
	h.advance(2 * ttl)
	if v, ok := h.value("k"); v != 1 || !ok {
		t.Fatalf("k = %d,%v, want 1 (its expiry was deleted with it)", v, ok)
	}
}

// TestFSMTimersBounded checks the timer heap stays proportional to the
// state: renewals, counters deleted before their expiry and undone batches
// each leave a superseded entry behind, and a client repeating them must
// not grow the heap without bound.
func TestFSMTimersBounded(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{})
	l := fsmGrant(h, MaxTTL)
	for i := range 5000 {
		h.now += int64(time.Millisecond)
		h.ok(Command{Op: OpLeaseKeepAlive, Lease: l})
		h.ok(Command{Op: OpAdd, Name: "k", Delta: 1, TTL: MaxTTL})
		h.ok(Command{Op: OpDelete, Name: "k"})
		h.do(Command{Op: OpBatch, Ops: []Command{
			{Op: OpAdd, Name: "b" + fsmItoa(i%10), Delta: 1, TTL: MaxTTL},
			{Op: OpAdd, Name: "b", Delta: 1, Flags: FlagMax, Max: 0},
		}})
		if n := h.f.Stats().Timers; n > 2048 {
			t.Fatalf("after %d rounds the timer heap holds %d entries for 1 lease", i+1, n)
		}
	}
	// The lease still ends exactly at its renewed deadline.
	deadline := h.now + int64(MaxTTL)
	if d, ok := h.f.NextDeadline(); !ok || d > deadline {
		t.Fatalf("NextDeadline %d,%v, want at most %d", d, ok, deadline)
	}
	h.now = deadline - 1
	h.do(Command{Op: OpTick})
	if r := h.f.Read(Command{Op: OpLeaseGet, Lease: l}); r.Code != CodeOK || r.Remaining != 1 {
		t.Fatalf("lease %+v one nanosecond before its deadline", r)
	}
	h.now++
	h.do(Command{Op: OpTick})
	if r := h.f.Read(Command{Op: OpLeaseGet, Lease: l}); r.Code != CodeLeaseExpired {
		t.Fatalf("lease %+v at its deadline", r)
	}
}
