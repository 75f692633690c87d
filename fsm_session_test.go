package abacus

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"time"
)

func fsmAdd(name string, d int64) Command { return Command{Op: OpAdd, Name: name, Delta: d} }

func TestFSMSessionExactlyOnce(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{SessionWindow: 8})
	prop := func(client, seq, ack uint64, c Command) Result {
		t.Helper()
		return h.propose(Proposal{Client: client, Seq: seq, Ack: ack, Time: h.now, Cmd: c})
	}
	if id := h.openSession(); id != 1 {
		t.Fatalf("first session id %d, want 1", id)
	}

	// Same seq twice: first result, applied once.
	r1 := prop(1, 1, 1, fsmAdd("c", 5))
	r2 := prop(1, 1, 1, fsmAdd("c", 5))
	if r1.Code != CodeOK || r1.Value != 5 || r2.Value != 5 || r2.Revision != r1.Revision {
		t.Fatalf("retry returned %+v, first %+v", r2, r1)
	}
	if v, _ := h.value("c"); v != 5 {
		t.Fatalf("value %d after a retried add, want 5", v)
	}
	// A retry returns the first result even if the command now differs or
	// would fail.
	if r := prop(1, 1, 1, fsmAdd("c", 1000)); r.Value != 5 {
		t.Fatalf("retry with another command returned %+v, want the first result", r)
	}

	// Out of order: 4, 2, 3, then retries of each.
	want := map[uint64]int64{}
	for _, seq := range []uint64{4, 2, 3} {
		r := prop(1, seq, 1, fsmAdd("c", int64(seq)))
		want[seq] = r.Value
	}
	if v, _ := h.value("c"); v != 5+4+2+3 {
		t.Fatalf("value %d, want 14", v)
	}
	for _, seq := range []uint64{3, 2, 4} {
		if r := prop(1, seq, 1, fsmAdd("c", int64(seq))); r.Value != want[seq] {
			t.Fatalf("retry of %d returned %d, want %d", seq, r.Value, want[seq])
		}
	}
	if v, _ := h.value("c"); v != 14 {
		t.Fatalf("value %d after retries, want 14", v)
	}
	if s := h.f.Stats(); s.Sessions != 1 || s.Results != 4 {
		t.Fatalf("stats %v, want 1 session, 4 results", s)
	}

	// Acknowledging drops results; a seq below Ack is stale and not applied.
	before := h.f.Stats().Results
	if r := prop(1, 5, 3, fsmAdd("c", 1)); r.Code != CodeOK {
		t.Fatalf("seq 5: %v", r.Code)
	}
	if s := h.f.Stats(); s.Results != before-2+1 {
		t.Fatalf("results %d after ack 3, want %d", s.Results, before-1)
	}
	for _, seq := range []uint64{1, 2} {
		if r := prop(1, seq, 3, fsmAdd("c", 1)); r.Code != CodeStaleSequence {
			t.Fatalf("seq %d below ack: code %v, want stale_sequence", seq, r.Code)
		}
	}
	// A seq at or above ack whose result is kept still deduplicates.
	if r := prop(1, 3, 3, fsmAdd("c", 1)); r.Value != want[3] {
		t.Fatalf("retry of 3 after ack 3: %+v", r)
	}
	if v, _ := h.value("c"); v != 15 {
		t.Fatalf("value %d, want 15", v)
	}

	// The window: Seq >= Ack+Window is refused and not recorded.
	if r := prop(1, 3+8, 3, fsmAdd("c", 1)); r.Code != CodeTooManyInFlight {
		t.Fatalf("seq at ack+window: code %v, want too_many_in_flight", r.Code)
	}
	if r := prop(1, 3+7, 3, fsmAdd("c", 1)); r.Code != CodeOK {
		t.Fatalf("seq at ack+window-1: code %v, want ok", r.Code)
	}
	if v, _ := h.value("c"); v != 16 {
		t.Fatalf("value %d, want 16", v)
	}

	// A session the state machine did not issue is refused whatever its
	// sequence numbers: only OpSessionOpen starts one.
	for _, p := range [][3]uint64{{2, 7, 5}, {2, 1, 1}, {3, 1, 0}, {1 << 63, 1, 1}} {
		if r := prop(p[0], p[1], p[2], fsmAdd("c", 1)); r.Code != CodeSessionExpired {
			t.Fatalf("unissued session %d seq %d ack %d: code %v, want session_expired", p[0], p[1], p[2], r.Code)
		}
	}
	if v, _ := h.value("c"); v != 16 {
		t.Fatalf("value %d after refused proposals, want 16", v)
	}
	// Client 0 and seq 0 bypass deduplication.
	prop(0, 1, 0, fsmAdd("d", 1))
	prop(0, 1, 0, fsmAdd("d", 1))
	prop(9, 0, 0, fsmAdd("d", 1))
	prop(9, 0, 0, fsmAdd("d", 1))
	if v, _ := h.value("d"); v != 4 {
		t.Fatalf("value %d, want 4: proposals without a session apply every time", v)
	}
	if _, ok := h.f.sessions.byID[9]; ok {
		t.Fatal("seq 0 created a session")
	}
}

func TestFSMSessionIdleExpiry(t *testing.T) {
	ttl := 10 * time.Minute
	h := newFSMHarness(t, FSMOptions{SessionTTL: ttl})
	prop := func(client, seq, ack uint64) Result {
		t.Helper()
		return h.propose(Proposal{Client: client, Seq: seq, Ack: ack, Time: h.now, Cmd: fsmAdd("c", 1)})
	}
	h.openSession()
	h.openSession()
	prop(1, 1, 1)
	prop(2, 1, 1)
	h.now += int64(ttl / 2)
	prop(2, 2, 2) // client 2 stays active

	// At exactly lastSeen+TTL the session survives.
	h.now += int64(ttl / 2)
	h.do(Command{Op: OpTick})
	if s := h.f.Stats(); s.Sessions != 2 {
		t.Fatalf("sessions %d at lastSeen+TTL, want 2", s.Sessions)
	}
	// One nanosecond later client 1 is gone, client 2 is not.
	h.now++
	h.do(Command{Op: OpTick})
	if s := h.f.Stats(); s.Sessions != 1 || s.Results != 1 {
		t.Fatalf("stats %v, want 1 session with 1 result", s)
	}
	if r := prop(1, 2, 2); r.Code != CodeSessionExpired {
		t.Fatalf("expired client: code %v, want session_expired", r.Code)
	}
	if r := prop(2, 2, 2); r.Code != CodeOK || r.Value != 3 {
		t.Fatalf("live client retry: %+v, want its first result (3)", r)
	}
	// Time going backwards in a proposal expires nothing and keeps the clock.
	now := h.f.Now()
	h.propose(Proposal{Time: 1, Cmd: Command{Op: OpTick}})
	if h.f.Now() != now {
		t.Fatalf("clock moved back to %d from %d", h.f.Now(), now)
	}
}

func TestFSMSessionEviction(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{MaxSessions: 3, MaxResults: 100})
	prop := func(client, seq uint64) Result {
		t.Helper()
		return h.propose(Proposal{Client: client, Seq: seq, Ack: 1, Time: h.now, Cmd: fsmAdd("c", 1)})
	}
	for c := uint64(1); c <= 3; c++ {
		h.openSession()
		prop(c, 1)
	}
	prop(1, 2) // 1 is now the most recently active; 2 is the least
	if id := h.openSession(); id != 4 {
		t.Fatalf("fourth session id %d", id)
	}
	if s := h.f.Stats(); s.Sessions != 3 {
		t.Fatalf("sessions %d, want 3", s.Sessions)
	}
	for _, c := range []uint64{1, 3, 4} {
		if _, ok := h.f.sessions.byID[c]; !ok {
			t.Fatalf("client %d evicted, want client 2 evicted", c)
		}
	}
	// Client 2's retry of its first proposal (Ack still 1, as when that
	// proposal's outcome never reached it) is refused, not applied again.
	if r := prop(2, 1); r.Code != CodeSessionExpired {
		t.Fatalf("evicted client's retry: code %v, want session_expired", r.Code)
	}
	if v, _ := h.value("c"); v != 4 {
		t.Fatalf("value %d, want 4: a retry after eviction applied again", v)
	}

	h2 := newFSMHarness(t, FSMOptions{MaxSessions: 100, MaxResults: 5, SessionWindow: 4})
	h2.openSession()
	h2.openSession()
	for seq := uint64(1); seq <= 3; seq++ {
		h2.propose(Proposal{Client: 1, Seq: seq, Ack: 1, Time: h2.now, Cmd: fsmAdd("c", 1)})
	}
	for seq := uint64(1); seq <= 3; seq++ {
		h2.propose(Proposal{Client: 2, Seq: seq, Ack: 1, Time: h2.now, Cmd: fsmAdd("c", 1)})
	}
	// 6 results > 5: client 1 (least recently active) is evicted.
	if s := h2.f.Stats(); s.Sessions != 1 || s.Results != 3 {
		t.Fatalf("stats %v, want client 2 alone with 3 results", s)
	}
}

// TestFSMRetryAfterEviction is the exactly-once promise under pressure: a
// session's write, then enough other sessions to push it out of the table,
// then the retry. The retry must not apply a second time.
func TestFSMRetryAfterEviction(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{MaxSessions: 4})
	pay := h.openSession()
	if r := h.propose(Proposal{Client: pay, Seq: 1, Ack: 1, Time: h.now, Cmd: fsmAdd("pay-42", 1)}); r.Code != CodeOK {
		t.Fatalf("first write: %v", r.Code)
	}
	for i := range 8 {
		id := h.openSession()
		h.propose(Proposal{Client: id, Seq: 1, Ack: 1, Time: h.now, Cmd: fsmAdd(fmt.Sprint("other-", i), 1)})
	}
	if _, ok := h.f.sessions.byID[pay]; ok {
		t.Fatal("the first session was not evicted; the test needs it to be")
	}
	if r := h.propose(Proposal{Client: pay, Seq: 1, Ack: 1, Time: h.now, Cmd: fsmAdd("pay-42", 1)}); r.Code != CodeSessionExpired {
		t.Fatalf("retry after eviction: code %v, want session_expired", r.Code)
	}
	if v, _ := h.value("pay-42"); v != 1 {
		t.Fatalf("pay-42 = %d after a retry, want 1", v)
	}
}

// TestFSMSessionBounds drives many clients at random and checks the caps
// hold after every proposal, whatever the proposal's outcome.
func TestFSMSessionBounds(t *testing.T) {
	opts := []FSMOptions{
		{MaxSessions: 4, MaxResults: 16, SessionWindow: 8, SessionTTL: time.Minute},
		{MaxSessions: 2, MaxResults: 4, SessionWindow: 4, SessionTTL: time.Second},
		{MaxSessions: 16, MaxResults: 16, SessionWindow: 16, SessionTTL: time.Hour},
	}
	for i, o := range opts {
		rng := rand.New(rand.NewPCG(uint64(i), 42))
		h := newFSMHarness(t, o)
		acks := map[uint64]uint64{}
		for n := range 3000 {
			if rng.IntN(20) == 0 {
				h.openSession()
			}
			client := 1 + rng.Uint64N(h.f.sessions.issued+1)
			ack := acks[client]
			if rng.IntN(4) == 0 {
				ack += rng.Uint64N(3)
				acks[client] = ack
			}
			seq := ack + rng.Uint64N(o.SessionWindow*2)
			h.now += int64(rng.Uint64N(uint64(o.SessionTTL / 10)))
			h.propose(Proposal{Client: client, Seq: seq, Ack: ack, Time: h.now, Cmd: fsmAdd("c", 1)})
			s := h.f.Stats()
			if s.Sessions > o.MaxSessions || s.Results > o.MaxResults {
				t.Fatalf("options %d, proposal %d: stats %v exceed caps %+v", i, n, s, o)
			}
			var results int
			h.f.sessions.each(func(s *session) { results += len(s.results) })
			if results != s.Results || len(h.f.sessions.byID) != s.Sessions {
				t.Fatalf("options %d, proposal %d: counted %d results, table says %d", i, n, results, s.Results)
			}
		}
	}
}
