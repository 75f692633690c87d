package testcluster

import (
	"testing"

	"github.com/abacuskit/abacus/internal/testca"
)

// CA is a throwaway certificate authority for mutual-TLS tests.
type CA = testca.CA

// NewCA creates a CA with an ECDSA P-256 key, valid for an hour.
func NewCA(t testing.TB, name string) *CA { return testca.New(t, name) }
