package httpapi

import (
	"bufio"
	"bytes"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"

	"github.com/abacuskit/abacus/errcode"
)

// Role is what a client may do through the HTTP API. Roles are ordered:
// RoleAdmin includes everything RoleWrite may do, which includes
// everything RoleRead may do.
//
//   - RoleRead: counter and lock reads, watches, GET /v1/cluster,
//     GET /v1/cluster/state and /metrics.
//   - RoleWrite: also counter writes, batches, locks and instances.
//   - RoleAdmin: also membership changes, leadership transfer and
//     POST /v1/admin/faults.
//
// /healthz and /readyz need no role: probes reach them without a
// certificate on the allow-list.
type Role uint8

// Roles, weakest first.
const (
	// RoleNone may reach only /healthz and /readyz.
	RoleNone Role = iota
	// RoleRead may read.
	RoleRead
	// RoleWrite may read and write.
	RoleWrite
	// RoleAdmin may do everything, cluster administration included.
	RoleAdmin
)

// String returns the role's name as the roles file spells it.
func (r Role) String() string {
	switch r {
	case RoleNone:
		return "none"
	case RoleRead:
		return "read"
	case RoleWrite:
		return "write"
	case RoleAdmin:
		return "admin"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// ParseRole parses "read", "write" or "admin".
func ParseRole(s string) (Role, error) {
	switch s {
	case "read":
		return RoleRead, nil
	case "write":
		return RoleWrite, nil
	case "admin":
		return RoleAdmin, nil
	}
	return RoleNone, fmt.Errorf("unknown role %q: want read, write or admin", s)
}

// Authorizer decides what the client behind a request may do. A Handler
// given one (WithAuthorizer) refuses every request whose client's role is
// below the endpoint's with 403 permission_denied. Without an Authorizer
// every client that reaches the handler is admin.
type Authorizer interface {
	// Authorize returns the role of the client that sent r, and a short
	// description of that client for refusals and logs (for example
	// "cn=ops-1").
	Authorize(r *http.Request) (role Role, client string)
}

// Grant gives a role to the client certificates a selector matches.
type Grant struct {
	// Role is the role granted.
	Role Role
	// Match selects certificates: "cn=NAME" (the subject common name),
	// "san=dns:NAME" (a DNS subject alternative name, compared without
	// regard to case), "san=uri:URI" or "san=email:ADDRESS". A common
	// name may contain spaces; the other values may not. Every comparison
	// is of the whole value: there are no wildcards.
	Match string
}

// Roles is an allow-list that maps verified client certificates to roles;
// it is an Authorizer. A certificate matched by several grants holds the
// strongest of their roles; one matched by none holds RoleNone. A request
// without a verified client certificate (plain HTTP, or TLS that did not
// verify the client against a CA) holds RoleNone. Roles is immutable and
// safe for concurrent use.
type Roles struct {
	cn, dns, uri, email map[string]Role
	n                   int
}

// selector kinds, as Match spells them.
const (
	selCN    = "cn="
	selDNS   = "san=dns:"
	selURI   = "san=uri:"
	selEmail = "san=email:"
)

// NewRoles returns the allow-list of grants. A bad selector, an empty
// value, RoleNone, a selector granted twice or no grant at all is an error.
func NewRoles(grants ...Grant) (*Roles, error) {
	l := newRoles()
	for i, g := range grants {
		if err := l.add(g); err != nil {
			return nil, fmt.Errorf("grant %d: %w", i+1, err)
		}
	}
	return l.check()
}

func newRoles() *Roles {
	return &Roles{cn: map[string]Role{}, dns: map[string]Role{}, uri: map[string]Role{}, email: map[string]Role{}}
}

// errNoGrants reports an empty allow-list, which would refuse everyone.
var errNoGrants = errors.New("no grants: an empty allow-list would refuse every client")

func (l *Roles) check() (*Roles, error) {
	if l.n == 0 {
		return nil, errNoGrants
	}
	return l, nil
}

func (l *Roles) add(g Grant) error {
	if g.Role < RoleRead || g.Role > RoleAdmin {
		return fmt.Errorf("role %v: want read, write or admin", g.Role)
	}
	m, key, err := l.selector(g.Match)
	if err != nil {
		return err
	}
	if _, dup := m[key]; dup {
		return fmt.Errorf("%s is granted twice", g.Match)
	}
	m[key] = g.Role
	l.n++
	return nil
}

// selector returns the map and key of a Match string.
func (l *Roles) selector(s string) (map[string]Role, string, error) {
	var (
		m      map[string]Role
		v      string
		spaces bool
	)
	switch {
	case strings.HasPrefix(s, selCN):
		m, v, spaces = l.cn, s[len(selCN):], true
	case strings.HasPrefix(s, selDNS):
		m, v = l.dns, strings.ToLower(s[len(selDNS):])
	case strings.HasPrefix(s, selURI):
		m, v = l.uri, s[len(selURI):]
	case strings.HasPrefix(s, selEmail):
		m, v = l.email, s[len(selEmail):]
	default:
		return nil, "", fmt.Errorf("selector %q: want cn=NAME, san=dns:NAME, san=uri:URI or san=email:ADDRESS", s)
	}
	if strings.TrimSpace(v) == "" {
		return nil, "", fmt.Errorf("selector %q has an empty value", s)
	}
	if v != strings.TrimSpace(v) {
		return nil, "", fmt.Errorf("selector %q: the value may not start or end with white space", s)
	}
	if !spaces && strings.ContainsAny(v, " \t") {
		return nil, "", fmt.Errorf("selector %q: the value may not contain white space", s)
	}
	return m, v, nil
}

// ParseRoles reads an allow-list, one grant a line: a role, white space,
// and a selector (see Grant.Match):
//
//	# operators administer the cluster
//	admin cn=ops-1
//	write san=dns:billing.svc.example
//	read  san=uri:spiffe://example/dashboard
//	read  san=email:oncall@example.com
//
// Blank lines and lines starting with # are ignored; a # later in a line
// is part of the selector. Errors name the line.
func ParseRoles(r io.Reader) (*Roles, error) {
	l := newRoles()
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i < 0 {
			return nil, fmt.Errorf("line %d: %q: want ROLE SELECTOR, for example \"admin cn=ops-1\"", n, line)
		}
		role, err := ParseRole(line[:i])
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if err := l.add(Grant{Role: role, Match: strings.TrimSpace(line[i:])}); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading roles: %w", err)
	}
	return l.check()
}

// LoadRoles reads the allow-list in file (see ParseRoles). Errors name the
// file.
func LoadRoles(file string) (*Roles, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("roles: %w", err)
	}
	l, err := ParseRoles(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("roles file %s: %w", file, err)
	}
	return l, nil
}

// Len returns the number of grants.
func (l *Roles) Len() int {
	if l == nil {
		return 0
	}
	return l.n
}

// Role returns the strongest role any grant gives cert, or RoleNone. It
// trusts cert: the caller must have verified it.
func (l *Roles) Role(cert *x509.Certificate) Role {
	if l == nil || cert == nil {
		return RoleNone
	}
	best := RoleNone
	take := func(r Role, ok bool) {
		if ok && r > best {
			best = r
		}
	}
	if cert.Subject.CommonName != "" {
		r, ok := l.cn[cert.Subject.CommonName]
		take(r, ok)
	}
	for _, d := range cert.DNSNames {
		r, ok := l.dns[strings.ToLower(d)]
		take(r, ok)
	}
	for _, u := range cert.URIs {
		r, ok := l.uri[u.String()]
		take(r, ok)
	}
	for _, e := range cert.EmailAddresses {
		r, ok := l.email[e]
		take(r, ok)
	}
	return best
}

// Authorize implements Authorizer: the role of the request's verified
// client certificate.
func (l *Roles) Authorize(r *http.Request) (Role, string) {
	if r.TLS == nil {
		return RoleNone, "client without TLS"
	}
	if len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return RoleNone, "client without a verified certificate"
	}
	cert := r.TLS.VerifiedChains[0][0]
	return l.Role(cert), describeCert(cert)
}

// describeCert names a certificate for refusals and logs.
func describeCert(c *x509.Certificate) string {
	switch {
	case c.Subject.CommonName != "":
		return selCN + c.Subject.CommonName
	case len(c.DNSNames) > 0:
		return selDNS + c.DNSNames[0]
	case len(c.URIs) > 0:
		return selURI + c.URIs[0].String()
	case len(c.EmailAddresses) > 0:
		return selEmail + c.EmailAddresses[0]
	}
	return "certificate " + c.SerialNumber.String()
}

// WithAuthorizer makes the handler refuse, with 403 permission_denied,
// every request whose client's role (as a decides it) is below the one
// its endpoint needs (see Role). A *Roles is an Authorizer. Without this
// option every client is admin: a node that serves the API on a port
// others can reach should have mutual TLS and an allow-list.
func WithAuthorizer(a Authorizer) Option {
	return func(h *Handler) {
		if a != nil {
			h.auth = a
		}
	}
}

// routeRoles is the role each endpoint needs. An endpoint missing here
// needs admin, so that a new endpoint is closed until it is classified.
var routeRoles = map[string]Role{
	"POST /v1/counters/{}/add":             RoleWrite,
	"GET /v1/counters/{}":                  RoleRead,
	"PUT /v1/counters/{}":                  RoleWrite,
	"POST /v1/counters/{}/cas":             RoleWrite,
	"DELETE /v1/counters/{}":               RoleWrite,
	"POST /v1/batch":                       RoleWrite,
	"POST /v1/sessions":                    RoleWrite,
	"GET /v1/counters/{}/watch":            RoleRead,
	"POST /v1/locks/{}/acquire":            RoleWrite,
	"POST /v1/locks/{}/keepalive":          RoleWrite,
	"POST /v1/locks/{}/release":            RoleWrite,
	"GET /v1/locks/{}":                     RoleRead,
	"POST /v1/instances":                   RoleWrite,
	"POST /v1/instances/{}/keepalive":      RoleWrite,
	"DELETE /v1/instances/{}":              RoleWrite,
	"GET /v1/cluster":                      RoleRead,
	"GET /v1/cluster/state":                RoleRead,
	"POST /v1/cluster/members":             RoleAdmin,
	"DELETE /v1/cluster/members/{}":        RoleAdmin,
	"POST /v1/cluster/leadership-transfer": RoleAdmin,
	"POST /v1/admin/faults":                RoleAdmin,
	"GET /healthz":                         RoleNone,
	"GET /readyz":                          RoleNone,
	"GET /metrics":                         RoleRead,
}

// routeRole returns the role an endpoint needs.
func routeRole(method, path string) Role {
	if r, ok := routeRoles[method+" "+path]; ok {
		return r
	}
	return RoleAdmin
}

// authorize returns nil when the request's client may use rt, else a 403
// permission_denied error.
func (h *Handler) authorize(r *http.Request, rt *route) error {
	if h.auth == nil || rt.need == RoleNone {
		return nil
	}
	role, client := h.auth.Authorize(r)
	if role >= rt.need {
		return nil
	}
	h.log.Info("http request refused", "client", client, "role", role, "route", rt.method+" "+rt.path, "needs", rt.need)
	has := "has role " + role.String()
	if role == RoleNone {
		has = "has no role on this node"
	}
	return refusal(errcode.ErrPermissionDenied,
		fmt.Sprintf("%s %s; %s %s needs %s", client, has, r.Method, r.URL.EscapedPath(), rt.need))
}
