package history

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func sampleHistory() *History {
	return &History{
		Ops: []Op{
			{Index: 0, Process: 0, Node: "n1", Kind: Add, Key: "c", Call: 10, Return: 20, Outcome: Ok,
				In: Input{Delta: -3, Min: Int64(0), Max: Int64(100)}, Out: Output{Value: 4}},
			{Index: 1, Process: 1, Node: "n2", Kind: Add, Key: "c", Call: 11, Return: 30, Outcome: Ok,
				In: Input{Delta: 500, Max: Int64(0)}, Out: Output{Error: CodeOutOfRange}},
			{Index: 2, Process: 2, Node: "n3", Kind: Set, Key: "c", Call: 12, Return: 90, Outcome: Info,
				Reason: "504 indeterminate", In: Input{Value: 7, Fence: &Fence{Lock: "L", Token: 9}}},
			{Index: 3, Process: 3, Node: "n1", Kind: CAS, Key: "c", Call: 40, Return: 50, Outcome: Ok,
				In: Input{Old: 4, New: 5}, Out: Output{Swapped: true, Value: 5}},
			{Index: 4, Process: 0, Node: "n1", Kind: Get, Key: "c", Call: 60, Return: 61, Outcome: Ok,
				In: Input{Stale: true}, Out: Output{Value: 5, Exists: true}},
			{Index: 5, Process: 1, Node: "n2", Kind: Acquire, Key: "L", Call: 62, Return: 70, Outcome: Ok,
				In: Input{Holder: "w1", TTLMillis: 2000}, Out: Output{Token: 10}},
			{Index: 6, Process: 1, Node: "n2", Kind: Release, Key: "L", Call: 71, Return: 72, Outcome: Fail,
				Reason: "503 unavailable", In: Input{Token: 10}},
			{Index: 7, Process: 4, Node: "n3", Kind: LockGet, Key: "L", Call: 73, Return: 74, Outcome: Ok,
				Out: Output{Held: true, Holder: "w1", Token: 10}},
			{Index: 8, Process: 4, Node: "n3", Kind: Delete, Key: "c\n\"odd\" ключ", Call: 75, Return: 76, Outcome: Ok,
				Out: Output{Previous: -9223372036854775808}},
			{Index: 9, Process: 5, Node: "n1", Kind: InstanceCreate, Call: 77, Return: 78, Outcome: Ok,
				In: Input{TTLMillis: 30000}, Out: Output{Instance: "i-1"}},
			{Index: 10, Process: 5, Node: "n1", Kind: Add, Key: "c", Call: 79, Return: 80, Outcome: Ok,
				In: Input{Delta: 2, Instance: "i-1"}, Out: Output{Value: 2, InstanceValue: 2}},
			{Index: 11, Process: 5, Node: "n2", Kind: InstanceDelete, Key: "i-1", Call: 81, Return: 82, Outcome: Info, Reason: "reset"},
		},
		Faults: []FaultWindow{
			{Start: 15, End: 55, Description: "partition {n1} | {n2 n3}", Nodes: []string{"n1"}},
			{Start: 56, End: 56, Description: "kill n2"},
		},
	}
}

func TestJSONLinesRoundTrip(t *testing.T) {
	h := sampleHistory()
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := NewEncoder(&buf).WriteHistory(h); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(buf.String(), "\n"); n != len(h.Ops)+len(h.Faults) {
		t.Fatalf("wrote %d lines, want %d", n, len(h.Ops)+len(h.Faults))
	}
	got, err := Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Fatalf("round trip differs:\n got %+v\nwant %+v", got, h)
	}

	path := filepath.Join(t.TempDir(), "history.jsonl")
	if err := WriteFile(path, h); err != nil {
		t.Fatal(err)
	}
	got, err = ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Fatalf("file round trip differs")
	}
}

func TestDecoderRejects(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want error
	}{
		{"not json", "{op\n", ErrInvalid},
		{"unknown field", `{"op":{"index":0,"kind":"add","key":"c","outcome":"ok","bogus":1}}`, ErrInvalid},
		{"unknown kind", `{"op":{"index":0,"kind":"mul","key":"c","outcome":"ok"}}`, ErrInvalid},
		{"unknown outcome", `{"op":{"index":0,"kind":"add","key":"c","outcome":"maybe"}}`, ErrInvalid},
		{"return before call", `{"op":{"index":0,"kind":"add","key":"c","outcome":"ok","call":5,"return":4}}`, ErrInvalid},
		{"empty key", `{"op":{"index":0,"kind":"add","key":"","outcome":"ok"}}`, ErrInvalid},
		{"fence on read", `{"op":{"index":0,"kind":"get","key":"c","outcome":"ok","in":{"fence":{"lock":"L","token":1}}}}`, ErrInvalid},
		{"both", `{"op":{"index":0,"kind":"add","key":"c","outcome":"ok"},"fault":{"start":1,"end":2}}`, ErrInvalid},
		{"neither", `{}`, ErrInvalid},
		{"fault backwards", `{"fault":{"start":5,"end":4,"description":"x"}}`, ErrInvalid},
		{"index gap", `{"op":{"index":1,"kind":"add","key":"c","outcome":"ok"}}`, ErrInvalid},
		{"line too long", `{"fault":{"description":"` + strings.Repeat("x", MaxLineBytes) + `"}}`, ErrLineTooLong},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(strings.NewReader(tt.in))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Read = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDecoderSkipsBlankLinesAndReadsLastLineWithoutNewline(t *testing.T) {
	in := "\n  \n" + `{"op":{"index":0,"kind":"get","key":"c","outcome":"ok","out":{"value":3,"exists":true}}}` +
		"\n\n" + `{"fault":{"start":1,"end":2,"description":"x"}}`
	d := NewDecoder(strings.NewReader(in))
	op, _, err := d.Next()
	if err != nil || op == nil || op.Out.Value != 3 {
		t.Fatalf("first record = %+v, %v", op, err)
	}
	_, f, err := d.Next()
	if err != nil || f == nil || f.End != 2 {
		t.Fatalf("second record = %+v, %v", f, err)
	}
	if _, _, err := d.Next(); !errors.Is(err, io.EOF) {
		t.Fatalf("third Next = %v, want EOF", err)
	}
}

func TestRecorderConcurrent(t *testing.T) {
	rec := NewRecorder()
	const clients, each = 8, 50
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				p := rec.Invoke(c, "n1", Add, "c", Input{Delta: 1})
				switch i % 3 {
				case 0:
					p.Ok(Output{Value: int64(i)})
				case 1:
					p.Fail("503")
				default:
					p.Info("timeout")
				}
				p.Ok(Output{Value: -1}) // a second completion is ignored
			}
		}()
	}
	f := rec.OpenFault("partition", "n1", "n2")
	pending := rec.Invoke(99, "n2", Get, "c", Input{})
	wg.Wait()
	rec.CloseFault(f)
	rec.CloseFault(f) // closing twice keeps the first end
	h := rec.History()
	if err := h.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(h.Ops) != clients*each+1 {
		t.Fatalf("%d ops, want %d", len(h.Ops), clients*each+1)
	}
	counts := map[Outcome]int{}
	for i := range h.Ops {
		op := &h.Ops[i]
		counts[op.Outcome]++
		if op.Outcome == Ok && op.Out.Value < 0 {
			t.Fatalf("second completion overwrote op %d", i)
		}
	}
	if counts[Ok] != clients*17 || counts[Fail] != clients*17 || counts[Info] != clients*16+1 {
		t.Fatalf("outcome counts %v", counts)
	}
	if op := h.Ops[pending.Index()]; op.Outcome != Info || op.Reason != "pending" {
		t.Fatalf("pending op recorded as %+v", op)
	}
	if len(h.Faults) != 1 || h.Faults[0].Open() || h.Faults[0].End < h.Faults[0].Start || len(h.Faults[0].Nodes) != 2 {
		t.Fatalf("faults %+v", h.Faults)
	}
	// The snapshot is a copy: completing the pending op later does not change it.
	pending.Ok(Output{Value: 1, Exists: true})
	if h.Ops[pending.Index()].Outcome != Info {
		t.Fatal("History snapshot changed after a later completion")
	}
	if got := rec.History().Ops[pending.Index()]; got.Outcome != Ok {
		t.Fatalf("later completion not recorded: %+v", got)
	}
}

func FuzzDecoder(f *testing.F) {
	var buf bytes.Buffer
	if err := NewEncoder(&buf).WriteHistory(sampleHistory()); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(`{"op":{"index":0}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := Read(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := h.Validate(); err != nil {
			t.Fatalf("Read accepted a history that fails Validate: %v", err)
		}
		var once, twice bytes.Buffer
		if err := NewEncoder(&once).WriteHistory(h); err != nil {
			t.Fatal(err)
		}
		h2, err := Read(bytes.NewReader(once.Bytes()))
		if err != nil {
			t.Fatalf("re-reading an encoded history: %v", err)
		}
		if err := NewEncoder(&twice).WriteHistory(h2); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(once.Bytes(), twice.Bytes()) {
			t.Fatalf("encoding is not stable:\n%s\n%s", once.Bytes(), twice.Bytes())
		}
	})
}
