package abacus

import (
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/abacuskit/abacus/internal/transport"
)

// TestHTTPAddrFetchRefusesBadAnswers: what a member answers about its HTTP
// address is bounded and checked; a bad answer is an error and teaches
// nothing.
func TestHTTPAddrFetchRefusesBadAnswers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	listen := func(id string) *transport.Mux {
		m, err := transport.Listen(ctx, transport.Config{BindAddr: "127.0.0.1:0", NodeID: id, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	self, peer := listen("n1"), listen("n2")
	answers := make(chan []byte, 1)
	ln := peer.Listener(transport.KindInfo)
	go func() {
		for {
			c, err := ln.AcceptConn()
			if err != nil {
				return
			}
			_, _ = c.Write(<-answers)
			c.Close()
		}
	}()
	answer := func(addr string, length int) []byte {
		return append(binary.BigEndian.AppendUint16(nil, uint16(length)), addr...)
	}
	h := &httpAddrs{n: &Node{cfg: Config{ID: "n1"}, mux: self, log: quiet}}
	n2 := Member{ID: "n2", Addr: peer.Addr()}

	for _, tc := range []struct {
		name   string
		member Member
		answer []byte
		want   string
		err    bool
	}{
		{"an address", n2, answer("127.0.0.1:8102", 14), "127.0.0.1:8102", false},
		{"none advertised", n2, answer("", 0), "", false},
		{"over the limit", n2, answer("", MaxHTTPAddrLen+1), "", true},
		{"not host:port", n2, answer("nonsense", 8), "", true},
		{"cut short", n2, answer("127.0", 14), "", true},
		{"another node at the address", Member{ID: "n3", Addr: peer.Addr()}, answer("127.0.0.1:1", 11), "", true},
	} {
		answers <- tc.answer
		got, err := h.fetch(ctx, tc.member)
		if tc.err && err == nil {
			t.Errorf("%s: accepted %q", tc.name, got)
		}
		if !tc.err && (err != nil || got != tc.want) {
			t.Errorf("%s: %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
}
