package check

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// FuzzRun feeds arbitrary well-formed histories to every checker and to the
// visualiser: none may panic, and a verdict is always one of the statuses.
func FuzzRun(f *testing.F) {
	for seed := range uint64(3) {
		h, _ := simulate(simConfig{seed: seed, clients: 3, ops: 8, counters: []string{"a"}, addOnly: []string{"n"},
			locks: []string{"L"}, infoRate: 0.2, failRate: 0.1, mayExpire: true})
		var buf bytes.Buffer
		if err := history.NewEncoder(&buf).WriteHistory(h); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes(), int64(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte, final int64) {
		h, err := history.Read(bytes.NewReader(data))
		if err != nil || len(h.Ops) > 64 {
			return
		}
		var finals []FinalRead
		if len(h.Ops) > 0 {
			finals = []FinalRead{{Node: "n1", Key: h.Ops[0].Key, Value: final, Exists: final != 0}}
		}
		v := Run(context.Background(), Input{History: h, FinalReads: finals}, Options{Timeout: 200 * time.Millisecond})
		switch v.Status {
		case StatusValid, StatusInvalid, StatusUnknown, StatusSkipped:
		default:
			t.Fatalf("status %q", v.Status)
		}
		if lin := v.Check(NameLinearizable); lin != nil {
			for _, p := range lin.Partitions {
				if p.Status != StatusSkipped {
					if err := p.Visualize(io.Discard, h.Faults); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	})
}
