package abacus

import (
	"fmt"

	"github.com/abacuskit/abacus/errcode"
)

// Sentinel errors. Every error abacus returns wraps one of these, so callers
// test for them with errors.Is. They are package errcode's own values
// (documented there), so errors.Is matches them against errcode's and package
// client's sentinels too.
var (
	// ErrInvalidArgument reports a malformed command. Nothing was applied.
	ErrInvalidArgument = errcode.ErrInvalidArgument
	// ErrOverflow reports an add that would exceed the int64 range.
	ErrOverflow = errcode.ErrOverflow
	// ErrUnderflow reports an add that would fall below the int64 range.
	ErrUnderflow = errcode.ErrUnderflow
	// ErrOutOfRange reports an add whose result would leave the bounds the
	// caller gave (WithMin, WithMax). Nothing changed.
	ErrOutOfRange = errcode.ErrOutOfRange
	// ErrMismatch reports a compare-and-set inside a batch whose expected
	// value did not match, which aborts the batch.
	ErrMismatch = errcode.ErrMismatch
	// ErrStaleToken reports a fenced write or a release whose fencing token no
	// longer holds the lock.
	ErrStaleToken = errcode.ErrStaleToken
	// ErrLockHeld reports a lock held by another holder.
	ErrLockHeld = errcode.ErrLockHeld
	// ErrNotFound reports an unknown lease or instance id.
	ErrNotFound = errcode.ErrNotFound
	// ErrLeaseExpired reports an operation on a lease that has ended.
	ErrLeaseExpired = errcode.ErrLeaseExpired
	// ErrStaleSequence reports a replay of an already acknowledged sequence
	// number; it was not applied again.
	ErrStaleSequence = errcode.ErrStaleSequence
	// ErrSessionExpired reports a proposal from a client session the state
	// machine has forgotten; it was not applied.
	ErrSessionExpired = errcode.ErrSessionExpired
	// ErrTooManyInFlight reports a client with more unacknowledged proposals
	// than the exactly-once window allows. Nothing was applied.
	ErrTooManyInFlight = errcode.ErrTooManyInFlight
	// ErrLimitReached reports a command refused because the state it would
	// add is at a configured bound (FSMOptions: counters, leases, locks,
	// idempotency keys). Nothing changed.
	ErrLimitReached = errcode.ErrLimitReached
	// ErrUnavailable reports that a request was definitely not applied: no
	// quorum, no leader, or the node is shutting down. It is safe to retry.
	ErrUnavailable = errcode.ErrUnavailable
	// ErrIndeterminate reports that the outcome of a write is unknown: it may
	// or may not have been applied.
	ErrIndeterminate = errcode.ErrIndeterminate
	// ErrClosed reports a call on a closed node.
	ErrClosed = errcode.ErrClosed
	// ErrNoLeader reports an election (Election.Leader) nobody leads.
	ErrNoLeader = errcode.ErrNoLeader
	// ErrPermissionDenied reports a request refused because its client's
	// role does not allow it. Nothing was applied.
	ErrPermissionDenied = errcode.ErrPermissionDenied
	// ErrCorrupt reports an encoded command, result or snapshot that fails to
	// decode or to verify.
	ErrCorrupt = errcode.ErrCorrupt
)

// Code is the deterministic, replicated form of an error: the state machine
// records codes, never Go error values, so that results encode to the same
// bytes on every replica. Its methods and its names are package errcode's.
type Code = errcode.Code

// Codes. The numbering is part of the encoding: never renumber.
const (
	CodeOK              = errcode.CodeOK
	CodeInvalidArgument = errcode.CodeInvalidArgument
	CodeOverflow        = errcode.CodeOverflow
	CodeUnderflow       = errcode.CodeUnderflow
	CodeOutOfRange      = errcode.CodeOutOfRange
	CodeStaleToken      = errcode.CodeStaleToken
	CodeLockHeld        = errcode.CodeLockHeld
	CodeNotFound        = errcode.CodeNotFound
	CodeLeaseExpired    = errcode.CodeLeaseExpired
	CodeStaleSequence   = errcode.CodeStaleSequence
	CodeSessionExpired  = errcode.CodeSessionExpired
	CodeTooManyInFlight = errcode.CodeTooManyInFlight
	CodeMismatch        = errcode.CodeMismatch
	CodeLimitReached    = errcode.CodeLimitReached
	codeLimit           = CodeLimitReached + 1 // first unused value
)

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
