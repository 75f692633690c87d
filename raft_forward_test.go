package abacus

import (
	"errors"
	"fmt"
	"testing"
)

func TestManyResponseRoundTrip(t *testing.T) {
	outs := []outcome{
		{res: Result{Value: 7, Exists: true, Revision: 3}},
		{err: fmt.Errorf("%w: no leader", ErrUnavailable)},
		{err: fmt.Errorf("%w: lost", ErrIndeterminate)},
		{err: fmt.Errorf("%w: bad name", ErrInvalidArgument)},
		{res: Result{Value: -1}},
	}
	got, err := decodeManyResponse(encodeManyResponse(outs), len(outs))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range outs {
		switch {
		case want.err == nil:
			if got[i].err != nil || got[i].res.Value != want.res.Value || got[i].res.Exists != want.res.Exists || got[i].res.Revision != want.res.Revision {
				t.Errorf("%d: got %+v, want %+v", i, got[i], want)
			}
		default:
			for _, s := range []error{ErrUnavailable, ErrIndeterminate, ErrInvalidArgument} {
				if errors.Is(want.err, s) != errors.Is(got[i].err, s) {
					t.Errorf("%d: got error %v, want one like %v", i, got[i].err, want.err)
				}
			}
		}
	}
	// A whole-call failure applies to every proposal.
	if _, err := decodeManyResponse(encodeResponse(nil, fmt.Errorf("%w: not the leader", ErrUnavailable)), 3); !errors.Is(err, ErrUnavailable) {
		t.Errorf("whole-call failure: %v", err)
	}
	// A count that does not match is corrupt, and the outcome unknown.
	if _, err := decodeManyResponse(encodeManyResponse(outs), len(outs)+1); !errors.Is(err, ErrIndeterminate) || !errors.Is(err, ErrCorrupt) {
		t.Errorf("wrong count: %v", err)
	}
}

func FuzzDecodeManyResponse(f *testing.F) {
	f.Add(encodeManyResponse([]outcome{{res: Result{Value: 1}}, {err: ErrUnavailable}}), 2)
	f.Add([]byte{statusOK, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, 1)
	f.Add([]byte{statusOK, 1, statusIndeterminate, 0xff, 0xff, 0x03}, 1)
	f.Fuzz(func(t *testing.T, b []byte, n int) {
		if n < 0 || n > maxForwardBatch {
			return
		}
		outs, err := decodeManyResponse(b, n)
		if err == nil && len(outs) != n {
			t.Fatalf("%d outcomes for %d proposals", len(outs), n)
		}
	})
}
