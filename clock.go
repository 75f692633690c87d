package abacus

import (
	"sync/atomic"
	"time"
)

// Clock is a node's wall clock. abacus decides nothing by it: state-machine
// time advances by the leader's elapsed time, measured on the process's
// monotonic clock, so a node whose wall clock is wrong, or jumps, cannot
// end a lease early. The wall clock only sets the epoch when a new cluster
// first elects a leader, so that times in the state read as dates.
type Clock interface {
	// Now returns the wall-clock time.
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock returns the system clock.
func SystemClock() Clock { return systemClock{} }

// OffsetClock is a Clock whose time is the system's shifted by an
// adjustable offset: a node whose wall clock is wrong, for tests and fault
// injection.
type OffsetClock struct {
	offset atomic.Int64
}

// Now returns the system time plus the offset.
func (c *OffsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())).Round(0) }

// SetOffset sets the offset from the system clock.
func (c *OffsetClock) SetOffset(d time.Duration) { c.offset.Store(int64(d)) }

// Offset returns the current offset.
func (c *OffsetClock) Offset() time.Duration { return time.Duration(c.offset.Load()) }
