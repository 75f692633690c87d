// Command abacus-load drives an abacus cluster with a fixed workload for a
// while and prints throughput and latency.
//
// By default it starts a three-node cluster inside its own process: each
// node in a temporary data directory with a durable log (fsync on unless
// -nosync), on a free loopback port. With -attach it drives running nodes
// through their HTTP API instead (see docs/API.md).
//
// Usage:
//
//	abacus-load [flags]
//
// Flags:
//
//	-workload name  what the callers do (default add-many):
//	                  add-many    Add(1) on -counters counters, chosen at random
//	                  add-one     Add(1) on one counter
//	                  serial      Add(1) on one counter from a single caller
//	                  get-leader  linearizable Get on the leader (served under
//	                              its read lease), on -counters counters
//	                  fill        create -counters counters with batched adds,
//	                              then report memory; no timed phase
//	-callers n      concurrent callers, spread round-robin over the nodes
//	                (default 1000; serial always uses 1; get-leader puts
//	                them all on the leader)
//	-duration d     length of the timed phase (default 10s)
//	-warmup d       untimed phase before it (default 1s)
//	-counters n     counters for add-many, get-leader and fill (default 1000)
//	-nodes n        nodes of the in-process cluster (default 3)
//	-dir path       parent of the nodes' data directories (default: a
//	                temporary directory, removed at exit)
//	-nosync         skip fsync of the Raft log (not durable)
//	-inflight n     Config.MaxInflightEntries of the in-process nodes
//	                (default 0: the library's default)
//	-attach urls    comma-separated HTTP base URLs of running nodes
//	                (e.g. http://127.0.0.1:8080); no in-process cluster
//	-timeout d      per-call timeout (default 0: calls run until they
//	                finish; a context per call costs a timer)
//	-cpuprofile f   write a CPU profile of the timed phase to f
//	-memprofile f   write a heap profile at the end to f
//	-v              log the nodes' info messages to stderr
//
// Output: one line per figure: operations, errors, throughput, latency
// percentiles (p50, p90, p99, p99.9, max), the CPU the process used per
// operation (on a shared machine, throughput follows the CPU the process
// was given; CPU per operation does not), and with an in-process cluster
// the process's resident memory and Go heap, and the proposals per log
// entry on the leader.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/freeport"
	"github.com/prometheus/client_golang/prometheus"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "abacus-load:", err)
		os.Exit(1)
	}
}

type options struct {
	workload   string
	callers    int
	duration   time.Duration
	warmup     time.Duration
	counters   int
	nodes      int
	dir        string
	nosync     bool
	attach     string
	timeout    time.Duration
	inflight   int
	cpuprofile string
	memprofile string
	verbose    bool
}

func run() error {
	var o options
	flag.StringVar(&o.workload, "workload", "add-many", "add-many, add-one, serial, get-leader or fill")
	flag.IntVar(&o.callers, "callers", 1000, "concurrent callers")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "length of the timed phase")
	flag.DurationVar(&o.warmup, "warmup", time.Second, "untimed phase before it")
	flag.IntVar(&o.counters, "counters", 1000, "counters for add-many, get-leader and fill")
	flag.IntVar(&o.nodes, "nodes", 3, "nodes of the in-process cluster")
	flag.StringVar(&o.dir, "dir", "", "parent of the data directories (default: temporary)")
	flag.BoolVar(&o.nosync, "nosync", false, "skip fsync of the Raft log")
	flag.StringVar(&o.attach, "attach", "", "comma-separated HTTP base URLs of running nodes")
	flag.DurationVar(&o.timeout, "timeout", 0, "per-call timeout (0: none)")
	flag.IntVar(&o.inflight, "inflight", 0, "Config.MaxInflightEntries of the in-process nodes (0: default)")
	flag.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the timed phase to this file")
	flag.StringVar(&o.memprofile, "memprofile", "", "write a heap profile at the end to this file")
	flag.BoolVar(&o.verbose, "v", false, "log the nodes' info messages")
	flag.Parse()
	if o.callers < 1 || o.counters < 1 || o.nodes < 1 || o.duration <= 0 {
		return errors.New("-callers, -counters, -nodes and -duration must be positive")
	}
	if o.workload == "serial" {
		o.callers = 1
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var (
		targets []target
		cl      *cluster
		err     error
	)
	if o.attach != "" {
		for _, u := range strings.Split(o.attach, ",") {
			targets = append(targets, newHTTPTarget(strings.TrimRight(strings.TrimSpace(u), "/"), o.callers))
		}
	} else {
		cl, err = startCluster(ctx, o)
		if err != nil {
			return err
		}
		defer cl.close()
		for _, n := range cl.nodes {
			targets = append(targets, nodeTarget{n})
		}
	}

	names := make([]string, o.counters)
	for i := range names {
		names[i] = "c" + strconv.Itoa(i)
	}
	if o.workload == "fill" {
		if cl == nil {
			return errors.New("-workload fill needs the in-process cluster")
		}
		return fill(ctx, o, cl, names)
	}

	var pick func(caller int) target
	var op func(ctx context.Context, t target, rng *rand.Rand) error
	switch o.workload {
	case "add-many":
		op = func(ctx context.Context, t target, rng *rand.Rand) error {
			return t.add(ctx, names[rng.IntN(len(names))], 1)
		}
	case "add-one", "serial":
		op = func(ctx context.Context, t target, _ *rand.Rand) error { return t.add(ctx, "one", 1) }
	case "get-leader":
		// Every counter exists, so reads do real work.
		if err := preload(ctx, targets[0], names); err != nil {
			return err
		}
		op = func(ctx context.Context, t target, rng *rand.Rand) error {
			return t.get(ctx, names[rng.IntN(len(names))])
		}
		leader, err := findLeader(ctx, targets)
		if err != nil {
			return err
		}
		pick = func(int) target { return leader }
	default:
		return fmt.Errorf("unknown workload %q", o.workload)
	}
	if pick == nil {
		pick = func(caller int) target { return targets[caller%len(targets)] }
	}

	where := fmt.Sprintf("in-process, durable log: %v", !o.nosync)
	if cl == nil {
		where = "attached over HTTP"
	}
	fmt.Printf("workload %s: %d callers over %d node(s) (%s), %v (warm-up %v)\n",
		o.workload, o.callers, len(targets), where, o.duration, o.warmup)
	res, err := drive(ctx, o, pick, op)
	if err != nil {
		return err
	}
	res.print(o.duration, cl != nil)
	if cl != nil {
		cl.report()
	}
	return writeMemProfile(o.memprofile)
}

// result gathers what the callers measured.
type result struct {
	cpu       time.Duration // process CPU time (user+system) in the timed phase
	ops, errs uint64
	firstErr  error
	lat       *histogram
}

func (r *result) print(d time.Duration, inProcess bool) {
	fmt.Printf("operations  %d (%d errors)\n", r.ops, r.errs)
	if r.firstErr != nil {
		fmt.Printf("first error %v\n", r.firstErr)
	}
	fmt.Printf("throughput  %.0f ops/s\n", float64(r.ops)/d.Seconds())
	fmt.Printf("latency     p50 %v  p90 %v  p99 %v  p99.9 %v  max %v\n",
		r.lat.quantile(0.50), r.lat.quantile(0.90), r.lat.quantile(0.99), r.lat.quantile(0.999), r.lat.max)
	if r.ops > 0 && r.cpu > 0 {
		// On a shared machine throughput follows the CPU the process got;
		// CPU per operation does not.
		per := r.cpu / time.Duration(r.ops)
		whose := "all nodes and the callers"
		if !inProcess {
			whose = "the callers only"
		}
		fmt.Printf("cpu         %.2f cores used, %v CPU per operation (%s), %.0f ops/s per fully used core\n",
			r.cpu.Seconds()/d.Seconds(), per, whose, float64(time.Second)/float64(per))
	}
}

// cpuTime returns the process's user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// drive runs the callers through the warm-up and the timed phase.
func drive(ctx context.Context, o options, pick func(int) target, op func(context.Context, target, *rand.Rand) error) (*result, error) {
	var (
		measuring atomic.Bool
		stopping  atomic.Bool
		wg        sync.WaitGroup
		mu        sync.Mutex
		total     = &result{lat: newHistogram()}
	)
	for i := range o.callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := pick(i)
			rng := rand.New(rand.NewPCG(uint64(i), 0x5eed))
			local := &result{lat: newHistogram()}
			for !stopping.Load() && ctx.Err() == nil {
				cctx, cancel := ctx, context.CancelFunc(nil)
				if o.timeout > 0 {
					cctx, cancel = context.WithTimeout(ctx, o.timeout)
				}
				start := time.Now()
				err := op(cctx, t, rng)
				took := time.Since(start)
				if cancel != nil {
					cancel()
				}
				if !measuring.Load() {
					continue
				}
				if err != nil {
					local.errs++
					if local.firstErr == nil {
						local.firstErr = err
					}
					continue
				}
				local.ops++
				local.lat.record(took)
			}
			mu.Lock()
			total.ops += local.ops
			total.errs += local.errs
			if total.firstErr == nil {
				total.firstErr = local.firstErr
			}
			total.lat.merge(local.lat)
			mu.Unlock()
		}()
	}
	sleep(ctx, o.warmup)
	stopProfile, err := startCPUProfile(o.cpuprofile)
	if err != nil {
		stopping.Store(true)
		wg.Wait()
		return nil, err
	}
	cpu0 := cpuTime()
	measuring.Store(true)
	sleep(ctx, o.duration)
	measuring.Store(false)
	total.cpu = cpuTime() - cpu0
	stopping.Store(true)
	stopProfile()
	wg.Wait()
	return total, ctx.Err()
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func startCPUProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() { pprof.StopCPUProfile(); f.Close() }, nil
}

func writeMemProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.WriteHeapProfile(f)
}

// preload makes sure every counter exists, with batched adds of 0.
func preload(ctx context.Context, t target, names []string) error {
	for i := 0; i < len(names); i += abacus.MaxBatchOps {
		if err := t.batchAdd(ctx, names[i:min(i+abacus.MaxBatchOps, len(names))], 0); err != nil {
			return fmt.Errorf("preload: %w", err)
		}
	}
	return nil
}

// fill creates the counters with batched adds from several callers and
// reports memory.
func fill(ctx context.Context, o options, cl *cluster, names []string) error {
	start := time.Now()
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := nodeTarget{cl.nodes[i%len(cl.nodes)]}
			for {
				lo := int(next.Add(abacus.MaxBatchOps)) - abacus.MaxBatchOps
				if lo >= len(names) || ctx.Err() != nil {
					return
				}
				if err := t.batchAdd(ctx, names[lo:min(lo+abacus.MaxBatchOps, len(names))], 1); err != nil {
					errMu.Lock()
					first = errors.Join(first, err)
					errMu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	fmt.Printf("filled %d counters in %v\n", len(names), time.Since(start).Round(time.Millisecond))
	// Wait until every node holds them all.
	for _, n := range cl.nodes {
		for n.FSM().Stats().Counters < len(names) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	cl.report()
	return writeMemProfile(o.memprofile)
}

// target is a node the callers call: in process or over HTTP.
type target interface {
	add(ctx context.Context, name string, delta int64) error
	get(ctx context.Context, name string) error
	batchAdd(ctx context.Context, names []string, delta int64) error
	leader(ctx context.Context) (bool, error)
}

type nodeTarget struct{ n *abacus.Node }

func (t nodeTarget) add(ctx context.Context, name string, delta int64) error {
	_, err := t.n.Add(ctx, name, delta)
	return err
}

func (t nodeTarget) get(ctx context.Context, name string) error {
	_, err := t.n.Get(ctx, name)
	return err
}

func (t nodeTarget) batchAdd(ctx context.Context, names []string, delta int64) error {
	ops := make([]abacus.Command, len(names))
	for i, name := range names {
		ops[i] = abacus.Command{Op: abacus.OpAdd, Name: name, Delta: delta}
	}
	_, err := t.n.Batch(ctx, ops)
	return err
}

func (t nodeTarget) leader(context.Context) (bool, error) {
	return t.n.Status().State == "leader", nil
}

func findLeader(ctx context.Context, targets []target) (target, error) {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, t := range targets {
			ok, err := t.leader(ctx)
			if err == nil && ok {
				return t, nil
			}
		}
		sleep(ctx, 20*time.Millisecond)
	}
	return nil, errors.New("no leader among the nodes")
}

// httpTarget drives a node through its HTTP API.
type httpTarget struct {
	base string
	c    *http.Client
}

func newHTTPTarget(base string, callers int) *httpTarget {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = callers
	return &httpTarget{base: base, c: &http.Client{Transport: tr}}
}

func (t *httpTarget) do(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, t.base+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := t.c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func (t *httpTarget) add(ctx context.Context, name string, delta int64) error {
	return t.do(ctx, http.MethodPost, "/v1/counters/"+name+"/add", map[string]int64{"delta": delta}, nil)
}

func (t *httpTarget) get(ctx context.Context, name string) error {
	return t.do(ctx, http.MethodGet, "/v1/counters/"+name+"?consistency=linearizable", nil, nil)
}

func (t *httpTarget) batchAdd(ctx context.Context, names []string, delta int64) error {
	type op struct {
		Op    string `json:"op"`
		Name  string `json:"name"`
		Delta int64  `json:"delta"`
	}
	ops := make([]op, len(names))
	for i, n := range names {
		ops[i] = op{"add", n, delta}
	}
	return t.do(ctx, http.MethodPost, "/v1/batch", map[string]any{"ops": ops}, nil)
}

func (t *httpTarget) leader(ctx context.Context) (bool, error) {
	var st struct {
		Node   string `json:"node"`
		Leader string `json:"leader"`
	}
	if err := t.do(ctx, http.MethodGet, "/v1/cluster", nil, &st); err != nil {
		return false, err
	}
	return st.Node != "" && st.Node == st.Leader, nil
}

// cluster is the in-process cluster.
type cluster struct {
	nodes []*abacus.Node
	dir   string
	temp  bool
}

func startCluster(ctx context.Context, o options) (*cluster, error) {
	cl := &cluster{dir: o.dir}
	if cl.dir == "" {
		d, err := os.MkdirTemp("", "abacus-load-")
		if err != nil {
			return nil, err
		}
		cl.dir, cl.temp = d, true
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	var peers []abacus.Member
	cfgs := make([]abacus.Config, o.nodes)
	addrs, err := freeport.Addrs(o.nodes)
	if err != nil {
		return nil, err
	}
	for i := range cfgs {
		addr := addrs[i]
		c := abacus.DefaultConfig()
		c.ID = fmt.Sprintf("n%d", i+1)
		c.Dir = filepath.Join(cl.dir, c.ID)
		c.BindAddr = addr
		c.NoSync = o.nosync
		c.MaxInflightEntries = o.inflight
		c.Logger = logger
		cfgs[i] = c
		peers = append(peers, abacus.Member{ID: c.ID, Addr: addr, Voter: true})
	}
	for i := range cfgs {
		if o.nodes > 1 {
			cfgs[i].Peers = peers
		}
		n, err := abacus.Open(cfgs[i])
		if err != nil {
			cl.close()
			return nil, err
		}
		cl.nodes = append(cl.nodes, n)
	}
	// Wait for a leader that accepts writes.
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := cl.nodes[0].Add(wctx, "warm", 0); err != nil {
		cl.close()
		return nil, fmt.Errorf("cluster did not become ready: %w", err)
	}
	return cl, nil
}

func (cl *cluster) close() {
	for _, n := range cl.nodes {
		n.Close()
	}
	if cl.temp {
		os.RemoveAll(cl.dir)
	}
}

// report prints memory figures and the leader's coalescing.
func (cl *cluster) report() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	rss := residentBytes()
	n := len(cl.nodes)
	fmt.Printf("memory      RSS %.0f MB for %d nodes (%.0f MB per node); Go heap in use %.0f MB, obtained %.0f MB\n",
		float64(rss)/(1<<20), n, float64(rss)/(1<<20)/float64(n), float64(ms.HeapInuse)/(1<<20), float64(ms.HeapSys-ms.HeapReleased)/(1<<20))
	// What the nodes need once the heap left over from past garbage is
	// returned to the OS.
	debug.FreeOSMemory()
	rss = residentBytes()
	fmt.Printf("memory      after returning free heap to the OS: RSS %.0f MB (%.0f MB per node)\n",
		float64(rss)/(1<<20), float64(rss)/(1<<20)/float64(n))
	for _, node := range cl.nodes {
		st := node.Status()
		if st.State != "leader" {
			continue
		}
		if count, sum, ok := entryProposals(node); ok && count > 0 {
			fmt.Printf("leader      %s: %d log entries, %.1f proposals per entry\n", st.ID, count, sum/float64(count))
		}
	}
}

// entryProposals reads the node's abacus_entry_proposals histogram: how
// many log entries it applied and how many proposals they held.
func entryProposals(node *abacus.Node) (count uint64, sum float64, ok bool) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(node.Collector()); err != nil {
		return 0, 0, false
	}
	families, err := reg.Gather()
	if err != nil {
		return 0, 0, false
	}
	for _, f := range families {
		if f.GetName() != "abacus_entry_proposals" || len(f.GetMetric()) != 1 {
			continue
		}
		h := f.GetMetric()[0].GetHistogram()
		return h.GetSampleCount(), h.GetSampleSum(), h != nil
	}
	return 0, 0, false
}

// residentBytes reads the process's resident set size (Linux), or 0.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// histogram is a log-linear latency histogram: 32 buckets per power of
// two of nanoseconds, about 3% resolution.
type histogram struct {
	counts [64 * 32]uint64
	n      uint64
	max    time.Duration
}

func newHistogram() *histogram { return &histogram{} }

func bucketOf(d time.Duration) int {
	v := uint64(max(d, 1))
	exp := 63 - bits.LeadingZeros64(v)
	if exp < 5 {
		return int(v)
	}
	sub := (v >> (exp - 5)) & 31
	return (exp-4)*32 + int(sub)
}

func bucketValue(i int) time.Duration {
	if i < 32 {
		return time.Duration(i)
	}
	exp := i/32 + 4
	sub := uint64(i % 32)
	return time.Duration((32 + sub) << (exp - 5))
}

func (h *histogram) record(d time.Duration) {
	h.counts[bucketOf(d)]++
	h.n++
	h.max = max(h.max, d)
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	var cum uint64
	for i, c := range h.counts {
		cum += c
		if cum >= rank {
			return bucketValue(i)
		}
	}
	return h.max
}
