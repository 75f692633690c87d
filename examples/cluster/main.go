// Command cluster runs abacus as a real program: one process per node, each
// serving the HTTP API of docs/API.md.
//
//	go run ./examples/cluster                 # demo: a three-process cluster on loopback,
//	                                          # shown working, then stopped
//	go run ./examples/cluster -serve          # the same three processes, kept up until interrupted
//	go run ./examples/cluster node [flags]    # one node in the foreground
//
// The demo and -serve start the node processes by running this program
// again with "node"; each child runs in its own process group and is
// stopped (and, should this process die, killed) with it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// usageError is a mistake in the command line (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err == nil {
		return
	}
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	case errors.As(err, &ue):
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(2)
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(os.Stderr, "cluster: interrupted")
		os.Exit(130)
	}
	fmt.Fprintln(os.Stderr, "cluster:", err)
	os.Exit(1)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "node" {
		return runNode(ctx, args[1:], stderr)
	}
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	serve := fs.Bool("serve", false, "keep the three nodes up until interrupted")
	data := fs.String("data", "", "data directory (default: a temporary one for the demo, ./abacus-data with -serve)")
	peerPort := fs.Int("peer-port", 0, "first peer port, with -serve (default 7101; the demo picks free ports)")
	httpPort := fs.Int("http-port", 0, "first HTTP port, with -serve (default 8101; the demo picks free ports)")
	backend := fs.String("backend", "raft", "replication path of the nodes: raft or rabia")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage:\n  cluster [-serve] [flags]   demo, or three nodes kept up with -serve\n  cluster node [flags]       one node (cluster node -h lists its flags)\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Errorf("unexpected arguments %q", fs.Args())}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("finding this program: %w", err)
	}
	l := &launcher{self: self, out: stdout, backend: *backend}
	if *serve {
		if *data == "" {
			*data = "abacus-data"
		}
		if *peerPort == 0 {
			*peerPort = 7101
		}
		if *httpPort == 0 {
			*httpPort = 8101
		}
		return l.serve(ctx, *data, *peerPort, *httpPort)
	}
	return l.demo(ctx, *data)
}
