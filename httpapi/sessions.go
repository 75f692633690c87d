package httpapi

import (
	"strconv"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/httpapi/wire"
)

// openSession answers POST /v1/sessions.
func (h *Handler) openSession(q *request) (any, error) {
	if err := q.readBody(&wire.Empty{}, true); err != nil {
		return nil, err
	}
	id, err := h.node.OpenSession(q.ctx)
	if err != nil {
		return nil, err
	}
	return wire.SessionResponse{Session: wire.ID(id)}, nil
}

// session returns the write's session option, or nil when the request
// names no session.
func (q *request) session() (abacus.Option, error) {
	id, seq, ack := q.r.Header.Get(wire.SessionHeader), q.r.Header.Get(wire.SeqHeader), q.r.Header.Get(wire.AckHeader)
	if id == "" && seq == "" && ack == "" {
		return nil, nil
	}
	var nums [3]uint64
	for i, h := range [3]struct{ name, v string }{{wire.SessionHeader, id}, {wire.SeqHeader, seq}, {wire.AckHeader, ack}} {
		v, err := strconv.ParseUint(h.v, 10, 64)
		if err != nil || v == 0 {
			return nil, invalid("%s %q: want a positive decimal integer (the three session headers go together)", h.name, h.v)
		}
		nums[i] = v
	}
	if nums[2] > nums[1] {
		return nil, invalid("%s %d above %s %d", wire.AckHeader, nums[2], wire.SeqHeader, nums[1])
	}
	return abacus.WithSession(nums[0], nums[1], nums[2]), nil
}
