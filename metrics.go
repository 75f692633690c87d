package abacus

import (
	"fmt"
	"io"
	"math"
	"sync/atomic"
	"time"
)

// Metrics counts what a node does: calls and their latency, proposals per
// log entry, commit latency, how reads were served. It is safe for
// concurrent use and cheap to update; WritePrometheus renders it in the
// Prometheus text format.
type Metrics struct {
	writes, writeErrors atomic.Uint64
	reads, readErrors   atomic.Uint64
	leaseReads          atomic.Uint64 // linearizable reads served under the leader lease
	confirmedReads      atomic.Uint64 // linearizable reads that needed a confirmation round
	forwarded           atomic.Uint64 // calls forwarded to the leader

	writeLatency  *Histogram
	readLatency   *Histogram
	commitLatency *Histogram // from submitting a log entry to its application
	entrySize     *Histogram // proposals per log entry
}

func newMetrics() *Metrics {
	lat := []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	return &Metrics{
		writeLatency:  newHistogram(lat),
		readLatency:   newHistogram(lat),
		commitLatency: newHistogram(lat),
		entrySize:     newHistogram([]float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536}),
	}
}

func (m *Metrics) observeWrite(d time.Duration, err error) {
	m.writes.Add(1)
	if err != nil {
		m.writeErrors.Add(1)
	}
	m.writeLatency.Observe(d.Seconds())
}

func (m *Metrics) observeRead(d time.Duration, err error) {
	m.reads.Add(1)
	if err != nil {
		m.readErrors.Add(1)
	}
	m.readLatency.Observe(d.Seconds())
}

// ObserveCommit records one log entry of size proposals committed and
// applied after d. Backends call it.
func (m *Metrics) ObserveCommit(d time.Duration, size int) {
	m.commitLatency.Observe(d.Seconds())
	m.entrySize.Observe(float64(size))
}

// CountForward records a call forwarded to another node.
func (m *Metrics) CountForward() { m.forwarded.Add(1) }

// CountRead records how a linearizable read was served: under the leader
// lease, or after a confirmation round.
func (m *Metrics) CountRead(underLease bool) {
	if underLease {
		m.leaseReads.Add(1)
	} else {
		m.confirmedReads.Add(1)
	}
}

// Metrics returns the node's metrics.
func (n *Node) Metrics() *Metrics { return n.metrics }

// WritePrometheus writes the metrics and the node's status in the
// Prometheus text exposition format.
func (n *Node) WritePrometheus(w io.Writer) error {
	m := n.metrics
	st := n.Status()
	ew := &errWriter{w: w}
	counter := func(name, help string, v uint64) {
		ew.printf("# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge := func(name, help string, v float64) {
		ew.printf("# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	counter("abacus_writes_total", "Write calls.", m.writes.Load())
	counter("abacus_write_errors_total", "Write calls that returned an error.", m.writeErrors.Load())
	counter("abacus_reads_total", "Read calls.", m.reads.Load())
	counter("abacus_read_errors_total", "Read calls that returned an error.", m.readErrors.Load())
	counter("abacus_lease_reads_total", "Linearizable reads served under the leader lease.", m.leaseReads.Load())
	counter("abacus_confirmed_reads_total", "Linearizable reads served after a confirmation round.", m.confirmedReads.Load())
	counter("abacus_forwarded_total", "Calls forwarded to the leader.", m.forwarded.Load())
	m.writeLatency.write(ew, "abacus_write_seconds", "Write call latency.")
	m.readLatency.write(ew, "abacus_read_seconds", "Read call latency.")
	m.commitLatency.write(ew, "abacus_commit_seconds", "Latency from submitting a log entry to applying it.")
	m.entrySize.write(ew, "abacus_entry_proposals", "Proposals coalesced per log entry.")
	states := []string{"leader", "follower", "candidate", "replica", "shutdown"}
	ew.printf("# HELP abacus_state Replica state (1 for the current one).\n# TYPE abacus_state gauge\n")
	for _, s := range states {
		v := 0
		if st.State == s {
			v = 1
		}
		ew.printf("abacus_state{state=%q} %d\n", s, v)
	}
	gauge("abacus_term", "Current Raft term.", float64(st.Term))
	gauge("abacus_applied_index", "Last applied log index.", float64(st.AppliedIndex))
	gauge("abacus_commit_index", "Last committed log index.", float64(st.CommitIndex))
	return ew.err
}

type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) printf(format string, args ...any) {
	if e.err == nil {
		_, e.err = fmt.Fprintf(e.w, format, args...)
	}
}

// Histogram is a fixed-bucket histogram safe for concurrent use.
type Histogram struct {
	bounds []float64
	counts []atomic.Uint64 // one per bound, plus +Inf
	count  atomic.Uint64
	sum    atomic.Uint64 // float64 bits
}

func newHistogram(bounds []float64) *Histogram {
	return &Histogram{bounds: bounds, counts: make([]atomic.Uint64, len(bounds)+1)}
}

// Observe records v.
func (h *Histogram) Observe(v float64) {
	i := 0
	for i < len(h.bounds) && v > h.bounds[i] {
		i++
	}
	h.counts[i].Add(1)
	h.count.Add(1)
	for {
		old := h.sum.Load()
		if h.sum.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

func (h *Histogram) write(ew *errWriter, name, help string) {
	ew.printf("# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		ew.printf("%s_bucket{le=\"%g\"} %d\n", name, b, cum)
	}
	cum += h.counts[len(h.bounds)].Load()
	ew.printf("%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, cum, name, math.Float64frombits(h.sum.Load()), name, cum)
}
