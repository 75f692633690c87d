package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
)

var (
	// ErrNotSent reports a call that was definitely not delivered: it could
	// not be sent (no connection, the connection failed before the request
	// was written, the request was too large, the client is closed).
	ErrNotSent = errors.New("transport: request not sent")
	// ErrConnLost reports a call whose connection broke after the request
	// was handed to it: the peer may or may not have executed it.
	ErrConnLost = errors.New("transport: connection lost, outcome unknown")
	// ErrRemote is wrapped by every RemoteError: the handler on the peer
	// returned an error.
	ErrRemote = errors.New("transport: remote error")
)

// RemoteError is a handler error returned by the peer. Only its message
// crosses the network. errors.Is(err, ErrRemote) holds for it.
type RemoteError struct {
	// Msg is the remote handler's error string.
	Msg string
}

func (e *RemoteError) Error() string { return "transport: remote error: " + e.Msg }

// Unwrap returns ErrRemote.
func (e *RemoteError) Unwrap() error { return ErrRemote }

// DefaultRPCPoolSize is the number of connections an RPCClient keeps per
// address.
const DefaultRPCPoolSize = 2

// rpcQueueLen is the length of a connection's send queue.
const rpcQueueLen = 1024

// RPCClient calls RPCServers on other nodes over the mux's KindRPC
// connections. It keeps a small pool of connections per address, each
// carrying any number of calls at once. It is safe for concurrent use.
type RPCClient struct {
	m        *Mux
	poolSize int

	mu     sync.Mutex
	closed bool
	pools  map[string]*rpcPool
}

// NewRPCClient returns a client dialing through m with poolSize connections
// per address (DefaultRPCPoolSize if poolSize <= 0).
func NewRPCClient(m *Mux, poolSize int) *RPCClient {
	if poolSize <= 0 {
		poolSize = DefaultRPCPoolSize
	}
	return &RPCClient{m: m, poolSize: poolSize, pools: make(map[string]*rpcPool)}
}

// Call sends req to the RPCServer at addr and waits for its response.
//
// Errors: a call that was definitely not delivered wraps ErrNotSent; one
// whose connection broke after sending wraps ErrConnLost (outcome
// unknown); a handler error is a *RemoteError wrapping ErrRemote. When ctx
// ends, Call returns at once: before sending, with an error wrapping both
// ErrNotSent and ctx.Err(); after, with ctx.Err() itself (a late response is
// discarded). A req larger than the mux's MaxFrame wraps ErrFrameTooLarge
// and ErrNotSent. Call copies req before returning; the caller keeps it.
func (c *RPCClient) Call(ctx context.Context, addr string, method uint8, req []byte) ([]byte, error) {
	if len(req) > c.m.cfg.MaxFrame {
		return nil, fmt.Errorf("%w: %w: request of %d bytes, limit %d", ErrNotSent, ErrFrameTooLarge, len(req), c.m.cfg.MaxFrame)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	cc, err := c.conn(ctx, addr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	return cc.call(ctx, method, req)
}

// Close closes every connection of the client. Calls in flight fail with
// ErrConnLost (or ErrNotSent if their request was not written yet), and
// later calls with ErrNotSent.
func (c *RPCClient) Close() error {
	c.mu.Lock()
	c.closed = true
	pools := c.pools
	c.pools = make(map[string]*rpcPool)
	c.mu.Unlock()
	for _, p := range pools {
		for i := range p.slots {
			s := &p.slots[i]
			s.mu.Lock()
			cc := s.conn
			s.mu.Unlock()
			if cc != nil {
				cc.die(net.ErrClosed)
			}
		}
	}
	return nil
}

// rpcPool holds the connections to one address.
type rpcPool struct {
	next  atomic.Uint32
	slots []rpcSlot
}

// rpcSlot is one pooled connection, dialed on demand.
type rpcSlot struct {
	mu      sync.Mutex
	conn    *rpcConn
	dialing *dialAttempt
}

// dialAttempt lets the callers that find a slot being dialed wait for it.
type dialAttempt struct {
	done chan struct{}
	conn *rpcConn
	err  error
}

// conn returns a live connection to addr, dialing one if needed.
func (c *RPCClient) conn(ctx context.Context, addr string) (*rpcConn, error) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("transport: rpc client: %w", net.ErrClosed)
	}
	p := c.pools[addr]
	if p == nil {
		p = &rpcPool{slots: make([]rpcSlot, c.poolSize)}
		c.pools[addr] = p
	}
	c.mu.Unlock()

	s := &p.slots[int(p.next.Add(1)%uint32(len(p.slots)))]
	for {
		s.mu.Lock()
		if s.conn != nil && !s.conn.isDead() {
			cc := s.conn
			s.mu.Unlock()
			return cc, nil
		}
		if a := s.dialing; a != nil {
			s.mu.Unlock()
			select {
			case <-a.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			if a.err == nil {
				return a.conn, nil
			}
			if errors.Is(a.err, context.Canceled) || errors.Is(a.err, context.DeadlineExceeded) {
				continue // the dialer's context ended, not ours: try again
			}
			return nil, a.err
		}
		a := &dialAttempt{done: make(chan struct{})}
		s.dialing = a
		s.mu.Unlock()

		a.conn, a.err = c.dial(ctx, addr)
		s.mu.Lock()
		s.dialing = nil
		if a.err == nil {
			s.conn = a.conn
		}
		s.mu.Unlock()
		close(a.done)
		c.mu.Lock()
		closed := c.closed
		c.mu.Unlock()
		if closed && a.err == nil {
			a.conn.die(net.ErrClosed)
			return nil, fmt.Errorf("transport: rpc client: %w", net.ErrClosed)
		}
		return a.conn, a.err
	}
}

func (c *RPCClient) dial(ctx context.Context, addr string) (*rpcConn, error) {
	conn, err := c.m.Dial(ctx, addr, KindRPC)
	if err != nil {
		return nil, err
	}
	cc := &rpcConn{
		c:        conn,
		maxFrame: c.m.cfg.MaxFrame,
		queue:    make(chan *rpcCall, rpcQueueLen),
		pending:  make(map[uint64]*rpcCall),
		dead:     make(chan struct{}),
	}
	go cc.readLoop()
	go cc.writeLoop()
	return cc, nil
}

// rpcConn is one client connection with its calls in flight.
type rpcConn struct {
	c        *Conn
	maxFrame int
	queue    chan *rpcCall

	mu      sync.Mutex
	pending map[uint64]*rpcCall
	nextID  uint64
	deadErr error

	dieOnce sync.Once
	dead    chan struct{}
}

// rpcCall is one call in flight.
type rpcCall struct {
	id        uint64
	frame     []byte
	written   atomic.Bool // handed to the connection's writer
	abandoned atomic.Bool // the caller stopped waiting
	done      chan rpcResult
}

type rpcResult struct {
	resp []byte
	err  error
}

func (cc *rpcConn) isDead() bool {
	select {
	case <-cc.dead:
		return true
	default:
		return false
	}
}

func (cc *rpcConn) call(ctx context.Context, method uint8, req []byte) ([]byte, error) {
	cl := &rpcCall{done: make(chan rpcResult, 1)}
	cc.mu.Lock()
	if cc.deadErr != nil {
		err := cc.deadErr
		cc.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrNotSent, err)
	}
	cc.nextID++
	cl.id = cc.nextID
	cc.pending[cl.id] = cl
	cc.mu.Unlock()
	cl.frame = newRPCFrame(cl.id, method, req)

	select {
	case cc.queue <- cl:
	case <-cc.dead:
		cc.forget(cl.id)
		return nil, fmt.Errorf("%w: %w", ErrNotSent, cc.deathCause())
	case <-ctx.Done():
		cc.forget(cl.id)
		return nil, fmt.Errorf("%w: %w", ErrNotSent, ctx.Err())
	}
	select {
	case r := <-cl.done:
		return r.resp, r.err
	case <-ctx.Done():
		cl.abandoned.Store(true)
		cc.forget(cl.id)
		return nil, ctx.Err()
	}
}

func (cc *rpcConn) forget(id uint64) {
	cc.mu.Lock()
	delete(cc.pending, id)
	cc.mu.Unlock()
}

func (cc *rpcConn) deathCause() error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.deadErr
}

// die closes the connection. The writer goroutine then fails the calls in
// flight (failPending), since only it knows which requests were written.
func (cc *rpcConn) die(cause error) {
	cc.dieOnce.Do(func() {
		_ = cc.c.Close()
		cc.mu.Lock()
		cc.deadErr = cause
		cc.mu.Unlock()
		close(cc.dead)
	})
}

// failPending fails every call still waiting on a dead connection:
// ErrConnLost for those whose request was (or may have been) written,
// ErrNotSent for the others.
func (cc *rpcConn) failPending() {
	cc.mu.Lock()
	pending := cc.pending
	cc.pending = nil
	cause := cc.deadErr
	cc.mu.Unlock()
	for _, cl := range pending {
		if cl.written.Load() {
			cl.done <- rpcResult{err: fmt.Errorf("%w: %w", ErrConnLost, cause)}
		} else {
			cl.done <- rpcResult{err: fmt.Errorf("%w: %w", ErrNotSent, cause)}
		}
	}
}

// rpcMaxBatch bounds the calls written before one flush.
const rpcMaxBatch = 1024

// writeLoop sends queued calls, coalescing those already queued into one
// write. When the connection fails, requests that did not reach the socket
// at all are marked unwritten, so that their calls report ErrNotSent.
func (cc *rpcConn) writeLoop() {
	defer cc.failPending()
	cw := &countingWriter{w: cc.c}
	w := bufio.NewWriterSize(cw, rpcBufSize)
	batch := make([]*rpcCall, 0, 64)
	starts := make([]int, 0, 64)
	for {
		var cl *rpcCall
		select {
		case cl = <-cc.queue:
		case <-cc.dead:
			return
		}
		batch, starts = batch[:0], starts[:0]
		cw.n = 0
		off := 0
		yielded := false
		var err error
		for cl != nil && err == nil {
			if !cl.abandoned.Load() {
				cl.written.Store(true)
				batch = append(batch, cl)
				starts = append(starts, off)
				off += len(cl.frame)
				_, err = w.Write(cl.frame)
				cl.frame = nil
			}
			cl = nil
			if len(batch) < rpcMaxBatch {
				select {
				case cl = <-cc.queue:
				default:
					if !yielded {
						// Let callers that are about to enqueue do so, so
						// that one flush carries their requests too.
						yielded = true
						runtime.Gosched()
						select {
						case cl = <-cc.queue:
						default:
						}
					}
				}
			}
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			for i, c := range batch {
				if starts[i] >= cw.n {
					c.written.Store(false)
				}
			}
			cc.die(err)
			return
		}
	}
}

// countingWriter counts the bytes its writer accepted.
type countingWriter struct {
	w io.Writer
	n int
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += n
	return n, err
}

// readLoop dispatches responses to their calls by id. A malformed or
// oversized frame, or an unknown status, kills the connection.
func (cc *rpcConn) readLoop() {
	br := bufio.NewReaderSize(cc.c, rpcBufSize)
	for {
		id, status, resp, err := readRPCFrame(br, cc.maxFrame)
		if err != nil {
			cc.die(err)
			return
		}
		var res rpcResult
		switch status {
		case rpcStatusOK:
			res.resp = resp
		case rpcStatusError:
			res.err = &RemoteError{Msg: string(resp)}
		default:
			cc.die(fmt.Errorf("%w: unknown rpc status %d", ErrProtocol, status))
			return
		}
		cc.mu.Lock()
		cl := cc.pending[id]
		delete(cc.pending, id)
		cc.mu.Unlock()
		if cl != nil {
			cl.done <- res // buffered; each call gets one result
		}
	}
}
