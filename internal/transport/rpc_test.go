package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// rpcPair starts a server mux running handler and a client mux with an
// RPCClient, both closed at the end of the test.
func rpcPair(t testing.TB, srvCfg Config, handler RPCHandler) (srv *Mux, cli *RPCClient, stop func()) {
	t.Helper()
	srv = newTestMux(t, "srv", srvCfg)
	s := NewRPCServer(srv.Listener(KindRPC), handler)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- s.Serve(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Cleanup(stop)
	climux := newTestMux(t, "cli", Config{})
	cli = NewRPCClient(climux, 2)
	t.Cleanup(func() { _ = cli.Close() })
	return srv, cli, stop
}

func echoHandler(_ context.Context, from string, method uint8, req []byte) ([]byte, error) {
	switch method {
	case 1:
		return append([]byte(from+":"), req...), nil
	case 2:
		return nil, fmt.Errorf("no such thing: %s", req)
	default:
		return nil, fmt.Errorf("unknown method %d", method)
	}
}

func TestRPCBasics(t *testing.T) {
	srv, cli, _ := rpcPair(t, Config{}, echoHandler)
	ctx := ctxT(t)
	resp, err := cli.Call(ctx, srv.Addr(), 1, []byte("hello"))
	if err != nil || string(resp) != "cli:hello" {
		t.Fatalf("Call = %q, %v", resp, err)
	}
	resp, err = cli.Call(ctx, srv.Addr(), 1, nil)
	if err != nil || string(resp) != "cli:" {
		t.Fatalf("empty Call = %q, %v", resp, err)
	}
	_, err = cli.Call(ctx, srv.Addr(), 2, []byte("x"))
	var re *RemoteError
	if !errors.Is(err, ErrRemote) || !errors.As(err, &re) || re.Msg != "no such thing: x" {
		t.Fatalf("handler error = %v", err)
	}
}

func TestRPCConcurrentOverPool(t *testing.T) {
	const n = 1000
	srv, cli, _ := rpcPair(t, Config{}, echoHandler)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := fmt.Appendf(nil, "req-%d", i)
			resp, err := cli.Call(ctx, srv.Addr(), 1, req)
			if err != nil {
				errs <- err
				return
			}
			if want := "cli:" + string(req); string(resp) != want {
				errs <- fmt.Errorf("got %q, want %q", resp, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// The pool holds at most 2 connections to the server.
	srv.mu.Lock()
	conns := len(srv.conns)
	srv.mu.Unlock()
	if conns < 1 || conns > 2 {
		t.Fatalf("server has %d connections, want 1 or 2", conns)
	}
}

func TestRPCOutOfOrder(t *testing.T) {
	// Request "slow" blocks until request "fast" has completed, on one
	// connection: responses must not be answered in order.
	fastDone := make(chan struct{})
	handler := func(ctx context.Context, _ string, _ uint8, req []byte) ([]byte, error) {
		if string(req) == "slow" {
			select {
			case <-fastDone:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return req, nil
	}
	srv := newTestMux(t, "srv", Config{})
	ln := srv.Listener(KindRPC) // registered before any call can arrive
	go func() { _ = NewRPCServer(ln, handler).Serve(ctxT(t)) }()
	cli := NewRPCClient(newTestMux(t, "cli", Config{}), 1)
	defer cli.Close()
	ctx := ctxT(t)
	slow := make(chan error, 1)
	go func() {
		_, err := cli.Call(ctx, srv.Addr(), 0, []byte("slow"))
		slow <- err
	}()
	if resp, err := cli.Call(ctx, srv.Addr(), 0, []byte("fast")); err != nil || string(resp) != "fast" {
		t.Fatalf("fast call: %q %v", resp, err)
	}
	close(fastDone)
	if err := <-slow; err != nil {
		t.Fatalf("slow call: %v", err)
	}
}

func TestRPCCancellation(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	handler := func(ctx context.Context, _ string, method uint8, req []byte) ([]byte, error) {
		if method == 9 {
			close(entered)
			<-release
		}
		return req, nil
	}
	srv, cli, _ := rpcPair(t, Config{}, handler)
	ctx, cancel := context.WithCancel(ctxT(t))
	done := make(chan error, 1)
	go func() {
		_, err := cli.Call(ctx, srv.Addr(), 9, []byte("stuck"))
		done <- err
	}()
	<-entered
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) || errors.Is(err, ErrNotSent) {
		t.Fatalf("cancelled Call = %v, want context.Canceled", err)
	}
	// The late response is discarded; the connection serves other calls.
	close(release)
	for i := range 10 {
		req := fmt.Appendf(nil, "x%d", i)
		if resp, err := cli.Call(ctxT(t), srv.Addr(), 0, req); err != nil || string(resp) != string(req) {
			t.Fatalf("call after cancellation: %q %v", resp, err)
		}
	}
	// A context already ended means not sent.
	if _, err := cli.Call(ctx, srv.Addr(), 0, nil); !errors.Is(err, ErrNotSent) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Call with ended ctx = %v", err)
	}
}

func TestRPCServerDeathLosesCalls(t *testing.T) {
	entered := make(chan struct{}, 10)
	handler := func(ctx context.Context, _ string, _ uint8, req []byte) ([]byte, error) {
		entered <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	srv, cli, _ := rpcPair(t, Config{}, handler)
	const n = 5
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := cli.Call(ctxT(t), srv.Addr(), 0, []byte("x"))
			errs <- err
		}()
	}
	for range n {
		<-entered
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errs; !errors.Is(err, ErrConnLost) {
			t.Fatalf("call during server death = %v, want ErrConnLost", err)
		}
	}
	// Nothing listens any more: the next call is definitely not sent.
	if _, err := cli.Call(ctxT(t), srv.Addr(), 0, nil); !errors.Is(err, ErrNotSent) {
		t.Fatalf("call to a dead server = %v, want ErrNotSent", err)
	}
}

func TestRPCOversize(t *testing.T) {
	const max = 1024
	handler := func(_ context.Context, _ string, method uint8, req []byte) ([]byte, error) {
		if method == 1 {
			return make([]byte, max+1), nil
		}
		return req, nil
	}
	srv, _, _ := rpcPair(t, Config{MaxFrame: max}, handler)
	cm := newTestMux(t, "cli2", Config{MaxFrame: max})
	cli := NewRPCClient(cm, 1)
	defer cli.Close()
	ctx := ctxT(t)

	if _, err := cli.Call(ctx, srv.Addr(), 0, make([]byte, max+1)); !errors.Is(err, ErrFrameTooLarge) || !errors.Is(err, ErrNotSent) {
		t.Fatalf("oversized request = %v", err)
	}
	if _, err := cli.Call(ctx, srv.Addr(), 0, make([]byte, max)); err != nil {
		t.Fatalf("request at the limit: %v", err)
	}
	if _, err := cli.Call(ctx, srv.Addr(), 1, nil); !errors.Is(err, ErrRemote) {
		t.Fatalf("oversized response = %v, want a remote error", err)
	}

	// A peer announcing a huge frame on a raw connection is cut off, and
	// good clients are unaffected.
	bad := []struct {
		name  string
		frame []byte
	}{
		{"4 GiB frame", binary.BigEndian.AppendUint32(nil, 0xffffffff)},
		{"frame over the limit", binary.BigEndian.AppendUint32(nil, rpcBodyMin+max+1)},
		{"length below header", binary.BigEndian.AppendUint32(nil, 3)},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			c, err := cm.Dial(ctx, srv.Addr(), KindRPC)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if _, err := c.Write(tc.frame); err != nil {
				t.Fatal(err)
			}
			expectClosed(t, c)
		})
	}
	if _, err := cli.Call(ctx, srv.Addr(), 0, []byte("still fine")); err != nil {
		t.Fatalf("call after bad peers: %v", err)
	}
}

func TestRPCClientRejectsBadResponses(t *testing.T) {
	// A fake server that answers every request with the given bytes.
	for _, tc := range []struct {
		name  string
		reply func(id uint64) []byte
	}{
		{"unknown status", func(id uint64) []byte { return newRPCFrame(id, 7, nil) }},
		{"oversized", func(id uint64) []byte { return binary.BigEndian.AppendUint32(nil, 1<<30) }},
		{"truncated", func(id uint64) []byte { return newRPCFrame(id, 0, []byte("abc"))[:10] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newTestMux(t, "fake", Config{})
			ln := srv.Listener(KindRPC)
			go func() {
				c, err := ln.AcceptConn()
				if err != nil {
					return
				}
				defer c.Close()
				id, _, _, err := readRPCFrame(c, 1<<20)
				if err != nil {
					return
				}
				_, _ = c.Write(tc.reply(id))
				if tc.name == "truncated" {
					_ = c.Close()
				}
				_, _, _, _ = readRPCFrame(c, 1<<20) // wait for the client to hang up
			}()
			cli := NewRPCClient(newTestMux(t, "cli", Config{MaxFrame: 1 << 20}), 1)
			defer cli.Close()
			if _, err := cli.Call(ctxT(t), srv.Addr(), 0, nil); !errors.Is(err, ErrConnLost) {
				t.Fatalf("Call = %v, want ErrConnLost", err)
			}
		})
	}
}

func TestRPCServeStopsOnContext(t *testing.T) {
	srv := newTestMux(t, "srv", Config{})
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	ln := srv.Listener(KindRPC) // registered before any call can arrive
	go func() { served <- NewRPCServer(ln, echoHandler).Serve(ctx) }()
	cli := NewRPCClient(newTestMux(t, "cli", Config{}), 1)
	defer cli.Close()
	if _, err := cli.Call(ctxT(t), srv.Addr(), 1, nil); err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("Serve = %v, want nil after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return")
	}
	if _, err := cli.Call(ctxT(t), srv.Addr(), 1, nil); err == nil {
		t.Fatal("call served after Serve returned")
	}
}

func TestRPCServeReturnsWhenListenerCloses(t *testing.T) {
	srv := newTestMux(t, "srv", Config{})
	ln := srv.Listener(KindRPC)
	served := make(chan error, 1)
	go func() { served <- NewRPCServer(ln, echoHandler).Serve(context.Background()) }()
	cli := NewRPCClient(newTestMux(t, "cli", Config{}), 1)
	defer cli.Close()
	// An open client connection must not keep Serve running.
	if _, err := cli.Call(ctxT(t), srv.Addr(), 1, nil); err != nil {
		t.Fatal(err)
	}
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve = %v, want net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its listener closed")
	}
	if _, err := cli.Call(ctxT(t), srv.Addr(), 1, nil); err == nil {
		t.Fatal("call served after Serve returned")
	}
}
