package abacus

import (
	"sync/atomic"
	"time"
)

// Clock is the node's source of time. Only elapsed time between two
// readings matters to abacus (state-machine time advances by the leader's
// elapsed time, never by its wall clock), so a clock whose wall time is
// wrong cannot expire a lease early.
type Clock interface {
	// Now returns the current time. Readings must carry Go's monotonic
	// clock reading (as time.Now does), so that Sub measures elapsed time.
	Now() time.Time
}

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// SystemClock returns the system clock.
func SystemClock() Clock { return systemClock{} }

// OffsetClock is a Clock whose wall time is shifted by an adjustable
// offset, for tests and fault injection. Shifting it does not change
// elapsed time measured across a shift less than the shift itself: it
// models a node whose wall clock is wrong.
type OffsetClock struct {
	offset atomic.Int64
}

// Now returns the system time plus the offset.
func (c *OffsetClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// SetOffset sets the offset from the system clock.
func (c *OffsetClock) SetOffset(d time.Duration) { c.offset.Store(int64(d)) }

// Offset returns the current offset.
func (c *OffsetClock) Offset() time.Duration { return time.Duration(c.offset.Load()) }
