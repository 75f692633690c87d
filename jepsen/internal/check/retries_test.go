package check

import (
	"context"
	"testing"

	"github.com/abacuskit/abacus/jepsen/internal/history"
)

func keyed(op history.Op, key string) history.Op {
	op.In.IdempotencyKey = key
	return op
}

func TestMergeRetries(t *testing.T) {
	h := hist(
		keyed(info(add(0, "c", 5, 0, 10, 0)), "k1"),
		keyed(add(0, "c", 5, 20, 30, 5), "k1"), // the retry returns the first result
		keyed(fail(set(1, "c", 9, 0, 5, 0)), "k2"),
		keyed(info(set(1, "c", 9, 6, 8, 0)), "k2"),
		keyed(fail(add(2, "d", 1, 0, 5, 0)), "k3"),
		keyed(fail(add(2, "d", 1, 6, 8, 0)), "k3"),
		keyed(add(3, "e", 1, 0, 5, 1), "k1"), // same key, other counter: another request
		get(1, "c", 40, 41, 5),
	)
	m, violations := MergeRetries(h)
	if len(violations) != 0 {
		t.Fatalf("violations %+v", violations)
	}
	want := []struct {
		index        int
		outcome      history.Outcome
		call, ret, v int64
	}{
		{0, history.Ok, 0, 30, 5},
		{2, history.Info, 0, 8, 0},
		{4, history.Fail, 0, 8, 0},
		{6, history.Ok, 0, 5, 1},
		{7, history.Ok, 40, 41, 5},
	}
	if len(m.Ops) != len(want) {
		t.Fatalf("%d merged ops, want %d: %+v", len(m.Ops), len(want), m.Ops)
	}
	for i, w := range want {
		op := m.Ops[i]
		if op.Index != w.index || op.Outcome != w.outcome || op.Call != w.call || op.Return != w.ret || op.Out.Value != w.v {
			t.Errorf("merged op %d = %s, want %+v", i, op.String(), w)
		}
	}
	if h.Ops[0].Outcome != history.Info || len(h.Ops) != 8 {
		t.Fatal("MergeRetries changed its input")
	}
}

func TestRetriesJudgedAsOneRequest(t *testing.T) {
	// The first attempt timed out but was applied; another client's add
	// followed; the retry returned the first attempt's result.
	first, retry := info(add(0, "c", 5, 0, 10, 0)), add(0, "c", 5, 20, 30, 5)
	other, read := add(1, "c", 1, 12, 18, 6), get(2, "c", 40, 41, 6)
	v := Run(context.Background(), Input{History: hist(keyed(first, "k"), other, keyed(retry, "k"), read)}, Options{})
	if v.Status != StatusValid || v.Check(NameExactlyOnce).Status != StatusValid {
		t.Fatalf("idempotent retry: %s", v.String())
	}
	// Without keys the retry is a second add, which its reply contradicts.
	v = Run(context.Background(), Input{History: hist(first, other, retry, read)}, Options{})
	if v.Check(NameLinearizable).Status != StatusInvalid || v.Check(NameExactlyOnce).Status != StatusSkipped {
		t.Fatalf("unkeyed: %s", v.String())
	}
}

func TestExactlyOnceDisagreement(t *testing.T) {
	h := hist(
		keyed(add(0, "c", 5, 0, 10, 5), "k"),
		keyed(add(0, "c", 5, 20, 30, 10), "k"), // applied again
	)
	res := ExactlyOnce(context.Background(), h, Options{})
	if res.Status != StatusInvalid || res.ViolationCount != 1 {
		t.Fatalf("%+v", res)
	}
	if v := Run(context.Background(), Input{History: h}, Options{}); v.Status != StatusInvalid {
		t.Fatalf("verdict %s", v.String())
	}
}
