package httpapi

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/errcode"
)

// TestErrorStatus maps every error the node returns to docs/API.md's status and
// code.
func TestErrorStatus(t *testing.T) {
	op := func(c abacus.Code) error { return &abacus.OpError{Code: c, Index: -1} }
	for _, tc := range []struct {
		err    error
		write  bool
		status int
		code   string
	}{
		{fmt.Errorf("%w: bad name", abacus.ErrInvalidArgument), true, 400, "invalid_argument"},
		{op(abacus.CodeInvalidArgument), true, 400, "invalid_argument"},
		{op(abacus.CodeNotFound), true, 404, "not_found"},
		{op(abacus.CodeOverflow), true, 409, "overflow"},
		{op(abacus.CodeUnderflow), true, 409, "underflow"},
		{op(abacus.CodeOutOfRange), true, 409, "out_of_range"},
		{op(abacus.CodeLockHeld), true, 409, "lock_held"},
		{op(abacus.CodeStaleToken), true, 409, "stale_token"},
		{op(abacus.CodeLeaseExpired), true, 409, "lease_expired"},
		{op(abacus.CodeMismatch), true, 409, "cas_mismatch"},
		{fmt.Errorf("%w: no leader", abacus.ErrUnavailable), true, 503, "unavailable"},
		{fmt.Errorf("%w: %w", abacus.ErrUnavailable, context.DeadlineExceeded), true, 503, "unavailable"},
		{abacus.ErrClosed, true, 503, "unavailable"},
		{op(abacus.CodeTooManyInFlight), true, 503, "unavailable"},
		{fmt.Errorf("%w: %w", abacus.ErrIndeterminate, context.DeadlineExceeded), true, 504, "indeterminate"},
		{fmt.Errorf("%w: %w", abacus.ErrIndeterminate, abacus.ErrSessionExpired), true, 504, "indeterminate"},
		{context.DeadlineExceeded, true, 504, "indeterminate"},
		{context.DeadlineExceeded, false, 503, "unavailable"},
		{invalid("x"), false, 400, "invalid_argument"},
		{errFaultsOff, false, 403, "permission_denied"},
		{op(abacus.CodeLimitReached), true, 429, "limit_reached"},
		{op(abacus.CodeSessionExpired), true, 410, "session_expired"},
		{op(abacus.CodeStaleSequence), true, 409, "stale_sequence"},
		{fmt.Errorf("%w: role", abacus.ErrPermissionDenied), true, 403, "permission_denied"},
		{abacus.ErrCorrupt, true, 500, "internal"},
		{errors.New("surprise"), false, 500, "internal"},
	} {
		status, code := errorStatus(tc.err, tc.write)
		if status != tc.status || code != tc.code {
			t.Errorf("%v (write %v): %d %s, want %d %s", tc.err, tc.write, status, code, tc.status, tc.code)
		}
	}
}

// TestErrorStatusFollowsTable: every error in errcode's table is answered
// with its row's status and name, so the handler and the client (which
// reads names back through the same table) cannot drift apart.
func TestErrorStatusFollowsTable(t *testing.T) {
	for _, e := range errcode.Table() {
		want, _ := errcode.Reply(e.Err)
		for _, err := range []error{e.Err, fmt.Errorf("wrapped: %w", e.Err)} {
			status, code := errorStatus(err, true)
			if status != want.Status || code != want.Name {
				t.Errorf("%v: %d %s, want %d %s", err, status, code, want.Status, want.Name)
			}
			if back, ok := errcode.ByName(code); !ok || !errors.Is(err, back) && e.Reply == nil {
				t.Errorf("%v: code %s reads back as %v", err, code, back)
			}
		}
	}
}
