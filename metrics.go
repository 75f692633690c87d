package abacus

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts what a node does: calls and their latency, proposals per
// log entry, commit latency, how reads were served. It is safe for
// concurrent use and cheap to update (no allocation, no lock). A backend
// records into the Metrics its Env carries; a service reads the figures
// through Node.Collector.
type Metrics struct {
	writes, writeErrors prometheus.Counter
	reads, readErrors   prometheus.Counter
	leaseReads          prometheus.Counter // linearizable reads served under the leader lease
	confirmedReads      prometheus.Counter // linearizable reads that needed a confirmation round
	forwarded           prometheus.Counter // calls forwarded to the leader

	writeLatency  prometheus.Histogram
	readLatency   prometheus.Histogram
	commitLatency prometheus.Histogram // from submitting a log entry to its application
	entrySize     prometheus.Histogram // proposals per log entry

	// Gauges of the node's Status, made at each collection.
	state, term, applied, commit *prometheus.Desc
}

func newMetrics() *Metrics {
	// Upper bounds, in seconds, of the call and commit latency histograms.
	latencyBuckets := []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}
	entryBuckets := []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096, 16384, 65536}
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	histogram := func(name, help string, buckets []float64) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets})
	}
	return &Metrics{
		writes:         counter("abacus_writes_total", "Write calls."),
		writeErrors:    counter("abacus_write_errors_total", "Write calls that returned an error."),
		reads:          counter("abacus_reads_total", "Read calls."),
		readErrors:     counter("abacus_read_errors_total", "Read calls that returned an error."),
		leaseReads:     counter("abacus_lease_reads_total", "Linearizable reads served under the leader lease."),
		confirmedReads: counter("abacus_confirmed_reads_total", "Linearizable reads served after a confirmation round."),
		forwarded:      counter("abacus_forwarded_total", "Calls forwarded to the leader."),
		writeLatency:   histogram("abacus_write_seconds", "Write call latency.", latencyBuckets),
		readLatency:    histogram("abacus_read_seconds", "Read call latency.", latencyBuckets),
		commitLatency:  histogram("abacus_commit_seconds", "Latency from submitting a log entry to applying it.", latencyBuckets),
		entrySize:      histogram("abacus_entry_proposals", "Proposals coalesced per log entry.", entryBuckets),
		state:          prometheus.NewDesc("abacus_state", "Replica state (1 for the current one).", []string{"state"}, nil),
		term:           prometheus.NewDesc("abacus_term", "Current Raft term.", nil, nil),
		applied:        prometheus.NewDesc("abacus_applied_index", "Last applied log index.", nil, nil),
		commit:         prometheus.NewDesc("abacus_commit_index", "Last committed log index.", nil, nil),
	}
}

// collectors lists the metrics in the order they are described.
func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{
		m.writes, m.writeErrors, m.reads, m.readErrors, m.leaseReads, m.confirmedReads, m.forwarded,
		m.writeLatency, m.readLatency, m.commitLatency, m.entrySize,
	}
}

func (m *Metrics) observeWrite(d time.Duration, err error) {
	m.writes.Inc()
	if err != nil {
		m.writeErrors.Inc()
	}
	m.writeLatency.Observe(d.Seconds())
}

func (m *Metrics) observeRead(d time.Duration, err error) {
	m.reads.Inc()
	if err != nil {
		m.readErrors.Inc()
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
func (m *Metrics) CountForward() { m.forwarded.Inc() }

// CountRead records how a linearizable read was served: under the leader
// lease, or after a confirmation round.
func (m *Metrics) CountRead(underLease bool) {
	if underLease {
		m.leaseReads.Inc()
	} else {
		m.confirmedReads.Inc()
	}
}

// Collector returns a prometheus.Collector of the node's metrics: calls
// (abacus_writes_total, abacus_reads_total and their errors, latency
// histograms abacus_write_seconds and abacus_read_seconds), how
// linearizable reads were served, forwarded calls, commit latency and
// proposals per log entry, and gauges of the replica's state, term and
// log indexes read from Status at each collection. A service registers it
// in a registry of its own:
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(node.Collector())
//	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// Every call returns a collector of the same figures; register one per
// registry.
func (n *Node) Collector() prometheus.Collector { return nodeCollector{n} }

// nodeCollector collects a node's Metrics and its Status.
type nodeCollector struct{ n *Node }

// Describe implements prometheus.Collector.
func (c nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	m := c.n.metrics
	for _, x := range m.collectors() {
		x.Describe(ch)
	}
	ch <- m.state
	ch <- m.term
	ch <- m.applied
	ch <- m.commit
}

// Collect implements prometheus.Collector.
func (c nodeCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.n.metrics
	for _, x := range m.collectors() {
		x.Collect(ch)
	}
	st := c.n.Status()
	for _, s := range []string{"leader", "follower", "candidate", "replica", "shutdown"} {
		v := 0.0
		if st.State == s {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(m.state, prometheus.GaugeValue, v, s)
	}
	ch <- prometheus.MustNewConstMetric(m.term, prometheus.GaugeValue, float64(st.Term))
	ch <- prometheus.MustNewConstMetric(m.applied, prometheus.GaugeValue, float64(st.AppliedIndex))
	ch <- prometheus.MustNewConstMetric(m.commit, prometheus.GaugeValue, float64(st.CommitIndex))
}
