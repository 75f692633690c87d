package abacus

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"
)

// Config configures a Node. Start from DefaultConfig, set ID, Dir and
// BindAddr, and add Peers for a cluster; a Config without peers runs a
// one-node cluster, the embedded default.
type Config struct {
	// ID is the node's id, stable for its lifetime (required).
	ID string
	// Dir is the data directory: the Raft log, stable store and snapshots.
	// A node reopened on the same directory keeps its state (required).
	Dir string
	// BindAddr is the host:port the node listens on for all node-to-node
	// traffic (required; port 0 picks a free port).
	BindAddr string
	// AdvertiseAddr is the address peers reach this node at. Default: the
	// bound address.
	AdvertiseAddr string
	// HTTPAddr, optional, is the host:port at which this node serves its
	// HTTP API (package httpapi). Members learn each other's over the peer
	// port (Node.HTTPAddr), and the API reports them as http_addr.
	HTTPAddr string
	// Peers lists the initial members, this node included, identically on
	// every initial member. Empty: a one-node cluster. A node joining a
	// running cluster leaves it empty and is added by a member
	// (Node.AddMember).
	Peers []Member
	// Join, when true, starts the node without bootstrapping: it waits to
	// be added to a running cluster.
	Join bool
	// TLS, when set, is used for all node-to-node traffic, which becomes
	// mutual TLS: it must carry this node's certificate and the CA pool that
	// verifies peers (RootCAs and ClientCAs). It admits any peer whose
	// certificate the pool verifies, under whatever node id the peer gives
	// (certificates are not tied to node ids): use a CA that signs the
	// cluster's nodes only.
	TLS *tls.Config
	// Logger receives the node's logs. Default: slog.Default().
	Logger *slog.Logger
	// Backend opens the replication path. Nil selects Raft; package rabia
	// provides the leaderless path.
	Backend Backend
	// Clock is the node's clock. Default: the system clock. Tests and the
	// fault harness inject offsets through it.
	Clock Clock
	// FSM bounds the state machine's memory (the exactly-once tables, and
	// the counters, leases and locks clients create); identical on every
	// member.
	FSM FSMOptions
	// MaxWatches bounds the counter watches (Node.Watch, and so HTTP watch
	// streams) open on this node at once; one more fails with
	// ErrLimitReached. Default 65536.
	MaxWatches int
	// Faults enables the peer transport's fault-injection controls
	// (Node.Faults). Off by default; for tests and the fault harness only.
	Faults bool

	// HeartbeatTimeout is how long a follower waits without hearing from
	// the leader before it stands for election. Default 500ms. A node that
	// is the only voter of its cluster stands at once when it opens (when
	// LeaderLeaseTimeout is below HeartbeatTimeout, as by default).
	HeartbeatTimeout time.Duration
	// ElectionTimeout bounds a candidate's election. Default 500ms.
	ElectionTimeout time.Duration
	// LeaderLeaseTimeout is how long a leader stays leader without hearing
	// from a quorum. Default 250ms.
	LeaderLeaseTimeout time.Duration
	// ReadLease is how long a confirmed leader serves linearizable reads
	// from local state without another confirmation round, counted from
	// when the round was sent; a new leader waits it (plus DriftMargin)
	// before serving reads or writes. It must stay below HeartbeatTimeout
	// minus the clock-drift margin. Default 300ms.
	ReadLease time.Duration
	// DriftMargin is the clock-rate drift the read lease and lock holders
	// allow for. Default 50ms.
	DriftMargin time.Duration
	// CommitTimeout is how long Raft waits before heartbeating a commit
	// index change. Default 5ms.
	CommitTimeout time.Duration
	// SnapshotThreshold is the number of log entries after which a
	// snapshot is taken. Default 8192.
	SnapshotThreshold uint64
	// SnapshotInterval is how often the threshold is checked. Default 30s.
	SnapshotInterval time.Duration
	// TrailingLogs is how many log entries stay after a snapshot, so a
	// follower slightly behind catches up from the log. Default 10240.
	TrailingLogs uint64
	// MaxEntryProposals caps how many proposals are coalesced into one log
	// entry. Default 1024.
	MaxEntryProposals int
	// MaxInflightEntries caps the log entries a leader has in flight; while
	// they are in flight, new proposals gather into the next entry.
	// Default 8.
	MaxInflightEntries int
	// TickInterval is how often a leader records the time in the log while
	// leases or expiring counters are pending. A new leader continues from
	// the last recorded time, so a change of leader extends leases by at
	// most about this plus the election. Default 250ms.
	TickInterval time.Duration
	// RetryBackoff is the first pause before a proposal whose outcome is
	// unknown is retried; it doubles up to 16 times that. Default 10ms.
	RetryBackoff time.Duration
	// NoSync skips fsync of the log, trading durability for speed. Never
	// set it in production. Default false.
	NoSync bool
}

// Backend opens a Replicator for a node. Package rabia provides one; nil in
// Config selects Raft.
type Backend interface {
	// Name identifies the backend in status output ("raft", "rabia").
	Name() string
	// Open starts the replicator on the node's environment.
	Open(env *Env) (Replicator, error)
}

// DefaultConfig returns a Config with every default filled in. ID, Dir and
// BindAddr remain to be set.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   500 * time.Millisecond,
		ElectionTimeout:    500 * time.Millisecond,
		LeaderLeaseTimeout: 250 * time.Millisecond,
		ReadLease:          300 * time.Millisecond,
		DriftMargin:        50 * time.Millisecond,
		CommitTimeout:      5 * time.Millisecond,
		SnapshotThreshold:  8192,
		SnapshotInterval:   30 * time.Second,
		TrailingLogs:       10240,
		MaxEntryProposals:  1024,
		MaxInflightEntries: 8,
		TickInterval:       250 * time.Millisecond,
		RetryBackoff:       10 * time.Millisecond,
		MaxWatches:         1 << 16,
	}
}

// withDefaults fills zero fields from DefaultConfig.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	setDuration := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	setDuration(&c.HeartbeatTimeout, d.HeartbeatTimeout)
	setDuration(&c.ElectionTimeout, d.ElectionTimeout)
	setDuration(&c.LeaderLeaseTimeout, d.LeaderLeaseTimeout)
	setDuration(&c.ReadLease, d.ReadLease)
	setDuration(&c.DriftMargin, d.DriftMargin)
	setDuration(&c.CommitTimeout, d.CommitTimeout)
	setDuration(&c.SnapshotInterval, d.SnapshotInterval)
	setDuration(&c.RetryBackoff, d.RetryBackoff)
	setDuration(&c.TickInterval, d.TickInterval)
	if c.SnapshotThreshold == 0 {
		c.SnapshotThreshold = d.SnapshotThreshold
	}
	if c.TrailingLogs == 0 {
		c.TrailingLogs = d.TrailingLogs
	}
	if c.MaxEntryProposals == 0 {
		c.MaxEntryProposals = d.MaxEntryProposals
	}
	if c.MaxInflightEntries == 0 {
		c.MaxInflightEntries = d.MaxInflightEntries
	}
	if c.MaxWatches == 0 {
		c.MaxWatches = d.MaxWatches
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Clock == nil {
		c.Clock = SystemClock()
	}
	return c
}

// Validate reports the first problem with the configuration, after
// defaults are applied. Open calls it.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.ID == "" || len(c.ID) > 255 {
		errs = append(errs, errors.New("config: ID must be 1-255 bytes"))
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("config: Dir is required"))
	}
	if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
		errs = append(errs, fmt.Errorf("config: BindAddr: %v", err))
	}
	if c.AdvertiseAddr != "" {
		if _, _, err := net.SplitHostPort(c.AdvertiseAddr); err != nil {
			errs = append(errs, fmt.Errorf("config: AdvertiseAddr: %v", err))
		}
	}
	seen := map[string]bool{}
	self := len(c.Peers) == 0
	for _, p := range c.Peers {
		if p.ID == "" || seen[p.ID] {
			errs = append(errs, fmt.Errorf("config: Peers: empty or duplicate id %q", p.ID))
		}
		seen[p.ID] = true
		if _, _, err := net.SplitHostPort(p.Addr); err != nil {
			errs = append(errs, fmt.Errorf("config: Peers: %s: %v", p.ID, err))
		}
		self = self || p.ID == c.ID
	}
	if !self {
		errs = append(errs, fmt.Errorf("config: Peers must include this node (%q)", c.ID))
	}
	if c.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil || len(c.HTTPAddr) > MaxHTTPAddrLen {
			errs = append(errs, fmt.Errorf("config: HTTPAddr %q: want host:port of at most %d bytes", c.HTTPAddr, MaxHTTPAddrLen))
		}
	}
	if c.Join && len(c.Peers) > 0 {
		errs = append(errs, errors.New("config: Join and Peers are exclusive"))
	}
	if c.HeartbeatTimeout < 5*time.Millisecond || c.ElectionTimeout < 5*time.Millisecond {
		errs = append(errs, errors.New("config: HeartbeatTimeout and ElectionTimeout must be at least 5ms"))
	}
	if c.LeaderLeaseTimeout > c.HeartbeatTimeout {
		errs = append(errs, errors.New("config: LeaderLeaseTimeout must not exceed HeartbeatTimeout"))
	}
	if c.ReadLease <= 0 || c.ReadLease+c.DriftMargin >= c.HeartbeatTimeout {
		errs = append(errs, fmt.Errorf("config: ReadLease (%v) plus DriftMargin (%v) must stay below HeartbeatTimeout (%v)",
			c.ReadLease, c.DriftMargin, c.HeartbeatTimeout))
	}
	if c.TickInterval < time.Millisecond {
		errs = append(errs, errors.New("config: TickInterval must be at least 1ms"))
	}
	if c.DriftMargin < 0 {
		errs = append(errs, errors.New("config: DriftMargin must not be negative"))
	}
	if c.MaxEntryProposals < 1 || c.MaxEntryProposals > MaxEntryProposals {
		errs = append(errs, fmt.Errorf("config: MaxEntryProposals must be in [1, %d]", MaxEntryProposals))
	}
	if c.MaxInflightEntries < 1 {
		errs = append(errs, errors.New("config: MaxInflightEntries must be positive"))
	}
	if c.MaxWatches < 1 {
		errs = append(errs, errors.New("config: MaxWatches must be positive"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrInvalidArgument, errors.Join(errs...))
	}
	return nil
}
