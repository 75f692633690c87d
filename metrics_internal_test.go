package abacus

import (
	"errors"
	"testing"
	"time"
)

// TestMetricsRecordWithoutAllocating: recording a call, a commit or a read
// costs no allocation.
func TestMetricsRecordWithoutAllocating(t *testing.T) {
	m := newMetrics()
	err := errors.New("failed")
	allocs := testing.AllocsPerRun(1000, func() {
		m.observeWrite(time.Millisecond, nil)
		m.observeRead(time.Millisecond, err)
		m.ObserveCommit(time.Millisecond, 8)
		m.CountForward()
		m.CountRead(true)
		m.CountRead(false)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per recording", allocs)
	}
}
