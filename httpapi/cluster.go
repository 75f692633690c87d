package httpapi

import (
	"context"
	"fmt"
	"math"
	"net"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/errcode"
	"github.com/abacuskit/abacus/httpapi/wire"
)

func (h *Handler) status() wire.ClusterStatus {
	st := h.node.Status()
	out := wire.ClusterStatus{
		Node: st.ID, Backend: st.Backend, State: st.State, Leader: st.Leader, Term: st.Term,
		AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex,
		Members: make([]wire.MemberInfo, 0, len(st.Members)),
	}
	for _, m := range st.Members {
		addr, _ := h.dir.Get(m.ID)
		if addr == "" {
			addr, _ = h.node.HTTPAddr(m.ID) // as the member advertises it
		}
		out.Members = append(out.Members, wire.MemberInfo{ID: m.ID, PeerAddr: m.Addr, HTTPAddr: addr, Voter: m.Voter})
	}
	return out
}

func (h *Handler) cluster(*request) (any, error) { return h.status(), nil }

// state hashes this node's state machine. It encodes the whole state, so
// its cost grows with the number of counters, leases and sessions.
func (h *Handler) state(*request) (any, error) {
	s := h.node.FSM().Snapshot()
	hash, err := s.Hash()
	if err != nil {
		return nil, err
	}
	return wire.StateResponse{AppliedIndex: s.Index(), Hash: hash}, nil
}

// join adds a node (started with Config.Join) to the cluster and records
// its HTTP address. The reply is the cluster status, HTTP addresses
// included, so the new node learns them.
func (h *Handler) join(q *request) (any, error) {
	var body wire.JoinRequest
	if err := q.readBody(&body, false); err != nil {
		return nil, err
	}
	if body.ID == "" || len(body.ID) > 255 {
		return nil, invalid("id must be 1-255 bytes")
	}
	if _, _, err := net.SplitHostPort(body.PeerAddr); err != nil {
		return nil, invalid("peer_addr: %v", err)
	}
	if body.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(body.HTTPAddr); err != nil {
			return nil, invalid("http_addr: %v", err)
		}
	}
	voter := body.Voter == nil || *body.Voter
	if err := h.node.AddMember(q.ctx, abacus.Member{ID: body.ID, Addr: body.PeerAddr, Voter: voter}); err != nil {
		return nil, err
	}
	if body.HTTPAddr != "" {
		h.dir.Set(body.ID, body.HTTPAddr)
	}
	h.log.Info("member added", "id", body.ID, "peer_addr", body.PeerAddr, "http_addr", body.HTTPAddr)
	return h.status(), nil
}

func (h *Handler) removeMember(q *request) (any, error) {
	id := q.params[0]
	if id == "" || len(id) > 255 {
		return nil, invalid("id must be 1-255 bytes")
	}
	if err := h.node.RemoveMember(q.ctx, id); err != nil {
		return nil, err
	}
	h.dir.Delete(id)
	h.log.Info("member removed", "id", id)
	return wire.Empty{}, nil
}

func (h *Handler) transfer(q *request) (any, error) {
	var body wire.TransferRequest
	if err := q.readBody(&body, true); err != nil {
		return nil, err
	}
	if err := h.node.TransferLeadership(q.ctx, body.ID); err != nil {
		return nil, err
	}
	return wire.Empty{}, nil
}

var errFaultsOff = refusal(errcode.ErrPermissionDenied, "fault injection is not enabled on this node")

// adminFaults drives fault injection on a node started with it.
func (h *Handler) adminFaults(q *request) (any, error) {
	if !h.faults || !h.node.Faults().Enabled() {
		return nil, errFaultsOff
	}
	var body wire.FaultsRequest
	if err := q.readBody(&body, false); err != nil {
		return nil, err
	}
	if body.DelayMS != nil && (*body.DelayMS < 0 || *body.DelayMS > 3_600_000) {
		return nil, invalid("delay_ms must be in [0, 3600000]")
	}
	if body.Loss != nil && !(*body.Loss >= 0 && *body.Loss <= 1) {
		return nil, invalid("loss must be in [0, 1]")
	}
	if body.ClockOffsetMS != nil {
		if h.clock == nil {
			return nil, invalid("this node has no adjustable clock")
		}
		if o := *body.ClockOffsetMS; o < -int64(math.MaxInt64/time.Millisecond) || o > int64(math.MaxInt64/time.Millisecond) {
			return nil, invalid("clock_offset_ms out of range")
		}
	}
	f := h.node.Faults()
	var err error
	if body.Heal {
		err = f.Heal()
	}
	if err == nil && len(body.Partition) > 0 {
		err = f.Partition(body.Partition...)
	}
	if err == nil && body.Isolate {
		err = f.Isolate()
	}
	if err == nil && body.DelayMS != nil {
		err = f.Delay(time.Duration(*body.DelayMS) * time.Millisecond)
	}
	if err == nil && body.Loss != nil {
		err = f.Loss(*body.Loss)
	}
	if err != nil {
		return nil, invalid("%v", err)
	}
	if body.ClockOffsetMS != nil {
		h.clock.SetOffset(time.Duration(*body.ClockOffsetMS) * time.Millisecond)
	}
	h.log.Warn("faults injected", "heal", body.Heal, "partition", body.Partition, "isolate", body.Isolate,
		"delay_ms", body.DelayMS, "loss", body.Loss, "clock_offset_ms", body.ClockOffsetMS)
	return wire.Empty{}, nil
}

func (h *Handler) healthz(*request) (any, error) {
	return map[string]string{"status": "ok"}, nil
}

// readyProbe is the counter name /readyz reads; reads create nothing.
const readyProbe = "abacus.readyz"

// readyz answers 200 while a linearizable read succeeds within the ready
// timeout, else 503 unavailable.
func (h *Handler) readyz(q *request) (any, error) {
	ctx, cancel := context.WithTimeout(q.ctx, h.ready)
	defer cancel()
	if _, err := h.node.Get(ctx, readyProbe); err != nil {
		return nil, refusal(errcode.ErrUnavailable, fmt.Sprintf("not ready: %v", err))
	}
	return map[string]string{"status": "ready"}, nil
}
