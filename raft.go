package abacus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/abacuskit/abacus/internal/hclogslog"
	"github.com/abacuskit/abacus/internal/transport"
)

// RaftBackend returns the Raft replication path, the default: hashicorp/raft
// with a raft-boltdb log and stable store and file snapshots, all in the
// node's data directory.
func RaftBackend() Backend { return raftBackend{} }

type raftBackend struct{}

func (raftBackend) Name() string { return "raft" }

func (raftBackend) Open(env *Env) (Replicator, error) { return openRaft(env) }

// raftReplicator is the Raft path. On the leader, proposals from local
// callers and forwarded from followers queue for a batcher that coalesces
// them into log entries and keeps up to MaxInflightEntries entries in
// flight; a completer hands each applied entry's results back in order.
// Followers forward proposals and linearizable reads to the leader over the
// peer port.
type raftReplicator struct {
	cfg     Config
	log     *slog.Logger
	fsm     *FSM
	metrics *Metrics

	raft   *raft.Raft
	hlog   *hclogslog.Logger
	store  *raftboltdb.BoltStore
	trans  *raft.NetworkTransport
	rpc    *transport.RPCClient
	rpcSrv *transport.RPCServer

	queue    chan *pending
	fwdQueue chan *fwdPending // proposals a follower forwards
	slots    chan struct{}
	inflight chan inflightEntry
	applied  chan struct{} // signalled after every applied batch of logs
	notify   chan bool     // leadership changes from Raft

	term    atomic.Pointer[leaderTerm] // set while this node leads
	lease   readLease
	confirm confirmer

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// pending is one proposal waiting for its entry to apply.
type pending struct {
	p  Proposal
	ch chan outcome // buffered: the completer never blocks on it
}

type outcome struct {
	res Result
	err error
}

type inflightEntry struct {
	fut   raft.ApplyFuture
	batch []*pending
	start time.Time
}

func openRaft(env *Env) (*raftReplicator, error) {
	cfg := env.Config
	hl := hclogslog.New(env.Logger, "raft")
	store, err := raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(cfg.Dir, "raft.db"),
		BoltOptions: &bbolt.Options{NoFreelistSync: true, Timeout: time.Second},
		NoSync:      cfg.NoSync,
	})
	if err != nil {
		return nil, fmt.Errorf("log store: %w", err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(cfg.Dir, 2, hl)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("snapshot store: %w", err)
	}
	r := &raftReplicator{
		cfg:      cfg,
		log:      env.Logger,
		hlog:     hl,
		fsm:      env.FSM,
		metrics:  env.Metrics,
		store:    store,
		rpc:      transport.NewRPCClient(env.Mux, 0),
		queue:    make(chan *pending, 4*cfg.MaxEntryProposals),
		fwdQueue: make(chan *fwdPending, 4*maxForwardBatch),
		slots:    make(chan struct{}, cfg.MaxInflightEntries),
		inflight: make(chan inflightEntry, cfg.MaxInflightEntries),
		applied:  make(chan struct{}, 1),
		notify:   make(chan bool, 16),
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.confirm.run = r.confirmLeadership
	r.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  env.Mux.RaftStreamLayer(),
		MaxPool: 3,
		Timeout: 10 * time.Second,
		Logger:  hl,
	})

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.TrailingLogs = cfg.TrailingLogs
	rc.BatchApplyCh = true
	rc.MaxAppendEntries = 256
	rc.NotifyCh = r.notify
	rc.Logger = hl
	if err := raft.ValidateConfig(rc); err != nil {
		r.closeStores()
		return nil, fmt.Errorf("%w: %v", ErrInvalidArgument, err)
	}

	existing, err := raft.HasExistingState(store, store, snaps)
	if err != nil {
		r.closeStores()
		return nil, fmt.Errorf("reading state: %w", err)
	}
	if !existing && !cfg.Join {
		var servers []raft.Server
		for _, p := range cfg.Peers {
			suffrage := raft.Voter
			if !p.Voter && p.ID != cfg.ID {
				suffrage = raft.Nonvoter
			}
			servers = append(servers, raft.Server{ID: raft.ServerID(p.ID), Address: raft.ServerAddress(p.Addr), Suffrage: suffrage})
		}
		if err := raft.BootstrapCluster(rc, store, store, snaps, r.trans, raft.Configuration{Servers: servers}); err != nil {
			r.closeStores()
			return nil, fmt.Errorf("bootstrap: %w", err)
		}
	}
	r.raft, err = raft.NewRaft(rc, raftFSMHook{RaftFSM{env.FSM}, r.applied}, store, store, snaps, r.trans)
	if err != nil {
		r.closeStores()
		return nil, fmt.Errorf("raft: %w", err)
	}
	r.electAloneAtOnce(rc)
	r.rpcSrv = transport.NewRPCServer(env.Mux.Listener(transport.KindRPC), r.handleRPC)
	r.goroutine(func() { _ = r.rpcSrv.Serve(r.ctx) })
	r.goroutine(r.watchLeadership)
	r.goroutine(r.batcher)
	r.goroutine(r.completer)
	r.goroutine(r.forwarder)
	return r, nil
}

// electAloneAtOnce makes a node that is the only voter of its
// configuration stand for election now rather than after a heartbeat
// timeout: no other node can lead such a cluster, so waiting (up to twice
// HeartbeatTimeout) only delays the first call. hashicorp/raft re-checks
// a follower's heartbeat at once when HeartbeatTimeout is lowered with
// ReloadConfig; a follower that never heard from a leader then starts an
// election. The configured timeout is restored straight after, which
// changes nothing else. The lowered value must stay at least
// LeaderLeaseTimeout (not reloadable), so where that equals
// HeartbeatTimeout the node waits as any follower does.
func (r *raftReplicator) electAloneAtOnce(rc *raft.Config) {
	f := r.raft.GetConfiguration()
	if f.Error() != nil {
		return
	}
	voters, self := 0, false
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters++
			self = self || s.ID == rc.LocalID
		}
	}
	if voters != 1 || !self || rc.LeaderLeaseTimeout >= rc.HeartbeatTimeout {
		return
	}
	normal := r.raft.ReloadableConfig()
	short := normal
	short.HeartbeatTimeout = rc.LeaderLeaseTimeout
	if err := r.raft.ReloadConfig(short); err != nil {
		r.log.Warn("raft: could not hasten the election of a single voter", "error", err)
		return
	}
	if err := r.raft.ReloadConfig(normal); err != nil {
		r.log.Error("raft: could not restore the heartbeat timeout", "error", err)
	}
}

func (r *raftReplicator) goroutine(fn func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn()
	}()
}

func (r *raftReplicator) closeStores() {
	r.trans.Close()
	r.store.Close()
}

// Close shuts Raft down and stops the replicator's goroutines.
func (r *raftReplicator) Close() error {
	r.hlog.Closing()
	err := r.raft.Shutdown().Error()
	r.cancel()
	r.rpc.Close()
	r.wg.Wait()
	return errors.Join(err, r.trans.Close(), r.store.Close())
}

// raftFSMHook skips entries appended in another term than the one they
// were made for, and signals the replicator after every applied batch, so
// the leader re-examines the next expiry deadline.
type raftFSMHook struct {
	RaftFSM
	applied chan struct{}
}

func (h raftFSMHook) Apply(l *raft.Log) any { return h.ApplyBatch([]*raft.Log{l})[0] }

func (h raftFSMHook) ApplyBatch(logs []*raft.Log) []any {
	out := h.applyInTerm(logs)
	select {
	case h.applied <- struct{}{}:
	default:
	}
	return out
}

// termExtension is a log entry's Extensions naming the term its leader
// made it for: a tag byte and the term.
func termExtension(term uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{extTermTag}, term)
}

const extTermTag = 1

// misplaced reports whether l was appended in another term than the one
// named in its Extensions. Entries without that extension (written before
// it existed) are never misplaced.
func misplaced(l *raft.Log) (madeFor uint64, bad bool) {
	e := l.Extensions
	if l.Type != raft.LogCommand || len(e) != 9 || e[0] != extTermTag {
		return 0, false
	}
	madeFor = binary.BigEndian.Uint64(e[1:])
	return madeFor, madeFor != l.Term
}

// applyInTerm applies logs in order, skipping misplaced ones: a skipped
// entry changes nothing but the applied index, on every replica alike, and
// its result is an error saying it was not applied.
func (h raftFSMHook) applyInTerm(logs []*raft.Log) []any {
	out := make([]any, 0, len(logs))
	run := 0 // start of the logs not yet applied
	for i, l := range logs {
		madeFor, bad := misplaced(l)
		if !bad {
			continue
		}
		out = append(out, h.RaftFSM.ApplyBatch(logs[run:i])...)
		h.FSM.Apply(l.Index, nil)
		out = append(out, fmt.Errorf("%w: entry made in term %d was appended in term %d", ErrUnavailable, madeFor, l.Term))
		run = i + 1
	}
	if run == 0 {
		return h.RaftFSM.ApplyBatch(logs)
	}
	return append(out, h.RaftFSM.ApplyBatch(logs[run:])...)
}

// leaderTerm is this node's tenure as leader. It becomes ready once the
// term's first entry (a barrier) has applied, so the state machine holds
// every entry committed before the term; it serves reads and writes only
// from servesAt, one read lease (plus drift) after taking office, so no
// deposed leader's lease can overlap anything served in this term (see
// raft_lease.go).
type leaderTerm struct {
	term     uint64
	took     time.Time
	servesAt time.Time
	open     atomic.Bool // servesAt has passed: spares reads a clock read
	ready    chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc

	// State-machine time: baseSM when the term became ready, advanced by
	// this node's monotonic elapsed time since baseMono.
	baseSM   int64
	baseMono time.Time
	mu       sync.Mutex
	last     int64
}

// isReady reports whether the term's barrier has applied and its clock
// base is set.
func (lt *leaderTerm) isReady() bool {
	select {
	case <-lt.ready:
		return true
	default:
		return false
	}
}

// serving reports whether the term's wait is over.
func (lt *leaderTerm) serving() bool {
	if lt.open.Load() {
		return true
	}
	if time.Now().Before(lt.servesAt) {
		return false
	}
	lt.open.Store(true)
	return true
}

// stamp returns the time for a new entry: never below the last one.
func (lt *leaderTerm) stamp() int64 {
	t := lt.peek()
	lt.mu.Lock()
	defer lt.mu.Unlock()
	if t < lt.last {
		t = lt.last
	}
	lt.last = t
	return t
}

func (lt *leaderTerm) peek() int64 {
	return lt.baseSM + int64(time.Since(lt.baseMono))
}

func (r *raftReplicator) watchLeadership() {
	for {
		select {
		case <-r.ctx.Done():
			if lt := r.term.Swap(nil); lt != nil {
				lt.cancel()
			}
			return
		case leader := <-r.notify:
			if old := r.term.Swap(nil); old != nil {
				old.cancel()
			}
			r.lease.reset()
			if !leader {
				r.log.Info("lost leadership")
				continue
			}
			now := time.Now()
			lt := &leaderTerm{
				term:     r.raft.CurrentTerm(),
				took:     now,
				servesAt: now.Add(r.cfg.ReadLease + r.cfg.DriftMargin),
				ready:    make(chan struct{}),
			}
			lt.ctx, lt.cancel = context.WithCancel(r.ctx)
			r.term.Store(lt)
			r.log.Info("took leadership", "term", lt.term)
			r.goroutine(func() { r.lead(lt) })
		}
	}
}

// lead runs a leader term: the barrier, then expiry ticks and lease
// renewal until the term ends.
func (r *raftReplicator) lead(lt *leaderTerm) {
	for {
		err := futureError(lt.ctx, r.raft.Barrier(r.cfg.ElectionTimeout))
		if err == nil {
			break
		}
		if !errors.Is(err, raft.ErrEnqueueTimeout) || lt.ctx.Err() != nil {
			return
		}
	}
	lt.baseSM = r.fsm.Now()
	if lt.baseSM == 0 {
		// A new cluster's first term starts state-machine time at the wall
		// clock, so times in the state read as dates. Only this epoch comes
		// from a wall clock; time then advances by elapsed time alone.
		lt.baseSM = r.cfg.Clock.Now().UnixNano()
	}
	lt.baseMono = time.Now()
	lt.last = lt.baseSM
	close(lt.ready)
	r.goroutine(func() { r.renewLease(lt) })
	r.tickLoop(lt)
}

// leading returns the current leader term once it is ready and past its
// wait, or nil when another node leads.
func (r *raftReplicator) leading(ctx context.Context) (*leaderTerm, error) {
	lt := r.term.Load()
	if lt == nil {
		if r.raft.State() == raft.Leader {
			return nil, fmt.Errorf("%w: leadership starting", ErrUnavailable)
		}
		return nil, nil
	}
	select {
	case <-lt.ready:
	case <-lt.ctx.Done():
		return nil, fmt.Errorf("%w: leadership lost", ErrUnavailable)
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
	if !lt.serving() {
		t := time.NewTimer(time.Until(lt.servesAt))
		defer t.Stop()
		select {
		case <-t.C:
		case <-lt.ctx.Done():
			return nil, fmt.Errorf("%w: leadership lost", ErrUnavailable)
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
		lt.open.Store(true)
	}
	return lt, nil
}

// Propose implements Replicator.
func (r *raftReplicator) Propose(ctx context.Context, p Proposal) (Result, error) {
	lt, err := r.leading(ctx)
	if err != nil {
		return Result{}, err
	}
	if lt == nil {
		return r.forwardQueued(ctx, p)
	}
	return r.submit(ctx, p)
}

// submit queues p for the batcher and waits for its result.
func (r *raftReplicator) submit(ctx context.Context, p Proposal) (Result, error) {
	pd, err := r.enqueue(ctx, p)
	if err != nil {
		return Result{}, err
	}
	o := r.await(ctx, pd)
	return o.res, o.err
}

// enqueue hands p to the batcher. An error means it was not queued, so it
// will not apply.
func (r *raftReplicator) enqueue(ctx context.Context, p Proposal) (*pending, error) {
	pd := &pending{p: p, ch: make(chan outcome, 1)}
	select {
	case r.queue <- pd:
		return pd, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	case <-r.ctx.Done():
		return nil, ErrClosed
	}
}

// await waits for a queued proposal's outcome; given up on, it may still
// apply.
func (r *raftReplicator) await(ctx context.Context, pd *pending) outcome {
	select {
	case o := <-pd.ch:
		return o
	case <-ctx.Done():
		return outcome{err: fmt.Errorf("%w: %w", ErrIndeterminate, ctx.Err())}
	case <-r.ctx.Done():
		return outcome{err: fmt.Errorf("%w: %w", ErrIndeterminate, ErrClosed)}
	}
}

// batcher coalesces queued proposals into log entries. It takes an
// in-flight slot before it takes proposals, so while the slots are busy
// proposals gather and the next entry carries all of them.
func (r *raftReplicator) batcher() {
	for {
		select {
		case r.slots <- struct{}{}:
		case <-r.ctx.Done():
			return
		}
		var batch []*pending
		select {
		case pd := <-r.queue:
			batch = append(make([]*pending, 0, 64), pd)
		case <-r.ctx.Done():
			return
		}
	drain:
		for len(batch) < r.cfg.MaxEntryProposals {
			select {
			case pd := <-r.queue:
				batch = append(batch, pd)
			default:
				break drain
			}
		}
		lt := r.term.Load()
		if lt == nil || !lt.isReady() {
			// Not leading, or a new term whose barrier has not applied yet
			// (a proposal queued under an earlier term): its clock base is
			// not set, so nothing may be stamped. Nothing was submitted.
			<-r.slots
			finish(batch, outcome{err: fmt.Errorf("%w: not the leader", ErrUnavailable)})
			continue
		}
		if !lt.serving() || r.raft.CurrentTerm() != lt.term {
			// Proposals admitted under an earlier term, reaching a term
			// whose wait has not ended (or that Raft has already left):
			// submitted now, they could commit inside the wait.
			<-r.slots
			finish(batch, outcome{err: fmt.Errorf("%w: leadership changed while queued", ErrUnavailable)})
			continue
		}
		t := lt.stamp()
		props := make([]Proposal, len(batch))
		for i, pd := range batch {
			props[i] = pd.p
			props[i].Time = t
		}
		data, err := EncodeEntry(props)
		if err != nil {
			<-r.slots
			finish(batch, outcome{err: fmt.Errorf("%w: encoding: %v", ErrInvalidArgument, err)})
			continue
		}
		// The entry names the term it was made for; appended in another
		// (Raft can leave and retake leadership while it is queued), it
		// is skipped on every replica (raftFSMHook).
		fut := r.raft.ApplyLog(raft.Log{Data: data, Extensions: termExtension(lt.term)}, 0)
		e := inflightEntry{fut: fut, batch: batch, start: time.Now()}
		select {
		case r.inflight <- e:
		case <-r.ctx.Done():
			finish(batch, outcome{err: fmt.Errorf("%w: %w", ErrIndeterminate, ErrClosed)})
			return
		}
	}
}

// completer waits for entries in submission order and hands out results.
func (r *raftReplicator) completer() {
	for {
		var e inflightEntry
		select {
		case e = <-r.inflight:
		case <-r.ctx.Done():
			return
		}
		err := futureError(r.ctx, e.fut)
		if errors.Is(err, errAbandoned) {
			finish(e.batch, outcome{err: fmt.Errorf("%w: %w", ErrIndeterminate, ErrClosed)})
			return
		}
		<-r.slots
		if err != nil {
			finish(e.batch, outcome{err: classifyRaftError(err)})
			continue
		}
		r.metrics.ObserveCommit(time.Since(e.start), len(e.batch))
		switch resp := e.fut.Response().(type) {
		case []Result:
			if len(resp) == len(e.batch) {
				for i, pd := range e.batch {
					pd.ch <- outcome{res: resp[i]}
				}
				continue
			}
		case error:
			finish(e.batch, outcome{err: resp})
			continue
		}
		finish(e.batch, outcome{err: fmt.Errorf("%w: entry was not applied as submitted", ErrIndeterminate)})
	}
}

// errAbandoned reports a Raft future given up on because the replicator
// is closing.
var errAbandoned = errors.New("abacus: raft future abandoned at close")

// futureError waits for a Raft future, or until ctx ends. hashicorp/raft
// never answers a future still queued in its apply channel when it shuts
// down, so waiting on it alone could hang Close; when ctx ends first the
// helper goroutine stays parked on the abandoned future.
func futureError(ctx context.Context, f raft.Future) error {
	ch := make(chan error, 1)
	go func() { ch <- f.Error() }()
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return errAbandoned
	}
}

func finish(batch []*pending, o outcome) {
	for _, pd := range batch {
		pd.ch <- o
	}
}

// classifyRaftError tells a proposal that was definitely not appended
// from one whose fate is unknown.
func classifyRaftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrEnqueueTimeout),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return fmt.Errorf("%w: %v", ErrIndeterminate, err)
}

// Read implements Replicator: under the leader lease from local state,
// otherwise after a shared confirmation round; on a follower, forwarded to
// the leader.
func (r *raftReplicator) Read(ctx context.Context, cmd Command) (Result, error) {
	if buggyLocalReads {
		return r.fsm.Read(cmd), nil
	}
	lt, err := r.leading(ctx)
	if err != nil {
		return Result{}, err
	}
	if lt == nil {
		return r.forwardRead(ctx, cmd)
	}
	return r.readLocal(ctx, lt, cmd)
}

func (r *raftReplicator) readLocal(ctx context.Context, lt *leaderTerm, cmd Command) (Result, error) {
	if left, ok := r.lease.remaining(lt.term, time.Now()); ok {
		if left < r.cfg.ReadLease/2 {
			// Renew from the read path too: under a flood of reads the
			// renewal goroutine may not be scheduled in time.
			r.confirm.kick()
		}
		r.metrics.CountRead(true)
		return r.fsm.Read(cmd), nil
	}
	if err := r.confirm.wait(ctx); err != nil {
		return Result{}, err
	}
	if r.term.Load() != lt {
		return Result{}, fmt.Errorf("%w: leadership lost", ErrUnavailable)
	}
	r.metrics.CountRead(false)
	return r.fsm.Read(cmd), nil
}

// tickLoop proposes a tick whenever state-machine time reaches the next
// expiry deadline, so leases and expiring counters end on time without
// waiting for other traffic. While anything can expire it also records
// time at least every TickInterval: a successor continues from the last
// time in the log, so this bounds how much a change of leader can extend a
// lease.
func (r *raftReplicator) tickLoop(lt *leaderTerm) {
	idle := time.NewTimer(time.Hour)
	defer idle.Stop()
	interval := int64(r.cfg.TickInterval)
	for {
		wait := time.Hour
		if deadline, ok := r.fsm.NextDeadline(); ok {
			now := lt.peek()
			lag := now - r.fsm.Now()
			if now >= deadline || lag >= interval {
				r.tick(lt)
				if lt.ctx.Err() != nil {
					return
				}
				continue
			}
			wait = time.Duration(min(deadline-now, interval-lag))
		}
		idle.Reset(wait)
		select {
		case <-idle.C:
		case <-r.applied:
			// Since Go 1.23 a stopped timer delivers no stale value, so
			// there is nothing to drain.
			idle.Stop()
		case <-lt.ctx.Done():
			return
		}
	}
}

func (r *raftReplicator) tick(lt *leaderTerm) {
	ctx, cancel := context.WithTimeout(lt.ctx, r.cfg.ElectionTimeout)
	defer cancel()
	if _, err := r.leading(ctx); err != nil {
		return
	}
	if _, err := r.submit(ctx, Proposal{Cmd: Command{Op: OpTick}}); err != nil {
		r.log.Debug("tick failed", "err", err)
	}
}

// Status implements Replicator.
func (r *raftReplicator) Status() Status {
	st := Status{
		ID:           r.cfg.ID,
		Backend:      "raft",
		State:        strings.ToLower(r.raft.State().String()),
		Term:         r.raft.CurrentTerm(),
		AppliedIndex: r.raft.AppliedIndex(),
		CommitIndex:  r.raft.CommitIndex(),
	}
	_, id := r.raft.LeaderWithID()
	st.Leader = string(id)
	if st.State == "follower" {
		if lc := r.raft.LastContact(); !lc.IsZero() {
			st.LastContact = time.Since(lc)
		}
	}
	if f := r.raft.GetConfiguration(); f.Error() == nil {
		for _, s := range f.Configuration().Servers {
			st.Members = append(st.Members, Member{ID: string(s.ID), Addr: string(s.Address), Voter: s.Suffrage == raft.Voter})
		}
		slices.SortFunc(st.Members, func(a, b Member) int { return strings.Compare(a.ID, b.ID) })
	}
	return st
}
