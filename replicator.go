package abacus

import (
	"context"
	"time"
)

// Replicator orders proposals and applies them, in the same order, to the
// state machine of every replica. It is the one interface both replication
// paths implement: the Raft path in this package and the leaderless path in
// package rabia. Node's public API sits on top of it and knows nothing
// about either protocol.
//
// Implementations coalesce concurrent proposals into shared log entries,
// stamp each proposal's Time from a clock that never runs backwards across
// proposers (docs/DESIGN.md, rule 4), and retry proposals whose outcome is
// unknown with the same client id and sequence number, which the state
// machine deduplicates.
type Replicator interface {
	// Propose replicates p and returns its result once it has been applied on
	// this replica. Errors wrap ErrUnavailable when p was definitely not
	// applied and ErrIndeterminate when it may have been.
	Propose(ctx context.Context, p Proposal) (Result, error)
	// Read executes a read-only command (OpGet, OpLeaseGet, OpLockGet)
	// linearizably: its result reflects every write that completed before
	// Read was called.
	Read(ctx context.Context, cmd Command) (Result, error)
	// Status reports this replica's view of the cluster.
	Status() Status
	// Close stops the replicator. It does not close the state machine.
	Close() error
}

// Membership is implemented by replicators that can change the cluster's
// members while it runs.
type Membership interface {
	// AddMember adds a voter (or a non-voter) to the cluster.
	AddMember(ctx context.Context, m Member) error
	// RemoveMember removes the member with the given id.
	RemoveMember(ctx context.Context, id string) error
	// TransferLeadership hands leadership to another voter: id, or any when
	// id is empty.
	TransferLeadership(ctx context.Context, id string) error
}

// Member is a node of the cluster.
type Member struct {
	// ID is the node's stable id.
	ID string
	// Addr is its peer address (host:port).
	Addr string
	// Voter is false for a non-voting member.
	Voter bool
}

// Status is a replica's view of the cluster.
type Status struct {
	// ID is this node's id.
	ID string
	// Backend names the replication path: "raft" or "rabia".
	Backend string
	// State is the replica's role: "leader", "follower", "candidate", or
	// "replica" on a leaderless path; "shutdown" once closed.
	State string
	// Leader is the current leader's id, empty when unknown or leaderless.
	Leader string
	// Term is the current Raft term (0 on a leaderless path).
	Term uint64
	// AppliedIndex is the log position of the last applied entry.
	AppliedIndex uint64
	// CommitIndex is the last log position known committed.
	CommitIndex uint64
	// Members lists the cluster's members in id order.
	Members []Member
	// LastContact is the time since the leader was last heard from, on a
	// follower; zero on a leader.
	LastContact time.Duration
}
