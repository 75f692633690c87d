package abacus

import "time"

// Option modifies a call: bounds, fences and instances for writes,
// consistency for reads, an idempotency key for retries from outside.
type Option func(*callOptions)

type callOptions struct {
	stale    bool
	key      string
	session  *sessionRef
	min, max *int64
	fence    *Fence
	instance uint64
	expiry   time.Duration
}

// Fence guards a write with a lock's fencing token: the write is refused
// with ErrStaleToken unless Token still holds Lock.
type Fence struct {
	Lock  string
	Token uint64
}

// WithMin makes an Add conditional: it fails with ErrOutOfRange, changing
// nothing, if the result would be below min.
func WithMin(min int64) Option { return func(o *callOptions) { o.min = &min } }

// WithMax makes an Add conditional: it fails with ErrOutOfRange, changing
// nothing, if the result would be above max ("increment only if below N").
func WithMax(max int64) Option { return func(o *callOptions) { o.max = &max } }

// WithFence guards a write with a fencing token (see Fence).
func WithFence(lock string, token uint64) Option {
	return func(o *callOptions) { o.fence = &Fence{Lock: lock, Token: token} }
}

// WithInstance makes a counter call act on the slice of an instance (see
// Node.RegisterInstance): adds, sets and deletes change its own
// contribution, and reads report it as Counter.Mine.
func WithInstance(id uint64) Option { return func(o *callOptions) { o.instance = id } }

// WithExpiry gives an Add an expiry window: the first add to a counter
// without one starts a window of d, and when it ends the counter resets
// (reads as never written). A fixed-window rate limiter is one call:
// Add(ctx, key, 1, WithMax(limit), WithExpiry(window)).
func WithExpiry(d time.Duration) Option { return func(o *callOptions) { o.expiry = d } }

// WithStale lets a read be served from this node's local state at once,
// without confirming it is current.
func WithStale() Option { return func(o *callOptions) { o.stale = true } }

// WithIdempotencyKey makes a write idempotent across retries from outside
// the process (such as HTTP clients): a retry with the same key returns the
// first result and applies nothing. The state machine keeps each key's
// result for FSMOptions.KeyTTL (default 15 minutes) after it applied, never
// less: when it holds FSMOptions.MaxKeys results, a write with a new key
// fails with ErrLimitReached instead. A key names one write; used again
// after KeyTTL it names a new one.
func WithIdempotencyKey(key string) Option { return func(o *callOptions) { o.key = key } }

// sessionRef is a write's place in a caller's session (WithSession).
type sessionRef struct{ id, seq, ack uint64 }

// WithSession runs a write under a session that the caller keeps, for
// exactly-once retries of writes that come from outside the process over
// many requests (package httpapi relays its clients' sessions this way). id
// is a session that OpenSession opened; seq numbers the write within it,
// from 1, one number per write and the same number for every retry of it;
// ack says the caller has seen the outcome of every write numbered below
// it. A retry returns the first result without applying again while the
// session lasts; once the state machine has forgotten the session (idle
// past FSMOptions.SessionTTL, or evicted) every write under it fails with
// ErrSessionExpired and applies nothing, and the caller opens another.
func WithSession(id, seq, ack uint64) Option {
	return func(o *callOptions) { o.session = &sessionRef{id, seq, ack} }
}

func collect(opts []Option) callOptions {
	var o callOptions
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}

// apply copies the options that belong in the command itself.
func (o *callOptions) apply(c *Command) {
	if o.min != nil {
		c.Flags |= FlagMin
		c.Min = *o.min
	}
	if o.max != nil {
		c.Flags |= FlagMax
		c.Max = *o.max
	}
	if o.fence != nil {
		c.FenceLock, c.FenceToken = o.fence.Lock, o.fence.Token
	}
	if o.instance != 0 {
		c.Instance = o.instance
	}
	if o.expiry != 0 {
		c.TTL = o.expiry
	}
}
