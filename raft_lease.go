package abacus

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// The read lease.
//
// While it holds a lease for its term, the leader answers linearizable
// reads from local state, without a network round trip. The lease rests on
// three facts about hashicorp/raft and one rule of abacus:
//
//  1. A node's term never decreases and is written to its stable store
//     before the node votes in a later term (a candidate raises its own
//     term before voting for itself, a voter before granting its vote), so
//     a node whose term is T at some moment has voted in no later term
//     before that moment, restart or not. (Config.NoSync gives this up
//     after a machine crash, and with it Raft's own safety.)
//  2. A leader of any term was elected by a majority of its configuration.
//     Configuration changes add or remove one voter at a time and a change
//     is appended only once the previous one has committed. A round runs
//     only after this term's first entry committed, so a leader of a later
//     term elected before the round's send time s could only use a configuration from this
//     node's log: its latest one or the one before, and every majority of
//     either meets every majority of the other.
//  3. An acknowledgement of a confirmation round is produced after the
//     round's request was sent, and echoes the round's term and number.
//     The round is this node's own RPC
//     (methodConfirmLease), not Raft's heartbeat replies: those can answer
//     heartbeats sent before the round began (VerifyLeader counts any reply
//     that arrives after it registers, however old), so a leader paused
//     after a follower answered and before it read the answer would confirm
//     its lease from knowledge that predates the round.
//  4. A new leader serves nothing, neither reads nor writes, until
//     ReadLease plus DriftMargin after it learned it leads (leaderTerm's
//     servesAt).
//
// A round records its send time s (before any request leaves), asks every
// other voter of the latest configuration, and succeeds once a majority,
// this node included, answered positively: a follower answers only while
// its term is the round's term T and it knows this node as the leader of
// T, and this node checks after the answers that it still leads T. By (1)
// no member of that majority had voted in a term above T before s; by (2)
// every later leader needs one of their votes; so no later term's leader
// was elected before s. By (4) that leader serves nothing before
// s + ReadLease + DriftMargin on its clock, which is after s + ReadLease on
// this node's clock as long as the two clocks' rates differ by less than
// the margin. So the lease runs to s + ReadLease: every read it answers
// precedes everything a later leader serves. Each acknowledgement promises
// the same thing (no later leader before s), so the minimum over the
// quorum is s + ReadLease.
//
// The lease does not rely on followers' leader stickiness (a follower that
// knows a leader refuses votes until its heartbeat timer finds that
// leader's last contact older than HeartbeatTimeout): a leadership
// transfer's vote requests bypass it and a restarted follower knows no
// leader, so a later leader can be elected right after s. Rule (4) covers
// those cases, and it must hold for reads as well as writes: the new
// term's first entry can commit an entry of term T that this node never
// committed, and a read showing it must not come before a read under this
// node's lease that does not.
//
// The lease is tied to the term. Every change of leadership and the start
// of a leadership transfer revoke it and begin a new generation; a round
// extends the lease only if no revocation happened since it began (its
// generation is unchanged) and no transfer is under way, both checked
// under the lock that revocation takes, so an extension from a round that
// began before a transfer started is discarded. Concurrent reads share one
// round (confirmer), and under a valid lease a read is one atomic load.

type readLease struct {
	p atomic.Pointer[leaseGrant]

	mu           sync.Mutex // orders extensions against revocations
	gen          uint64     // bumped by every revocation
	transferring bool       // a leadership transfer is under way

	rounds atomic.Uint64 // numbers confirmation rounds
}

type leaseGrant struct {
	term  uint64
	until time.Time
}

// remaining returns how long the lease of term has to run at now, and
// whether it is valid at all.
func (l *readLease) remaining(term uint64, now time.Time) (time.Duration, bool) {
	g := l.p.Load()
	if g == nil || g.term != term || !now.Before(g.until) {
		return 0, false
	}
	return g.until.Sub(now), true
}

// generation returns the current generation; a round takes it before it
// sends anything.
func (l *readLease) generation() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen
}

// extend lengthens the lease of term to until, on behalf of a round that
// began in generation gen. It reports whether it did: a round that a
// revocation or a transfer overlapped extends nothing.
func (l *readLease) extend(gen, term uint64, until time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if gen != l.gen || l.transferring {
		return false
	}
	if old := l.p.Load(); old != nil && old.term == term && !until.After(old.until) {
		return true
	}
	l.p.Store(&leaseGrant{term: term, until: until})
	return true
}

// revokeLocked drops the lease and discards every round under way.
func (l *readLease) revokeLocked() {
	l.gen++
	l.p.Store(nil)
}

// reset revokes the lease on a change of leadership, which also ends any
// transfer.
func (l *readLease) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.revokeLocked()
	l.transferring = false
}

// beginTransfer revokes the lease at the start of a leadership transfer:
// the target may win before this node hears of it.
func (l *readLease) beginTransfer() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.revokeLocked()
	l.transferring = true
}

// endTransfer ends a transfer that failed; rounds that overlapped it are
// discarded too.
func (l *readLease) endTransfer() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.revokeLocked()
	l.transferring = false
}

// confirmer shares confirmation rounds among concurrent reads: a read
// joins the next round to start, never one already under way (which could
// have begun before the read arrived), and every read waiting when a round
// starts is answered by it.
type confirmer struct {
	mu      sync.Mutex
	next    *round
	running bool
	run     func() error
}

type round struct {
	done chan struct{}
	err  error
}

func (c *confirmer) wait(ctx context.Context) error {
	c.mu.Lock()
	if c.next == nil {
		c.next = &round{done: make(chan struct{})}
	}
	rd := c.next
	if !c.running {
		c.running = true
		go c.loop()
	}
	c.mu.Unlock()
	select {
	case <-rd.done:
		return rd.err
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	}
}

// kick starts a round unless one is already pending or running, without
// waiting for it.
func (c *confirmer) kick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	c.next = &round{done: make(chan struct{})}
	c.running = true
	go c.loop()
}

func (c *confirmer) loop() {
	for {
		c.mu.Lock()
		rd := c.next
		c.next = nil
		if rd == nil {
			c.running = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		rd.err = c.run()
		close(rd.done)
	}
}

// confirmLeadership runs one confirmation round and extends the lease
// from the round's send time.
func (r *raftReplicator) confirmLeadership() error {
	lt := r.term.Load()
	if lt == nil {
		return fmt.Errorf("%w: not the leader", ErrUnavailable)
	}
	gen := r.lease.generation()
	seq := r.lease.rounds.Add(1)
	sent := time.Now()
	if err := r.gatherAcks(lt, seq); err != nil {
		return err
	}
	// This node's own part of the quorum, checked after every request
	// was sent.
	if r.raft.State() != raft.Leader || r.raft.CurrentTerm() != lt.term || r.term.Load() != lt {
		return fmt.Errorf("%w: leadership lost", ErrUnavailable)
	}
	r.lease.extend(gen, lt.term, sent.Add(r.cfg.ReadLease))
	return nil
}

// gatherAcks asks the other voters of the latest configuration to
// acknowledge this node as the leader of lt's term, and returns once enough
// of them have for a majority with this node.
func (r *raftReplicator) gatherAcks(lt *leaderTerm, seq uint64) error {
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("%w: configuration: %v", ErrUnavailable, err)
	}
	var peers []raft.Server
	voters, self := 0, false
	for _, s := range f.Configuration().Servers {
		if s.Suffrage != raft.Voter {
			continue
		}
		voters++
		if string(s.ID) == r.cfg.ID {
			self = true
			continue
		}
		peers = append(peers, s)
	}
	need := voters/2 + 1
	if self {
		need--
	}
	if need == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(lt.ctx, r.cfg.HeartbeatTimeout+r.cfg.ElectionTimeout)
	defer cancel()
	req := encodeRequest(ctx, encodeLeaseAsk(lt.term, seq))
	answers := make(chan error, len(peers))
	for _, p := range peers {
		go func() { answers <- r.askLease(ctx, p, req, lt.term, seq) }()
	}
	var acks int
	var refusals []error
	for acks < need {
		if len(peers)-len(refusals) < need {
			return fmt.Errorf("%w: leadership not confirmed: %w", ErrUnavailable, errors.Join(refusals...))
		}
		select {
		case err := <-answers:
			if err != nil {
				refusals = append(refusals, err)
				continue
			}
			acks++
		case <-ctx.Done():
			return fmt.Errorf("%w: leadership not confirmed in time: %w", ErrUnavailable, ctx.Err())
		}
	}
	return nil
}

// The confirmation request is the term and the round number; a positive
// answer is statusOK followed by both, echoed.
const (
	leaseAskLen = 16
	leaseAckLen = 1 + leaseAskLen
)

func encodeLeaseAsk(term, seq uint64) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, leaseAskLen), term)
	return binary.BigEndian.AppendUint64(b, seq)
}

// askLease sends one confirmation request and checks the answer: nil only
// for an acknowledgement of this term and round.
func (r *raftReplicator) askLease(ctx context.Context, to raft.Server, req []byte, term, seq uint64) error {
	resp, err := r.rpc.Call(ctx, string(to.Address), methodConfirmLease, req)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", to.ID, err)
	case len(resp) == 0:
		return fmt.Errorf("%s: %w: empty lease acknowledgement", to.ID, ErrCorrupt)
	case resp[0] != statusOK:
		return fmt.Errorf("%s: %w", to.ID, responseError(resp[0], string(resp[1:])))
	case len(resp) != leaseAckLen || !bytes.Equal(resp[1:], encodeLeaseAsk(term, seq)):
		return fmt.Errorf("%s: %w: lease acknowledgement for another round", to.ID, ErrCorrupt)
	}
	return nil
}

// serveLeaseAsk answers a confirmation request from node from: positively
// only if this node is a follower whose term is the request's and whose
// known leader is from. It runs after the request arrived, so the term it
// reads is the follower's term at some moment after the round was sent.
func (r *raftReplicator) serveLeaseAsk(from string, payload []byte) []byte {
	if len(payload) != leaseAskLen {
		return encodeResponse(nil, fmt.Errorf("%w: malformed lease confirmation", ErrInvalidArgument))
	}
	term := binary.BigEndian.Uint64(payload)
	if cur := r.raft.CurrentTerm(); cur != term {
		return encodeResponse(nil, fmt.Errorf("%w: term is %d, not %d", ErrUnavailable, cur, term))
	}
	if st := r.raft.State(); st != raft.Follower {
		return encodeResponse(nil, fmt.Errorf("%w: %s, not a follower", ErrUnavailable, st))
	}
	if _, id := r.raft.LeaderWithID(); string(id) != from {
		return encodeResponse(nil, fmt.Errorf("%w: leader of term %d is %q", ErrUnavailable, term, id))
	}
	return append([]byte{statusOK}, payload...)
}

// renewLease keeps the lease fresh while this node leads, so reads rarely
// wait for a round.
func (r *raftReplicator) renewLease(lt *leaderTerm) {
	t := time.NewTicker(r.cfg.ReadLease / 3)
	defer t.Stop()
	for {
		_ = r.confirm.wait(lt.ctx)
		select {
		case <-t.C:
		case <-lt.ctx.Done():
			return
		}
	}
}
