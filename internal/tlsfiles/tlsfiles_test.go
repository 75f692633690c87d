package tlsfiles_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/abacuskit/abacus/internal/testca"
	"github.com/abacuskit/abacus/internal/tlsfiles"
)

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	cert, key, ca := testca.New(t, "test CA").WriteFiles(t, dir, "node")
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("no certificates here\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name         string
		cert, key    string
		ca           string
		certs        int
		roots        bool
		errSubstring string
	}{
		{name: "nothing", certs: 0},
		{name: "pair and CA", cert: cert, key: key, ca: ca, certs: 1, roots: true},
		{name: "pair only", cert: cert, key: key, certs: 1},
		{name: "CA only", ca: ca, roots: true},
		{name: "key without cert", key: key, errSubstring: "tls: "},
		{name: "missing cert file", cert: missing, key: key, errSubstring: "tls: "},
		{name: "missing CA file", ca: missing, errSubstring: "tls: "},
		{name: "CA file without certificates", ca: empty, errSubstring: "tls: no certificates in " + empty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := tlsfiles.Load(tt.cert, tt.key, tt.ca)
			if tt.errSubstring != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.errSubstring) {
					t.Fatalf("Load error = %v, want one starting %q", err, tt.errSubstring)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if conf.MinVersion != tls.VersionTLS12 {
				t.Errorf("MinVersion = %#x, want TLS 1.2", conf.MinVersion)
			}
			if len(conf.Certificates) != tt.certs {
				t.Errorf("%d certificates, want %d", len(conf.Certificates), tt.certs)
			}
			if (conf.RootCAs != nil) != tt.roots {
				t.Errorf("RootCAs set = %v, want %v", conf.RootCAs != nil, tt.roots)
			}
			if conf.ClientCAs != nil || conf.ClientAuth != tls.NoClientCert {
				t.Errorf("client verification set: ClientCAs %v, ClientAuth %v", conf.ClientCAs, conf.ClientAuth)
			}
		})
	}
}
