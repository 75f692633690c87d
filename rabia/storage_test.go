package rabia

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/rabia/internal/wmvc"
)

func val(id, payload string) *wmvc.Value {
	return &wmvc.Value{ID: []byte(id), Payload: []byte(payload)}
}

func sameDecided(a, b decided) bool { return a.slot == b.slot && a.v.Equal(b.v) }

func reopen(t *testing.T, s *storage, dir string) (*storage, []decided) {
	t.Helper()
	if s != nil {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	s, recs, err := openStorage(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, recs
}

func TestStorageRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s, recs := reopen(t, nil, dir)
	if len(recs) != 0 {
		t.Fatalf("new log holds %d records", len(recs))
	}
	want := []decided{{slot: 1, v: val("b", "payload-1")}, {slot: 0, v: nil}, {slot: 2, v: val("c", "")}}
	if err := s.Append(want[:2]); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(append(want[2:], want[0])); err != nil { // slot 1 again: skipped
		t.Fatal(err)
	}
	for _, d := range want {
		got, ok := s.Get(d.slot)
		if !ok || !sameDecided(got, d) {
			t.Fatalf("get %d: %+v %v", d.slot, got, ok)
		}
	}
	if rng := s.Range(0, 1<<20, 1<<20); len(rng) != 3 || rng[0].slot != 0 || rng[2].slot != 2 {
		t.Fatalf("range: %+v", rng)
	}
	if rng := s.Range(0, 1, 1<<20); len(rng) != 1 {
		t.Fatalf("range bounded by bytes: %d records", len(rng))
	}
	_, recs = reopen(t, s, dir)
	if len(recs) != 3 {
		t.Fatalf("reopened log holds %d records", len(recs))
	}
	for i := range want {
		if !sameDecided(recs[i], want[i]) {
			t.Fatalf("record %d: %+v, want %+v", i, recs[i], want[i])
		}
	}
}

// TestStorageTornTail cuts the log in the middle of its last record, as a
// crash during an append would, and appends garbage: reopening keeps the
// complete records, drops the rest and appends cleanly after them.
func TestStorageTornTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(path string, size int64) error
	}{
		{"truncated", func(p string, size int64) error { return os.Truncate(p, size-3) }},
		{"garbage", func(p string, _ int64) error {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write([]byte{0, 0, 0, 40, 1, 2, 3, 4, 5})
			return err
		}},
		{"checksum", func(p string, size int64) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b[size-1] ^= 0xff
			return os.WriteFile(p, b, 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s, _ := reopen(t, nil, dir)
			if err := s.Append([]decided{{slot: 0, v: val("a", "x")}, {slot: 1, v: val("b", "y")}}); err != nil {
				t.Fatal(err)
			}
			s.Close()
			path := filepath.Join(dir, "log")
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.tear(path, st.Size()); err != nil {
				t.Fatal(err)
			}
			s, recs := reopen(t, nil, dir)
			wantRecs := 1
			if tc.name == "garbage" {
				wantRecs = 2
			}
			if len(recs) != wantRecs {
				t.Fatalf("%d records after a torn tail, want %d", len(recs), wantRecs)
			}
			if err := s.Append([]decided{{slot: 7, v: nil}}); err != nil {
				t.Fatal(err)
			}
			_, recs = reopen(t, s, dir)
			if len(recs) != wantRecs+1 || recs[wantRecs].slot != 7 {
				t.Fatalf("records after appending past the cut: %+v", recs)
			}
		})
	}
}

func TestStorageCompact(t *testing.T) {
	dir := t.TempDir()
	s, _ := reopen(t, nil, dir)
	var ds []decided
	for i := range 100 {
		ds = append(ds, decided{slot: uint64(i), v: val(string(rune('a'+i%26)), "p")})
	}
	if err := s.Append(ds); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(90); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Get(50); ok {
		t.Fatal("slot 50 survived compaction")
	}
	if d, ok := s.Get(95); !ok || !sameDecided(d, ds[95]) {
		t.Fatalf("slot 95 after compaction: %+v %v", d, ok)
	}
	if err := s.Append([]decided{{slot: 100}}); err != nil {
		t.Fatal(err)
	}
	_, recs := reopen(t, s, dir)
	if len(recs) != 11 || recs[0].slot != 90 || recs[10].slot != 100 {
		t.Fatalf("after reopen: %d records from %d", len(recs), recs[0].slot)
	}
}

func TestStorageMark(t *testing.T) {
	dir := t.TempDir()
	s, _ := reopen(t, nil, dir)
	if _, ok, err := s.LoadMark(); ok || err != nil {
		t.Fatalf("new mark: %v %v", ok, err)
	}
	if err := s.SaveMark(41); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveMark(42); err != nil {
		t.Fatal(err)
	}
	s, _ = reopen(t, s, dir)
	if m, ok, err := s.LoadMark(); m != 42 || !ok || err != nil {
		t.Fatalf("mark: %d %v %v", m, ok, err)
	}
	s.Close()
	b, _ := os.ReadFile(filepath.Join(dir, "meta"))
	b[0] ^= 1
	os.WriteFile(filepath.Join(dir, "meta"), b, 0o644)
	s, _ = reopen(t, nil, dir)
	if _, _, err := s.LoadMark(); !errors.Is(err, abacus.ErrCorrupt) {
		t.Fatalf("corrupt mark: %v", err)
	}
}

func TestStorageSnapshot(t *testing.T) {
	dir := t.TempDir()
	s, _ := reopen(t, nil, dir)
	fsm := abacus.NewFSM(abacus.FSMOptions{}, nil)
	fsm.Apply(1, []abacus.Proposal{{Client: 1, Seq: 1, Ack: 1, Time: int64(time.Second), Cmd: abacus.Command{Op: abacus.OpAdd, Name: "x", Delta: 5}}})
	fsm.Apply(2, nil)
	if err := s.SaveSnapshot(2, fsm.Snapshot()); err != nil {
		t.Fatal(err)
	}
	want, _ := fsm.Hash()
	var all []byte
	for off := int64(0); ; {
		slots, total, chunk, err := s.SnapshotChunk(off, 7)
		if err != nil || slots != 2 {
			t.Fatalf("chunk at %d: slots %d, %v", off, slots, err)
		}
		all = append(all, chunk...)
		off += int64(len(chunk))
		if off == total {
			break
		}
	}
	other, _ := reopen(t, nil, t.TempDir())
	if err := other.SaveSnapshotBytes(all); err != nil {
		t.Fatal(err)
	}
	got := abacus.NewFSM(abacus.FSMOptions{}, nil)
	slots, ok, err := other.LoadSnapshot(got)
	if err != nil || !ok || slots != 2 || got.Index() != 2 {
		t.Fatalf("load: %d %v %v, index %d", slots, ok, err, got.Index())
	}
	if h, _ := got.Hash(); h != want {
		t.Fatal("restored state differs")
	}
}

func TestBatchQueueOrder(t *testing.T) {
	q := newBatchQueue()
	now := time.Now()
	ids := [][]byte{makeBatchID(30, 0, 1), makeBatchID(10, 2, 9), makeBatchID(10, 1, 5), makeBatchID(20, 0, 2)}
	for _, id := range ids {
		q.Push(&wmvc.Value{ID: id}, now)
	}
	q.Push(&wmvc.Value{ID: ids[0]}, now) // duplicate
	q.Remove(string(ids[3]))
	var got [][]byte
	for {
		e, ok := q.Pop()
		if !ok {
			break
		}
		got = append(got, e.v.ID)
	}
	want := [][]byte{ids[2], ids[1], ids[0]}
	if len(got) != len(want) {
		t.Fatalf("popped %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("pop %d: %x, want %x", i, got[i], want[i])
		}
	}
}

// TestBatchQueueRemoveFrees: batches removed anywhere in the queue leave
// it, so the queue holds only what is queued.
func TestBatchQueueRemoveFrees(t *testing.T) {
	q := newBatchQueue()
	var ids []string
	for i := range 100 {
		id := makeBatchID(int64(i%7), i%3, uint64(i))
		ids = append(ids, string(id))
		q.Push(&wmvc.Value{ID: id}, time.Now())
	}
	for i, id := range ids {
		if i%10 != 0 {
			q.Remove(id)
		}
	}
	if q.Len() != 10 || len(q.h) != 10 {
		t.Fatalf("after removing 90 of 100: %d queued, %d in the heap", q.Len(), len(q.h))
	}
	prev := ""
	for {
		e, ok := q.Pop()
		if !ok {
			break
		}
		if id := string(e.v.ID); id < prev {
			t.Fatalf("popped %x after %x", id, prev)
		} else {
			prev = id
		}
	}
}

// FuzzDecode feeds arbitrary bytes to every decoder of peer input: none
// may panic, and what decodes must respect the bounds.
func FuzzDecode(f *testing.F) {
	f.Add(encodeBatchFrame(&wmvc.Value{ID: makeBatchID(1, 0, 1), Payload: []byte("x")})[1:])
	f.Add(encodeStatusFrame(7, 9)[1:])
	f.Add(appendRecord(nil, decided{slot: 3, v: val("id", "payload")}))
	f.Add(appendRecord(nil, decided{slot: 4}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if v, err := decodeBatchFrame(b, 1<<10); err == nil {
			if len(v.ID) != batchIDLen || len(v.Payload) > 1<<10 {
				t.Fatalf("batch outside its bounds: %d %d", len(v.ID), len(v.Payload))
			}
		}
		if _, sm, err := decodeStatusFrame(b); err == nil && sm < 0 {
			t.Fatalf("status time %d", sm)
		}
		br := bufio.NewReader(bytes.NewReader(b))
		for {
			d, _, err := readRecord(br)
			if err != nil {
				if err != io.EOF && !errors.Is(err, abacus.ErrCorrupt) {
					t.Fatalf("unexpected error %v", err)
				}
				break
			}
			if d.v != nil && len(d.v.ID) > wmvc.MaxIDLen {
				t.Fatal("record id too long")
			}
		}
	})
}

// snapshotFile returns a snapshot file as SaveSnapshot lays it out: the
// slot count header, then fsm's snapshot.
func snapshotFile(t *testing.T, slots uint64, fsm *abacus.FSM) []byte {
	t.Helper()
	var buf bytes.Buffer
	var h [8]byte
	binary.BigEndian.PutUint64(h[:], slots)
	buf.Write(h[:])
	if _, err := fsm.Snapshot().WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestSnapshotIndexMismatchRefused: a snapshot whose state is not at the
// index its header names is corrupt. Installing one from a peer is
// refused (the state stays, nothing is saved, the replica is not marked
// restored), and one found on disk at startup fails the load.
func TestSnapshotIndexMismatchRefused(t *testing.T) {
	src := abacus.NewFSM(abacus.FSMOptions{}, nil)
	src.Apply(1, []abacus.Proposal{{Time: int64(time.Second), Cmd: abacus.Command{Op: abacus.OpAdd, Name: "x", Delta: 5}}})
	src.Apply(2, nil) // two slots applied: index 2

	s, _ := reopen(t, nil, t.TempDir())
	fsm := abacus.NewFSM(abacus.FSMOptions{}, nil)
	fsm.Apply(1, []abacus.Proposal{{Time: int64(time.Second), Cmd: abacus.Command{Op: abacus.OpAdd, Name: "y", Delta: 1}}})
	before, _ := fsm.Hash()
	r := &replica{fsm: fsm, store: s, log: slog.New(slog.DiscardHandler)}
	r.applied.Store(1)
	for _, slots := range []uint64{3, 4} {
		if got, ok := r.install(snapshotFile(t, slots, src)); ok {
			t.Fatalf("snapshot of index 2 installed as %d slots (%d)", slots, got)
		}
		if h, _ := fsm.Hash(); h != before || fsm.Index() != 1 {
			t.Fatalf("a refused snapshot changed the state (index %d)", fsm.Index())
		}
		if r.restored.Load() {
			t.Fatal("a refused snapshot marked the replica restored")
		}
		if _, _, _, err := s.SnapshotChunk(0, 8); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("a refused snapshot was saved: %v", err)
		}
	}
	if slots, ok := r.install(snapshotFile(t, 2, src)); !ok || slots != 2 || fsm.Index() != 2 || !r.restored.Load() {
		t.Fatalf("a good snapshot: %d %v, index %d", slots, ok, fsm.Index())
	}

	other, _ := reopen(t, nil, t.TempDir())
	if err := other.SaveSnapshotBytes(snapshotFile(t, 3, src)); err != nil {
		t.Fatal(err)
	}
	got := abacus.NewFSM(abacus.FSMOptions{}, nil)
	if _, _, err := other.LoadSnapshot(got); !errors.Is(err, abacus.ErrCorrupt) || got.Index() != 0 {
		t.Fatalf("load of a snapshot at the wrong index: %v, index %d", err, got.Index())
	}
}
