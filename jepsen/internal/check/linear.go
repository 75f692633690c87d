package check

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/abacuskit/abacus/jepsen/internal/history"
	"github.com/anishathalye/porcupine"
)

// Partition is the porcupine check of one counter or one lock.
type Partition struct {
	// Model is "counter" or "lock"; Key is the counter or lock name.
	Model string `json:"model"`
	Key   string `json:"key"`
	// Status is StatusValid (porcupine: Ok), StatusInvalid (Illegal),
	// StatusUnknown (timed out or cancelled) or StatusSkipped (not modelled,
	// see Detail).
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
	// Ops is the number of operations checked.
	Ops     int           `json:"ops"`
	Elapsed time.Duration `json:"elapsed_ns"`

	// Linearized is, for an invalid or unknown partition, the length of the
	// longest linearizable prefix porcupine found; Stuck lists the indexes
	// (-1 for final reads) of the earliest-called ops that appear in no
	// linearizable prefix, where to start looking (at most 5).
	Linearized int   `json:"linearized,omitempty"`
	Stuck      []int `json:"stuck,omitempty"`

	model    porcupine.Model
	info     porcupine.LinearizationInfo
	checked  bool
	exploded atomic.Bool // the model's state set outgrew Options.MaxStates
}

// Visualize writes porcupine's HTML visualisation of the partition's
// history and (partial) linearizations to w, with the fault windows shown as
// annotations on a "faults" track. It fails for a skipped partition.
func (p *Partition) Visualize(w io.Writer, faults []history.FaultWindow) error {
	if !p.checked {
		return fmt.Errorf("check: partition %s %q was not checked", p.Model, p.Key)
	}
	info := p.info // AddAnnotations appends; keep p.info unannotated
	info.AddAnnotations(FaultAnnotations(faults))
	return porcupine.Visualize(p.model, info, w)
}

// FaultAnnotations converts fault windows to porcupine annotations on a
// "faults" track.
func FaultAnnotations(faults []history.FaultWindow) []porcupine.Annotation {
	anns := make([]porcupine.Annotation, 0, len(faults))
	for _, f := range faults {
		details := f.Description
		if len(f.Nodes) > 0 {
			details += fmt.Sprintf(" (nodes %v)", f.Nodes)
		}
		anns = append(anns, porcupine.Annotation{
			Tag:             "faults",
			Start:           f.Start,
			End:             f.End,
			Description:     f.Description,
			Details:         details,
			BackgroundColor: "#f7c6c6",
		})
	}
	return anns
}

// CounterOperations turns the counter ops of h into porcupine operations for
// CounterModel, one partition per counter name, and appends finals as reads
// after everything else. Fail ops are dropped; Info writes return at
// +infinity with unchecked output; Info reads and stale reads are dropped.
// It also returns the names of counters it left out because they use
// instance-aware operations, which the model does not cover.
func CounterOperations(h *history.History, finals []FinalRead) (ops []porcupine.Operation, skipped []string) {
	instance := map[string]bool{}
	for i := range h.Ops {
		if op := &h.Ops[i]; op.Kind.IsCounter() && op.In.Instance != "" {
			instance[op.Key] = true
		}
	}
	for i := range h.Ops {
		op := &h.Ops[i]
		if !op.Kind.IsCounter() || instance[op.Key] || op.Outcome == history.Fail {
			continue
		}
		if op.Kind == history.Get && (op.Outcome == history.Info || op.In.Stale) {
			continue
		}
		ops = append(ops, operation(op, op.Key))
	}
	end := h.End()
	for i, f := range finals {
		if instance[f.Key] {
			continue
		}
		op := &history.Op{Index: -1, Process: i, Node: f.Node, Kind: history.Get, Key: f.Key,
			Call: end + 1, Return: end + 2, Outcome: history.Ok,
			Out: history.Output{Value: f.Value, Exists: f.Exists}}
		ops = append(ops, operation(op, f.Key))
	}
	for k := range instance {
		skipped = append(skipped, k)
	}
	slices.Sort(skipped)
	sortOps(ops)
	return ops, skipped
}

// LockOperations turns the lock ops of h, and its fenced counter writes, into
// porcupine operations for LockModel, one partition per lock name. Fail ops
// are dropped; Info acquires and releases return at +infinity with
// unchecked output; Info keep-alives, lock reads and fenced writes, and
// fenced writes refused for reasons that do not show whether the fence held,
// are dropped (they leave the lock as it was).
func LockOperations(h *history.History) []porcupine.Operation {
	var ops []porcupine.Operation
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.Outcome == history.Fail {
			continue
		}
		switch {
		case op.Kind.IsLock():
			if op.Outcome == history.Info && op.Kind != history.Acquire && op.Kind != history.Release {
				continue
			}
			ops = append(ops, operation(op, op.Key))
		case op.Fenced():
			if op.Outcome == history.Info {
				continue
			}
			if _, known := fencePassed(op.Out.Error); !known {
				continue
			}
			ops = append(ops, operation(op, op.In.Fence.Lock))
		}
	}
	sortOps(ops)
	return ops
}

func operation(op *history.Op, partition string) porcupine.Operation {
	ev := &Event{Op: op, Partition: partition}
	o := porcupine.Operation{ClientId: op.Process, Input: ev, Call: op.Call, Return: op.Return, Metadata: op}
	if op.Outcome == history.Info {
		ev.Unknown, o.Return = true, unknownReturn
	} else {
		o.Output = &op.Out
	}
	return o
}

// Linearizable checks every counter against CounterModel and every lock
// (with the fenced writes naming it) against LockModel. The history is split
// by name with the models' Partition function, and each partition gets its
// own porcupine.CheckOperationsVerbose call, bounded by opts.Timeout, so that
// each has its own status, timing and visualisation; up to opts.Workers run
// at once. finals are appended to the counters' histories as reads after
// everything else.
//
// The result is StatusInvalid if any partition is not linearizable, else
// StatusUnknown if any timed out (or ctx ended, or a model outgrew
// opts.MaxStates), else StatusValid; StatusSkipped if there was nothing to
// check.
func Linearizable(ctx context.Context, h *history.History, finals []FinalRead, initial map[string]int64, opts Options) Result {
	opts = opts.withDefaults()
	start := time.Now()
	res := Result{Name: NameLinearizable, Status: StatusSkipped}

	type job struct {
		p   *Partition
		ops []porcupine.Operation
	}
	var jobs []job
	cops, skipped := CounterOperations(h, finals)
	for _, part := range partitionByKey(cops) {
		p := &Partition{Model: "counter", Key: part[0].Input.(*Event).Partition, Ops: len(part)}
		p.model = counterModel(initial, opts.MaxStates, &p.exploded)
		jobs = append(jobs, job{p, part})
	}
	for _, part := range partitionByKey(LockOperations(h)) {
		p := &Partition{Model: "lock", Key: part[0].Input.(*Event).Partition, Ops: len(part)}
		p.model = lockModel(!opts.StrictLocks, opts.MaxStates, &p.exploded)
		jobs = append(jobs, job{p, part})
	}
	for _, k := range skipped {
		res.Partitions = append(res.Partitions, &Partition{Model: "counter", Key: k, Status: StatusSkipped,
			Detail: "instance-aware counter: not modelled"})
	}

	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			checkPartition(ctx, j.p, j.ops, opts)
			opts.Logger.Debug("partition checked", "model", j.p.Model, "key", j.p.Key,
				"ops", j.p.Ops, "status", j.p.Status, "elapsed", j.p.Elapsed)
		}()
	}
	wg.Wait()

	var nInvalid, nUnknown int
	for _, j := range jobs {
		p := j.p
		res.Partitions = append(res.Partitions, p)
		res.Status = Combine(res.Status, p.Status)
		switch p.Status {
		case StatusInvalid:
			nInvalid++
			res.Violate(opts.MaxViolations, Violation{Key: p.Key, Ops: p.Stuck,
				Message: fmt.Sprintf("%s %q is not linearizable: %s", p.Model, p.Key, p.Detail)})
		case StatusUnknown:
			nUnknown++
		}
	}
	slices.SortStableFunc(res.Partitions, func(a, b *Partition) int {
		// counters before locks, then by name
		return cmp.Or(strings.Compare(a.Model, b.Model), strings.Compare(a.Key, b.Key))
	})
	res.Detail = fmt.Sprintf("%d partitions: %d not linearizable, %d undecided (timeout %v), %d not modelled",
		len(jobs), nInvalid, nUnknown, opts.Timeout, len(skipped))
	res.Elapsed = time.Since(start)
	return res
}

// checkPartition runs porcupine on one partition and fills in p.
func checkPartition(ctx context.Context, p *Partition, ops []porcupine.Operation, opts Options) {
	start := time.Now()
	defer func() { p.Elapsed = time.Since(start) }()
	if err := ctx.Err(); err != nil {
		p.Status, p.Detail = StatusUnknown, "not checked: "+context.Cause(ctx).Error()
		return
	}
	timeout := opts.Timeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = min(timeout, max(time.Until(dl), time.Nanosecond))
	}
	// Make the search stop promptly if ctx ends: every step fails, which
	// ends the search; the result is then reported as unknown below.
	model := p.model
	step := model.Step
	model.Step = nil
	model.StepContext = func(pctx context.Context, state, input, output any) (bool, any) {
		if ctx.Err() != nil {
			return false, state
		}
		return step(state, input, output)
	}
	result, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	p.info, p.checked = info, true
	switch {
	case ctx.Err() != nil:
		p.Status, p.Detail = StatusUnknown, "cancelled: "+context.Cause(ctx).Error()
	case result == porcupine.Ok:
		p.Status = StatusValid
	case result == porcupine.Illegal && p.exploded.Load():
		p.Status = StatusUnknown
		p.Detail = fmt.Sprintf("the model's set of possible states outgrew %d", opts.MaxStates)
		p.explain(ops)
	case result == porcupine.Illegal:
		p.Status = StatusInvalid
		p.Detail = "no linearization exists"
		p.explain(ops)
	default:
		p.Status, p.Detail = StatusUnknown, fmt.Sprintf("search timed out after %v", timeout)
		p.explain(ops)
	}
}

// explain fills in Linearized and Stuck from porcupine's partial
// linearizations and appends them to Detail.
func (p *Partition) explain(ops []porcupine.Operation) {
	const maxStuck = 5
	partials := p.info.PartialLinearizations()
	seen := make([]bool, len(ops))
	for _, part := range partials {
		for _, lin := range part {
			p.Linearized = max(p.Linearized, len(lin))
			for _, id := range lin {
				if id >= 0 && id < len(ops) {
					seen[id] = true
				}
			}
		}
	}
	var descs []string
	for id, o := range ops { // ops are sorted by call time
		if seen[id] || len(p.Stuck) == maxStuck {
			continue
		}
		ev := o.Input.(*Event)
		p.Stuck = append(p.Stuck, ev.Op.Index)
		descs = append(descs, fmt.Sprintf("#%d %s", ev.Op.Index, describeOperation(o.Input, o.Output)))
	}
	p.Detail += fmt.Sprintf("; longest linearizable prefix %d of %d ops", p.Linearized, len(ops))
	if len(descs) > 0 {
		p.Detail += "; never linearized: " + strings.Join(descs, ", ")
	}
}
