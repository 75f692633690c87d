package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/jepsen/internal/history"
)

// Fault kinds the nemesis can inject (the -faults flag).
const (
	// FaultKill kills a random node or the leader with SIGKILL and
	// restarts it on the same data.
	FaultKill = "kill"
	// FaultPause stops a random node or the leader with SIGSTOP for longer
	// than the lock TTL, then continues it.
	FaultPause = "pause"
	// FaultPartition cuts peer links through the nodes' fault-injecting
	// transport, or in the kernel with -netns: one node or the leader
	// isolated, majority/minority halves, and with five nodes a ring and a
	// bridge.
	FaultPartition = "partition"
	// FaultDelay delays everything the nodes send to each other.
	FaultDelay = "delay"
	// FaultLoss cuts peer connections at random on one node or all.
	FaultLoss = "loss"
	// FaultClock offsets one node's clock by seconds.
	FaultClock = "clock"
	// FaultMember removes a node from the cluster, wipes its data, and
	// restarts it to join again (raft only: rabia has fixed membership).
	FaultMember = "member"
)

// AllFaults returns every fault kind.
func AllFaults() []string {
	return []string{FaultKill, FaultPause, FaultPartition, FaultDelay, FaultLoss, FaultClock, FaultMember}
}

// ErrUnknownFault reports an unknown fault kind.
var ErrUnknownFault = errors.New("jepsen: unknown fault kind")

// ParseFaults parses a comma-separated list of fault kinds; "none" or ""
// is the empty list and "all" every kind.
func ParseFaults(s string) ([]string, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "", "none":
		return nil, nil
	case "all":
		return AllFaults(), nil
	}
	var kinds []string
	for _, k := range strings.Split(s, ",") {
		k = strings.TrimSpace(k)
		if !slices.Contains(AllFaults(), k) {
			return nil, fmt.Errorf("%w %q (want some of %s)", ErrUnknownFault, k, strings.Join(AllFaults(), ","))
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return kinds, nil
}

// Nemesis injects faults on a seeded schedule, one at a time, and records
// each as a fault window in the history and a line in the fault log.
type Nemesis struct {
	cl    *Cluster
	rec   *history.Recorder
	rng   *mrand.Rand
	kinds []string
	log   *slog.Logger
	// Quiet is the least time between faults (up to twice it); Hold the
	// least time a fault lasts (up to twice it).
	Quiet, Hold time.Duration
	// LockTTL is the workload's lock TTL: pauses outlast it.
	LockTTL time.Duration

	mu      sync.Mutex
	out     io.Writer
	count   int
	removed string // a node removed from the membership and not yet back
	// skew is the largest clock offset injected so far.
	skew time.Duration
}

// MaxSkew returns the largest clock offset (either way) injected so far.
func (n *Nemesis) MaxSkew() time.Duration {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.skew
}

// NewNemesis returns a nemesis over cl choosing among kinds with a schedule
// drawn from seed. Fault-log lines go to out.
func NewNemesis(cl *Cluster, rec *history.Recorder, kinds []string, seed uint64, out io.Writer, log *slog.Logger) *Nemesis {
	return &Nemesis{
		cl: cl, rec: rec, kinds: kinds, log: log, out: out,
		rng:   mrand.New(mrand.NewPCG(seed, 0x6e656d65736973)),
		Quiet: 2 * time.Second, Hold: 2 * time.Second, LockTTL: time.Second,
	}
}

// Count returns how many faults have been injected.
func (n *Nemesis) Count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.count
}

func (n *Nemesis) logf(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(n.out, "%9.3fs ", float64(n.rec.Now())/1e9)
	fmt.Fprintf(n.out, format, args...)
	fmt.Fprintln(n.out)
}

// Run injects faults until ctx ends; the fault in progress then ends
// early and is healed before Run returns.
func (n *Nemesis) Run(ctx context.Context) {
	if len(n.kinds) == 0 {
		return
	}
	for {
		if pause(ctx, n.jitter(n.Quiet)) != nil {
			return
		}
		kind := n.kinds[n.rng.IntN(len(n.kinds))]
		n.mu.Lock()
		n.count++
		n.mu.Unlock()
		if err := n.inject(ctx, kind); err != nil {
			n.logf("fault %s: %v", kind, err)
			n.log.Warn("fault failed", "kind", kind, "err", err)
		}
	}
}

func (n *Nemesis) jitter(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d + time.Duration(n.rng.Int64N(int64(d)))
}

// target picks the leader half of the time (if one is known), else a
// random node.
func (n *Nemesis) target(ctx context.Context) (string, string) {
	ids := n.cl.IDs()
	if n.rng.IntN(2) == 0 {
		if l := n.cl.Leader(ctx); l != "" {
			return l, " (leader)"
		}
	}
	return ids[n.rng.IntN(len(ids))], ""
}

// window opens a fault window, waits out the hold (or ctx), calls heal and
// closes the window.
func (n *Nemesis) window(ctx context.Context, desc string, nodes []string, hold time.Duration, heal func() error) error {
	id := n.rec.OpenFault(desc, nodes...)
	n.logf("open  #%d %s", id, desc)
	_ = pause(ctx, hold)
	err := heal()
	n.rec.CloseFault(id)
	n.logf("close #%d %s", id, desc)
	return err
}

func (n *Nemesis) inject(ctx context.Context, kind string) error {
	switch kind {
	case FaultKill:
		id, why := n.target(ctx)
		if err := n.cl.Kill(ctx, id); err != nil {
			return err
		}
		return n.window(ctx, "kill -9 "+id+why, []string{id}, n.jitter(n.Hold/2), func() error {
			return n.cl.Start(id, "")
		})
	case FaultPause:
		id, why := n.target(ctx)
		if err := n.cl.Pause(id); err != nil {
			return err
		}
		return n.window(ctx, "SIGSTOP "+id+why, []string{id}, n.LockTTL*2+n.jitter(n.LockTTL/2), func() error {
			return n.cl.Resume(id)
		})
	case FaultPartition:
		desc, blocks := n.partition(ctx)
		var errs []error
		for id, peers := range blocks {
			errs = append(errs, n.cl.Partition(ctx, id, peers))
		}
		return errors.Join(append(errs, n.window(ctx, "partition "+desc, n.cl.IDs(), n.jitter(n.Hold), n.healNet))...)
	case FaultDelay:
		d := int64(20 + n.rng.IntN(130))
		var errs []error
		for _, id := range n.cl.IDs() {
			errs = append(errs, n.cl.Faults(ctx, id, wire.FaultsRequest{DelayMS: &d}))
		}
		desc := fmt.Sprintf("delay %dms on every peer link", d)
		return errors.Join(append(errs, n.window(ctx, desc, n.cl.IDs(), n.jitter(n.Hold), n.healNet))...)
	case FaultLoss:
		p := 0.05 + 0.25*n.rng.Float64()
		ids := n.cl.IDs()
		if n.rng.IntN(2) == 0 {
			ids = []string{ids[n.rng.IntN(len(ids))]}
		}
		var errs []error
		for _, id := range ids {
			errs = append(errs, n.cl.Faults(ctx, id, wire.FaultsRequest{Loss: &p}))
		}
		desc := fmt.Sprintf("loss %.2f on %s", p, strings.Join(ids, ","))
		return errors.Join(append(errs, n.window(ctx, desc, ids, n.jitter(n.Hold), n.healNet))...)
	case FaultClock:
		id, why := n.target(ctx)
		ms := int64(2000 + n.rng.IntN(28000))
		if n.rng.IntN(2) == 0 {
			ms = -ms
		}
		n.mu.Lock()
		n.skew = max(n.skew, time.Duration(max(ms, -ms))*time.Millisecond)
		n.mu.Unlock()
		if err := n.cl.Faults(ctx, id, wire.FaultsRequest{ClockOffsetMS: &ms}); err != nil {
			return err
		}
		desc := fmt.Sprintf("clock %+dms on %s%s", ms, id, why)
		return n.window(ctx, desc, []string{id}, n.jitter(n.Hold), func() error {
			zero := int64(0)
			return n.cl.Faults(context.Background(), id, wire.FaultsRequest{ClockOffsetMS: &zero})
		})
	case FaultMember:
		return n.member(ctx)
	}
	return fmt.Errorf("%w %q", ErrUnknownFault, kind)
}

// partition draws a partition and returns its description and, per node,
// the peers it blocks (each cut is made on both ends).
func (n *Nemesis) partition(ctx context.Context) (string, map[string][]string) {
	ids := n.cl.IDs()
	blocks := map[string][]string{}
	cut := func(a, b string) {
		blocks[a] = append(blocks[a], b)
		blocks[b] = append(blocks[b], a)
	}
	variants := []string{"isolate", "isolate-leader", "halves"}
	if len(ids) == 5 {
		variants = append(variants, "ring", "bridge")
	}
	variant := variants[n.rng.IntN(len(variants))]
	perm := slices.Clone(ids)
	n.rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
	switch variant {
	case "isolate", "isolate-leader":
		victim := perm[0]
		if variant == "isolate-leader" {
			if l := n.cl.Leader(ctx); l != "" {
				victim = l
			}
		}
		for _, id := range ids {
			if id != victim {
				cut(victim, id)
			}
		}
		return fmt.Sprintf("%s {%s} | rest", variant, victim), blocks
	case "halves":
		k := len(ids) / 2 // minority size
		minority, majority := perm[:k], perm[k:]
		for _, a := range minority {
			for _, b := range majority {
				cut(a, b)
			}
		}
		return fmt.Sprintf("halves {%s} | {%s}", strings.Join(minority, " "), strings.Join(majority, " ")), blocks
	case "ring":
		// Each node talks only to its two neighbours in perm: every node
		// sees a majority (itself and two), no two majorities agree.
		for i := range perm {
			for j := i + 1; j < len(perm); j++ {
				if d := j - i; d != 1 && d != len(perm)-1 {
					cut(perm[i], perm[j])
				}
			}
		}
		return fmt.Sprintf("ring %s", strings.Join(perm, "-")), blocks
	default: // bridge
		// {a b} and {d e} cannot talk; c talks to both.
		for _, a := range perm[:2] {
			for _, b := range perm[3:] {
				cut(a, b)
			}
		}
		return fmt.Sprintf("bridge {%s} - %s - {%s}", strings.Join(perm[:2], " "), perm[2], strings.Join(perm[3:], " ")), blocks
	}
}

// healNet removes injected network faults on every node.
func (n *Nemesis) healNet() error {
	var errs []error
	for _, id := range n.cl.IDs() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		errs = append(errs, n.cl.HealNet(ctx, id))
		cancel()
	}
	return errors.Join(errs...)
}

// member removes a node, wipes its data and has it join again.
func (n *Nemesis) member(ctx context.Context) error {
	if n.cl.backend != "raft" {
		n.logf("skip member change: the %s backend has fixed membership", n.cl.backend)
		return nil
	}
	victim, why := n.target(ctx)
	via := n.cl.other(victim)
	desc := fmt.Sprintf("member change: remove %s%s, wipe its data, rejoin via %s", victim, why, via)
	fid := n.rec.OpenFault(desc, victim)
	n.logf("open  #%d %s", fid, desc)
	defer func() {
		n.rec.CloseFault(fid)
		n.logf("close #%d %s", fid, desc)
	}()
	if err := retry(ctx, 10*time.Second, func(ctx context.Context) error {
		return n.cl.node(via).admin.RemoveMember(ctx, victim)
	}); err != nil && n.isMember(victim, via) {
		// An attempt whose outcome was unknown may still have removed
		// it; only a node still listed is left as it was.
		return fmt.Errorf("removing %s: %w", victim, err)
	}
	// Removed: from here on the node may only come back wiped, through
	// --join, so finish even if the run ends meanwhile.
	n.mu.Lock()
	n.removed = victim
	n.mu.Unlock()
	if err := n.cl.Kill(context.Background(), victim); err != nil && !errors.Is(err, ErrNodeDown) {
		return err
	}
	if err := n.cl.Wipe(victim); err != nil {
		return err
	}
	_ = pause(ctx, n.jitter(n.Hold/2))
	if err := n.cl.Start(victim, n.cl.node(via).httpAddr); err != nil {
		return err
	}
	// The node adds itself through --join; wait until the leader lists it.
	// A via that cannot be asked does not count as the node being back.
	err := retry(context.Background(), 20*time.Second, func(ctx context.Context) error {
		listed, err := n.lists(ctx, victim, via)
		if err != nil {
			return err
		}
		if !listed {
			return fmt.Errorf("%s not yet a member", victim)
		}
		return nil
	})
	if err == nil {
		n.mu.Lock()
		n.removed = ""
		n.mu.Unlock()
	}
	return err
}

// isMember reports whether node via lists id as a member; true when it
// cannot tell.
func (n *Nemesis) isMember(id, via string) bool {
	var listed bool
	err := retry(context.Background(), 5*time.Second, func(ctx context.Context) error {
		var err error
		listed, err = n.lists(ctx, id, via)
		return err
	})
	return err != nil || listed
}

// lists asks node via, once, whether it lists id as a member.
func (n *Nemesis) lists(ctx context.Context, id, via string) (bool, error) {
	st, err := n.cl.Status(ctx, via)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(st.Members, func(m wire.MemberInfo) bool { return m.ID == id }), nil
}

// HealAll ends every fault: continues paused nodes, restarts dead ones,
// removes network faults and clock offsets, and brings back a node a
// member change left out.
func (n *Nemesis) HealAll(ctx context.Context) error {
	n.mu.Lock()
	removed := n.removed
	n.mu.Unlock()
	var errs []error
	for _, id := range n.cl.IDs() {
		_ = n.cl.Resume(id)
		if n.cl.Running(id) {
			continue
		}
		join := ""
		if id == removed {
			if other := n.cl.other(id); other != "" {
				join = n.cl.node(other).httpAddr
			}
			_ = n.cl.Wipe(id)
		}
		n.logf("heal: restarting %s", id)
		errs = append(errs, n.cl.Start(id, join))
	}
	zero := int64(0)
	for _, id := range n.cl.IDs() {
		errs = append(errs, retry(ctx, 15*time.Second, func(ctx context.Context) error {
			if err := n.cl.HealNet(ctx, id); err != nil {
				return err
			}
			return n.cl.Faults(ctx, id, wire.FaultsRequest{ClockOffsetMS: &zero})
		}))
	}
	n.logf("heal: all faults removed")
	return errors.Join(errs...)
}

// retry calls fn until it succeeds or limit passes.
func retry(ctx context.Context, limit time.Duration, fn func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	for {
		actx, acancel := context.WithTimeout(ctx, 2*time.Second)
		err := fn(actx)
		acancel()
		if err == nil {
			return nil
		}
		if pause(ctx, 100*time.Millisecond) != nil {
			return err
		}
	}
}
