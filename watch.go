package abacus

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Watches. Every node applies every entry, so any node can serve watches:
// the state machine's observer publishes each change to the watchers of
// that name, on the applying goroutine, without blocking. Each watcher
// keeps only the latest value it has not yet delivered: a slow reader
// never stalls the node, it skips intermediate values and next receives
// the newest. Values arrive in revision order and never go back.

// WatchEvent is a counter's value after a change.
type WatchEvent struct {
	// Value is the counter's total after the change (0 once deleted).
	Value int64
	// Revision is the log position of the change.
	Revision uint64
	// Exists is false once the counter is deleted or expired.
	Exists bool
}

// LockEvent is a lock's state after a change.
type LockEvent struct {
	// Holder is the holder's id; empty when the lock is free.
	Holder string
	// Token is the holder's fencing token; 0 when free.
	Token uint64
	// Lease is the lease the lock is held under.
	Lease uint64
}

// Watch delivers counter name's value now and after every change, until
// ctx ends (then the channel closes). A reader that falls behind receives
// the latest value and skips those in between. At most Config.MaxWatches
// watches are open at once; past that Watch fails with ErrLimitReached.
func (n *Node) Watch(ctx context.Context, name string) (<-chan WatchEvent, error) {
	if err := validName("counter name", name); err != nil {
		return nil, err
	}
	if n.closed.Load() {
		return nil, ErrClosed
	}
	if n.watch.open.Add(1) > int64(n.cfg.MaxWatches) {
		n.watch.open.Add(-1)
		return nil, fmt.Errorf("%w: %d watches open (Config.MaxWatches)", ErrLimitReached, n.cfg.MaxWatches)
	}
	w := newWatcher[WatchEvent](func(a, b WatchEvent) bool { return a.Revision >= b.Revision })
	n.watch.counters.add(name, w)
	r := n.fsm.Read(Command{Op: OpGet, Name: name})
	w.publishInitial(WatchEvent{Value: r.Value, Revision: r.Revision, Exists: r.Exists})
	return w.run(ctx, n.done, func() {
		n.watch.counters.remove(name, w)
		n.watch.open.Add(-1)
	}), nil
}

// watchLock delivers lock name's state now and after every change.
func (n *Node) watchLock(ctx context.Context, name string) <-chan LockEvent {
	w := newWatcher[LockEvent](nil)
	n.watch.locks.add(name, w)
	r := n.fsm.Read(Command{Op: OpLockGet, Name: name})
	w.publishInitial(LockEvent{Holder: r.Holder, Token: r.Token, Lease: r.Lease})
	return w.run(ctx, n.done, func() { n.watch.locks.remove(name, w) })
}

// watchHub is the node's observer: it routes state-machine changes to
// watchers and to lock requests waiting for a grant.
type watchHub struct {
	open     atomic.Int64 // counter watches open, against Config.MaxWatches
	counters registry[WatchEvent]
	locks    registry[LockEvent]
	leases   registry[struct{}]
}

func newWatchHub() *watchHub {
	return &watchHub{counters: newRegistry[WatchEvent](), locks: newRegistry[LockEvent](), leases: newRegistry[struct{}]()}
}

func (h *watchHub) CounterChanged(name string, value int64, revision uint64, exists bool) {
	h.counters.publish(name, WatchEvent{Value: value, Revision: revision, Exists: exists})
}

func (h *watchHub) LockChanged(name, holder string, lease, token uint64) {
	h.locks.publish(name, LockEvent{Holder: holder, Token: token, Lease: lease})
}

func (h *watchHub) LeaseEnded(id uint64) {
	h.leases.publish(leaseKey(id), struct{}{})
}

func leaseKey(id uint64) string {
	var b [8]byte
	for i := range b {
		b[i] = byte(id >> (8 * i))
	}
	return string(b[:])
}

// registry maps names to the watchers of that name.
type registry[T any] struct {
	mu sync.RWMutex
	m  map[string]map[*watcher[T]]struct{}
}

func newRegistry[T any]() registry[T] {
	return registry[T]{m: make(map[string]map[*watcher[T]]struct{})}
}

func (r *registry[T]) add(name string, w *watcher[T]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	set := r.m[name]
	if set == nil {
		set = make(map[*watcher[T]]struct{})
		r.m[name] = set
	}
	set[w] = struct{}{}
}

func (r *registry[T]) remove(name string, w *watcher[T]) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.m[name], w)
	if len(r.m[name]) == 0 {
		delete(r.m, name)
	}
}

func (r *registry[T]) publish(name string, v T) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	for w := range r.m[name] {
		w.publish(v)
	}
}

// watcher is a one-value mailbox: publish overwrites, never blocks.
type watcher[T any] struct {
	mu      sync.Mutex
	latest  T
	seen    bool              // latest holds a published value
	pending bool              // latest has not been delivered yet
	newer   func(a, b T) bool // whether a may replace b; nil: always
	signal  chan struct{}
}

func newWatcher[T any](newer func(a, b T) bool) *watcher[T] {
	return &watcher[T]{newer: newer, signal: make(chan struct{}, 1)}
}

func (w *watcher[T]) publish(v T) { w.offer(v, false) }

// publishInitial sets the first value unless a change already arrived.
func (w *watcher[T]) publishInitial(v T) { w.offer(v, true) }

func (w *watcher[T]) offer(v T, initial bool) {
	w.mu.Lock()
	if w.seen && (initial || (w.newer != nil && !w.newer(v, w.latest))) {
		w.mu.Unlock()
		return
	}
	w.latest, w.seen, w.pending = v, true, true
	w.mu.Unlock()
	select {
	case w.signal <- struct{}{}:
	default:
	}
}

func (w *watcher[T]) take() (T, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ok := w.pending
	w.pending = false
	return w.latest, ok
}

// run delivers values on a channel until ctx or the node ends.
func (w *watcher[T]) run(ctx context.Context, done <-chan struct{}, cleanup func()) <-chan T {
	out := make(chan T)
	go func() {
		defer close(out)
		defer cleanup()
		for {
			select {
			case <-w.signal:
			case <-ctx.Done():
				return
			case <-done:
				return
			}
			v, ok := w.take()
			if !ok {
				continue
			}
			select {
			case out <- v:
			case <-ctx.Done():
				return
			case <-done:
				return
			}
		}
	}()
	return out
}
