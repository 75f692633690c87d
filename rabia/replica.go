package rabia

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/transport"
	"github.com/abacuskit/abacus/rabia/internal/wmvc"
)

// Internal bounds.
const (
	// maxBatchBytes bounds a batch's estimated encoded size.
	maxBatchBytes = 1 << 20
	// maxQueued bounds the batches queued from peers.
	maxQueued = 1 << 16
	// engineRetain is how many applied slots the engine keeps, so that
	// stragglers are answered from memory rather than from the log.
	engineRetain = 256
	// decidedMemory is how many slots a decided batch id is remembered, so
	// that a late copy of it is not proposed again.
	decidedMemory = 1 << 16
	// inboxLen is the loop's input buffer.
	inboxLen = 8192
	// markAhead is how many slots beyond the highest one proposed the
	// persisted proposal mark reserves.
	markAhead = 64
	// joinWait is how long a slot revealed only by activity on a later
	// slot waits for its starter's proposal before this replica joins it
	// with its own queue head.
	joinWait = time.Millisecond
	// silentAfter is how many TickIntervals without a message make a peer
	// count as down, so that others start the slots it owns.
	silentAfter = 3
	// idleMark is how long a replica with no open slot waits before it
	// trims its proposal mark to the exact highest slot proposed.
	idleMark = 50 * time.Millisecond
	// drainTimeout bounds how long Close waits for this replica's open
	// slots to decide.
	drainTimeout = 2 * time.Second
)

// replica is the Rabia path: a Replicator that orders batches by running
// Weak-MVC for each slot among all members, with no leader.
//
// Goroutines: the batcher turns proposals into batches and disseminates
// them; the loop owns the consensus engine and the batch queue; the applier
// persists decisions, applies them in slot order and answers callers; the
// RPC server answers catch-up requests; a fetcher runs while this replica
// catches up from a peer.
type replica struct {
	cfg     abacus.Config
	opts    Options
	log     *slog.Logger
	clock   abacus.Clock
	fsm     *abacus.FSM
	metrics *abacus.Metrics

	self    int
	members []abacus.Member // sorted by id; index = replica index
	byID    map[string]int

	store  *storage
	msgr   *transport.Messenger
	rpc    *transport.RPCClient
	rpcSrv *transport.RPCServer
	engine *wmvc.Engine // owned by the loop

	submit  chan *pending
	inbox   chan inbound
	own     chan *wmvc.Value
	credits chan struct{}

	applyMu   sync.Mutex
	applyQ    []decided
	restoreQ  []byte   // a snapshot file received from a peer
	durableQ  []uint64 // slots whose decisions are on disk, for the loop
	applyWake chan struct{}
	appliedCh chan struct{}
	durableCh chan struct{} // durableQ has slots
	restored  atomic.Bool

	waitMu  sync.Mutex
	waiting map[string]*ownBatch

	applied    atomic.Uint64 // slots applied: the first unapplied slot
	fetching   atomic.Bool
	recovering atomic.Bool  // a recovery round runs (see recovery.go)
	lastRound  atomic.Int64 // when the last one ended, in Unix nanoseconds
	ticking    atomic.Bool
	closed     atomic.Bool
	est        smClock       // this replica's estimate of state-machine time
	timed      chan struct{} // closed once the cluster's time is learned (see syncTime)
	drain      chan struct{} // closed by Close: start and join no more slots
	drained    chan struct{} // closed by the loop once draining, no slot of ours is open and every decision is announced

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Loop state.
	q           *batchQueue
	open        map[uint64]*wmvc.Value // undecided slots this replica proposed in
	next        uint64                 // next slot this replica may start
	hwm         uint64                 // persisted: proposed in no slot above it
	proposedTop uint64                 // the highest slot proposed in, or the mark found at startup
	hasTop      bool
	hasHWM      bool
	lastPropose time.Time
	lastPrune   uint64 // applied slots when decidedIDs was last pruned
	decidedIDs  map[string]uint64
	joins       []uint64               // slots peers started, to propose in
	seen        map[uint64]*wmvc.Value // first proposal (nil: null) a peer made in an open slot
	openIDs     map[string]uint64      // ids of the batches in open
	mine        map[uint64]bool        // open slots this replica started
	unsynced    map[uint64]struct{}    // decided here, not yet reported durable (see onDurable)
	joinSince   map[uint64]time.Time   // deferred joins: when first reported
	ownQ        []*wmvc.Value          // this replica's batches, oldest first, to start slots with
	lastHeard   []time.Time            // per peer: when a message last came
	peerApplied []uint64
	lastApplied uint64
	stuckTicks  int
	stalled     time.Time // when this replica began to wait on a slot it may only learn
	stalledAt   uint64    // that slot
}

// pending is one proposal waiting for its batch to apply.
type pending struct {
	p     abacus.Proposal
	ch    chan outcome
	state atomic.Int32 // pendQueued, pendTaken or pendCancelled
}

const (
	pendQueued int32 = iota
	pendTaken
	pendCancelled
)

type outcome struct {
	res abacus.Result
	err error
}

// ownBatch is a batch this replica made, waiting to be applied.
type ownBatch struct {
	v     *wmvc.Value
	pend  []*pending
	start time.Time
}

type inboundKind uint8

const (
	inConsensus inboundKind = iota
	inBatch
	inStatus
	inFetched
	inRecover
)

type inbound struct {
	kind    inboundKind
	from    int
	msg     wmvc.Message
	v       *wmvc.Value
	applied uint64
	d       decided
	rec     *recoverReq
}

func open(env *abacus.Env, opts Options) (*replica, error) {
	cfg := env.Config
	opts = opts.withDefaults(&cfg)
	if err := opts.validate(); err != nil {
		return nil, err
	}
	if cfg.Join {
		return nil, fmt.Errorf("%w: rabia has fixed membership: give every node the same Peers", abacus.ErrInvalidArgument)
	}
	members := slices.Clone(cfg.Peers)
	slices.SortFunc(members, func(a, b abacus.Member) int { return strings.Compare(a.ID, b.ID) })
	if len(members) > wmvc.MaxReplicas {
		return nil, fmt.Errorf("%w: rabia supports at most %d members", abacus.ErrInvalidArgument, wmvc.MaxReplicas)
	}
	r := &replica{
		cfg: cfg, opts: opts, log: env.Logger, clock: cfg.Clock, fsm: env.FSM, metrics: env.Metrics,
		members:    members,
		byID:       map[string]int{},
		submit:     make(chan *pending, 4*opts.MaxBatch),
		inbox:      make(chan inbound, inboxLen),
		own:        make(chan *wmvc.Value, opts.MaxOutstanding),
		credits:    make(chan struct{}, opts.MaxOutstanding),
		applyWake:  make(chan struct{}, 1),
		appliedCh:  make(chan struct{}, 1),
		durableCh:  make(chan struct{}, 1),
		drain:      make(chan struct{}),
		drained:    make(chan struct{}),
		timed:      make(chan struct{}),
		waiting:    map[string]*ownBatch{},
		q:          newBatchQueue(),
		open:       map[uint64]*wmvc.Value{},
		seen:       map[uint64]*wmvc.Value{},
		openIDs:    map[string]uint64{},
		mine:       map[uint64]bool{},
		unsynced:   map[uint64]struct{}{},
		joinSince:  map[uint64]time.Time{},
		decidedIDs: map[string]uint64{},
	}
	r.self = -1
	for i, m := range members {
		r.byID[m.ID] = i
		if m.ID == cfg.ID {
			r.self = i
		}
	}
	if r.self < 0 {
		return nil, fmt.Errorf("%w: Peers must include this node", abacus.ErrInvalidArgument)
	}
	r.peerApplied = make([]uint64, len(members))
	r.lastHeard = make([]time.Time, len(members))
	r.ctx, r.cancel = context.WithCancel(context.Background())

	store, recs, err := openStorage(filepath.Join(cfg.Dir, "rabia"), cfg.NoSync)
	if err != nil {
		return nil, fmt.Errorf("rabia: storage: %w", err)
	}
	r.store = store
	if err := r.recover(recs); err != nil {
		store.Close()
		return nil, err
	}
	r.msgr = env.Mux.Messenger(r.receive, transport.MessengerConfig{QueueLen: 4096})
	r.rpc = transport.NewRPCClient(env.Mux, 0)
	r.rpcSrv = transport.NewRPCServer(env.Mux.Listener(transport.KindRPC), r.serveRPC)
	r.goroutine(func() { _ = r.rpcSrv.Serve(r.ctx) })
	r.goroutine(r.syncTime)
	r.goroutine(r.batcher)
	r.goroutine(r.loop)
	r.goroutine(r.applier)
	return r, nil
}

// recover rebuilds the state machine from the snapshot and the log, and
// starts the engine above what was applied, learning (not voting in) every
// slot this replica may have voted in before it stopped.
func (r *replica) recover(recs []decided) error {
	slots, _, err := r.store.LoadSnapshot(r.fsm)
	if err != nil {
		return fmt.Errorf("rabia: snapshot: %w", err)
	}
	later := map[uint64]*wmvc.Value{}
	for _, d := range recs {
		if d.slot >= slots {
			later[d.slot] = d.v
		}
	}
	applied := r.applyFrom(later, slots)
	r.applied.Store(applied)
	r.lastApplied = applied
	r.observe()
	r.engine, err = wmvc.NewEngine(wmvc.Config{
		ID: r.self, N: len(r.members), Secret: r.opts.Secret, Floor: applied,
		MaxPayload: wmvc.DefaultMaxPayload, Logger: r.log,
	})
	if err != nil {
		return fmt.Errorf("rabia: %w", err)
	}
	hwm, ok, err := r.store.LoadMark()
	if err != nil {
		return fmt.Errorf("rabia: %w", err)
	}
	r.hwm, r.hasHWM = hwm, ok
	// Slots up to a mark found at startup may have been voted in before:
	// the exact mark written at Close never goes below it.
	r.proposedTop, r.hasTop = hwm, ok
	r.next = applied
	// Decisions logged beyond a gap: the applier applies them once the gap
	// fills; the engine learns them so that it never votes there.
	var pend []decided
	for slot, v := range later {
		pend = append(pend, decided{slot: slot, v: v})
		r.next = max(r.next, slot+1)
		if r.inWindow(slot) {
			_ = r.engine.Adopt(slot, v)
		}
	}
	if ok && hwm >= applied {
		for s := applied; s <= hwm && r.inWindow(s); s++ {
			if err := r.engine.Learn(s); err != nil {
				return fmt.Errorf("rabia: learn slot %d: %w", s, err)
			}
		}
		r.next = max(r.next, hwm+1)
	}
	r.applyQ = append(r.applyQ, pend...)
	return nil
}

func (r *replica) inWindow(slot uint64) bool {
	f := r.engine.Floor()
	return slot >= f && slot-f < wmvc.DefaultSlotWindow
}

func (r *replica) goroutine(fn func()) {
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		fn()
	}()
}

// Close implements abacus.Replicator.
func (r *replica) Close() error {
	if !r.closed.CompareAndSwap(false, true) {
		return nil
	}
	// Let the slots this replica voted in decide before it stops: after a
	// restart it may only learn them (it cannot vote again), so a slot
	// left open on a majority of stopped replicas would need a recovery
	// round (recovery.go) to end.
	close(r.drain)
	t := time.NewTimer(drainTimeout)
	select {
	case <-r.drained:
	case <-t.C:
		r.log.Warn("rabia: closing with undecided slots")
	}
	t.Stop()
	r.cancel()
	r.msgr.Close()
	r.rpc.Close()
	r.wg.Wait()
	// The loop has stopped: no more proposals. Record the exact mark, so
	// that after a restart this replica learns only the slots it really
	// voted in (a reserved slot learnt by a majority would need recovery).
	if r.hasTop && r.hwm > r.proposedTop {
		if err := r.store.SaveMark(r.proposedTop); err != nil {
			r.log.Error("rabia: recording the proposal mark", "err", err)
		}
	}
	st := r.engine.Stats()
	r.log.Info("rabia: stopped", "applied", r.applied.Load(), "decided", st.Decided, "learned", st.Learned,
		"null", st.NullDecisions, "coin_flips", st.CoinFlips, "max_phase", st.MaxPhase, "value_fetches", st.ValueFetches)
	r.waitMu.Lock()
	for id, ob := range r.waiting {
		for _, pd := range ob.pend {
			pd.ch <- outcome{err: fmt.Errorf("%w: %w", abacus.ErrIndeterminate, abacus.ErrClosed)}
		}
		delete(r.waiting, id)
	}
	r.waitMu.Unlock()
	return r.store.Close()
}

// Propose implements abacus.Replicator.
func (r *replica) Propose(ctx context.Context, p abacus.Proposal) (abacus.Result, error) {
	if r.closed.Load() {
		return abacus.Result{}, abacus.ErrClosed
	}
	pd := &pending{p: p, ch: make(chan outcome, 1)}
	select {
	case r.submit <- pd:
	case <-ctx.Done():
		return abacus.Result{}, fmt.Errorf("%w: %w", abacus.ErrUnavailable, ctx.Err())
	case <-r.ctx.Done():
		return abacus.Result{}, abacus.ErrClosed
	}
	var cause error
	select {
	case o := <-pd.ch:
		return o.res, o.err
	case <-ctx.Done():
		cause = ctx.Err()
	case <-r.ctx.Done():
		cause = abacus.ErrClosed
	}
	if pd.state.CompareAndSwap(pendQueued, pendCancelled) {
		// Never batched, so never disseminated.
		return abacus.Result{}, fmt.Errorf("%w: %w", abacus.ErrUnavailable, cause)
	}
	// Disseminated: any replica may still order it.
	return abacus.Result{}, fmt.Errorf("%w: %w", abacus.ErrIndeterminate, cause)
}

// Read implements abacus.Replicator: the read goes through the log like a
// write, so its result reflects every write ordered before it.
func (r *replica) Read(ctx context.Context, cmd abacus.Command) (abacus.Result, error) {
	if !cmd.Op.ReadOnly() {
		return abacus.Result{}, fmt.Errorf("%w: %s is not a read", abacus.ErrInvalidArgument, cmd.Op)
	}
	res, err := r.Propose(ctx, abacus.Proposal{Cmd: cmd})
	if errors.Is(err, abacus.ErrIndeterminate) {
		// A read changes nothing: an unknown outcome is just unavailable.
		return res, fmt.Errorf("%w: %w", abacus.ErrUnavailable, err)
	}
	return res, err
}

// Status implements abacus.Replicator.
func (r *replica) Status() abacus.Status {
	st := abacus.Status{
		ID:           r.cfg.ID,
		Backend:      "rabia",
		State:        "replica",
		AppliedIndex: r.applied.Load(),
		CommitIndex:  r.applied.Load(),
		Members:      slices.Clone(r.members),
	}
	if r.closed.Load() {
		st.State = "shutdown"
	}
	return st
}

// stamp returns the time for a new batch: this replica's estimate of
// state-machine time (see smClock), never below current state-machine
// time or last.
func (r *replica) stamp(last int64) int64 {
	return max(r.fsm.Now(), r.est.Read(time.Now()), last)
}

// observe teaches the estimate the state-machine time just applied.
func (r *replica) observe() {
	r.est.Learn(r.fsm.Now(), time.Now())
}

// batcher coalesces submitted proposals into batches, disseminates each to
// every replica and queues it locally. It holds a credit per batch until
// the batch applies, so while MaxOutstanding batches are out, proposals
// gather into the next one.
func (r *replica) batcher() {
	var last int64
	// Batch ids must not repeat across restarts: the sequence starts
	// from the clock, and the stamp in the id moves forward too.
	seq := uint64(r.clock.Now().UnixNano())
	// Nothing is stamped before the cluster's time is learned.
	select {
	case <-r.timed:
	case <-r.ctx.Done():
		return
	}
	for {
		select {
		case r.credits <- struct{}{}:
		case <-r.ctx.Done():
			return
		}
		var batch []*pending
		size := 0
		take := func(pd *pending) {
			if pd.state.CompareAndSwap(pendQueued, pendTaken) {
				batch = append(batch, pd)
				size += approxSize(&pd.p)
			}
		}
		for len(batch) == 0 {
			select {
			case pd := <-r.submit:
				take(pd)
			case <-r.ctx.Done():
				return
			}
		}
	drain:
		for len(batch) < r.opts.MaxBatch && size < maxBatchBytes {
			select {
			case pd := <-r.submit:
				take(pd)
			default:
				break drain
			}
		}
		t := r.stamp(last)
		last = t
		props := make([]abacus.Proposal, len(batch))
		for i, pd := range batch {
			props[i] = pd.p
			props[i].Time = t
		}
		data, err := encodeBatch(props)
		if err != nil {
			<-r.credits
			for _, pd := range batch {
				pd.ch <- outcome{err: fmt.Errorf("%w: encoding: %v", abacus.ErrInvalidArgument, err)}
			}
			continue
		}
		seq++
		v := &wmvc.Value{ID: makeBatchID(t, r.self, seq), Payload: data}
		r.waitMu.Lock()
		r.waiting[string(v.ID)] = &ownBatch{v: v, pend: batch, start: time.Now()}
		r.waitMu.Unlock()
		r.broadcast(encodeBatchFrame(v))
		select {
		case r.own <- v:
		case <-r.ctx.Done():
			return
		}
	}
}

// encodeBatch encodes proposals as a batch's payload and checks that it
// decodes: this replica never disseminates or proposes a batch that no
// replica could apply.
func encodeBatch(props []abacus.Proposal) ([]byte, error) {
	data, err := abacus.EncodeEntry(props)
	if err != nil {
		return nil, err
	}
	if err := checkBatch(data); err != nil {
		return nil, err
	}
	return data, nil
}

// checkBatch reports whether a batch's payload decodes as a log entry.
//
// A batch that does not is never queued, proposed or joined. A slot
// decides a batch only when a majority of the replicas proposed it (the
// proposal rule of Weak-MVC), and correct replicas propose only batches
// that pass this check, so a peer that sends one, however often, cannot
// get it decided: it never reaches the log, where every replica would
// have to apply it on every restart.
func checkBatch(payload []byte) error {
	_, err := abacus.DecodeEntry(payload)
	return err
}

func approxSize(p *abacus.Proposal) int {
	n := 64 + len(p.Cmd.Name) + len(p.Cmd.Holder) + len(p.Cmd.FenceLock)
	for i := range p.Cmd.Ops {
		n += 48 + len(p.Cmd.Ops[i].Name) + len(p.Cmd.Ops[i].FenceLock)
	}
	return n
}

// receive is the Messenger's handler: it decodes and hands messages to the
// loop. Messages from unknown senders and malformed ones are dropped.
func (r *replica) receive(from string, msg []byte) {
	idx, ok := r.byID[from]
	if !ok || idx == r.self || len(msg) == 0 {
		return
	}
	in := inbound{from: idx}
	switch msg[0] {
	case frameConsensus:
		m, err := wmvc.DecodeMessage(msg[1:], wmvc.DefaultMaxPayload)
		if err != nil {
			r.log.Debug("rabia: malformed message", "from", from, "err", err)
			return
		}
		if m.Kind == wmvc.KindProposal && m.Value != nil {
			if err := checkBatch(m.Value.Payload); err != nil {
				r.log.Debug("rabia: proposal of a batch that does not decode", "from", from, "slot", m.Slot, "err", err)
				return
			}
		}
		in.kind, in.msg = inConsensus, m
	case frameBatch:
		v, err := decodeBatchFrame(msg[1:], wmvc.DefaultMaxPayload)
		if err != nil {
			r.log.Debug("rabia: malformed batch", "from", from, "err", err)
			return
		}
		if p, ok := batchProposer(v.ID); !ok || p != idx {
			r.log.Debug("rabia: batch of another proposer", "from", from)
			return
		}
		if err := checkBatch(v.Payload); err != nil {
			r.log.Debug("rabia: batch that does not decode", "from", from, "err", err)
			return
		}
		in.kind, in.v = inBatch, v
	case frameStatus:
		a, sm, err := decodeStatusFrame(msg[1:])
		if err != nil {
			return
		}
		r.est.Learn(sm, time.Now())
		in.kind, in.applied = inStatus, a
	default:
		return
	}
	select {
	case r.inbox <- in:
	case <-r.ctx.Done():
	}
}

func (r *replica) broadcast(frame []byte) {
	for i, m := range r.members {
		if i != r.self {
			_ = r.msgr.Send(m.Addr, frame)
		}
	}
}

func (r *replica) sendTo(i int, frame []byte) {
	if i != r.self && i >= 0 && i < len(r.members) {
		_ = r.msgr.Send(r.members[i].Addr, frame)
	}
}
