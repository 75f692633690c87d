package abacus

import (
	"bytes"
	"strings"
	"testing"
)

// poisonedSnapshotBody returns a snapshot body whose meta record carries
// one more field than it knows: arrays nested size bytes deep.
func poisonedSnapshotBody(size int) []byte {
	var buf bytes.Buffer
	buf.WriteByte(0x96) // the meta record, with six fields
	for range 5 {
		buf.WriteByte(0x01)
	}
	buf.Write(nested(fixArray1, size))
	buf.Write([]byte{0x90, 0x90, 0x90, 0x90}) // no counters, sessions, leases, locks
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
