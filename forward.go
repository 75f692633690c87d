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
	"github.com/vmihailenco/msgpack/v5"

	"github.com/abacuskit/abacus/internal/transport"
)

// Forwarding: a follower sends proposals, linearizable reads and
// membership changes to the leader over the peer port's RPC connections.
// A request carries the caller's remaining time, so the leader gives up
// when the caller has; a response starts with a status byte that keeps
// "definitely not applied" apart from "outcome unknown" across the hop.

const (
	methodPropose uint8 = iota + 1
	methodRead
	methodAddMember
	methodRemoveMember
	methodTransfer
	// methodProposeMany carries many proposals from one follower in one
	// call (see forwarder).
	methodProposeMany
	// methodConfirmLease asks a follower to acknowledge the caller as the
	// leader of a term, for a read-lease round (see raft_lease.go).
	methodConfirmLease
)

// Follower-side coalescing of forwarded proposals: up to
// maxForwardBatch proposals travel in one call, and while
// maxForwardInflight calls are out the next proposals gather. A call
// holds its place for at most forwardHold, so calls the leader is slow to
// answer never hold back the ones behind them.
const (
	maxForwardBatch    = 512
	maxForwardInflight = 4
	forwardHold        = 10 * time.Millisecond
)

const (
	statusOK byte = iota
	statusUnavailable
	statusIndeterminate
	statusInvalid
	statusFailed
)

// maxForwardWait bounds how long a leader works on a forwarded request.
const maxForwardWait = time.Minute

func encodeRequest(ctx context.Context, payload []byte) []byte {
	wait := maxForwardWait
	if d, ok := ctx.Deadline(); ok {
		wait = min(time.Until(d), wait)
	}
	b := make([]byte, 8, 8+len(payload))
	binary.BigEndian.PutUint64(b, uint64(max(wait, 0)))
	return append(b, payload...)
}

func decodeRequest(ctx context.Context, req []byte) (context.Context, context.CancelFunc, []byte, error) {
	if len(req) < 8 {
		return nil, nil, nil, fmt.Errorf("%w: short request", ErrCorrupt)
	}
	wait := min(time.Duration(binary.BigEndian.Uint64(req)), maxForwardWait)
	ctx, cancel := context.WithTimeout(ctx, wait)
	return ctx, cancel, req[8:], nil
}

func encodeResponse(res *Result, err error) []byte {
	if err == nil {
		b, encErr := EncodeResults([]Result{*res})
		if encErr == nil {
			return append([]byte{statusOK}, b...)
		}
		err = encErr
	}
	return append([]byte{responseStatus(err)}, err.Error()...)
}

// responseStatus is the status byte that carries err's kind to the
// follower: whether the proposal may have applied.
func responseStatus(err error) byte {
	switch {
	case errors.Is(err, ErrIndeterminate):
		return statusIndeterminate
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrClosed):
		return statusUnavailable
	case errors.Is(err, ErrInvalidArgument):
		return statusInvalid
	}
	return statusFailed
}

// responseError rebuilds on the follower the leader's error of a status
// other than statusOK, with its message.
func responseError(status byte, msg string) error {
	switch status {
	case statusUnavailable:
		return fmt.Errorf("%w: leader: %s", ErrUnavailable, msg)
	case statusInvalid:
		return fmt.Errorf("%w: leader: %s", ErrInvalidArgument, msg)
	case statusIndeterminate:
		return fmt.Errorf("%w: leader: %s", ErrIndeterminate, msg)
	}
	return fmt.Errorf("abacus: leader: %s", msg)
}

func decodeResponse(b []byte) (Result, error) {
	if len(b) == 0 {
		return Result{}, fmt.Errorf("%w: %w: empty response", ErrIndeterminate, ErrCorrupt)
	}
	if b[0] != statusOK {
		return Result{}, responseError(b[0], string(b[1:]))
	}
	rs, err := DecodeResults(b[1:])
	if err != nil || len(rs) != 1 {
		return Result{}, fmt.Errorf("%w: bad response: %v", ErrIndeterminate, err)
	}
	return rs[0], nil
}

// call sends a request to the current leader. Errors say whether it may
// have taken effect.
func (r *raftReplicator) call(ctx context.Context, method uint8, payload []byte) ([]byte, error) {
	return r.callLeader(ctx, method, payload, nil)
}

// callLeader is call with a hook run just before the request goes to the
// transport, once a leader is known.
func (r *raftReplicator) callLeader(ctx context.Context, method uint8, payload []byte, sending func()) ([]byte, error) {
	addr, id := r.raft.LeaderWithID()
	if addr == "" {
		return nil, fmt.Errorf("%w: no leader", ErrUnavailable)
	}
	if string(id) == r.cfg.ID {
		return nil, fmt.Errorf("%w: leadership changing", ErrUnavailable)
	}
	if sending != nil {
		sending()
	}
	r.metrics.CountForward()
	resp, err := r.rpc.Call(ctx, string(addr), method, encodeRequest(ctx, payload))
	if err != nil {
		if errors.Is(err, transport.ErrNotSent) {
			return nil, fmt.Errorf("%w: forward to %s: %v", ErrUnavailable, id, err)
		}
		return nil, fmt.Errorf("%w: forward to %s: %v", ErrIndeterminate, id, err)
	}
	return resp, nil
}

func (r *raftReplicator) forwardPropose(ctx context.Context, p Proposal) (Result, error) {
	data, err := EncodeEntry([]Proposal{p})
	if err != nil {
		return Result{}, err
	}
	resp, err := r.call(ctx, methodPropose, data)
	if err != nil {
		return Result{}, err
	}
	return decodeResponse(resp)
}

// fwdPending is a proposal waiting in a follower's forwarding queue.
type fwdPending struct {
	ctx  context.Context // the caller's
	p    Proposal
	ch   chan outcome // buffered: the sender never blocks on it
	sent atomic.Bool  // handed to the transport: it may reach the leader
}

// forwardQueued forwards p to the leader in a call shared with other
// proposals made on this node meanwhile. Batches of operations, which can
// be large, go alone (forwardPropose).
func (r *raftReplicator) forwardQueued(ctx context.Context, p Proposal) (Result, error) {
	if p.Cmd.Op == OpBatch {
		return r.forwardPropose(ctx, p)
	}
	fp := &fwdPending{ctx: ctx, p: p, ch: make(chan outcome, 1)}
	select {
	case r.fwdQueue <- fp:
	case <-ctx.Done():
		return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	case <-r.ctx.Done():
		return Result{}, ErrClosed
	}
	select {
	case o := <-fp.ch:
		return o.res, o.err
	case <-ctx.Done():
		if !fp.sent.Load() {
			return Result{}, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
		}
		return Result{}, fmt.Errorf("%w: %w", ErrIndeterminate, ctx.Err())
	case <-r.ctx.Done():
		if !fp.sent.Load() {
			return Result{}, ErrClosed
		}
		return Result{}, fmt.Errorf("%w: %w", ErrIndeterminate, ErrClosed)
	}
}

// forwarder gathers queued forwarded proposals into calls: while
// maxForwardInflight calls are out (for at most forwardHold each),
// proposals gather for the next one.
func (r *raftReplicator) forwarder() {
	slots := make(chan struct{}, maxForwardInflight)
	for {
		select {
		case slots <- struct{}{}:
		case <-r.ctx.Done():
			return
		}
		var batch []*fwdPending
		select {
		case fp := <-r.fwdQueue:
			batch = append(make([]*fwdPending, 0, 16), fp)
		case <-r.ctx.Done():
			return
		}
	drain:
		for len(batch) < maxForwardBatch {
			select {
			case fp := <-r.fwdQueue:
				batch = append(batch, fp)
			default:
				break drain
			}
		}
		var once sync.Once
		release := func() { once.Do(func() { <-slots }) }
		hold := time.AfterFunc(forwardHold, release)
		r.goroutine(func() {
			defer func() {
				hold.Stop()
				release()
			}()
			r.sendForwarded(batch)
		})
	}
}

// sendForwarded makes one call for batch and hands out the outcomes.
// Proposals whose caller has already left are not sent.
func (r *raftReplicator) sendForwarded(batch []*fwdPending) {
	live := batch[:0]
	var latest time.Time
	unbounded := false
	for _, fp := range batch {
		if err := fp.ctx.Err(); err != nil {
			fp.ch <- outcome{err: fmt.Errorf("%w: %w", ErrUnavailable, err)}
			continue
		}
		live = append(live, fp)
		if d, ok := fp.ctx.Deadline(); !ok {
			unbounded = true
		} else if d.After(latest) {
			latest = d
		}
	}
	if len(live) == 0 {
		return
	}
	wait := maxForwardWait
	if !unbounded {
		wait = min(time.Until(latest), wait)
	}
	ctx, cancel := context.WithTimeout(r.ctx, wait)
	defer cancel()
	props := make([]Proposal, len(live))
	for i, fp := range live {
		props[i] = fp.p
	}
	outs, err := r.callMany(ctx, props, func() {
		for _, fp := range live {
			fp.sent.Store(true)
		}
	})
	for i, fp := range live {
		if err != nil {
			fp.ch <- outcome{err: err}
		} else {
			fp.ch <- outs[i]
		}
	}
}

func (r *raftReplicator) callMany(ctx context.Context, props []Proposal, sending func()) ([]outcome, error) {
	data, err := EncodeEntry(props)
	if err != nil {
		return nil, fmt.Errorf("%w: encoding: %v", ErrInvalidArgument, err)
	}
	resp, err := r.callLeader(ctx, methodProposeMany, data, sending)
	if err != nil {
		return nil, err
	}
	return decodeManyResponse(resp, len(props))
}

// serveMany submits forwarded proposals on the leader and answers with
// one outcome per proposal.
func (r *raftReplicator) serveMany(ctx context.Context, payload []byte) []byte {
	props, err := DecodeEntry(payload)
	if err != nil || len(props) == 0 || len(props) > maxForwardBatch {
		return encodeResponse(nil, fmt.Errorf("%w: malformed forwarded proposals", ErrInvalidArgument))
	}
	lt, err := r.leading(ctx)
	if err == nil && lt == nil {
		err = fmt.Errorf("%w: not the leader", ErrUnavailable)
	}
	if err != nil {
		return encodeResponse(nil, err)
	}
	outs := make([]outcome, len(props))
	pds := make([]*pending, len(props))
enqueue:
	for i, p := range props {
		if p.Cmd.Op.ReadOnly() {
			outs[i].err = fmt.Errorf("%w: read proposed as a write", ErrInvalidArgument)
			continue
		}
		if err := p.Cmd.Validate(); err != nil {
			outs[i].err = err
			continue
		}
		pd, err := r.enqueue(ctx, p)
		if err != nil {
			for j := i; j < len(props); j++ {
				outs[j].err = err
			}
			break enqueue
		}
		pds[i] = pd
	}
	for i, pd := range pds {
		if pd != nil {
			outs[i] = r.await(ctx, pd)
		}
	}
	return encodeManyResponse(outs)
}

// encodeManyResponse lays out outcomes as: statusOK, the count (uvarint),
// per outcome a status byte and, unless OK, a message (uvarint length and
// bytes), then every result (EncodeResults; zero for failed ones).
func encodeManyResponse(outs []outcome) []byte {
	b := binary.AppendUvarint([]byte{statusOK}, uint64(len(outs)))
	results := make([]Result, len(outs))
	for i, o := range outs {
		if o.err == nil {
			b = append(b, statusOK)
			results[i] = o.res
			continue
		}
		msg := o.err.Error()
		b = append(b, responseStatus(o.err))
		b = binary.AppendUvarint(b, uint64(len(msg)))
		b = append(b, msg...)
	}
	rb, err := EncodeResults(results)
	if err != nil {
		return encodeResponse(nil, fmt.Errorf("%w: encoding results: %v", ErrIndeterminate, err))
	}
	return append(b, rb...)
}

// decodeManyResponse parses what encodeManyResponse wrote for n proposals.
// A response that is not a list applies to all of them.
func decodeManyResponse(b []byte, n int) ([]outcome, error) {
	if len(b) == 0 || b[0] != statusOK {
		_, err := decodeResponse(b)
		return nil, err
	}
	bad := func(why string) ([]outcome, error) {
		return nil, fmt.Errorf("%w: %w: forwarded proposals: %s", ErrIndeterminate, ErrCorrupt, why)
	}
	b = b[1:]
	count, k := binary.Uvarint(b)
	if k <= 0 || count != uint64(n) {
		return bad("wrong count")
	}
	b = b[k:]
	outs := make([]outcome, n)
	for i := range outs {
		if len(b) == 0 {
			return bad("truncated")
		}
		status := b[0]
		b = b[1:]
		if status == statusOK {
			continue
		}
		l, k := binary.Uvarint(b)
		if k <= 0 || l > uint64(len(b)-k) {
			return bad("bad message length")
		}
		outs[i].err = responseError(status, string(b[k:k+int(l)]))
		b = b[k+int(l):]
	}
	results, err := DecodeResults(b)
	if err != nil || len(results) != n {
		return bad("bad results")
	}
	for i := range outs {
		if outs[i].err == nil {
			outs[i].res = results[i]
		}
	}
	return outs, nil
}

func (r *raftReplicator) forwardRead(ctx context.Context, cmd Command) (Result, error) {
	data, err := EncodeEntry([]Proposal{{Cmd: cmd}})
	if err != nil {
		return Result{}, err
	}
	resp, err := r.call(ctx, methodRead, data)
	if err != nil {
		// A read changes nothing: an unknown outcome is just unavailable.
		return Result{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return decodeResponse(resp)
}

// handleRPC serves forwarded requests on the leader. It never forwards
// again: a node that is not the leader answers unavailable and the caller
// retries against the leader it then knows.
func (r *raftReplicator) handleRPC(ctx context.Context, from string, method uint8, req []byte) ([]byte, error) {
	ctx, cancel, payload, err := decodeRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	defer cancel()
	switch method {
	case methodProposeMany:
		return r.serveMany(ctx, payload), nil
	case methodConfirmLease:
		return r.serveLeaseAsk(from, payload), nil
	case methodPropose, methodRead:
		props, err := DecodeEntry(payload)
		if err != nil || len(props) != 1 {
			return encodeResponse(nil, fmt.Errorf("%w: malformed forwarded command", ErrInvalidArgument)), nil
		}
		p := props[0]
		if err := p.Cmd.Validate(); err != nil {
			return encodeResponse(nil, err), nil
		}
		lt, err := r.leading(ctx)
		if err == nil && lt == nil {
			err = fmt.Errorf("%w: not the leader", ErrUnavailable)
		}
		if err != nil {
			return encodeResponse(nil, err), nil
		}
		var res Result
		if method == methodPropose {
			if p.Cmd.Op.ReadOnly() {
				return encodeResponse(nil, fmt.Errorf("%w: read proposed as a write", ErrInvalidArgument)), nil
			}
			res, err = r.submit(ctx, p)
		} else {
			if !p.Cmd.Op.ReadOnly() {
				return encodeResponse(nil, fmt.Errorf("%w: write sent as a read", ErrInvalidArgument)), nil
			}
			res, err = r.readLocal(ctx, lt, p.Cmd)
		}
		return encodeResponse(&res, err), nil
	case methodAddMember, methodRemoveMember, methodTransfer:
		m, err := decodeMember(payload)
		if err != nil {
			return encodeResponse(nil, fmt.Errorf("%w: malformed member: %v", ErrInvalidArgument, err)), nil
		}
		err = r.changeMembership(ctx, method, m)
		return encodeResponse(&Result{}, err), nil
	}
	r.log.Warn("unknown forwarded method", "from", from, "method", method)
	return nil, fmt.Errorf("unknown method %d", method)
}

// decodeMember decodes a forwarded membership change. The payload must be
// one msgpack value nesting at most maxSkipDepth levels, checked without
// recursion before msgpack's reflection decoder (which skips unknown
// fields recursively) sees it.
func decodeMember(payload []byte) (Member, error) {
	r := bytes.NewReader(payload)
	if err := skipValues(msgpack.NewDecoder(r), 1); err != nil {
		return Member{}, corrupt(err)
	}
	if r.Len() != 0 {
		return Member{}, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, r.Len())
	}
	var m Member
	if err := msgpack.Unmarshal(payload, &m); err != nil {
		return Member{}, corrupt(err)
	}
	return m, nil
}

// AddMember implements Membership.
func (r *raftReplicator) AddMember(ctx context.Context, m Member) error {
	if m.ID == "" || m.Addr == "" {
		return fmt.Errorf("%w: member needs an id and an address", ErrInvalidArgument)
	}
	return r.membership(ctx, methodAddMember, m)
}

// RemoveMember implements Membership.
func (r *raftReplicator) RemoveMember(ctx context.Context, id string) error {
	if id == "" {
		return fmt.Errorf("%w: member id is empty", ErrInvalidArgument)
	}
	return r.membership(ctx, methodRemoveMember, Member{ID: id})
}

// TransferLeadership implements Membership.
func (r *raftReplicator) TransferLeadership(ctx context.Context, id string) error {
	return r.membership(ctx, methodTransfer, Member{ID: id})
}

func (r *raftReplicator) membership(ctx context.Context, method uint8, m Member) error {
	if r.raft.State() == raft.Leader {
		return r.changeMembership(ctx, method, m)
	}
	payload, err := msgpack.Marshal(&m)
	if err != nil {
		return err
	}
	resp, err := r.call(ctx, method, payload)
	if err != nil {
		return err
	}
	_, err = decodeResponse(resp)
	return err
}

func (r *raftReplicator) changeMembership(ctx context.Context, method uint8, m Member) error {
	timeout := maxForwardWait
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	var err error
	switch method {
	case methodAddMember:
		if m.Voter {
			err = r.raft.AddVoter(raft.ServerID(m.ID), raft.ServerAddress(m.Addr), 0, timeout).Error()
		} else {
			err = r.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.Addr), 0, timeout).Error()
		}
	case methodRemoveMember:
		err = r.raft.RemoveServer(raft.ServerID(m.ID), 0, timeout).Error()
	case methodTransfer:
		// The lease goes at once: the target may win before this node
		// hears of it.
		r.lease.beginTransfer()
		if m.ID == "" {
			err = r.raft.LeadershipTransfer().Error()
		} else {
			err = r.transferTo(m.ID)
		}
		if err != nil {
			r.lease.endTransfer()
		}
	}
	if err != nil && !errors.Is(err, ErrNotFound) {
		return classifyRaftError(err)
	}
	return err
}

func (r *raftReplicator) transferTo(id string) error {
	f := r.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	for _, s := range f.Configuration().Servers {
		if string(s.ID) == id {
			return r.raft.LeadershipTransferToServer(s.ID, s.Address).Error()
		}
	}
	return fmt.Errorf("%w: no member %q", ErrNotFound, id)
}
