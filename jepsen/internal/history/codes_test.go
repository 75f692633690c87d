package history

import (
	"testing"

	"github.com/abacuskit/abacus/errcode"
)

// TestCodesAreTableNames: the refusal codes a history records are the names
// the HTTP API answers with, each naming its own sentinel.
func TestCodesAreTableNames(t *testing.T) {
	for _, tc := range []struct {
		code string
		err  error
	}{
		{CodeOverflow, errcode.ErrOverflow}, {CodeUnderflow, errcode.ErrUnderflow},
		{CodeOutOfRange, errcode.ErrOutOfRange}, {CodeLockHeld, errcode.ErrLockHeld},
		{CodeStaleToken, errcode.ErrStaleToken}, {CodeLeaseExpired, errcode.ErrLeaseExpired},
		{CodeNotFound, errcode.ErrNotFound}, {CodeInvalidArgument, errcode.ErrInvalidArgument},
	} {
		if got, ok := errcode.ByName(tc.code); !ok || got != tc.err {
			t.Errorf("code %q names %v, want %v", tc.code, got, tc.err)
		}
	}
	if CodeOutOfRange != "out_of_range" || CodeLockHeld != "lock_held" {
		t.Errorf("histories spell codes %q, %q", CodeOutOfRange, CodeLockHeld)
	}
}
