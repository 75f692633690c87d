package transport

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MessageHandler receives one message: from is the sender's node id, msg is
// owned by the handler. It is called from the goroutine reading the
// sender's connection, so messages from one sender arrive in order and a
// slow handler slows that sender down; it must not block for long.
type MessageHandler func(from string, msg []byte)

// MessengerConfig tunes a Messenger; zero fields take defaults.
type MessengerConfig struct {
	// QueueLen bounds the messages waiting for one destination (default
	// 1024). When it is full, Send drops the oldest waiting message.
	QueueLen int
	// MinBackoff and MaxBackoff bound the wait between reconnection
	// attempts to an unreachable destination (defaults 20 ms and 1 s).
	MinBackoff, MaxBackoff time.Duration
}

// Messenger sends and receives fire-and-forget messages over the mux's
// KindRabia connections. Messages to one destination are delivered in the
// order sent, unless lost: a message is lost when its destination's queue
// overflows (the oldest waiting message is dropped), when the connection
// breaks with it in flight, or by injected loss. The protocol above is
// expected to retransmit. Each destination has one connection, reconnected
// in the background with exponential backoff. A destination's queue and
// goroutine live until Close: the Messenger is meant for a cluster's fixed,
// small set of peers.
type Messenger struct {
	m       *Mux
	ln      *Listener
	handler MessageHandler
	cfg     MessengerConfig

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	closed  bool
	peers   map[string]*peerSender
	inbound map[*Conn]struct{}

	dropped atomic.Uint64 // queue overflow
	lost    atomic.Uint64 // injected loss
}

// Messenger starts a Messenger on the mux's KindRabia listener, delivering
// received messages to handler. Stop it with Close.
func (m *Mux) Messenger(handler MessageHandler, cfg MessengerConfig) *Messenger {
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = 1024
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = 20 * time.Millisecond
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(time.Second, cfg.MinBackoff)
	}
	ms := &Messenger{
		m:       m,
		ln:      m.Listener(KindRabia),
		handler: handler,
		cfg:     cfg,
		peers:   make(map[string]*peerSender),
		inbound: make(map[*Conn]struct{}),
	}
	ms.ctx, ms.cancel = context.WithCancel(context.Background())
	ms.wg.Add(1)
	go ms.acceptLoop()
	return ms
}

// Send queues msg for the node at addr and returns at once; msg is copied.
// It fails only when msg is larger than the mux's MaxFrame
// (ErrFrameTooLarge) or the messenger is closed (net.ErrClosed).
func (ms *Messenger) Send(addr string, msg []byte) error {
	if len(msg) > ms.m.cfg.MaxFrame {
		return fmt.Errorf("%w: message of %d bytes, limit %d", ErrFrameTooLarge, len(msg), ms.m.cfg.MaxFrame)
	}
	frame := appendMsgFrame(make([]byte, 0, msgHeaderLen+len(msg)), msg)
	ms.mu.Lock()
	if ms.closed {
		ms.mu.Unlock()
		return fmt.Errorf("transport: messenger: %w", net.ErrClosed)
	}
	p := ms.peers[addr]
	if p == nil {
		p = &peerSender{ms: ms, addr: addr, notify: make(chan struct{}, 1)}
		ms.peers[addr] = p
		ms.wg.Add(1)
		go p.run()
	}
	ms.mu.Unlock()
	p.enqueue(frame)
	return nil
}

// Dropped returns how many messages were dropped because a destination's
// queue was full.
func (ms *Messenger) Dropped() uint64 { return ms.dropped.Load() }

// InjectedLoss returns how many messages fault injection dropped.
func (ms *Messenger) InjectedLoss() uint64 { return ms.lost.Load() }

// Close stops the messenger: it closes the KindRabia listener and every
// connection it made or accepted, drops the messages still queued, and
// waits for its goroutines. It is idempotent.
func (ms *Messenger) Close() error {
	ms.mu.Lock()
	if ms.closed {
		ms.mu.Unlock()
		return nil
	}
	ms.closed = true
	var conns []*Conn
	for c := range ms.inbound {
		conns = append(conns, c)
	}
	ms.mu.Unlock()
	ms.cancel()
	_ = ms.ln.Close()
	for _, c := range conns {
		_ = c.Close()
	}
	ms.wg.Wait()
	return nil
}

func (ms *Messenger) acceptLoop() {
	defer ms.wg.Done()
	for {
		c, err := ms.ln.AcceptConn()
		if err != nil {
			return
		}
		ms.mu.Lock()
		if ms.closed {
			ms.mu.Unlock()
			_ = c.Close()
			return
		}
		ms.inbound[c] = struct{}{}
		ms.wg.Add(1)
		ms.mu.Unlock()
		go ms.receive(c)
	}
}

// receive delivers the messages of one inbound connection. A malformed or
// oversized frame closes the connection.
func (ms *Messenger) receive(c *Conn) {
	defer ms.wg.Done()
	defer func() {
		_ = c.Close()
		ms.mu.Lock()
		delete(ms.inbound, c)
		ms.mu.Unlock()
	}()
	br := bufio.NewReaderSize(c, rpcBufSize)
	for {
		msg, err := readMsgFrame(br, ms.m.cfg.MaxFrame)
		if err != nil {
			if ms.ctx.Err() == nil && err != io.EOF && !isClosedErr(err) {
				ms.m.log.Debug("transport: message connection dropped", "peer", c.RemoteID(), "err", err)
			}
			return
		}
		ms.handler(c.RemoteID(), msg)
	}
}

// peerSender owns the queue and the connection to one destination.
type peerSender struct {
	ms     *Messenger
	addr   string
	notify chan struct{} // signalled when the queue becomes non-empty

	mu    sync.Mutex
	queue [][]byte // encoded frames
}

func (p *peerSender) enqueue(frame []byte) {
	p.mu.Lock()
	if len(p.queue) >= p.ms.cfg.QueueLen {
		p.queue[0] = nil
		p.queue = p.queue[1:]
		p.ms.dropped.Add(1)
	}
	p.queue = append(p.queue, frame)
	p.mu.Unlock()
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *peerSender) take() [][]byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	q := p.queue
	p.queue = nil
	return q
}

// run connects to the destination, sends what is queued, and reconnects
// with backoff whenever the connection fails, until the messenger closes.
func (p *peerSender) run() {
	defer p.ms.wg.Done()
	ctx := p.ms.ctx
	backoff := p.ms.cfg.MinBackoff
	for ctx.Err() == nil {
		c, err := p.ms.m.Dial(ctx, p.addr, KindRabia)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.ms.m.log.Debug("transport: message dial failed", "addr", p.addr, "err", err, "retry_in", backoff)
			wait := backoff/2 + rand.N(backoff/2+1)
			backoff = min(2*backoff, p.ms.cfg.MaxBackoff)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return
			}
			continue
		}
		backoff = p.ms.cfg.MinBackoff
		p.send(ctx, c)
	}
}

// send writes queued messages to c until it fails or ctx ends.
func (p *peerSender) send(ctx context.Context, c *Conn) {
	// Close unblocks a write stuck on a peer that does not read.
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	defer stop()
	// The peer never writes on this connection: a read returns only when
	// the connection breaks, which is how an idle sender notices.
	broken := make(chan struct{})
	go func() {
		_, _ = io.Copy(io.Discard, c)
		close(broken)
	}()
	defer func() {
		_ = c.Close()
		<-broken
	}()
	faults := p.ms.m.faults
	w := bufio.NewWriterSize(c, rpcBufSize)
	for {
		for _, frame := range p.take() {
			if faults.dropMessage(c.RemoteID()) {
				p.ms.lost.Add(1)
				continue
			}
			if _, err := w.Write(frame); err != nil {
				return
			}
		}
		if err := w.Flush(); err != nil {
			return
		}
		select {
		case <-p.notify:
		case <-broken:
			return
		case <-ctx.Done():
			return
		}
	}
}
