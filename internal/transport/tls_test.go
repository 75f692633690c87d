package transport

import (
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/abacuskit/abacus/internal/testca"
)

func TestMutualTLS(t *testing.T) {
	ca := testca.New(t, "cluster CA")
	other := testca.New(t, "rogue CA")
	srv := newTestMux(t, "srv", Config{TLS: ca.TLSConfig(t, "srv"), HandshakeTimeout: 2 * time.Second})
	ln := srv.Listener(KindRPC)

	// A good client works, and the traffic is encrypted end to end.
	good := newTestMux(t, "good", Config{TLS: ca.TLSConfig(t, "good")})
	res := acceptOne(ln)
	c, err := good.Dial(ctxT(t), srv.Addr(), KindRPC)
	if err != nil {
		t.Fatalf("Dial with a good certificate: %v", err)
	}
	r := <-res
	if r.err != nil || r.c.RemoteID() != "good" {
		t.Fatalf("Accept: %v", r.err)
	}
	if _, err := c.Write([]byte("hi")); err != nil {
		t.Fatal(err)
	}
	var buf [2]byte
	if _, err := io.ReadFull(r.c, buf[:]); err != nil || string(buf[:]) != "hi" {
		t.Fatalf("read %q %v", buf, err)
	}

	refused := []struct {
		name string
		cfg  *tls.Config
	}{
		{"no client certificate", &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS13}},
		{"certificate from another CA", &tls.Config{
			Certificates: []tls.Certificate{other.Issue(t, "rogue")},
			RootCAs:      ca.Pool, MinVersion: tls.VersionTLS13,
		}},
		{"another CA, TLS 1.2", &tls.Config{
			Certificates: []tls.Certificate{other.Issue(t, "rogue")},
			RootCAs:      ca.Pool, MaxVersion: tls.VersionTLS12,
		}},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			bad := newTestMux(t, "bad", Config{TLS: tc.cfg})
			if _, err := bad.Dial(ctxT(t), srv.Addr(), KindRPC); err == nil {
				t.Fatal("Dial succeeded without a valid client certificate")
			}
		})
	}
	t.Run("server from another CA", func(t *testing.T) {
		rogue := newTestMux(t, "rogue", Config{TLS: other.TLSConfig(t, "rogue")})
		rogue.Listener(KindRPC)
		if _, err := good.Dial(ctxT(t), rogue.Addr(), KindRPC); err == nil {
			t.Fatal("Dial trusted a server certificate from another CA")
		}
	})
	t.Run("plain TCP", func(t *testing.T) {
		plain := newTestMux(t, "plain", Config{})
		if _, err := plain.Dial(ctxT(t), srv.Addr(), KindRPC); err == nil {
			t.Fatal("plaintext Dial to a TLS mux succeeded")
		}
		raw, err := net.Dial("tcp", srv.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		if _, err := raw.Write(appendHandshake(nil, KindRPC, "plain")); err != nil {
			t.Fatal(err)
		}
		expectClosed(t, raw)
	})
	// The good client still works, and no refused peer reached the listener.
	res = acceptOne(ln)
	if _, err := good.Dial(ctxT(t), srv.Addr(), KindRPC); err != nil {
		t.Fatalf("Dial after refusals: %v", err)
	}
	if r := <-res; r.err != nil || r.c.RemoteID() != "good" {
		t.Fatalf("Accept after refusals: %v, remote %q", r.err, RemoteID(r.c))
	}
}
