// Command abacus is the command line of an abacus cluster's HTTP API.
//
//	abacus add NAME [DELTA]         # prints the new value
//	abacus get NAME [--stale]
//	abacus set NAME VALUE           # prints the previous value
//	abacus cas NAME OLD NEW         # exit 3 when it did not swap
//	abacus del NAME                 # prints the previous value
//	abacus watch NAME               # one line per change
//	abacus lock NAME [--ttl 10s] [--wait 30s] -- CMD [ARGS...]
//	abacus status                   # members, leader, applied index
//	abacus state                    # every endpoint's applied index and state hash
//	abacus help [COMMAND]           # the overview, or a command's help
//
// Endpoints come from --cluster URL,URL,... or ABACUS_CLUSTER (default:
// the three nodes of `go run ./examples/cluster -serve`); the client fails
// over between them and retries writes without applying them twice.
// --width N zero-pads numbers, --json prints the JSON response.
//
// A usage error prints one line and a pointer to `abacus help COMMAND`.
// Exit codes: 0 ok, 1 error, 2 usage, 3 conflict (lock held, CAS mismatch,
// bounds, stale token), 4 unavailable or indeterminate.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/abacuskit/abacus/client"
	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/internal/tlsfiles"
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitConflict    = 3
	exitUnavailable = 4
)

// defaultCluster is where `go run ./examples/cluster -serve` listens.
const defaultCluster = "http://127.0.0.1:8101,http://127.0.0.1:8102,http://127.0.0.1:8103"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// cli is one invocation's settings and output.
type cli struct {
	stdout, stderr io.Writer
	getenv         func(string) string

	cluster   string
	width     int
	json      bool
	timeout   time.Duration
	tlsCert   string
	tlsKey    string
	tlsCA     string
	noRetries bool

	cmd string // the command being run, for the usage pointer

	c *client.Client
}

// exitError carries an exit code.
type exitErr struct {
	code int
	err  error
}

func (e *exitErr) Error() string { return e.err.Error() }

func usagef(format string, args ...any) error {
	return &exitErr{exitUsage, fmt.Errorf(format, args...)}
}

const usage = `usage: abacus [flags] COMMAND [ARGS]

commands:
  add NAME [DELTA] [--min N] [--max N]  add DELTA (default 1); prints the new value
  get NAME [--stale]                    prints the value
  set NAME VALUE                        prints the previous value
  cas NAME OLD NEW                      prints the value after; exit 3 when it did not swap
  del NAME                              prints the previous value
  watch NAME                            prints the value now and after every change
  lock NAME [--ttl 10s] [--wait 30s] [--holder ID] -- CMD [ARGS...]
                                        runs CMD holding the lock (ABACUS_LOCK_TOKEN is its token)
  status                                members, leader, applied index
  state                                 every endpoint's applied index and state hash
  help [COMMAND]                        this text, or a command's

flags (anywhere on the line):
` + globalFlags + `
exit codes: 0 ok, 1 error, 2 usage, 3 conflict, 4 unavailable or indeterminate

Run 'abacus help COMMAND' for more about a command.
`

const globalFlags = `  --cluster URL,...  endpoints (default $ABACUS_CLUSTER, else the -serve cluster on 127.0.0.1:8101-8103)
  --width N          zero-pad numbers to N digits
  --json             print the JSON response
  --timeout D        per-command deadline (default 15s)
  --no-retries       one attempt against the first endpoint
  --tls-cert, --tls-key, --tls-ca   mutual TLS
`

// commandHelp is each command's help text (abacus help CMD).
var commandHelp = map[string]string{
	"add": `usage: abacus add NAME [DELTA] [--min N] [--max N]

Adds DELTA (default 1, may be negative) to counter NAME and prints the new
value. With --min or --max the add is refused (exit 3, nothing changes)
when the result would leave [min, max]. Values are 64-bit signed integers;
an add past their range is refused (exit 3).
`,
	"get": `usage: abacus get NAME [--stale]

Prints counter NAME's value (0 for a counter never written). The read is
linearizable; --stale reads the answering node's state, which may lag.
`,
	"set": `usage: abacus set NAME VALUE

Sets counter NAME to VALUE and prints the previous value.
`,
	"cas": `usage: abacus cas NAME OLD NEW

Sets counter NAME to NEW if it is OLD, and prints the value after. Exits 3
when the value was not OLD (nothing changes).
`,
	"del": `usage: abacus del NAME

Deletes counter NAME and prints its previous value.
`,
	"watch": `usage: abacus watch NAME

Prints counter NAME's value now and a line after every change, until
interrupted.
`,
	"lock": `usage: abacus lock NAME [--ttl 10s] [--wait 30s] [--holder ID] -- CMD [ARGS...]

Acquires lock NAME (waiting up to --wait; exit 3 when it is held), runs CMD
with ABACUS_LOCK_NAME and ABACUS_LOCK_TOKEN (the fencing token) set, renews
the lease (--ttl, at least 300ms) while CMD runs, releases the lock when CMD
ends and exits with CMD's status. If the lock is lost while CMD runs, CMD
gets SIGTERM (SIGKILL 10s later) and lock exits 1. --holder names the
holder (default host:pid).
`,
	"status": `usage: abacus status

Prints the leader, term, applied index, backend and members (peer and HTTP
addresses, voter or not) as seen by the answering node.
`,
	"state": `usage: abacus state

Prints every endpoint's applied index and state-machine hash: nodes at one
index show one hash.
`,
	"help": `usage: abacus help [COMMAND]

Prints the overview, or COMMAND's help.
`,
}

// helpOf returns command cmd's help text.
func helpOf(cmd string) (string, bool) {
	if cmd == "delete" {
		cmd = "del"
	}
	h, ok := commandHelp[cmd]
	return h, ok
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr, getenv: getenv}
	err := c.dispatch(ctx, args)
	if err == nil {
		return exitOK
	}
	var ee *exitErr
	if errors.As(err, &ee) {
		if ee.err != nil && ee.err.Error() != "" {
			printError(stderr, ee.err)
		}
		if ee.code == exitUsage {
			if _, ok := helpOf(c.cmd); ok {
				fmt.Fprintf(stderr, "Run 'abacus help %s' for usage.\n", c.cmd)
			} else {
				fmt.Fprintln(stderr, "Run 'abacus help' for usage.")
			}
		}
		return ee.code
	}
	printError(stderr, err)
	return exitCode(err)
}

// printError prints err on one line after the program's name. Errors of
// the API already start with it ("abacus: ..."); it is not repeated.
func printError(w io.Writer, err error) {
	fmt.Fprintln(w, "abacus:", strings.TrimPrefix(err.Error(), "abacus: "))
}

// help prints the overview, or the help of the command args names.
func (c *cli) help(args []string) error {
	names, _, _, err := parse(c.flags("help"), args)
	if err != nil && !errors.Is(err, errHelp) {
		return err
	}
	switch len(names) {
	case 0:
		_, err := io.WriteString(c.stdout, usage)
		return err
	case 1:
		h, ok := helpOf(names[0])
		if !ok {
			return usagef("help: unknown command %q", names[0])
		}
		_, err := io.WriteString(c.stdout, h+"\nflags of every command:\n"+globalFlags)
		return err
	}
	return usagef("help: want at most one COMMAND")
}

// errHelp asks for the running command's help (-h, --help).
var errHelp = errors.New("help requested")

// exitCode maps an API error to the exit codes of docs/API.md.
func exitCode(err error) int {
	switch {
	case errors.Is(err, client.ErrUnavailable), errors.Is(err, client.ErrIndeterminate),
		errors.Is(err, context.DeadlineExceeded):
		return exitUnavailable
	case errors.Is(err, client.ErrLockHeld), errors.Is(err, client.ErrMismatch),
		errors.Is(err, client.ErrOverflow), errors.Is(err, client.ErrUnderflow),
		errors.Is(err, client.ErrOutOfRange), errors.Is(err, client.ErrStaleToken),
		errors.Is(err, client.ErrLeaseExpired):
		return exitConflict
	}
	return exitError
}

// flags returns a flag set with the global flags.
func (c *cli) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&c.cluster, "cluster", "", "endpoints")
	fs.IntVar(&c.width, "width", 0, "zero-pad numbers")
	fs.BoolVar(&c.json, "json", false, "print JSON")
	fs.DurationVar(&c.timeout, "timeout", 15*time.Second, "deadline")
	fs.BoolVar(&c.noRetries, "no-retries", false, "one attempt")
	fs.StringVar(&c.tlsCert, "tls-cert", "", "client certificate")
	fs.StringVar(&c.tlsKey, "tls-key", "", "client key")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "CA certificate")
	return fs
}

// parse parses flags anywhere among the arguments (up to "--") and
// returns the positional arguments and those after "--".
func parse(fs *flag.FlagSet, args []string) (pos, rest []string, dashdash bool, err error) {
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			return pos, args[i+1:], true, nil
		}
		if len(a) < 2 || a[0] != '-' || isNumber(a) {
			pos = append(pos, a)
			continue
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := fs.Lookup(name)
		if f == nil {
			if name == "h" || name == "help" {
				return nil, nil, false, errHelp
			}
			return nil, nil, false, usagef("unknown flag %s", a)
		}
		one := []string{a}
		if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !hasValue && !(ok && bf.IsBoolFlag()) {
			if i+1 >= len(args) {
				return nil, nil, false, usagef("flag %s needs a value", a)
			}
			one = append(one, args[i+1])
			i++
		}
		if err := fs.Parse(one); err != nil {
			return nil, nil, false, usagef("%v", err)
		}
	}
	return pos, nil, false, nil
}

// isNumber reports whether s is written as a decimal integer (whether or
// not it fits in 64 bits: "-99999999999999999999" is a number out of
// range, not a flag).
func isNumber(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	if s == "" {
		return false
	}
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

func (c *cli) dispatch(ctx context.Context, args []string) error {
	err := c.dispatchCommand(ctx, args)
	if errors.Is(err, errHelp) {
		if _, ok := helpOf(c.cmd); ok {
			return c.help([]string{c.cmd})
		}
		return c.help(nil)
	}
	return err
}

func (c *cli) dispatchCommand(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("no command")
	}
	// Global flags may come before the command.
	var cmd string
	globals := c.flags("abacus")
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if !strings.HasPrefix(a, "-") || isNumber(a) {
			cmd = a
			args = append(append([]string(nil), args[:i]...), args[i+1:]...)
			break
		}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if f := globals.Lookup(name); f != nil && !hasValue {
			if bf, ok := f.Value.(interface{ IsBoolFlag() bool }); !ok || !bf.IsBoolFlag() {
				i++ // skip the flag's value
			}
		}
	}
	if _, ok := helpOf(cmd); ok && cmd != "help" {
		c.cmd = cmd
	}
	switch cmd {
	case "add":
		return c.add(ctx, args)
	case "get":
		return c.get(ctx, args)
	case "set":
		return c.set(ctx, args)
	case "cas":
		return c.cas(ctx, args)
	case "del", "delete":
		return c.del(ctx, args)
	case "watch":
		return c.watch(ctx, args)
	case "lock":
		return c.lock(ctx, args)
	case "status":
		return c.status(ctx, args)
	case "state":
		return c.state(ctx, args)
	case "help":
		return c.help(args)
	case "":
		fs := c.flags("abacus")
		if _, _, _, err := parse(fs, args); err != nil {
			return err
		}
		return usagef("no command")
	}
	return usagef("unknown command %q", cmd)
}

// connect builds the client from the flags and environment.
func (c *cli) connect() error {
	eps := c.cluster
	if eps == "" {
		eps = c.getenv("ABACUS_CLUSTER")
	}
	if eps == "" {
		eps = defaultCluster
	}
	opts := []client.Option{client.WithTimeout(c.timeout)}
	if c.noRetries {
		opts = append(opts, client.WithoutRetries())
	}
	if c.tlsCert != "" || c.tlsCA != "" {
		conf, err := tlsfiles.Load(c.tlsCert, c.tlsKey, c.tlsCA)
		if err != nil {
			return &exitErr{exitUsage, err}
		}
		opts = append(opts, client.WithTLS(conf))
	}
	if c.width < 0 || c.width > 64 {
		return usagef("--width must be in [0, 64]")
	}
	var err error
	c.c, err = client.New(strings.Split(eps, ","), opts...)
	if err != nil {
		return &exitErr{exitUsage, err}
	}
	return nil
}

// command parses a command's arguments: want positional arguments,
// optional ones beyond them.
func (c *cli) command(fs *flag.FlagSet, args []string, want, optional int, names string) ([]string, error) {
	pos, _, dd, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	if dd {
		return nil, usagef("unexpected --")
	}
	if len(pos) < want || len(pos) > want+optional {
		return nil, usagef("%s: want %s", fs.Name(), names)
	}
	if err := c.connect(); err != nil {
		return nil, err
	}
	return pos, nil
}

func parseInt(what, s string) (int64, error) {
	v, err := strconv.ParseInt(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, usagef("%s %s is out of range: values are 64-bit signed integers (%d to %d)", what, s, int64(math.MinInt64), int64(math.MaxInt64))
	}
	if err != nil {
		return 0, usagef("%s %q is not an integer", what, s)
	}
	return v, nil
}

func (c *cli) num(v int64) string { return fmt.Sprintf("%0*d", c.width, v) }

// print writes the JSON response with --json, else text.
func (c *cli) print(resp any, text string) error {
	if c.json {
		b, err := json.Marshal(resp)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "%s\n", b)
		return err
	}
	_, err := fmt.Fprintln(c.stdout, text)
	return err
}

func (c *cli) add(ctx context.Context, args []string) error {
	fs := c.flags("add")
	min := fs.String("min", "", "lower bound")
	max := fs.String("max", "", "upper bound")
	pos, err := c.command(fs, args, 1, 1, "NAME [DELTA]")
	if err != nil {
		return err
	}
	delta := int64(1)
	if len(pos) == 2 {
		if delta, err = parseInt("DELTA", pos[1]); err != nil {
			return err
		}
	}
	var opts []client.CallOption
	if *min != "" {
		v, err := parseInt("--min", *min)
		if err != nil {
			return err
		}
		opts = append(opts, client.WithMin(v))
	}
	if *max != "" {
		v, err := parseInt("--max", *max)
		if err != nil {
			return err
		}
		opts = append(opts, client.WithMax(v))
	}
	r, err := c.c.Add(ctx, pos[0], delta, opts...)
	if err != nil {
		return err
	}
	return c.print(r, c.num(r.Value))
}

func (c *cli) get(ctx context.Context, args []string) error {
	fs := c.flags("get")
	stale := fs.Bool("stale", false, "read from the answering node's state")
	pos, err := c.command(fs, args, 1, 0, "NAME")
	if err != nil {
		return err
	}
	var opts []client.CallOption
	if *stale {
		opts = append(opts, client.WithStale())
	}
	r, err := c.c.Get(ctx, pos[0], opts...)
	if err != nil {
		return err
	}
	return c.print(r, c.num(r.Value))
}

func (c *cli) set(ctx context.Context, args []string) error {
	pos, err := c.command(c.flags("set"), args, 2, 0, "NAME VALUE")
	if err != nil {
		return err
	}
	v, err := parseInt("VALUE", pos[1])
	if err != nil {
		return err
	}
	r, err := c.c.Set(ctx, pos[0], v)
	if err != nil {
		return err
	}
	return c.print(r, c.num(r.Previous))
}

func (c *cli) cas(ctx context.Context, args []string) error {
	pos, err := c.command(c.flags("cas"), args, 3, 0, "NAME OLD NEW")
	if err != nil {
		return err
	}
	old, err := parseInt("OLD", pos[1])
	if err != nil {
		return err
	}
	new, err := parseInt("NEW", pos[2])
	if err != nil {
		return err
	}
	r, err := c.c.CompareAndSet(ctx, pos[0], old, new)
	if err != nil {
		return err
	}
	if err := c.print(r, c.num(r.Value)); err != nil {
		return err
	}
	if !r.Swapped {
		return &exitErr{exitConflict, fmt.Errorf("%s is %d, not %d: not swapped", pos[0], r.Value, old)}
	}
	return nil
}

func (c *cli) del(ctx context.Context, args []string) error {
	pos, err := c.command(c.flags("del"), args, 1, 0, "NAME")
	if err != nil {
		return err
	}
	r, err := c.c.Delete(ctx, pos[0])
	if err != nil {
		return err
	}
	return c.print(r, c.num(r.Previous))
}

func (c *cli) watch(ctx context.Context, args []string) error {
	pos, err := c.command(c.flags("watch"), args, 1, 0, "NAME")
	if err != nil {
		return err
	}
	err = c.c.Watch(ctx, pos[0], func(ev wire.WatchEvent) error {
		return c.print(ev, c.num(ev.Value))
	})
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return nil // interrupted: a normal end
	}
	return err
}

func (c *cli) status(ctx context.Context, args []string) error {
	if _, err := c.command(c.flags("status"), args, 0, 0, "no arguments"); err != nil {
		return err
	}
	st, err := c.c.Cluster(ctx)
	if err != nil {
		return err
	}
	if c.json {
		return c.print(st, "")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "leader         %s\n", orDash(st.Leader))
	fmt.Fprintf(&b, "term           %d\n", st.Term)
	fmt.Fprintf(&b, "applied index  %d (as seen by %s, %s)\n", st.AppliedIndex, st.Node, st.State)
	fmt.Fprintf(&b, "backend        %s\n", st.Backend)
	fmt.Fprintf(&b, "members\n")
	for _, m := range st.Members {
		role := "voter"
		if !m.Voter {
			role = "non-voter"
		}
		if m.ID == st.Leader {
			role += ", leader"
		}
		fmt.Fprintf(&b, "  %-8s peer %-21s http %-21s %s\n", m.ID, m.PeerAddr, orDash(m.HTTPAddr), role)
	}
	_, err = io.WriteString(c.stdout, b.String())
	return err
}

// state prints every endpoint's applied index and state-machine hash:
// nodes at one index must show one hash.
func (c *cli) state(ctx context.Context, args []string) error {
	if _, err := c.command(c.flags("state"), args, 0, 0, "no arguments"); err != nil {
		return err
	}
	type nodeState struct {
		Endpoint string `json:"endpoint"`
		wire.StateResponse
		Error string `json:"error,omitempty"`
	}
	var states []nodeState
	var errs []error
	for i, ep := range c.c.Endpoints() {
		st, err := c.c.NodeState(ctx, i)
		s := nodeState{Endpoint: ep, StateResponse: st}
		if err != nil {
			s.Error = err.Error()
			errs = append(errs, fmt.Errorf("%s: %w", ep, err))
		}
		states = append(states, s)
	}
	if c.json {
		if err := c.print(states, ""); err != nil {
			return err
		}
		return errors.Join(errs...)
	}
	var b strings.Builder
	for _, s := range states {
		if s.Error != "" {
			fmt.Fprintf(&b, "%-28s error: %s\n", s.Endpoint, s.Error)
			continue
		}
		fmt.Fprintf(&b, "%-28s %10d %s\n", s.Endpoint, s.AppliedIndex, s.Hash)
	}
	if _, err := io.WriteString(c.stdout, b.String()); err != nil {
		return err
	}
	return errors.Join(errs...)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
