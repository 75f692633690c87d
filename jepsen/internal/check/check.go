// Package check judges a history recorded by the fault-injection harness.
//
// Run applies every checker and combines them into a Verdict:
//
//	v := check.Run(ctx, check.Input{History: h, FinalReads: finals, NodeStates: hashes}, check.Options{})
//	fmt.Println(v.String()) // "valid: ..." / "INVALID: ..." / "UNKNOWN: ..."
//
// The checkers, each also callable alone:
//
//   - Linearizable: porcupine linearizability of every counter (model
//     CounterModel) and every lock with its fenced writes (model LockModel),
//     one partition per name. Fail ops are dropped; Info writes return at
//     +infinity with unchecked output; Info reads and stale reads are
//     dropped; final reads are appended after everything else.
//   - Locks: direct checks of fencing tokens in real-time order.
//   - CounterBounds: every read of an add-only counter lies within the sums
//     of the adds that must and may have happened before it.
//   - LostWrites: the final value of every add-only counter accounts for
//     every acknowledged add.
//   - Convergence: after healing, every node reports the same state hash
//     and the same final values.
//   - ExactlyOnce: retries of one idempotent request (same Idempotency-Key)
//     all got the same answer. Before the other checks, Run merges such
//     retries into one op (MergeRetries).
//
// A check that cannot decide (porcupine timed out, the context ended, a
// model's state set outgrew Options.MaxStates) reports StatusUnknown, never
// StatusValid. A malformed history is not judged (StatusUnknown).
//
// A whole run, as the harness's runner does it:
//
//	rec := history.NewRecorder()
//	// client goroutines: p := rec.Invoke(...); ...; p.Ok(out) / p.Fail(why) / p.Info(why)
//	// nemesis: id := rec.OpenFault("partition {n1} | {n2 n3}", "n1"); ...; rec.CloseFault(id)
//	// after healing and letting the cluster settle: read every counter
//	// from every node (FinalReads) and each node's state hash (NodeStates)
//	in := check.Input{History: rec.History(), FinalReads: finals, NodeStates: hashes}
//	v := check.Run(ctx, in, check.Options{Timeout: time.Minute, StrictLocks: false})
//	line, err := report.Write(ctx, runDir, in, v, report.Options{})
//
// Set Options.StrictLocks only when no lease can expire during the run;
// otherwise the lock model allows expiry wherever it explains the history,
// and the Locks checker (which needs no such assumption) still catches
// stale tokens.
package check

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// Status is a checker's (or the whole run's) conclusion.
type Status string

// Statuses, from best to worst; Combine takes the worst.
const (
	// StatusSkipped: the checker had nothing to check (no data for it).
	StatusSkipped Status = "skipped"
	// StatusValid: no violation found, and the check was complete.
	StatusValid Status = "valid"
	// StatusUnknown: the check could not finish (timeout, cancelled); no
	// violation was found in what it did check.
	StatusUnknown Status = "unknown"
	// StatusInvalid: a violation was found.
	StatusInvalid Status = "invalid"
)

func (s Status) rank() int {
	switch s {
	case StatusValid:
		return 1
	case StatusUnknown:
		return 2
	case StatusInvalid:
		return 3
	}
	return 0
}

// Combine returns the worse of a and b: invalid over unknown over valid over
// skipped.
func Combine(a, b Status) Status {
	if b.rank() > a.rank() {
		return b
	}
	return a
}

// Violation is one thing a checker found wrong.
type Violation struct {
	// Key is the counter or lock name concerned.
	Key string `json:"key"`
	// Message says what is wrong, citing ops as #index.
	Message string `json:"message"`
	// Ops are the indexes of the history ops involved (-1 for a final read).
	Ops []int `json:"ops,omitempty"`
}

// Result is one checker's conclusion.
type Result struct {
	// Name is the checker's name ("linearizable", "locks", ...).
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail summarises what was checked and found, in one or two lines.
	Detail string `json:"detail"`
	// Violations lists what was found wrong, at most Options.MaxViolations;
	// ViolationCount counts all of them.
	Violations     []Violation `json:"violations,omitempty"`
	ViolationCount int         `json:"violation_count,omitempty"`
	// Elapsed is how long the checker ran.
	Elapsed time.Duration `json:"elapsed_ns"`
	// Partitions are the per-name porcupine checks (Linearizable only).
	Partitions []*Partition `json:"partitions,omitempty"`
}

// Violate records v: the result becomes StatusInvalid, ViolationCount
// counts v, and v is kept in Violations if fewer than limit are kept.
func (r *Result) Violate(limit int, v Violation) {
	r.Status = StatusInvalid
	r.ViolationCount++
	if len(r.Violations) < limit {
		r.Violations = append(r.Violations, v)
	}
}

// FinalRead is a read of one counter from one node after the cluster has
// healed and quiesced.
type FinalRead struct {
	Node   string `json:"node"`
	Key    string `json:"key"`
	Value  int64  `json:"value"`
	Exists bool   `json:"exists"`
}

// NodeState is a node's state hash after healing (for example the digest of
// its snapshot at an applied index all nodes reached).
type NodeState struct {
	Node string `json:"node"`
	Hash string `json:"hash"`
}

// Input is everything the checkers judge.
type Input struct {
	// History is the recorded run.
	History *history.History
	// FinalReads are reads of counters from every node after healing;
	// optional.
	FinalReads []FinalRead
	// NodeStates are per-node state hashes after healing; optional.
	NodeStates []NodeState
	// Initial gives counters that existed, with these values, before the
	// run; any other counter starts absent (0).
	Initial map[string]int64
}

// Options tune the checkers. The zero value is usable.
type Options struct {
	// Timeout bounds porcupine's search per partition (one counter or
	// lock); a partition that runs out reports StatusUnknown. Default 60s.
	Timeout time.Duration
	// StrictLocks declares that no lock lease can expire during the run
	// (TTLs outlast every fault and holders keep them alive), so a second
	// acquisition while a lock is held is a violation by itself. Leave it
	// false when leases may expire: the model then allows an expiry
	// wherever one explains the history.
	StrictLocks bool
	// MaxStates bounds the set of possible states the porcupine models
	// track at once (unknown outcomes multiply them); a partition that
	// outgrows it and finds no linearization reports StatusUnknown.
	// Default DefaultMaxStates.
	MaxStates int
	// MaxViolations bounds the violations kept per checker. Default 20.
	MaxViolations int
	// Workers bounds how many partitions porcupine checks at once.
	// Default GOMAXPROCS.
	Workers int
	// Logger receives progress at debug level and violations at warn
	// level. Default: discard.
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	if o.MaxStates <= 0 {
		o.MaxStates = DefaultMaxStates
	}
	if o.MaxViolations <= 0 {
		o.MaxViolations = 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Verdict is the combined judgement of a run.
type Verdict struct {
	// Status is the worst status of any checker that ran (skipped ones
	// aside); StatusSkipped only if every checker was skipped.
	Status Status `json:"status"`
	// Checks are the checkers' results, in a fixed order.
	Checks []Result `json:"checks"`
	// Summary counts what the history holds.
	Summary Summary `json:"summary"`
	// Elapsed is the total checking time.
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Add appends r to the checks and combines its status into the verdict's.
// A StatusSkipped result is left out altogether.
func (v *Verdict) Add(r Result) {
	if r.Status == StatusSkipped {
		return
	}
	v.Checks = append(v.Checks, r)
	v.Status = Combine(v.Status, r.Status)
}

// Check returns the result of the named checker, or nil.
func (v *Verdict) Check(name string) *Result {
	for i := range v.Checks {
		if v.Checks[i].Name == name {
			return &v.Checks[i]
		}
	}
	return nil
}

// String returns the verdict in one line, for example
//
//	INVALID: linearizable=invalid locks=valid counter-bounds=valid lost-writes=valid convergence=skipped exactly-once=skipped | 1200 ops (1100 ok, 60 fail, 40 info), longest gap without a write 2.3s
func (v *Verdict) String() string {
	var b strings.Builder
	switch v.Status {
	case StatusValid:
		b.WriteString("valid:")
	case StatusInvalid:
		b.WriteString("INVALID:")
	case StatusUnknown:
		b.WriteString("UNKNOWN:")
	default:
		b.WriteString(string(v.Status) + ":")
	}
	for _, c := range v.Checks {
		fmt.Fprintf(&b, " %s=%s", c.Name, c.Status)
	}
	s := &v.Summary
	fmt.Fprintf(&b, " | %d ops (%d ok, %d fail, %d info), longest gap without a write %v",
		s.Ops, s.Ok, s.Fail, s.Info, time.Duration(s.LongestWriteGap.Nanos))
	return b.String()
}

// Checker names, as they appear in Result.Name.
const (
	// NameHistory is the only check of a run whose history is malformed
	// (history.History.Validate fails); it reports StatusUnknown.
	NameHistory       = "history"
	NameLinearizable  = "linearizable"
	NameLocks         = "locks"
	NameCounterBounds = "counter-bounds"
	NameLostWrites    = "lost-writes"
	NameConvergence   = "convergence"
	NameExactlyOnce   = "exactly-once"
)

// Run applies every checker to in and combines their results. It returns
// when all have finished, or soon after ctx ends (unfinished checks then
// report StatusUnknown). A malformed history is not judged: the verdict is
// StatusUnknown with a single NameHistory check saying why.
func Run(ctx context.Context, in Input, opts Options) *Verdict {
	opts = opts.withDefaults()
	start := time.Now()
	h := in.History
	if h == nil {
		h = &history.History{}
	}
	v := &Verdict{Summary: Summarize(h)}
	if err := h.Validate(); err != nil {
		v.Status = StatusUnknown
		v.Checks = []Result{{Name: NameHistory, Status: StatusUnknown, Detail: "malformed history: " + err.Error()}}
		v.Elapsed = time.Since(start)
		opts.Logger.Warn("history rejected", "err", err)
		return v
	}
	merged, _ := MergeRetries(h) // ExactlyOnce reports the disagreements
	v.Checks = append(v.Checks,
		Linearizable(ctx, merged, in.FinalReads, in.Initial, opts),
		Locks(ctx, merged, opts),
		CounterBounds(ctx, merged, in.Initial, opts),
		LostWrites(ctx, merged, in.FinalReads, in.Initial, opts),
		Convergence(ctx, in.NodeStates, in.FinalReads, opts),
		ExactlyOnce(ctx, h, opts),
	)
	v.Status = StatusSkipped
	for _, c := range v.Checks {
		v.Status = Combine(v.Status, c.Status)
		lvl := slog.LevelInfo
		if c.Status == StatusInvalid || c.Status == StatusUnknown {
			lvl = slog.LevelWarn
		}
		opts.Logger.Log(ctx, lvl, "check finished", "check", c.Name, "status", c.Status,
			"violations", c.ViolationCount, "elapsed", c.Elapsed, "detail", c.Detail)
	}
	v.Elapsed = time.Since(start)
	return v
}

// cancelled returns a StatusUnknown result for a checker that did not run
// because ctx ended.
func cancelled(ctx context.Context, name string, start time.Time) Result {
	return Result{Name: name, Status: StatusUnknown, Detail: "not checked: " + context.Cause(ctx).Error(), Elapsed: time.Since(start)}
}
