package transport

import (
	"context"
	"testing"
)

// BenchmarkRPCParallel measures calls/s with many concurrent callers (256
// per GOMAXPROCS) sharing one client's pool of two connections, over
// loopback, with a 64-byte request and response.
func BenchmarkRPCParallel(b *testing.B) {
	benchRPC(b, Config{})
}

// BenchmarkRPCParallelTLS is BenchmarkRPCParallel over mutual TLS.
func BenchmarkRPCParallelTLS(b *testing.B) {
	ca := newTestCA(b, "bench CA")
	benchRPC(b, Config{TLS: ca.tlsConfig(b, "n")})
}

func benchRPC(b *testing.B, cfg Config) {
	srv := newTestMux(b, "srv", cfg)
	resp := make([]byte, 64)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_ = NewRPCServer(srv.Listener(KindRPC), func(context.Context, string, uint8, []byte) ([]byte, error) {
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
