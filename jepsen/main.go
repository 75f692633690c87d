// Command jepsen is the fault-injection harness of abacus. It builds the
// node program (examples/cluster), starts a cluster of real node processes
// on loopback, runs client goroutines against their HTTP API while a
// nemesis injects faults on a seeded schedule, heals, reads the final state
// from every node and judges the history with the checkers of
// jepsen/internal/check:
//
//	go run ./jepsen -backend raft -faults kill,pause,partition,clock -time 60s -nodes 3 -seed 7
//
// Fault kinds (-faults, comma-separated, or "all" or "none"):
//
//	kill       SIGKILL a random node or the leader, restart it on its data
//	pause      SIGSTOP a random node or the leader for over twice the lock TTL
//	partition  through the nodes' fault-injecting transport (POST /v1/admin/faults):
//	           one node or the leader isolated, majority/minority halves,
//	           and with -nodes 5 a ring and a bridge
//	delay      a delay on every peer link
//	loss       random connection cuts on one node's or every node's peer links
//	clock      one node's clock offset by seconds (clock_offset_ms)
//	member     remove a node (DELETE /v1/cluster/members/{id}), wipe its data,
//	           restart it with --join (raft only)
//
// Partitions use the in-process transport layer, so no root is needed.
// With -netns (root and iproute2's ip), every node runs in a network
// namespace of its own, joined to each peer by a veth pair and to the
// harness by another, and partitions set the veth pairs down, so the
// kernel cuts the nodes' real connections; delay, loss and clock faults
// still go through the admin endpoint:
//
//	sudo go run ./jepsen -netns -backend rabia -faults kill,pause,partition -time 60s
//
// Workload: counters (add, set, cas, delete, get; half of them add-only,
// one with a bounded add), locks whose holders make fenced writes, keep
// their leases alive and sometimes stall past the TTL, and instances that
// add to instance-aware counters and then are deleted or die (their lease
// runs out). Besides the checkers of jepsen/internal/check, the runner
// checks that no lock is granted while an earlier holder's lease is still
// valid by the holder's own rule ("lease-expiry"), that once every instance
// has ended, counters only instances added to read 0 on every node
// ("instances"), and that after healing a write through every node
// succeeds within 30s ("recovery").
//
// Clients are pinned to one node each and use the Go client without
// retries or failover, so every outcome is recorded: ok (including
// refusals such as overflow, lock_held, stale_token), fail (503: not
// applied) or info (504, timeout, reset: unknown). Writes carry an
// Idempotency-Key and are sent again with it after fail or info; the
// checkers merge such attempts.
//
// Everything goes to a run directory (-out, default
// ./jepsen-runs/<time>-<backend>-<seed>): history.jsonl, results.json,
// verdict.txt, porcupine/*.html (with the fault windows), faults.log,
// nodes/*.log, run.json (figures). Progress lines go to stderr while it
// runs; the one-line verdict is printed last. Exit status: 0 valid, 1
// invalid, 2 unknown (or the run could not be made).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the command line: it returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("jepsen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	backend := fs.String("backend", "raft", "replication path of the nodes: raft or rabia")
	faults := fs.String("faults", "kill,pause,partition,clock", "fault kinds, comma-separated: "+strings.Join(AllFaults(), ",")+", or all or none")
	dur := fs.Duration("time", 60*time.Second, "how long the clients run")
	nodes := fs.Int("nodes", 3, "cluster size: 3 or 5")
	seed := fs.Uint64("seed", 0, "seed of the fault schedule and the clients' choices (default: from the time)")
	out := fs.String("out", "", "run directory (default ./jepsen-runs/<time>-<backend>-<seed>)")
	bin := fs.String("bin", "", "node program binary to use instead of building ./examples/cluster")
	tags := fs.String("tags", "", "build tags for the node program (e.g. abacus_buggy_reads)")
	checkTimeout := fs.Duration("check-timeout", time.Minute, "porcupine time limit per counter or lock")
	verbose := fs.Bool("v", false, "log the runner's details to stderr")
	netns := fs.Bool("netns", false, "run each node in a network namespace of its own and cut partitions in the kernel (root, iproute2)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	kinds, err := ParseFaults(*faults)
	if err != nil || fs.NArg() > 0 || (*nodes != 3 && *nodes != 5) || (*backend != "raft" && *backend != "rabia") {
		if err == nil {
			err = fmt.Errorf("want -nodes 3 or 5, -backend raft or rabia, and no arguments")
		}
		fmt.Fprintln(stderr, "jepsen:", err)
		return 2
	}
	if *seed == 0 {
		*seed = uint64(time.Now().UnixNano()%1_000_000) + 1
	}
	if *out == "" {
		*out = filepath.Join("jepsen-runs", fmt.Sprintf("%s-%s-%d", time.Now().UTC().Format("20060102T150405Z"), *backend, *seed))
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	if *bin == "" {
		root, err := ModuleRoot()
		if err != nil {
			fmt.Fprintln(stderr, "jepsen:", err)
			return 2
		}
		tmp, err := os.MkdirTemp("", "jepsen-bin-")
		if err != nil {
			fmt.Fprintln(stderr, "jepsen:", err)
			return 2
		}
		defer os.RemoveAll(tmp)
		fmt.Fprintln(stderr, "jepsen: building the node program")
		if *bin, err = BuildNode(ctx, root, tmp, *tags); err != nil {
			fmt.Fprintln(stderr, "jepsen:", err)
			return 2
		}
	}
	o, err := Run(ctx, Config{
		Bin: *bin, Backend: *backend, Nodes: *nodes, Faults: kinds, Duration: *dur, Seed: *seed,
		Dir: *out, CheckTimeout: *checkTimeout, Progress: stderr, Log: log, NetNS: *netns,
	})
	if err != nil {
		fmt.Fprintln(stderr, "jepsen:", err)
		fmt.Fprintln(stdout, "UNKNOWN: the run could not be completed:", err)
		return 2
	}
	fmt.Fprintf(stderr, "jepsen: run directory %s\n", o.Dir)
	fmt.Fprintln(stdout, o.Line)
	return o.ExitCode()
}
