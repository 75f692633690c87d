package transport

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"sync"
)

// RPC response statuses (the code byte of a response frame).
const (
	rpcStatusOK    byte = 0
	rpcStatusError byte = 1 // payload is the handler's error string
)

// DefaultRPCMaxInFlight bounds the requests one server connection runs at
// once; when it is reached the server stops reading that connection until a
// request completes (back-pressure, nothing is refused).
const DefaultRPCMaxInFlight = 4096

// rpcBufSize is the read and write buffer size of RPC and message connections.
const rpcBufSize = 64 << 10

// RPCHandler serves one request: from is the caller's node id, method and
// req are the caller's. ctx ends when the caller's connection is lost or the
// server stops. A returned error travels back as a RemoteError (its message
// only). req is owned by the handler.
type RPCHandler func(ctx context.Context, from string, method uint8, req []byte) ([]byte, error)

// RPCServer serves RPC calls arriving on a listener (normally the mux's
// KindRPC listener). Requests on one connection are handled concurrently and
// answered as they complete, in any order.
type RPCServer struct {
	ln          *Listener
	handler     RPCHandler
	log         *slog.Logger
	maxFrame    int
	maxInFlight int
}

// NewRPCServer returns a server for the connections of ln. It takes the
// frame bound and the logger from ln's mux. Call Serve to run it.
func NewRPCServer(ln *Listener, handler RPCHandler) *RPCServer {
	return &RPCServer{
		ln:          ln,
		handler:     handler,
		log:         ln.m.log,
		maxFrame:    ln.m.cfg.MaxFrame,
		maxInFlight: DefaultRPCMaxInFlight,
	}
}

// Serve accepts and serves connections until ctx ends (it then closes the
// listener and returns nil) or the listener is closed (it returns Accept's
// error, which wraps net.ErrClosed). Before returning it closes every
// connection it served and waits for their handlers, whose contexts are
// cancelled.
func (s *RPCServer) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { _ = s.ln.Close() })
	defer stop()
	var wg sync.WaitGroup
	defer func() {
		cancel() // closes the connections still being served
		wg.Wait()
	}()
	for {
		c, err := s.ln.AcceptConn()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.serveConn(ctx, c)
		}()
	}
}

// serveConn runs one connection: this goroutine reads requests, one
// goroutine per request runs the handler, and a writer goroutine sends the
// responses, coalescing those that are ready into one write.
func (s *RPCServer) serveConn(ctx context.Context, c *Conn) {
	ctx, cancel := context.WithCancel(ctx)
	log := s.log.With("peer", c.RemoteID())
	stop := context.AfterFunc(ctx, func() { _ = c.Close() })
	var handlers sync.WaitGroup
	out := make(chan []byte, 256)
	writerDone := make(chan struct{})
	defer func() {
		cancel()
		handlers.Wait()
		<-writerDone
		stop()
		_ = c.Close()
	}()

	go func() {
		defer close(writerDone)
		if err := writeLoop(ctx, c, out); err != nil && ctx.Err() == nil {
			log.Debug("transport: rpc write failed", "err", err)
		}
		cancel()
	}()

	br := bufio.NewReaderSize(c, rpcBufSize)
	sem := make(chan struct{}, s.maxInFlight)
	for {
		id, method, req, err := readRPCFrame(br, s.maxFrame)
		if err != nil {
			if ctx.Err() == nil && !isClosedErr(err) {
				log.Debug("transport: rpc connection dropped", "err", err)
			}
			return
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		handlers.Add(1)
		go func() {
			defer handlers.Done()
			defer func() { <-sem }()
			frame := s.handle(ctx, log, c.RemoteID(), id, method, req)
			select {
			case out <- frame:
			case <-ctx.Done():
			}
		}()
	}
}

// handle runs the handler for one request and returns the response frame.
// A panicking handler is logged and answered with a remote error, so that a
// request cannot crash the node.
func (s *RPCServer) handle(ctx context.Context, log *slog.Logger, from string, id uint64, method uint8, req []byte) (frame []byte) {
	defer func() {
		if r := recover(); r != nil {
			log.Error("transport: rpc handler panicked", "method", method, "panic", r)
			frame = newRPCFrame(id, rpcStatusError, []byte(fmt.Sprintf("handler panic: %v", r)))
		}
	}()
	resp, err := s.handler(ctx, from, method, req)
	if err != nil {
		msg := err.Error()
		if len(msg) > s.maxFrame {
			msg = msg[:s.maxFrame]
		}
		return newRPCFrame(id, rpcStatusError, []byte(msg))
	}
	if len(resp) > s.maxFrame {
		return newRPCFrame(id, rpcStatusError, []byte(fmt.Sprintf("%v: response of %d bytes, limit %d", ErrFrameTooLarge, len(resp), s.maxFrame)))
	}
	return newRPCFrame(id, rpcStatusOK, resp)
}

// writeLoop writes the frames sent on out to c until ctx ends or a write
// fails. Frames already queued are written together and flushed once, so
// many small frames cost one system call.
func writeLoop(ctx context.Context, c net.Conn, out <-chan []byte) error {
	w := bufio.NewWriterSize(c, rpcBufSize)
	for {
		select {
		case b := <-out:
			if _, err := w.Write(b); err != nil {
				return err
			}
			yielded := false
		drain:
			for {
				select {
				case b = <-out:
					if _, err := w.Write(b); err != nil {
						return err
					}
				default:
					if yielded {
						break drain
					}
					// Let handlers about to respond do so, so that one
					// flush carries their responses too.
					yielded = true
					runtime.Gosched()
				}
			}
			if err := w.Flush(); err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// isClosedErr reports the errors of a connection closed on purpose.
func isClosedErr(err error) bool {
	return errors.Is(err, net.ErrClosed)
}
