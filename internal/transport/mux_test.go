package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestListenValidatesNodeID(t *testing.T) {
	for _, id := range []string{"", strings.Repeat("x", MaxNodeIDLen+1)} {
		_, err := Listen(context.Background(), Config{BindAddr: "127.0.0.1:0", NodeID: id})
		if !errors.Is(err, ErrBadHandshake) {
			t.Errorf("Listen(id of %d bytes) = %v, want ErrBadHandshake", len(id), err)
		}
	}
}

func TestDemuxKinds(t *testing.T) {
	a := newTestMux(t, "a", Config{})
	b := newTestMux(t, "b", Config{})
	ctx := ctxT(t)
	kinds := []byte{KindRaft, KindRPC, KindRabia, 42}
	accepted := make(map[byte]<-chan acceptResult)
	for _, k := range kinds {
		accepted[k] = acceptOne(b.Listener(k))
	}
	for _, k := range kinds {
		c, err := a.Dial(ctx, b.Addr(), k)
		if err != nil {
			t.Fatalf("Dial kind %d: %v", k, err)
		}
		if c.RemoteID() != "b" || c.Kind() != k {
			t.Fatalf("dialed conn: RemoteID %q kind %d, want b %d", c.RemoteID(), c.Kind(), k)
		}
		if _, err := c.Write([]byte{k}); err != nil {
			t.Fatal(err)
		}
		r := <-accepted[k]
		if r.err != nil {
			t.Fatalf("Accept kind %d: %v", k, r.err)
		}
		if got := RemoteID(r.c); got != "a" || r.c.Kind() != k {
			t.Fatalf("accepted conn: RemoteID %q kind %d, want a %d", got, r.c.Kind(), k)
		}
		var buf [1]byte
		if _, err := io.ReadFull(r.c, buf[:]); err != nil || buf[0] != k {
			t.Fatalf("read on kind %d listener: %v %v", k, buf, err)
		}
		// And back, on the same connection.
		if _, err := r.c.Write([]byte("ok")); err != nil {
			t.Fatal(err)
		}
		var back [2]byte
		if _, err := io.ReadFull(c, back[:]); err != nil || string(back[:]) != "ok" {
			t.Fatalf("reply: %q %v", back, err)
		}
	}
	if l1, l2 := b.Listener(KindRPC), b.Listener(KindRPC); l1 != l2 {
		t.Fatal("Listener returns a new listener for the same kind")
	}
}

func TestRefusesBadHandshakes(t *testing.T) {
	m := newTestMux(t, "srv", Config{HandshakeTimeout: 200 * time.Millisecond})
	good := m.Listener(KindRPC)
	cases := []struct {
		name      string
		send      []byte
		wantReply []byte // what the server writes before closing
	}{
		{"unknown kind", appendHandshake(nil, 77, "x"), appendHandshake(nil, statusUnknownKind, "srv")},
		{"empty id", []byte{KindRPC, 0}, nil},
		{"truncated id", []byte{KindRPC, 10, 'a', 'b'}, nil},
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")[:3], nil},
		{"silent (slow handshake)", nil, nil},
		{"one byte", []byte{KindRPC}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", m.Addr())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.send); err != nil {
				t.Fatal(err)
			}
			if got := expectClosed(t, c); !bytes.Equal(got, tc.wantReply) {
				t.Fatalf("server wrote %q, want %q", got, tc.wantReply)
			}
		})
	}
	// Dial reports the refusal of an unknown kind.
	d := newTestMux(t, "cli", Config{})
	if _, err := d.Dial(ctxT(t), m.Addr(), 77); !errors.Is(err, ErrRefused) {
		t.Fatalf("Dial unknown kind: %v, want ErrRefused", err)
	}
	// Nothing above disturbed good traffic.
	res := acceptOne(good)
	c, err := d.Dial(ctxT(t), m.Addr(), KindRPC)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r := <-res; r.err != nil || r.c.RemoteID() != "cli" {
		t.Fatalf("good connection after bad ones: %v", r.err)
	}
}

func TestCloseUnblocksAcceptAndCutsConns(t *testing.T) {
	a := newTestMux(t, "a", Config{})
	b := newTestMux(t, "b", Config{})
	l := b.Listener(KindRaft)
	res := acceptOne(l)
	c, err := a.Dial(ctxT(t), b.Addr(), KindRaft)
	if err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	blocked := acceptOne(l)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if r := <-blocked; !errors.Is(r.err, net.ErrClosed) {
		t.Fatalf("Accept after Close: %v, want net.ErrClosed", r.err)
	}
	// The accepted conn is closed: the dialer sees EOF.
	expectClosed(t, c)
	if _, err := b.Dial(ctxT(t), a.Addr(), KindRaft); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Dial on closed mux: %v, want net.ErrClosed", err)
	}
	if got := b.Listener(KindRPC); got == nil {
		t.Fatal("nil listener")
	} else if _, err := got.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept on listener of closed mux: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestListenerCloseRefusesKind(t *testing.T) {
	a := newTestMux(t, "a", Config{})
	b := newTestMux(t, "b", Config{})
	l := b.Listener(KindRabia)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Dial(ctxT(t), b.Addr(), KindRabia); !errors.Is(err, ErrRefused) {
		t.Fatalf("Dial after listener Close: %v, want ErrRefused", err)
	}
	if b.Listener(KindRabia) == l {
		t.Fatal("closed listener returned again")
	}
}

func TestDialCancelled(t *testing.T) {
	a := newTestMux(t, "a", Config{})
	// A raw listener that accepts and never answers the handshake.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var dialsAccepted atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			dialsAccepted.Add(1)
			defer c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := a.Dial(ctx, ln.Addr().String(), KindRPC); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial to a mute peer: %v, want DeadlineExceeded", err)
	}
	// Closing the mux interrupts a dial in progress.
	b := newTestMux(t, "b", Config{DialTimeout: time.Minute})
	done := make(chan error, 1)
	go func() {
		_, err := b.Dial(context.Background(), ln.Addr().String(), KindRPC)
		done <- err
	}()
	waitFor(t, "dial in progress", func() bool {
		// The mute listener accepted it: the dial is waiting for a reply.
		return len(done) == 0 && dialsAccepted.Load() >= 2
	})
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Dial succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not interrupt Dial")
	}
}

func TestPendingHandshakesBounded(t *testing.T) {
	m := newTestMux(t, "srv", Config{MaxPendingHandshakes: 2, HandshakeTimeout: time.Minute})
	m.Listener(KindRPC)
	var silent []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", m.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		silent = append(silent, c)
	}
	// Once both slots are taken, further connections are closed at once.
	waitFor(t, "handshake slots taken", func() bool { return len(m.pending) == 2 })
	extra, err := net.Dial("tcp", m.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	expectClosed(t, extra)
	// Freeing the slots lets good peers in again.
	for _, c := range silent {
		_ = c.Close()
	}
	waitFor(t, "handshake slots freed", func() bool { return len(m.pending) == 0 })
	d := newTestMux(t, "cli", Config{})
	if _, err := d.Dial(ctxT(t), m.Addr(), KindRPC); err != nil {
		t.Fatalf("Dial after slots freed: %v", err)
	}
}
