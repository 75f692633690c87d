package abacus

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/hashicorp/raft"
)

// fsmFakeSink is a raft.SnapshotSink in memory. failAfter > 0 makes writes
// fail once that many bytes were written.
type fsmFakeSink struct {
	bytes.Buffer
	failAfter         int
	closed, cancelled bool
}

var errFSMSinkFull = errors.New("sink full")

func (s *fsmFakeSink) Write(p []byte) (int, error) {
	if s.failAfter > 0 && s.Len()+len(p) > s.failAfter {
		return 0, errFSMSinkFull
	}
	return s.Buffer.Write(p)
}

func (s *fsmFakeSink) ID() string    { return "fake" }
func (s *fsmFakeSink) Close() error  { s.closed = true; return nil }
func (s *fsmFakeSink) Cancel() error { s.cancelled = true; return nil }

type fsmCloseRecorder struct {
	io.Reader
	closed bool
}

func (c *fsmCloseRecorder) Close() error { c.closed = true; return nil }

func fsmEntry(t *testing.T, props ...Proposal) []byte {
	t.Helper()
	b, err := EncodeEntry(props)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestRaftFSMApplyBatch(t *testing.T) {
	r := RaftFSM{FSM: NewFSM(FSMOptions{}, nil)}
	logs := []*raft.Log{
		{Index: 1, Type: raft.LogConfiguration, Data: []byte("not an entry")},
		{Index: 2, Type: raft.LogCommand, Data: fsmEntry(t,
			Proposal{Time: 10, Cmd: fsmAdd("a", 1)},
			Proposal{Time: 10, Cmd: fsmAdd("a", 2)})},
		{Index: 3, Type: raft.LogNoop},
		{Index: 4, Type: raft.LogCommand, Data: []byte{0xff, 0x00}},
		{Index: 5, Type: raft.LogBarrier},
		{Index: 6, Type: raft.LogCommand, Data: fsmEntry(t, Proposal{Time: 20, Cmd: fsmAdd("a", 4)})},
	}
	out := r.ApplyBatch(logs)
	if len(out) != len(logs) {
		t.Fatalf("%d responses for %d logs", len(out), len(logs))
	}
	for _, i := range []int{0, 2, 4} {
		if out[i] != nil {
			t.Fatalf("response %d for a %v log: %v, want nil", i, logs[i].Type, out[i])
		}
	}
	rs, ok := out[1].([]Result)
	if !ok || len(rs) != 2 || rs[0].Value != 1 || rs[1].Value != 3 {
		t.Fatalf("response 1: %#v", out[1])
	}
	if err, ok := out[3].(error); !ok || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("response 3: %#v, want an error wrapping ErrCorrupt", out[3])
	}
	if rs, ok := out[5].([]Result); !ok || len(rs) != 1 || rs[0].Value != 7 || rs[0].Revision != 6 {
		t.Fatalf("response 5: %#v", out[5])
	}
	if got := r.FSM.Index(); got != 6 {
		t.Fatalf("index %d, want 6", got)
	}
	// A corrupt last entry still advances the index, so reads waiting for
	// it are released.
	r.ApplyBatch([]*raft.Log{{Index: 7, Type: raft.LogCommand, Data: nil}})
	if got := r.FSM.Index(); got != 7 {
		t.Fatalf("index %d after a corrupt entry, want 7", got)
	}
	// Apply is ApplyBatch of one; a log at or below the applied index is a
	// replay and changes nothing.
	data := fsmEntry(t, Proposal{Time: 30, Cmd: fsmAdd("a", 1)})
	if res, ok := r.Apply(&raft.Log{Index: 8, Type: raft.LogCommand, Data: data}).([]Result); !ok || len(res) != 1 || res[0].Value != 8 {
		t.Fatalf("Apply: %#v", res)
	}
	if res, ok := r.Apply(&raft.Log{Index: 8, Type: raft.LogCommand, Data: data}).([]Result); !ok || res != nil {
		t.Fatalf("replayed Apply: %#v, want no results", res)
	}
	if v := r.FSM.Read(Command{Op: OpGet, Name: "a"}).Value; v != 8 {
		t.Fatalf("a = %d, want 8", v)
	}
}

func TestRaftFSMSnapshotRestore(t *testing.T) {
	h := richFSM(t)
	r := RaftFSM{FSM: h.f}
	snap, err := r.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	// Changes after Snapshot are not in it.
	want := h.hash()
	h.ok(fsmAdd("later", 1))

	sink := &fsmFakeSink{}
	if err := snap.Persist(sink); err != nil {
		t.Fatalf("Persist: %v", err)
	}
	snap.Release()
	if !sink.closed || sink.cancelled {
		t.Fatalf("sink closed=%v cancelled=%v, want closed", sink.closed, sink.cancelled)
	}

	other := RaftFSM{FSM: NewFSM(FSMOptions{}, nil)}
	rc := &fsmCloseRecorder{Reader: bytes.NewReader(sink.Bytes())}
	if err := other.Restore(rc); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if !rc.closed {
		t.Fatal("Restore did not close its reader")
	}
	if got := fsmMustHash(t, other.FSM); got != want {
		t.Fatal("restored state differs from the snapshot's")
	}

	// A failing sink is cancelled and the error returned.
	snap, _ = r.Snapshot()
	bad := &fsmFakeSink{failAfter: 20}
	if err := snap.Persist(bad); !errors.Is(err, errFSMSinkFull) {
		t.Fatalf("Persist to a failing sink: %v", err)
	}
	if !bad.cancelled || bad.closed {
		t.Fatalf("failing sink closed=%v cancelled=%v, want cancelled", bad.closed, bad.cancelled)
	}

	// A corrupt snapshot is refused, the reader closed, the state kept.
	rc = &fsmCloseRecorder{Reader: bytes.NewReader(sink.Bytes()[:len(sink.Bytes())-1])}
	if err := other.Restore(rc); !errors.Is(err, ErrCorrupt) || !rc.closed {
		t.Fatalf("Restore of a truncated snapshot: %v (closed %v)", err, rc.closed)
	}
	if got := fsmMustHash(t, other.FSM); got != want {
		t.Fatal("a refused restore changed the state")
	}
}
