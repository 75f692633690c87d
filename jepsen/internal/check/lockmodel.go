package check

import (
	"fmt"

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
	// Holder is the holder id of the current holder.
	Holder string
	// Last is the highest token known to have been issued; every new
	// acquisition returns a larger one.
	Last uint64
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
// fencing tokens. With mayExpire, the holder's lease may end at any moment
// without an operation in the history (its owner paused or partitioned past
// the TTL); the step then allows whatever an expiry between two operations
// explains. Without it, a lock stays held until released.
func LockStep(s LockState, ev *Event, out *history.Output, mayExpire bool) (bool, LockState) {
	op := ev.Op
	free := LockState{Last: s.Last}
	switch {
	case op.Kind == history.Acquire:
		if ev.Unknown {
			if !s.Held || mayExpire {
				return true, LockState{Held: true, Holder: op.In.Holder, Last: s.Last}
			}
			return true, s
		}
		switch out.Error {
		case "":
			t := out.Token
			if s.Held && s.Holder == op.In.Holder && s.holds(t) {
				return true, s.learn(t) // the holder acquiring again keeps its token
			}
			if (!s.Held || mayExpire) && t > s.Last {
				return true, LockState{Held: true, Token: t, Holder: op.In.Holder, Last: t}
			}
			return false, s
		case history.CodeLockHeld:
			return s.Held, s
		}
		return true, s

	case op.Kind == history.Release:
		t := op.In.Token
		if ev.Unknown {
			if s.Held && s.Token == t {
				return true, free
			}
			return true, s
		}
		switch out.Error {
		case "":
			if s.holds(t) {
				return true, free
			}
			return false, s
		case history.CodeStaleToken, history.CodeLeaseExpired:
			return refusedWhileHeld(s, t, mayExpire)
		}
		return true, s

	case op.Kind == history.KeepAlive:
		t := op.In.Token
		switch out.Error {
		case "":
			if s.holds(t) {
				return true, s.learn(t)
			}
			return false, s
		case history.CodeStaleToken, history.CodeLeaseExpired:
			return refusedWhileHeld(s, t, mayExpire)
		}
		return true, s

	case op.Kind == history.LockGet:
		if out.Error != "" {
			return true, s
		}
		if !out.Held {
			if !s.Held || mayExpire {
				return true, free
			}
			return false, s
		}
		if s.holds(out.Token) {
			next := s.learn(out.Token)
			if s.Token == 0 {
				next.Holder = out.Holder
			}
			return true, next
		}
		return false, s

	case op.Fenced():
		t := op.In.Fence.Token
		passed, known := fencePassed(out.Error)
		if !known {
			return true, s
		}
		if passed {
			if s.holds(t) {
				return true, s.learn(t)
			}
			return false, s
		}
		return refusedWhileHeld(s, t, mayExpire)
	}
	return false, s
}

// refusedWhileHeld judges a refusal of token t: legal unless t certainly
// holds the lock and the lease cannot have expired (then the refusal means
// it did, and the lock is free).
func refusedWhileHeld(s LockState, t uint64, mayExpire bool) (bool, LockState) {
	if s.Held && s.Token == t {
		if !mayExpire {
			return false, s
		}
		return true, LockState{Last: s.Last}
	}
	return true, s
}

// LockModel returns the porcupine model of abacus lease mutexes, partitioned
// by lock name, for operations built by LockOperations. mayExpire says
// whether leases can end during the run without an operation in the
// history; see LockStep.
func LockModel(mayExpire bool) porcupine.Model {
	return porcupine.Model{
		Partition: partitionByKey,
		Init:      func() any { return LockState{} },
		Step: func(state, input, output any) (bool, any) {
			out, _ := output.(*history.Output)
			return LockStep(state.(LockState), input.(*Event), out, mayExpire)
		},
		DescribeOperation: describeOperation,
		DescribeState: func(state any) string {
			s := state.(LockState)
			switch {
			case !s.Held:
				return fmt.Sprintf("free (last token %d)", s.Last)
			case s.Token == 0:
				return fmt.Sprintf("held by %q, token unknown > %d", s.Holder, s.Last)
			}
			return fmt.Sprintf("held by %q token %d", s.Holder, s.Token)
		},
	}
}
