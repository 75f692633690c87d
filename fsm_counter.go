package abacus

import (
	"math"
	"time"
)

// counter is one named int64. Its value is the total over all writers; an
// instance's own contributions are also kept as its slice, so that they can
// leave the total when the instance's lease ends.
type counter struct {
	value    int64
	rev      uint64           // log index of the last change
	ops      uint64           // changes applied to this counter
	modified int64            // state-machine time of the last change
	expires  int64            // state-machine time it resets at; 0 never
	slices   map[uint64]int64 // instance lease id -> contribution; nil when none
}

// checkedAdd returns a+b, or the code saying which way it left int64.
func checkedAdd(a, b int64) (int64, Code) {
	s := a + b
	switch {
	case b > 0 && s < a:
		return 0, CodeOverflow
	case b < 0 && s > a:
		return 0, CodeUnderflow
	}
	return s, CodeOK
}

// checkedSub returns a-b, or the code saying which way it left int64.
func checkedSub(a, b int64) (int64, Code) {
	s := a - b
	switch {
	case b < 0 && s < a:
		return 0, CodeOverflow
	case b > 0 && s > a:
		return 0, CodeUnderflow
	}
	return s, CodeOK
}

// after returns the state-machine time d from now, clamped to the int64
// range: a proposer's time near its end must not wrap a deadline into the
// past.
func (f *FSM) after(d time.Duration) int64 {
	if f.now > math.MaxInt64-int64(d) {
		return math.MaxInt64
	}
	return f.now + int64(d)
}

// saturatingSub returns a-b clamped to the int64 range. It is used only
// where a total must drop a slice it was built from (a lease ending), which
// cannot be refused; the clamp is deterministic.
func saturatingSub(a, b int64) int64 {
	s := a - b
	switch {
	case b < 0 && s < a:
		return math.MaxInt64
	case b > 0 && s > a:
		return math.MinInt64
	}
	return s
}

func (f *FSM) get(c *Command) Result {
	r := Result{Index: -1}
	if k := f.counters[c.Name]; k != nil {
		r.Value, r.Exists, r.Revision = k.value, true, k.rev
		if c.Instance != 0 {
			r.Mine = k.slices[c.Instance]
		}
	}
	return r
}

// writeCounter runs add, set, compare-and-set or delete. It changes nothing
// unless it returns CodeOK.
func (f *FSM) writeCounter(c *Command) Result {
	if c.Fenced() && !f.fenceHolds(c.FenceLock, c.FenceToken) {
		return failed(CodeStaleToken)
	}
	var inst *lease
	if c.Instance != 0 {
		if inst = f.leases[c.Instance]; inst == nil {
			return failed(f.missingLease(c.Instance))
		}
	}
	k := f.counters[c.Name]
	var cur, mine int64
	if k != nil {
		cur = k.value
		if inst != nil {
			mine = k.slices[inst.id]
		}
	}
	switch c.Op {
	case OpAdd:
		total, code := checkedAdd(cur, c.Delta)
		if code != CodeOK {
			return failed(code)
		}
		if (c.Flags&FlagMin != 0 && total < c.Min) || (c.Flags&FlagMax != 0 && total > c.Max) {
			return failed(CodeOutOfRange)
		}
		if inst != nil {
			if mine, code = checkedAdd(mine, c.Delta); code != CodeOK {
				return failed(code)
			}
		}
		if f.full(k) {
			return failed(CodeLimitReached)
		}
		k = f.mutable(c.Name)
		k.value = total
		if inst != nil {
			f.setSlice(c.Name, k, inst, mine)
		}
		if c.TTL > 0 && k.expires == 0 {
			k.expires = f.after(c.TTL)
			f.timers.push(timer{at: k.expires, kind: timerCounter, name: c.Name})
		}
		f.touch(k)
		return Result{Value: total, Mine: mine, Exists: true, Revision: k.rev, Index: -1}

	case OpSet:
		total := c.Value
		if inst != nil {
			base, code := checkedSub(cur, mine)
			if code == CodeOK {
				total, code = checkedAdd(base, c.Value)
			}
			if code != CodeOK {
				return failed(code)
			}
		}
		if f.full(k) {
			return failed(CodeLimitReached)
		}
		k = f.mutable(c.Name)
		k.value = total
		r := Result{Value: total, Previous: cur, Exists: true, Index: -1}
		if inst != nil {
			f.setSlice(c.Name, k, inst, c.Value)
			r.Mine = c.Value
		} else {
			f.clearSlices(c.Name, k)
		}
		f.touch(k)
		r.Revision = k.rev
		return r

	case OpCompareAndSet:
		if cur != c.Old {
			return Result{Value: cur, Exists: k != nil, Index: -1, Revision: rev(k)}
		}
		if f.full(k) {
			return failed(CodeLimitReached)
		}
		k = f.mutable(c.Name)
		k.value = c.Value
		f.clearSlices(c.Name, k)
		f.touch(k)
		return Result{Value: c.Value, Previous: cur, Swapped: true, Exists: true, Revision: k.rev, Index: -1}

	default: // OpDelete
		if k == nil {
			return Result{Index: -1}
		}
		if inst != nil {
			total, code := checkedSub(cur, mine)
			if code != CodeOK {
				return failed(code)
			}
			k = f.mutable(c.Name)
			k.value = total
			f.setSlice(c.Name, k, inst, 0)
			f.touch(k)
			return Result{Value: total, Previous: cur, Exists: true, Revision: k.rev, Index: -1}
		}
		f.mutable(c.Name)
		f.removeCounter(c.Name, k)
		f.ops++
		return Result{Previous: cur, Index: -1, Revision: f.index}
	}
}

func rev(k *counter) uint64 {
	if k == nil {
		return 0
	}
	return k.rev
}

// full reports whether writing counter k, nil when it does not exist yet,
// would take the counters past MaxCounters.
func (f *FSM) full(k *counter) bool { return k == nil && len(f.counters) >= f.opts.MaxCounters }

// mutable returns the counter to change, creating it if needed, and records
// its prior state in the batch journal.
func (f *FSM) mutable(name string) *counter {
	k := f.counters[name]
	if f.journal != nil {
		f.journal.save(name, k)
	}
	if k == nil {
		k = &counter{}
		f.counters[name] = k
	}
	return k
}

// touch records a change to k at the current position and time.
func (f *FSM) touch(k *counter) {
	k.rev = f.index
	k.ops++
	k.modified = f.now
	f.ops++
}

// setSlice sets inst's slice of counter name to v (removing it at 0) and
// keeps the lease's list of counters in step.
func (f *FSM) setSlice(name string, k *counter, inst *lease, v int64) {
	if v == 0 {
		if _, ok := k.slices[inst.id]; ok {
			delete(k.slices, inst.id)
			delete(inst.counters, name)
			if len(k.slices) == 0 {
				k.slices = nil
			}
		}
		return
	}
	if k.slices == nil {
		k.slices = make(map[uint64]int64, 1)
	}
	k.slices[inst.id] = v
	if inst.counters == nil {
		inst.counters = make(map[string]struct{}, 1)
	}
	inst.counters[name] = struct{}{}
}

// clearSlices drops every instance's slice of counter name, for a global
// write: the value the write sets is the whole total.
func (f *FSM) clearSlices(name string, k *counter) {
	for id := range k.slices {
		if l := f.leases[id]; l != nil {
			delete(l.counters, name)
		}
	}
	k.slices = nil
}

// removeCounter deletes counter name and detaches its slices.
func (f *FSM) removeCounter(name string, k *counter) {
	f.clearSlices(name, k)
	delete(f.counters, name)
}

func (f *FSM) notifyCounter(name string) {
	if f.obs == nil {
		return
	}
	if k := f.counters[name]; k != nil {
		f.obs.CounterChanged(name, k.value, k.rev, true)
	} else {
		f.obs.CounterChanged(name, 0, f.index, false)
	}
}

// expireCounter resets an expiring counter whose window has ended.
func (f *FSM) expireCounter(name string, k *counter) {
	f.removeCounter(name, k)
	f.ops++
	f.notifyCounter(name)
}

// batch applies c.Ops atomically. On the first failure every change made so
// far is undone from the journal and the result names the failing index.
func (f *FSM) batch(c *Command) Result {
	j := &journal{saved: make(map[string]*counter, len(c.Ops)), ops: f.ops}
	f.journal = j
	results := make([]Result, len(c.Ops))
	for i := range c.Ops {
		op := &c.Ops[i]
		var r Result
		if op.Op == OpGet {
			r = f.get(op)
		} else {
			r = f.writeCounter(op)
			if r.Code == CodeOK && op.Op == OpCompareAndSet && !r.Swapped {
				r.Code = CodeMismatch
			}
		}
		if r.Code != CodeOK {
			f.journal = nil
			j.undo(f)
			out := failed(r.Code)
			out.Index = i
			out.Value = r.Value
			return out
		}
		results[i] = r
	}
	f.journal = nil
	for _, name := range j.order {
		f.notifyCounter(name)
	}
	return Result{Results: results, Index: -1}
}

// journal records the state of each counter a batch changes, before its
// first change, so a failing batch can be undone.
type journal struct {
	saved map[string]*counter // name -> deep copy of the prior state; nil if absent
	order []string            // names in order of first change
	ops   uint64
}

func (j *journal) save(name string, k *counter) {
	if _, ok := j.saved[name]; ok {
		return
	}
	j.order = append(j.order, name)
	if k == nil {
		j.saved[name] = nil
		return
	}
	cp := *k
	if k.slices != nil {
		cp.slices = make(map[uint64]int64, len(k.slices))
		for id, v := range k.slices {
			cp.slices[id] = v
		}
	}
	j.saved[name] = &cp
}

func (j *journal) undo(f *FSM) {
	for _, name := range j.order {
		prior := j.saved[name]
		if cur := f.counters[name]; cur != nil {
			f.clearSlices(name, cur)
		}
		if prior == nil {
			delete(f.counters, name)
			continue
		}
		for id := range prior.slices {
			if l := f.leases[id]; l != nil {
				if l.counters == nil {
					l.counters = make(map[string]struct{}, 1)
				}
				l.counters[name] = struct{}{}
			}
		}
		f.counters[name] = prior
	}
	f.ops = j.ops
}
