package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/httpapi/wire"
)

// writeOpts returns the options of a counter write: fence, instance and
// the Idempotency-Key header.
func (q *request) writeOpts(f *wire.Fence, instance wire.ID) ([]abacus.Option, error) {
	opts, err := q.writeOptions()
	if err != nil {
		return nil, err
	}
	if f != nil {
		if f.Lock == "" || f.Token == 0 {
			return nil, invalid("fence needs a lock name and a positive token")
		}
		opts = append(opts, abacus.WithFence(f.Lock, f.Token))
	}
	if instance != 0 {
		opts = append(opts, abacus.WithInstance(uint64(instance)))
	}
	return opts, nil
}

func mine(instance wire.ID, r abacus.Result) *int64 {
	if instance == 0 {
		return nil
	}
	v := r.Mine
	return &v
}

func (h *Handler) add(q *request) (any, error) {
	name, body, err := nameAndBody[wire.AddRequest](q, false)
	if err != nil {
		return nil, err
	}
	cmd, err := addCommand(name, &body)
	if err != nil {
		return nil, err
	}
	opts, err := q.writeOpts(body.Fence, body.Instance)
	if err != nil {
		return nil, err
	}
	r, err := h.node.Do(q.ctx, cmd, opts...)
	if err != nil {
		return nil, err
	}
	return wire.AddResponse{Value: r.Value, InstanceValue: mine(body.Instance, r)}, nil
}

// addCommand builds the add of b (without fence and instance, which travel
// as options).
func addCommand(name string, b *wire.AddRequest) (abacus.Command, error) {
	if b.Delta == nil {
		return abacus.Command{}, invalid("field \"delta\" is required")
	}
	expiry, err := ttlField("expiry_ms", b.ExpiryMS, true)
	if err != nil {
		return abacus.Command{}, err
	}
	cmd := abacus.Command{Op: abacus.OpAdd, Name: name, Delta: *b.Delta, TTL: expiry}
	setBounds(&cmd, b.Min, b.Max)
	return cmd, nil
}

// setBounds sets the optional floor and ceiling of an add.
func setBounds(c *abacus.Command, lo, hi *int64) {
	if lo != nil {
		c.Flags |= abacus.FlagMin
		c.Min = *lo
	}
	if hi != nil {
		c.Flags |= abacus.FlagMax
		c.Max = *hi
	}
}

func (h *Handler) get(q *request) (any, error) {
	name, err := q.name(0)
	if err != nil {
		return nil, err
	}
	opts, err := q.consistency()
	if err != nil {
		return nil, err
	}
	var instance wire.ID
	if s := q.r.URL.Query().Get("instance"); s != "" {
		if instance, err = wire.ParseID(s); err != nil || instance == 0 {
			return nil, invalid("bad instance %q", s)
		}
		opts = append(opts, abacus.WithInstance(uint64(instance)))
	}
	r, err := h.node.Do(q.ctx, abacus.Command{Op: abacus.OpGet, Name: name}, opts...)
	if err != nil {
		return nil, err
	}
	return wire.GetResponse{Value: r.Value, Exists: r.Exists, InstanceValue: mine(instance, r)}, nil
}

func (h *Handler) set(q *request) (any, error) {
	name, body, err := nameAndBody[wire.SetRequest](q, false)
	if err != nil {
		return nil, err
	}
	if body.Value == nil {
		return nil, invalid("field \"value\" is required")
	}
	opts, err := q.writeOpts(body.Fence, body.Instance)
	if err != nil {
		return nil, err
	}
	r, err := h.node.Do(q.ctx, abacus.Command{Op: abacus.OpSet, Name: name, Value: *body.Value}, opts...)
	if err != nil {
		return nil, err
	}
	return wire.SetResponse{Previous: r.Previous, Value: r.Value}, nil
}

func (h *Handler) cas(q *request) (any, error) {
	name, body, err := nameAndBody[wire.CASRequest](q, false)
	if err != nil {
		return nil, err
	}
	if body.Old == nil || body.New == nil {
		return nil, invalid("fields \"old\" and \"new\" are required")
	}
	opts, err := q.writeOpts(body.Fence, 0)
	if err != nil {
		return nil, err
	}
	r, err := h.node.Do(q.ctx, abacus.Command{Op: abacus.OpCompareAndSet, Name: name, Old: *body.Old, Value: *body.New}, opts...)
	if err != nil {
		return nil, err
	}
	return wire.CASResponse{Swapped: r.Swapped, Value: r.Value}, nil
}

func (h *Handler) del(q *request) (any, error) {
	name, body, err := nameAndBody[wire.DeleteRequest](q, true)
	if err != nil {
		return nil, err
	}
	opts, err := q.writeOpts(body.Fence, body.Instance)
	if err != nil {
		return nil, err
	}
	r, err := h.node.Do(q.ctx, abacus.Command{Op: abacus.OpDelete, Name: name}, opts...)
	if err != nil {
		return nil, err
	}
	return wire.DeleteResponse{Previous: r.Previous}, nil
}

func (h *Handler) batch(q *request) (any, error) {
	var body wire.BatchRequest
	if err := q.readBody(&body, false); err != nil {
		return nil, err
	}
	if len(body.Ops) == 0 || len(body.Ops) > abacus.MaxBatchOps {
		return nil, invalid("a batch has 1-%d operations, got %d", abacus.MaxBatchOps, len(body.Ops))
	}
	ops := make([]abacus.Command, len(body.Ops))
	for i := range body.Ops {
		c, err := batchCommand(&body.Ops[i])
		if err != nil {
			return nil, invalid("operation %d: %s", i, err.Error())
		}
		ops[i] = c
	}
	opts, err := q.writeOptions()
	if err != nil {
		return nil, err
	}
	r, err := h.node.Do(q.ctx, abacus.Command{Op: abacus.OpBatch, Ops: ops}, opts...)
	if err != nil {
		return nil, err
	}
	if len(r.Results) != len(ops) {
		return nil, fmt.Errorf("batch of %d operations returned %d results", len(ops), len(r.Results))
	}
	out := wire.BatchResponse{Results: make([]wire.BatchResult, len(ops))}
	for i, res := range r.Results {
		out.Results[i] = batchResult(&body.Ops[i], res)
	}
	return out, nil
}

func batchResult(op *wire.BatchOp, r abacus.Result) wire.BatchResult {
	i64 := func(v int64) *int64 { return &v }
	b := func(v bool) *bool { return &v }
	var out wire.BatchResult
	switch op.Op {
	case "add":
		out.Value = i64(r.Value)
	case "set":
		out.Previous, out.Value = i64(r.Previous), i64(r.Value)
	case "cas":
		out.Swapped, out.Value = b(r.Swapped), i64(r.Value)
	case "get":
		out.Value, out.Exists = i64(r.Value), b(r.Exists)
	case "delete":
		out.Previous = i64(r.Previous)
	}
	out.InstanceValue = mine(op.Instance, r)
	return out
}

// batchCommand turns a batch operation into a Command, checking that it
// has the fields its kind requires and no others.
func batchCommand(o *wire.BatchOp) (abacus.Command, error) {
	if err := validName(o.Name); err != nil {
		return abacus.Command{}, err
	}
	c := abacus.Command{Name: o.Name, Instance: uint64(o.Instance)}
	if o.Fence != nil {
		if o.Fence.Lock == "" || o.Fence.Token == 0 {
			return c, fmt.Errorf("fence needs a lock name and a positive token")
		}
		c.FenceLock, c.FenceToken = o.Fence.Lock, o.Fence.Token
	}
	want := map[string]bool{}
	switch o.Op {
	case "add":
		c.Op = abacus.OpAdd
		if o.Delta == nil {
			return c, fmt.Errorf("add needs \"delta\"")
		}
		c.Delta = *o.Delta
		setBounds(&c, o.Min, o.Max)
		want["delta"], want["min"], want["max"] = true, true, true
	case "set":
		c.Op = abacus.OpSet
		if o.Value == nil {
			return c, fmt.Errorf("set needs \"value\"")
		}
		c.Value = *o.Value
		want["value"] = true
	case "cas":
		c.Op = abacus.OpCompareAndSet
		if o.Old == nil || o.New == nil {
			return c, fmt.Errorf("cas needs \"old\" and \"new\"")
		}
		c.Old, c.Value = *o.Old, *o.New
		want["old"], want["new"] = true, true
	case "get":
		c.Op = abacus.OpGet
	case "delete":
		c.Op = abacus.OpDelete
	default:
		return c, fmt.Errorf("unknown op %q: want add, set, cas, get or delete", o.Op)
	}
	for field, set := range map[string]bool{
		"delta": o.Delta != nil, "value": o.Value != nil, "old": o.Old != nil,
		"new": o.New != nil, "min": o.Min != nil, "max": o.Max != nil,
	} {
		if set && !want[field] {
			return c, fmt.Errorf("%s does not take %q", o.Op, field)
		}
	}
	return c, nil
}

func validName(n string) error {
	if len(n) == 0 || len(n) > abacus.MaxNameLen {
		return fmt.Errorf("name must be 1-%d bytes, got %d", abacus.MaxNameLen, len(n))
	}
	return nil
}

// watch streams a counter's value as server-sent events: the current value
// first, then one event per change (a slow reader skips to the newest).
func (h *Handler) watch(q *request) (any, error) {
	name, err := q.name(0)
	if err != nil {
		return nil, err
	}
	rc := http.NewResponseController(q.w)
	events, err := h.node.Watch(q.ctx, name)
	if err != nil {
		return nil, err
	}
	hdr := q.w.Header()
	hdr.Set("Content-Type", "text/event-stream")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Accel-Buffering", "no")
	q.w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return nil, nil // the writer cannot stream; nothing more to do
	}
	ping := time.NewTicker(h.ping)
	defer ping.Stop()
	for {
		var err error
		select {
		case ev, ok := <-events:
			if !ok {
				return nil, nil
			}
			b, _ := json.Marshal(wire.WatchEvent{Value: ev.Value, Revision: ev.Revision, Exists: ev.Exists})
			_, err = fmt.Fprintf(q.w, "data: %s\n\n", b)
		case <-ping.C:
			// A comment line: keeps proxies and the client's idle
			// detection from closing a quiet stream.
			_, err = fmt.Fprint(q.w, ": ping\n\n")
		}
		if err == nil {
			err = rc.Flush()
		}
		if err != nil {
			return nil, nil
		}
	}
}
