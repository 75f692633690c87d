// Package history records what the fault-injection harness did to an abacus
// cluster: one Op per client request, with its inputs, when it was called and
// when it returned, and what came back, plus the fault windows the harness
// opened while it ran.
//
// Times are int64 nanoseconds of a monotonic clock since the start of the run
// (Recorder provides one). Every request ends in one of three outcomes:
//
//   - Ok: the cluster answered definitely. Refusals such as overflow,
//     out_of_range, lock_held or stale_token are Ok results whose Output.Error
//     names the refusal; a compare-and-set that did not swap is Ok with
//     Output.Swapped false.
//   - Fail: the request was definitely not applied (HTTP 503).
//   - Info: the outcome is unknown (HTTP 504, a client timeout, a reset
//     connection); the request may or may not have taken effect.
//
// Mapping HTTP answers (see docs/API.md) onto an Op:
//
//	200                          Ok, Output filled from the response body
//	409 overflow, underflow,     Ok, Output.Error = the code (CodeOverflow, ...);
//	    out_of_range, lock_held,     Output.Holder for lock_held
//	    stale_token, lease_expired
//	200 cas with swapped false   Ok, Output.Swapped false, Output.Value current
//	503 unavailable              Fail
//	504 indeterminate, client    Info, Reason says which
//	    timeout, connection reset
//	    or closed after sending
//	400, 404                     Ok with Output.Error = the code: the checkers
//	                             treat such refusals as changing nothing
//
// A connection refused before the request was sent is a Fail (nothing can
// have been applied). Wall-clock deadlines belong to the client: the op's
// Return is when it gave up.
//
// Process ids only label ops (porcupine draws one row per process); a
// process may go on after an Info op.
//
// A history is stored as JSON lines (Encoder, Decoder, ReadFile, WriteFile):
// one {"op": {...}} or {"fault": {...}} object per line, ops in index order.
package history

import (
	"errors"
	"fmt"
	"math"

	"github.com/abacuskit/abacus/errcode"
)

// ErrInvalid reports a malformed Op or FaultWindow: an unknown kind or
// outcome, a return before the call, a missing name.
var ErrInvalid = errors.New("history: invalid record")

// Kind names the request an Op made.
type Kind string

// Counter kinds. Add, Set, CAS and Delete may carry a Fence; a fenced write
// the cluster refused because its token no longer holds the lock is an Ok op
// with Output.Error == CodeStaleToken.
const (
	// Add adds Input.Delta, within Input.Min/Input.Max when given
	// (POST /v1/counters/{name}/add). Output.Value is the new value.
	Add Kind = "add"
	// Set writes Input.Value (PUT /v1/counters/{name}). Output.Previous is
	// the value before it.
	Set Kind = "set"
	// CAS sets Input.New if the counter equals Input.Old
	// (POST /v1/counters/{name}/cas). Output.Swapped tells whether it did;
	// Output.Value is the value after it.
	CAS Kind = "cas"
	// Delete removes the counter (DELETE /v1/counters/{name}). Output.Previous
	// is the value before it.
	Delete Kind = "delete"
	// Get reads the counter (GET /v1/counters/{name}). Output.Value and
	// Output.Exists are what it read. Input.Stale marks a stale read.
	Get Kind = "get"
)

// Lock kinds.
const (
	// Acquire asks for lock Key as Input.Holder with Input.TTLMillis
	// (POST /v1/locks/{name}/acquire). Output.Token is the fencing token, or
	// Output.Error is CodeLockHeld.
	Acquire Kind = "acquire"
	// Release releases lock Key if Input.Token holds it
	// (POST /v1/locks/{name}/release); else Output.Error is CodeStaleToken.
	Release Kind = "release"
	// KeepAlive renews lock Key's lease for Input.Token
	// (POST /v1/locks/{name}/keepalive).
	KeepAlive Kind = "keepalive"
	// LockGet reads lock Key (GET /v1/locks/{name}): Output.Held,
	// Output.Holder, Output.Token.
	LockGet Kind = "lock_get"
)

// Instance kinds (instance-aware counters). Checkers record and count them
// but do not model them: counters that see instance operations are skipped
// by the linearizability and bounds checks.
const (
	// InstanceCreate registers an instance (POST /v1/instances) with
	// Input.TTLMillis; Output.Instance is its id. Key may be empty.
	InstanceCreate Kind = "instance_create"
	// InstanceKeepAlive renews instance Key
	// (POST /v1/instances/{id}/keepalive).
	InstanceKeepAlive Kind = "instance_keepalive"
	// InstanceDelete ends instance Key (DELETE /v1/instances/{id}); its
	// contributions leave every counter.
	InstanceDelete Kind = "instance_delete"
)

// Valid reports whether k is one of the kinds above.
func (k Kind) Valid() bool {
	switch k {
	case Add, Set, CAS, Delete, Get, Acquire, Release, KeepAlive, LockGet,
		InstanceCreate, InstanceKeepAlive, InstanceDelete:
		return true
	}
	return false
}

// IsCounter reports whether k operates on a counter.
func (k Kind) IsCounter() bool {
	switch k {
	case Add, Set, CAS, Delete, Get:
		return true
	}
	return false
}

// IsLock reports whether k operates on a lock.
func (k Kind) IsLock() bool {
	switch k {
	case Acquire, Release, KeepAlive, LockGet:
		return true
	}
	return false
}

// IsCounterWrite reports whether k may change a counter.
func (k Kind) IsCounterWrite() bool { return k.IsCounter() && k != Get }

// Outcome is how a request ended.
type Outcome string

// Outcomes.
const (
	// Ok: a definite answer, which may be a refusal (Output.Error).
	Ok Outcome = "ok"
	// Fail: definitely not applied (503 unavailable).
	Fail Outcome = "fail"
	// Info: unknown whether it was applied (504, timeout, connection reset).
	Info Outcome = "info"
)

// Valid reports whether o is Ok, Fail or Info.
func (o Outcome) Valid() bool { return o == Ok || o == Fail || o == Info }

// Refusal codes an Ok op may carry in Output.Error, spelled as the HTTP API
// spells them: the names errcode's table gives the errors. They are never
// modified.
var (
	CodeOverflow     = errcode.Name(errcode.ErrOverflow)
	CodeUnderflow    = errcode.Name(errcode.ErrUnderflow)
	CodeOutOfRange   = errcode.Name(errcode.ErrOutOfRange)
	CodeLockHeld     = errcode.Name(errcode.ErrLockHeld)
	CodeStaleToken   = errcode.Name(errcode.ErrStaleToken)
	CodeLeaseExpired = errcode.Name(errcode.ErrLeaseExpired)
	CodeNotFound     = errcode.Name(errcode.ErrNotFound)
	// CodeInvalidArgument (400) means the harness sent a malformed request.
	CodeInvalidArgument = errcode.Name(errcode.ErrInvalidArgument)
)

// Fence guards a counter write: the cluster refuses it with CodeStaleToken
// unless Token currently holds Lock.
type Fence struct {
	Lock  string `json:"lock"`
	Token uint64 `json:"token"`
}

// Input is what a request asked for. Which fields matter depends on Kind.
type Input struct {
	// Delta is what an Add adds.
	Delta int64 `json:"delta,omitempty"`
	// Min and Max bound an Add; nil means unbounded.
	Min *int64 `json:"min,omitempty"`
	Max *int64 `json:"max,omitempty"`
	// Value is what a Set writes.
	Value int64 `json:"value,omitempty"`
	// Old and New are a CAS's expected and new values.
	Old int64 `json:"old,omitempty"`
	New int64 `json:"new,omitempty"`
	// Fence guards a counter write.
	Fence *Fence `json:"fence,omitempty"`
	// Stale marks a Get made with consistency=stale: it is not expected to
	// be linearizable and the linearizability checker ignores it.
	Stale bool `json:"stale,omitempty"`
	// Instance names the instance a counter op acts for (instance-aware
	// counters). Checkers that do not model instances skip counters that
	// carry one.
	Instance string `json:"instance,omitempty"`
	// Holder and TTLMillis are an Acquire's holder id and lease TTL.
	Holder    string `json:"holder,omitempty"`
	TTLMillis int64  `json:"ttl_ms,omitempty"`
	// Token is the fencing token a Release or KeepAlive presents.
	Token uint64 `json:"token,omitempty"`
	// IdempotencyKey is the Idempotency-Key header of a write. Attempts of
	// one request (a retry after Fail or Info) share it; the checkers merge
	// them into one operation (see check.MergeRetries).
	IdempotencyKey string `json:"idempotency_key,omitempty"`
}

// Output is what came back for an Ok op. Which fields matter depends on Kind.
type Output struct {
	// Error is the refusal code of a refused request (CodeOverflow, ...), or
	// empty when the request was applied (or, for a read, answered).
	Error string `json:"error,omitempty"`
	// Value is a counter's value after an Add, Set or CAS, or as read by a
	// Get.
	Value int64 `json:"value,omitempty"`
	// Exists is whether a Get found the counter.
	Exists bool `json:"exists,omitempty"`
	// Previous is the value before a Set or Delete.
	Previous int64 `json:"previous,omitempty"`
	// Swapped is whether a CAS swapped.
	Swapped bool `json:"swapped,omitempty"`
	// Token is the fencing token an Acquire got, or the one a LockGet saw.
	Token uint64 `json:"token,omitempty"`
	// Holder and Held are what a LockGet saw (Holder also comes with
	// CodeLockHeld).
	Held   bool   `json:"held,omitempty"`
	Holder string `json:"holder,omitempty"`
	// Instance is the id an InstanceCreate got.
	Instance string `json:"instance,omitempty"`
	// InstanceValue is the calling instance's slice of a counter, for
	// counter ops made with Input.Instance.
	InstanceValue int64 `json:"instance_value,omitempty"`
}

// Op is one request the harness made.
type Op struct {
	// Index is the op's position in the history, from 0.
	Index int `json:"index"`
	// Process is the client that made the request; one client has at most
	// one request outstanding at a time.
	Process int `json:"process"`
	// Node is the node the request was sent to.
	Node string `json:"node,omitempty"`
	// Kind is what the request did; Key is the counter or lock name.
	Kind Kind   `json:"kind"`
	Key  string `json:"key"`
	// Call and Return are when the request was sent and when its answer
	// came (or the client gave up), in ns since the start of the run.
	Call   int64 `json:"call"`
	Return int64 `json:"return"`
	// Outcome is how it ended; Reason says why for Fail and Info.
	Outcome Outcome `json:"outcome"`
	Reason  string  `json:"reason,omitempty"`
	In      Input   `json:"in"`
	// Out is meaningful for Ok ops only.
	Out Output `json:"out"`
}

// Validate reports whether op is well formed, wrapping ErrInvalid if not.
func (op *Op) Validate() error {
	switch {
	case !op.Kind.Valid():
		return fmt.Errorf("%w: op %d: unknown kind %q", ErrInvalid, op.Index, op.Kind)
	case !op.Outcome.Valid():
		return fmt.Errorf("%w: op %d: unknown outcome %q", ErrInvalid, op.Index, op.Outcome)
	case op.Key == "" && op.Kind != InstanceCreate:
		return fmt.Errorf("%w: op %d: empty key", ErrInvalid, op.Index)
	case op.Return < op.Call:
		return fmt.Errorf("%w: op %d: returns at %d before its call at %d", ErrInvalid, op.Index, op.Return, op.Call)
	case op.Index < 0 || op.Process < 0:
		return fmt.Errorf("%w: op %d: negative index or process", ErrInvalid, op.Index)
	case op.In.Fence != nil && (op.In.Fence.Lock == "" || !op.Kind.IsCounterWrite()):
		return fmt.Errorf("%w: op %d: fence on a %s or without a lock", ErrInvalid, op.Index, op.Kind)
	}
	return nil
}

// Fenced reports whether op is a fenced counter write.
func (op *Op) Fenced() bool { return op.In.Fence != nil }

// Writes reports whether op is a write: one that may change state,
// whatever its outcome.
func (op *Op) Writes() bool {
	switch op.Kind {
	case Add, Set, Delete, CAS, Acquire, Release, KeepAlive, InstanceCreate, InstanceKeepAlive, InstanceDelete:
		return true
	}
	return false
}

// Applied reports whether op definitely changed state: an Ok write without
// a refusal (a CAS only if it swapped). Reads are never applied.
func (op *Op) Applied() bool {
	if !op.Writes() || op.Outcome != Ok || op.Out.Error != "" {
		return false
	}
	return op.Kind != CAS || op.Out.Swapped
}

// String describes op in one line, for reports.
func (op *Op) String() string {
	s := fmt.Sprintf("#%d p%d %s %s(%q", op.Index, op.Process, op.Node, op.Kind, op.Key)
	in := &op.In
	switch op.Kind {
	case Add:
		s += fmt.Sprintf(", %+d", in.Delta)
		if in.Min != nil {
			s += fmt.Sprintf(", min %d", *in.Min)
		}
		if in.Max != nil {
			s += fmt.Sprintf(", max %d", *in.Max)
		}
	case Set:
		s += fmt.Sprintf(", %d", in.Value)
	case CAS:
		s += fmt.Sprintf(", %d→%d", in.Old, in.New)
	case Acquire:
		s += fmt.Sprintf(", %q", in.Holder)
	case Release, KeepAlive:
		s += fmt.Sprintf(", token %d", in.Token)
	}
	if in.Instance != "" {
		s += fmt.Sprintf(", instance %q", in.Instance)
	}
	if in.Fence != nil {
		s += fmt.Sprintf(", fence %q/%d", in.Fence.Lock, in.Fence.Token)
	}
	s += ")"
	switch op.Outcome {
	case Ok:
		s += " → " + op.Out.describe(op.Kind)
	default:
		s += " → " + string(op.Outcome)
		if op.Reason != "" {
			s += " (" + op.Reason + ")"
		}
	}
	return s + fmt.Sprintf(" [%d, %d]", op.Call, op.Return)
}

func (o *Output) describe(k Kind) string {
	if o.Error != "" {
		return o.Error
	}
	switch k {
	case Get:
		if !o.Exists {
			return fmt.Sprintf("%d (absent)", o.Value)
		}
		return fmt.Sprint(o.Value)
	case Add:
		return fmt.Sprint(o.Value)
	case Set, Delete:
		return fmt.Sprintf("prev %d", o.Previous)
	case CAS:
		if o.Swapped {
			return fmt.Sprintf("swapped, %d", o.Value)
		}
		return fmt.Sprintf("not swapped, %d", o.Value)
	case Acquire:
		return fmt.Sprintf("token %d", o.Token)
	case InstanceCreate:
		return fmt.Sprintf("instance %q", o.Instance)
	case LockGet:
		if !o.Held {
			return "free"
		}
		return fmt.Sprintf("held by %q token %d", o.Holder, o.Token)
	}
	return "ok"
}

// FaultWindow is a period during which the harness injected a fault (a
// partition, a paused or killed process, clock skew). End is math.MaxInt64
// while the fault is still open; Close sets it.
type FaultWindow struct {
	Start       int64  `json:"start"`
	End         int64  `json:"end"`
	Description string `json:"description"`
	// Nodes lists the nodes the fault affected, if any.
	Nodes []string `json:"nodes,omitempty"`
}

// Open reports whether the window has not been closed.
func (f *FaultWindow) Open() bool { return f.End == math.MaxInt64 }

// Validate reports whether f is well formed, wrapping ErrInvalid if not.
func (f *FaultWindow) Validate() error {
	if f.End < f.Start {
		return fmt.Errorf("%w: fault %q ends at %d before it starts at %d", ErrInvalid, f.Description, f.End, f.Start)
	}
	return nil
}

// History is a whole run: every op in index order, and the fault windows.
type History struct {
	Ops    []Op          `json:"ops"`
	Faults []FaultWindow `json:"faults,omitempty"`
}

// Validate checks every op and fault window, and that op i has Index i.
func (h *History) Validate() error {
	for i := range h.Ops {
		if h.Ops[i].Index != i {
			return fmt.Errorf("%w: op at position %d has index %d", ErrInvalid, i, h.Ops[i].Index)
		}
		if err := h.Ops[i].Validate(); err != nil {
			return err
		}
	}
	for i := range h.Faults {
		if err := h.Faults[i].Validate(); err != nil {
			return err
		}
	}
	return nil
}

// End returns the latest time in the history: the largest return or call
// time of any op, or end of a closed fault window; 0 for an empty history.
func (h *History) End() int64 {
	var end int64
	for i := range h.Ops {
		end = max(end, h.Ops[i].Return, h.Ops[i].Call)
	}
	for i := range h.Faults {
		if !h.Faults[i].Open() {
			end = max(end, h.Faults[i].End)
		}
	}
	return end
}

// Int64 returns a pointer to v, for Input.Min and Input.Max.
func Int64(v int64) *int64 { return &v }
