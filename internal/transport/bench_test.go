package transport

import (
	"context"
	"testing"

	"github.com/abacuskit/abacus/internal/testca"
)

// BenchmarkRPCParallel measures calls/s with many concurrent callers (256
// per GOMAXPROCS) sharing one client's pool of two connections, over
// loopback, with a 64-byte request and response.
func BenchmarkRPCParallel(b *testing.B) {
	benchRPC(b, Config{})
}

// BenchmarkRPCParallelTLS is BenchmarkRPCParallel over mutual TLS.
func BenchmarkRPCParallelTLS(b *testing.B) {
	ca := testca.New(b, "bench CA")
	benchRPC(b, Config{TLS: ca.TLSConfig(b, "n")})
}

func benchRPC(b *testing.B, cfg Config) {
	srv := newTestMux(b, "srv", cfg)
	resp := make([]byte, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ln := srv.Listener(KindRPC) // registered before any call can arrive
	go func() {
		_ = NewRPCServer(ln, func(context.Context, string, uint8, []byte) ([]byte, error) {
			return resp, nil
		}).Serve(ctx)
	}()
	cli := NewRPCClient(newTestMux(b, "cli", cfg), 2)
	defer cli.Close()
	req := make([]byte, 64)
	if _, err := cli.Call(ctx, srv.Addr(), 0, req); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(256)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := cli.Call(ctx, srv.Addr(), 0, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

// BenchmarkMessengerSend measures one-way messages/s (64 bytes) from one
// sender to one receiver over loopback, including delivery, with at most
// 4096 messages in flight (so that none is dropped).
func BenchmarkMessengerSend(b *testing.B) {
	const window = 4096
	a := newTestMux(b, "a", Config{})
	r := newTestMux(b, "b", Config{})
	tokens := make(chan struct{}, window)
	msA := a.Messenger(func(string, []byte) {}, MessengerConfig{QueueLen: window})
	defer msA.Close()
	msB := r.Messenger(func(string, []byte) { <-tokens }, MessengerConfig{})
	defer msB.Close()
	msg := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		tokens <- struct{}{}
		if err := msA.Send(r.Addr(), msg); err != nil {
			b.Fatal(err)
		}
	}
	for range window {
		tokens <- struct{}{} // wait until every message was delivered
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if d := msA.Dropped(); d != 0 {
		b.Fatalf("%d messages dropped", d)
	}
}
