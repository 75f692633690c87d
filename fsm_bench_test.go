package abacus

import (
	"bytes"
	"io"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"
)

// benchEntrySize is the number of proposals in one benchmark log entry.
const benchEntrySize = 256

// benchEntries produces consecutive entries of adds from 64 clients that
// pipeline through the exactly-once table (each acknowledging all but its
// last 8 proposals), over 10,000 counter names.
type benchEntries struct {
	names []string
	seqs  [64]uint64
	now   int64
	n     int
}

func newBenchEntries() *benchEntries {
	e := &benchEntries{names: make([]string, 10000), now: int64(time.Hour)}
	for i := range e.names {
		e.names[i] = "counter-" + strconv.Itoa(i)
	}
	return e
}

func (e *benchEntries) next() []Proposal {
	props := make([]Proposal, benchEntrySize)
	e.now += int64(time.Millisecond)
	for i := range props {
		c := e.n % len(e.seqs)
		e.seqs[c]++
		seq := e.seqs[c]
		ack := uint64(1)
		if seq > 8 {
			ack = seq - 8
		}
		props[i] = Proposal{
			Client: uint64(c + 1), Seq: seq, Ack: ack, Time: e.now,
			Cmd: Command{Op: OpAdd, Name: e.names[e.n%len(e.names)], Delta: 1},
		}
		e.n++
	}
	return props
}

// cpuMeter accumulates process CPU time over the timed parts of a
// benchmark, for a cpu-ns/op figure next to wall-clock ns/op.
type cpuMeter struct {
	total, start int64
	ok           bool
}

func (m *cpuMeter) begin() { m.start, m.ok = processCPU() }

func (m *cpuMeter) end() {
	if now, ok := processCPU(); ok && m.ok {
		m.total += now - m.start
	}
}

func (m *cpuMeter) report(b *testing.B, per int) {
	if m.ok && per > 0 {
		b.ReportMetric(float64(m.total)/float64(per), "cpu-ns/op")
	}
}

// BenchmarkApplyAddInBatch measures one add applied inside an entry of 256
// proposals, through the exactly-once table; ns/op is per add. "decoded"
// applies already-decoded proposals; "with-decode" includes DecodeEntry.
// Entries are prepared 64 at a time with the timer stopped.
func BenchmarkApplyAddInBatch(b *testing.B) {
	for _, decode := range []bool{false, true} {
		name := "decoded"
		if decode {
			name = "with-decode"
		}
		b.Run(name, func(b *testing.B) {
			gen := newBenchEntries()
			f := NewFSM(FSMOptions{}, nil)
			var index uint64
			for range gen.seqs { // the sessions the entries use: 1 to len(seqs)
				index++
				f.Apply(index, []Proposal{{Time: gen.now, Cmd: Command{Op: OpSessionOpen}}})
			}
			const chunk = 64
			props := make([][]Proposal, 0, chunk)
			raw := make([][]byte, 0, chunk)
			prepare := func() {
				props, raw = props[:0], raw[:0]
				for range chunk {
					p := gen.next()
					props = append(props, p)
					if decode {
						data, err := EncodeEntry(p)
						if err != nil {
							b.Fatal(err)
						}
						raw = append(raw, data)
					}
				}
			}
			// Warm up: every counter and session exists before timing.
			for range 2 * len(gen.names) / benchEntrySize {
				index++
				f.Apply(index, gen.next())
			}
			var cpu cpuMeter
			b.ReportAllocs()
			b.ResetTimer()
			next := chunk
			for done := 0; done < b.N; done += benchEntrySize {
				if next == chunk {
					b.StopTimer()
					if done > 0 {
						cpu.end()
					}
					prepare()
					next = 0
					b.StartTimer()
					cpu.begin()
				}
				index++
				if decode {
					rs, err := f.ApplyEntry(index, raw[next])
					if err != nil || rs[0].Code != CodeOK {
						b.Fatalf("apply: %v %v", err, rs[0].Code)
					}
				} else if rs := f.Apply(index, props[next]); rs[0].Code != CodeOK {
					b.Fatalf("apply: %v", rs[0].Code)
				}
				next++
			}
			b.StopTimer()
			cpu.end()
			cpu.report(b, b.N)
		})
	}
}

// bench1M returns an FSM holding one million counters.
func bench1M(b *testing.B) *FSM {
	b.Helper()
	f := NewFSM(FSMOptions{}, nil)
	props := make([]Proposal, 1000)
	for e := range 1000 {
		for i := range props {
			n := e*len(props) + i
			props[i] = Proposal{Time: int64(e), Cmd: Command{Op: OpAdd, Name: "counter-" + strconv.Itoa(n), Delta: int64(n)}}
		}
		f.Apply(uint64(e+1), props)
	}
	if s := f.Stats(); s.Counters != 1_000_000 {
		b.Fatalf("%d counters", s.Counters)
	}
	return f
}

// heapPeak samples the live heap while it runs, for a peak measurement
// that before/after readings alone would miss.
type heapPeak struct {
	base, peak uint64
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startHeapPeak() *heapPeak {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p := &heapPeak{base: ms.HeapAlloc, peak: ms.HeapAlloc, stop: make(chan struct{})}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				p.sample()
			}
		}
	}()
	return p
}

func (p *heapPeak) sample() {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	p.peak = max(p.peak, ms.HeapAlloc)
}

// done stops sampling and returns the peak heap growth over the baseline.
func (p *heapPeak) done() uint64 {
	close(p.stop)
	p.wg.Wait()
	p.sample()
	return p.peak - p.base
}

// BenchmarkSnapshot1M measures Snapshot plus WriteTo of one million
// counters. peak-heap-B is the largest heap growth seen while it ran.
func BenchmarkSnapshot1M(b *testing.B) {
	f := bench1M(b)
	var size int64
	b.ReportAllocs()
	b.ResetTimer()
	var peak uint64
	var cpu cpuMeter
	for range b.N {
		b.StopTimer()
		p := startHeapPeak()
		b.StartTimer()
		cpu.begin()
		n, err := f.Snapshot().WriteTo(io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		cpu.end()
		size = n
		b.StopTimer()
		peak = max(peak, p.done())
		b.StartTimer()
	}
	cpu.report(b, b.N)
	b.ReportMetric(float64(peak), "peak-heap-B")
	b.ReportMetric(float64(size), "snapshot-B")
}

// BenchmarkRestore1M measures Restore of a one-million-counter snapshot
// into an empty FSM. peak-heap-B is the largest heap growth seen while it
// ran, the restored state included.
func BenchmarkRestore1M(b *testing.B) {
	var buf bytes.Buffer
	if _, err := bench1M(b).Snapshot().WriteTo(&buf); err != nil {
		b.Fatal(err)
	}
	data := buf.Bytes()
	b.ReportAllocs()
	b.ResetTimer()
	var peak uint64
	var cpu cpuMeter
	for range b.N {
		b.StopTimer()
		f := NewFSM(FSMOptions{}, nil)
		p := startHeapPeak()
		b.StartTimer()
		cpu.begin()
		if err := f.Restore(bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
		cpu.end()
		b.StopTimer()
		peak = max(peak, p.done())
		if f.Stats().Counters != 1_000_000 {
			b.Fatal("restore lost counters")
		}
		b.StartTimer()
	}
	cpu.report(b, b.N)
	b.ReportMetric(float64(peak), "peak-heap-B")
	b.ReportMetric(float64(len(data)), "snapshot-B")
}
