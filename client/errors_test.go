package client_test

import (
	"errors"
	"testing"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/client"
	"github.com/abacuskit/abacus/errcode"
)

// TestErrorCodesFollowTable: every code a node can answer unwraps to the
// sentinel errcode's table gives it, which is the abacus package's own
// value, and a code outside the table is a protocol error.
func TestErrorCodesFollowTable(t *testing.T) {
	for _, row := range errcode.Table() {
		err := &client.Error{Status: row.Status, Code: row.Name, Index: -1}
		if !errors.Is(err, row.Err) {
			t.Errorf("code %s: errors.Is(err, %v) = false", row.Name, row.Err)
		}
	}
	for _, tc := range []struct {
		code string
		want error
	}{
		{"out_of_range", abacus.ErrOutOfRange},
		{"cas_mismatch", abacus.ErrMismatch},
		{"permission_denied", abacus.ErrPermissionDenied},
		{"unavailable", client.ErrUnavailable},
		{"indeterminate", abacus.ErrIndeterminate},
		{"internal", client.ErrProtocol},
		{"no_such_code", client.ErrProtocol},
	} {
		if err := (&client.Error{Code: tc.code, Index: -1}); !errors.Is(err, tc.want) {
			t.Errorf("code %s: errors.Is(err, %v) = false", tc.code, tc.want)
		}
	}
}
