// Package abacus keeps strongly consistent counters, leases and locks
// across a few machines, embedded in the services that use them: there is
// no server to run. Each process opens a Node; the nodes replicate one
// deterministic state machine, through Raft (the default) or the
// leaderless Rabia protocol (package rabia).
//
// # Opening a node
//
// A node with no peers is a one-node cluster in its data directory, the
// embedded default:
//
//	cfg := abacus.DefaultConfig()
//	cfg.ID, cfg.Dir, cfg.BindAddr = "n1", "/var/lib/app/abacus", "127.0.0.1:7000"
//	node, err := abacus.Open(cfg)
//	...
//	defer node.Close()
//
// For a cluster, every initial member gets the same Config.Peers. Any node
// accepts any call; followers forward to the leader over the one peer port
// (optionally mutual TLS, Config.TLS). Reopening a data directory restores
// the node's state.
//
// # Counters
//
// Counters are named int64s. Add, Set, CompareAndSet, Delete and Batch
// change them; Get reads them. Arithmetic is checked: an add that would
// overflow or underflow fails with ErrOverflow or ErrUnderflow, and
// WithMin/WithMax make an add conditional (ErrOutOfRange), which is how
// quotas and semaphores are built. WithExpiry gives a counter a fixed
// window, so a rate limiter is one call. Batch applies several operations
// atomically.
//
// # Exactly once
//
// Every write carries the node's client id and a sequence number. When
// its outcome is unknown (a timeout, a lost leader, a failed forward) the
// node retries it with the same identity until the context ends, and the
// state machine applies it once. The caller sees one application, or
// ErrIndeterminate (the outcome is unknown) when the context ends first,
// which is distinct from ErrUnavailable (definitely not applied). The state
// machine issues session ids and never reuses one, so a retry whose session
// it has forgotten is refused (ErrSessionExpired inside ErrIndeterminate),
// never applied a second time. Writes from outside the process use
// WithIdempotencyKey, or WithSession with a session from OpenSession, for
// the same guarantee.
//
// # Reads
//
// Reads are linearizable by default: the leader serves them from memory
// while it holds a leader lease, otherwise after confirming its
// leadership with a quorum. A read made WithStale reads any node's local
// state at once.
//
// # Leases, locks and fencing
//
// Leases live in state-machine time: their remaining time survives a
// change of leader, and no node's wall clock can end one early. A Mutex is
// held under a lease and carries a fencing token that strictly increases
// for ever; writes made WithFence (or Mutex.Fence) are refused with
// ErrStaleToken once the token no longer holds the lock, so a holder that
// paused past its lease cannot do harm. Waiters are served in order.
// Election builds leader election on the mutex. Instance gives each
// process its own slice of a counter, which leaves the total when the
// process's lease ends. Watch follows a counter's changes on any node.
//
// # Errors
//
// Errors wrap sentinels (ErrOverflow, ErrStaleToken, ErrLockHeld,
// ErrUnavailable, ...) for errors.Is. A command the state machine refused
// is an *OpError carrying its Code, the failing index of a batch, and the
// holder of a held lock. The sentinels and codes are package errcode's,
// re-exported here, so they match package client's too.
//
// # Options
//
// Every per-call option is a With function (WithMin, WithMax, WithFence,
// WithInstance, WithExpiry, WithStale, WithIdempotencyKey, WithSession);
// package client spells its call options the same way.
//
// # Architecture
//
// Commands (commands.go) are encoded with msgpack in versioned log entries
// (codec.go) and applied by the FSM (fsm*.go), which never reads a clock,
// a random source or map order: the same entries give the same state and
// the same snapshot bytes (snapshot.go) on every replica. A Replicator
// orders entries; the Raft one (raft.go) coalesces concurrent proposals
// into shared entries and serves lease reads (raft_lease.go). The wire
// layer is internal/transport.
package abacus
