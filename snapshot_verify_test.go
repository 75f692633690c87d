package abacus

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// poisonedSnapshotBody returns a snapshot body whose meta record carries
// one more field than it knows: arrays nested size bytes deep.
func poisonedSnapshotBody(size int) []byte {
	var buf bytes.Buffer
	buf.WriteByte(0x97) // the meta record, with seven fields
	for range 6 {
		buf.WriteByte(0x01)
	}
	buf.Write(nested(fixArray1, size))
	buf.Write([]byte{0x90, 0x90, 0x90, 0x90, 0x90}) // no counters, sessions, leases, locks, keys
	return buf.Bytes()
}

// TestSnapshotChecksumBeforeDecode checks that Restore verifies the
// checksum before the decoder sees a byte: a damaged snapshot whose body
// would upset the decoder is refused for its checksum, and the state is
// unchanged.
func TestSnapshotChecksumBeforeDecode(t *testing.T) {
	target := richFSM(t)
	for name, body := range map[string][]byte{
		"nested":    poisonedSnapshotBody(hostileSize),
		"malformed": {0x95, 0xc1, 0xc1},
		"valid":     snapshotBody(t, NewFSM(FSMOptions{}, nil)),
	} {
		data := frameSnapshot(body)
		data[len(data)-1] ^= 0xff
		restoreMustFail(t, target, data, name)
		err := target.f.Restore(bytes.NewReader(data))
		if !strings.Contains(err.Error(), "checksum") {
			t.Fatalf("%s: refused with %q, want the checksum named", name, err)
		}
	}
	// With a valid checksum the nested body reaches the decoder, which
	// refuses it for its nesting.
	data := frameSnapshot(poisonedSnapshotBody(hostileSize))
	restoreMustFail(t, target, data, "nested, valid checksum")
	if err := target.f.Restore(bytes.NewReader(data)); !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("nested body: %v", err)
	}
}

// TestSnapshotTrailingBody checks that bytes after the body's last record
// are refused even under a valid checksum.
func TestSnapshotTrailingBody(t *testing.T) {
	body := append(snapshotBody(t, NewFSM(FSMOptions{}, nil)), 0xc0)
	restoreMustFail(t, richFSM(t), frameSnapshot(body), "trailing byte")
}

// FuzzRestoreBounded restores snapshots built around arbitrary bytes: as
// a whole framed snapshot, and as the body's meta record's appended field
// under a valid checksum. Seeded with deep nesting, none may crash, a
// refusal wraps ErrCorrupt and leaves the state as it was.
func FuzzRestoreBounded(f *testing.F) {
	for _, s := range nestedSeeds() {
		f.Add(s)
	}
	f.Add(fsmSnapshotBytes(f, NewFSM(FSMOptions{}, nil)))
	f.Fuzz(func(t *testing.T, b []byte) {
		var body bytes.Buffer
		body.WriteByte(0x97)
		for range 6 {
			body.WriteByte(0x01)
		}
		body.Write(b)
		body.Write([]byte{0x90, 0x90, 0x90, 0x90, 0x90})
		target := NewFSM(FSMOptions{}, nil)
		target.Apply(1, []Proposal{{Time: 5, Cmd: Command{Op: OpAdd, Name: "before", Delta: 1}}})
		for _, in := range [][]byte{b, frameSnapshot(body.Bytes())} {
			before := fsmMustHash(t, target)
			if err := target.Restore(bytes.NewReader(in)); err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error %v does not wrap ErrCorrupt", err)
				}
				if fsmMustHash(t, target) != before {
					t.Fatal("a refused snapshot changed the state")
				}
			}
		}
	})
}
