package abacus

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// fsmHarness drives one FSM with consecutive log indexes and an explicit
// proposer clock, so tests read as transcripts.
type fsmHarness struct {
	t     testing.TB
	f     *FSM
	obs   *fsmRecorder
	index uint64
	now   int64
}

func newFSMHarness(t testing.TB, opts FSMOptions) *fsmHarness {
	t.Helper()
	obs := &fsmRecorder{}
	return &fsmHarness{t: t, f: NewFSM(opts, obs), obs: obs, now: int64(time.Hour)}
}

// propose applies one proposal in its own entry.
func (h *fsmHarness) propose(p Proposal) Result {
	h.t.Helper()
	h.index++
	rs := h.f.Apply(h.index, []Proposal{p})
	if len(rs) != 1 {
		h.t.Fatalf("Apply(%d) returned %d results, want 1", h.index, len(rs))
	}
	return rs[0]
}

// do applies c without a session at the fsmHarness's current time.
func (h *fsmHarness) do(c Command) Result {
	h.t.Helper()
	return h.propose(Proposal{Time: h.now, Cmd: c})
}

// probe applies c at log index 0, which leaves the applied index as it
// is, so a command expected to change nothing can be checked by hash.
func (h *fsmHarness) probe(c Command) Result {
	h.t.Helper()
	rs := h.f.Apply(0, []Proposal{{Time: h.now, Cmd: c}})
	if len(rs) != 1 {
		h.t.Fatalf("Apply(0) returned %d results, want 1", len(rs))
	}
	return rs[0]
}

// ok applies c and fails the test unless it succeeded.
// openSession opens a session and returns its id.
func (h *fsmHarness) openSession() uint64 {
	h.t.Helper()
	r := h.do(Command{Op: OpSessionOpen})
	if r.Code != CodeOK || r.Value <= 0 {
		h.t.Fatalf("session open: %+v", r)
	}
	return uint64(r.Value)
}

func (h *fsmHarness) ok(c Command) Result {
	h.t.Helper()
	r := h.do(c)
	if r.Code != CodeOK {
		h.t.Fatalf("%s %q: code %v (%v), want ok", c.Op, c.Name, r.Code, r.Err(&c))
	}
	return r
}

// advance moves the proposer clock by d and applies a tick at the new time.
func (h *fsmHarness) advance(d time.Duration) {
	h.t.Helper()
	h.now += int64(d)
	h.do(Command{Op: OpTick})
}

func (h *fsmHarness) value(name string) (int64, bool) {
	r := h.f.Read(Command{Op: OpGet, Name: name})
	return r.Value, r.Exists
}

func (h *fsmHarness) hash() string {
	h.t.Helper()
	return fsmMustHash(h.t, h.f)
}

func fsmMustHash(t testing.TB, f *FSM) string {
	t.Helper()
	s, err := f.Hash()
	if err != nil {
		t.Fatalf("Hash: %v", err)
	}
	return s
}

func fsmSnapshotBytes(t testing.TB, f *FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := f.Snapshot().WriteTo(&buf); err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	return buf.Bytes()
}

// clone returns a new FSM restored from f's snapshot.
func cloneFSM(t testing.TB, f *FSM, opts FSMOptions, obs Observer) *FSM {
	t.Helper()
	g := NewFSM(opts, obs)
	if err := g.Restore(bytes.NewReader(fsmSnapshotBytes(t, f))); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	return g
}

// fsmRecorder is an Observer that keeps a transcript of what it was told.
type fsmRecorder struct {
	events []string
}

func (r *fsmRecorder) CounterChanged(name string, value int64, revision uint64, exists bool) {
	r.events = append(r.events, fmt.Sprintf("counter %s=%d exists=%v", name, value, exists))
}

func (r *fsmRecorder) LockChanged(name, holder string, lease, token uint64) {
	r.events = append(r.events, fmt.Sprintf("lock %s holder=%q lease=%d token=%d", name, holder, lease, token))
}

func (r *fsmRecorder) LeaseEnded(id uint64) {
	r.events = append(r.events, fmt.Sprintf("lease-ended %d", id))
}

// take returns the events recorded since the last call and forgets them.
func (r *fsmRecorder) take() []string {
	e := r.events
	r.events = nil
	return e
}

// matching returns the recorded events with the given prefix.
func (r *fsmRecorder) matching(prefix string) []string {
	var out []string
	for _, e := range r.events {
		if strings.HasPrefix(e, prefix) {
			out = append(out, e)
		}
	}
	return out
}
