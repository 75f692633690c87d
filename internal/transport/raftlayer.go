package transport

import (
	"context"
	"errors"
	"io"
	"net"
	"time"

	"github.com/hashicorp/raft"
)

// RaftStreamLayer returns a raft.StreamLayer carried by the mux's KindRaft
// connections, for raft.NewNetworkTransport. Its Addr is the mux's
// advertise address; its Close closes only the KindRaft listener (not the
// mux), so closing the raft transport leaves RPC and messages running.
func (m *Mux) RaftStreamLayer() raft.StreamLayer {
	return &raftLayer{m: m, ln: m.Listener(KindRaft)}
}

type raftLayer struct {
	m  *Mux
	ln *Listener
}

var _ raft.StreamLayer = (*raftLayer)(nil)

func (r *raftLayer) Accept() (net.Conn, error) {
	c, err := r.ln.Accept()
	if err != nil {
		return nil, err
	}
	return raftConn{c}, nil
}

// raftConn reports a connection closed by this node as the end of its
// stream. hashicorp/raft's transport logs any other read error at ERROR,
// and a node closing its own connections at shutdown is no error.
type raftConn struct{ net.Conn }

// RemoteID returns the peer's node id (see RemoteID).
func (c raftConn) RemoteID() string { return RemoteID(c.Conn) }

func (c raftConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if errors.Is(err, net.ErrClosed) {
		err = io.EOF
	}
	return n, err
}

func (r *raftLayer) Close() error { return r.ln.Close() }

func (r *raftLayer) Addr() net.Addr { return advertiseAddr(r.m.Addr()) }

// Dial connects to the raft layer of the node at address, within timeout.
func (r *raftLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	ctx := context.Background()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	c, err := r.m.Dial(ctx, string(address), KindRaft)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// advertiseAddr is a net.Addr for an advertise address string.
type advertiseAddr string

func (a advertiseAddr) Network() string { return "tcp" }
func (a advertiseAddr) String() string  { return string(a) }
