package check

import (
	"slices"

	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// Counts tallies ops by outcome; Refused counts the Ok ops whose output
// carries a refusal code.
type Counts struct {
	Ok      int `json:"ok"`
	Fail    int `json:"fail"`
	Info    int `json:"info"`
	Refused int `json:"refused"`
}

// Gap is a period of the run, in ns since its start.
type Gap struct {
	Start int64 `json:"start"`
	End   int64 `json:"end"`
	Nanos int64 `json:"nanos"`
}

// Summary counts what a history holds.
type Summary struct {
	// Ops is the number of ops; Ok, Fail and Info count them by outcome.
	Ops  int `json:"ops"`
	Ok   int `json:"ok"`
	Fail int `json:"fail"`
	Info int `json:"info"`
	// ByKind counts ops per kind.
	ByKind map[history.Kind]Counts `json:"by_kind"`
	// Faults is the number of fault windows.
	Faults int `json:"faults"`
	// Duration is the span of the history, from 0 to its last event.
	Duration int64 `json:"duration_ns"`
	// LongestWriteGap is the longest period with no write acknowledged as
	// applied (counter writes, acquisitions, releases): from the start of
	// the run to the first, between two, or from the last to the last
	// write sent that got no definite answer (so the clients' last
	// requests, answered after they were told to stop, make no gap).
	LongestWriteGap Gap `json:"longest_write_gap"`
}

// Summarize counts the ops of h and finds its longest gap without a
// successful write.
func Summarize(h *history.History) Summary {
	s := Summary{Ops: len(h.Ops), Faults: len(h.Faults), ByKind: map[history.Kind]Counts{}, Duration: h.End()}
	var writes []int64
	lastSent := int64(-1)
	for i := range h.Ops {
		op := &h.Ops[i]
		c := s.ByKind[op.Kind]
		switch op.Outcome {
		case history.Ok:
			s.Ok++
			c.Ok++
			if op.Out.Error != "" {
				c.Refused++
			}
		case history.Fail:
			s.Fail++
			c.Fail++
		case history.Info:
			s.Info++
			c.Info++
		}
		s.ByKind[op.Kind] = c
		if op.Kind == history.KeepAlive {
			continue
		}
		if op.Applied() {
			writes = append(writes, op.Return)
		}
		if op.Writes() && op.Outcome != history.Ok {
			lastSent = max(lastSent, op.Call)
		}
	}
	if len(writes) == 0 {
		lastSent = max(lastSent, s.Duration)
	}
	slices.Sort(writes)
	prev := int64(0)
	for _, t := range append(writes, lastSent) {
		if t-prev > s.LongestWriteGap.Nanos {
			s.LongestWriteGap = Gap{Start: prev, End: t, Nanos: t - prev}
		}
		prev = max(prev, t)
	}
	return s
}
