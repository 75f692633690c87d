package abacus

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
	"time"
)

// FuzzRestore feeds Restore arbitrary snapshots. The first byte picks the
// form: even, the rest is a whole snapshot (mostly refused by the checksum);
// odd, the rest is a body that the test frames with a valid checksum, so
// the decoder's own checks are what stand between the input and the state.
// Nothing may panic; a refused snapshot leaves the state intact; an accepted
// one must give a state that snapshots, restores and applies commands
// deterministically.
func FuzzRestore(f *testing.F) {
	rich := richFSM(f).f
	f.Add(append([]byte{0}, fsmSnapshotBytes(f, rich)...))
	f.Add(append([]byte{1}, snapshotBody(f, rich)...))
	f.Add(append([]byte{1}, snapshotBody(f, NewFSM(FSMOptions{}, nil))...))
	g := newFSMGen(5)
	gf := NewFSM(FSMOptions{}, nil)
	for i := range 200 {
		gf.Apply(uint64(i+1), g.entry())
	}
	f.Add(append([]byte{1}, snapshotBody(f, gf)...))

	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		in := data[1:]
		if data[0]%2 == 1 {
			in = frameSnapshot(in)
		}
		target := NewFSM(FSMOptions{}, nil)
		target.Apply(1, []Proposal{{Time: 5, Cmd: Command{Op: OpAdd, Name: "before", Delta: 1}}})
		before := fsmMustHash(t, target)
		if err := target.Restore(bytes.NewReader(in)); err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if fsmMustHash(t, target) != before {
				t.Fatal("a refused snapshot changed the state")
			}
			return
		}
		// The accepted state round-trips and then behaves identically on
		// two replicas.
		obsA, obsB := &fsmRecorder{}, &fsmRecorder{}
		a := NewFSM(FSMOptions{}, obsA)
		if err := a.Restore(bytes.NewReader(in)); err != nil {
			t.Fatalf("second restore of the same bytes: %v", err)
		}
		b := cloneFSM(t, a, FSMOptions{}, obsB)
		if fsmMustHash(t, a) != fsmMustHash(t, b) || fsmMustHash(t, a) != fsmMustHash(t, target) {
			t.Fatal("restored states differ")
		}
		g := newFSMGen(uint64(len(data)))
		g.now = a.Now()
		g.leases = a.nextLease
		index := a.Index()
		for range 30 {
			index++
			props := g.entry()
			ra := a.Apply(index, props)
			rb := b.Apply(index, props)
			if !reflect.DeepEqual(ra, rb) {
				t.Fatalf("results differ:\n%+v\n%+v", ra, rb)
			}
		}
		if fsmMustHash(t, a) != fsmMustHash(t, b) || !reflect.DeepEqual(obsA.events, obsB.events) {
			t.Fatal("replicas diverged after the restore")
		}
		// Advance far enough that everything due expires.
		end := []Proposal{{Time: a.Now() + int64(2*MaxTTL), Cmd: Command{Op: OpTick}}}
		a.Apply(index+1, end)
		b.Apply(index+1, end)
		if fsmMustHash(t, a) != fsmMustHash(t, b) {
			t.Fatal("replicas diverged at expiry")
		}
	})
}

// FuzzApply decodes fuzzed entries and applies them to two replicas, one of
// them restored from a snapshot in the middle; neither may panic, and they
// must agree.
func FuzzApply(f *testing.F) {
	for seed := uint64(1); seed <= 4; seed++ {
		g := newFSMGen(seed)
		var props []Proposal
		for range 10 {
			props = append(props, g.entry()...)
		}
		b, err := EncodeEntry(props)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		props, err := DecodeEntry(data)
		if err != nil {
			return
		}
		opts := FSMOptions{SessionTTL: time.Second, SessionWindow: 8, MaxSessions: 3, MaxResults: 10}
		a, b := NewFSM(opts, &fsmRecorder{}), NewFSM(opts, &fsmRecorder{})
		half := len(props) / 2
		ra := a.Apply(1, props[:half])
		rb := b.Apply(1, props[:half])
		if !reflect.DeepEqual(ra, rb) {
			t.Fatal("results differ")
		}
		c := cloneFSM(t, b, opts, &fsmRecorder{})
		ra = a.Apply(2, props[half:])
		rc := c.Apply(2, props[half:])
		if !reflect.DeepEqual(ra, rc) {
			t.Fatalf("restored replica's results differ:\n%+v\n%+v", ra, rc)
		}
		// Whole entries applied through ApplyEntry agree as well.
		d := NewFSM(opts, nil)
		e := NewFSM(opts, nil)
		if _, err := d.ApplyEntry(1, data); err != nil {
			t.Fatalf("ApplyEntry of a decodable entry: %v", err)
		}
		e.Apply(1, props)
		if fsmMustHash(t, a) != fsmMustHash(t, c) || fsmMustHash(t, d) != fsmMustHash(t, e) {
			t.Fatal("replicas diverged")
		}
		// Results encode and decode.
		enc, err := EncodeResults(ra)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeResults(enc); err != nil {
			t.Fatalf("results of an applied entry do not decode: %v", err)
		}
	})
}
