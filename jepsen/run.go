package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/abacuskit/abacus/client"
	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/jepsen/internal/check"
	"github.com/abacuskit/abacus/jepsen/internal/history"
	"github.com/abacuskit/abacus/jepsen/internal/report"
)

// Files the runner writes into a run directory, besides report's.
const (
	FaultLogFile = "faults.log"
	RunFile      = "run.json"
)

// ConvergenceMethod says how convergence is judged: after healing, the
// runner waits until every node has applied the highest commit index any
// node reports (GET /v1/cluster), reads every counter from every node with
// consistency=stale, and compares the nodes' state hashes taken at one
// applied index (GET /v1/cluster/state).
const ConvergenceMethod = "applied_index from GET /v1/cluster, final stale reads of every counter from every node, state hashes at one applied index from GET /v1/cluster/state"

// Config is one run of the harness.
type Config struct {
	// Bin is the node program's binary (BuildNode).
	Bin string
	// Backend is passed to the nodes as --backend (raft or rabia).
	Backend string
	// Nodes is the cluster size (3 or 5).
	Nodes int
	// Faults are the fault kinds the nemesis may inject (empty: none).
	Faults []string
	// Duration is how long the clients run.
	Duration time.Duration
	// Seed drives the fault schedule and the clients' choices.
	Seed uint64
	// Dir is the run directory (created).
	Dir string
	// Workload shapes the clients' requests.
	Workload Workload
	// Quiet and Hold tune the nemesis (see Nemesis); zero keeps its
	// defaults.
	Quiet, Hold time.Duration
	// CheckTimeout bounds porcupine per partition (default 60s).
	CheckTimeout time.Duration
	// Progress receives a progress line every ProgressEvery (default 5s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// Log receives the runner's structured log. Default: discard.
	Log *slog.Logger
	// NetNS runs every node in a network namespace of its own and cuts
	// partitions in the kernel (root and iproute2 only; see netns).
	NetNS bool
}

// Figures are a run's numbers for reports.
type Figures struct {
	Ops             int           `json:"ops"`
	Ok              int           `json:"ok"`
	Fail            int           `json:"fail"`
	Info            int           `json:"info"`
	Faults          int           `json:"faults"`
	CheckTime       time.Duration `json:"check_time_ns"`
	LongestWriteGap time.Duration `json:"longest_write_gap_ns"`
}

// RunInfo is the content of run.json: what was run and what came of it.
type RunInfo struct {
	Backend     string        `json:"backend"`
	Nodes       int           `json:"nodes"`
	Faults      []string      `json:"faults"`
	Duration    time.Duration `json:"duration_ns"`
	Seed        uint64        `json:"seed"`
	Workload    Workload      `json:"workload"`
	Status      check.Status  `json:"status"`
	Verdict     string        `json:"verdict"`
	Figures     Figures       `json:"figures"`
	Convergence string        `json:"convergence"`
	// Crashes are node exits the harness did not cause.
	Crashes []string `json:"crashes,omitempty"`
	// Notes are problems met while running (faults that could not be
	// injected, final reads that could not be made).
	Notes []string `json:"notes,omitempty"`
	// Stalls are periods in which the harness itself did not get to run
	// (an overloaded host): availability figures such as the longest gap
	// without a write are unreliable across them.
	Stalls []string `json:"stalls,omitempty"`
}

// Outcome is what Run returns.
type Outcome struct {
	// Dir is the run directory; Verdict the checkers' judgement, with the
	// runner's own checks appended.
	Dir     string
	Verdict *check.Verdict
	// Line is the one-line verdict.
	Line string
	// Info is what run.json holds.
	Info RunInfo
}

// ExitCode maps the outcome to the harness's exit status: 0 valid, 1
// invalid, 2 unknown.
func (o *Outcome) ExitCode() int {
	switch o.Info.Status {
	case check.StatusValid:
		return 0
	case check.StatusInvalid:
		return 1
	}
	return 2
}

func (cfg *Config) defaults() {
	if cfg.Backend == "" {
		cfg.Backend = "raft"
	}
	if cfg.Nodes <= 0 {
		cfg.Nodes = 3
	}
	if cfg.Workload.Counters == 0 {
		cfg.Workload = DefaultWorkload()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	if cfg.ProgressEvery <= 0 {
		cfg.ProgressEvery = 5 * time.Second
	}
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = time.Minute
	}
}

// Run starts a cluster, runs the workload and the nemesis for
// cfg.Duration, heals, reads the final state from every node, judges the
// history and writes the run directory. An error means the run could not
// be made or judged (its verdict is unknown).
func Run(ctx context.Context, cfg Config) (*Outcome, error) {
	cfg.defaults()
	log := cfg.Log
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, err
	}
	flog, err := os.Create(filepath.Join(cfg.Dir, FaultLogFile))
	if err != nil {
		return nil, err
	}
	defer flog.Close()

	cl, err := NewCluster(cfg.Bin, cfg.Backend, cfg.Dir, cfg.Nodes, log)
	if err != nil {
		return nil, err
	}
	if cfg.NetNS {
		if err := cl.UseNamespaces(ctx); err != nil {
			return nil, err
		}
		defer func() {
			if err := cl.Teardown(); err != nil {
				log.Warn("removing the network namespaces", "err", err)
			}
		}()
	}
	defer cl.StopAll(5 * time.Second)
	progress := func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "jepsen: "+format+"\n", args...)
	}
	progress("starting %d %s nodes in %s", cfg.Nodes, cfg.Backend, cfg.Dir)
	if err := cl.StartAll(); err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = cl.WaitReady(rctx)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("%w (node logs in %s)", err, filepath.Join(cfg.Dir, "nodes"))
	}

	rec := history.NewRecorder()
	var (
		stop    atomic.Bool
		tallies counts
		wg      sync.WaitGroup
		wl      = cfg.Workload
		proc    = 0
	)
	var clients []*client.Client
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	for _, n := range cl.nodes {
		for k := range wl.CounterClients + wl.LockClients + wl.InstanceClients {
			c, err := client.New([]string{"http://" + n.httpAddr}, client.WithoutRetries(), client.WithAttemptTimeout(wl.OpTimeout))
			if err != nil {
				return nil, err
			}
			clients = append(clients, c)
			w := &worker{proc: proc, node: n.id, c: c, rec: rec, wl: wl, counts: &tallies, stop: &stop,
				rng: mrand.New(mrand.NewPCG(cfg.Seed, uint64(proc)+1)), last: map[string]int64{}}
			proc++
			wg.Add(1)
			go func() {
				defer wg.Done()
				switch {
				case k < wl.CounterClients:
					w.runCounters()
				case k < wl.CounterClients+wl.LockClients:
					w.runLocks()
				default:
					w.runInstances()
				}
			}()
		}
	}
	nem := NewNemesis(cl, rec, cfg.Faults, cfg.Seed, flog, log)
	nem.LockTTL = wl.LockTTL
	if cfg.Quiet > 0 {
		nem.Quiet = cfg.Quiet
	}
	if cfg.Hold > 0 {
		nem.Hold = cfg.Hold
	}
	nctx, ncancel := context.WithTimeout(ctx, cfg.Duration)
	defer ncancel()
	stalls := watchStalls(nctx, rec, time.Second)
	nemDone := make(chan struct{})
	go func() {
		defer close(nemDone)
		nem.Run(nctx)
	}()
	progress("running %s for %v with faults [%s], seed %d", wl.summary(cfg.Nodes), cfg.Duration, strings.Join(cfg.Faults, ","), cfg.Seed)
	tick := time.NewTicker(cfg.ProgressEvery)
wait:
	for {
		select {
		case <-nctx.Done():
			break wait
		case <-tick.C:
			progress("%5.1fs  %d ok, %d fail, %d info, %d faults", float64(rec.Now())/1e9,
				tallies.ok.Load(), tallies.fail.Load(), tallies.info.Load(), nem.Count())
		}
	}
	tick.Stop()
	stop.Store(true)
	<-nemDone
	wg.Wait()
	progress("%5.1fs  clients stopped: %d ok, %d fail, %d info; healing", float64(rec.Now())/1e9,
		tallies.ok.Load(), tallies.fail.Load(), tallies.info.Load())

	var notes []string
	if err := nem.HealAll(ctx); err != nil {
		notes = append(notes, "healing: "+err.Error())
	}
	h := rec.History()
	in := check.Input{History: h}
	rctx, cancel = context.WithTimeout(ctx, 30*time.Second)
	if err := cl.WaitReady(rctx); err != nil {
		notes = append(notes, "after healing: "+err.Error())
	}
	cancel()
	recovery := recovered(ctx, cl, RecoveryLimit)
	// A clock offset may legitimately delay expiry by as much (leases
	// are timed by the state machine's clock): wait that long too.
	residue := instancesEnded(ctx, cl, wl.InstanceCounterNames(), max(10*wl.InstanceTTL, 10*time.Second)+nem.MaxSkew())
	finals, fnotes := finalReads(ctx, cl, wl.CounterNames())
	notes = append(notes, fnotes...)
	in.FinalReads = finals
	states, snote := stateHashes(ctx, cl, 15*time.Second)
	if snote != "" {
		notes = append(notes, snote)
	}
	in.NodeStates = states
	progress("%d final reads from %d nodes; checking %d ops", len(finals), cfg.Nodes, len(h.Ops))

	v := check.Run(ctx, in, check.Options{Timeout: cfg.CheckTimeout, Logger: log})
	for _, r := range []check.Result{leaseExpiry(h, LeaseMargin, 20), residue, recovery} {
		v.Add(r)
	}
	line, err := report.Write(ctx, cfg.Dir, in, v, report.Options{})
	if err != nil {
		return nil, err
	}
	info := RunInfo{
		Backend: cfg.Backend, Nodes: cfg.Nodes, Faults: cfg.Faults, Duration: cfg.Duration, Seed: cfg.Seed,
		Workload: wl, Status: v.Status, Verdict: line, Convergence: ConvergenceMethod,
		Crashes: cl.Crashes(), Notes: notes, Stalls: <-stalls,
		Figures: Figures{Ops: v.Summary.Ops, Ok: v.Summary.Ok, Fail: v.Summary.Fail, Info: v.Summary.Info,
			Faults: v.Summary.Faults, CheckTime: v.Elapsed, LongestWriteGap: time.Duration(v.Summary.LongestWriteGap.Nanos)},
	}
	for _, c := range info.Crashes {
		progress("WARNING: %s", c)
	}
	for _, n := range notes {
		progress("note: %s", n)
	}
	for _, s := range info.Stalls {
		progress("note: %s", s)
	}
	data, err := json.MarshalIndent(&info, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(cfg.Dir, RunFile), append(data, '\n'), 0o644); err != nil {
		return nil, err
	}
	return &Outcome{Dir: cfg.Dir, Verdict: v, Line: line, Info: info}, nil
}

// watchStalls notices when the harness's own goroutines did not run for
// longer than limit (a starved process on an overloaded host) until ctx
// ends, and then sends descriptions of the stalls.
func watchStalls(ctx context.Context, rec *history.Recorder, limit time.Duration) <-chan []string {
	out := make(chan []string, 1)
	go func() {
		var stalls []string
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		last := rec.Now()
		for {
			select {
			case <-ctx.Done():
				out <- stalls
				return
			case <-tick.C:
			}
			now := rec.Now()
			if gap := time.Duration(now - last); gap > limit && len(stalls) < 20 {
				stalls = append(stalls, fmt.Sprintf("harness stalled %v at %.3fs", gap.Round(time.Millisecond), float64(last)/1e9))
			}
			last = now
		}
	}()
	return out
}

func (w Workload) summary(nodes int) string {
	return fmt.Sprintf("%d counter and %d lock clients over %d counters and %d locks",
		nodes*w.CounterClients, nodes*w.LockClients, w.Counters, w.Locks)
}

// LeaseMargin is the drift margin the lease-expiry check allows a lock
// holder's view of its lease (the nodes' default DriftMargin is 50ms).
const LeaseMargin = 100 * time.Millisecond

// NameRecovery is the runner's check that the cluster serves writes again
// once every fault has been healed.
const NameRecovery = "recovery"

// RecoveryLimit is how long after healing every node must have completed a
// write.
const RecoveryLimit = 30 * time.Second

// ProbeCounter is the counter the recovery check writes; the workload never
// touches it.
const ProbeCounter = "jepsen-probe"

// recovered checks liveness after healing: through every node, an add to
// ProbeCounter must succeed within limit.
func recovered(ctx context.Context, cl *Cluster, limit time.Duration) check.Result {
	start := time.Now()
	res := check.Result{Name: NameRecovery, Status: check.StatusValid}
	var took []string
	for _, n := range cl.nodes {
		t0 := time.Now()
		err := retry(ctx, limit-time.Since(start), func(ctx context.Context) error {
			_, err := n.admin.Add(ctx, ProbeCounter, 1, client.WithIdempotencyKey(newKey()))
			return err
		})
		if err != nil {
			res.Violate(math.MaxInt, check.Violation{Key: ProbeCounter, Ops: []int{-1},
				Message: fmt.Sprintf("no write through %s succeeded within %v of healing: %v", n.id, limit, err)})
			continue
		}
		took = append(took, fmt.Sprintf("%s %v", n.id, time.Since(t0).Round(time.Millisecond)))
	}
	res.Detail = fmt.Sprintf("a write through every node after healing: %s; %d failed", strings.Join(took, ", "), res.ViolationCount)
	res.Elapsed = time.Since(start)
	return res
}

// NameInstances is the runner's own check of instance-aware counters.
const NameInstances = "instances"

// instancesEnded checks what instance-aware counters promise when their
// processes die: once every instance has ended (deleted, or its lease run
// out), its contributions have left every counter, so counters that only
// instances added to read 0 on every node. It polls each node's stale
// read of each such counter until it reads 0 or limit passes.
func instancesEnded(ctx context.Context, cl *Cluster, names []string, limit time.Duration) check.Result {
	start := time.Now()
	res := check.Result{Name: NameInstances, Status: check.StatusSkipped}
	if len(names) == 0 {
		return res
	}
	res.Status = check.StatusValid
	deadline := time.Now().Add(limit)
	var unread, residues int
	for _, n := range cl.nodes {
		for _, name := range names {
			var last *wire.GetResponse
			var lastErr error
			for {
				rctx, rcancel := context.WithTimeout(ctx, 2*time.Second)
				r, err := n.admin.Get(rctx, name, client.WithStale())
				rcancel()
				if err == nil {
					last, lastErr = &r, nil
					if r.Value == 0 {
						break
					}
				} else {
					lastErr = err
				}
				if time.Now().After(deadline) || pause(ctx, 100*time.Millisecond) != nil {
					break
				}
			}
			switch {
			case last != nil && last.Value == 0:
			case last != nil:
				residues++
				res.Violate(math.MaxInt, check.Violation{Key: name, Ops: []int{-1},
					Message: fmt.Sprintf("%s still reads %d on %s %v after the clients stopped; only instances added to it and all have ended",
						name, last.Value, n.id, limit)})
			default:
				unread++
				res.Status = check.Combine(res.Status, check.StatusUnknown)
				res.Violations = append(res.Violations, check.Violation{Key: name, Ops: []int{-1},
					Message: fmt.Sprintf("could not read %s on %s: %v", name, n.id, lastErr)})
			}
		}
	}
	res.Detail = fmt.Sprintf("%d instance counters on %d nodes: %d with contributions left after every instance ended, %d unread",
		len(names), len(cl.nodes), residues, unread)
	res.Elapsed = time.Since(start)
	return res
}

// stateHashes asks every node for its state hash until all report one
// applied index (time keeps moving the index while leases are pending, so
// a round may straddle an entry), and returns the hashes at that index. A
// note says why there are none when no round agreed within limit.
func stateHashes(ctx context.Context, cl *Cluster, limit time.Duration) ([]check.NodeState, string) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	last := "no round of state hashes"
	for {
		states := make([]check.NodeState, 0, len(cl.nodes))
		indexes := map[uint64]bool{}
		for _, n := range cl.nodes {
			st, err := n.admin.NodeState(ctx, 0)
			if err != nil {
				last = fmt.Sprintf("state hash of %s: %v", n.id, err)
				break
			}
			states = append(states, check.NodeState{Node: n.id, Hash: st.Hash})
			indexes[st.AppliedIndex] = true
		}
		if len(states) == len(cl.nodes) && len(indexes) == 1 {
			return states, ""
		}
		if len(states) == len(cl.nodes) {
			last = fmt.Sprintf("nodes at %d different applied indexes", len(indexes))
		}
		if pause(ctx, 20*time.Millisecond) != nil {
			return nil, "state hashes not compared: " + last
		}
	}
}

// finalReads waits until every node has applied everything committed,
// then reads every counter from every node with consistency=stale.
func finalReads(ctx context.Context, cl *Cluster, names []string) ([]check.FinalRead, []string) {
	var notes []string
	if err := settle(ctx, cl); err != nil {
		notes = append(notes, "settling: "+err.Error())
	}
	var finals []check.FinalRead
	for _, n := range cl.nodes {
		for _, name := range names {
			var res wire.GetResponse
			err := retry(ctx, 5*time.Second, func(ctx context.Context) error {
				var err error
				res, err = n.admin.Get(ctx, name, client.WithStale())
				return err
			})
			if err != nil {
				notes = append(notes, fmt.Sprintf("final read of %s on %s: %v", name, n.id, err))
				continue
			}
			finals = append(finals, check.FinalRead{Node: n.id, Key: name, Value: res.Value, Exists: res.Exists})
		}
	}
	return finals, notes
}

// settle waits until every node's applied index reaches the highest commit
// index any of them reported once the clients had stopped.
func settle(ctx context.Context, cl *Cluster) error {
	var target uint64
	err := retry(ctx, 10*time.Second, func(ctx context.Context) error {
		for _, n := range cl.nodes {
			st, err := n.admin.NodeStatus(ctx, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", n.id, err)
			}
			target = max(target, st.CommitIndex, st.AppliedIndex)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return retry(ctx, 30*time.Second, func(ctx context.Context) error {
		for _, n := range cl.nodes {
			st, err := n.admin.NodeStatus(ctx, 0)
			if err != nil {
				return fmt.Errorf("%s: %w", n.id, err)
			}
			if st.AppliedIndex < target {
				return fmt.Errorf("%s applied %d of %d", n.id, st.AppliedIndex, target)
			}
		}
		return nil
	})
}
