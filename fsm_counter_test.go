package abacus

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestFSMCounterEdges(t *testing.T) {
	type step struct {
		cmd       Command
		code      Code
		value     int64 // Result.Value on success
		wantAfter int64 // counter value after the step
		exists    bool  // counter exists after the step
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"add creates", []step{
			{cmd: Command{Op: OpAdd, Name: "c", Delta: 5}, value: 5, wantAfter: 5, exists: true},
		}},
		{"overflow at MaxInt64+1", []step{
			{cmd: Command{Op: OpSet, Name: "c", Value: math.MaxInt64}, value: math.MaxInt64, wantAfter: math.MaxInt64, exists: true},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: 1}, code: CodeOverflow, wantAfter: math.MaxInt64, exists: true},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: math.MaxInt64}, code: CodeOverflow, wantAfter: math.MaxInt64, exists: true},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: 0}, value: math.MaxInt64, wantAfter: math.MaxInt64, exists: true},
		}},
		{"underflow at MinInt64-1", []step{
			{cmd: Command{Op: OpSet, Name: "c", Value: math.MinInt64}, value: math.MinInt64, wantAfter: math.MinInt64, exists: true},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: -1}, code: CodeUnderflow, wantAfter: math.MinInt64, exists: true},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: math.MinInt64}, code: CodeUnderflow, wantAfter: math.MinInt64, exists: true},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: math.MaxInt64}, value: -1, wantAfter: -1, exists: true},
		}},
		{"overflow on a new counter never creates it", []step{
			{cmd: Command{Op: OpAdd, Name: "c", Delta: math.MaxInt64, Flags: FlagMax, Max: 10}, code: CodeOutOfRange},
		}},
		{"bounds", []step{
			{cmd: Command{Op: OpAdd, Name: "c", Delta: 3, Flags: FlagMax, Max: 3}, value: 3, wantAfter: 3, exists: true},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: 1, Flags: FlagMax, Max: 3}, code: CodeOutOfRange, wantAfter: 3, exists: true},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: -3, Flags: FlagMin, Min: 0}, value: 0, wantAfter: 0, exists: true},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: -1, Flags: FlagMin, Min: 0}, code: CodeOutOfRange, wantAfter: 0, exists: true},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: 2, Flags: FlagMin | FlagMax, Min: 2, Max: 2}, value: 2, wantAfter: 2, exists: true},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: 1, Flags: FlagMin, Min: math.MinInt64}, value: 3, wantAfter: 3, exists: true},
		}},
		{"overflow reported before bounds", []step{
			{cmd: Command{Op: OpSet, Name: "c", Value: math.MaxInt64}, value: math.MaxInt64, wantAfter: math.MaxInt64, exists: true},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: 1, Flags: FlagMax, Max: 0}, code: CodeOverflow, wantAfter: math.MaxInt64, exists: true},
		}},
		{"lone cas mismatch is not an error", []step{
			{cmd: Command{Op: OpSet, Name: "c", Value: 7}, value: 7, wantAfter: 7, exists: true},
			{cmd: Command{Op: OpCompareAndSet, Name: "c", Old: 6, Value: 1}, value: 7, wantAfter: 7, exists: true},
			{cmd: Command{Op: OpCompareAndSet, Name: "c", Old: 7, Value: 1}, value: 1, wantAfter: 1, exists: true},
		}},
		{"cas on a missing counter compares with zero", []step{
			{cmd: Command{Op: OpCompareAndSet, Name: "c", Old: 1, Value: 2}, value: 0},
			{cmd: Command{Op: OpCompareAndSet, Name: "c", Old: 0, Value: 2}, value: 2, wantAfter: 2, exists: true},
		}},
		{"delete", []step{
			{cmd: Command{Op: OpAdd, Name: "c", Delta: 4}, value: 4, wantAfter: 4, exists: true},
			{cmd: Command{Op: OpDelete, Name: "c"}},
			{cmd: Command{Op: OpDelete, Name: "c"}},
			{cmd: Command{Op: OpAdd, Name: "c", Delta: 1}, value: 1, wantAfter: 1, exists: true},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFSMHarness(t, FSMOptions{})
			h.advance(0)
			for i, s := range tt.steps {
				before := h.hash()
				var r Result
				if s.code != CodeOK {
					r = h.probe(s.cmd)
				} else {
					r = h.do(s.cmd)
				}
				if r.Code != s.code {
					t.Fatalf("step %d (%s): code %v, want %v", i, s.cmd.Op, r.Code, s.code)
				}
				if r.Code != CodeOK {
					if got := h.hash(); got != before {
						t.Fatalf("step %d: failed %s changed the state", i, s.cmd.Op)
					}
				} else if s.cmd.Op != OpDelete && r.Value != s.value {
					t.Fatalf("step %d (%s): value %d, want %d", i, s.cmd.Op, r.Value, s.value)
				}
				v, ok := h.value("c")
				if v != s.wantAfter || ok != s.exists {
					t.Fatalf("step %d: counter = %d,%v, want %d,%v", i, v, ok, s.wantAfter, s.exists)
				}
			}
		})
	}
}

func TestFSMCompareAndSetResult(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{})
	h.ok(Command{Op: OpSet, Name: "c", Value: 7})
	r := h.ok(Command{Op: OpCompareAndSet, Name: "c", Old: 6, Value: 1})
	if r.Swapped || r.Value != 7 || !r.Exists {
		t.Fatalf("mismatch result %+v, want Swapped=false Value=7 Exists", r)
	}
	r = h.ok(Command{Op: OpCompareAndSet, Name: "c", Old: 7, Value: 1})
	if !r.Swapped || r.Value != 1 || r.Previous != 7 {
		t.Fatalf("swap result %+v, want Swapped Value=1 Previous=7", r)
	}
	r = h.ok(Command{Op: OpSet, Name: "c", Value: 9})
	if r.Previous != 1 || r.Value != 9 {
		t.Fatalf("set result %+v, want Previous=1 Value=9", r)
	}
	r = h.ok(Command{Op: OpDelete, Name: "c"})
	if r.Previous != 9 {
		t.Fatalf("delete result %+v, want Previous=9", r)
	}
}

func TestFSMRevision(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{})
	r := h.ok(Command{Op: OpAdd, Name: "c", Delta: 1})
	if r.Revision != h.index {
		t.Fatalf("revision %d, want index %d", r.Revision, h.index)
	}
	h.advance(time.Second)
	g := h.f.Read(Command{Op: OpGet, Name: "c"})
	if g.Revision != h.index-1 {
		t.Fatalf("read revision %d, want %d", g.Revision, h.index-1)
	}
	// A failed add leaves the revision.
	h.do(Command{Op: OpAdd, Name: "c", Delta: 1, Flags: FlagMax, Max: 1})
	if g2 := h.f.Read(Command{Op: OpGet, Name: "c"}); g2.Revision != g.Revision {
		t.Fatalf("failed add moved revision %d -> %d", g.Revision, g2.Revision)
	}
}

func TestFSMBatch(t *testing.T) {
	h := newFSMHarness(t, FSMOptions{})
	h.ok(Command{Op: OpSet, Name: "a", Value: 10})
	h.obs.take()

	ok := h.ok(Command{Op: OpBatch, Ops: []Command{
		{Op: OpAdd, Name: "a", Delta: -3, Flags: FlagMin, Min: 0},
		{Op: OpAdd, Name: "b", Delta: 3},
		{Op: OpGet, Name: "b"},
		{Op: OpCompareAndSet, Name: "a", Old: 7, Value: 8},
	}})
	if len(ok.Results) != 4 || ok.Results[0].Value != 7 || ok.Results[1].Value != 3 ||
		ok.Results[2].Value != 3 || !ok.Results[3].Swapped || ok.Index != -1 {
		t.Fatalf("batch results %+v", ok)
	}
	if ev := h.obs.take(); len(ev) != 2 || ev[0] != "counter a=8 exists=true" || ev[1] != "counter b=3 exists=true" {
		t.Fatalf("observer saw %q, want a then b once each", ev)
	}

	failing := []struct {
		name  string
		ops   []Command
		code  Code
		index int
	}{
		{"overflow last", []Command{
			{Op: OpAdd, Name: "a", Delta: 1},
			{Op: OpDelete, Name: "b"},
			{Op: OpAdd, Name: "new", Delta: 1, TTL: time.Minute},
			{Op: OpAdd, Name: "a", Delta: math.MaxInt64},
		}, CodeOverflow, 3},
		{"cas mismatch aborts", []Command{
			{Op: OpSet, Name: "a", Value: 100},
			{Op: OpCompareAndSet, Name: "b", Old: 4, Value: 5},
		}, CodeMismatch, 1},
		{"out of range first", []Command{
			{Op: OpAdd, Name: "b", Delta: 1, Flags: FlagMax, Max: 3},
			{Op: OpAdd, Name: "a", Delta: 1},
		}, CodeOutOfRange, 0},
		{"stale fence", []Command{
			{Op: OpAdd, Name: "a", Delta: 1},
			{Op: OpAdd, Name: "b", Delta: 1, FenceLock: "l", FenceToken: 1},
		}, CodeStaleToken, 1},
		{"unknown instance", []Command{
			{Op: OpAdd, Name: "a", Delta: 1},
			{Op: OpAdd, Name: "b", Delta: 1, Instance: 99},
		}, CodeNotFound, 1},
		{"same counter twice", []Command{
			{Op: OpAdd, Name: "a", Delta: 1},
			{Op: OpAdd, Name: "a", Delta: 1},
			{Op: OpAdd, Name: "a", Delta: -100, Flags: FlagMin, Min: 0},
		}, CodeOutOfRange, 2},
	}
	for _, tt := range failing {
		t.Run(tt.name, func(t *testing.T) {
			before := h.hash()
			stats := h.f.Stats()
			cmd := Command{Op: OpBatch, Ops: tt.ops}
			r := h.probe(cmd)
			if r.Code != tt.code || r.Index != tt.index || r.Results != nil {
				t.Fatalf("result %+v, want code %v at %d", r, tt.code, tt.index)
			}
			if got := h.hash(); got != before {
				t.Fatalf("failing batch changed the state")
			}
			if s := h.f.Stats(); s.Counters != stats.Counters || s.Ops != stats.Ops {
				t.Fatalf("stats %v, want %v", s, stats)
			}
			if ev := h.obs.take(); len(ev) != 0 {
				t.Fatalf("failing batch notified %q", ev)
			}
			err := r.Err(&cmd)
			if !errors.Is(err, tt.code.Err()) {
				t.Fatalf("Err() = %v, want wrapping %v", err, tt.code.Err())
			}
			var oe *OpError
			if !errors.As(err, &oe) || oe.Index != tt.index || oe.Op != tt.ops[tt.index].Op || oe.Name != tt.ops[tt.index].Name {
				t.Fatalf("Err() = %#v, want the failing operation", err)
			}
		})
	}
	// The mismatch result reports the current value.
	r := h.do(Command{Op: OpBatch, Ops: []Command{{Op: OpCompareAndSet, Name: "a", Old: -1, Value: 0}}})
	if r.Code != CodeMismatch || r.Value != 8 {
		t.Fatalf("mismatch in batch: %+v, want value 8", r)
	}
}

func TestFSMResultErr(t *testing.T) {
	codes := []Code{CodeInvalidArgument, CodeOverflow, CodeUnderflow, CodeOutOfRange, CodeStaleToken,
		CodeLockHeld, CodeNotFound, CodeLeaseExpired, CodeStaleSequence, CodeSessionExpired,
		CodeTooManyInFlight, CodeMismatch}
	for _, code := range codes {
		t.Run(code.String(), func(t *testing.T) {
			cmd := Command{Op: OpAdd, Name: "hits"}
			r := failed(code)
			err := r.Err(&cmd)
			if !errors.Is(err, code.Err()) {
				t.Fatalf("errors.Is(%v, %v) = false", err, code.Err())
			}
			for _, other := range codes {
				if other != code && errors.Is(err, other.Err()) {
					t.Fatalf("%v also matches %v", err, other.Err())
				}
			}
			want := code.Err().Error() + ` (add "hits")`
			if err.Error() != want {
				t.Fatalf("message %q, want %q", err.Error(), want)
			}
		})
	}
	ok := Result{Index: -1}
	if err := ok.Err(&Command{Op: OpAdd, Name: "x"}); err != nil {
		t.Fatalf("ok result Err() = %v", err)
	}
	held := Result{Code: CodeLockHeld, Holder: "w1", Index: -1}
	if got, want := held.Err(&Command{Op: OpLockAcquire, Name: "l"}).Error(),
		`abacus: lock held (lock-acquire "l") by "w1"`; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	batch := Result{Code: CodeOverflow, Index: 1}
	cmd := Command{Op: OpBatch, Ops: []Command{{Op: OpGet, Name: "a"}, {Op: OpAdd, Name: "b"}}}
	if got, want := batch.Err(&cmd).Error(), `abacus: counter overflow (add "b") at batch operation 1`; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	e := &OpError{Code: CodeInvalidArgument, Index: -1, Message: "bad"}
	if got, want := e.Error(), "abacus: invalid argument: bad"; got != want {
		t.Fatalf("message %q, want %q", got, want)
	}
	if Code(200).Err() != ErrCorrupt || Code(200).String() != "code(200)" {
		t.Fatalf("unknown code maps to %v %q", Code(200).Err(), Code(200).String())
	}
	if CodeOK.Err() != nil {
		t.Fatal("CodeOK.Err() != nil")
	}
}

func TestFSMValidate(t *testing.T) {
	long := strings.Repeat("n", MaxNameLen+1)
	batchOf := func(n int) []Command {
		ops := make([]Command, n)
		for i := range ops {
			ops[i] = Command{Op: OpAdd, Name: "a", Delta: 1}
		}
		return ops
	}
	tests := []struct {
		name string
		cmd  Command
		ok   bool
	}{
		{"add", Command{Op: OpAdd, Name: "a", Delta: 1}, true},
		{"name of max length", Command{Op: OpAdd, Name: strings.Repeat("n", MaxNameLen)}, true},
		{"empty name", Command{Op: OpAdd}, false},
		{"long name", Command{Op: OpAdd, Name: long}, false},
		{"invalid utf-8 name", Command{Op: OpAdd, Name: "a\xff"}, false},
		{"invalid op", Command{Op: opInvalid, Name: "a"}, false},
		{"unknown op", Command{Op: opLimit, Name: "a"}, false},
		{"unknown flag", Command{Op: OpAdd, Name: "a", Flags: 1 << 7}, false},
		{"wait on counter", Command{Op: OpAdd, Name: "a", Flags: FlagWait}, false},
		{"bounds on set", Command{Op: OpSet, Name: "a", Flags: FlagMax}, false},
		{"min above max", Command{Op: OpAdd, Name: "a", Flags: FlagMin | FlagMax, Min: 2, Max: 1}, false},
		{"ttl on set", Command{Op: OpSet, Name: "a", TTL: time.Second}, false},
		{"negative ttl", Command{Op: OpAdd, Name: "a", TTL: -1}, false},
		{"ttl above max", Command{Op: OpAdd, Name: "a", TTL: MaxTTL + 1}, false},
		{"fenced get", Command{Op: OpGet, Name: "a", FenceLock: "l", FenceToken: 1}, false},
		{"fence without token", Command{Op: OpAdd, Name: "a", FenceLock: "l"}, false},
		{"fence with bad name", Command{Op: OpAdd, Name: "a", FenceLock: long, FenceToken: 1}, false},
		{"delay on add", Command{Op: OpAdd, Name: "a", Delay: time.Second}, false},
		{"batch", Command{Op: OpBatch, Ops: batchOf(2)}, true},
		{"batch of max size", Command{Op: OpBatch, Ops: batchOf(MaxBatchOps)}, true},
		{"empty batch", Command{Op: OpBatch}, false},
		{"oversize batch", Command{Op: OpBatch, Ops: batchOf(MaxBatchOps + 1)}, false},
		{"nested batch", Command{Op: OpBatch, Ops: []Command{{Op: OpBatch, Ops: batchOf(1)}}}, false},
		{"lease op in batch", Command{Op: OpBatch, Ops: []Command{{Op: OpLeaseGrant, TTL: time.Second}}}, false},
		{"bad op in batch", Command{Op: OpBatch, Ops: []Command{{Op: OpAdd}}}, false},
		{"tick", Command{Op: OpTick}, true},
		{"instance on tick", Command{Op: OpTick, Instance: 1}, false},
		{"grant", Command{Op: OpLeaseGrant, TTL: time.Second}, true},
		{"grant without ttl", Command{Op: OpLeaseGrant}, false},
		{"keepalive without lease", Command{Op: OpLeaseKeepAlive}, false},
		{"acquire", Command{Op: OpLockAcquire, Name: "l", Lease: 1, Holder: "h", Delay: time.Second}, true},
		{"acquire without lease", Command{Op: OpLockAcquire, Name: "l", Holder: "h"}, false},
		{"acquire without holder", Command{Op: OpLockAcquire, Name: "l", Lease: 1}, false},
		{"acquire with long holder", Command{Op: OpLockAcquire, Name: "l", Lease: 1, Holder: strings.Repeat("h", MaxHolderLen+1)}, false},
		{"acquire with bad holder", Command{Op: OpLockAcquire, Name: "l", Lease: 1, Holder: "\xc0"}, false},
		{"release by nothing", Command{Op: OpLockRelease, Name: "l"}, false},
		{"release by token", Command{Op: OpLockRelease, Name: "l", Token: 3}, true},
		{"lock get without name", Command{Op: OpLockGet}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cmd.Validate()
			if (err == nil) != tt.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("Validate() = %v, want ErrInvalidArgument", err)
			}
			// The state machine judges identically.
			h := newFSMHarness(t, FSMOptions{})
			h.advance(0)
			before := h.hash()
			r := h.probe(tt.cmd)
			if !tt.ok {
				if r.Code != CodeInvalidArgument {
					t.Fatalf("FSM code %v, want invalid_argument", r.Code)
				}
				if h.hash() != before {
					t.Fatal("an invalid command changed the state")
				}
			} else if r.Code == CodeInvalidArgument {
				t.Fatalf("FSM refused a valid command")
			}
		})
	}
}
