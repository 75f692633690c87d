package check

import (
	"cmp"
	"fmt"
	"sync/atomic"

	"github.com/abacuskit/abacus/jepsen/internal/history"
	"github.com/anishathalye/porcupine"
)

// LockState is the lease-mutex model's state for one lock.
type LockState struct {
	// Held is whether some token holds the lock.
	Held bool
	// Token is the holder's fencing token; 0 when Held but the token is not
	// known (an acquisition whose outcome was unknown took it).
	Token uint64
	// Last is the highest token known to have been issued; every new
	// acquisition returns a larger one.
	Last uint64
	// Delayed is set when the lock may have been freed by its lease
	// expiring: the state machine then keeps it unavailable for the
	// holder's lock-delay, refusing acquisitions with lock_held although
	// nobody holds it.
	Delayed bool
}

// holds reports whether token t may be the holder's: the holder's token
// when known, else any token that could have been issued unseen.
func (s LockState) holds(t uint64) bool {
	return s.Held && (s.Token == t || (s.Token == 0 && t > s.Last))
}

// learn returns s with the holder's token now known to be t.
func (s LockState) learn(t uint64) LockState {
	s.Token, s.Last = t, max(s.Last, t)
	return s
}

// expired returns the state after the holder's lease ended.
func (s LockState) expired() LockState { return LockState{Last: s.Last, Delayed: true} }

// fencePassed reports whether a fenced write's refusal code shows that the
// fence was accepted: the state machine checks the fence before anything
// else, so an applied write or an arithmetic refusal means the token held.
func fencePassed(code string) (passed, known bool) {
	switch code {
	case "", history.CodeOverflow, history.CodeUnderflow, history.CodeOutOfRange:
		return true, true
	case history.CodeStaleToken:
		return false, true
	}
	return false, false
}

// LockStep is the sequential specification of one abacus lease mutex with
// fencing tokens. It returns every state the lock may be in after the
// operation, none if the operation's output is impossible from s.
//
// With mayExpire, the holder's lease may end at any moment without an
// operation in the history (its owner paused or partitioned past the TTL):
// before each operation a held lock may have become free, and then it may
// stay unavailable (refusing acquisitions with lock_held) for the holder's
// lock-delay. Without it, a lock stays held until released.
//
// An acquisition or release whose outcome is unknown may or may not have
// taken effect; both results are kept. An acquisition refused with
// lease_expired counts as unknown: its lease ended while it waited, and it
// may have been granted in between.
func LockStep(s LockState, ev *Event, out *history.Output, mayExpire bool) []LockState {
	return lockStepExpiring(s, ev, out, mayExpire, nil)
}

// lockStepExpiring appends to next what LockStep returns.
func lockStepExpiring(s LockState, ev *Event, out *history.Output, mayExpire bool, next []LockState) []LockState {
	next = lockStep(s, ev, out, next)
	if mayExpire && s.Held {
		next = lockStep(s.expired(), ev, out, next)
	}
	return next
}

// lockStep appends to next the states reachable from s by the operation,
// without a lease expiring.
func lockStep(s LockState, ev *Event, out *history.Output, next []LockState) []LockState {
	op := ev.Op
	unknown := ev.Unknown || out == nil
	switch {
	case unknown && op.Kind != history.Acquire && op.Kind != history.Release:
		return append(next, s) // keep-alives, reads and fenced writes: no effect on the lock
	case op.Kind == history.Acquire:
		if unknown || out.Error == history.CodeLeaseExpired {
			next = append(next, s)
			if !s.Held {
				next = append(next, LockState{Held: true, Last: s.Last})
			}
			return next
		}
		switch out.Error {
		case "":
			t := out.Token
			switch {
			case s.holds(t):
				// The holder acquiring again keeps its token. (The model does
				// not track holders; Locks reports one token granted to two.)
				return append(next, s.learn(t))
			case !s.Held && t > s.Last:
				return append(next, LockState{Held: true, Token: t, Last: t})
			}
			return next
		case history.CodeLockHeld:
			if s.Held || s.Delayed {
				return append(next, s)
			}
			return next
		}
		return append(next, s)

	case op.Kind == history.Release:
		t := op.In.Token
		if unknown {
			next = append(next, s)
			if s.holds(t) {
				next = append(next, LockState{Last: max(s.Last, t)})
			}
			return next
		}
		switch out.Error {
		case "":
			if s.holds(t) {
				return append(next, LockState{Last: max(s.Last, t)})
			}
			return next
		case history.CodeStaleToken, history.CodeLeaseExpired:
			return refused(s, t, next)
		}
		return append(next, s)

	case op.Kind == history.KeepAlive:
		t := op.In.Token
		switch out.Error {
		case "":
			if s.holds(t) {
				return append(next, s.learn(t))
			}
			return next
		case history.CodeStaleToken, history.CodeLeaseExpired:
			return refused(s, t, next)
		}
		return append(next, s)

	case op.Kind == history.LockGet:
		switch {
		case out.Error != "":
			return append(next, s)
		case !out.Held:
			if !s.Held {
				return append(next, s)
			}
			return next
		case s.holds(out.Token):
			return append(next, s.learn(out.Token))
		}
		return next

	case op.Fenced():
		t := op.In.Fence.Token
		passed, known := fencePassed(out.Error)
		switch {
		case !known:
			return append(next, s)
		case passed:
			if s.holds(t) {
				return append(next, s.learn(t))
			}
			return next
		}
		return refused(s, t, next)
	}
	return next
}

// refused appends the state after a refusal of token t: impossible if t
// certainly holds the lock, else nothing changed. (If the holder's token is
// unknown, it may be t or not; only "not" allows the refusal.)
func refused(s LockState, t uint64, next []LockState) []LockState {
	if s.Held && s.Token == t {
		return next
	}
	return append(next, s)
}

// LockModel returns the porcupine model of abacus lease mutexes, partitioned
// by lock name, for operations built by LockOperations. Its states are sets
// of LockState (a power-set construction over LockStep), bounded like
// CounterModel's. mayExpire says whether leases can end during the run
// without an operation in the history; see LockStep.
func LockModel(mayExpire bool) porcupine.Model {
	return lockModel(mayExpire, DefaultMaxStates, new(atomic.Bool))
}

func lockModel(mayExpire bool, maxStates int, exploded *atomic.Bool) porcupine.Model {
	return setModel(spec[LockState]{
		init: LockState{},
		step: func(s LockState, ev *Event, out *history.Output, dst []LockState) []LockState {
			return lockStepExpiring(s, ev, out, mayExpire, dst)
		},
		hash: func(s LockState) uint64 {
			h := (s.Token*0x9e3779b97f4a7c15 ^ s.Last*0xc2b2ae3d27d4eb4f) << 2
			if s.Held {
				h |= 1
			}
			if s.Delayed {
				h |= 2
			}
			return h
		},
		compare: func(a, b LockState) int {
			return cmp.Or(cmpBool(a.Held, b.Held), cmp.Compare(a.Token, b.Token), cmp.Compare(a.Last, b.Last), cmpBool(a.Delayed, b.Delayed))
		},
		describe: func(s LockState) string {
			switch {
			case !s.Held && s.Delayed:
				return fmt.Sprintf("free, maybe delayed (last token %d)", s.Last)
			case !s.Held:
				return fmt.Sprintf("free (last token %d)", s.Last)
			case s.Token == 0:
				return fmt.Sprintf("held, token unknown > %d", s.Last)
			}
			return fmt.Sprintf("held, token %d", s.Token)
		},
	}, maxStates, exploded)
}
