// Package testca makes throwaway certificate authorities for mutual-TLS
// tests, with no dependency on the rest of abacus so that every package
// (internal/transport included) can use it.
package testca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA is a throwaway certificate authority for mutual-TLS tests.
type CA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// Pool holds the CA's certificate, for RootCAs and ClientCAs.
	Pool *x509.CertPool
}

// New creates a CA with an ECDSA P-256 key, valid for an hour.
func New(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name},
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
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{cert: cert, key: key, Pool: pool}
}

// Issue returns a certificate for node name, usable as both TLS server and
// client, with the subject common name and DNS name name and the IP SAN
// 127.0.0.1.
func (ca *CA) Issue(t testing.TB, name string) tls.Certificate {
	t.Helper()
	return ca.IssueTemplate(t, &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{name},
	})
}

// IssueTemplate returns a certificate with tmpl's subject and subject
// alternative names, signed by ca, usable as both TLS server and client.
// It fills in the serial number, the validity (an hour) and the key
// usages; tmpl is modified.
func (ca *CA) IssueTemplate(t testing.TB, tmpl *x509.Certificate) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = time.Now().Add(-time.Minute)
	tmpl.NotAfter = time.Now().Add(time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// WriteFiles issues a certificate for name (see Issue) and writes it, its
// key and the CA's certificate as PEM files in dir, for programs that take
// file names, and returns the three paths.
func (ca *CA) WriteFiles(t testing.TB, dir, name string) (certFile, keyFile, caFile string) {
	t.Helper()
	leaf := ca.Issue(t, name)
	keyDER, err := x509.MarshalPKCS8PrivateKey(leaf.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(file, typ string, der []byte) string {
		p := filepath.Join(dir, file)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write(name+".pem", "CERTIFICATE", leaf.Certificate[0]),
		write(name+"-key.pem", "PRIVATE KEY", keyDER),
		write("ca.pem", "CERTIFICATE", ca.cert.Raw)
}

// TLSConfig returns a node's mutual-TLS configuration: a certificate
// issued by ca, and ca's pool to verify peers with.
func (ca *CA) TLSConfig(t testing.TB, name string) *tls.Config {
	t.Helper()
	return &tls.Config{
		Certificates: []tls.Certificate{ca.Issue(t, name)},
		RootCAs:      ca.Pool,
		ClientCAs:    ca.Pool,
		MinVersion:   tls.VersionTLS13,
	}
}
