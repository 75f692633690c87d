package abacus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

// richFSM returns an FSM holding every kind of state: plain, expiring and
// instance counters, sessions with recorded (batch) results, leases, a held
// lock with waiters, and a lock in its lock-delay.
func richFSM(t testing.TB) *fsmHarness {
	t.Helper()
	h := newFSMHarness(t, FSMOptions{})
	l1, l2, l3 := fsmGrant(h, time.Minute), fsmGrant(h, time.Hour), fsmGrant(h, 5*time.Second)
	h.ok(Command{Op: OpAdd, Name: "plain", Delta: 42})
	h.ok(Command{Op: OpAdd, Name: "expiring", Delta: 1, TTL: time.Minute})
	h.ok(Command{Op: OpAdd, Name: "shared", Delta: 3, Instance: l1})
	h.ok(Command{Op: OpAdd, Name: "shared", Delta: -5, Instance: l2})
	h.ok(fsmAcquire("held", l1, "one", false))
	h.ok(fsmAcquire("held", l2, "two", true))
	h.ok(fsmAcquire("held", l2, "three", true))
	dc := fsmAcquire("delayed", l3, "x", false)
	dc.Delay = time.Minute
	h.ok(dc)
	s1, s2 := h.openSession(), h.openSession()
	h.propose(Proposal{Client: s1, Seq: 1, Ack: 1, Time: h.now, Cmd: Command{Op: OpBatch, Ops: []Command{
		{Op: OpAdd, Name: "plain", Delta: 1}, {Op: OpGet, Name: "shared"},
	}}})
	h.propose(Proposal{Client: s1, Seq: 3, Ack: 1, Time: h.now, Cmd: Command{Op: OpAdd, Name: "plain", Delta: 1, Flags: FlagMax, Max: 0}})
	h.propose(Proposal{Client: s2, Seq: 1, Ack: 1, Time: h.now, Cmd: Command{Op: OpDelete, Name: "gone"}})
	h.propose(Proposal{Key: KeyIDOf("k1"), Time: h.now, Cmd: Command{Op: OpAdd, Name: "plain", Delta: 2}})
	h.propose(Proposal{Key: KeyIDOf("k2"), Time: h.now, Cmd: Command{Op: OpBatch, Ops: []Command{
		{Op: OpAdd, Name: "plain", Delta: 1}, {Op: OpAdd, Name: "shared", Delta: 1},
	}}})
	h.advance(5 * time.Second) // l3 expires: "delayed" enters its lock-delay
	if s := h.f.Stats(); s.Counters != 3 || s.Sessions != 2 || s.Results != 3 || s.Keys != 2 || s.Leases != 2 || s.Locks != 2 {
		t.Fatalf("rich state %v", s)
	}
	return h
}

func TestSnapshotRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    *FSM
	}{
		{"empty", NewFSM(FSMOptions{}, nil)},
		{"rich", richFSM(t).f},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fsmSnapshotBytes(t, tc.f)
			if !bytes.HasPrefix(b, []byte(snapshotMagic)) {
				t.Fatalf("snapshot starts %q", b[:8])
			}
			g := cloneFSM(t, tc.f, FSMOptions{}, nil)
			if b2 := fsmSnapshotBytes(t, g); !bytes.Equal(b, b2) {
				t.Fatal("restored state encodes differently")
			}
			if fsmMustHash(t, tc.f) != fsmMustHash(t, g) || g.Index() != tc.f.Index() || g.Now() != tc.f.Now() {
				t.Fatal("restored state differs")
			}
			d1, ok1 := tc.f.NextDeadline()
			d2, ok2 := g.NextDeadline()
			if d1 != d2 || ok1 != ok2 {
				t.Fatalf("next deadline %d,%v, restored %d,%v", d1, ok1, d2, ok2)
			}
			var n int64
			if n, _ = tc.f.Snapshot().WriteTo(io.Discard); n != int64(len(b)) {
				t.Fatalf("WriteTo reported %d bytes, wrote %d", n, len(b))
			}
		})
	}
}

// TestSnapshotRestoredBehaviour checks the restored replica behaves like
// the original from then on: derived state (lease attachments, timers) was
// rebuilt correctly.
func TestSnapshotRestoredBehaviour(t *testing.T) {
	h := richFSM(t)
	r := &fsmHarness{t: t, f: cloneFSM(t, h.f, FSMOptions{}, nil), obs: &fsmRecorder{}, index: h.index, now: h.now}
	h.obs.take()
	steps := []Command{
		{Op: OpLockRelease, Name: "held", Lease: 2},
		{Op: OpLeaseRevoke, Lease: 1},
		{Op: OpGet, Name: "shared"},
		{Op: OpLockGet, Name: "held"},
		{Op: OpLockAcquire, Name: "delayed", Lease: 2, Holder: "y", Flags: FlagWait},
	}
	for i, c := range steps {
		a, b := h.do(c), r.do(c)
		if a.Code != b.Code || a.Value != b.Value || a.Holder != b.Holder || a.Token != b.Token {
			t.Fatalf("step %d (%s): original %+v, restored %+v", i, c.Op, a, b)
		}
	}
	for _, d := range []time.Duration{time.Minute, time.Hour} {
		h.advance(d)
		r.advance(d)
		if fsmMustHash(t, h.f) != fsmMustHash(t, r.f) {
			t.Fatalf("after %v: states differ", d)
		}
	}
	if s := r.f.Stats(); s.Leases != 0 || s.Locks != 0 || s.Counters != 2 {
		t.Fatalf("restored replica after everything expired: %v", s)
	}
}

// TestSnapshotEqualStatesEqualBytes reaches one state by different orders of
// map insertion and checks the encodings agree.
func TestSnapshotEqualStatesEqualBytes(t *testing.T) {
	names := []string{"k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8"}
	build := func(order []int) *FSM {
		f := NewFSM(FSMOptions{}, nil)
		f.Apply(1, []Proposal{{Time: 10, Cmd: Command{Op: OpLeaseGrant, TTL: time.Hour}},
			{Time: 10, Cmd: Command{Op: OpLeaseGrant, TTL: time.Hour}}})
		for range 6 { // sessions 1 to 6
			f.Apply(0, []Proposal{{Time: 10, Cmd: Command{Op: OpSessionOpen}}})
		}
		var props []Proposal
		for _, i := range order {
			props = append(props,
				Proposal{Time: 10, Cmd: Command{Op: OpAdd, Name: names[i], Delta: int64(i)}},
				Proposal{Time: 10, Cmd: Command{Op: OpAdd, Name: "s", Delta: 1, Instance: uint64(1 + i%2)}},
				Proposal{Time: 10, Client: 5, Seq: uint64(1 + i), Ack: 1, Cmd: Command{Op: OpGet, Name: names[i]}},
				Proposal{Time: 10, Client: 6, Seq: uint64(8 - i), Ack: 1, Cmd: Command{Op: OpAdd, Name: names[i], Delta: 0}},
			)
		}
		f.Apply(2, props)
		return f
	}
	a := build([]int{0, 1, 2, 3, 4, 5, 6, 7})
	b := build([]int{7, 5, 3, 1, 0, 2, 4, 6})
	if !bytes.Equal(fsmSnapshotBytes(t, a), fsmSnapshotBytes(t, b)) {
		t.Fatal("equal states encode differently")
	}
	// A different state encodes differently.
	a.Apply(3, []Proposal{{Time: 10, Cmd: Command{Op: OpAdd, Name: "k1", Delta: 1}}})
	b.Apply(3, []Proposal{{Time: 10, Cmd: Command{Op: OpAdd, Name: "k1", Delta: 2}}})
	if bytes.Equal(fsmSnapshotBytes(t, a), fsmSnapshotBytes(t, b)) {
		t.Fatal("different states encode the same")
	}
}

func restoreMustFail(t *testing.T, target *fsmHarness, data []byte, what string) {
	t.Helper()
	before := target.hash()
	err := target.f.Restore(bytes.NewReader(data))
	if err == nil {
		t.Fatalf("%s: Restore succeeded", what)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: Restore error %v does not wrap ErrCorrupt", what, err)
	}
	if target.hash() != before {
		t.Fatalf("%s: a failed Restore changed the state", what)
	}
}

func TestSnapshotCorrupt(t *testing.T) {
	good := fsmSnapshotBytes(t, richFSM(t).f)
	target := newFSMHarness(t, FSMOptions{})
	target.ok(Command{Op: OpAdd, Name: "mine", Delta: 1})

	t.Run("bit flips", func(t *testing.T) {
		for off := range good {
			for _, bit := range []uint{uint(off) % 8, (uint(off) + 3) % 8} {
				b := slices.Clone(good)
				b[off] ^= 1 << bit
				restoreMustFail(t, target, b, "flip at "+fsmItoa(off))
			}
		}
	})
	t.Run("truncated", func(t *testing.T) {
		for n := range len(good) {
			restoreMustFail(t, target, good[:n], "prefix of "+fsmItoa(n))
		}
	})
	t.Run("magic and version", func(t *testing.T) {
		b := slices.Clone(good)
		b[0] = 'X'
		restoreMustFail(t, target, b, "wrong magic")
		b = slices.Clone(good)
		b[len(snapshotMagic)] = snapshotVersion + 1
		restoreMustFail(t, target, b, "wrong version")
		restoreMustFail(t, target, nil, "empty")
	})
	t.Run("oversize chunk", func(t *testing.T) {
		b := append([]byte(snapshotMagic), snapshotVersion)
		b = binary.BigEndian.AppendUint32(b, maxChunk+1)
		b = append(b, make([]byte, 64)...)
		restoreMustFail(t, target, b, "oversize chunk")
	})
	t.Run("trailing body bytes", func(t *testing.T) {
		body := snapshotBody(t, richFSM(t).f)
		restoreMustFail(t, target, frameSnapshot(append(body, 0xc0)), "trailing byte")
		if err := target.f.Restore(bytes.NewReader(frameSnapshot(body))); err != nil {
			t.Fatalf("reframed body: %v", err)
		}
	})
	t.Run("malformed but checksummed bodies", func(t *testing.T) {
		target := newFSMHarness(t, FSMOptions{})
		target.ok(Command{Op: OpAdd, Name: "mine", Delta: 1})
		for _, tc := range []struct {
			name string
			enc  func(e *encoder)
		}{
			{"counters out of order", func(e *encoder) {
				snapMeta(e, 0)
				e.arrayLen(2)
				snapCounterRec(e, "b")
				snapCounterRec(e, "a")
				e.arrayLen(0)
				e.arrayLen(0)
				e.arrayLen(0)
			}},
			{"lease beyond next lease", func(e *encoder) {
				snapMeta(e, 0)
				e.arrayLen(0)
				e.arrayLen(0)
				e.arrayLen(1)
				e.arrayLen(3)
				e.uint(1)
				e.int(1)
				e.int(1)
				e.arrayLen(0)
			}},
			{"lock under unknown lease", func(e *encoder) {
				snapMeta(e, 5)
				e.arrayLen(0)
				e.arrayLen(0)
				e.arrayLen(0)
				e.arrayLen(1)
				e.arrayLen(7)
				e.str("l")
				e.str("h")
				e.uint(3)
				e.uint(1)
				e.int(0)
				e.int(0)
				e.arrayLen(0)
			}},
			{"slice of unknown lease", func(e *encoder) {
				snapMeta(e, 0)
				e.arrayLen(1)
				e.arrayLen(7)
				e.str("a")
				e.int(1)
				e.uint(1)
				e.uint(1)
				e.int(0)
				e.int(0)
				e.arrayLen(2)
				e.uint(4)
				e.int(1)
				e.arrayLen(0)
				e.arrayLen(0)
				e.arrayLen(0)
			}},
			{"session zero", func(e *encoder) {
				snapMeta(e, 0)
				e.arrayLen(0)
				e.arrayLen(1)
				e.arrayLen(4)
				e.uint(0)
				e.uint(1)
				e.int(0)
				e.arrayLen(0)
				e.arrayLen(0)
				e.arrayLen(0)
			}},
			{"missing sections", func(e *encoder) {
				snapMeta(e, 0)
				e.arrayLen(0)
			}},
		} {
			var buf bytes.Buffer
			e := &encoder{Encoder: msgpack.NewEncoder(&buf)}
			tc.enc(e)
			if e.err != nil {
				t.Fatal(e.err)
			}
			restoreMustFail(t, target, frameSnapshot(buf.Bytes()), tc.name)
		}
	})
}

func snapMeta(e *encoder, nextLease uint64) {
	e.arrayLen(5)
	e.uint(1)
	e.int(1)
	e.uint(1)
	e.uint(nextLease)
	e.uint(0)
}

func snapCounterRec(e *encoder, name string) {
	e.arrayLen(7)
	e.str(name)
	e.int(1)
	e.uint(1)
	e.uint(1)
	e.int(0)
	e.int(0)
	e.arrayLen(0)
}

func fsmItoa(n int) string { return strconv.Itoa(n) }

// snapshotBody returns the msgpack body of f's snapshot, without framing.
func snapshotBody(t testing.TB, f *FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := f.Snapshot().encode(msgpack.NewEncoder(&buf)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// frameSnapshot wraps a body in the snapshot framing with a valid checksum,
// independently of chunkWriter.
func frameSnapshot(body []byte) []byte {
	b := append([]byte(snapshotMagic), snapshotVersion)
	for len(body) > 0 {
		n := min(len(body), 1000)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
		b = append(b, body[:n]...)
		body = body[n:]
	}
	b = binary.BigEndian.AppendUint32(b, 0)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)))
}

func TestSnapshotFraming(t *testing.T) {
	// frameSnapshot and chunkWriter agree: the framing is as documented.
	f := richFSM(t).f
	if got, want := fsmSnapshotBytes(t, f), frameSnapshot(snapshotBody(t, f)); len(got) != len(want) {
		t.Fatalf("framed lengths %d vs %d", len(got), len(want))
	}
	if err := NewFSM(FSMOptions{}, nil).Restore(bytes.NewReader(frameSnapshot(snapshotBody(t, f)))); err != nil {
		t.Fatalf("independently framed snapshot: %v", err)
	}
	// A state larger than one chunk round-trips.
	h := newFSMHarness(t, FSMOptions{})
	var props []Proposal
	for i := range 10000 {
		props = append(props, Proposal{Time: h.now, Cmd: Command{Op: OpAdd, Name: "counter-" + fsmItoa(i) + "-x", Delta: int64(i)}})
	}
	h.f.Apply(1, props)
	b := fsmSnapshotBytes(t, h.f)
	if len(b) < 2*chunkSize {
		t.Fatalf("snapshot of %d bytes, want several chunks", len(b))
	}
	g := cloneFSM(t, h.f, FSMOptions{}, nil)
	if fsmMustHash(t, g) != fsmMustHash(t, h.f) {
		t.Fatal("multi-chunk snapshot did not round-trip")
	}
}
