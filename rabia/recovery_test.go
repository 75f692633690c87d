package rabia

import (
	"testing"

	"github.com/abacuskit/abacus/rabia/internal/wmvc"
)

// TestRecoveryPrefixes checks which slots a recovery round may abandon
// (more than f replicas only learn them and none decided them) and which
// it may then decide null (every replica abandoned them).
func TestRecoveryPrefixes(t *testing.T) {
	const (
		V = byte(wmvc.SlotVoting)
		L = byte(wmvc.SlotLearnOnly)
		D = byte(wmvc.SlotDecided)
	)
	tests := []struct {
		name        string
		parts       [][]byte // per replica, per slot from 10 on
		stuckTo     uint64
		stuck       bool
		abandonedTo uint64
		abandoned   bool
		n           int
	}{
		{"two of three only learn", [][]byte{{V, V}, {L, L}, {L, L}}, 11, true, 0, false, 3},
		{"all abandoned", [][]byte{{L, L, L}, {L, L, L}, {L, L, L}}, 12, true, 12, true, 3},
		{"a decided slot ends the prefix", [][]byte{{L, D, L}, {L, L, L}, {L, L, L}}, 10, true, 10, true, 3},
		{"decided first", [][]byte{{D, L}, {L, L}, {L, L}}, 0, false, 0, false, 3},
		{"one learner of three is not stuck", [][]byte{{V, V}, {V, L}, {L, L}}, 0, false, 0, false, 3},
		{"the learners thin out", [][]byte{{V, V}, {L, V}, {L, L}}, 10, true, 0, false, 3},
		{"five replicas need three learners", [][]byte{{V}, {V}, {L}, {L}, {L}}, 10, true, 0, false, 5},
		{"five replicas with two learners", [][]byte{{V}, {V}, {V}, {L}, {L}}, 0, false, 0, false, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			to, ok := stuckPrefix(tt.parts, 10, tt.n)
			if ok != tt.stuck || (ok && to != tt.stuckTo) {
				t.Fatalf("stuckPrefix = %d, %v; want %d, %v", to, ok, tt.stuckTo, tt.stuck)
			}
			to, ok = abandonedPrefix(tt.parts, 10)
			if ok != tt.abandoned || (ok && to != tt.abandonedTo) {
				t.Fatalf("abandonedPrefix = %d, %v; want %d, %v", to, ok, tt.abandonedTo, tt.abandoned)
			}
		})
	}
}
