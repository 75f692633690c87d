package check

import (
	"context"
	"fmt"
	"time"

	"github.com/abacuskit/abacus/jepsen/internal/history"
)

type retryGroup struct {
	key  string
	kind history.Kind
	name string
}

// MergeRetries returns a copy of h in which the attempts of each idempotent
// request (ops with the same Input.IdempotencyKey, Kind and Key) are one op:
// it keeps the first attempt's Index, Process and Call and takes the last
// attempt's Return and Node; it is Ok with the output of the last Ok attempt
// if any attempt was Ok, else Info if any attempt was Info, else Fail. Since
// the cluster applies an idempotent request at most once, the merged op
// stands for that one application, somewhere between the first call and the
// last return.
//
// It also checks what exactly-once promises: every Ok attempt of one
// request returned the same output. Each disagreement is a Violation.
//
// The merged history keeps the original op indexes, so its Index fields are
// no longer positions; checkers do not rely on that.
func MergeRetries(h *history.History) (*history.History, []Violation) {
	groups := map[retryGroup]int{} // -> position in out.Ops
	firstOk := map[retryGroup]*history.Op{}
	var violations []Violation
	out := &history.History{Faults: h.Faults, Ops: make([]history.Op, 0, len(h.Ops))}
	for i := range h.Ops {
		op := &h.Ops[i]
		if op.In.IdempotencyKey == "" {
			out.Ops = append(out.Ops, *op)
			continue
		}
		g := retryGroup{op.In.IdempotencyKey, op.Kind, op.Key}
		if op.Outcome == history.Ok {
			if prev := firstOk[g]; prev == nil {
				firstOk[g] = op
			} else if prev.Out != op.Out {
				violations = append(violations, Violation{Key: op.Key, Ops: []int{prev.Index, op.Index},
					Message: fmt.Sprintf("retries with idempotency key %q answered differently: #%d got %+v, #%d got %+v",
						g.key, prev.Index, prev.Out, op.Index, op.Out)})
			}
		}
		pos, seen := groups[g]
		if !seen {
			groups[g] = len(out.Ops)
			out.Ops = append(out.Ops, *op)
			continue
		}
		m := &out.Ops[pos]
		if op.Return > m.Return {
			m.Return, m.Node = op.Return, op.Node
		}
		switch {
		case op.Outcome == history.Ok:
			m.Outcome, m.Out, m.Reason = history.Ok, op.Out, ""
		case op.Outcome == history.Info && m.Outcome == history.Fail:
			m.Outcome, m.Reason = history.Info, op.Reason
		}
	}
	return out, violations
}

// ExactlyOnce reports the disagreements MergeRetries finds between retries
// of one idempotent request. It is skipped when no op carries an
// idempotency key.
func ExactlyOnce(ctx context.Context, h *history.History, opts Options) Result {
	opts = opts.withDefaults()
	start := time.Now()
	res := Result{Name: NameExactlyOnce, Status: StatusSkipped}
	if ctx.Err() != nil {
		return cancelled(ctx, NameExactlyOnce, start)
	}
	keys := map[string]bool{}
	attempts := 0
	for i := range h.Ops {
		if k := h.Ops[i].In.IdempotencyKey; k != "" {
			keys[k] = true
			attempts++
		}
	}
	if len(keys) > 0 {
		res.Status = StatusValid
	}
	_, violations := MergeRetries(h)
	for _, v := range violations {
		res.Violate(opts.MaxViolations, v)
	}
	res.Detail = fmt.Sprintf("%d idempotent requests in %d attempts, %d disagreements", len(keys), attempts, res.ViolationCount)
	res.Elapsed = time.Since(start)
	return res
}
