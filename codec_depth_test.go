package abacus

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// hostileSize is the size of the nested inputs below: under the peer
// port's frame limit, and far deeper than any stack a recursive skip
// could use.
const hostileSize = 12 << 20

// nested returns a msgpack value of arrays nested inside each other, each
// level written as header (an array of one element), around a nil, in
// about size bytes.
func nested(header []byte, size int) []byte {
	b := bytes.Repeat(header, size/len(header))
	return append(b, 0xc0)
}

// Array headers of one element: fixarray, array16 and array32.
var (
	fixArray1 = []byte{0x91}
	array16x1 = []byte{0xdc, 0x00, 0x01}
	array32x1 = []byte{0xdd, 0x00, 0x00, 0x00, 0x01}
	fixMap1   = []byte{0x81, 0xc0} // a map of one entry: nil key, then the value
)

// entryWithExtra encodes one proposal as a newer writer might, with one
// more trailing field after its known ones: the raw msgpack value extra.
// inCommand puts the field in the command instead.
func entryWithExtra(t testing.TB, extra []byte, inCommand bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte(entryVersion)
	enc := msgpack.NewEncoder(&buf)
	e := &encoder{Encoder: enc}
	e.arrayLen(1)
	e.arrayLen(proposalFields + 1)
	e.uint(7)
	e.uint(1)
	e.uint(1)
	e.int(5)
	fields := commandFields
	if inCommand {
		fields++
	}
	e.arrayLen(fields)
	e.uint(uint64(OpAdd))
	e.uint(0)
	e.str("hits")
	e.int(1)
	e.int(0) // value
	e.int(0) // old
	e.int(0) // min
	e.int(0) // max
	e.str("")
	e.uint(0) // fence token
	e.uint(0) // instance
	e.int(0)  // ttl
	e.uint(0) // lease
	e.str("")
	e.uint(0) // token
	e.int(0)  // delay
	e.arrayLen(0)
	if e.err != nil {
		t.Fatal(e.err)
	}
	if inCommand {
		buf.Write(extra)
		buf.Write([]byte{0xc4, 0x00}) // no idempotency key
		buf.WriteByte(0xc0)           // the proposal's extra field
		return buf.Bytes()
	}
	buf.Write([]byte{0xc4, 0x00}) // no idempotency key
	buf.Write(extra)
	return buf.Bytes()
}

// resultsWithExtra encodes one result with one more trailing field.
func resultsWithExtra(t testing.TB, extra []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	e := &encoder{Encoder: enc}
	e.arrayLen(1)
	e.arrayLen(resultFields + 1)
	for range 4 {
		e.int(0)
	}
	e.bool(false)
	e.bool(false)
	for range 5 {
		e.int(0)
	}
	e.str("")
	e.int(0)
	e.arrayLen(0)
	if e.err != nil {
		t.Fatal(e.err)
	}
	buf.Write(extra)
	return buf.Bytes()
}

// TestCodecDeepNestingRefused decodes entries and results whose unknown
// trailing field nests arrays (or maps) millions deep. A recursive skip
// overflows the goroutine stack on them, a fatal error that kills the
// process; the decoder must refuse them with ErrCorrupt instead.
func TestCodecDeepNestingRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		header []byte
	}{
		{"fixarray", fixArray1},
		{"array16", array16x1},
		{"array32", array32x1},
		{"map", fixMap1},
	} {
		deep := nested(tc.header, hostileSize)
		for _, inCommand := range []bool{false, true} {
			_, err := DecodeEntry(entryWithExtra(t, deep, inCommand))
			wantDepthError(t, tc.name+" entry", err)
		}
		_, err := DecodeResults(resultsWithExtra(t, deep))
		wantDepthError(t, tc.name+" results", err)
	}
}

func wantDepthError(t *testing.T, what string, err error) {
	t.Helper()
	wantCodecCorrupt(t, what, err)
	if !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("%s: error %q does not name the nesting", what, err)
	}
}

// TestCodecSkipsBoundedNesting checks that unknown fields a newer writer
// may append are still skipped when they nest within the bound, however
// wide they are.
func TestCodecSkipsBoundedNesting(t *testing.T) {
	want := Proposal{Client: 7, Seq: 1, Ack: 1, Time: 5, Cmd: Command{Op: OpAdd, Name: "hits", Delta: 1}}
	wide := append([]byte{0xdd, 0x00, 0x01, 0x00, 0x00}, bytes.Repeat([]byte{0xc0}, 1<<16)...)
	for name, extra := range map[string][]byte{
		"nested to the limit": nested(fixArray1, maxSkipDepth),
		"maps to the limit":   nested(fixMap1, 2*maxSkipDepth),
		"wide":                wide,
		"scalar":              {0xa3, 'n', 'e', 'w'},
	} {
		for _, inCommand := range []bool{false, true} {
			got, err := DecodeEntry(entryWithExtra(t, extra, inCommand))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], want) {
				t.Fatalf("%s: got %+v", name, got)
			}
		}
	}
	_, err := DecodeEntry(entryWithExtra(t, nested(fixArray1, maxSkipDepth+1), false))
	wantDepthError(t, "one level too deep", err)
}

// TestCodecTruncatedSkip checks that a declared count with nothing behind
// it ends the skip at the end of the input.
func TestCodecTruncatedSkip(t *testing.T) {
	for _, extra := range [][]byte{
		{0xdd, 0xff, 0xff, 0xff, 0xff},
		{0xdf, 0xff, 0xff, 0xff, 0xff},
		{0xdb, 0xff, 0xff, 0xff, 0xff},
		{0x91, 0x91, 0x91},
	} {
		_, err := DecodeEntry(entryWithExtra(t, extra, false))
		if err == nil || !errors.Is(err, ErrCorrupt) {
			t.Fatalf("% x: %v", extra, err)
		}
	}
}

// nestedSeeds are deeply nested inputs for the fuzz targets of every
// decoder of peer input: each kind of array and map header, hundreds of
// thousands of levels deep (kept under the fuzzer's 1 MB input size; the
// tests above use the full hostileSize), and one level past the skip
// bound.
func nestedSeeds() [][]byte {
	return [][]byte{
		nested(fixArray1, 1<<19),
		nested(array16x1, 1<<19),
		nested(array32x1, 1<<19),
		nested(fixMap1, 1<<19),
		nested(fixArray1, maxSkipDepth+1),
	}
}

// FuzzDecodeNested feeds the entry, results and member decoders inputs
// that carry arbitrary values where a newer writer may append fields:
// none may crash, and every refusal wraps ErrCorrupt.
func FuzzDecodeNested(f *testing.F) {
	for _, s := range nestedSeeds() {
		f.Add(s)
	}
	f.Add([]byte{0xa3, 'n', 'e', 'w'})
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, extra []byte) {
		for _, inCommand := range []bool{false, true} {
			if _, err := DecodeEntry(entryWithExtra(t, extra, inCommand)); err != nil && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("entry: error %v does not wrap ErrCorrupt", err)
			}
		}
		if _, err := DecodeResults(resultsWithExtra(t, extra)); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("results: error %v does not wrap ErrCorrupt", err)
		}
		member := append([]byte{0x81, 0xa1, 'x'}, extra...)
		if _, err := decodeMember(member); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("member: error %v does not wrap ErrCorrupt", err)
		}
		if _, err := decodeMember(extra); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("member: error %v does not wrap ErrCorrupt", err)
		}
	})
}

// FuzzForwardResponse feeds a follower's decoders of the leader's answers
// arbitrary bytes, seeded with results whose appended field nests deeply:
// none may crash, and every error says the outcome is unknown or carries
// the leader's own error.
func FuzzForwardResponse(f *testing.F) {
	for _, s := range nestedSeeds() {
		rb := resultsWithExtra(f, s)
		f.Add(append([]byte{statusOK}, rb...))
		many := binary.AppendUvarint([]byte{statusOK}, 1)
		f.Add(append(append(many, statusOK), rb...))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := decodeResponse(b); err == nil {
			return
		}
		outs, err := decodeManyResponse(b, 1)
		if err == nil && len(outs) != 1 {
			t.Fatalf("%d outcomes for one proposal", len(outs))
		}
	})
}

// TestMemberDecoding checks a forwarded member round-trips, and that a
// member with appended fields nested within the bound still decodes.
func TestMemberDecoding(t *testing.T) {
	want := Member{ID: "n4", Addr: "127.0.0.1:7000", Voter: true}
	b, err := msgpack.Marshal(&want)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMember(b)
	if err != nil || got != want {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	withExtra := append([]byte{b[0] + 1}, b[1:]...) // one more map entry
	withExtra = append(append(withExtra, 0xa1, 'x'), nested(fixArray1, maxSkipDepth-1)...)
	if got, err := decodeMember(withExtra); err != nil || got != want {
		t.Fatalf("with a nested unknown field: %+v, %v", got, err)
	}
	deep := append(append([]byte{b[0] + 1}, b[1:]...), 0xa1, 'x')
	deep = append(deep, nested(fixArray1, hostileSize)...)
	if _, err := decodeMember(deep); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("deeply nested member: %v", err)
	}
	if _, err := decodeMember(append(b, 0xc0)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("trailing bytes: %v", err)
	}
}
