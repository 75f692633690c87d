package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/client"
	"github.com/abacuskit/abacus/httpapi"
	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/internal/tlsfiles"
	"github.com/abacuskit/abacus/rabia"
)

// nodeFlags are the flags of `cluster node` (docs/API.md).
type nodeFlags struct {
	id, data, peerAddr, httpAddr string
	peers, peerHTTP, join        string
	backend                      string
	rabiaSecret                  string
	tlsCert, tlsKey, tlsCA       string
	roles                        string
	logFormat, logLevel          string
	faults                       bool
}

func parseNodeFlags(args []string, stderr io.Writer) (*nodeFlags, error) {
	f := &nodeFlags{}
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.id, "id", "", "node id, stable for the node's lifetime (required)")
	fs.StringVar(&f.data, "data", "", "data directory; a node restarted on it keeps its state (required)")
	fs.StringVar(&f.peerAddr, "peer-addr", "", "host:port for node-to-node traffic (required)")
	fs.StringVar(&f.httpAddr, "http-addr", "", "host:port for the HTTP API (required)")
	fs.StringVar(&f.peers, "peers", "", "id=host:port,... peer addresses of all initial members, this node included")
	fs.StringVar(&f.peerHTTP, "peer-http", "", "id=host:port,... HTTP addresses reported by /v1/cluster in place of those the members advertise (optional)")
	fs.StringVar(&f.join, "join", "", "HTTP address of any member, to join a running cluster instead of --peers")
	fs.StringVar(&f.backend, "backend", "raft", "replication path: raft or rabia")
	fs.StringVar(&f.rabiaSecret, "rabia-secret", os.Getenv("ABACUS_RABIA_SECRET"),
		"secret keying rabia's common coin, the same on every node, at least 16 bytes (default $ABACUS_RABIA_SECRET; unset: derived from the member list, which is public)")
	fs.StringVar(&f.tlsCert, "tls-cert", "", "certificate (PEM) for mutual TLS on peer traffic and the HTTP API")
	fs.StringVar(&f.tlsKey, "tls-key", "", "private key (PEM) of --tls-cert")
	fs.StringVar(&f.tlsCA, "tls-ca", "", "CA certificate (PEM) that verifies peers and clients")
	fs.StringVar(&f.roles, "roles", "", "allow-list mapping client certificates to roles (read, write, admin); needs --tls-*; unset: every certificate from --tls-ca is admin")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.BoolVar(&f.faults, "faults", false, "enable fault injection (POST /v1/admin/faults); tests only")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var missing []string
	for _, req := range []struct{ name, v string }{
		{"--id", f.id}, {"--data", f.data}, {"--peer-addr", f.peerAddr}, {"--http-addr", f.httpAddr},
	} {
		if req.v == "" {
			missing = append(missing, req.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("missing required flags: %s", strings.Join(missing, ", "))
	}
	if f.join != "" && f.peers != "" {
		return nil, errors.New("--join and --peers are exclusive")
	}
	if (f.tlsCert == "") != (f.tlsKey == "") || (f.tlsCert != "" && f.tlsCA == "") {
		return nil, errors.New("--tls-cert, --tls-key and --tls-ca go together")
	}
	if f.roles != "" && f.tlsCert == "" {
		return nil, errors.New("--roles needs --tls-cert, --tls-key and --tls-ca: roles are given to client certificates")
	}
	if f.logFormat != "text" && f.logFormat != "json" {
		return nil, fmt.Errorf("--log-format %q: want text or json", f.logFormat)
	}
	return f, nil
}

// parseAddrList parses "id=host:port,...".
func parseAddrList(s string) (map[string]string, []string, error) {
	m := map[string]string{}
	var order []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		id, addr, ok := strings.Cut(part, "=")
		if !ok || id == "" {
			return nil, nil, fmt.Errorf("%q: want id=host:port", part)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return nil, nil, fmt.Errorf("%q: %v", part, err)
		}
		if _, dup := m[id]; dup {
			return nil, nil, fmt.Errorf("duplicate id %q", id)
		}
		m[id] = addr
		order = append(order, id)
	}
	return m, order, nil
}

func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %v", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return slog.New(slog.NewTextHandler(w, opts)), nil
}

// loadTLS returns the node's mutual-TLS configuration, or nil without
// --tls-cert. The CA both verifies the peers a node dials and is required
// of every client that connects to it.
func loadTLS(cert, key, ca string) (*tls.Config, error) {
	if cert == "" {
		return nil, nil
	}
	conf, err := tlsfiles.Load(cert, key, ca)
	if err != nil {
		return nil, err
	}
	conf.ClientCAs = conf.RootCAs
	conf.ClientAuth = tls.RequireAndVerifyClientCert
	return conf, nil
}

// runNode runs one node in the foreground until ctx ends (SIGTERM or
// SIGINT), then stops it cleanly.
func runNode(ctx context.Context, args []string, stderr io.Writer) error {
	f, err := parseNodeFlags(args, stderr)
	if err != nil {
		return usageError{err}
	}
	log, err := newLogger(stderr, f.logFormat, f.logLevel)
	if err != nil {
		return usageError{err}
	}
	tlsConf, err := loadTLS(f.tlsCert, f.tlsKey, f.tlsCA)
	if err != nil {
		return err
	}
	var roles *httpapi.Roles
	if f.roles != "" {
		if roles, err = httpapi.LoadRoles(f.roles); err != nil {
			return err
		}
	}
	cfg := abacus.DefaultConfig()
	cfg.ID, cfg.Dir, cfg.BindAddr, cfg.HTTPAddr = f.id, f.data, f.peerAddr, f.httpAddr
	cfg.TLS, cfg.Logger, cfg.Faults = tlsConf, log, f.faults
	var clock *abacus.OffsetClock
	if f.faults {
		clock = &abacus.OffsetClock{}
		cfg.Clock = clock
	}
	switch f.backend {
	case "raft":
	case "rabia":
		if f.join != "" {
			return usageError{errors.New("the rabia backend has fixed membership: use --peers, not --join")}
		}
		cfg.Backend = rabia.Backend(rabia.Options{Secret: []byte(f.rabiaSecret)})
	default:
		return usageError{fmt.Errorf("--backend %q: want raft or rabia", f.backend)}
	}
	peers, order, err := parseAddrList(f.peers)
	if err != nil {
		return usageError{fmt.Errorf("--peers: %v", err)}
	}
	for _, id := range order {
		cfg.Peers = append(cfg.Peers, abacus.Member{ID: id, Addr: peers[id], Voter: true})
	}
	cfg.Join = f.join != ""
	httpAddrs, _, err := parseAddrList(f.peerHTTP)
	if err != nil {
		return usageError{fmt.Errorf("--peer-http: %v", err)}
	}
	httpAddrs[f.id] = f.httpAddr
	dir := httpapi.NewDirectory(httpAddrs)

	ln, err := net.Listen("tcp", f.httpAddr)
	if err != nil {
		return fmt.Errorf("http listener: %w", err)
	}
	ln = httpapi.Listener(ln) // net/http's own error replies in JSON too
	node, err := abacus.Open(cfg)
	if err != nil {
		ln.Close()
		return err
	}
	opts := []httpapi.Option{httpapi.WithDirectory(dir), httpapi.WithLogger(log.With("node", f.id))}
	if f.faults {
		opts = append(opts, httpapi.WithFaults(clock))
	}
	if roles != nil {
		opts = append(opts, httpapi.WithAuthorizer(roles))
	}
	srv := &http.Server{
		Handler:           httpapi.New(node, opts...),
		ReadHeaderTimeout: 10 * time.Second,
		MaxHeaderBytes:    httpapi.ServerMaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		TLSConfig:         tlsConf,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	served := make(chan error, 1)
	go func() {
		if tlsConf != nil {
			served <- srv.ServeTLS(ln, "", "")
		} else {
			served <- srv.Serve(ln)
		}
	}()
	log.Info("serving", "node", f.id, "http", ln.Addr().String(), "peer", node.Addr(), "backend", f.backend, "pid", os.Getpid())
	switch {
	case tlsConf == nil:
		warnUnauthenticated(log, ln.Addr().String(), f.peerAddr)
	case roles == nil:
		log.Info("no --roles: every client certificate from --tls-ca may do everything, membership changes included")
	default:
		log.Info("client roles loaded", "file", f.roles, "grants", roles.Len())
	}

	if f.join != "" {
		if err := join(ctx, f, tlsConf, dir, log); err != nil {
			shutdown(srv, log)
			return errors.Join(err, closeNode(node))
		}
	}
	select {
	case <-ctx.Done():
		log.Info("stopping", "node", f.id)
	case err := <-served:
		log.Error("http server stopped", "err", err)
	}
	shutdown(srv, log)
	return closeNode(node)
}

// warnUnauthenticated logs a warning for each of a node's plain-text
// addresses (no TLS) that others than this machine may reach: anyone who
// reaches the HTTP port may read and write every counter and lock and
// change the membership, and anyone who reaches the peer port may speak
// for a member of the cluster.
func warnUnauthenticated(log *slog.Logger, httpAddr, peerAddr string) {
	if !isLoopback(httpAddr) {
		log.Warn("UNAUTHENTICATED HTTP API beyond loopback: no TLS, so anyone who reaches this address may read and write every counter and lock, add and remove members and transfer leadership; use --tls-cert, --tls-key, --tls-ca and --roles, or a loopback address",
			"http", httpAddr)
	}
	if !isLoopback(peerAddr) {
		log.Warn("UNAUTHENTICATED PEER PORT beyond loopback: no TLS, so anyone who reaches this address may act as a member of the cluster and change any state; use --tls-cert, --tls-key and --tls-ca, or a loopback address",
			"peer", peerAddr)
	}
}

// isLoopback reports whether host:port listens only on this machine: a
// loopback IP or "localhost". An empty or unspecified host listens on
// every interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i]
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// closeNode closes the node. Close is quick; should it ever hang, leave
// anyway: the data directory holds every acknowledged write whatever
// happens now.
func closeNode(node *abacus.Node) error {
	closed := make(chan error, 1)
	go func() { closed <- node.Close() }()
	select {
	case err := <-closed:
		return err
	case <-time.After(15 * time.Second):
		return errors.New("node did not close within 15s; exiting without it")
	}
}

func shutdown(srv *http.Server, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		// Watches are long-lived; close what is still open.
		log.Debug("http shutdown", "err", err)
		srv.Close()
	}
}

// join asks a member to add this node, retrying until it succeeds or ctx
// ends, and learns the members' HTTP addresses from the reply. With
// mutual TLS the request carries this node's certificate, which needs the
// admin role on a member started with --roles; a refusal ends the join at
// once, since retrying cannot change it.
func join(ctx context.Context, f *nodeFlags, tlsConf *tls.Config, dir *httpapi.Directory, log *slog.Logger) error {
	var copts []client.Option
	if tlsConf != nil {
		copts = append(copts, client.WithTLS(tlsConf))
	}
	c, err := client.New(strings.Split(f.join, ","), copts...)
	if err != nil {
		return usageError{fmt.Errorf("--join: %v", err)}
	}
	defer c.Close()
	backoff := 100 * time.Millisecond
	for {
		st, err := c.AddMember(ctx, wire.JoinRequest{ID: f.id, PeerAddr: f.peerAddr, HTTPAddr: f.httpAddr})
		if err == nil {
			for _, m := range st.Members {
				if m.HTTPAddr != "" && m.ID != f.id {
					dir.Set(m.ID, m.HTTPAddr)
				}
			}
			log.Info("joined", "via", f.join, "members", len(st.Members))
			return nil
		}
		if errors.Is(err, client.ErrPermissionDenied) {
			return fmt.Errorf("join: this node's certificate needs the admin role in the members' --roles file: %w", err)
		}
		log.Warn("join failed; retrying", "via", f.join, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("join: %w", err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}
