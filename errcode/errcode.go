// Package errcode holds abacus's error values and their names on the wire,
// apart from the server so that clients can use them without linking it.
//
// Package abacus re-exports every value here (abacus.ErrOverflow is
// errcode.ErrOverflow, abacus.Code is errcode.Code), and so does package
// client for the errors an HTTP reply can carry, so errors.Is matches an
// error against the sentinel of any of the three packages.
//
// Table is the one list of the names the HTTP API gives errors (the "code"
// of an error reply, docs/API.md) and of their HTTP statuses: the HTTP
// handler, the client and the test harness all take names from it, and
// Code.String is the name of the code's row.
package errcode

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinel errors. Every error abacus returns wraps one of these, so callers
// test for them with errors.Is.
var (
	// ErrInvalidArgument reports a malformed command: a bad name, a missing or
	// out-of-range field, an empty or oversized batch. Nothing was applied.
	ErrInvalidArgument = errors.New("abacus: invalid argument")
	// ErrOverflow reports an add that would exceed the int64 range. Nothing changed.
	ErrOverflow = errors.New("abacus: counter overflow")
	// ErrUnderflow reports an add that would fall below the int64 range. Nothing changed.
	ErrUnderflow = errors.New("abacus: counter underflow")
	// ErrOutOfRange reports an add whose result would leave the bounds the
	// caller gave (a minimum or maximum). Nothing changed.
	ErrOutOfRange = errors.New("abacus: result out of range")
	// ErrMismatch reports a compare-and-set inside a batch whose expected
	// value did not match, which aborts the batch. (A lone compare-and-set
	// reports a mismatch as Swapped == false, not as an error.)
	ErrMismatch = errors.New("abacus: compare-and-set mismatch")
	// ErrStaleToken reports a fenced write or a release whose fencing token no
	// longer holds the lock. Nothing changed.
	ErrStaleToken = errors.New("abacus: stale fencing token")
	// ErrLockHeld reports a lock held by another holder.
	ErrLockHeld = errors.New("abacus: lock held")
	// ErrNotFound reports an unknown lease or instance id.
	ErrNotFound = errors.New("abacus: not found")
	// ErrLeaseExpired reports an operation on a lease that has ended.
	ErrLeaseExpired = errors.New("abacus: lease expired")
	// ErrStaleSequence reports a proposal whose sequence number the client has
	// already acknowledged: it is a replay, and it was not applied again.
	ErrStaleSequence = errors.New("abacus: sequence already acknowledged")
	// ErrSessionExpired reports a proposal from a client session the state
	// machine has forgotten (idle too long, or evicted to bound memory). Its
	// outcome cannot be deduplicated, so it was not applied.
	ErrSessionExpired = errors.New("abacus: client session expired")
	// ErrTooManyInFlight reports a client with more unacknowledged proposals
	// than the exactly-once window allows. Nothing was applied.
	ErrTooManyInFlight = errors.New("abacus: too many unacknowledged proposals")
	// ErrLimitReached reports a command refused because the state it would
	// add is at a configured bound (counters, leases, locks, idempotency
	// keys). Nothing changed; it may succeed once state is removed or has
	// expired.
	ErrLimitReached = errors.New("abacus: limit reached")
	// ErrUnavailable reports that a request was definitely not applied: no
	// quorum, no leader, or the node is shutting down. It is safe to retry.
	ErrUnavailable = errors.New("abacus: unavailable")
	// ErrIndeterminate reports that the outcome of a write is unknown: it may
	// or may not have been applied (for example, the context ended while the
	// proposal was in flight).
	ErrIndeterminate = errors.New("abacus: outcome indeterminate")
	// ErrClosed reports a call on a closed node.
	ErrClosed = errors.New("abacus: node closed")
	// ErrNoLeader reports an election nobody leads.
	ErrNoLeader = errors.New("abacus: election has no leader")
	// ErrPermissionDenied reports a request refused because its client's
	// role does not allow it (the HTTP API's 403 permission_denied). Nothing
	// was applied.
	ErrPermissionDenied = errors.New("abacus: permission denied")
	// ErrCorrupt reports an encoded command, result or snapshot that fails to
	// decode or to verify.
	ErrCorrupt = errors.New("abacus: corrupt data")
)

// Code is the deterministic, replicated form of an error: the state machine
// records codes, never Go error values, so that results encode to the same
// bytes on every replica.
type Code uint8

// Codes, in the order they were introduced. The numbering is part of the
// encoding: never renumber.
const (
	CodeOK Code = iota
	CodeInvalidArgument
	CodeOverflow
	CodeUnderflow
	CodeOutOfRange
	CodeStaleToken
	CodeLockHeld
	CodeNotFound
	CodeLeaseExpired
	CodeStaleSequence
	CodeSessionExpired
	CodeTooManyInFlight
	CodeMismatch
	CodeLimitReached
	codeLimit // first unused value
)

// Entry is one row of Table: an error, the replicated code the state
// machine records for it, and how the HTTP API names it.
type Entry struct {
	// Err is the sentinel error.
	Err error
	// Code is the error's replicated code, or CodeOK for an error the state
	// machine never records.
	Code Code
	// Name is the error's name: the "code" of an HTTP error reply carrying
	// it (unless Reply is set), and Code.String.
	Name string
	// Status is the HTTP status of a reply carrying the error.
	Status int
	// Reply, when set, is the error whose row an HTTP reply carries
	// instead: a node answers a call on a closed node, for example, as
	// unavailable, so that the client tries another.
	Reply error
}

// table is Table's rows in precedence order: an error that wraps several
// sentinels takes the first row it matches, so an indeterminate write that
// found its session expired is indeterminate. It is never modified.
var table = [...]Entry{
	{Err: ErrIndeterminate, Name: "indeterminate", Status: http.StatusGatewayTimeout},
	{Err: ErrUnavailable, Name: "unavailable", Status: http.StatusServiceUnavailable},
	{Err: ErrClosed, Name: "closed", Status: http.StatusServiceUnavailable, Reply: ErrUnavailable},
	{Err: ErrTooManyInFlight, Code: CodeTooManyInFlight, Name: "too_many_in_flight", Status: http.StatusServiceUnavailable, Reply: ErrUnavailable},
	{Err: ErrInvalidArgument, Code: CodeInvalidArgument, Name: "invalid_argument", Status: http.StatusBadRequest},
	{Err: ErrNotFound, Code: CodeNotFound, Name: "not_found", Status: http.StatusNotFound},
	{Err: ErrOverflow, Code: CodeOverflow, Name: "overflow", Status: http.StatusConflict},
	{Err: ErrUnderflow, Code: CodeUnderflow, Name: "underflow", Status: http.StatusConflict},
	{Err: ErrOutOfRange, Code: CodeOutOfRange, Name: "out_of_range", Status: http.StatusConflict},
	{Err: ErrLockHeld, Code: CodeLockHeld, Name: "lock_held", Status: http.StatusConflict},
	{Err: ErrStaleToken, Code: CodeStaleToken, Name: "stale_token", Status: http.StatusConflict},
	{Err: ErrLeaseExpired, Code: CodeLeaseExpired, Name: "lease_expired", Status: http.StatusConflict},
	{Err: ErrMismatch, Code: CodeMismatch, Name: "cas_mismatch", Status: http.StatusConflict},
	{Err: ErrLimitReached, Code: CodeLimitReached, Name: "limit_reached", Status: http.StatusTooManyRequests},
	{Err: ErrSessionExpired, Code: CodeSessionExpired, Name: "session_expired", Status: http.StatusGone},
	{Err: ErrStaleSequence, Code: CodeStaleSequence, Name: "stale_sequence", Status: http.StatusConflict},
	{Err: ErrPermissionDenied, Name: "permission_denied", Status: http.StatusForbidden},
}

// Table returns every error the HTTP API names, in precedence order (see
// Find). ErrNoLeader and ErrCorrupt are not in it: a node that meets them
// answers 500 internal.
func Table() []Entry { return append([]Entry(nil), table[:]...) }

// Find returns the row of the first sentinel in Table's order that err
// wraps (errors.Is).
func Find(err error) (Entry, bool) {
	if err == nil {
		return Entry{}, false
	}
	for _, e := range table {
		if errors.Is(err, e.Err) {
			return e, true
		}
	}
	return Entry{}, false
}

// Reply returns the row whose name and status an HTTP reply to err
// carries: Find's row, or the row its Reply names.
func Reply(err error) (Entry, bool) {
	e, ok := Find(err)
	if ok && e.Reply != nil {
		return Find(e.Reply)
	}
	return e, ok
}

// ByName returns the sentinel error an HTTP reply's code names.
func ByName(name string) (error, bool) {
	for _, e := range table {
		if e.Name == name {
			return e.Err, true
		}
	}
	return nil, false
}

// Name returns the name of the first row err matches, as Find; "" if none.
func Name(err error) string {
	e, _ := Find(err)
	return e.Name
}

// Err returns the sentinel error for c, or nil for CodeOK.
func (c Code) Err() error {
	if c == CodeOK {
		return nil
	}
	for _, e := range table {
		if e.Code == c {
			return e.Err
		}
	}
	return ErrCorrupt
}

// String returns the code's name, as its row in Table spells it: "ok" for
// CodeOK, and code(N) for a value no code has.
func (c Code) String() string {
	if c == CodeOK {
		return "ok"
	}
	for _, e := range table {
		if e.Code == c {
			return e.Name
		}
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}
