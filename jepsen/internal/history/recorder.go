package history

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Recorder builds a History from concurrent client goroutines. It stamps
// times from a monotonic clock that starts at NewRecorder. Use it as:
//
//	rec := history.NewRecorder()
//	p := rec.Invoke(client, "n1", history.Add, "c", history.Input{Delta: 1})
//	resp, err := doRequest(ctx, ...)
//	switch {
//	case err == nil:          p.Ok(history.Output{Value: resp.Value})
//	case isRefusal(err):      p.Ok(history.Output{Error: code})   // 409
//	case isUnavailable(err):  p.Fail("503 unavailable")
//	default:                  p.Info(err.Error())                  // 504, timeout, reset
//	}
//	...
//	h := rec.History()
//
// All methods are safe for concurrent use.
type Recorder struct {
	start time.Time

	mu     sync.Mutex
	ops    []Op
	done   []bool
	faults []FaultWindow
}

// NewRecorder returns a Recorder whose clock starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now returns the recorder's clock: monotonic ns since NewRecorder.
func (r *Recorder) Now() int64 { return time.Since(r.start).Nanoseconds() }

// Pending is an op that has been called and not yet completed. Complete it
// exactly once with Ok, Fail or Info; later completions are ignored.
type Pending struct {
	r     *Recorder
	index int
}

// Invoke records the call of a request and returns its Pending op.
func (r *Recorder) Invoke(process int, node string, kind Kind, key string, in Input) *Pending {
	now := r.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	i := len(r.ops)
	r.ops = append(r.ops, Op{
		Index: i, Process: process, Node: node, Kind: kind, Key: key,
		Call: now, Return: now, In: in,
	})
	r.done = append(r.done, false)
	return &Pending{r: r, index: i}
}

// Index returns the op's index in the history.
func (p *Pending) Index() int { return p.index }

// Ok completes the op with a definite answer (which may be a refusal in
// out.Error).
func (p *Pending) Ok(out Output) { p.complete(Ok, "", out) }

// Fail completes the op as definitely not applied.
func (p *Pending) Fail(reason string) { p.complete(Fail, reason, Output{}) }

// Info completes the op with an unknown outcome.
func (p *Pending) Info(reason string) { p.complete(Info, reason, Output{}) }

func (p *Pending) complete(o Outcome, reason string, out Output) {
	now := p.r.Now()
	p.r.mu.Lock()
	defer p.r.mu.Unlock()
	if p.r.done[p.index] {
		return
	}
	p.r.done[p.index] = true
	op := &p.r.ops[p.index]
	op.Return, op.Outcome, op.Reason, op.Out = max(now, op.Call), o, reason, out
}

// OpenFault records the start of a fault window now and returns its id for
// CloseFault.
func (r *Recorder) OpenFault(description string, nodes ...string) int {
	now := r.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.faults = append(r.faults, FaultWindow{
		Start: now, End: math.MaxInt64, Description: description, Nodes: slices.Clone(nodes),
	})
	return len(r.faults) - 1
}

// CloseFault records the end of fault window id now. Unknown or already
// closed ids are ignored.
func (r *Recorder) CloseFault(id int) {
	now := r.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if id >= 0 && id < len(r.faults) && r.faults[id].Open() {
		r.faults[id].End = max(now, r.faults[id].Start)
	}
}

// History returns a copy of everything recorded so far. Ops still pending
// appear as Info with Reason "pending" and Return now; fault windows still
// open end now.
func (r *Recorder) History() *History {
	now := r.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	h := &History{Ops: slices.Clone(r.ops), Faults: slices.Clone(r.faults)}
	for i := range h.Ops {
		h.Ops[i].In.Fence = clonePtr(h.Ops[i].In.Fence)
		h.Ops[i].In.Min = clonePtr(h.Ops[i].In.Min)
		h.Ops[i].In.Max = clonePtr(h.Ops[i].In.Max)
		if !r.done[i] {
			h.Ops[i].Outcome, h.Ops[i].Reason, h.Ops[i].Return = Info, "pending", max(now, h.Ops[i].Call)
		}
	}
	for i := range h.Faults {
		h.Faults[i].Nodes = slices.Clone(h.Faults[i].Nodes)
		if h.Faults[i].Open() {
			h.Faults[i].End = max(now, h.Faults[i].Start)
		}
	}
	return h
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
