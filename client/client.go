// Package client is a Go client for the HTTP API of abacus nodes (docs/API.md),
// as served by package httpapi and the node program in examples/cluster.
//
// A Client is given the HTTP endpoints of some or all members. By default
// it fails over between them: a request that could not be sent, or that a
// node refused with 503 unavailable, goes to the next endpoint; counter
// writes run in a client session that the cluster keeps (POST /v1/sessions,
// then the Abacus-Session headers), so a write whose outcome was unknown (a
// lost connection, a 504) is retried too and is still applied exactly once,
// on whichever node answers. If the cluster forgets the session (idle for
// 15 minutes, or evicted) before anything could have applied, the client
// opens another and carries on; if that happens after an attempt whose
// outcome was unknown, the call fails with ErrIndeterminate and is not run
// again. WithIdempotencyKey replaces the session with a key of the caller's
// own for one call. WithoutRetries turns all of that off for
// callers that must see every outcome, such as a fault-injection harness:
// each call is then one attempt against one endpoint, and its error says
// whether the call definitely failed or its outcome is unknown:
//
//	_, err := c.Add(ctx, "hits", 1)
//	switch {
//	case err == nil: // applied once
//	case errors.Is(err, client.ErrIndeterminate): // may or may not have applied
//	default: // definitely not applied (ErrUnavailable, ErrOverflow, ...)
//	}
//
// API errors are *Error values; errors.Is matches them against this
// package's sentinels, which are package errcode's (and so package
// abacus's) own. The client links neither the abacus server nor its
// replication libraries: it imports only errcode and httpapi/wire.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/abacuskit/abacus/errcode"
	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/internal/sequence"
)

// Sentinel errors, package errcode's own (which package abacus re-exports),
// so errors.Is works against any of them. ErrUnavailable means definitely
// not applied; ErrIndeterminate means the outcome is unknown.
var (
	ErrInvalidArgument = errcode.ErrInvalidArgument
	ErrNotFound        = errcode.ErrNotFound
	ErrOverflow        = errcode.ErrOverflow
	ErrUnderflow       = errcode.ErrUnderflow
	ErrOutOfRange      = errcode.ErrOutOfRange
	ErrLockHeld        = errcode.ErrLockHeld
	ErrStaleToken      = errcode.ErrStaleToken
	ErrLeaseExpired    = errcode.ErrLeaseExpired
	ErrMismatch        = errcode.ErrMismatch
	ErrLimitReached    = errcode.ErrLimitReached
	ErrSessionExpired  = errcode.ErrSessionExpired
	ErrStaleSequence   = errcode.ErrStaleSequence
	ErrUnavailable     = errcode.ErrUnavailable
	ErrIndeterminate   = errcode.ErrIndeterminate
	// ErrProtocol reports a reply that is not what the API promises.
	ErrProtocol = errors.New("client: unexpected reply")
)

// ErrPermissionDenied reports a request a node refused (403
// permission_denied) because the role of the client's certificate does not
// allow it. It is a definite answer: the client does not retry it
// elsewhere, and nothing was applied.
var ErrPermissionDenied = errcode.ErrPermissionDenied

// The codes the client gives the errors it makes itself, as errcode's table
// names them.
var (
	codeInvalid       = errcode.Name(errcode.ErrInvalidArgument)
	codeUnavailable   = errcode.Name(errcode.ErrUnavailable)
	codeIndeterminate = errcode.Name(errcode.ErrIndeterminate)
)

// codeInternal is the code of a node's 500 reply, an error outside
// errcode's table.
const codeInternal = "internal"

// Error is an error reply from a node, or a transport failure classified
// as unavailable (not sent) or indeterminate (sent, no answer).
type Error struct {
	// Status is the HTTP status; 0 for a transport failure.
	Status int
	// Code is the API error code ("overflow", "lock_held", ...).
	Code string
	// Message is the node's message, or the transport error.
	Message string
	// Holder is the lock's holder, for lock_held.
	Holder string
	// Index is the failing operation of a batch, else -1.
	Index int
	// Endpoint is the node that answered (or failed to).
	Endpoint string
}

// Error implements error.
func (e *Error) Error() string {
	msg := e.Message
	if msg == "" {
		msg = e.Code
	}
	return fmt.Sprintf("%s [%s from %s]", msg, e.Code, e.Endpoint)
}

// Unwrap returns the sentinel error of the code, so errors.Is works.
func (e *Error) Unwrap() error {
	if s, ok := errcode.ByName(e.Code); ok {
		return s
	}
	return ErrProtocol
}

// Indeterminate reports whether err leaves a write's outcome unknown. Any
// other error means the call definitely did not apply.
func Indeterminate(err error) bool { return errors.Is(err, ErrIndeterminate) }

// Client calls the HTTP API of a cluster. It is safe for concurrent use.
type Client struct {
	endpoints []string
	hc        *http.Client
	tlsConf   *tls.Config
	retry     bool
	timeout   time.Duration
	attempt   time.Duration
	backoff   time.Duration
	preferred atomic.Uint32

	session   atomic.Pointer[session] // nil until a write opens one
	sessionMu sync.Mutex              // serialises opening a session
}

// session is a client session the cluster issued, and the numbering of
// this client's writes under it.
type session struct {
	id  uint64
	seq *sequence.Numbers
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: a client with keep-alive
// connections and a 2s dial timeout).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// WithTLS makes the client use HTTPS with cfg (mutual TLS when cfg has a
// certificate). Endpoints without a scheme get https://.
func WithTLS(cfg *tls.Config) Option { return func(c *Client) { c.tlsConf = cfg } }

// WithoutRetries makes every call a single attempt against the first
// endpoint (see the package doc).
func WithoutRetries() Option { return func(c *Client) { c.retry = false } }

// WithTimeout bounds each call, retries included, when its context has no
// deadline (default 15s).
func WithTimeout(d time.Duration) Option { return func(c *Client) { c.timeout = d } }

// WithAttemptTimeout bounds each attempt against one endpoint (default
// 5s), so a node that hangs is left for the next.
func WithAttemptTimeout(d time.Duration) Option { return func(c *Client) { c.attempt = d } }

// New returns a client of the nodes at endpoints: base URLs
// ("http://10.0.0.1:8080") or host:port pairs.
func New(endpoints []string, opts ...Option) (*Client, error) {
	c := &Client{retry: true, timeout: 15 * time.Second, attempt: 5 * time.Second, backoff: 50 * time.Millisecond}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	scheme := "http://"
	if c.tlsConf != nil {
		scheme = "https://"
	}
	for _, e := range endpoints {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !strings.Contains(e, "://") {
			e = scheme + e
		}
		u, err := url.Parse(e)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("%w: bad endpoint %q", ErrInvalidArgument, e)
		}
		c.endpoints = append(c.endpoints, strings.TrimRight(u.String(), "/"))
	}
	if len(c.endpoints) == 0 {
		return nil, fmt.Errorf("%w: no endpoints", ErrInvalidArgument)
	}
	if c.hc == nil {
		tr := &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSClientConfig:     c.tlsConf,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
			ForceAttemptHTTP2:   c.tlsConf != nil,
		}
		c.hc = &http.Client{Transport: tr}
	}
	return c, nil
}

// Endpoints returns the client's endpoints as base URLs.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// Close releases idle connections.
func (c *Client) Close() { c.hc.CloseIdleConnections() }

// kind says how a call may be retried.
type kind int

const (
	// read: no effect, retry anything.
	read kind = iota
	// keyed: a write with an idempotency key (or idempotent in effect):
	// retry anything; a retry applies nothing twice.
	keyed
	// once: a write without a key: retry only what definitely did not
	// reach a node.
	once
	// sequenced: a write in the client's session: retry anything, with the
	// same sequence number.
	sequenced
)

type call struct {
	method, path string
	body         any
	out          any
	kind         kind
	key          string
	seq          [3]string     // session, sequence and ack headers, for sequenced calls
	attempt      time.Duration // per-attempt timeout override
	endpoint     int           // -1: any; else this endpoint only
}

// do runs a call with the client's retry policy.
func (c *Client) do(ctx context.Context, cl call) error {
	var payload []byte
	if cl.body != nil {
		var err error
		if payload, err = json.Marshal(cl.body); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidArgument, err)
		}
	}
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		d := c.timeout
		if cl.attempt > c.attempt {
			d += cl.attempt - c.attempt // a lock acquire's wait comes on top
		}
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}
	start := int(c.preferred.Load())
	if cl.endpoint >= 0 {
		start = cl.endpoint
	}
	if !c.retry || cl.endpoint >= 0 {
		return c.attemptOnce(ctx, cl, payload, start%len(c.endpoints))
	}
	if cl.kind == sequenced {
		return c.inSession(ctx, cl, payload, start)
	}
	err, _ := c.retrying(ctx, cl, payload, start)
	return err
}

// inSession runs a write under the client's session, opening one first if
// needed, and a new one if the cluster forgot it before the write could
// have applied.
func (c *Client) inSession(ctx context.Context, cl call, payload []byte, start int) error {
	for restarts := 0; ; restarts++ {
		s, err := c.openSession(ctx)
		if err != nil {
			return err
		}
		seq, ack := s.seq.Begin()
		cl.seq = [3]string{strconv.FormatUint(s.id, 10), strconv.FormatUint(seq, 10), strconv.FormatUint(ack, 10)}
		err, maybeApplied := c.retrying(ctx, cl, payload, start)
		s.seq.Finish(seq)
		if !errors.Is(err, ErrSessionExpired) {
			return err
		}
		c.session.CompareAndSwap(s, nil)
		if maybeApplied {
			return &Error{Code: codeIndeterminate, Message: fmt.Sprintf("an earlier attempt may have applied and the session is gone: %v", err), Index: -1}
		}
		if restarts == 2 {
			return err
		}
	}
}

// openSession returns the client's session, opening one when it has none.
// Concurrent callers share one open.
func (c *Client) openSession(ctx context.Context) (*session, error) {
	if s := c.session.Load(); s != nil {
		return s, nil
	}
	c.sessionMu.Lock()
	defer c.sessionMu.Unlock()
	if s := c.session.Load(); s != nil {
		return s, nil
	}
	// Opening twice is harmless (an unused session expires), so the open
	// is retried like a keyed write.
	var out wire.SessionResponse
	if err := c.do(ctx, call{method: "POST", path: "/v1/sessions", out: &out, kind: keyed, endpoint: -1}); err != nil {
		return nil, err
	}
	if out.Session == 0 {
		return nil, fmt.Errorf("%w: session id 0", ErrProtocol)
	}
	s := &session{id: uint64(out.Session), seq: sequence.New()}
	c.session.Store(s)
	return s, nil
}

// retrying sends a call to the endpoints in turn from start until one
// answers definitely or ctx ends. It also reports whether an attempt may
// have applied.
func (c *Client) retrying(ctx context.Context, cl call, payload []byte, start int) (err error, maybeApplied bool) {
	var (
		last    error
		backoff = c.backoff
	)
	for round := 0; ; round++ {
		for i := range c.endpoints {
			idx := (start + i) % len(c.endpoints)
			err := c.attemptOnce(ctx, cl, payload, idx)
			if err == nil {
				c.preferred.Store(uint32(idx))
				return nil, maybeApplied
			}
			switch {
			case errors.Is(err, ErrIndeterminate):
				if cl.kind == once {
					return err, true
				}
				maybeApplied = maybeApplied || cl.kind != read
			case errors.Is(err, ErrUnavailable):
			default:
				// A definite answer from a node. After an attempt whose
				// outcome was unknown, a keyed or sequenced retry returns
				// the first attempt's result, so the answer stands.
				return err, maybeApplied
			}
			last = err
			if ctx.Err() != nil {
				return finalError(last, ctx.Err(), maybeApplied), maybeApplied
			}
		}
		if !pause(ctx, &backoff) {
			return finalError(last, ctx.Err(), maybeApplied), maybeApplied
		}
	}
}

// pause waits for *backoff, doubled (up to one second) for the next wait.
// It returns false, early, if ctx ends first.
func pause(ctx context.Context, backoff *time.Duration) bool {
	t := time.NewTimer(*backoff)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	*backoff = min(*backoff*2, time.Second)
	return true
}

// finalError is the error of a call that ran out of time or attempts:
// indeterminate if any attempt may have applied, else the last failure.
func finalError(last, err error, maybeApplied bool) error {
	if last == nil {
		last = err
	}
	var e *Error
	isErr := errors.As(last, &e)
	if maybeApplied && !errors.Is(last, ErrIndeterminate) {
		ep := ""
		if isErr {
			ep = e.Endpoint
		}
		return &Error{Code: codeIndeterminate, Message: fmt.Sprintf("an earlier attempt may have applied; last: %v", last), Index: -1, Endpoint: ep}
	}
	if isErr {
		return last
	}
	return &Error{Code: codeUnavailable, Message: last.Error(), Index: -1}
}

// attemptOnce sends the call to one endpoint and classifies the outcome.
func (c *Client) attemptOnce(ctx context.Context, cl call, payload []byte, idx int) error {
	ep := c.endpoints[idx]
	per := c.attempt
	if cl.attempt > 0 {
		per = cl.attempt
	}
	actx, cancel := context.WithTimeout(ctx, per)
	defer cancel()
	var wrote atomic.Bool
	actx = httptrace.WithClientTrace(actx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) { wrote.Store(true) },
	})
	var body io.Reader
	if payload != nil {
		body = bytes.NewReader(payload)
	}
	req, err := http.NewRequestWithContext(actx, cl.method, ep+cl.path, body)
	if err != nil {
		return &Error{Code: codeInvalid, Message: err.Error(), Index: -1, Endpoint: ep}
	}
	if payload != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if cl.key != "" {
		req.Header.Set(wire.IdempotencyKeyHeader, cl.key)
	}
	if cl.kind == sequenced {
		req.Header.Set(wire.SessionHeader, cl.seq[0])
		req.Header.Set(wire.SeqHeader, cl.seq[1])
		req.Header.Set(wire.AckHeader, cl.seq[2])
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return transportError(ep, err, wrote.Load(), cl.kind)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return transportError(ep, err, true, cl.kind)
	}
	if resp.StatusCode != http.StatusOK {
		return apiError(ep, resp.StatusCode, b)
	}
	if cl.out != nil {
		if err := json.Unmarshal(b, cl.out); err != nil {
			return fmt.Errorf("%w from %s: %v", ErrProtocol, ep, err)
		}
	}
	return nil
}

// transportError classifies a failed exchange: a request never written
// definitely did not apply; one written and unanswered may have.
func transportError(ep string, err error, wrote bool, k kind) error {
	code := codeUnavailable
	if wrote && k != read {
		code = codeIndeterminate
	}
	return &Error{Code: code, Message: err.Error(), Index: -1, Endpoint: ep}
}

func apiError(ep string, status int, b []byte) error {
	var body wire.ErrorBody
	if err := json.Unmarshal(b, &body); err != nil || body.Error.Code == "" {
		code := codeUnavailable
		switch {
		case status == http.StatusGatewayTimeout:
			code = codeIndeterminate
		case status >= 500 && status != http.StatusServiceUnavailable && status != http.StatusBadGateway:
			code = codeInternal
		case status < 500:
			code = codeInvalid
		}
		return &Error{Status: status, Code: code, Message: strings.TrimSpace(string(b)), Index: -1, Endpoint: ep}
	}
	e := &Error{Status: status, Code: body.Error.Code, Message: body.Error.Message, Holder: body.Error.Holder, Index: -1, Endpoint: ep}
	if body.Error.Index != nil {
		e.Index = *body.Error.Index
	}
	return e
}

func esc(name string) string { return url.PathEscape(name) }
