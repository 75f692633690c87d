package errcode

import (
	"errors"
	"fmt"
	"testing"
)

// TestTableCoversEveryCode: every replicated code has exactly one row, and
// Err and String come from it.
func TestTableCoversEveryCode(t *testing.T) {
	for c := CodeOK + 1; c < codeLimit; c++ {
		rows := 0
		for _, e := range Table() {
			if e.Code == c {
				rows++
				if c.Err() != e.Err || c.String() != e.Name {
					t.Errorf("code %d: Err %v String %q, row %v %q", c, c.Err(), c.String(), e.Err, e.Name)
				}
			}
		}
		if rows != 1 {
			t.Errorf("code %d has %d rows, want 1", c, rows)
		}
	}
	if CodeOK.Err() != nil || CodeOK.String() != "ok" {
		t.Errorf("CodeOK: %v %q", CodeOK.Err(), CodeOK.String())
	}
	if codeLimit.Err() != ErrCorrupt || codeLimit.String() != fmt.Sprintf("code(%d)", codeLimit) {
		t.Errorf("unknown code: %v %q", codeLimit.Err(), codeLimit.String())
	}
}

// TestTableNames: names are unique, every row has a status, and ByName
// inverts the table.
func TestTableNames(t *testing.T) {
	seen := map[string]bool{}
	for _, e := range Table() {
		if e.Name == "" || seen[e.Name] {
			t.Errorf("row %v: name %q empty or repeated", e.Err, e.Name)
		}
		seen[e.Name] = true
		if e.Status < 400 || e.Status > 599 {
			t.Errorf("row %s: status %d", e.Name, e.Status)
		}
		if got, ok := ByName(e.Name); !ok || got != e.Err {
			t.Errorf("ByName(%q) = %v, %v; want %v", e.Name, got, ok, e.Err)
		}
		if e.Reply != nil {
			if r, ok := Find(e.Reply); !ok || r.Reply != nil {
				t.Errorf("row %s replies as %v, which has no row of its own", e.Name, e.Reply)
			}
		}
	}
	if _, ok := ByName("internal"); ok {
		t.Error(`ByName("internal") found a sentinel`)
	}
}

// TestReply: an error wrapping several sentinels takes the first row, and
// Reply follows a row's Reply.
func TestReply(t *testing.T) {
	for _, tc := range []struct {
		err    error
		name   string
		status int
	}{
		{fmt.Errorf("%w: %w", ErrIndeterminate, ErrSessionExpired), "indeterminate", 504},
		{fmt.Errorf("op: %w", ErrOutOfRange), "out_of_range", 409},
		{ErrClosed, "unavailable", 503},
		{ErrTooManyInFlight, "unavailable", 503},
		{ErrMismatch, "cas_mismatch", 409},
		{ErrPermissionDenied, "permission_denied", 403},
	} {
		e, ok := Reply(tc.err)
		if !ok || e.Name != tc.name || e.Status != tc.status {
			t.Errorf("Reply(%v) = %q %d %v; want %q %d", tc.err, e.Name, e.Status, ok, tc.name, tc.status)
		}
	}
	for _, err := range []error{nil, ErrCorrupt, ErrNoLeader, errors.New("other")} {
		if e, ok := Reply(err); ok {
			t.Errorf("Reply(%v) = %q, want none", err, e.Name)
		}
	}
	if got := Name(ErrTooManyInFlight); got != "too_many_in_flight" {
		t.Errorf("Name(ErrTooManyInFlight) = %q", got)
	}
}
