package wmvc

import (
	"bytes"
	"errors"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

func sampleMessages() []Message {
	a := valueFor(42, "A")
	d := a.Digest()
	return []Message{
		{Kind: KindProposal, Slot: 42, Value: a},
		{Kind: KindProposal, Slot: 42, Ask: true},
		{Kind: KindProposal, Slot: 0, Value: &Value{}},
		{Kind: KindState, Slot: 1 << 62, Phase: 1, Bit: 1, HasDigest: true, Digest: d},
		{Kind: KindState, Slot: 7, Phase: 1 << 31, Bit: 0, Ask: true},
		{Kind: KindVote, Slot: 7, Phase: 3, Bit: VoteUnknown, HasDigest: true, Digest: d},
		{Kind: KindVote, Slot: 7, Phase: 3, Bit: 0},
		{Kind: KindDecision, Slot: 42, Bit: 1, HasDigest: true, Digest: d, Value: a},
		{Kind: KindDecision, Slot: 42, Bit: 1, HasDigest: true, Digest: d},
		{Kind: KindDecision, Slot: 43},
		{Kind: KindCatchUp, Slot: 42, HasDigest: true, Digest: d},
		{Kind: KindCatchUp, Slot: 44},
	}
}

func equalMessages(a, b Message) bool {
	av, bv := a.Value, b.Value
	a.Value, b.Value = nil, nil
	if a != b {
		return false
	}
	if (av == nil) != (bv == nil) {
		return false
	}
	return av == nil || (bytes.Equal(av.ID, bv.ID) && bytes.Equal(av.Payload, bv.Payload))
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeMessage(b, 0)
		if err != nil {
			t.Fatalf("%+v: %v", m, err)
		}
		if !equalMessages(got, m) {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
	}
}

// encodeRaw builds a message body by hand, to make inputs the encoder never
// produces.
func encodeRaw(t *testing.T, fields ...any) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte(wireVersion)
	enc := msgpack.NewEncoder(&buf)
	if err := enc.EncodeArrayLen(len(fields)); err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		if err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func TestDecodeMessageRejects(t *testing.T) {
	good, err := (&Message{Kind: KindProposal, Slot: 1, Value: valueFor(1, "A")}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	// A bin32 header claiming 4 GiB with nothing behind it.
	huge := []byte{wireVersion, 0x97, 1, 1, 0, 0, 0xc2, 0xc0, 0x92, 0xc6, 0xff, 0xff, 0xff, 0xff}
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{9}, good[1:]...)},
		{"truncated", good[:len(good)-3]},
		{"trailing bytes", append(append([]byte{}, good...), 0)},
		{"not an array", []byte{wireVersion, 0x01}},
		{"too few fields", encodeRaw(t, uint8(KindProposal), uint64(1))},
		{"too many fields", encodeRaw(t, uint8(KindProposal), uint64(1), uint32(0), uint8(0), false, nil, nil, nil)},
		{"unknown kind", encodeRaw(t, uint8(77), uint64(1), uint32(0), uint8(0), false, nil, nil)},
		{"short digest", encodeRaw(t, uint8(KindState), uint64(1), uint32(1), uint8(1), false, []byte{1, 2, 3}, nil)},
		{"value with three fields", encodeRaw(t, uint8(KindProposal), uint64(1), uint32(0), uint8(0), false, nil, []any{[]byte("a"), []byte("b"), []byte("c")})},
		{"id too long", encodeRaw(t, uint8(KindProposal), uint64(1), uint32(0), uint8(0), false, nil, []any{make([]byte, MaxIDLen+1), []byte("p")})},
		{"huge payload length", huge},
		{"slot is a string", encodeRaw(t, uint8(KindProposal), "one", uint32(0), uint8(0), false, nil, nil)},
		{"state without phase", encodeRaw(t, uint8(KindState), uint64(1), uint32(0), uint8(1), false, nil, nil)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := DecodeMessage(tc.b, 0); !errors.Is(err, ErrMalformed) {
				t.Fatalf("got %v, want ErrMalformed", err)
			}
		})
	}
	// The payload bound is the caller's.
	big, err := (&Message{Kind: KindProposal, Slot: 1, Value: &Value{Payload: make([]byte, 100)}}).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeMessage(big, 99); !errors.Is(err, ErrMalformed) {
		t.Fatalf("payload over bound: %v", err)
	}
	if _, err := DecodeMessage(big, 100); err != nil {
		t.Fatalf("payload at bound: %v", err)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{wireVersion, 0x97, 1, 1, 0, 0, 0xc2, 0xc0, 0x92, 0xc6, 0xff, 0xff, 0xff, 0xff})
	// Deep nesting, in place of the message and of its value.
	deep := bytes.Repeat([]byte{0x91}, 1<<19)
	f.Add(append([]byte{wireVersion}, deep...))
	f.Add(append([]byte{wireVersion, 0x97, 1, 1, 0, 0, 0xc2, 0xc0}, deep...))
	f.Add(append([]byte{wireVersion, 0x97, 1, 1, 0, 0, 0xc2, 0xc0, 0x92}, deep...))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := DecodeMessage(b, 1<<16)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Whatever decodes is valid, re-encodes, and decodes the same.
		if err := m.Validate(1 << 16); err != nil {
			t.Fatalf("decoded an invalid message: %v", err)
		}
		b2, err := m.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		m2, err := DecodeMessage(b2, 1<<16)
		if err != nil || !equalMessages(m, m2) {
			t.Fatalf("re-decode: %+v %v, want %+v", m2, err, m)
		}
		// And an engine absorbs it without panicking.
		e, err := NewEngine(Config{ID: 0, N: 3, Secret: testSecret, MaxPayload: 1 << 16})
		if err != nil {
			t.Fatal(err)
		}
		if err := e.Step(1, m); err != nil {
			t.Fatalf("valid message refused: %v", err)
		}
		e.Tick()
	})
}

// TestAppendBinary: appending to a header gives the header followed by
// exactly what MarshalBinary gives.
func TestAppendBinary(t *testing.T) {
	m := Message{Kind: KindProposal, Slot: 9, Value: valueFor(9, "A")}
	want, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.AppendBinary([]byte{0xee})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 0xee || !bytes.Equal(got[1:], want) {
		t.Fatalf("appended %x, want ee%x", got, want)
	}
}
