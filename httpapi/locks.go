package httpapi

import (
	"context"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/httpapi/wire"
)

// maxTTLMS is the longest lease, in milliseconds.
const maxTTLMS = int64(abacus.MaxTTL / time.Millisecond)

func ttlField(field string, ms int64, zeroOK bool) (time.Duration, error) {
	if ms < 0 || ms > maxTTLMS || (ms == 0 && !zeroOK) {
		lo := 1
		if zeroOK {
			lo = 0
		}
		return 0, invalid("%s must be in [%d, %d]", field, lo, maxTTLMS)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func millis(d time.Duration) int64 { return int64(d / time.Millisecond) }

func (h *Handler) acquire(q *request) (any, error) {
	name, body, err := nameAndBody[wire.AcquireRequest](q, false)
	if err != nil {
		return nil, err
	}
	if body.Holder == "" || len(body.Holder) > abacus.MaxHolderLen {
		return nil, invalid("holder must be 1-%d bytes", abacus.MaxHolderLen)
	}
	ttl, err := ttlField("ttl_ms", body.TTLMS, false)
	if err != nil {
		return nil, err
	}
	wait, err := ttlField("wait_ms", body.WaitMS, true)
	if err != nil {
		return nil, err
	}
	// The wait comes on top of the request deadline, so this starts from
	// the request's own context rather than q.ctx (which already carries
	// the handler's timeout); a client disconnect still cancels it.
	ctx, cancel := context.WithTimeout(q.r.Context(), wait+h.timeout)
	defer cancel()
	info, err := h.node.AcquireLock(ctx, name, body.Holder, ttl, wait)
	if err != nil {
		return nil, err
	}
	return wire.AcquireResponse{Token: info.Token, TTLMS: millis(info.TTL)}, nil
}

// lockToken reads the lock name from the path and the token from the body.
func (q *request) lockToken() (string, uint64, error) {
	name, body, err := nameAndBody[wire.TokenRequest](q, false)
	if err != nil {
		return "", 0, err
	}
	if body.Token == 0 {
		return "", 0, invalid("field \"token\" must be positive")
	}
	return name, body.Token, nil
}

func (h *Handler) keepAliveLock(q *request) (any, error) {
	name, token, err := q.lockToken()
	if err != nil {
		return nil, err
	}
	ttl, err := h.node.KeepAliveLock(q.ctx, name, token)
	if err != nil {
		return nil, err
	}
	return wire.TTLResponse{TTLMS: millis(ttl)}, nil
}

func (h *Handler) release(q *request) (any, error) {
	name, token, err := q.lockToken()
	if err != nil {
		return nil, err
	}
	if err := h.node.ReleaseLock(q.ctx, name, token); err != nil {
		return nil, err
	}
	return wire.Empty{}, nil
}

func (h *Handler) getLock(q *request) (any, error) {
	name, err := q.name(0)
	if err != nil {
		return nil, err
	}
	opts, err := q.consistency()
	if err != nil {
		return nil, err
	}
	info, err := h.node.GetLock(q.ctx, name, opts...)
	if err != nil {
		return nil, err
	}
	if !info.Held {
		return wire.LockResponse{}, nil
	}
	return wire.LockResponse{Held: true, Holder: info.Holder, Token: info.Token, TTLMSRemaining: millis(info.Remaining)}, nil
}

func (h *Handler) registerInstance(q *request) (any, error) {
	var body wire.InstanceRequest
	if err := q.readBody(&body, false); err != nil {
		return nil, err
	}
	ttl, err := ttlField("ttl_ms", body.TTLMS, false)
	if err != nil {
		return nil, err
	}
	id, err := h.node.RegisterInstance(q.ctx, ttl)
	if err != nil {
		return nil, err
	}
	return wire.InstanceResponse{Instance: wire.ID(id), TTLMS: body.TTLMS}, nil
}

func (h *Handler) keepAliveInstance(q *request) (any, error) {
	id, err := q.id(0)
	if err != nil {
		return nil, err
	}
	if err := q.readBody(&wire.Empty{}, true); err != nil {
		return nil, err
	}
	ttl, err := h.node.KeepAliveOnce(q.ctx, id)
	if err != nil {
		return nil, err
	}
	return wire.TTLResponse{TTLMS: millis(ttl)}, nil
}

func (h *Handler) deleteInstance(q *request) (any, error) {
	id, err := q.id(0)
	if err != nil {
		return nil, err
	}
	if err := q.readBody(&wire.Empty{}, true); err != nil {
		return nil, err
	}
	if err := h.node.Revoke(q.ctx, id); err != nil {
		return nil, err
	}
	return wire.Empty{}, nil
}
