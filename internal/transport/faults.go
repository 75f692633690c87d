package transport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrFaultsDisabled is returned by the Faults methods of a Mux whose
	// Config.Faults is false.
	ErrFaultsDisabled = errors.New("transport: fault injection disabled")
	// ErrInjectedLoss reports a connection cut by injected loss.
	ErrInjectedLoss = errors.New("transport: connection cut by injected loss")
)

// Faults injects network faults into one node's traffic, for tests and the
// fault-injection harness. Every connection accepted or dialed through the
// Mux is wrapped once its handshake completes, so Raft, RPC and messages are
// all subject to it. Faults act on this node's side only: to cut a link both
// ways it is enough to block the peer on one of its two ends, since each end
// both refuses the other's connections and cannot dial it.
//
//   - Blocking (Partition, Isolate): dialing a blocked peer fails with
//     ErrPartitioned (without connecting when an earlier dial told which
//     node the address belongs to; otherwise right after the handshake), its inbound connections are refused, and existing
//     connections to or from it are closed at once.
//   - Delay (Delay, DelayPeer): everything this node writes to the peer is
//     delivered d later, without limiting throughput (writes are queued and
//     sent when due, in order).
//   - Loss (Loss, LossPeer): on Raft and RPC connections, each write this
//     node makes (one or more frames) cuts the connection with probability
//     p, since dropping bytes from a stream would only garble it; the
//     protocol above sees a lost connection. A cut falls, with equal odds,
//     before the write (nothing sent) or just after it (sent, but the
//     connection dies before any reply; under an injected delay the cut
//     always falls before), so callers see both "not sent" and "outcome
//     unknown". Messages sent with a Messenger are instead dropped
//     whole, one by one, with probability p.
//
// Loss decisions draw from a random source seeded with Config.FaultSeed and
// owned by the controller. The per-peer settings override the global ones.
// When fault injection is disabled, connections are not wrapped and every
// method returns ErrFaultsDisabled.
type Faults struct {
	enabled bool

	mu         sync.Mutex
	rng        *rand.Rand
	isolated   bool
	blockedIDs map[string]struct{}
	delay      time.Duration
	peerDelay  map[string]time.Duration
	loss       float64
	peerLoss   map[string]float64
	conns      map[*faultConn]struct{}
	addrs      map[string]string // dialed address -> node id, learned from handshakes
}

func newFaults(enabled bool, seed uint64) *Faults {
	return &Faults{
		enabled:    enabled,
		rng:        rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		blockedIDs: make(map[string]struct{}),
		peerDelay:  make(map[string]time.Duration),
		peerLoss:   make(map[string]float64),
		conns:      make(map[*faultConn]struct{}),
		addrs:      make(map[string]string),
	}
}

// Enabled reports whether fault injection is on.
func (f *Faults) Enabled() bool { return f.enabled }

// Partition blocks all traffic to and from the given peer node ids, in
// addition to any already blocked, and cuts existing connections with them.
func (f *Faults) Partition(ids ...string) error {
	if !f.enabled {
		return ErrFaultsDisabled
	}
	f.mu.Lock()
	for _, id := range ids {
		f.blockedIDs[id] = struct{}{}
	}
	victims := f.matchLocked(func(c *faultConn) bool { _, ok := f.blockedIDs[c.peer]; return ok })
	f.mu.Unlock()
	cut(victims, ErrPartitioned)
	return nil
}

// Isolate blocks all traffic with every peer, known or not, and cuts every
// existing connection, until Heal.
func (f *Faults) Isolate() error {
	if !f.enabled {
		return ErrFaultsDisabled
	}
	f.mu.Lock()
	f.isolated = true
	victims := f.matchLocked(func(*faultConn) bool { return true })
	f.mu.Unlock()
	cut(victims, ErrPartitioned)
	return nil
}

// Heal removes every injected fault: blocks, delays and loss. Connections
// already cut stay closed; new ones can be made.
func (f *Faults) Heal() error {
	if !f.enabled {
		return ErrFaultsDisabled
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.isolated = false
	clear(f.blockedIDs)
	f.delay = 0
	clear(f.peerDelay)
	f.loss = 0
	clear(f.peerLoss)
	return nil
}

// Delay delays everything this node writes, to every peer without a
// per-peer delay, by d (0 removes the delay).
func (f *Faults) Delay(d time.Duration) error {
	if !f.enabled {
		return ErrFaultsDisabled
	}
	if d < 0 {
		return fmt.Errorf("transport: negative delay %v", d)
	}
	f.mu.Lock()
	f.delay = d
	f.mu.Unlock()
	return nil
}

// DelayPeer delays everything this node writes to peer id by d, overriding
// the global delay (a negative d removes the override).
func (f *Faults) DelayPeer(id string, d time.Duration) error {
	if !f.enabled {
		return ErrFaultsDisabled
	}
	f.mu.Lock()
	if d < 0 {
		delete(f.peerDelay, id)
	} else {
		f.peerDelay[id] = d
	}
	f.mu.Unlock()
	return nil
}

// Loss sets the probability p in [0, 1] that a write to a peer without a
// per-peer setting is lost (see Faults for what loss means).
func (f *Faults) Loss(p float64) error {
	if !f.enabled {
		return ErrFaultsDisabled
	}
	if !(p >= 0 && p <= 1) {
		return fmt.Errorf("transport: loss probability %v not in [0, 1]", p)
	}
	f.mu.Lock()
	f.loss = p
	f.mu.Unlock()
	return nil
}

// LossPeer sets the loss probability p in [0, 1] for peer id, overriding
// the global one (a negative p removes the override).
func (f *Faults) LossPeer(id string, p float64) error {
	if !f.enabled {
		return ErrFaultsDisabled
	}
	if p > 1 || p != p {
		return fmt.Errorf("transport: loss probability %v not in [0, 1]", p)
	}
	f.mu.Lock()
	if p < 0 {
		delete(f.peerLoss, id)
	} else {
		f.peerLoss[id] = p
	}
	f.mu.Unlock()
	return nil
}

// blocked reports whether traffic with peer is blocked.
func (f *Faults) blocked(peer string) bool {
	if !f.enabled {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.blockedLocked(peer)
}

func (f *Faults) blockedLocked(peer string) bool {
	if f.isolated {
		return true
	}
	_, ok := f.blockedIDs[peer]
	return ok
}

// blockedAddr reports whether addr belongs to a blocked peer, as far as
// earlier dials to addr tell.
func (f *Faults) blockedAddr(addr string) bool {
	if !f.enabled {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.isolated {
		return true
	}
	id, ok := f.addrs[addr]
	return ok && f.blockedLocked(id)
}

// learnAddr records that addr answered as node id.
func (f *Faults) learnAddr(addr, id string) {
	if !f.enabled {
		return
	}
	f.mu.Lock()
	f.addrs[addr] = id
	f.mu.Unlock()
}

// admit wraps a connection that completed its handshake, or refuses it if
// its peer is blocked. Without fault injection it returns conn unchanged.
func (f *Faults) admit(conn net.Conn, peer string, kind byte) (net.Conn, error) {
	if !f.enabled {
		return conn, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blockedLocked(peer) {
		return nil, fmt.Errorf("%w: %s", ErrPartitioned, peer)
	}
	c := &faultConn{Conn: conn, f: f, peer: peer, kind: kind, closed: make(chan struct{})}
	f.conns[c] = struct{}{}
	return c, nil
}

// dropMessage decides whether one message to peer is lost.
func (f *Faults) dropMessage(peer string) bool {
	if !f.enabled {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.blockedLocked(peer) {
		return true
	}
	return f.lossDrawLocked(peer)
}

// Outcomes of injected loss for one write.
const (
	keepConn  = iota
	cutBefore // close instead of writing
	cutAfter  // write, then close
)

// onWrite returns the delay for a write to peer and whether injected loss
// cuts the connection before or after it.
func (f *Faults) onWrite(peer string, kind byte) (time.Duration, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.peerDelay[peer]
	if !ok {
		d = f.delay
	}
	if kind == KindRabia || !f.lossDrawLocked(peer) { // the Messenger drops whole messages instead
		return d, keepConn
	}
	if f.rng.IntN(2) == 0 {
		return d, cutBefore
	}
	return d, cutAfter
}

func (f *Faults) lossDrawLocked(peer string) bool {
	p, ok := f.peerLoss[peer]
	if !ok {
		p = f.loss
	}
	return p > 0 && f.rng.Float64() < p
}

func (f *Faults) matchLocked(pred func(*faultConn) bool) []*faultConn {
	var out []*faultConn
	for c := range f.conns {
		if pred(c) {
			out = append(out, c)
		}
	}
	return out
}

func (f *Faults) forget(c *faultConn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
}

func cut(conns []*faultConn, why error) {
	for _, c := range conns {
		c.fail(why)
	}
}

// chunk is one delayed write.
type chunk struct {
	due time.Time
	b   []byte
}

// faultConn applies a Faults controller to one connection.
type faultConn struct {
	net.Conn
	f    *Faults
	peer string
	kind byte

	wmu   sync.Mutex // serialises Write
	queue chan chunk // delayed writes; nil until the first one

	err       atomic.Pointer[error] // first failure; later writes return it
	wdeadline atomic.Pointer[time.Time]
	closeOnce sync.Once
	closed    chan struct{}
}

func (c *faultConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.err.Load(); err != nil {
		return 0, *err
	}
	d, loss := c.f.onWrite(c.peer, c.kind)
	if loss == cutBefore {
		c.fail(ErrInjectedLoss)
		return 0, ErrInjectedLoss
	}
	if loss == cutAfter && d == 0 && c.queue == nil {
		// Mark the connection failed first, so that Read discards the
		// reply, even one that races with the close.
		err := ErrInjectedLoss
		c.err.CompareAndSwap(nil, &err)
		n, werr := c.Conn.Write(p)
		c.fail(ErrInjectedLoss)
		if werr != nil {
			return n, werr
		}
		return n, nil
	}
	if loss != keepConn {
		c.fail(ErrInjectedLoss)
		return 0, ErrInjectedLoss
	}
	if d == 0 && c.queue == nil {
		return c.Conn.Write(p)
	}
	if c.queue == nil {
		// From now on every write goes through the queue, to keep order.
		c.queue = make(chan chunk, 256)
		go c.pump()
	}
	var expire <-chan time.Time
	if dl := c.wdeadline.Load(); dl != nil && !dl.IsZero() {
		t := time.NewTimer(time.Until(*dl))
		defer t.Stop()
		expire = t.C
	}
	select {
	case c.queue <- chunk{due: time.Now().Add(d), b: append([]byte(nil), p...)}:
		return len(p), nil
	case <-c.closed:
		if err := c.err.Load(); err != nil {
			return 0, *err
		}
		return 0, net.ErrClosed
	case <-expire:
		return 0, os.ErrDeadlineExceeded
	}
}

// pump writes delayed chunks when they are due.
func (c *faultConn) pump() {
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for {
		var ch chunk
		select {
		case ch = <-c.queue:
		case <-c.closed:
			return
		}
		if wait := time.Until(ch.due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-c.closed:
				return
			}
		}
		if _, err := c.Conn.Write(ch.b); err != nil {
			c.fail(err)
			return
		}
	}
}

// fail records err as the connection's failure and closes it.
func (c *faultConn) fail(err error) {
	c.err.CompareAndSwap(nil, &err)
	_ = c.Close()
}

func (c *faultConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.closed)
		err = c.Conn.Close()
		c.f.forget(c)
	})
	return err
}

// Read returns nothing once the connection was cut, not even data that
// arrived before.
func (c *faultConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if ferr := c.err.Load(); ferr != nil {
		return 0, *ferr
	}
	return n, err
}

func (c *faultConn) SetDeadline(t time.Time) error {
	c.wdeadline.Store(&t)
	return c.Conn.SetDeadline(t)
}

func (c *faultConn) SetWriteDeadline(t time.Time) error {
	c.wdeadline.Store(&t)
	return c.Conn.SetWriteDeadline(t)
}
