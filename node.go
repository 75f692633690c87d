package abacus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/abacuskit/abacus/internal/transport"
)

// Node is one member of an abacus cluster, opened in-process by the
// application. Every method may be called on any node and from any number
// of goroutines: a follower forwards to the leader. Writes are applied
// exactly once, even when the node retries them after a lost leader or a
// timeout; reads are linearizable unless the WithStale option says otherwise.
type Node struct {
	cfg   Config
	log   *slog.Logger
	fsm   *FSM
	mux   *transport.Mux
	repl  Replicator
	obs   *fanout
	watch *watchHub

	httpAddrs *httpAddrs // the members' HTTP addresses

	session   atomic.Pointer[clientSession] // nil until the first write opens one
	sessionMu sync.Mutex                    // serialises opening a session
	metrics   *Metrics

	closeOnce sync.Once
	closed    atomic.Bool
	done      chan struct{}
}

// Env is what a Backend gets to build a Replicator: the node's settled
// configuration, its state machine and its peer port.
type Env struct {
	// Config is the node's configuration with defaults applied.
	Config Config
	// FSM is the node's state machine; the replicator applies entries to it.
	FSM *FSM
	// Mux is the node's peer port. A backend takes its own connection kind.
	Mux *transport.Mux
	// Logger is the node's logger.
	Logger *slog.Logger
	// Metrics records replication metrics.
	Metrics *Metrics
	// Observe registers an observer of state-machine changes, called as
	// entries apply (see Observer).
	Observe func(Observer)
}

// Open starts a node. A node whose Config has no peers and no Join runs a
// one-node cluster in its data directory, the embedded default. Reopening
// a data directory restores the node's state.
func Open(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("abacus: data directory: %w", err)
	}
	log := cfg.Logger.With("node", cfg.ID)
	mux, err := transport.Listen(context.Background(), transport.Config{
		BindAddr:      cfg.BindAddr,
		AdvertiseAddr: cfg.AdvertiseAddr,
		NodeID:        cfg.ID,
		TLS:           cfg.TLS,
		Logger:        log,
		Faults:        cfg.Faults,
	})
	if err != nil {
		return nil, fmt.Errorf("abacus: listen: %w", err)
	}
	if cfg.AdvertiseAddr == "" {
		cfg.AdvertiseAddr = mux.Addr()
	}
	if len(cfg.Peers) == 0 && !cfg.Join {
		cfg.Peers = []Member{{ID: cfg.ID, Addr: cfg.AdvertiseAddr, Voter: true}}
	}
	n := &Node{cfg: cfg, log: log, mux: mux, obs: &fanout{}, watch: newWatchHub(), metrics: newMetrics(), done: make(chan struct{})}
	n.obs.add(n.watch)
	n.fsm = NewFSM(cfg.FSM, n.obs)
	backend := cfg.Backend
	if backend == nil {
		backend = RaftBackend()
	}
	n.repl, err = backend.Open(&Env{Config: cfg, FSM: n.fsm, Mux: mux, Logger: log, Metrics: n.metrics, Observe: n.obs.add})
	if err != nil {
		mux.Close()
		return nil, fmt.Errorf("abacus: %s: %w", backend.Name(), err)
	}
	n.httpAddrs = startHTTPAddrs(n)
	log.Info("node open", "backend", backend.Name(), "addr", cfg.AdvertiseAddr, "dir", cfg.Dir)
	return n, nil
}

// Close stops the node: calls in flight end with ErrClosed (or
// ErrIndeterminate when a write's outcome is unknown), the replicator
// shuts down and the peer port closes. Acknowledged writes are durable in
// the data directory. Close is idempotent.
func (n *Node) Close() error {
	var err error
	n.closeOnce.Do(func() {
		n.closed.Store(true)
		close(n.done)
		n.httpAddrs.stop()
		err = errors.Join(n.repl.Close(), n.mux.Close())
		n.log.Info("node closed")
	})
	return err
}

// ID returns the node's id.
func (n *Node) ID() string { return n.cfg.ID }

// Addr returns the node's advertised peer address.
func (n *Node) Addr() string { return n.cfg.AdvertiseAddr }

// Status reports this node's view of the cluster.
func (n *Node) Status() Status { return n.repl.Status() }

// FSM returns the node's state machine, for inspection (Stats, Hash) and
// for backends. Applications use the Node's methods instead.
func (n *Node) FSM() *FSM { return n.fsm }

// Faults returns the peer transport's fault-injection controls; they
// return an error unless Config.Faults was set.
func (n *Node) Faults() *transport.Faults { return n.mux.Faults() }

// Counter is a counter as a read or write returns it.
type Counter struct {
	// Value is the counter's total.
	Value int64
	// Mine is the calling instance's slice of the total (WithInstance).
	Mine int64
	// Exists is false for a counter never written, deleted, or expired.
	Exists bool
	// Revision is the log position of the counter's last change.
	Revision uint64
}

// Add adds delta to counter name and returns it. With WithMin or WithMax
// the add is conditional; an add that would overflow or leave its bounds
// fails with ErrOverflow, ErrUnderflow or ErrOutOfRange and changes
// nothing.
func (n *Node) Add(ctx context.Context, name string, delta int64, opts ...Option) (Counter, error) {
	r, err := n.Do(ctx, Command{Op: OpAdd, Name: name, Delta: delta}, opts...)
	return Counter{Value: r.Value, Mine: r.Mine, Exists: r.Exists, Revision: r.Revision}, err
}

// Get reads counter name: linearizably by default, from local state with
// WithStale. A counter never written reads as 0 with Exists false.
func (n *Node) Get(ctx context.Context, name string, opts ...Option) (Counter, error) {
	r, err := n.Do(ctx, Command{Op: OpGet, Name: name}, opts...)
	return Counter{Value: r.Value, Mine: r.Mine, Exists: r.Exists, Revision: r.Revision}, err
}

// Set sets counter name to value and returns the previous value. A global
// set (without WithInstance) clears every instance's slice.
func (n *Node) Set(ctx context.Context, name string, value int64, opts ...Option) (previous int64, err error) {
	r, err := n.Do(ctx, Command{Op: OpSet, Name: name, Value: value}, opts...)
	return r.Previous, err
}

// CompareAndSet sets counter name to new if it holds old. It reports
// whether it swapped, and the counter's value after the call.
func (n *Node) CompareAndSet(ctx context.Context, name string, old, new int64, opts ...Option) (swapped bool, value int64, err error) {
	r, err := n.Do(ctx, Command{Op: OpCompareAndSet, Name: name, Old: old, Value: new}, opts...)
	return r.Swapped, r.Value, err
}

// Delete removes counter name and returns its previous value.
func (n *Node) Delete(ctx context.Context, name string, opts ...Option) (previous int64, err error) {
	r, err := n.Do(ctx, Command{Op: OpDelete, Name: name}, opts...)
	return r.Previous, err
}

// Batch applies counter operations atomically: every one succeeds, or
// nothing changes and the error (an *OpError) names the failing operation's
// index. A compare-and-set that does not match fails the batch with
// ErrMismatch. Build operations with the Op* constants; fences, bounds and
// instances go in each Command.
func (n *Node) Batch(ctx context.Context, ops []Command, opts ...Option) ([]Result, error) {
	r, err := n.Do(ctx, Command{Op: OpBatch, Ops: ops}, opts...)
	return r.Results, err
}

// Do runs any command: the lower-level form of the methods above, for
// programs (such as the HTTP API) that build commands themselves. A
// command the state machine refuses returns its Result together with an
// *OpError.
func (n *Node) Do(ctx context.Context, cmd Command, opts ...Option) (Result, error) {
	if n.closed.Load() {
		return Result{}, ErrClosed
	}
	if err := ctx.Err(); err != nil {
		// Nothing was attempted; the lease fast path would otherwise
		// answer reads on an ended context.
		return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	o := collect(opts)
	o.apply(&cmd)
	if err := cmd.Validate(); err != nil {
		return Result{}, err
	}
	start := time.Now()
	var (
		res Result
		err error
	)
	if cmd.Op.ReadOnly() {
		res, err = n.read(ctx, cmd, o.stale)
		n.metrics.observeRead(time.Since(start), err)
	} else {
		res, err = n.write(ctx, cmd, &o)
		n.metrics.observeWrite(time.Since(start), err)
	}
	if err != nil {
		return Result{}, err
	}
	return res, res.Err(&cmd)
}

func (n *Node) write(ctx context.Context, cmd Command, o *callOptions) (Result, error) {
	switch {
	case o.key != "" && o.session != nil:
		return Result{}, invalidf("a write carries an idempotency key or a session, not both")
	case o.key != "":
		return n.propose(ctx, Proposal{Key: KeyIDOf(o.key), Cmd: cmd})
	case o.session != nil:
		if o.session.id == 0 || o.session.seq == 0 || o.session.ack == 0 || o.session.ack > o.session.seq {
			return Result{}, invalidf("session %d, sequence %d, acknowledgement %d: want positive numbers, ack at most seq", o.session.id, o.session.seq, o.session.ack)
		}
		res, err := n.propose(ctx, Proposal{Client: o.session.id, Seq: o.session.seq, Ack: o.session.ack, Cmd: cmd})
		switch {
		case errors.Is(err, errSessionRestart):
			// Refused before anything could apply: the caller's session is
			// gone (Do reports ErrSessionExpired) and it opens another.
			return res, nil
		case err == nil && res.Code == CodeSessionExpired:
			// This node retried after an attempt whose outcome it does not
			// know, and meanwhile the session was forgotten.
			return Result{}, fmt.Errorf("%w: %w", ErrIndeterminate, ErrSessionExpired)
		}
		return res, err
	}
	for restarts := 0; ; restarts++ {
		s, err := n.clientSession(ctx)
		if err != nil {
			return Result{}, err
		}
		seq, ack := s.seq.Begin()
		res, err := n.propose(ctx, Proposal{Client: s.id, Seq: seq, Ack: ack, Cmd: cmd})
		s.seq.Finish(seq)
		switch {
		case errors.Is(err, errSessionRestart) && restarts < 3:
			// The state machine forgot this session (idle past SessionTTL,
			// or evicted) and applied nothing: continue on a fresh one.
			n.session.CompareAndSwap(s, nil)
			continue
		case errors.Is(err, errSessionRestart):
			return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, ErrSessionExpired)
		case err == nil && res.Code == CodeSessionExpired:
			// Forgotten after an attempt whose outcome is unknown: whether
			// that attempt applied can no longer be told, and it is not
			// run again.
			n.session.CompareAndSwap(s, nil)
			return Result{}, fmt.Errorf("%w: %w", ErrIndeterminate, ErrSessionExpired)
		}
		return res, err
	}
}

// fanout passes state-machine changes to every registered observer.
type fanout struct {
	mu   sync.RWMutex
	list []Observer
}

func (f *fanout) add(o Observer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list = append(f.list, o)
}

func (f *fanout) CounterChanged(name string, value int64, revision uint64, exists bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, o := range f.list {
		o.CounterChanged(name, value, revision, exists)
	}
}

func (f *fanout) LockChanged(name, holder string, lease, token uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, o := range f.list {
		o.LockChanged(name, holder, lease, token)
	}
}

func (f *fanout) LeaseEnded(id uint64) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	for _, o := range f.list {
		o.LeaseEnded(id)
	}
}

// AddMember adds a node to the cluster (a voter, or a non-voter when
// m.Voter is false). The node must have been opened with Config.Join.
func (n *Node) AddMember(ctx context.Context, m Member) error {
	ms, ok := n.repl.(Membership)
	if !ok {
		return fmt.Errorf("%w: the %s backend has fixed membership", ErrInvalidArgument, n.repl.Status().Backend)
	}
	return ms.AddMember(ctx, m)
}

// RemoveMember removes a node from the cluster.
func (n *Node) RemoveMember(ctx context.Context, id string) error {
	ms, ok := n.repl.(Membership)
	if !ok {
		return fmt.Errorf("%w: the %s backend has fixed membership", ErrInvalidArgument, n.repl.Status().Backend)
	}
	return ms.RemoveMember(ctx, id)
}

// TransferLeadership hands leadership to voter id, or to any voter when id
// is empty.
func (n *Node) TransferLeadership(ctx context.Context, id string) error {
	ms, ok := n.repl.(Membership)
	if !ok {
		return fmt.Errorf("%w: the %s backend has no leader", ErrInvalidArgument, n.repl.Status().Backend)
	}
	return ms.TransferLeadership(ctx, id)
}
