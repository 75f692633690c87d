package abacus

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

func codecSampleProposals() []Proposal {
	props := []Proposal{
		{},
		{Client: math.MaxUint64, Seq: math.MaxUint64, Ack: math.MaxUint64, Time: math.MinInt64, Cmd: Command{
			Op: OpAdd, Flags: FlagMin | FlagMax, Name: strings.Repeat("é", MaxNameLen/2), Delta: math.MinInt64,
			Value: math.MaxInt64, Old: -1, Min: math.MinInt64, Max: math.MaxInt64,
			FenceLock: "lock", FenceToken: math.MaxUint64, Instance: 3, TTL: MaxTTL, Lease: 9,
			Holder: strings.Repeat("h", MaxHolderLen), Token: 12, Delay: time.Second,
		}},
		{Client: 1, Seq: 2, Ack: 1, Time: 12345, Cmd: Command{Op: OpBatch, Ops: []Command{
			{Op: OpAdd, Name: "a", Delta: 1}, {Op: OpCompareAndSet, Name: "b", Old: 1, Value: 2},
		}}},
	}
	g := newFSMGen(3)
	for range 200 {
		props = append(props, g.proposal())
	}
	return props
}

func TestCodecEntryRoundTrip(t *testing.T) {
	props := codecSampleProposals()
	b, err := EncodeEntry(props)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEntry(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, props) {
		for i := range props {
			if !reflect.DeepEqual(got[i], props[i]) {
				t.Fatalf("proposal %d: got %+v, want %+v", i, got[i], props[i])
			}
		}
		t.Fatal("decoded entry differs")
	}
	// Encoding is deterministic.
	b2, _ := EncodeEntry(got)
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
	// An empty entry is valid.
	b, _ = EncodeEntry(nil)
	if got, err := DecodeEntry(b); err != nil || len(got) != 0 {
		t.Fatalf("empty entry: %v, %v", got, err)
	}
}

func codecSampleResults(t testing.TB) []Result {
	t.Helper()
	rs := []Result{
		{Index: -1},
		{Code: CodeLockHeld, Value: math.MinInt64, Previous: math.MaxInt64, Mine: -1, Exists: true, Swapped: true,
			Revision: math.MaxUint64, Token: 7, Lease: 8, TTL: MaxTTL, Remaining: -time.Second,
			Holder: strings.Repeat("h", MaxHolderLen), Index: 1023},
		{Index: -1, Results: []Result{{Value: 1, Index: -1}, {Value: 2, Exists: true, Index: -1}}},
	}
	g := newFSMGen(4)
	f := NewFSM(FSMOptions{}, nil)
	for i := range 100 {
		rs = append(rs, f.Apply(uint64(i+1), g.entry())...)
	}
	return rs
}

func TestCodecResultsRoundTrip(t *testing.T) {
	rs := codecSampleResults(t)
	b, err := EncodeResults(rs)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeResults(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, rs) {
		t.Fatal("decoded results differ")
	}
}

// encodeWithExtras encodes a proposal as a newer writer might: every array
// carries extra trailing fields of assorted types.
func encodeWithExtras(t *testing.T, p *Proposal) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.WriteByte(entryVersion)
	enc := msgpack.NewEncoder(&buf)
	e := &encoder{Encoder: enc}
	extras := func() {
		e.str("new field")
		if e.err == nil {
			e.err = enc.Encode(map[string]any{"nested": []any{1, "two", 3.5, nil, true}})
		}
		e.int(-77)
	}
	var cmd func(c *Command)
	cmd = func(c *Command) {
		e.arrayLen(commandFields + 3)
		e.uint(uint64(c.Op))
		e.uint(uint64(c.Flags))
		e.str(c.Name)
		e.int(c.Delta)
		e.int(c.Value)
		e.int(c.Old)
		e.int(c.Min)
		e.int(c.Max)
		e.str(c.FenceLock)
		e.uint(c.FenceToken)
		e.uint(c.Instance)
		e.int(int64(c.TTL))
		e.uint(c.Lease)
		e.str(c.Holder)
		e.uint(c.Token)
		e.int(int64(c.Delay))
		e.arrayLen(len(c.Ops))
		for i := range c.Ops {
			cmd(&c.Ops[i])
		}
		extras()
	}
	e.arrayLen(1)
	e.arrayLen(proposalFields + 3)
	e.uint(p.Client)
	e.uint(p.Seq)
	e.uint(p.Ack)
	e.int(p.Time)
	cmd(&p.Cmd)
	if e.err == nil {
		e.err = enc.EncodeBytes(p.Key[:])
	}
	extras()
	if e.err != nil {
		t.Fatal(e.err)
	}
	return buf.Bytes()
}

func TestCodecForwardCompatible(t *testing.T) {
	for _, p := range codecSampleProposals()[:3] {
		b := encodeWithExtras(t, &p)
		got, err := DecodeEntry(b)
		if err != nil {
			t.Fatalf("entry with appended fields: %v", err)
		}
		if len(got) != 1 || !reflect.DeepEqual(got[0], p) {
			t.Fatalf("got %+v, want %+v", got, p)
		}
	}
	// Results with appended fields.
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	e := &encoder{Encoder: enc}
	e.arrayLen(1)
	e.arrayLen(resultFields + 2)
	for _, v := range []int64{int64(CodeOverflow), 5, 4, 3} {
		e.int(v)
	}
	e.bool(true)
	e.bool(false)
	e.uint(10)
	e.uint(11)
	e.uint(12)
	e.int(13)
	e.int(14)
	e.str("holder")
	e.int(2)
	e.arrayLen(0)
	e.str("future")
	e.arrayLen(2)
	e.int(1)
	e.int(2)
	if e.err != nil {
		t.Fatal(e.err)
	}
	rs, err := DecodeResults(buf.Bytes())
	want := Result{Code: CodeOverflow, Value: 5, Previous: 4, Mine: 3, Exists: true, Revision: 10, Token: 11,
		Lease: 12, TTL: 13, Remaining: 14, Holder: "holder", Index: 2}
	if err != nil || len(rs) != 1 || !reflect.DeepEqual(rs[0], want) {
		t.Fatalf("results with appended fields: %+v, %v", rs, err)
	}
}

func wantCodecCorrupt(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: decoded without error", what)
	}
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("%s: error %v does not wrap ErrCorrupt", what, err)
	}
}

func TestCodecRejects(t *testing.T) {
	good, err := EncodeEntry(codecSampleProposals()[:3])
	if err != nil {
		t.Fatal(err)
	}
	for n := range len(good) {
		_, err := DecodeEntry(good[:n])
		wantCodecCorrupt(t, "entry prefix "+fsmItoa(n), err)
	}
	_, err = DecodeEntry(append(fsmCopyBytes(good), 0xc0))
	wantCodecCorrupt(t, "trailing byte", err)
	bad := fsmCopyBytes(good)
	bad[0] = entryVersion + 1
	_, err = DecodeEntry(bad)
	wantCodecCorrupt(t, "unknown version", err)

	goodRes, _ := EncodeResults(codecSampleResults(t)[:3])
	for n := range len(goodRes) {
		_, err := DecodeResults(goodRes[:n])
		wantCodecCorrupt(t, "results prefix "+fsmItoa(n), err)
	}
	_, err = DecodeResults(append(fsmCopyBytes(goodRes), 1))
	wantCodecCorrupt(t, "results trailing byte", err)

	build := func(fn func(e *encoder)) []byte {
		var buf bytes.Buffer
		buf.WriteByte(entryVersion)
		e := &encoder{Encoder: msgpack.NewEncoder(&buf)}
		fn(e)
		return buf.Bytes()
	}
	command := func(e *encoder, op Op, name string, ops int) {
		e.arrayLen(commandFields)
		e.uint(uint64(op))
		e.uint(0)
		e.str(name)
		for range 5 {
			e.int(0)
		}
		e.str("")
		e.uint(0)
		e.uint(0)
		e.int(0)
		e.uint(0)
		e.str("")
		e.uint(0)
		e.int(0)
		e.arrayLen(ops)
	}
	proposal := func(e *encoder) {
		e.arrayLen(proposalFields)
		for range 4 {
			e.uint(0)
		}
	}
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"too many proposals", build(func(e *encoder) { e.arrayLen(MaxEntryProposals + 1) })},
		{"huge proposal count", build(func(e *encoder) { e.arrayLen(math.MaxInt32) })},
		{"nil array", build(func(e *encoder) { _ = e.EncodeNil() })},
		{"not an array", build(func(e *encoder) { e.str("x") })},
		{"too few fields", build(func(e *encoder) { e.arrayLen(1); e.arrayLen(proposalFields - 1) })},
		{"oversize batch", build(func(e *encoder) {
			e.arrayLen(1)
			proposal(e)
			command(e, OpBatch, "", MaxBatchOps+1)
		})},
		{"nested batch", build(func(e *encoder) {
			e.arrayLen(1)
			proposal(e)
			command(e, OpBatch, "", 1)
			command(e, OpBatch, "", 1)
			command(e, OpAdd, "a", 0)
		})},
		{"long name", build(func(e *encoder) {
			e.arrayLen(1)
			proposal(e)
			command(e, OpAdd, strings.Repeat("n", MaxNameLen+1), 0)
		})},
		{"op out of range", build(func(e *encoder) {
			e.arrayLen(1)
			proposal(e)
			e.arrayLen(commandFields)
			e.uint(256)
		})},
	}
	for _, tc := range cases {
		_, err := DecodeEntry(tc.b)
		wantCodecCorrupt(t, tc.name, err)
	}

	res := func(fn func(e *encoder)) []byte {
		var buf bytes.Buffer
		e := &encoder{Encoder: msgpack.NewEncoder(&buf)}
		fn(e)
		return buf.Bytes()
	}
	result := func(e *encoder, nested int) {
		e.arrayLen(resultFields)
		for range 4 {
			e.int(0)
		}
		e.bool(false)
		e.bool(false)
		for range 3 {
			e.uint(0)
		}
		e.int(0)
		e.int(0)
		e.str("")
		e.int(-1)
		e.arrayLen(nested)
	}
	for _, tc := range []struct {
		name string
		b    []byte
	}{
		{"too many results", res(func(e *encoder) { e.arrayLen(MaxEntryProposals + 1) })},
		{"oversize nested results", res(func(e *encoder) { e.arrayLen(1); result(e, MaxBatchOps+1) })},
		{"doubly nested results", res(func(e *encoder) {
			e.arrayLen(1)
			result(e, 1)
			result(e, 1)
			result(e, 0)
		})},
		{"bool as int", res(func(e *encoder) {
			e.arrayLen(1)
			e.arrayLen(resultFields)
			for range 5 {
				e.int(0)
			}
		})},
	} {
		_, err := DecodeResults(tc.b)
		wantCodecCorrupt(t, tc.name, err)
	}
}

func fsmCopyBytes(b []byte) []byte { return append([]byte(nil), b...) }

func FuzzDecodeEntry(f *testing.F) {
	props := codecSampleProposals()
	for i := 0; i < len(props); i += 20 {
		b, err := EncodeEntry(props[i:min(i+20, len(props))])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{entryVersion})
	f.Add([]byte{entryVersion, 0x91, 0x96})
	f.Fuzz(func(t *testing.T, b []byte) {
		props, err := DecodeEntry(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		// What decodes re-encodes to something that decodes the same.
		enc, err := EncodeEntry(props)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := DecodeEntry(enc)
		if err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		if !reflect.DeepEqual(props, again) {
			t.Fatalf("round trip differs:\n%+v\n%+v", props, again)
		}
	})
}

func FuzzDecodeResults(f *testing.F) {
	rs := codecSampleResults(f)
	for i := 0; i < len(rs); i += 30 {
		b, err := EncodeResults(rs[i:min(i+30, len(rs))])
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x90})
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := DecodeResults(b)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		enc, err := EncodeResults(rs)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := DecodeResults(enc)
		if err != nil {
			t.Fatalf("decode of re-encoding: %v", err)
		}
		if !reflect.DeepEqual(rs, again) {
			t.Fatalf("round trip differs:\n%+v\n%+v", rs, again)
		}
	})
}

// TestCodecAllocationBounded checks a short input cannot make the decoder
// reserve memory for the element counts it merely declares.
func TestCodecAllocationBounded(t *testing.T) {
	count := []byte{0xdd, 0x00, 0x01, 0x00, 0x00} // array32 of MaxEntryProposals
	inputs := []struct {
		name   string
		decode func() error
	}{
		{"entry", func() error {
			_, err := DecodeEntry(append([]byte{entryVersion}, count...))
			return err
		}},
		{"results", func() error {
			_, err := DecodeResults(count)
			return err
		}},
		{"batch", func() error {
			// One proposal whose batch declares MaxBatchOps operations.
			var buf bytes.Buffer
			buf.WriteByte(entryVersion)
			e := &encoder{Encoder: msgpack.NewEncoder(&buf)}
			e.arrayLen(1)
			e.arrayLen(proposalFields)
			for range 4 {
				e.uint(0)
			}
			e.arrayLen(commandFields)
			e.uint(uint64(OpBatch))
			e.uint(0)
			e.str("")
			for range 5 {
				e.int(0)
			}
			e.str("")
			e.uint(0)
			e.uint(0)
			e.int(0)
			e.uint(0)
			e.str("")
			e.uint(0)
			e.int(0)
			e.arrayLen(MaxBatchOps)
			_, err := DecodeEntry(buf.Bytes())
			return err
		}},
	}
	for _, in := range inputs {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		err := in.decode()
		runtime.ReadMemStats(&after)
		wantCodecCorrupt(t, in.name, err)
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
			t.Errorf("%s: decoding a few bytes allocated %d bytes", in.name, grew)
		}
	}
}

// TestCodecMalformedInputDoesNotAccumulate decodes, again and again, a short
// entry whose name declares a long string. Each attempt may reserve a
// bounded buffer, but nothing may carry over to the next: a pooled decoder
// that kept its grown buffer made every later attempt allocate more.
func TestCodecMalformedInputDoesNotAccumulate(t *testing.T) {
	var buf bytes.Buffer
	buf.WriteByte(entryVersion)
	e := &encoder{Encoder: msgpack.NewEncoder(&buf)}
	e.arrayLen(1)
	e.arrayLen(proposalFields)
	for range 4 {
		e.uint(0)
	}
	e.arrayLen(commandFields)
	e.uint(uint64(OpAdd))
	e.uint(0)
	if e.err != nil {
		t.Fatal(e.err)
	}
	// The name: a str32 of 64 MiB with only a few bytes present.
	entry := append(buf.Bytes(), 0xdb, 0x04, 0x00, 0x00, 0x00)
	entry = append(entry, bytes.Repeat([]byte{'a'}, 32)...)
	results := []byte{0x91, 0xdc, 0x00, byte(resultFields), 0, 0, 0, 0, 0xc2, 0xc2, 0, 0, 0, 0, 0, 0xdb, 0x04, 0x00, 0x00, 0x00, 'h'}
	for _, tc := range []struct {
		name   string
		decode func() error
	}{
		{"entry", func() error { _, err := DecodeEntry(entry); return err }},
		{"results", func() error { _, err := DecodeResults(results); return err }},
	} {
		var most uint64
		for i := range 30 {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			err := tc.decode()
			runtime.ReadMemStats(&after)
			wantCodecCorrupt(t, tc.name, err)
			grew := after.TotalAlloc - before.TotalAlloc
			most = max(most, grew)
			if grew > 8<<20 {
				t.Fatalf("%s: attempt %d allocated %d bytes", tc.name, i, grew)
			}
		}
		t.Logf("%s: at most %d bytes per attempt", tc.name, most)
	}
}
