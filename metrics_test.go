package abacus_test

import (
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
)

// families gathers reg by metric name.
func families(t *testing.T, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	m := make(map[string]*dto.MetricFamily, len(fams))
	for _, f := range fams {
		m[f.GetName()] = f
	}
	return m
}

// sample finds the series of name whose labels include the given
// name/value pairs.
func sample(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) *dto.Metric {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no metric family %s", name)
	}
next:
	for _, m := range f.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			if !slices.ContainsFunc(m.GetLabel(), func(l *dto.LabelPair) bool {
				return l.GetName() == labels[i] && l.GetValue() == labels[i+1]
			}) {
				continue next
			}
		}
		return m
	}
	t.Fatalf("no %s series with labels %v", name, labels)
	return nil
}

// value is a counter's or gauge's value, or a histogram's sample count.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	m := sample(t, fams, name, labels...)
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	t.Fatalf("%s: unexpected type", name)
	return 0
}

// TestCollector registers a node's collector in a fresh registry and
// watches its figures follow writes and reads.
func TestCollector(t *testing.T) {
	c := testcluster.New(t, 1)
	ctx := testcluster.Context(t, 10*time.Second)
	n := c.Nodes[0]
	if _, err := n.Get(ctx, "warm-up"); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(n.Collector()); err != nil {
		t.Fatal(err)
	}
	before := families(t, reg)
	want := map[string]dto.MetricType{
		"abacus_writes_total":          dto.MetricType_COUNTER,
		"abacus_write_errors_total":    dto.MetricType_COUNTER,
		"abacus_reads_total":           dto.MetricType_COUNTER,
		"abacus_read_errors_total":     dto.MetricType_COUNTER,
		"abacus_lease_reads_total":     dto.MetricType_COUNTER,
		"abacus_confirmed_reads_total": dto.MetricType_COUNTER,
		"abacus_forwarded_total":       dto.MetricType_COUNTER,
		"abacus_write_seconds":         dto.MetricType_HISTOGRAM,
		"abacus_read_seconds":          dto.MetricType_HISTOGRAM,
		"abacus_commit_seconds":        dto.MetricType_HISTOGRAM,
		"abacus_entry_proposals":       dto.MetricType_HISTOGRAM,
		"abacus_state":                 dto.MetricType_GAUGE,
		"abacus_term":                  dto.MetricType_GAUGE,
		"abacus_applied_index":         dto.MetricType_GAUGE,
		"abacus_commit_index":          dto.MetricType_GAUGE,
	}
	for name, typ := range want {
		f, ok := before[name]
		if !ok {
			t.Errorf("no metric family %s", name)
			continue
		}
		if f.GetType() != typ {
			t.Errorf("%s is a %v, want %v", name, f.GetType(), typ)
		}
	}
	if len(before) != len(want) {
		t.Errorf("%d metric families, want %d", len(before), len(want))
	}

	const writes, reads = 3, 2
	for range writes {
		if _, err := n.Add(ctx, "hits", 1); err != nil {
			t.Fatal(err)
		}
	}
	for range reads {
		if _, err := n.Get(ctx, "hits"); err != nil {
			t.Fatal(err)
		}
	}
	after := families(t, reg)
	delta := func(name string, labels ...string) float64 {
		return value(t, after, name, labels...) - value(t, before, name, labels...)
	}
	for _, tc := range []struct {
		name string
		want float64
	}{
		{"abacus_writes_total", writes},
		{"abacus_write_seconds", writes},
		{"abacus_write_errors_total", 0},
		{"abacus_reads_total", reads},
		{"abacus_read_seconds", reads},
		{"abacus_read_errors_total", 0},
		{"abacus_forwarded_total", 0},
	} {
		if got := delta(tc.name); got != tc.want {
			t.Errorf("%s moved by %v, want %v", tc.name, got, tc.want)
		}
	}
	if got := delta("abacus_lease_reads_total") + delta("abacus_confirmed_reads_total"); got != reads {
		t.Errorf("lease and confirmed reads moved by %v, want %v", got, reads)
	}
	if got := delta("abacus_commit_seconds"); got < 1 || got > writes+1 {
		t.Errorf("abacus_commit_seconds counted %v entries, want 1..%d", got, writes+1)
	}
	entries := sample(t, after, "abacus_entry_proposals").GetHistogram()
	if got := entries.GetSampleSum() - sample(t, before, "abacus_entry_proposals").GetHistogram().GetSampleSum(); got < writes {
		t.Errorf("abacus_entry_proposals summed %v more proposals, want at least %d", got, writes)
	}
	if got := delta("abacus_applied_index"); got < 1 {
		t.Errorf("abacus_applied_index moved by %v", got)
	}
	if value(t, after, "abacus_applied_index") != float64(n.Status().AppliedIndex) {
		t.Errorf("abacus_applied_index %v, status %d", value(t, after, "abacus_applied_index"), n.Status().AppliedIndex)
	}
	if got := value(t, after, "abacus_term"); got < 1 {
		t.Errorf("abacus_term %v", got)
	}
	for _, s := range []string{"leader", "follower", "candidate", "replica", "shutdown"} {
		want := 0.0
		if s == "leader" {
			want = 1
		}
		if got := value(t, after, "abacus_state", "state", s); got != want {
			t.Errorf("abacus_state{state=%q} %v, want %v", s, got, want)
		}
	}

	// The histograms keep their bucket bounds.
	var bounds []float64
	for _, b := range sample(t, after, "abacus_write_seconds").GetHistogram().GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
	}
	if wantB := []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5}; !slices.Equal(bounds, wantB) {
		t.Errorf("abacus_write_seconds buckets %v, want %v", bounds, wantB)
	}

	// No global registry: a second registry takes a collector of the same
	// figures.
	other := prometheus.NewRegistry()
	other.MustRegister(n.Collector())
	if got := value(t, families(t, other), "abacus_writes_total"); got != value(t, after, "abacus_writes_total") {
		t.Errorf("second registry reads %v writes", got)
	}

	// A closed node is still collected, in state shutdown.
	c.Stop(0)
	if got := value(t, families(t, reg), "abacus_state", "state", "shutdown"); got != 1 {
		t.Errorf("abacus_state{state=\"shutdown\"} %v after close", got)
	}
}

// TestCollectorLint checks the node's metrics against Prometheus's naming
// and help conventions.
func TestCollectorLint(t *testing.T) {
	c := testcluster.New(t, 1)
	ctx := testcluster.Context(t, 10*time.Second)
	if _, err := c.Nodes[0].Add(ctx, "hits", 1); err != nil {
		t.Fatal(err)
	}
	problems, err := testutil.CollectAndLint(c.Nodes[0].Collector())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// A service registers the node's collector in its own registry and serves
// it beside its own metrics.
func ExampleNode_Collector() {
	node, err := abacus.Open(abacus.DefaultConfig())
	if err != nil {
		return
	}
	defer node.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(node.Collector())
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
}
