package history_test

import (
	"fmt"
	"os"

	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// A client goroutine records each request around the HTTP call it makes.
func ExampleRecorder() {
	rec := history.NewRecorder()

	p := rec.Invoke(0, "n1", history.Add, "hits", history.Input{Delta: 5, Max: history.Int64(3)})
	p.Ok(history.Output{Error: history.CodeOutOfRange}) // 409: a definite refusal is ok

	fault := rec.OpenFault("partition {n1} | {n2 n3}", "n1")
	p = rec.Invoke(1, "n1", history.Set, "hits", history.Input{Value: 7})
	p.Info("504 indeterminate") // may or may not have been applied
	p = rec.Invoke(2, "n2", history.Get, "hits", history.Input{})
	p.Fail("503 unavailable") // definitely not applied
	rec.CloseFault(fault)

	h := rec.History()
	for _, op := range h.Ops {
		fmt.Printf("%d %s %s error=%q reason=%q\n", op.Index, op.Kind, op.Outcome, op.Out.Error, op.Reason)
	}
	fmt.Println(len(h.Faults), h.Faults[0].Description)

	// history.jsonl: one JSON object per line.
	enc := history.NewEncoder(os.Stdout)
	_ = enc.WriteOp(&history.Op{Index: 0, Process: 3, Node: "n2", Kind: history.Acquire, Key: "L", Call: 100, Return: 250,
		Outcome: history.Ok, In: history.Input{Holder: "w3", TTLMillis: 2000}, Out: history.Output{Token: 18}})
	_ = enc.Flush()
	// Output:
	// 0 add ok error="out_of_range" reason=""
	// 1 set info error="" reason="504 indeterminate"
	// 2 get fail error="" reason="503 unavailable"
	// 1 partition {n1} | {n2 n3}
	// {"op":{"index":0,"process":3,"node":"n2","kind":"acquire","key":"L","call":100,"return":250,"outcome":"ok","in":{"holder":"w3","ttl_ms":2000},"out":{"token":18}}}
}
