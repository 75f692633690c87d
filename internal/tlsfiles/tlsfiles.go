// Package tlsfiles loads TLS certificates, keys and CA bundles from PEM
// files named on a command line, for the abacus command and the example
// cluster node.
package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
)

// Load returns a TLS 1.2+ configuration built from PEM files. When cert or
// key is given, the pair becomes the configuration's only certificate;
// when ca is given, its certificates become RootCAs. Empty names leave the
// matching field unset. Errors start with "tls: "; a CA file holding no
// certificate is an error.
func Load(cert, key, ca string) (*tls.Config, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if cert != "" || key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: no certificates in %s", ca)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}
