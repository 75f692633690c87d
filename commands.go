package abacus

import (
	"crypto/sha256"
	"fmt"
	"time"
	"unicode/utf8"
)

// Op names what a Command does. The numbering is part of the log encoding:
// never renumber, only append.
type Op uint8

// Operations.
const (
	opInvalid Op = iota
	// OpGet reads a counter (through the log, where a path orders reads that way).
	OpGet
	// OpAdd adds Delta to a counter, optionally within [Min, Max].
	OpAdd
	// OpSet sets a counter to Value and returns the previous value.
	OpSet
	// OpCompareAndSet sets a counter to Value if it equals Old.
	OpCompareAndSet
	// OpDelete removes a counter and returns its previous value.
	OpDelete
	// OpBatch applies Ops atomically: all succeed, or nothing changes.
	OpBatch
	// OpTick only advances state-machine time, expiring whatever is due.
	OpTick
	// OpLeaseGrant creates a lease with TTL; the result carries its id.
	OpLeaseGrant
	// OpLeaseKeepAlive renews lease Lease for its TTL.
	OpLeaseKeepAlive
	// OpLeaseRevoke ends lease Lease and releases everything attached to it.
	OpLeaseRevoke
	// OpLeaseGet reports lease Lease's TTL and remaining time.
	OpLeaseGet
	// OpLockAcquire acquires lock Name for Holder under lease Lease. With
	// FlagWait, a held lock queues the request instead of refusing it.
	OpLockAcquire
	// OpLockRelease releases lock Name if Token holds it, or withdraws a
	// queued request of Lease.
	OpLockRelease
	// OpLockGet reports lock Name's holder, token and lease.
	OpLockGet
	// OpSessionOpen opens a client session for exactly-once proposals; the
	// result's Value is its id. Only the state machine issues session ids,
	// so an id it does not know was never opened or has been forgotten.
	OpSessionOpen
	opLimit // first unused value
)

var opNames = [opLimit]string{
	opInvalid:        "invalid",
	OpGet:            "get",
	OpAdd:            "add",
	OpSet:            "set",
	OpCompareAndSet:  "cas",
	OpDelete:         "delete",
	OpBatch:          "batch",
	OpTick:           "tick",
	OpLeaseGrant:     "lease-grant",
	OpLeaseKeepAlive: "lease-keepalive",
	OpLeaseRevoke:    "lease-revoke",
	OpLeaseGet:       "lease-get",
	OpLockAcquire:    "lock-acquire",
	OpLockRelease:    "lock-release",
	OpLockGet:        "lock-get",
	OpSessionOpen:    "session-open",
}

// String returns the operation's short name.
func (o Op) String() string {
	if o < opLimit {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// ReadOnly reports whether the operation never changes state.
func (o Op) ReadOnly() bool { return o == OpGet || o == OpLeaseGet || o == OpLockGet }

// Flags modify a Command.
type Flags uint8

// Command flags.
const (
	// FlagMin makes an add conditional: it fails with ErrOutOfRange if the
	// result would be below Min.
	FlagMin Flags = 1 << iota
	// FlagMax makes an add conditional: it fails with ErrOutOfRange if the
	// result would be above Max.
	FlagMax
	// FlagWait queues a lock request behind the current holder instead of
	// refusing it.
	FlagWait
	// FlagWithdraw makes a lock release by lease only withdraw the lease's
	// queued requests: a hold the lease already has is kept and reported
	// (Result.Token), so a waiter that gives up learns whether it won.
	FlagWithdraw
	flagsAll = FlagMin | FlagMax | FlagWait | FlagWithdraw
)

// Limits on what a command may carry. They are part of the contract between
// replicas: a command within them on one replica is within them on all.
const (
	// MaxNameLen is the longest counter or lock name, in bytes.
	MaxNameLen = 256
	// MaxHolderLen is the longest lock holder id, in bytes.
	MaxHolderLen = 256
	// MaxBatchOps is the largest number of operations in one batch.
	MaxBatchOps = 1024
	// MaxTTL is the longest lease or counter expiry.
	MaxTTL = 365 * 24 * time.Hour
)

// Command is one operation on the state machine. Which fields matter depends
// on Op; the rest stay zero.
type Command struct {
	Op    Op
	Flags Flags
	// Name is the counter name (get, add, set, cas, delete) or lock name.
	Name string
	// Delta is what an add adds.
	Delta int64
	// Value is what a set writes, or the new value of a compare-and-set.
	Value int64
	// Old is the value a compare-and-set expects.
	Old int64
	// Min and Max bound an add, with FlagMin and FlagMax.
	Min, Max int64
	// FenceLock and FenceToken guard a write: it is refused with
	// ErrStaleToken unless FenceToken currently holds lock FenceLock.
	FenceLock  string
	FenceToken uint64
	// Instance makes a counter operation act on the slice of that instance
	// (a lease id).
	Instance uint64
	// TTL is a lease's time to live (lease grant), or a counter's expiry
	// window (add): the counter resets after TTL from its first add.
	TTL time.Duration
	// Lease names a lease: to renew, revoke, inspect, or to hold a lock under.
	Lease uint64
	// Holder identifies who acquires a lock.
	Holder string
	// Token is the fencing token a lock release presents.
	Token uint64
	// Ops are the operations of a batch.
	Ops []Command
	// Delay is a lock-delay: when the holder's lease ends without a release,
	// the lock stays unavailable for Delay (lock acquire only).
	Delay time.Duration
}

// Fenced reports whether the command carries a fence.
func (c *Command) Fenced() bool { return c.FenceLock != "" }

// Validate reports whether the command is well formed. The state machine
// runs the same check, so a command that passes here is judged identically
// by every replica.
func (c *Command) Validate() error { return c.validate(false) }

func (c *Command) validate(inBatch bool) error {
	if c.Flags&^flagsAll != 0 {
		return invalidf("unknown flags %#x", uint8(c.Flags))
	}
	if c.Fenced() {
		switch c.Op {
		case OpAdd, OpSet, OpCompareAndSet, OpDelete:
		default:
			return invalidf("a fence guards counter writes only, not %s", c.Op)
		}
		if err := validName("fence lock", c.FenceLock); err != nil {
			return err
		}
		if c.FenceToken == 0 {
			return invalidf("fence token must be positive")
		}
	}
	if c.TTL < 0 || c.TTL > MaxTTL {
		return invalidf("ttl %v outside [0, %v]", c.TTL, MaxTTL)
	}
	if c.Delay < 0 || c.Delay > MaxTTL {
		return invalidf("lock delay %v outside [0, %v]", c.Delay, MaxTTL)
	}
	if c.Delay != 0 && c.Op != OpLockAcquire {
		return invalidf("lock delay applies to lock acquire only")
	}
	switch c.Op {
	case OpGet, OpAdd, OpSet, OpCompareAndSet, OpDelete:
		if err := validName("counter name", c.Name); err != nil {
			return err
		}
		if c.Flags&(FlagWait|FlagWithdraw) != 0 {
			return invalidf("lock flags on a counter operation")
		}
		if c.Flags&(FlagMin|FlagMax) != 0 && c.Op != OpAdd {
			return invalidf("bounds apply to add only")
		}
		if c.Flags&FlagMin != 0 && c.Flags&FlagMax != 0 && c.Min > c.Max {
			return invalidf("min %d above max %d", c.Min, c.Max)
		}
		if c.TTL != 0 && c.Op != OpAdd {
			return invalidf("expiry applies to add only")
		}
		if c.Instance != 0 && c.Op == OpCompareAndSet {
			return invalidf("compare-and-set acts on the whole counter, not an instance's slice")
		}
		if c.Op == OpGet && c.Fenced() {
			return invalidf("a read carries no fence")
		}
		return nil
	case OpBatch:
		if inBatch {
			return invalidf("nested batch")
		}
		if len(c.Ops) == 0 || len(c.Ops) > MaxBatchOps {
			return invalidf("batch of %d operations outside [1, %d]", len(c.Ops), MaxBatchOps)
		}
		for i := range c.Ops {
			op := &c.Ops[i]
			switch op.Op {
			case OpGet, OpAdd, OpSet, OpCompareAndSet, OpDelete:
			default:
				return invalidf("batch operation %d: %s is not a counter operation", i, op.Op)
			}
			if err := op.validate(true); err != nil {
				return fmt.Errorf("batch operation %d: %w", i, err)
			}
		}
		return nil
	}
	if inBatch {
		return invalidf("%s in a batch", c.Op)
	}
	if c.Instance != 0 {
		return invalidf("instance on a %s command", c.Op)
	}
	switch c.Op {
	case OpTick, OpSessionOpen:
		return nil
	case OpLeaseGrant:
		if c.TTL <= 0 {
			return invalidf("lease ttl must be positive")
		}
		return nil
	case OpLeaseKeepAlive, OpLeaseRevoke, OpLeaseGet:
		if c.Lease == 0 {
			return invalidf("lease id must be positive")
		}
		return nil
	case OpLockAcquire:
		if err := validName("lock name", c.Name); err != nil {
			return err
		}
		if c.Lease == 0 {
			return invalidf("lock requires a lease")
		}
		if c.Holder == "" || len(c.Holder) > MaxHolderLen || !utf8.ValidString(c.Holder) {
			return invalidf("holder must be 1-%d bytes of UTF-8", MaxHolderLen)
		}
		return nil
	case OpLockRelease:
		if err := validName("lock name", c.Name); err != nil {
			return err
		}
		if c.Token == 0 && c.Lease == 0 {
			return invalidf("release names a token or a lease")
		}
		return nil
	case OpLockGet:
		return validName("lock name", c.Name)
	}
	return invalidf("unknown operation %d", uint8(c.Op))
}

func validName(what, name string) error {
	if len(name) == 0 || len(name) > MaxNameLen {
		return invalidf("%s must be 1-%d bytes, got %d", what, MaxNameLen, len(name))
	}
	if !utf8.ValidString(name) {
		return invalidf("%s is not valid UTF-8", what)
	}
	return nil
}

// Proposal is a command as it travels through the log: stamped with the
// client's identity for exactly-once application, and with the proposer's
// time, from which the state machine's clock advances.
type Proposal struct {
	// Client identifies the proposing client session, an id from
	// OpSessionOpen; 0 means no session (ticks, reads, session opens, and
	// proposals that carry a Key instead).
	Client uint64
	// Seq is the client's sequence number for this proposal, from 1. A
	// proposal with a (Client, Seq) already applied returns the first result.
	Seq uint64
	// Ack is the client's lowest unacknowledged sequence number: the client
	// has seen the results of every Seq below it, so the state machine may
	// drop them.
	Ack uint64
	// Time is the proposer's timestamp in nanoseconds of state-machine time.
	// The state machine's clock takes the larger of its value and this.
	Time int64
	// Cmd is the operation.
	Cmd Command
	// Key, when not zero, makes the proposal idempotent by key instead of
	// by session: the first proposal with a key runs, and any other with
	// the same key returns its result, for as long as the state machine
	// keeps the key (FSMOptions.KeyTTL).
	Key KeyID
}

// KeyID identifies an idempotency key in the log: the first 16 bytes of the
// key's SHA-256, so that keys of any length take the same room and nobody
// can choose a key that collides with another's. The zero KeyID is no key.
type KeyID [16]byte

// KeyIDOf returns the KeyID of an idempotency key.
func KeyIDOf(key string) KeyID {
	sum := sha256.Sum256([]byte(key))
	return KeyID(sum[:16])
}

// IsZero reports whether k is the zero KeyID (no key).
func (k KeyID) IsZero() bool { return k == KeyID{} }

// Result is the outcome of a command. Which fields matter depends on the
// operation; Code tells whether it succeeded.
type Result struct {
	// Code is CodeOK on success, else why the command was refused.
	Code Code
	// Value is the counter's value after the operation (or the current
	// value, for a failed compare-and-set or a read).
	Value int64
	// Previous is the value before a set or delete.
	Previous int64
	// Mine is the calling instance's slice of the counter.
	Mine int64
	// Exists reports whether the counter exists (reads), or whether a lock
	// is held (lock reads).
	Exists bool
	// Swapped reports whether a compare-and-set swapped.
	Swapped bool
	// Revision is the log index of the counter's last change.
	Revision uint64
	// Token is a lock's fencing token (0 while a request is queued).
	Token uint64
	// Lease is a lease id: the one granted, or the one holding a lock.
	Lease uint64
	// TTL is a lease's granted time to live.
	TTL time.Duration
	// Remaining is the time left on a lease, in state-machine time.
	Remaining time.Duration
	// Holder is a lock's holder (also reported when CodeLockHeld).
	Holder string
	// Index is the position of the failing operation in a batch, else -1.
	Index int
	// Results are the per-operation results of a successful batch.
	Results []Result
}

// Err returns nil for a successful result, else an *OpError wrapping the
// sentinel for its Code. cmd supplies the operation and name for the message.
func (r *Result) Err(cmd *Command) error {
	if r.Code == CodeOK {
		return nil
	}
	e := &OpError{Code: r.Code, Op: cmd.Op, Name: cmd.Name, Index: r.Index, Holder: r.Holder}
	if r.Index >= 0 && r.Index < len(cmd.Ops) {
		e.Op, e.Name = cmd.Ops[r.Index].Op, cmd.Ops[r.Index].Name
	}
	return e
}

func failed(code Code) Result { return Result{Code: code, Index: -1} }
