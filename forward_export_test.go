package abacus

import (
	"context"
	"time"
)

// Forwarding's wire format, for tests that speak the peer protocol to a
// real node from outside the package.
const (
	MethodProposeForTest     = methodPropose
	MethodReadForTest        = methodRead
	MethodProposeManyForTest = methodProposeMany
	MethodAddMemberForTest   = methodAddMember
)

// ForwardRequestForTest frames payload as a forwarded request that the
// leader may work on for up to wait.
func ForwardRequestForTest(wait time.Duration, payload []byte) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	return encodeRequest(ctx, payload)
}

// DecodeForwardResponseForTest decodes the leader's answer to a forwarded
// request carrying n proposals (n == 0: a single-command method).
func DecodeForwardResponseForTest(b []byte, n int) error {
	if n == 0 {
		_, err := decodeResponse(b)
		return err
	}
	outs, err := decodeManyResponse(b, n)
	if err != nil {
		return err
	}
	for _, o := range outs {
		if o.err != nil {
			return o.err
		}
	}
	return nil
}
