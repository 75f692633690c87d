package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/abacuskit/abacus/client"
	"github.com/abacuskit/abacus/errcode"
	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// Workload shapes the requests the client goroutines make.
type Workload struct {
	// Counters is the number of counters (8–16 keeps per-counter histories
	// small enough to check); the first AddOnly of them see only adds and
	// reads, the rest also sets, compare-and-sets and deletes.
	Counters int `json:"counters"`
	AddOnly  int `json:"add_only"`
	// QuotaMax bounds the adds to the first counter ("increment only while
	// below"), so refusals (out_of_range) occur.
	QuotaMax int64 `json:"quota_max"`
	// Locks is the number of locks (each guards the counter "fenced-<lock>"
	// that its holders write with fences).
	Locks int `json:"locks"`
	// LockTTL is the TTL of every lock lease. Holders keep it alive, but
	// StallProb of the time stall (send nothing) for 1.5×LockTTL before
	// writing again, as a paused holder would.
	LockTTL   time.Duration `json:"lock_ttl_ns"`
	StallProb float64       `json:"stall_prob"`
	// MaxLockWait bounds the wait_ms of acquisitions (each waits a random
	// time below it in the lock's queue); 0 never waits.
	MaxLockWait time.Duration `json:"max_lock_wait_ns"`
	// CounterClients and LockClients are goroutines per node.
	CounterClients int `json:"counter_clients"`
	LockClients    int `json:"lock_clients"`
	// OpTimeout bounds each request; Think is the most a client waits
	// between requests.
	OpTimeout time.Duration `json:"op_timeout_ns"`
	Think     time.Duration `json:"think_ns"`
	// Retries is how many times a write whose outcome was Fail or Info is
	// sent again with the same Idempotency-Key (each attempt is an op; the
	// checkers merge them).
	Retries int `json:"retries"`
	// InstanceCounters counters ("inst-<i>") see only adds made by
	// instances; InstanceClients goroutines per node each register an
	// instance with InstanceTTL, add to those counters for it, and then
	// end it, deleting it or (as a process that dies) letting its lease
	// expire. Once every instance has ended these counters must read 0.
	InstanceCounters int           `json:"instance_counters"`
	InstanceClients  int           `json:"instance_clients"`
	InstanceTTL      time.Duration `json:"instance_ttl_ns"`
}

// DefaultWorkload returns the workload of a standard run.
func DefaultWorkload() Workload {
	return Workload{
		Counters: 12, AddOnly: 6, QuotaMax: 60, Locks: 3, LockTTL: time.Second, StallProb: 0.15, MaxLockWait: 500 * time.Millisecond,
		CounterClients: 2, LockClients: 1, OpTimeout: 2 * time.Second, Think: 15 * time.Millisecond, Retries: 2,
		InstanceCounters: 2, InstanceClients: 1, InstanceTTL: time.Second,
	}
}

func (w Workload) counterName(i int) string { return fmt.Sprintf("c%02d", i) }
func (w Workload) lockName(i int) string    { return fmt.Sprintf("L%d", i) }
func fencedCounter(lock string) string      { return "fenced-" + lock }
func instanceCounter(i int) string          { return fmt.Sprintf("inst-%d", i) }

// InstanceCounterNames returns the counters only instances add to.
func (w Workload) InstanceCounterNames() []string {
	var names []string
	for i := range w.InstanceCounters {
		names = append(names, instanceCounter(i))
	}
	return names
}

// CounterNames returns every counter the workload touches.
func (w Workload) CounterNames() []string {
	var names []string
	for i := range w.Counters {
		names = append(names, w.counterName(i))
	}
	for i := range w.Locks {
		names = append(names, fencedCounter(w.lockName(i)))
	}
	return append(names, w.InstanceCounterNames()...)
}

// counts tallies outcomes for progress lines.
type counts struct{ ok, fail, info atomic.Int64 }

func (c *counts) add(o history.Outcome) {
	switch o {
	case history.Ok:
		c.ok.Add(1)
	case history.Fail:
		c.fail.Add(1)
	default:
		c.info.Add(1)
	}
}

// worker is one client goroutine, pinned to one node.
type worker struct {
	proc   int
	node   string
	c      *client.Client
	rec    *history.Recorder
	rng    *mrand.Rand
	wl     Workload
	counts *counts
	stop   *atomic.Bool
	// last is the last value this worker saw per counter, for CAS.
	last map[string]int64
}

// classify maps a client error onto an op outcome (history package docs):
// refusals are Ok with the code, 503 and unsent requests are Fail,
// anything else (504, timeouts, resets after sending) is Info.
func classify(err error) (history.Outcome, history.Output, string) {
	if err == nil {
		return history.Ok, history.Output{}, ""
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		switch ce.Code {
		case history.CodeOverflow, history.CodeUnderflow, history.CodeOutOfRange, history.CodeLockHeld,
			history.CodeStaleToken, history.CodeLeaseExpired, history.CodeNotFound, history.CodeInvalidArgument:
			return history.Ok, history.Output{Error: ce.Code, Holder: ce.Holder}, ""
		case errcode.Name(errcode.ErrUnavailable):
			return history.Fail, history.Output{}, err.Error()
		}
	}
	return history.Info, history.Output{}, err.Error()
}

// once makes one request and records it.
func (w *worker) once(kind history.Kind, key string, in history.Input, fn func(context.Context) (history.Output, error)) (history.Outcome, history.Output) {
	p := w.rec.Invoke(w.proc, w.node, kind, key, in)
	// Not derived from the run's context: stopping the run must not turn
	// requests in flight into unknown outcomes.
	ctx, cancel := context.WithTimeout(context.Background(), w.wl.OpTimeout)
	out, err := fn(ctx)
	cancel()
	o, refusal, reason := classify(err)
	switch o {
	case history.Ok:
		if err != nil {
			out = refusal
		}
		p.Ok(out)
	case history.Fail:
		p.Fail(reason)
	default:
		p.Info(reason)
	}
	w.counts.add(o)
	return o, out
}

// write makes a write with an Idempotency-Key, sending it again with the
// same key after Fail or Info, up to Workload.Retries times.
func (w *worker) write(kind history.Kind, key string, in history.Input, fn func(context.Context, string) (history.Output, error)) (history.Outcome, history.Output) {
	in.IdempotencyKey = newKey()
	for attempt := 0; ; attempt++ {
		o, out := w.once(kind, key, in, func(ctx context.Context) (history.Output, error) { return fn(ctx, in.IdempotencyKey) })
		if o == history.Ok || attempt >= w.wl.Retries || w.stop.Load() {
			return o, out
		}
		time.Sleep(time.Duration(50*(attempt+1)) * time.Millisecond)
	}
}

func (w *worker) think() {
	if w.wl.Think > 0 {
		time.Sleep(time.Duration(w.rng.Int64N(int64(w.wl.Think))))
	}
}

// runCounters loops over random counter operations until stop is set.
func (w *worker) runCounters() {
	for !w.stop.Load() {
		i := w.rng.IntN(w.wl.Counters)
		name := w.wl.counterName(i)
		r := w.rng.Float64()
		switch {
		case i < w.wl.AddOnly && r < 0.65:
			delta := 1 + w.rng.Int64N(5)
			in := history.Input{Delta: delta}
			var opts []client.CallOption
			if i == 0 && w.wl.QuotaMax > 0 {
				in.Max = history.Int64(w.wl.QuotaMax)
				opts = append(opts, client.WithMax(w.wl.QuotaMax))
			}
			w.add(name, in, opts...)
		case i < w.wl.AddOnly:
			w.get(name)
		case r < 0.25:
			w.add(name, history.Input{Delta: w.rng.Int64N(9) - 3})
		case r < 0.40:
			v := w.rng.Int64N(20)
			w.write(history.Set, name, history.Input{Value: v}, func(ctx context.Context, k string) (history.Output, error) {
				res, err := w.c.Set(ctx, name, v, client.WithIdempotencyKey(k))
				return history.Output{Previous: res.Previous, Value: res.Value}, err
			})
		case r < 0.60:
			old, ok := w.last[name]
			if !ok || w.rng.IntN(4) == 0 {
				old = w.rng.Int64N(20)
			}
			nv := w.rng.Int64N(20)
			o, out := w.write(history.CAS, name, history.Input{Old: old, New: nv}, func(ctx context.Context, k string) (history.Output, error) {
				res, err := w.c.CompareAndSet(ctx, name, old, nv, client.WithIdempotencyKey(k))
				return history.Output{Swapped: res.Swapped, Value: res.Value}, err
			})
			if o == history.Ok && out.Error == "" {
				w.last[name] = out.Value
			}
		case r < 0.64:
			w.write(history.Delete, name, history.Input{}, func(ctx context.Context, k string) (history.Output, error) {
				res, err := w.c.Delete(ctx, name, client.WithIdempotencyKey(k))
				return history.Output{Previous: res.Previous}, err
			})
		default:
			w.get(name)
		}
		w.think()
	}
}

func (w *worker) add(name string, in history.Input, opts ...client.CallOption) (history.Outcome, history.Output) {
	return w.write(history.Add, name, in, func(ctx context.Context, k string) (history.Output, error) {
		res, err := w.c.Add(ctx, name, in.Delta, append(opts, client.WithIdempotencyKey(k))...)
		return history.Output{Value: res.Value}, err
	})
}

func (w *worker) get(name string) {
	o, out := w.once(history.Get, name, history.Input{}, func(ctx context.Context) (history.Output, error) {
		res, err := w.c.Get(ctx, name)
		return history.Output{Value: res.Value, Exists: res.Exists}, err
	})
	if o == history.Ok && out.Error == "" {
		w.last[name] = out.Value
	}
}

// runLocks loops acquiring a random lock, making fenced writes to its
// counter while keeping the lease alive (or stalling past its TTL), and
// releasing it, until stop is set.
func (w *worker) runLocks() {
	for seq := 0; !w.stop.Load(); seq++ {
		lock := w.wl.lockName(w.rng.IntN(w.wl.Locks))
		if w.rng.IntN(5) == 0 {
			w.once(history.LockGet, lock, history.Input{}, func(ctx context.Context) (history.Output, error) {
				res, err := w.c.GetLock(ctx, lock)
				return history.Output{Held: res.Held, Holder: res.Holder, Token: res.Token}, err
			})
		}
		holder := fmt.Sprintf("p%d-%d", w.proc, seq)
		ttl := w.wl.LockTTL
		var wait time.Duration
		if w.wl.MaxLockWait > 0 {
			wait = time.Duration(w.rng.Int64N(int64(w.wl.MaxLockWait)))
		}
		o, out := w.once(history.Acquire, lock, history.Input{Holder: holder, TTLMillis: ttl.Milliseconds()},
			func(context.Context) (history.Output, error) {
				// Acquisition may wait for the lock on top of the usual bound.
				ctx, cancel := context.WithTimeout(context.Background(), w.wl.OpTimeout+wait)
				defer cancel()
				res, err := w.c.AcquireLock(ctx, lock, holder, ttl, wait)
				return history.Output{Token: res.Token}, err
			})
		if o != history.Ok || out.Error != "" {
			time.Sleep(time.Duration(50+w.rng.IntN(100)) * time.Millisecond)
			continue
		}
		w.hold(lock, out.Token)
	}
}

// hold uses a lock acquired with token: a few fenced writes with
// keep-alives between them, sometimes a stall past the TTL, then a release.
func (w *worker) hold(lock string, token uint64) {
	fence := &history.Fence{Lock: lock, Token: token}
	name := fencedCounter(lock)
	writes := 2 + w.rng.IntN(4)
	for i := 0; i < writes && !w.stop.Load(); i++ {
		if w.rng.Float64() < w.wl.StallProb {
			// A holder that stops sending (GC pause, stopped process):
			// its lease runs out; its next fenced write must be refused
			// if anyone else has acquired the lock since.
			time.Sleep(w.wl.LockTTL * 3 / 2)
		} else {
			time.Sleep(w.wl.LockTTL / 5)
		}
		o, out := w.write(history.Add, name, history.Input{Delta: 1, Fence: fence}, func(ctx context.Context, k string) (history.Output, error) {
			res, err := w.c.Add(ctx, name, 1, client.WithFence(lock, token), client.WithIdempotencyKey(k))
			return history.Output{Value: res.Value}, err
		})
		if o == history.Ok && out.Error != "" {
			return // lost the lock
		}
		if w.rng.IntN(3) == 0 {
			w.get(name)
		}
		o, out = w.once(history.KeepAlive, lock, history.Input{Token: token}, func(ctx context.Context) (history.Output, error) {
			_, err := w.c.KeepAliveLock(ctx, lock, token)
			return history.Output{}, err
		})
		if o == history.Ok && out.Error != "" {
			return
		}
	}
	w.once(history.Release, lock, history.Input{Token: token}, func(ctx context.Context) (history.Output, error) {
		return history.Output{}, w.c.ReleaseLock(ctx, lock, token)
	})
}

// runInstances loops over instance lifetimes until stop is set: register,
// add to the instance counters for the instance with keep-alives between,
// then delete the instance or abandon it to expire.
func (w *worker) runInstances() {
	ttl := w.wl.InstanceTTL
	for !w.stop.Load() {
		// once calls fn synchronously; id is the registered instance
		// whenever the outcome is Ok without a refusal (err was nil).
		var id wire.ID
		o, out := w.once(history.InstanceCreate, "", history.Input{TTLMillis: ttl.Milliseconds()}, func(ctx context.Context) (history.Output, error) {
			raw, err := w.c.RegisterInstance(ctx, ttl)
			id = wire.ID(raw)
			return history.Output{Instance: id.String()}, err
		})
		if o != history.Ok || out.Error != "" {
			time.Sleep(time.Duration(50+w.rng.IntN(100)) * time.Millisecond)
			continue
		}
		w.live(id, out.Instance)
	}
}

// live runs one instance's life.
func (w *worker) live(id wire.ID, sid string) {
	ttl := w.wl.InstanceTTL
	for n := 2 + w.rng.IntN(6); n > 0 && !w.stop.Load(); n-- {
		name := instanceCounter(w.rng.IntN(w.wl.InstanceCounters))
		delta := 1 + w.rng.Int64N(3)
		o, out := w.write(history.Add, name, history.Input{Delta: delta, Instance: sid}, func(ctx context.Context, k string) (history.Output, error) {
			res, err := w.c.Add(ctx, name, delta, client.WithInstance(uint64(id)), client.WithIdempotencyKey(k))
			r := history.Output{Value: res.Value}
			if res.InstanceValue != nil {
				r.InstanceValue = *res.InstanceValue
			}
			return r, err
		})
		if o == history.Ok && out.Error != "" {
			return // the instance has ended
		}
		time.Sleep(ttl / 4)
		o, out = w.once(history.InstanceKeepAlive, sid, history.Input{}, func(ctx context.Context) (history.Output, error) {
			_, err := w.c.KeepAliveInstance(ctx, uint64(id))
			return history.Output{}, err
		})
		if o == history.Ok && out.Error != "" {
			return
		}
	}
	if w.rng.IntN(2) == 0 && !w.stop.Load() {
		return // dies: the lease runs out and its contributions leave
	}
	w.once(history.InstanceDelete, sid, history.Input{}, func(ctx context.Context) (history.Output, error) {
		return history.Output{}, w.c.DeleteInstance(ctx, uint64(id))
	})
}

// newKey returns a random idempotency key.
func newKey() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
