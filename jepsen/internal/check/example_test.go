package check_test

import (
	"context"
	"fmt"
	"time"

	"github.com/abacuskit/abacus/jepsen/internal/check"
	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// A client's add timed out (504) but took effect: a later read sees it.
// The checkers accept this, since an unknown outcome may have been applied.
func Example() {
	h := &history.History{Ops: []history.Op{
		{Index: 0, Process: 0, Node: "n1", Kind: history.Add, Key: "hits", Call: 0, Return: 10,
			Outcome: history.Ok, In: history.Input{Delta: 1}, Out: history.Output{Value: 1}},
		{Index: 1, Process: 1, Node: "n2", Kind: history.Add, Key: "hits", Call: 5, Return: 900,
			Outcome: history.Info, Reason: "504 indeterminate", In: history.Input{Delta: 1}},
		{Index: 2, Process: 2, Node: "n3", Kind: history.Get, Key: "hits", Call: 20, Return: 30,
			Outcome: history.Ok, Out: history.Output{Value: 2, Exists: true}},
	}}
	finals := []check.FinalRead{
		{Node: "n1", Key: "hits", Value: 2, Exists: true},
		{Node: "n2", Key: "hits", Value: 2, Exists: true},
	}
	v := check.Run(context.Background(), check.Input{History: h, FinalReads: finals}, check.Options{Timeout: 10 * time.Second})
	fmt.Println(v.String())

	// Had the final reads lost the acknowledged add, the run would be invalid.
	finals[1].Value = 0
	v = check.Run(context.Background(), check.Input{History: h, FinalReads: finals}, check.Options{Timeout: 10 * time.Second})
	fmt.Println(v.Status, v.Check(check.NameLostWrites).Violations[0].Message)
	// Output:
	// valid: linearizable=valid locks=skipped counter-bounds=valid lost-writes=valid convergence=valid exactly-once=skipped | 3 ops (2 ok, 0 fail, 1 info), longest gap without a write 10ns
	// invalid final read on n2 saw 0; acknowledged adds give 1 and unknown ones allow [1, 2]
}
