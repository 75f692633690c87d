package abacus

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/abacuskit/abacus/internal/transport"
)

// MaxHTTPAddrLen bounds Config.HTTPAddr and what a peer may advertise.
const MaxHTTPAddrLen = 1024

// Members learn each other's HTTP addresses (Config.HTTPAddr) over the
// peer port: each node answers connections of kind transport.KindInfo
// with its own address, and asks every other member for theirs, again
// every httpAddrRetry while it does not know it and every httpAddrRefresh
// after (a member restarted with another address is learned anew).
const (
	httpAddrRetry   = 500 * time.Millisecond
	httpAddrRefresh = 30 * time.Second
	httpAddrTimeout = 2 * time.Second
)

// httpAddrs is what a node knows of its members' HTTP addresses.
type httpAddrs struct {
	n      *Node
	ln     *transport.Listener
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	addrs   map[string]string
	fetched map[string]time.Time // when each member last answered
}

// startHTTPAddrs serves this node's HTTP address on the peer port and
// starts learning the other members'.
func startHTTPAddrs(n *Node) *httpAddrs {
	ctx, cancel := context.WithCancel(context.Background())
	h := &httpAddrs{n: n, ln: n.mux.Listener(transport.KindInfo), cancel: cancel,
		addrs: map[string]string{}, fetched: map[string]time.Time{}}
	h.wg.Add(2)
	go func() { defer h.wg.Done(); h.serve() }()
	go func() { defer h.wg.Done(); h.learn(ctx) }()
	return h
}

func (h *httpAddrs) stop() {
	h.cancel()
	h.ln.Close()
	h.wg.Wait()
}

// get returns member id's HTTP address: this node's own from its
// configuration, another's as last learned.
func (h *httpAddrs) get(id string) (string, bool) {
	if id == h.n.cfg.ID {
		return h.n.cfg.HTTPAddr, h.n.cfg.HTTPAddr != ""
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	a, ok := h.addrs[id]
	return a, ok && a != ""
}

// serve answers each connection with this node's HTTP address (a 2-byte
// big-endian length, then the address; empty when it has none) and
// closes it.
func (h *httpAddrs) serve() {
	msg := binary.BigEndian.AppendUint16(nil, uint16(len(h.n.cfg.HTTPAddr)))
	msg = append(msg, h.n.cfg.HTTPAddr...)
	for {
		c, err := h.ln.AcceptConn()
		if err != nil {
			return
		}
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			defer c.Close()
			_ = c.SetWriteDeadline(time.Now().Add(httpAddrTimeout))
			_, _ = c.Write(msg)
		}()
	}
}

// learn asks the members whose address it does not know, or has not
// refreshed for a while, until ctx ends.
func (h *httpAddrs) learn(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		t.Reset(h.round(ctx))
	}
}

// round asks every member that is due, in parallel, forgets members that
// left, and returns when the next round is due.
func (h *httpAddrs) round(ctx context.Context) time.Duration {
	members := h.n.Status().Members
	now := time.Now()
	current := make(map[string]bool, len(members))
	var due []Member
	h.mu.Lock()
	for _, m := range members {
		current[m.ID] = true
		if m.ID == h.n.cfg.ID {
			continue
		}
		if _, ok := h.addrs[m.ID]; !ok || now.Sub(h.fetched[m.ID]) >= httpAddrRefresh {
			due = append(due, m)
		}
	}
	for id := range h.addrs {
		if !current[id] {
			delete(h.addrs, id)
			delete(h.fetched, id)
		}
	}
	h.mu.Unlock()

	var wg sync.WaitGroup
	for _, m := range due {
		wg.Add(1)
		go func() {
			defer wg.Done()
			addr, err := h.fetch(ctx, m)
			if err != nil {
				h.n.log.Debug("http address of a member not learned", "member", m.ID, "err", err)
				return
			}
			h.mu.Lock()
			h.addrs[m.ID], h.fetched[m.ID] = addr, time.Now()
			h.mu.Unlock()
		}()
	}
	wg.Wait()

	h.mu.Lock()
	defer h.mu.Unlock()
	for _, m := range members {
		if _, ok := h.addrs[m.ID]; !ok && m.ID != h.n.cfg.ID {
			return httpAddrRetry
		}
	}
	return httpAddrRefresh / 4
}

var errBadHTTPAddr = errors.New("bad http address")

// fetch asks member m for its HTTP address. A reply that is not a
// host:port of at most MaxHTTPAddrLen bytes, or that comes from a node
// with another id, is refused.
func (h *httpAddrs) fetch(ctx context.Context, m Member) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, httpAddrTimeout)
	defer cancel()
	c, err := h.n.mux.Dial(ctx, m.Addr, transport.KindInfo)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if c.RemoteID() != m.ID {
		return "", fmt.Errorf("%w: %s answers as %q", errBadHTTPAddr, m.Addr, c.RemoteID())
	}
	_ = c.SetReadDeadline(time.Now().Add(httpAddrTimeout))
	var n [2]byte
	if _, err := io.ReadFull(c, n[:]); err != nil {
		return "", err
	}
	size := int(binary.BigEndian.Uint16(n[:]))
	if size > MaxHTTPAddrLen {
		return "", fmt.Errorf("%w: %d bytes", errBadHTTPAddr, size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(c, b); err != nil {
		return "", err
	}
	addr := string(b)
	if addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", fmt.Errorf("%w: %q: %v", errBadHTTPAddr, addr, err)
		}
	}
	return addr, nil
}

// HTTPAddr returns the HTTP address member id advertises (its
// Config.HTTPAddr), learned from the member over the peer port; for this
// node's own id, its configuration's. It reports false while the address
// is unknown (not learned yet, or the member advertises none).
func (n *Node) HTTPAddr(id string) (string, bool) { return n.httpAddrs.get(id) }
