package main

import (
	"testing"

	"github.com/abacuskit/abacus/jepsen/internal/check"
	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// TestLeaseExpiry checks the lease-expiry check on constructed histories of
// one lock with a 1s TTL.
func TestLeaseExpiry(t *testing.T) {
	const ms = int64(1e6)
	acquire := func(holder string, call, ret int64, token uint64) history.Op {
		return history.Op{Kind: history.Acquire, Key: "L", Call: call * ms, Return: ret * ms, Outcome: history.Ok,
			In: history.Input{Holder: holder, TTLMillis: 1000}, Out: history.Output{Token: token}}
	}
	keepAlive := func(call int64, token uint64, refusal string) history.Op {
		return history.Op{Kind: history.KeepAlive, Key: "L", Call: call * ms, Return: (call + 5) * ms, Outcome: history.Ok,
			In: history.Input{Token: token}, Out: history.Output{Error: refusal}}
	}
	release := func(call int64, token uint64) history.Op {
		return history.Op{Kind: history.Release, Key: "L", Call: call * ms, Return: (call + 5) * ms, Outcome: history.Info,
			In: history.Input{Token: token}}
	}
	tests := []struct {
		name string
		ops  []history.Op
		want check.Status
	}{
		{name: "no locks", want: check.StatusSkipped},
		{name: "second after the TTL", want: check.StatusValid,
			ops: []history.Op{acquire("a", 0, 10, 1), acquire("b", 1000, 1010, 2)}},
		{name: "second while the first is valid", want: check.StatusInvalid,
			ops: []history.Op{acquire("a", 0, 10, 1), acquire("b", 300, 500, 2)}},
		{name: "within the margin", want: check.StatusValid,
			ops: []history.Op{acquire("a", 0, 10, 1), acquire("b", 850, 950, 2)}},
		{name: "keep-alive extends", want: check.StatusInvalid,
			ops: []history.Op{acquire("a", 0, 10, 1), keepAlive(400, 1, ""), acquire("b", 1000, 1200, 2)}},
		{name: "refused keep-alive does not extend", want: check.StatusValid,
			ops: []history.Op{acquire("a", 0, 10, 1), keepAlive(400, 1, history.CodeLeaseExpired), acquire("b", 1000, 1200, 2)}},
		{name: "released, even with an unknown outcome", want: check.StatusValid,
			ops: []history.Op{acquire("a", 0, 10, 1), keepAlive(200, 1, ""), release(300, 1), acquire("b", 300, 500, 2)}},
		{name: "refused acquisition is no lease", want: check.StatusValid,
			ops: []history.Op{acquire("a", 0, 10, 1), {Kind: history.Acquire, Key: "L", Call: 100 * ms, Return: 110 * ms,
				Outcome: history.Ok, In: history.Input{Holder: "b", TTLMillis: 1000}, Out: history.Output{Error: history.CodeLockHeld}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &history.History{Ops: tc.ops}
			for i := range h.Ops {
				h.Ops[i].Index = i
			}
			if err := h.Validate(); err != nil {
				t.Fatal(err)
			}
			res := leaseExpiry(h, LeaseMargin, 20)
			if res.Status != tc.want {
				t.Fatalf("status %s, want %s: %s %+v", res.Status, tc.want, res.Detail, res.Violations)
			}
			if tc.want == check.StatusInvalid && (len(res.Violations) != 1 || len(res.Violations[0].Ops) != 2) {
				t.Fatalf("violations %+v, want one naming both acquisitions", res.Violations)
			}
		})
	}
}
