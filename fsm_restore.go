package abacus

import (
	"fmt"
	"io"
	"slices"
)

// RestoreAt is Restore for a caller that knows the log position the
// snapshot must cover: a snapshot whose index is not index is refused with
// an error wrapping ErrCorrupt, and the current state is left as it was.
func (f *FSM) RestoreAt(r io.Reader, index uint64) error {
	return f.restore(r, func(fresh *FSM) error {
		if fresh.index != index {
			return fmt.Errorf("%w: snapshot at index %d, expected %d", ErrCorrupt, fresh.index, index)
		}
		return nil
	})
}

// notifyRestored tells the observer what a restore changed, comparing the
// state it replaced (counters, locks and leases as they were) with the
// current one: every counter whose value, revision or existence changed,
// then every lock whose holder, lease or token changed (a lock that is
// gone reads as free), then every lease that no longer exists, each group
// in order of name or id so that every replica reports the same sequence.
// A counter that is gone is reported at the restored index. Called with
// the FSM locked, as the Observer contract requires.
func (f *FSM) notifyRestored(counters map[string]*counter, locks map[string]*lock, leases map[uint64]*lease) {
	if f.obs == nil {
		return
	}
	var names []string
	for name, old := range counters {
		if k := f.counters[name]; k == nil || k.value != old.value || k.rev != old.rev {
			names = append(names, name)
		}
	}
	for name := range f.counters {
		if counters[name] == nil {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		f.notifyCounter(name)
	}

	names = names[:0]
	held := func(lk *lock) (string, uint64, uint64) {
		if lk == nil {
			return "", 0, 0
		}
		return lk.holder, lk.lease, lk.token
	}
	for name, old := range locks {
		h0, l0, t0 := held(old)
		if h1, l1, t1 := held(f.locks[name]); h0 != h1 || l0 != l1 || t0 != t1 {
			names = append(names, name)
		}
	}
	for name, lk := range f.locks {
		if locks[name] == nil && lk.token != 0 {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	for _, name := range names {
		holder, lease, token := held(f.locks[name])
		f.obs.LockChanged(name, holder, lease, token)
	}

	var ended []uint64
	for id := range leases {
		if f.leases[id] == nil {
			ended = append(ended, id)
		}
	}
	slices.Sort(ended)
	for _, id := range ended {
		f.obs.LeaseEnded(id)
	}
}
