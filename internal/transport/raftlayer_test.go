package transport

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestRaftStreamLayerAddrIsAdvertised(t *testing.T) {
	m := newTestMux(t, "n1", Config{AdvertiseAddr: "node1.internal:7000"})
	if got := m.RaftStreamLayer().Addr().String(); got != "node1.internal:7000" {
		t.Fatalf("Addr = %q, want the advertise address", got)
	}
	m2 := newTestMux(t, "n2", Config{})
	if got := m2.RaftStreamLayer().Addr().String(); got != m2.Addr() {
		t.Fatalf("Addr = %q, want the listener address %q", got, m2.Addr())
	}
}

func TestRaftStreamLayerRoundTrip(t *testing.T) {
	a := newTestMux(t, "a", Config{})
	b := newTestMux(t, "b", Config{})
	la, lb := a.RaftStreamLayer(), b.RaftStreamLayer()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := lb.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := la.Dial(raft.ServerAddress(b.Addr()), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if RemoteID(sc) != "a" {
		t.Fatalf("RemoteID = %q", RemoteID(sc))
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read %q %v", buf, err)
	}
	// A connection this node closed ends its stream: no read error for
	// hashicorp/raft to log.
	sc.Close()
	if _, err := sc.Read(buf); err != io.EOF {
		t.Fatalf("read after close = %v, want io.EOF", err)
	}
	// Closing the stream layer closes only the raft listener.
	if err := lb.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := lb.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v", err)
	}
	if _, err := la.Dial(raft.ServerAddress(b.Addr()), 5*time.Second); !errors.Is(err, ErrRefused) {
		t.Fatalf("Dial to a closed raft layer = %v, want ErrRefused", err)
	}
	b.Listener(KindRPC)
	if _, err := a.Dial(ctxT(t), b.Addr(), KindRPC); err != nil {
		t.Fatalf("RPC kind after raft layer Close: %v", err)
	}
}

func TestRaftNetworkTransportAppendEntries(t *testing.T) {
	a := newTestMux(t, "a", Config{})
	b := newTestMux(t, "b", Config{})
	ta := raft.NewNetworkTransport(a.RaftStreamLayer(), 2, 5*time.Second, io.Discard)
	tb := raft.NewNetworkTransport(b.RaftStreamLayer(), 2, 5*time.Second, io.Discard)
	defer ta.Close()
	defer tb.Close()
	if ta.LocalAddr() != raft.ServerAddress(a.Addr()) {
		t.Fatalf("LocalAddr = %q, want %q", ta.LocalAddr(), a.Addr())
	}
	go func() {
		for rpc := range tb.Consumer() {
			req, ok := rpc.Command.(*raft.AppendEntriesRequest)
			if !ok {
				rpc.Respond(nil, errors.New("unexpected rpc"))
				continue
			}
			rpc.Respond(&raft.AppendEntriesResponse{
				RPCHeader: raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax},
				Term:      req.Term,
				LastLog:   req.PrevLogEntry + uint64(len(req.Entries)),
				Success:   true,
			}, nil)
		}
	}()
	for i := range 3 {
		req := &raft.AppendEntriesRequest{
			RPCHeader:    raft.RPCHeader{ProtocolVersion: raft.ProtocolVersionMax, ID: []byte("a"), Addr: []byte(a.Addr())},
			Term:         7,
			PrevLogEntry: uint64(10 * i),
			Entries:      []*raft.Log{{Index: uint64(10*i + 1), Term: 7, Type: raft.LogCommand, Data: []byte("x")}},
		}
		var resp raft.AppendEntriesResponse
		if err := ta.AppendEntries("b", raft.ServerAddress(b.Addr()), req, &resp); err != nil {
			t.Fatalf("AppendEntries: %v", err)
		}
		if !resp.Success || resp.Term != 7 || resp.LastLog != uint64(10*i+1) {
			t.Fatalf("response %+v", resp)
		}
	}
}

func TestRaftNetworkTransportPartition(t *testing.T) {
	a := newTestMux(t, "a", Config{Faults: true})
	b := newTestMux(t, "b", Config{})
	ta := raft.NewNetworkTransport(a.RaftStreamLayer(), 2, 2*time.Second, io.Discard)
	tb := raft.NewNetworkTransport(b.RaftStreamLayer(), 2, 2*time.Second, io.Discard)
	defer ta.Close()
	defer tb.Close()
	go func() {
		for rpc := range tb.Consumer() {
			rpc.Respond(&raft.AppendEntriesResponse{Success: true}, nil)
		}
	}()
	appendOnce := func() error {
		var resp raft.AppendEntriesResponse
		return ta.AppendEntries("b", raft.ServerAddress(b.Addr()), &raft.AppendEntriesRequest{Term: 1}, &resp)
	}
	if err := appendOnce(); err != nil {
		t.Fatal(err)
	}
	if err := a.Faults().Partition("b"); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := appendOnce(); err == nil {
			t.Fatalf("AppendEntries %d crossed a partition", i)
		}
	}
	if err := a.Faults().Heal(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "AppendEntries after heal", func() bool { return appendOnce() == nil })
}
