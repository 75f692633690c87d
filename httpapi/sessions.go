package httpapi

import (
	"strconv"

	"github.com/abacuskit/abacus"
)

// The headers that place a write in a client session (see docs/API.md).
const (
	// SessionHeader carries a session id from POST /v1/sessions.
	SessionHeader = "Abacus-Session"
	// SeqHeader numbers the write within its session, from 1; every retry
	// of one write carries the same number.
	SeqHeader = "Abacus-Seq"
	// AckHeader is the lowest number whose outcome the client has not seen.
	AckHeader = "Abacus-Ack"
)

// openSession answers POST /v1/sessions.
func (h *Handler) openSession(q *request) (any, error) {
	if err := q.readBody(&Empty{}, true); err != nil {
		return nil, err
	}
	id, err := h.node.OpenSession(q.ctx)
	if err != nil {
		return nil, err
	}
	return SessionResponse{Session: ID(id)}, nil
}

// session returns the write's session option, or nil when the request
// names no session.
func (q *request) session() (abacus.Option, error) {
	id, seq, ack := q.r.Header.Get(SessionHeader), q.r.Header.Get(SeqHeader), q.r.Header.Get(AckHeader)
	if id == "" && seq == "" && ack == "" {
		return nil, nil
	}
	var nums [3]uint64
	for i, h := range [3]struct{ name, v string }{{SessionHeader, id}, {SeqHeader, seq}, {AckHeader, ack}} {
		v, err := strconv.ParseUint(h.v, 10, 64)
		if err != nil || v == 0 {
			return nil, invalid("%s %q: want a positive decimal integer (the three session headers go together)", h.name, h.v)
		}
		nums[i] = v
	}
	if nums[2] > nums[1] {
		return nil, invalid("%s %d above %s %d", AckHeader, nums[2], SeqHeader, nums[1])
	}
	return abacus.WithSession(nums[0], nums[1], nums[2]), nil
}
