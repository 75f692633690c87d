package transport

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"time"
)

// Defaults applied by Listen to zero Config fields.
const (
	DefaultMaxFrame         = 16 << 20
	DefaultDialTimeout      = 5 * time.Second
	DefaultHandshakeTimeout = 5 * time.Second
	// DefaultMaxPendingHandshakes bounds the inbound connections whose
	// handshake is in progress (or waiting for Accept); more are closed at once.
	DefaultMaxPendingHandshakes = 1024
)

// Config configures a Mux.
type Config struct {
	// BindAddr is the host:port to listen on ("127.0.0.1:0" for a free port).
	BindAddr string
	// AdvertiseAddr is the address peers dial to reach this node. Empty
	// means the listener's actual address.
	AdvertiseAddr string
	// NodeID is this node's id, sent in every handshake (1..255 bytes).
	NodeID string
	// TLS, when set, makes every inbound and outbound connection mutual TLS:
	// client certificates are required and verified against TLS.ClientCAs
	// (inbound), the server's against TLS.RootCAs (outbound). A peer without
	// a valid certificate is refused. If TLS.ServerName is empty, outbound
	// connections verify the dialed host name or IP.
	TLS *tls.Config
	// Logger receives diagnostics; nil means slog.Default().
	Logger *slog.Logger
	// MaxFrame bounds every RPC frame and message (default 16 MiB).
	MaxFrame int
	// DialTimeout bounds a Dial (TCP, TLS and handshake) when the context
	// has no earlier deadline (default 5 s).
	DialTimeout time.Duration
	// HandshakeTimeout bounds an inbound connection's TLS handshake plus
	// our handshake (default 5 s); slower peers are closed.
	HandshakeTimeout time.Duration
	// MaxPendingHandshakes bounds inbound connections in handshake
	// (default 1024).
	MaxPendingHandshakes int
	// Faults enables fault injection (see Faults); off in production.
	Faults bool
	// FaultSeed seeds the fault controller's random source (loss decisions).
	FaultSeed uint64
}

// Mux is a node's single listening port. It demultiplexes inbound
// connections by kind to Listeners and dials outbound connections. All
// methods are safe for concurrent use.
type Mux struct {
	cfg    Config
	log    *slog.Logger
	ln     net.Listener
	addr   string // advertise address
	faults *Faults
	// pending bounds handshakes in progress.
	pending chan struct{}

	mu        sync.Mutex
	closed    bool
	listeners map[byte]*Listener
	conns     map[*Conn]struct{}

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   <-chan struct{} // ctx.Done()
	wg     sync.WaitGroup
}

// Listen opens the port described by cfg and starts accepting connections.
// ctx bounds only the creation of the listener.
func Listen(ctx context.Context, cfg Config) (*Mux, error) {
	if err := validNodeID(cfg.NodeID); err != nil {
		return nil, fmt.Errorf("transport: Config.NodeID: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxFrame <= 0 {
		cfg.MaxFrame = DefaultMaxFrame
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxPendingHandshakes <= 0 {
		cfg.MaxPendingHandshakes = DefaultMaxPendingHandshakes
	}
	if cfg.TLS != nil {
		cfg.TLS = cfg.TLS.Clone()
		cfg.TLS.ClientAuth = tls.RequireAndVerifyClientCert
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", cfg.BindAddr)
	if err != nil {
		return nil, fmt.Errorf("transport: listen %s: %w", cfg.BindAddr, err)
	}
	m := &Mux{
		cfg:       cfg,
		log:       cfg.Logger.With("node", cfg.NodeID),
		ln:        ln,
		addr:      cfg.AdvertiseAddr,
		faults:    newFaults(cfg.Faults, cfg.FaultSeed),
		pending:   make(chan struct{}, cfg.MaxPendingHandshakes),
		listeners: make(map[byte]*Listener),
		conns:     make(map[*Conn]struct{}),
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.done = m.ctx.Done()
	if m.addr == "" {
		m.addr = ln.Addr().String()
	}
	m.wg.Add(1)
	go m.acceptLoop()
	return m, nil
}

// Addr returns the advertise address: the address peers dial.
func (m *Mux) Addr() string { return m.addr }

// NodeID returns this node's id.
func (m *Mux) NodeID() string { return m.cfg.NodeID }

// MaxFrame returns the frame size bound in effect.
func (m *Mux) MaxFrame() int { return m.cfg.MaxFrame }

// Logger returns the mux's logger.
func (m *Mux) Logger() *slog.Logger { return m.log }

// Faults returns the fault injection controller. Its methods fail with
// ErrFaultsDisabled unless Config.Faults was set.
func (m *Mux) Faults() *Faults { return m.faults }

// Close closes the listening port, every Listener (their Accept returns an
// error wrapping net.ErrClosed) and every connection accepted or dialed
// through the mux. It waits for the mux's goroutines and is idempotent.
func (m *Mux) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	m.cancel()
	lns := make([]*Listener, 0, len(m.listeners))
	for _, l := range m.listeners {
		lns = append(lns, l)
	}
	conns := make([]*Conn, 0, len(m.conns))
	for c := range m.conns {
		conns = append(conns, c)
	}
	m.mu.Unlock()

	err := m.ln.Close()
	for _, l := range lns {
		_ = l.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
	m.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Listener returns the listener for connections of the given kind,
// creating it on first use; later calls return the same listener until it
// is closed. Connections of a kind without an open listener are refused.
func (m *Mux) Listener(kind byte) *Listener {
	m.mu.Lock()
	defer m.mu.Unlock()
	if l, ok := m.listeners[kind]; ok {
		return l
	}
	l := &Listener{m: m, kind: kind, ch: make(chan *Conn), done: make(chan struct{})}
	if m.closed {
		close(l.done)
		return l
	}
	m.listeners[kind] = l
	return l
}

// Dial connects to the mux at addr for the given kind: TCP, TLS when
// configured, then the handshake, whose reply must accept the connection.
// The context (bounded by Config.DialTimeout) covers all of it. Errors wrap
// ErrRefused when the peer refused the kind, ErrPartitioned when fault
// injection blocks the peer, and net.ErrClosed when the mux is closed.
func (m *Mux) Dial(ctx context.Context, addr string, kind byte) (*Conn, error) {
	select {
	case <-m.done:
		return nil, fmt.Errorf("transport: dial %s: %w", addr, net.ErrClosed)
	default:
	}
	if m.faults.blockedAddr(addr) {
		return nil, fmt.Errorf("transport: dial %s: %w", addr, ErrPartitioned)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.DialTimeout)
	defer cancel()
	defer context.AfterFunc(m.ctx, cancel)() // Close interrupts a dial
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	conn, peer, err := m.clientHandshake(ctx, raw, addr, kind)
	if err != nil {
		_ = raw.Close()
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	m.faults.learnAddr(addr, peer)
	c, err := m.track(conn, peer, kind)
	if err != nil {
		return nil, fmt.Errorf("transport: dial %s: %w", addr, err)
	}
	return c, nil
}

// clientHandshake runs TLS (if configured) and the handshake over raw.
func (m *Mux) clientHandshake(ctx context.Context, raw net.Conn, addr string, kind byte) (net.Conn, string, error) {
	// Interrupt blocking I/O when ctx ends.
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl)
	}
	conn := raw
	if m.cfg.TLS != nil {
		tc := m.cfg.TLS.Clone()
		if tc.ServerName == "" {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, "", err
			}
			tc.ServerName = host
		}
		tconn := tls.Client(raw, tc)
		if err := tconn.HandshakeContext(ctx); err != nil {
			return nil, "", ctxErr(ctx, fmt.Errorf("tls: %w", err))
		}
		conn = tconn
	}
	if _, err := conn.Write(appendHandshake(nil, kind, m.cfg.NodeID)); err != nil {
		return nil, "", ctxErr(ctx, err)
	}
	status, peer, err := readHandshake(conn)
	if err != nil {
		// A TLS 1.3 server rejects a bad client certificate after the
		// client's handshake has completed: the failure shows up here.
		return nil, "", ctxErr(ctx, err)
	}
	switch status {
	case statusOK:
	case statusUnknownKind:
		return nil, "", fmt.Errorf("%w: kind %d not served by %s", ErrRefused, kind, peer)
	case statusBlocked:
		return nil, "", fmt.Errorf("%w: %w: %s blocks this node", ErrRefused, ErrPartitioned, peer)
	default:
		return nil, "", fmt.Errorf("%w: by %s (status %d)", ErrRefused, peer, status)
	}
	if !stop() {
		return nil, "", ctx.Err()
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		return nil, "", err
	}
	return conn, peer, nil
}

// ctxErr prefers the context's error (a cancelled dial) over the I/O error
// it caused.
func ctxErr(ctx context.Context, err error) error {
	if cerr := ctx.Err(); cerr != nil {
		return fmt.Errorf("%w (%w)", cerr, err)
	}
	// The connection's deadline, copied from ctx, may fire just before ctx
	// reports it.
	if dl, ok := ctx.Deadline(); ok && errors.Is(err, os.ErrDeadlineExceeded) && !time.Now().Before(dl) {
		return fmt.Errorf("%w (%w)", context.DeadlineExceeded, err)
	}
	return err
}

// track admits a connection that completed its handshake: fault injection
// may refuse it; otherwise it is wrapped and recorded for Close.
func (m *Mux) track(conn net.Conn, peer string, kind byte) (*Conn, error) {
	wrapped, err := m.faults.admit(conn, peer, kind)
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	c := &Conn{Conn: wrapped, m: m, remoteID: peer, kind: kind}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		_ = wrapped.Close()
		return nil, net.ErrClosed
	}
	m.conns[c] = struct{}{}
	return c, nil
}

func (m *Mux) untrack(c *Conn) {
	m.mu.Lock()
	delete(m.conns, c)
	m.mu.Unlock()
}

// acceptLoop accepts TCP connections and runs each one's handshake in its
// own goroutine, bounded by MaxPendingHandshakes.
func (m *Mux) acceptLoop() {
	defer m.wg.Done()
	var backoff time.Duration
	for {
		raw, err := m.ln.Accept()
		if err != nil {
			select {
			case <-m.done:
				return
			default:
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Resource exhaustion (EMFILE) and the like: back off and retry.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			m.log.Warn("transport: accept failed", "err", err, "retry_in", backoff)
			select {
			case <-time.After(backoff):
			case <-m.done:
				return
			}
			continue
		}
		backoff = 0
		select {
		case m.pending <- struct{}{}:
		default:
			m.log.Warn("transport: too many pending handshakes, closing connection", "remote", raw.RemoteAddr())
			_ = raw.Close()
			continue
		}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			defer func() { <-m.pending }()
			m.serveHandshake(raw)
		}()
	}
}

// serveHandshake runs the acceptor's side of the handshake on raw and hands
// the connection to its kind's listener, or closes it.
func (m *Mux) serveHandshake(raw net.Conn) {
	deadline := time.Now().Add(m.cfg.HandshakeTimeout)
	_ = raw.SetDeadline(deadline)
	// Unblock the handshake if the mux closes meanwhile.
	stop := context.AfterFunc(m.ctx, func() { _ = raw.SetDeadline(time.Now()) })
	defer stop()
	log := m.log.With("remote", raw.RemoteAddr().String())

	conn := raw
	if m.cfg.TLS != nil {
		tconn := tls.Server(raw, m.cfg.TLS)
		if err := tconn.Handshake(); err != nil {
			log.Debug("transport: tls handshake failed", "err", err)
			_ = raw.Close()
			return
		}
		conn = tconn
	}
	kind, peer, err := readHandshake(conn)
	if err != nil {
		log.Debug("transport: handshake failed", "err", err)
		_ = conn.Close()
		return
	}
	log = log.With("peer", peer, "kind", kind)
	refuse := func(status byte, why string) {
		log.Debug("transport: connection refused", "reason", why)
		_, _ = conn.Write(appendHandshake(nil, status, m.cfg.NodeID))
		_ = conn.Close()
	}
	m.mu.Lock()
	l := m.listeners[kind]
	m.mu.Unlock()
	if l == nil {
		refuse(statusUnknownKind, "no listener for kind")
		return
	}
	if m.faults.blocked(peer) {
		refuse(statusBlocked, "peer blocked by fault injection")
		return
	}
	if _, err := conn.Write(appendHandshake(nil, statusOK, m.cfg.NodeID)); err != nil {
		log.Debug("transport: handshake reply failed", "err", err)
		_ = conn.Close()
		return
	}
	if !stop() {
		_ = conn.Close()
		return
	}
	if err := raw.SetDeadline(time.Time{}); err != nil {
		_ = conn.Close()
		return
	}
	c, err := m.track(conn, peer, kind)
	if err != nil {
		log.Debug("transport: connection not admitted", "err", err)
		return
	}
	select {
	case l.ch <- c:
	case <-l.done:
		_ = c.Close()
	case <-m.done:
		_ = c.Close()
	}
}

// Listener yields the inbound connections of one kind, with their
// handshake consumed. It implements net.Listener; Accept returns *Conn
// values.
type Listener struct {
	m    *Mux
	kind byte
	ch   chan *Conn
	once sync.Once
	done chan struct{}
}

var _ net.Listener = (*Listener)(nil)

// Accept waits for the next connection of the listener's kind. After Close
// (of the listener or of the mux) it returns an error wrapping net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptConn()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptConn is Accept with the concrete type.
func (l *Listener) AcceptConn() (*Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, fmt.Errorf("transport: listener for kind %d: %w", l.kind, net.ErrClosed)
	}
}

// Close stops the listener: pending and later connections of its kind are
// refused. Connections already accepted stay open. A later Mux.Listener
// call for the kind creates a new listener.
func (l *Listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.m.mu.Lock()
		if l.m.listeners[l.kind] == l {
			delete(l.m.listeners, l.kind)
		}
		l.m.mu.Unlock()
	})
	return nil
}

// Addr returns the mux's listening address.
func (l *Listener) Addr() net.Addr { return l.m.ln.Addr() }

// Kind returns the listener's connection kind.
func (l *Listener) Kind() byte { return l.kind }

// Conn is a connection that completed the handshake, accepted or dialed
// through a Mux. It knows the node id at the other end.
type Conn struct {
	net.Conn
	m        *Mux
	remoteID string
	kind     byte
	once     sync.Once
}

// RemoteID returns the node id the peer sent in its handshake. With mutual
// TLS the peer holds a certificate from a trusted CA, but the id itself is
// the peer's claim.
func (c *Conn) RemoteID() string { return c.remoteID }

// Kind returns the connection's kind.
func (c *Conn) Kind() byte { return c.kind }

// Close closes the connection and forgets it in the mux.
func (c *Conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.m.untrack(c) })
	return err
}

// RemoteID returns the peer's node id of a connection obtained from a Mux
// (directly, through a Listener or through RaftStreamLayer), or "" for any
// other connection.
func RemoteID(c net.Conn) string {
	if rc, ok := c.(interface{ RemoteID() string }); ok {
		return rc.RemoteID()
	}
	return ""
}
