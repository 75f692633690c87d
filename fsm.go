package abacus

import (
	"fmt"
	"sync"
	"time"
)

// FSM is abacus's replicated state machine: named int64 counters, leases,
// fenced locks, instance slices, the exactly-once table and state-machine
// time. It is deterministic: the same proposals applied in the same order
// give the same results and the same snapshot bytes on every replica. It
// never reads a clock, a random source or the environment, and nothing it
// returns or encodes depends on map iteration order.
//
// One goroutine applies entries (Apply); any number may read concurrently
// (Read, Index, Now). The FSM knows nothing of the protocol that orders its
// entries: RaftFSM adapts it to hashicorp/raft, and package rabia drives it
// directly.
type FSM struct {
	mu   sync.RWMutex
	opts FSMOptions
	obs  Observer

	index uint64 // log position of the last applied entry
	now   int64  // state-machine time, ns; never decreases
	ops   uint64 // operations applied that changed state

	counters map[string]*counter
	sessions *sessionTable
	keys     *keyTable
	leases   map[uint64]*lease
	locks    map[string]*lock
	timers   timerHeap

	nextLease uint64 // last lease id granted
	nextToken uint64 // last fencing token issued, across all locks

	// batch, while a batch applies: the undo journal.
	journal *journal
}

// FSMOptions bound the state machine's memory: the exactly-once tables and
// every kind of state a client can create. Every replica of a cluster must
// use the same options: they decide results. A zero or negative field takes
// its default.
type FSMOptions struct {
	// SessionTTL is how long, in state-machine time, a client session may be
	// idle before it is forgotten. Default 15 minutes.
	SessionTTL time.Duration
	// SessionWindow is the largest number of unacknowledged proposals one
	// client may have: a proposal with Seq >= Ack+SessionWindow is refused
	// with ErrTooManyInFlight. Default 16384.
	SessionWindow uint64
	// MaxSessions bounds the number of client sessions; past it the least
	// recently active is evicted. Default 131072.
	MaxSessions int
	// MaxResults bounds the recorded results over all sessions; past it the
	// least recently active sessions are evicted. Default 1048576.
	MaxResults int
	// KeyTTL is how long, in state-machine time, the result of a write with
	// an idempotency key is kept after it applied. Default 15 minutes (the
	// HTTP API promises at least 10).
	KeyTTL time.Duration
	// MaxKeys bounds the results kept for idempotency keys (a batch counts
	// one per operation). Keys are never dropped before KeyTTL: at the bound
	// a write with a new key fails with ErrLimitReached, so the keyed write
	// rate a cluster sustains is MaxKeys/KeyTTL (about 1,165/s with the
	// defaults). Each key takes about 200 bytes. Default 1048576.
	MaxKeys int
	// MaxCounters bounds the number of counters; an operation that would
	// create one more fails with ErrLimitReached. Default 4194304.
	MaxCounters int
	// MaxLeases bounds the number of live leases (instances and lock
	// holders' leases included); a grant past it fails with
	// ErrLimitReached. Default 1048576.
	MaxLeases int
	// MaxLocks bounds the number of locks held or waited for; an acquire
	// of one more fails with ErrLimitReached. Default 1048576.
	MaxLocks int
}

func (o FSMOptions) withDefaults() FSMOptions {
	if o.SessionTTL <= 0 {
		o.SessionTTL = 15 * time.Minute
	}
	if o.SessionWindow == 0 {
		o.SessionWindow = 1 << 14
	}
	if o.MaxSessions <= 0 {
		o.MaxSessions = 1 << 17
	}
	if o.MaxResults <= 0 {
		o.MaxResults = 1 << 20
	}
	if o.KeyTTL <= 0 {
		o.KeyTTL = 15 * time.Minute
	}
	if o.MaxKeys <= 0 {
		o.MaxKeys = 1 << 20
	}
	if o.MaxCounters <= 0 {
		o.MaxCounters = 1 << 22
	}
	if o.MaxLeases <= 0 {
		o.MaxLeases = 1 << 20
	}
	if o.MaxLocks <= 0 {
		o.MaxLocks = 1 << 20
	}
	// One session alone must fit under the results cap, since the session
	// being served is never evicted.
	o.SessionWindow = min(o.SessionWindow, uint64(o.MaxResults))
	return o
}

// Observer is told of changes as the FSM applies them, for watches and lock
// waiters. Calls happen on the applying goroutine with the FSM locked: they
// must be quick, must not block, and must not call back into the FSM.
type Observer interface {
	// CounterChanged reports a counter's new value; exists is false when it
	// was deleted or expired.
	CounterChanged(name string, value int64, revision uint64, exists bool)
	// LockChanged reports a lock's new holder; token is 0 when it is free.
	LockChanged(name, holder string, lease, token uint64)
	// LeaseEnded reports a lease that expired or was revoked.
	LeaseEnded(id uint64)
}

// NewFSM returns an empty state machine.
func NewFSM(opts FSMOptions, obs Observer) *FSM {
	f := &FSM{opts: opts.withDefaults(), obs: obs}
	f.reset()
	return f
}

func (f *FSM) reset() {
	f.index, f.now, f.ops = 0, 0, 0
	f.counters = make(map[string]*counter)
	f.sessions = newSessionTable()
	f.keys = newKeyTable()
	f.leases = make(map[uint64]*lease)
	f.locks = make(map[string]*lock)
	f.timers = nil
	f.nextLease, f.nextToken = 0, 0
}

// Index returns the log position of the last applied entry.
func (f *FSM) Index() uint64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.index
}

// Now returns state-machine time, in nanoseconds.
func (f *FSM) Now() int64 {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.now
}

// ApplyEntry decodes an encoded entry and applies it at log position index.
func (f *FSM) ApplyEntry(index uint64, data []byte) ([]Result, error) {
	props, err := DecodeEntry(data)
	if err != nil {
		// A corrupt entry is skipped identically on every replica; the index
		// still advances so reads waiting for it are released.
		f.mu.Lock()
		f.advanceIndex(index)
		f.mu.Unlock()
		return nil, err
	}
	return f.Apply(index, props), nil
}

// Apply applies the proposals of one log entry, at log position index, and
// returns one result per proposal. An index at or below the last applied
// one is ignored (it was applied before a restore or restart) and returns
// nil.
func (f *FSM) Apply(index uint64, props []Proposal) []Result {
	f.mu.Lock()
	defer f.mu.Unlock()
	if index != 0 && index <= f.index {
		return nil
	}
	f.advanceIndex(index)
	results := make([]Result, len(props))
	for i := range props {
		results[i] = f.applyProposal(&props[i])
	}
	return results
}

func (f *FSM) advanceIndex(index uint64) {
	if index > f.index {
		f.index = index
	}
}

func (f *FSM) applyProposal(p *Proposal) Result {
	f.advanceTime(p.Time)
	switch {
	case p.Cmd.Op.ReadOnly():
		return f.execute(&p.Cmd)
	case !p.Key.IsZero():
		return f.keys.apply(f, p)
	case p.Client == 0 || p.Seq == 0:
		return f.execute(&p.Cmd)
	}
	return f.sessions.apply(f, p)
}

// advanceTime moves state-machine time forward to t (never back) and
// expires whatever is due at the new time: leases (with everything attached
// to them), expiring counters, lock-delays, idle client sessions and
// idempotency keys.
func (f *FSM) advanceTime(t int64) {
	if t > f.now {
		f.now = t
	}
	f.fireTimers()
	f.sessions.expire(f.now - int64(f.opts.SessionTTL))
	f.keys.expire(f.now)
}

// execute validates and runs one command.
func (f *FSM) execute(c *Command) Result {
	if err := c.Validate(); err != nil {
		return failed(CodeInvalidArgument)
	}
	switch c.Op {
	case OpGet:
		return f.get(c)
	case OpAdd, OpSet, OpCompareAndSet, OpDelete:
		r := f.writeCounter(c)
		if r.Code == CodeOK {
			f.notifyCounter(c.Name)
		}
		return r
	case OpBatch:
		return f.batch(c)
	case OpTick:
		return Result{Index: -1}
	case OpLeaseGrant:
		return f.grantLease(c)
	case OpLeaseKeepAlive:
		return f.keepAlive(c)
	case OpLeaseRevoke:
		return f.revokeLease(c)
	case OpLeaseGet:
		return f.leaseInfo(c)
	case OpLockAcquire:
		return f.acquire(c)
	case OpLockRelease:
		return f.release(c)
	case OpLockGet:
		return f.lockInfo(c)
	case OpSessionOpen:
		return f.sessions.open(f)
	}
	return failed(CodeInvalidArgument)
}

// Read runs a read-only command against the current state, without going
// through the log and without advancing time. Callers decide whether the
// state is fresh enough (see Replicator.Read).
func (f *FSM) Read(c Command) Result {
	if !c.Op.ReadOnly() {
		return failed(CodeInvalidArgument)
	}
	if err := c.Validate(); err != nil {
		return failed(CodeInvalidArgument)
	}
	f.mu.RLock()
	defer f.mu.RUnlock()
	switch c.Op {
	case OpGet:
		return f.get(&c)
	case OpLeaseGet:
		return f.leaseInfo(&c)
	default:
		return f.lockInfo(&c)
	}
}

// Stats summarises the state, for status pages and tests.
type Stats struct {
	Index     uint64
	Now       int64
	Ops       uint64
	Counters  int
	Sessions  int
	Results   int
	Keys      int
	Leases    int
	Locks     int
	Timers    int
	NextToken uint64
}

// Stats returns a summary of the state.
func (f *FSM) Stats() Stats {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return Stats{
		Index: f.index, Now: f.now, Ops: f.ops,
		Counters: len(f.counters), Sessions: len(f.sessions.byID), Results: f.sessions.results, Keys: f.keys.len(),
		Leases: len(f.leases), Locks: len(f.locks), Timers: len(f.timers), NextToken: f.nextToken,
	}
}

// String implements fmt.Stringer.
func (s Stats) String() string {
	return fmt.Sprintf("index=%d now=%d ops=%d counters=%d sessions=%d results=%d keys=%d leases=%d locks=%d",
		s.Index, s.Now, s.Ops, s.Counters, s.Sessions, s.Results, s.Keys, s.Leases, s.Locks)
}
