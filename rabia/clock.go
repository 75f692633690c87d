package rabia

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"time"

	"github.com/abacuskit/abacus"
)

// smClock is a replica's running estimate of state-machine time: the
// newest time it has learned, advanced by the monotonic time elapsed since
// it learned it. It learns from what it applies and from the estimates
// its peers send with their status, and it never moves back: a slot that
// took long to decide, or a stale status, teaches it nothing older than
// what it already extrapolates. So every replica's estimate lags the most
// advanced one by at most about one message delay, and that lag can only
// shrink. This is what keeps leases from ending early: a lease granted on
// a lagging stamp and expired by a less lagging one ends early by the
// difference, and the difference stays within a message delay instead of
// swinging with how long each slot took to decide (see doc.go, Time).
type smClock struct {
	mu    sync.Mutex
	base  int64     // state-machine time learned, in nanoseconds
	at    time.Time // monotonic reading when base was learned
	known bool      // base has been set
}

// Learn raises the estimate to sm as of now, unless it is already ahead.
func (c *smClock) Learn(sm int64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.known && sm <= c.base+int64(now.Sub(c.at)) {
		return
	}
	c.base, c.at, c.known = sm, now, true
}

// Read returns the estimate at now, or 0 before anything was learned.
func (c *smClock) Read(now time.Time) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.known {
		return 0
	}
	return c.base + int64(now.Sub(c.at))
}

// syncTime learns the cluster's time after this replica opens, then lets
// the batcher stamp (closes r.timed).
//
// A replica that has just opened may be far behind the cluster's time: its
// copy of state-machine time stood still while it was down. A lease
// granted on such a stamp would be cut short by the next stamp of a peer.
// So it asks every peer for its estimate, and stamps nothing before one of
// these holds:
//   - a peer that has learned the cluster's time itself answered: its
//     estimate is taken. Asked after this replica opened, it lags by the
//     reply's delay at most, unlike a status a peer queued while this
//     replica was down;
//   - in one round of questions, no such peer answered but enough did to
//     make a majority with this replica: the cluster restarted, and the
//     largest estimate is taken.
//
// It loses nothing by waiting, since no slot decides without a majority.
// A round ends when every peer answered or failed (a second at most); the
// next starts a TickInterval later.
func (r *replica) syncTime() {
	defer close(r.timed)
	tick := time.NewTicker(r.opts.TickInterval)
	defer tick.Stop()
	for len(r.members) > 1 {
		type answer struct {
			sm     int64
			synced bool
			err    error
		}
		answers := make(chan answer, len(r.members))
		for i, m := range r.members {
			if i != r.self {
				r.goroutine(func() {
					ctx, cancel := context.WithTimeout(r.ctx, time.Second)
					defer cancel()
					var a answer
					var resp []byte
					if resp, a.err = r.rpc.Call(ctx, m.Addr, methodTime, nil); a.err == nil {
						a.sm, a.synced, a.err = decodeTimeAnswer(resp)
					}
					answers <- a
				})
			}
		}
		largest, heard := int64(0), 0
		for range len(r.members) - 1 {
			a := <-answers
			if a.err != nil {
				continue
			}
			if a.synced {
				r.est.Learn(a.sm, time.Now())
				return
			}
			largest, heard = max(largest, a.sm), heard+1
		}
		if heard >= len(r.members)/2 { // with this replica, a majority
			r.est.Learn(largest, time.Now())
			return
		}
		select {
		case <-tick.C:
		case <-r.ctx.Done():
			return
		}
	}
}

// serveTime answers a peer's syncTime: [u64 estimate][u8 1 if this
// replica has learned the cluster's time itself].
func (r *replica) serveTime(req []byte) ([]byte, error) {
	if len(req) != 0 {
		return nil, fmt.Errorf("%w: time request", abacus.ErrInvalidArgument)
	}
	synced := byte(0)
	select {
	case <-r.timed:
		synced = 1
	default:
	}
	return append(binary.BigEndian.AppendUint64(nil, uint64(r.stamp(0))), synced), nil
}

func decodeTimeAnswer(b []byte) (sm int64, synced bool, err error) {
	if len(b) != 9 || b[8] > 1 {
		return 0, false, fmt.Errorf("%w: time answer", abacus.ErrCorrupt)
	}
	sm = int64(binary.BigEndian.Uint64(b))
	if sm < 0 {
		return 0, false, fmt.Errorf("%w: time answer", abacus.ErrCorrupt)
	}
	return sm, b[8] == 1, nil
}
