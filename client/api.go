package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/abacuskit/abacus/httpapi/wire"
)

// CallOption modifies one call: bounds, fences and instances for counter
// writes, consistency and instance for reads, an idempotency key.
type CallOption func(*callOpts)

type callOpts struct {
	min, max *int64
	fence    *wire.Fence
	instance uint64
	expiry   time.Duration
	stale    bool
	key      string
}

// WithMin makes an add conditional: refused (out_of_range) below min.
func WithMin(v int64) CallOption { return func(o *callOpts) { o.min = &v } }

// WithMax makes an add conditional: refused (out_of_range) above max.
func WithMax(v int64) CallOption { return func(o *callOpts) { o.max = &v } }

// WithFence guards a write with a lock's fencing token.
func WithFence(lock string, token uint64) CallOption {
	return func(o *callOpts) { o.fence = &wire.Fence{Lock: lock, Token: token} }
}

// WithInstance makes a counter call act on an instance's slice (and report it
// as InstanceValue).
func WithInstance(id uint64) CallOption { return func(o *callOpts) { o.instance = id } }

// WithExpiry gives an add an expiry window (see abacus.WithExpiry).
func WithExpiry(d time.Duration) CallOption { return func(o *callOpts) { o.expiry = d } }

// WithStale reads from the answering node's local state.
func WithStale() CallOption { return func(o *callOpts) { o.stale = true } }

// WithIdempotencyKey sets a write's Idempotency-Key: the write runs once per
// key (for the node's key TTL, at least 10 minutes) instead of in the
// client's session. With WithoutRetries a write carries neither unless a
// key is given this way.
func WithIdempotencyKey(k string) CallOption { return func(o *callOpts) { o.key = k } }

func collect(opts []CallOption) callOpts {
	var o callOpts
	for _, f := range opts {
		if f != nil {
			f(&o)
		}
	}
	return o
}

// writeCall returns a counter write's call: keyed when the caller gave a
// key, else in the client's session when it retries, else a single
// attempt.
func (c *Client) writeCall(method, path string, body, out any, o callOpts) call {
	cl := call{method: method, path: path, body: body, out: out, kind: once, key: o.key, endpoint: -1}
	switch {
	case cl.key != "":
		cl.kind = keyed
	case c.retry:
		cl.kind = sequenced
	}
	return cl
}

// Add adds delta to counter name and returns its new value.
func (c *Client) Add(ctx context.Context, name string, delta int64, opts ...CallOption) (wire.AddResponse, error) {
	o := collect(opts)
	body := wire.AddRequest{Delta: &delta, Min: o.min, Max: o.max, Fence: o.fence, Instance: wire.ID(o.instance), ExpiryMS: o.expiry.Milliseconds()}
	var out wire.AddResponse
	err := c.do(ctx, c.writeCall("POST", "/v1/counters/"+esc(name)+"/add", body, &out, o))
	return out, err
}

// Get reads counter name, linearizably unless WithStale is given.
func (c *Client) Get(ctx context.Context, name string, opts ...CallOption) (wire.GetResponse, error) {
	o := collect(opts)
	q := url.Values{}
	if o.stale {
		q.Set("consistency", "stale")
	}
	if o.instance != 0 {
		q.Set("instance", wire.ID(o.instance).String())
	}
	path := "/v1/counters/" + esc(name)
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out wire.GetResponse
	err := c.do(ctx, call{method: "GET", path: path, out: &out, kind: read, endpoint: -1})
	return out, err
}

// Set sets counter name to value.
func (c *Client) Set(ctx context.Context, name string, value int64, opts ...CallOption) (wire.SetResponse, error) {
	o := collect(opts)
	body := wire.SetRequest{Value: &value, Fence: o.fence, Instance: wire.ID(o.instance)}
	var out wire.SetResponse
	err := c.do(ctx, c.writeCall("PUT", "/v1/counters/"+esc(name), body, &out, o))
	return out, err
}

// CompareAndSet sets counter name to new if it holds old. A mismatch is
// not an error: Swapped is false and Value the current value.
func (c *Client) CompareAndSet(ctx context.Context, name string, old, new int64, opts ...CallOption) (wire.CASResponse, error) {
	o := collect(opts)
	body := wire.CASRequest{Old: &old, New: &new, Fence: o.fence}
	var out wire.CASResponse
	err := c.do(ctx, c.writeCall("POST", "/v1/counters/"+esc(name)+"/cas", body, &out, o))
	return out, err
}

// Delete removes counter name.
func (c *Client) Delete(ctx context.Context, name string, opts ...CallOption) (wire.DeleteResponse, error) {
	o := collect(opts)
	var body any
	if o.fence != nil || o.instance != 0 {
		body = wire.DeleteRequest{Fence: o.fence, Instance: wire.ID(o.instance)}
	}
	var out wire.DeleteResponse
	err := c.do(ctx, c.writeCall("DELETE", "/v1/counters/"+esc(name), body, &out, o))
	return out, err
}

// Batch applies ops atomically. A compare-and-set that does not match
// fails the batch with ErrMismatch; Error.Index names the failing op.
func (c *Client) Batch(ctx context.Context, ops []wire.BatchOp, opts ...CallOption) (wire.BatchResponse, error) {
	o := collect(opts)
	var out wire.BatchResponse
	err := c.do(ctx, c.writeCall("POST", "/v1/batch", wire.BatchRequest{Ops: ops}, &out, o))
	return out, err
}

// AcquireLock acquires lock name for holder under a lease of ttl, waiting
// up to wait. ErrLockHeld (with Error.Holder) when it could not be had;
// ErrLeaseExpired when its lease ended while it waited (it may have held the
// lock in between, and holds nothing now).
func (c *Client) AcquireLock(ctx context.Context, name, holder string, ttl, wait time.Duration) (wire.AcquireResponse, error) {
	body := wire.AcquireRequest{Holder: holder, TTLMS: ttl.Milliseconds(), WaitMS: wait.Milliseconds()}
	var out wire.AcquireResponse
	err := c.do(ctx, call{method: "POST", path: "/v1/locks/" + esc(name) + "/acquire", body: body, out: &out,
		kind: once, attempt: wait + c.attempt, endpoint: -1})
	return out, err
}

// KeepAliveLock renews the lease of the holder of token and returns its
// TTL. ErrStaleToken or ErrLeaseExpired when the lock is lost.
func (c *Client) KeepAliveLock(ctx context.Context, name string, token uint64) (time.Duration, error) {
	var out wire.TTLResponse
	err := c.do(ctx, call{method: "POST", path: "/v1/locks/" + esc(name) + "/keepalive", body: wire.TokenRequest{Token: token}, out: &out, kind: keyed, endpoint: -1})
	return time.Duration(out.TTLMS) * time.Millisecond, err
}

// ReleaseLock releases lock name held with token. ErrStaleToken when the
// token no longer holds it.
func (c *Client) ReleaseLock(ctx context.Context, name string, token uint64) error {
	err := c.do(ctx, call{method: "POST", path: "/v1/locks/" + esc(name) + "/release", body: wire.TokenRequest{Token: token}, out: &wire.Empty{}, kind: keyed, endpoint: -1})
	return err
}

// GetLock reports who holds lock name.
func (c *Client) GetLock(ctx context.Context, name string, opts ...CallOption) (wire.LockResponse, error) {
	o := collect(opts)
	path := "/v1/locks/" + esc(name)
	if o.stale {
		path += "?consistency=stale"
	}
	var out wire.LockResponse
	err := c.do(ctx, call{method: "GET", path: path, out: &out, kind: read, endpoint: -1})
	return out, err
}

// RegisterInstance registers an instance (a lease of ttl) and returns its
// id.
func (c *Client) RegisterInstance(ctx context.Context, ttl time.Duration) (uint64, error) {
	var out wire.InstanceResponse
	err := c.do(ctx, call{method: "POST", path: "/v1/instances", body: wire.InstanceRequest{TTLMS: ttl.Milliseconds()}, out: &out, kind: once, endpoint: -1})
	return uint64(out.Instance), err
}

// KeepAliveInstance renews instance id and returns its TTL.
func (c *Client) KeepAliveInstance(ctx context.Context, id uint64) (time.Duration, error) {
	var out wire.TTLResponse
	err := c.do(ctx, call{method: "POST", path: "/v1/instances/" + wire.ID(id).String() + "/keepalive", out: &out, kind: keyed, endpoint: -1})
	return time.Duration(out.TTLMS) * time.Millisecond, err
}

// DeleteInstance ends instance id; its contributions leave every counter.
func (c *Client) DeleteInstance(ctx context.Context, id uint64) error {
	return c.do(ctx, call{method: "DELETE", path: "/v1/instances/" + wire.ID(id).String(), out: &wire.Empty{}, kind: keyed, endpoint: -1})
}

// Cluster returns the answering node's view of the cluster.
func (c *Client) Cluster(ctx context.Context) (wire.ClusterStatus, error) {
	var out wire.ClusterStatus
	err := c.do(ctx, call{method: "GET", path: "/v1/cluster", out: &out, kind: read, endpoint: -1})
	return out, err
}

// NodeStatus returns the view of the node at endpoint i (no failover).
func (c *Client) NodeStatus(ctx context.Context, i int) (wire.ClusterStatus, error) {
	var out wire.ClusterStatus
	err := c.do(ctx, call{method: "GET", path: "/v1/cluster", out: &out, kind: read, endpoint: c.index(i)})
	return out, err
}

// NodeState returns the state-machine hash of the node at endpoint i, with
// the log position it covers (no failover).
func (c *Client) NodeState(ctx context.Context, i int) (wire.StateResponse, error) {
	var out wire.StateResponse
	err := c.do(ctx, call{method: "GET", path: "/v1/cluster/state", out: &out, kind: read, endpoint: c.index(i)})
	return out, err
}

// AddMember joins a node (started to join) to the cluster.
func (c *Client) AddMember(ctx context.Context, m wire.JoinRequest) (wire.ClusterStatus, error) {
	var out wire.ClusterStatus
	err := c.do(ctx, call{method: "POST", path: "/v1/cluster/members", body: m, out: &out, kind: once, endpoint: -1})
	return out, err
}

// RemoveMember removes node id from the cluster.
func (c *Client) RemoveMember(ctx context.Context, id string) error {
	return c.do(ctx, call{method: "DELETE", path: "/v1/cluster/members/" + esc(id), out: &wire.Empty{}, kind: once, endpoint: -1})
}

// TransferLeadership hands leadership to voter id, or any when empty.
func (c *Client) TransferLeadership(ctx context.Context, id string) error {
	return c.do(ctx, call{method: "POST", path: "/v1/cluster/leadership-transfer", body: wire.TransferRequest{ID: id}, out: &wire.Empty{}, kind: once, endpoint: -1})
}

// Ready reports whether the node at endpoint i can serve linearizable
// requests (GET /readyz).
func (c *Client) Ready(ctx context.Context, i int) error {
	return c.do(ctx, call{method: "GET", path: "/readyz", kind: read, endpoint: c.index(i)})
}

// Faults injects faults on the node at endpoint i (nodes started with
// fault injection only).
func (c *Client) Faults(ctx context.Context, i int, f wire.FaultsRequest) error {
	return c.do(ctx, call{method: "POST", path: "/v1/admin/faults", body: f, out: &wire.Empty{}, kind: once, endpoint: c.index(i)})
}

func (c *Client) index(i int) int {
	if i < 0 || i >= len(c.endpoints) {
		return 0
	}
	return i
}

// Watch calls fn with counter name's value now and after every change
// (a slow reader skips to the newest), until ctx ends, fn returns an
// error, or the stream fails. With retries (the default) a failed stream
// is reopened on the next endpoint, whose first event is the latest
// value. It returns fn's error, or the context's.
func (c *Client) Watch(ctx context.Context, name string, fn func(wire.WatchEvent) error) error {
	backoff := c.backoff
	idx := int(c.preferred.Load())
	var last uint64
	for {
		err := c.watchOnce(ctx, c.endpoints[idx%len(c.endpoints)], name, func(ev wire.WatchEvent) error {
			if ev.Revision < last {
				return nil // an endpoint further behind: never go back
			}
			last = ev.Revision
			return fn(ev)
		})
		var fnErr callbackError
		switch {
		case errors.As(err, &fnErr):
			return fnErr.err
		case ctx.Err() != nil:
			return ctx.Err()
		case !c.retry:
			return err
		}
		var apiErr *Error
		if errors.As(err, &apiErr) && apiErr.Status != 0 && !errors.Is(err, ErrUnavailable) {
			return err
		}
		idx++
		if !pause(ctx, &backoff) {
			return ctx.Err()
		}
	}
}

type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

func (c *Client) watchOnce(ctx context.Context, ep, name string, fn func(wire.WatchEvent) error) error {
	req, err := http.NewRequestWithContext(ctx, "GET", ep+"/v1/counters/"+esc(name)+"/watch", nil)
	if err != nil {
		return &Error{Code: codeInvalid, Message: err.Error(), Index: -1, Endpoint: ep}
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.hc.Do(req)
	if err != nil {
		return &Error{Code: codeUnavailable, Message: err.Error(), Index: -1, Endpoint: ep}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return apiError(ep, resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data:")
		if !ok {
			continue
		}
		var ev wire.WatchEvent
		if err := json.Unmarshal([]byte(strings.TrimSpace(data)), &ev); err != nil {
			return fmt.Errorf("%w: watch event %q: %v", ErrProtocol, data, err)
		}
		if err := fn(ev); err != nil {
			return callbackError{err}
		}
	}
	err = sc.Err()
	if err == nil {
		err = errors.New("stream ended")
	}
	return &Error{Code: codeUnavailable, Message: "watch: " + err.Error(), Index: -1, Endpoint: ep}
}
