package abacus

import (
	"errors"
	"fmt"
	"testing"

	"github.com/abacuskit/abacus/errcode"
)

// TestErrorsAreErrcodes: the root's sentinels are errcode's own values, so
// errors.Is matches across the two packages (and package client, which
// re-exports errcode's too).
func TestErrorsAreErrcodes(t *testing.T) {
	for _, e := range errcode.Table() {
		wrapped := fmt.Errorf("call: %w", e.Err)
		if e.Code != CodeOK {
			wrapped = &OpError{Code: e.Code, Index: -1}
		}
		if !errors.Is(wrapped, e.Err) {
			t.Errorf("%s: errors.Is(%v, %v) = false", e.Name, wrapped, e.Err)
		}
	}
	for _, pair := range [][2]error{
		{ErrInvalidArgument, errcode.ErrInvalidArgument}, {ErrOverflow, errcode.ErrOverflow},
		{ErrUnderflow, errcode.ErrUnderflow}, {ErrOutOfRange, errcode.ErrOutOfRange},
		{ErrMismatch, errcode.ErrMismatch}, {ErrStaleToken, errcode.ErrStaleToken},
		{ErrLockHeld, errcode.ErrLockHeld}, {ErrNotFound, errcode.ErrNotFound},
		{ErrLeaseExpired, errcode.ErrLeaseExpired}, {ErrStaleSequence, errcode.ErrStaleSequence},
		{ErrSessionExpired, errcode.ErrSessionExpired}, {ErrTooManyInFlight, errcode.ErrTooManyInFlight},
		{ErrLimitReached, errcode.ErrLimitReached}, {ErrUnavailable, errcode.ErrUnavailable},
		{ErrIndeterminate, errcode.ErrIndeterminate}, {ErrClosed, errcode.ErrClosed},
		{ErrNoLeader, errcode.ErrNoLeader}, {ErrPermissionDenied, errcode.ErrPermissionDenied},
		{ErrCorrupt, errcode.ErrCorrupt},
	} {
		if pair[0] != pair[1] {
			t.Errorf("root %v is not errcode's value", pair[0])
		}
	}
}

// TestCodeLimit: codeLimit is the first value no code has, so the tests
// that walk every code see them all.
func TestCodeLimit(t *testing.T) {
	for c := CodeOK + 1; c < codeLimit; c++ {
		if c.Err() == ErrCorrupt {
			t.Errorf("code %d below codeLimit is unknown", c)
		}
	}
	if codeLimit.Err() != ErrCorrupt {
		t.Errorf("codeLimit %d names %v; a code was added without raising codeLimit", codeLimit, codeLimit.Err())
	}
}
