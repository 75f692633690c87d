package tlsfiles_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/abacuskit/abacus/internal/tlsfiles"
)

// writePEM writes a self-signed certificate and its key and returns the
// two file names.
func writePEM(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	for name, b := range map[string]*pem.Block{
		certFile: {Type: "CERTIFICATE", Bytes: der},
		keyFile:  {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(name, pem.EncodeToMemory(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return certFile, keyFile
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePEM(t, dir)
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
		{name: "pair and CA", cert: cert, key: key, ca: cert, certs: 1, roots: true},
		{name: "pair only", cert: cert, key: key, certs: 1},
		{name: "CA only", ca: cert, roots: true},
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
