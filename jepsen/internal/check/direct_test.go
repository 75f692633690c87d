package check

import (
	"context"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/abacuskit/abacus/jepsen/internal/history"
)

func TestLocksDirect(t *testing.T) {
	tests := []struct {
		name    string
		h       *history.History
		want    Status
		message string // a substring of the first violation
	}{
		{"no locks", hist(add(0, "c", 1, 0, 1, 1)), StatusSkipped, ""},
		{"increasing tokens and fenced writes", hist(
			acquire(0, "L", "a", 0, 1, 1),
			fenced(add(0, "c", 1, 2, 3, 1), "L", 1, false),
			acquire(1, "L", "b", 4, 5, 3),
			fenced(add(1, "c", 1, 6, 7, 2), "L", 3, false),
			fenced(add(0, "c", 1, 8, 9, 0), "L", 1, true),
		), StatusValid, ""},
		{"concurrent acquisitions may return tokens in any order", hist(
			acquire(0, "L", "a", 0, 10, 7),
			acquire(1, "L", "b", 5, 8, 6),
		), StatusValid, ""},
		{"same holder acquiring again keeps its token", hist(
			acquire(0, "L", "a", 0, 1, 4),
			acquire(0, "L", "a", 2, 3, 4),
		), StatusValid, ""},
		{"writes overlapping in time may be accepted out of token order", hist(
			acquire(0, "L", "a", 0, 1, 1),
			acquire(1, "L", "b", 2, 3, 2),
			fenced(add(1, "c", 1, 4, 10, 1), "L", 2, false),
			fenced(add(0, "c", 1, 5, 6, 0), "L", 1, true),
		), StatusValid, ""},
		{"lock on another name is independent", hist(
			acquire(0, "L", "a", 0, 1, 5),
			acquire(1, "M", "b", 2, 3, 1),
		), StatusValid, ""},

		{"non-increasing tokens", hist(
			acquire(0, "L", "a", 0, 1, 5),
			release(0, "L", 5, 2, 3, ""),
			acquire(1, "L", "b", 4, 5, 4),
		), StatusInvalid, "token did not increase"},
		{"equal tokens in sequence", hist(
			acquire(0, "L", "a", 0, 1, 5),
			acquire(1, "L", "b", 4, 5, 5),
		), StatusInvalid, "token did not increase"},
		{"one token granted to two holders concurrently", hist(
			acquire(0, "L", "a", 0, 10, 5),
			acquire(1, "L", "b", 0, 10, 5),
		), StatusInvalid, "granted twice"},
		{"accepted stale fenced write", hist(
			acquire(0, "L", "a", 0, 1, 1),
			acquire(1, "L", "b", 2, 3, 2),
			fenced(add(0, "c", 1, 4, 5, 1), "L", 1, false),
		), StatusInvalid, "stale token accepted"},
		{"stale fence refused only by overflow still passed the fence", hist(
			acquire(0, "L", "a", 0, 1, 1),
			acquire(1, "L", "b", 2, 3, 2),
			fenced(addRefused(0, "c", 1, 4, 5, history.CodeOverflow), "L", 1, false),
		), StatusInvalid, "stale token accepted"},
		{"stale release accepted", hist(
			acquire(0, "L", "a", 0, 1, 1),
			acquire(1, "L", "b", 2, 3, 2),
			release(0, "L", 1, 4, 5, ""),
		), StatusInvalid, "stale token accepted"},
		{"accepted fenced writes out of token order", hist(
			fenced(set(1, "c", 1, 0, 1, 0), "L", 9, false),
			fenced(set(0, "c", 2, 2, 3, 1), "L", 8, false),
		), StatusInvalid, "out of token order"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Locks(context.Background(), tt.h, Options{})
			if res.Status != tt.want {
				t.Fatalf("status %s, want %s: %+v", res.Status, tt.want, res.Violations)
			}
			if tt.message != "" && !strings.Contains(res.Violations[0].Message, tt.message) {
				t.Fatalf("violation %q lacks %q", res.Violations[0].Message, tt.message)
			}
		})
	}
}

func TestCounterBounds(t *testing.T) {
	tests := []struct {
		name    string
		h       *history.History
		initial map[string]int64
		want    Status
	}{
		{"no reads", hist(add(0, "c", 1, 0, 1, 1)), nil, StatusSkipped},
		{"not add-only", hist(set(0, "c", 1, 0, 1, 0), get(1, "c", 2, 3, 1)), nil, StatusSkipped},
		{"failed set does not disqualify", hist(
			fail(set(0, "c", 100, 0, 1, 0)),
			add(0, "c", 1, 2, 3, 1),
			get(1, "c", 4, 5, 1),
		), nil, StatusValid},
		{"reads within bounds", hist(
			add(0, "c", 5, 0, 1, 5),
			add(1, "c", -2, 2, 10, 3),
			get(2, "c", 3, 4, 5), // the -2 may not have happened yet
			get(3, "c", 5, 6, 3), // or it may
			info(add(0, "c", 100, 7, 8, 0)),
			get(2, "c", 9, 10, 103), // the unknown add took effect
			get(3, "c", 11, 12, 3),  // linearizability would object; bounds cannot tell
		), nil, StatusValid},
		{"absent before any add", hist(
			getAbsent(0, "c", 0, 1),
			add(0, "c", 1, 2, 3, 1),
		), nil, StatusValid},
		{"refused and failed adds count as not applied", hist(
			add(0, "c", 1, 0, 1, 1),
			bounded(addRefused(0, "c", 10, 2, 3, history.CodeOutOfRange), nil, history.Int64(5)),
			fail(add(1, "c", 50, 4, 5, 0)),
			fenced(add(1, "c", 7, 6, 7, 0), "L", 3, true),
			get(2, "c", 8, 9, 1),
		), nil, StatusValid},
		{"initial value", hist(get(0, "c", 0, 1, 100)), map[string]int64{"c": 100}, StatusValid},
		{"instance-aware counter is skipped", hist(
			func() history.Op { op := add(0, "c", 1, 0, 1, 1); op.In.Instance = "i1"; return op }(),
			get(1, "c", 2, 3, 77),
		), nil, StatusSkipped},
		{"bounds near the int64 limits", hist(
			add(0, "c", math.MaxInt64, 0, 1, math.MaxInt64),
			info(add(1, "c", math.MaxInt64, 2, 3, 0)),
			info(add(1, "c", math.MaxInt64, 4, 5, 0)),
			get(2, "c", 6, 7, math.MaxInt64),
		), nil, StatusValid},

		{"read above the upper bound (add applied twice)", hist(
			add(0, "c", 3, 0, 1, 3),
			get(1, "c", 2, 3, 6),
		), nil, StatusInvalid},
		{"read below the lower bound (stale read)", hist(
			add(0, "c", 3, 0, 1, 3),
			add(0, "c", 4, 2, 3, 7),
			get(1, "c", 4, 5, 3),
		), nil, StatusInvalid},
		{"negative delta lost", hist(
			add(0, "c", 10, 0, 1, 10),
			add(0, "c", -4, 2, 3, 6),
			get(1, "c", 4, 5, 10),
		), nil, StatusInvalid},
		{"absent after an acknowledged add", hist(
			add(0, "c", 0, 0, 1, 0),
			getAbsent(1, "c", 2, 3),
		), nil, StatusInvalid},
		{"read below the initial value", hist(get(0, "c", 0, 1, 99)), map[string]int64{"c": 100}, StatusInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := CounterBounds(context.Background(), tt.h, tt.initial, Options{})
			if res.Status != tt.want {
				t.Fatalf("status %s, want %s: %s %+v", res.Status, tt.want, res.Detail, res.Violations)
			}
		})
	}
}

func TestLostWrites(t *testing.T) {
	h := hist(
		add(0, "c", 5, 0, 1, 5),
		add(1, "c", -1, 2, 3, 4),
		info(add(2, "c", 10, 4, 5, 0)),
		info(add(3, "c", -3, 4, 5, 0)),
		fail(add(0, "c", 1000, 6, 7, 0)),
		add(0, "d", 1, 0, 1, 1),
	)
	tests := []struct {
		name   string
		finals []FinalRead
		want   Status
	}{
		{"no final reads", nil, StatusSkipped},
		{"all acknowledged adds present", []FinalRead{{"n1", "c", 4, true}, {"n2", "c", 4, true}}, StatusValid},
		{"unknown adds took effect", []FinalRead{{"n1", "c", 14, true}, {"n2", "c", 11, true}, {"n3", "c", 1, true}}, StatusValid},
		{"acknowledged add lost", []FinalRead{{"n1", "c", 4, true}, {"n2", "c", -1, true}}, StatusInvalid},
		{"more than possible", []FinalRead{{"n1", "c", 15, true}}, StatusInvalid},
		{"counter gone", []FinalRead{{"n1", "d", 0, false}}, StatusInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := LostWrites(context.Background(), h, tt.finals, nil, Options{})
			if res.Status != tt.want {
				t.Fatalf("status %s, want %s: %s %+v", res.Status, tt.want, res.Detail, res.Violations)
			}
		})
	}
}

func TestConvergence(t *testing.T) {
	tests := []struct {
		name   string
		states []NodeState
		finals []FinalRead
		want   Status
	}{
		{"nothing", nil, nil, StatusSkipped},
		{"equal hashes", []NodeState{{"n1", "ab"}, {"n2", "ab"}, {"n3", "ab"}}, nil, StatusValid},
		{"one node", []NodeState{{"n1", "ab"}}, nil, StatusValid},
		{"diverged", []NodeState{{"n1", "ab"}, {"n2", "ab"}, {"n3", "cd"}}, nil, StatusInvalid},
		{"final reads agree", nil, []FinalRead{{"n1", "c", 3, true}, {"n2", "c", 3, true}, {"n1", "d", 0, false}}, StatusValid},
		{"final reads differ", nil, []FinalRead{{"n1", "c", 3, true}, {"n2", "c", 4, true}}, StatusInvalid},
		{"final existence differs", nil, []FinalRead{{"n1", "c", 0, true}, {"n2", "c", 0, false}}, StatusInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Convergence(context.Background(), tt.states, tt.finals, Options{})
			if res.Status != tt.want {
				t.Fatalf("status %s, want %s: %+v", res.Status, tt.want, res.Violations)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	h := hist(
		add(0, "c", 1, 0, 100, 1),
		fail(add(1, "c", 1, 50, 60, 0)),
		info(set(2, "c", 1, 70, 80, 0)),
		addRefused(0, "c", 1, 110, 120, history.CodeOverflow),
		get(1, "c", 130, 140, 1),
		acquire(2, "L", "a", 150, 400, 1),
		add(0, "c", 1, 900, 1000, 2),
	)
	s := Summarize(h)
	if s.Ops != 7 || s.Ok != 5 || s.Fail != 1 || s.Info != 1 {
		t.Fatalf("counts %+v", s)
	}
	if c := s.ByKind[history.Add]; c != (Counts{Ok: 3, Fail: 1, Refused: 1}) {
		t.Fatalf("add counts %+v", c)
	}
	if s.LongestWriteGap != (Gap{Start: 400, End: 1000, Nanos: 600}) {
		t.Fatalf("longest gap %+v", s.LongestWriteGap)
	}
	if s.Duration != 1000 {
		t.Fatalf("duration %d", s.Duration)
	}
	if g := Summarize(hist(get(0, "c", 10, 20, 0))).LongestWriteGap; g != (Gap{0, 20, 20}) {
		t.Fatalf("no writes: gap %+v", g)
	}
	// Writes answered after the last success make no gap; writes sent and
	// never answered definitely do.
	tail := hist(add(0, "c", 1, 0, 5, 1), info(add(1, "c", 1, 20, 900, 0)))
	if g := Summarize(tail).LongestWriteGap; g != (Gap{5, 20, 15}) {
		t.Fatalf("write in flight at the end: gap %+v", g)
	}
	refused := hist(add(0, "c", 1, 0, 5, 1), addRefused(1, "c", 1, 500, 510, history.CodeOverflow))
	if g := Summarize(refused).LongestWriteGap; g != (Gap{0, 5, 5}) {
		t.Fatalf("a refusal at the end: gap %+v", g)
	}
	stuck := hist(add(0, "c", 1, 0, 5, 1), info(add(1, "c", 1, 20, 900, 0)), fail(add(1, "c", 1, 900, 1000, 0)))
	if g := Summarize(stuck).LongestWriteGap; g != (Gap{5, 900, 895}) {
		t.Fatalf("writes failing to the end: gap %+v", g)
	}
}

func TestRun(t *testing.T) {
	good := hist(
		add(0, "c", 2, 0, 10, 2),
		add(1, "c", 3, 5, 15, 5),
		get(2, "c", 20, 25, 5),
		acquire(0, "L", "a", 30, 35, 1),
		fenced(set(0, "d", 9, 40, 45, 0), "L", 1, false),
		release(0, "L", 1, 50, 55, ""),
	)
	finals := []FinalRead{{"n1", "c", 5, true}, {"n2", "c", 5, true}, {"n1", "d", 9, true}}
	states := []NodeState{{"n1", "h"}, {"n2", "h"}}
	v := Run(context.Background(), Input{History: good, FinalReads: finals, NodeStates: states}, Options{})
	if v.Status != StatusValid {
		t.Fatalf("good run: %s", v.String())
	}
	for _, name := range []string{NameLinearizable, NameLocks, NameCounterBounds, NameLostWrites, NameConvergence} {
		if c := v.Check(name); c == nil || c.Status != StatusValid {
			t.Fatalf("check %s: %+v", name, c)
		}
	}
	if !strings.HasPrefix(v.String(), "valid: linearizable=valid") {
		t.Fatalf("verdict line %q", v.String())
	}
	if _, err := json.Marshal(v); err != nil {
		t.Fatal(err)
	}

	bad := Run(context.Background(), Input{History: good, FinalReads: []FinalRead{{"n1", "c", 2, true}}, NodeStates: states}, Options{})
	if bad.Status != StatusInvalid || !strings.HasPrefix(bad.String(), "INVALID:") {
		t.Fatalf("lost write run: %s", bad.String())
	}
	if c := bad.Check(NameLostWrites); c.Status != StatusInvalid {
		t.Fatalf("lost-writes %+v", c)
	}

	if v := Run(context.Background(), Input{}, Options{}); v.Status != StatusSkipped || v.Check("nope") != nil {
		t.Fatalf("empty run: %s", v.String())
	}

	malformed := hist(add(0, "c", 1, 10, 5, 1)) // returns before its call
	if v := Run(context.Background(), Input{History: malformed}, Options{}); v.Status != StatusUnknown || v.Check(NameHistory) == nil {
		t.Fatalf("malformed history: %s", v.String())
	}
}

func TestCombine(t *testing.T) {
	order := []Status{StatusSkipped, StatusValid, StatusUnknown, StatusInvalid}
	for i, a := range order {
		for j, b := range order {
			want := order[max(i, j)]
			if got := Combine(a, b); got != want {
				t.Errorf("Combine(%s, %s) = %s, want %s", a, b, got, want)
			}
		}
	}
}

func TestInt128(t *testing.T) {
	big := i128(math.MaxInt64).add(i128(math.MaxInt64))
	if big.cmp(i128(math.MaxInt64)) <= 0 || big.String() != "18446744073709551614" {
		t.Fatalf("2*MaxInt64 = %v", big)
	}
	small := i128(math.MinInt64).add(i128(-1))
	if small.cmp(i128(math.MinInt64)) >= 0 || small.String() != "-9223372036854775809" {
		t.Fatalf("MinInt64-1 = %v", small)
	}
	if s := i128(-5).add(i128(3)); s.cmp(i128(-2)) != 0 || s.String() != "-2" {
		t.Fatalf("-5+3 = %v", s)
	}
}
