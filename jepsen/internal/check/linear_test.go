package check

import (
	"bytes"
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/abacuskit/abacus/jepsen/internal/history"
)

func TestLinearizableCounters(t *testing.T) {
	maxI := int64(math.MaxInt64)
	tests := []struct {
		name    string
		h       *history.History
		finals  []FinalRead
		initial map[string]int64
		want    Status
	}{
		{"empty history", hist(), nil, nil, StatusSkipped},
		{"sequential adds and reads", hist(
			getAbsent(0, "c", 0, 1),
			add(0, "c", 3, 2, 3, 3),
			add(1, "c", -5, 4, 5, -2),
			get(2, "c", 6, 7, -2),
		), nil, nil, StatusValid},
		{"concurrent adds seen in either order", hist(
			add(0, "c", 1, 0, 10, 3),
			add(1, "c", 2, 0, 10, 2),
			get(2, "c", 1, 9, 2),
			get(3, "c", 11, 12, 3),
		), nil, nil, StatusValid},
		{"info add that took effect", hist(
			add(0, "c", 1, 0, 1, 1),
			info(add(1, "c", 10, 2, 3, 0)),
			get(2, "c", 4, 5, 11),
			add(0, "c", 1, 6, 7, 12),
		), []FinalRead{{Node: "n1", Key: "c", Value: 12, Exists: true}}, nil, StatusValid},
		{"info add that did not take effect", hist(
			add(0, "c", 1, 0, 1, 1),
			info(add(1, "c", 10, 2, 3, 0)),
			get(2, "c", 4, 5, 1),
			add(0, "c", 1, 6, 7, 2),
		), []FinalRead{{Node: "n1", Key: "c", Value: 2, Exists: true}, {Node: "n2", Key: "c", Value: 2, Exists: true}}, nil, StatusValid},
		{"info set that took effect late", hist(
			set(0, "c", 1, 0, 1, 0),
			info(set(1, "c", 7, 2, 3, 0)),
			get(2, "c", 4, 5, 1),
			get(2, "c", 6, 7, 7),
		), nil, nil, StatusValid},
		{"failed add is not applied", hist(
			fail(add(0, "c", 5, 0, 1, 0)),
			getAbsent(1, "c", 2, 3),
		), nil, nil, StatusValid},
		{"info read is ignored", hist(
			add(0, "c", 5, 0, 1, 5),
			info(get(1, "c", 2, 3, 99)),
		), nil, nil, StatusValid},
		{"stale read is ignored", hist(
			add(0, "c", 5, 0, 1, 5),
			func() history.Op { op := get(1, "c", 2, 3, 0); op.In.Stale = true; return op }(),
		), nil, nil, StatusValid},
		{"refusals change nothing", hist(
			set(0, "c", maxI-1, 0, 1, 0),
			addRefused(0, "c", 5, 2, 3, history.CodeOverflow),
			bounded(addRefused(1, "c", -5, 4, 5, history.CodeOutOfRange), history.Int64(maxI-2), nil),
			bounded(add(1, "c", -1, 6, 7, maxI-2), history.Int64(maxI-2), history.Int64(maxI-1)),
			get(2, "c", 10, 11, maxI-2),
			set(0, "c", math.MinInt64+1, 12, 13, maxI-2),
			addRefused(0, "c", -2, 14, 15, history.CodeUnderflow),
			add(0, "c", -1, 16, 17, math.MinInt64),
		), nil, nil, StatusValid},
		{"overflow judged before bounds", hist(
			set(0, "c", maxI, 0, 1, 0),
			bounded(addRefused(0, "c", 1, 2, 3, history.CodeOverflow), nil, history.Int64(0)),
		), nil, nil, StatusValid},
		{"set cas delete", hist(
			set(0, "c", 5, 0, 1, 0),
			cas(1, "c", 5, 6, 2, 3, true, 6),
			cas(2, "c", 5, 7, 4, 5, false, 6),
			del(0, "c", 6, 7, 6),
			getAbsent(1, "c", 8, 9),
			cas(2, "c", 0, 1, 10, 11, true, 1),
		), nil, nil, StatusValid},
		{"initial value", hist(
			add(0, "c", 1, 0, 1, 101),
		), nil, map[string]int64{"c": 100}, StatusValid},
		{"stale fenced write changes nothing", hist(
			set(0, "c", 1, 0, 1, 0),
			fenced(set(1, "c", 9, 2, 3, 0), "L", 4, true),
			get(0, "c", 4, 5, 1),
		), nil, nil, StatusValid},
		{"independent counters", hist(
			add(0, "a", 1, 0, 1, 1),
			add(1, "b", 1, 0, 1, 1),
			get(2, "a", 2, 3, 1),
			get(3, "b", 2, 3, 1),
		), nil, nil, StatusValid},

		{"instance-aware counter is not modelled", hist(
			func() history.Op { op := add(0, "c", 1, 0, 1, 1); op.In.Instance = "i1"; return op }(),
			get(1, "c", 2, 3, 77),
		), nil, nil, StatusSkipped},

		// violations
		{"stale read after completed write", hist(
			set(0, "c", 1, 0, 1, 0),
			set(1, "c", 2, 2, 3, 1),
			get(2, "c", 4, 5, 1),
		), nil, nil, StatusInvalid},
		{"add applied twice", hist(
			add(0, "c", 3, 0, 1, 3),
			get(1, "c", 2, 3, 6),
		), nil, nil, StatusInvalid},
		{"acknowledged add lost from the final state", hist(
			add(0, "c", 3, 0, 1, 3),
			add(1, "c", 4, 2, 3, 7),
		), []FinalRead{{Node: "n2", Key: "c", Value: 3, Exists: true}}, nil, StatusInvalid},
		{"acknowledged set lost from the final state", hist(
			set(0, "c", 3, 0, 1, 0),
			set(1, "c", 4, 2, 3, 3),
		), []FinalRead{{Node: "n3", Key: "c", Value: 3, Exists: true}}, nil, StatusInvalid},
		{"add wrapped instead of overflowing", hist(
			set(0, "c", maxI, 0, 1, 0),
			add(0, "c", 1, 2, 3, math.MinInt64),
		), nil, nil, StatusInvalid},
		{"out_of_range claimed within bounds", hist(
			bounded(addRefused(0, "c", 5, 0, 1, history.CodeOutOfRange), nil, history.Int64(10)),
		), nil, nil, StatusInvalid},
		{"cas swapped on mismatch", hist(
			set(0, "c", 5, 0, 1, 0),
			cas(1, "c", 4, 6, 2, 3, true, 6),
		), nil, nil, StatusInvalid},
		{"read sees a write before it was called", hist(
			get(0, "c", 0, 1, 5),
			set(1, "c", 5, 2, 3, 0),
		), nil, nil, StatusInvalid},
		{"failed write visible", hist(
			fail(set(0, "c", 5, 0, 1, 0)),
			get(1, "c", 2, 3, 5),
		), nil, nil, StatusInvalid},
		{"one bad counter among good ones", hist(
			add(0, "a", 1, 0, 1, 1),
			add(1, "b", 1, 0, 1, 1),
			get(2, "a", 2, 3, 1),
			get(3, "b", 2, 3, 0),
		), nil, nil, StatusInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.h.Validate(); err != nil {
				t.Fatal(err)
			}
			res := Linearizable(context.Background(), tt.h, tt.finals, tt.initial, Options{Timeout: 10 * time.Second})
			if res.Status != tt.want {
				t.Fatalf("status %s, want %s (%s)", res.Status, tt.want, res.Detail)
			}
			if tt.want == StatusInvalid && (res.ViolationCount == 0 || len(res.Violations) == 0) {
				t.Fatal("invalid without a violation")
			}
		})
	}
}

func TestLinearizableLocks(t *testing.T) {
	tests := []struct {
		name   string
		h      *history.History
		strict bool
		want   Status
	}{
		{"acquire fence release acquire", hist(
			acquire(0, "L", "a", 0, 1, 1),
			fenced(add(0, "c", 1, 2, 3, 1), "L", 1, false),
			release(0, "L", 1, 4, 5, ""),
			acquire(1, "L", "b", 6, 7, 5),
			fenced(add(1, "c", 1, 8, 9, 2), "L", 5, false),
			fenced(add(0, "c", 1, 10, 11, 0), "L", 1, true),
			lockGet(2, "L", 12, 13, "b", 5),
		), true, StatusValid},
		{"lock held refusal", hist(
			acquire(0, "L", "a", 0, 1, 3),
			acquireHeld(1, "L", "b", 2, 3),
			release(0, "L", 3, 4, 5, ""),
			release(0, "L", 3, 6, 7, history.CodeStaleToken),
			lockGet(2, "L", 8, 9, "", 0),
		), true, StatusValid},
		{"concurrent acquisitions", hist(
			acquire(0, "L", "a", 0, 10, 2),
			acquireHeld(1, "L", "b", 0, 10),
			release(0, "L", 2, 11, 12, ""),
		), true, StatusValid},
		{"info acquire that took the lock", hist(
			info(acquire(0, "L", "a", 0, 1, 0)),
			acquireHeld(1, "L", "b", 2, 3),
			lockGet(2, "L", 4, 5, "a", 7),
			fenced(set(0, "c", 1, 6, 7, 0), "L", 7, false),
		), true, StatusValid},
		{"info acquire that did not", hist(
			info(acquire(0, "L", "a", 0, 1, 0)),
			acquire(1, "L", "b", 2, 3, 4),
			release(1, "L", 4, 4, 5, ""),
		), true, StatusValid},
		{"info release", hist(
			acquire(0, "L", "a", 0, 1, 4),
			info(release(0, "L", 4, 2, 3, "")),
			acquire(1, "L", "b", 4, 5, 6),
		), true, StatusValid},
		{"expired lease: second holder and refused stale fence", hist(
			acquire(0, "L", "a", 0, 1, 1),
			acquire(1, "L", "b", 2, 3, 2),
			fenced(add(0, "c", 1, 4, 5, 0), "L", 1, true),
			release(0, "L", 1, 6, 7, history.CodeStaleToken),
		), false, StatusValid},
		{"failed ops dropped", hist(
			acquire(0, "L", "a", 0, 1, 1),
			fail(acquire(1, "L", "b", 2, 3, 9)),
			fail(release(0, "L", 1, 2, 3, "")),
			fenced(add(0, "c", 1, 4, 5, 1), "L", 1, false),
		), true, StatusValid},

		{"lock-delay after expiry refuses acquisitions of a free lock", hist(
			acquire(0, "L", "a", 0, 1, 1),
			lockGet(1, "L", 2, 3, "", 0),
			acquireHeld(1, "L", "b", 4, 5),
			acquire(2, "L", "c", 6, 7, 2),
		), false, StatusValid},
		{"unknown acquisition later seen by a lock read", hist(
			acquire(0, "L", "a", 0, 1, 1),
			info(acquire(1, "L", "b", 2, 3, 0)),
			lockGet(2, "L", 4, 5, "b", 9),
			fenced(add(1, "c", 1, 6, 7, 1), "L", 9, false),
		), false, StatusValid},
		{"acquisition granted while it waited, its lease ended before the answer", hist(
			acquire(0, "L", "a", 0, 1, 8),
			release(0, "L", 8, 2, 3, ""),
			withError(acquire(1, "L", "b", 4, 20, 0), history.CodeLeaseExpired),
			lockGet(2, "L", 6, 7, "b", 9),
			acquireHeld(3, "L", "c", 8, 9),
		), false, StatusValid},

		// violations
		{"lock-delay without expiry", hist(
			acquire(0, "L", "a", 0, 1, 1),
			lockGet(1, "L", 2, 3, "", 0),
		), true, StatusInvalid},
		{"lock free after a release but refused", hist(
			acquire(0, "L", "a", 0, 1, 1),
			release(0, "L", 1, 2, 3, ""),
			acquireHeld(1, "L", "b", 4, 5),
		), false, StatusInvalid},
		{"unknown acquisition seen with an old token", hist(
			acquire(0, "L", "a", 0, 1, 5),
			info(acquire(1, "L", "b", 2, 3, 0)),
			lockGet(2, "L", 4, 5, "b", 4),
		), false, StatusInvalid},
		{"two holders at once", hist(
			acquire(0, "L", "a", 0, 1, 1),
			acquire(1, "L", "b", 2, 3, 2),
		), true, StatusInvalid},
		{"two holders at once shown by the first one's release", hist(
			acquire(0, "L", "a", 0, 1, 1),
			acquire(1, "L", "b", 2, 3, 2),
			release(0, "L", 1, 4, 5, ""),
		), false, StatusInvalid},
		{"accepted stale fenced write", hist(
			acquire(0, "L", "a", 0, 1, 1),
			acquire(1, "L", "b", 2, 3, 2),
			fenced(add(0, "c", 1, 4, 5, 1), "L", 1, false),
		), false, StatusInvalid},
		{"non-increasing token", hist(
			acquire(0, "L", "a", 0, 1, 5),
			release(0, "L", 5, 2, 3, ""),
			acquire(1, "L", "b", 4, 5, 5),
		), false, StatusInvalid},
		{"fenced write accepted with a free lock", hist(
			acquire(0, "L", "a", 0, 1, 1),
			release(0, "L", 1, 2, 3, ""),
			fenced(add(0, "c", 1, 4, 5, 1), "L", 1, false),
		), false, StatusInvalid},
		{"lock held refusal on a free lock", hist(
			acquireHeld(1, "L", "b", 0, 1),
		), false, StatusInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.h.Validate(); err != nil {
				t.Fatal(err)
			}
			res := Linearizable(context.Background(), tt.h, nil, nil, Options{Timeout: 10 * time.Second, StrictLocks: tt.strict})
			var got Status = StatusSkipped
			for _, p := range res.Partitions {
				if p.Model == "lock" {
					got = Combine(got, p.Status)
				}
			}
			if got != tt.want {
				t.Fatalf("lock status %s, want %s (%s)", got, tt.want, res.Detail)
			}
		})
	}
}

// pathological returns a history porcupine cannot settle quickly: n
// concurrent sets of distinct values with unknown outcomes, then a read of
// a value none wrote. Deciding it means trying every subset of the sets.
func pathological(n int) *history.History {
	var ops []history.Op
	for i := range n {
		ops = append(ops, info(set(i, "c", int64(i+1), 0, 1000, 0)))
	}
	ops = append(ops, get(n, "c", 2000, 2001, -1))
	return hist(ops...)
}

func TestLinearizableTimeoutIsUnknown(t *testing.T) {
	h := pathological(24)
	res := Linearizable(context.Background(), h, nil, nil, Options{Timeout: 20 * time.Millisecond})
	if res.Status != StatusUnknown {
		t.Fatalf("status %s, want unknown (%s)", res.Status, res.Detail)
	}
	v := Run(context.Background(), Input{History: h}, Options{Timeout: 20 * time.Millisecond})
	if v.Status != StatusUnknown || !strings.HasPrefix(v.String(), "UNKNOWN:") {
		t.Fatalf("verdict %s", v.String())
	}
}

func TestLinearizableCancelledIsUnknown(t *testing.T) {
	h := pathological(24)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	res := Linearizable(ctx, h, nil, nil, Options{Timeout: time.Hour})
	if res.Status != StatusUnknown {
		t.Fatalf("status %s, want unknown (%s)", res.Status, res.Detail)
	}
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if res := Linearizable(done, hist(add(0, "c", 1, 0, 1, 1)), nil, nil, Options{}); res.Status != StatusUnknown {
		t.Fatalf("cancelled before start: status %s", res.Status)
	}
}

func TestVisualize(t *testing.T) {
	h := hist(
		set(0, "c", 1, 0, 10, 0),
		set(1, "c", 2, 20, 30, 1),
		get(2, "c", 40, 50, 1),
		acquire(0, "L", "a", 0, 5, 1),
	)
	res := Linearizable(context.Background(), h, nil, nil, Options{})
	if len(res.Partitions) != 2 {
		t.Fatalf("%d partitions", len(res.Partitions))
	}
	faults := []history.FaultWindow{{Start: 15, End: 35, Description: "partition n1 | n2 n3"}}
	for _, p := range res.Partitions {
		var buf bytes.Buffer
		if err := p.Visualize(&buf, faults); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), "partition n1 | n2 n3") || !strings.Contains(buf.String(), "<html") {
			t.Fatalf("%s %q: visualisation lacks the fault annotation or HTML", p.Model, p.Key)
		}
	}
	if !strings.Contains(res.Partitions[0].Model, "counter") || res.Partitions[0].Status != StatusInvalid {
		t.Fatalf("partition 0: %+v", res.Partitions[0])
	}
	skipped := &Partition{Model: "counter", Key: "x", Status: StatusSkipped}
	if err := skipped.Visualize(&bytes.Buffer{}, nil); err == nil {
		t.Fatal("visualising an unchecked partition succeeded")
	}
}

func TestLinearizableExplainsViolation(t *testing.T) {
	h := hist(
		set(0, "c", 1, 0, 1, 0),
		set(1, "c", 2, 2, 3, 1),
		get(2, "c", 4, 5, 1),
		set(0, "c", 3, 6, 7, 2),
	)
	res := Linearizable(context.Background(), h, nil, nil, Options{})
	if res.Status != StatusInvalid || len(res.Partitions) != 1 {
		t.Fatalf("%+v", res)
	}
	p := res.Partitions[0]
	if p.Linearized != 2 || len(p.Stuck) == 0 || p.Stuck[0] != 2 {
		t.Fatalf("linearized %d, stuck %v: %s", p.Linearized, p.Stuck, p.Detail)
	}
	if !strings.Contains(res.Violations[0].Message, "#2 get() → 1") {
		t.Fatalf("violation %q does not name the stale read", res.Violations[0].Message)
	}
}

func TestModelsTolerateMissingOutputs(t *testing.T) {
	kinds := []history.Kind{history.Add, history.Set, history.CAS, history.Delete, history.Get,
		history.Acquire, history.Release, history.KeepAlive, history.LockGet}
	counter, lock := CounterModel(nil), LockModel(true)
	for _, k := range kinds {
		op := &history.Op{Kind: k, Key: "k", Outcome: history.Ok}
		ev := &Event{Op: op, Partition: "k"}
		if k.IsCounter() {
			if ok, _ := counter.Step(counter.Init(), ev, nil); !ok {
				t.Errorf("counter %s without output refused", k)
			}
		} else if ok, _ := lock.Step(lock.Init(), ev, nil); !ok {
			t.Errorf("lock %s without output refused", k)
		}
		if d := describeOperation(ev, nil); !strings.HasSuffix(d, "→ ?") {
			t.Errorf("description %q", d)
		}
	}
}

func TestLinearizableStateExplosionIsUnknown(t *testing.T) {
	// n unknown adds of distinct powers of two leave 2^n possible values;
	// the read sees none of them.
	build := func(n int) *history.History {
		var ops []history.Op
		for i := range n {
			ops = append(ops, info(add(i, "c", 1<<i, 0, 10, 0)))
		}
		return hist(append(ops, get(n, "c", 20, 21, -1))...)
	}
	if res := Linearizable(context.Background(), build(8), nil, nil, Options{}); res.Status != StatusInvalid {
		t.Fatalf("256 states: %s (%s)", res.Status, res.Detail)
	}
	res := Linearizable(context.Background(), build(8), nil, nil, Options{MaxStates: 64})
	if res.Status != StatusUnknown || !strings.Contains(res.Partitions[0].Detail, "outgrew 64") {
		t.Fatalf("bounded to 64 states: %s (%s)", res.Status, res.Partitions[0].Detail)
	}
}
