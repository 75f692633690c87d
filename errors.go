package abacus

import (
	"errors"
	"fmt"
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
	// caller gave (Min/Max). Nothing changed.
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
	// add is at a configured bound (FSMOptions: counters, leases, locks,
	// idempotency keys). Nothing changed; it may succeed once state is
	// removed or has expired.
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
	// ErrNoLeader reports an election (Election.Leader) nobody leads.
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

var codeErrors = [codeLimit]error{
	CodeOK:              nil,
	CodeInvalidArgument: ErrInvalidArgument,
	CodeOverflow:        ErrOverflow,
	CodeUnderflow:       ErrUnderflow,
	CodeOutOfRange:      ErrOutOfRange,
	CodeStaleToken:      ErrStaleToken,
	CodeLockHeld:        ErrLockHeld,
	CodeNotFound:        ErrNotFound,
	CodeLeaseExpired:    ErrLeaseExpired,
	CodeStaleSequence:   ErrStaleSequence,
	CodeSessionExpired:  ErrSessionExpired,
	CodeTooManyInFlight: ErrTooManyInFlight,
	CodeMismatch:        ErrMismatch,
	CodeLimitReached:    ErrLimitReached,
}

// Err returns the sentinel error for c, or nil for CodeOK.
func (c Code) Err() error {
	if c < codeLimit {
		return codeErrors[c]
	}
	return ErrCorrupt
}

// String returns the code's name as the HTTP API spells it.
func (c Code) String() string {
	switch c {
	case CodeOK:
		return "ok"
	case CodeInvalidArgument:
		return "invalid_argument"
	case CodeOverflow:
		return "overflow"
	case CodeUnderflow:
		return "underflow"
	case CodeOutOfRange:
		return "out_of_range"
	case CodeStaleToken:
		return "stale_token"
	case CodeLockHeld:
		return "lock_held"
	case CodeNotFound:
		return "not_found"
	case CodeLeaseExpired:
		return "lease_expired"
	case CodeStaleSequence:
		return "stale_sequence"
	case CodeSessionExpired:
		return "session_expired"
	case CodeTooManyInFlight:
		return "too_many_in_flight"
	case CodeMismatch:
		return "cas_mismatch"
	case CodeLimitReached:
		return "limit_reached"
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// OpError is the error a refused command returns. It wraps the sentinel for
// its Code, so errors.Is(err, ErrOverflow) and friends work, and it carries
// the details a caller may want: which operation of a batch failed, and who
// holds a lock.
type OpError struct {
	Code    Code
	Op      Op
	Name    string // counter or lock name, when the command has one
	Index   int    // position of the failing operation in a batch, else -1
	Holder  string // current holder, for CodeLockHeld
	Message string // extra detail, for CodeInvalidArgument
}

// Error implements error.
func (e *OpError) Error() string {
	msg := e.Code.Err().Error()
	if e.Name != "" {
		msg += fmt.Sprintf(" (%s %q)", e.Op, e.Name)
	}
	if e.Index >= 0 {
		msg += fmt.Sprintf(" at batch operation %d", e.Index)
	}
	if e.Holder != "" {
		msg += fmt.Sprintf(" by %q", e.Holder)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return msg
}

// Unwrap returns the sentinel error for the code.
func (e *OpError) Unwrap() error { return e.Code.Err() }

// invalidf returns an ErrInvalidArgument error with a formatted message.
func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}
