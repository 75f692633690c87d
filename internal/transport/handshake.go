// Package transport is the single TCP port every abacus node uses for all
// node-to-node traffic: Raft, forwarded client requests (RPC) and the
// messages of the leaderless Rabia path.
//
// A Mux owns the listener. Every connection starts with a small handshake,
// written by the dialer after the (optional, mutual) TLS handshake:
//
//	dialer   -> acceptor: [kind u8][id length u8][sender node id]
//	acceptor -> dialer:   [status u8][id length u8][acceptor node id]
//
// The acceptor hands the connection to the Listener registered for its kind,
// or refuses it. The reply lets the dialer know that the connection was
// accepted (so a Dial that returns nil really reached a willing peer) and
// which node it reached, which is what fault injection needs to block
// traffic by node id.
//
// On top of the mux the package offers a hashicorp/raft StreamLayer
// (RaftStreamLayer), a multiplexed request/response RPC (RPCClient,
// RPCServer) and fire-and-forget ordered messages (Messenger). Fault
// injection (Faults), when enabled in Config, wraps every connection so
// that tests can partition, delay and drop traffic without root.
package transport

import (
	"errors"
	"fmt"
	"io"
)

// Connection kinds: the first byte of every connection's handshake. Values
// not listed here are free for future protocols; a connection whose kind has
// no Listener is refused.
const (
	// KindRaft carries hashicorp/raft's NetworkTransport traffic.
	KindRaft byte = 1
	// KindRPC carries multiplexed request/response calls (RPCClient/RPCServer).
	KindRPC byte = 2
	// KindRabia carries fire-and-forget messages of the leaderless path (Messenger).
	KindRabia byte = 3
	// KindInfo carries a node's advertised details (its HTTP address):
	// the accepting side writes them and closes the connection.
	KindInfo byte = 4
)

// MaxNodeIDLen is the longest node id the handshake carries.
const MaxNodeIDLen = 255

// Handshake reply statuses.
const (
	statusOK          byte = 0 // accepted
	statusUnknownKind byte = 1 // no listener for the kind
	statusBlocked     byte = 2 // refused by fault injection
)

// Sentinel errors of the package; test for them with errors.Is.
var (
	// ErrBadHandshake reports a handshake that is malformed: an empty or
	// oversized node id, or a truncated message.
	ErrBadHandshake = errors.New("transport: bad handshake")
	// ErrRefused reports a peer that refused the connection's handshake: it
	// has no listener for the kind, or its fault injection blocks us (the
	// error then wraps ErrPartitioned too).
	ErrRefused = errors.New("transport: connection refused by peer")
	// ErrPartitioned reports traffic blocked by fault injection (Faults).
	ErrPartitioned = errors.New("transport: peer blocked by fault injection")
	// ErrFrameTooLarge reports a frame or message larger than Config.MaxFrame.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrProtocol reports a peer that broke the framing protocol; its
	// connection is closed.
	ErrProtocol = errors.New("transport: protocol violation")
)

// validNodeID reports whether id fits the handshake.
func validNodeID(id string) error {
	if len(id) == 0 || len(id) > MaxNodeIDLen {
		return fmt.Errorf("%w: node id length %d not in [1, %d]", ErrBadHandshake, len(id), MaxNodeIDLen)
	}
	return nil
}

// appendHandshake appends a handshake (or a reply: the layout is the same,
// with a status in place of the kind) to b.
func appendHandshake(b []byte, first byte, id string) []byte {
	b = append(b, first, byte(len(id)))
	return append(b, id...)
}

// readHandshake reads one handshake (or reply) from r: the first byte and
// the node id. It never reads past the handshake and never allocates more
// than MaxNodeIDLen bytes.
func readHandshake(r io.Reader) (first byte, id string, err error) {
	var buf [2 + MaxNodeIDLen]byte
	if _, err := io.ReadFull(r, buf[:2]); err != nil {
		return 0, "", fmt.Errorf("%w: %w", ErrBadHandshake, err)
	}
	n := int(buf[1])
	if n == 0 {
		return 0, "", fmt.Errorf("%w: empty node id", ErrBadHandshake)
	}
	if _, err := io.ReadFull(r, buf[2:2+n]); err != nil {
		return 0, "", fmt.Errorf("%w: %w", ErrBadHandshake, err)
	}
	return buf[0], string(buf[2 : 2+n]), nil
}
