package wire

import (
	"encoding/json"
	"testing"
)

// TestIDJSON: ids are written as decimal strings, so uint64s above 2^53
// survive any JSON reader, and read from strings or bare numbers.
func TestIDJSON(t *testing.T) {
	b, err := json.Marshal(InstanceResponse{Instance: ID(18446744073709551615), TTLMS: 5})
	if err != nil || string(b) != `{"instance":"18446744073709551615","ttl_ms":5}` {
		t.Fatalf("marshal: %s, %v", b, err)
	}
	for _, in := range []string{`{"instance":"42"}`, `{"instance":42}`} {
		var r InstanceResponse
		if err := json.Unmarshal([]byte(in), &r); err != nil || r.Instance != 42 {
			t.Errorf("unmarshal %s: %v, %v", in, r.Instance, err)
		}
	}
	for _, in := range []string{`{"instance":"-1"}`, `{"instance":"1e3"}`, `{"instance":"18446744073709551616"}`, `{"instance":""}`} {
		var r InstanceResponse
		if err := json.Unmarshal([]byte(in), &r); err == nil {
			t.Errorf("unmarshal %s: accepted as %d", in, r.Instance)
		}
	}
}
