package httpapi_test

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/client"
	"github.com/abacuskit/abacus/httpapi"
	"github.com/abacuskit/abacus/internal/testca"
	"github.com/abacuskit/abacus/internal/testcluster"
)

// TestParseRoles: the roles file format, and a clear error naming the line
// for every kind of bad line.
func TestParseRoles(t *testing.T) {
	good := "# operators\n\nadmin cn=ops-1\n  write\tsan=dns:Svc.Example  \nread cn=Dash Board\nread san=uri:spiffe://example/x#frag\nread san=email:oncall@example.com\n"
	l, err := httpapi.ParseRoles(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if l.Len() != 5 {
		t.Fatalf("Len = %d, want 5", l.Len())
	}
	for _, tc := range []struct {
		name, in, want string // want: substrings of the error, "|"-separated
	}{
		{"unknown role", "root cn=x", `line 1|unknown role "root"|read, write or admin`},
		{"role in capitals", "Admin cn=x", `line 1|unknown role "Admin"`},
		{"no selector", "# c\nadmin", `line 2|want ROLE SELECTOR`},
		{"unknown selector", "read ou=x", `line 1|selector "ou=x"|cn=NAME`},
		{"bare san", "read san=x", `line 1|selector "san=x"`},
		{"empty cn", "read cn=", `line 1|empty value`},
		{"empty dns", "read san=dns: ", `line 1|empty value`},
		{"space in a dns name", "read san=dns:a b", `line 1|may not contain white space`},
		{"space before a cn", "read cn= ops", `line 1|may not start or end with white space`},
		{"granted twice", "read cn=x\nadmin cn=x", `line 2|cn=x is granted twice`},
		{"dns granted twice, case aside", "read san=dns:A.example\nwrite san=dns:a.EXAMPLE", `line 2|granted twice`},
		{"empty file", "", `no grants`},
		{"only comments", "# nothing\n\n", `no grants`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := httpapi.ParseRoles(strings.NewReader(tc.in))
			if err == nil {
				t.Fatalf("%q parsed", tc.in)
			}
			for _, w := range strings.Split(tc.want, "|") {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	if _, err := httpapi.NewRoles(httpapi.Grant{Role: httpapi.RoleNone, Match: "cn=x"}); err == nil {
		t.Error("NewRoles granted RoleNone")
	}
	dir := t.TempDir()
	if _, err := httpapi.LoadRoles(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "missing") {
		t.Errorf("LoadRoles of a missing file: %v", err)
	}
	bad := filepath.Join(dir, "roles")
	if err := os.WriteFile(bad, []byte("admin cn=a\nsuper cn=b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := httpapi.LoadRoles(bad); err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("LoadRoles of a bad file: %v", err)
	}
}

// TestRolesMatch: each selector kind matches its part of a certificate,
// and a certificate matched several times holds the strongest role.
func TestRolesMatch(t *testing.T) {
	l, err := httpapi.NewRoles(
		httpapi.Grant{Role: httpapi.RoleAdmin, Match: "cn=ops-1"},
		httpapi.Grant{Role: httpapi.RoleWrite, Match: "san=dns:svc.example"},
		httpapi.Grant{Role: httpapi.RoleRead, Match: "san=uri:spiffe://example/reader"},
		httpapi.Grant{Role: httpapi.RoleRead, Match: "san=email:oncall@example.com"},
		httpapi.Grant{Role: httpapi.RoleRead, Match: "cn=svc"},
	)
	if err != nil {
		t.Fatal(err)
	}
	spiffe, _ := url.Parse("spiffe://example/reader")
	for _, tc := range []struct {
		name string
		cert *x509.Certificate
		want httpapi.Role
	}{
		{"cn", &x509.Certificate{Subject: pkix.Name{CommonName: "ops-1"}}, httpapi.RoleAdmin},
		{"cn is exact", &x509.Certificate{Subject: pkix.Name{CommonName: "OPS-1"}}, httpapi.RoleNone},
		{"dns ignores case", &x509.Certificate{DNSNames: []string{"other.example", "SVC.example"}}, httpapi.RoleWrite},
		{"dns is not a suffix match", &x509.Certificate{DNSNames: []string{"x.svc.example"}}, httpapi.RoleNone},
		{"uri", &x509.Certificate{URIs: []*url.URL{spiffe}}, httpapi.RoleRead},
		{"email", &x509.Certificate{EmailAddresses: []string{"oncall@example.com"}}, httpapi.RoleRead},
		{"strongest wins", &x509.Certificate{Subject: pkix.Name{CommonName: "svc"}, DNSNames: []string{"svc.example"}}, httpapi.RoleWrite},
		{"a dns name is not a common name", &x509.Certificate{DNSNames: []string{"ops-1"}}, httpapi.RoleNone},
		{"unlisted", &x509.Certificate{Subject: pkix.Name{CommonName: "stranger"}}, httpapi.RoleNone},
		{"nil", nil, httpapi.RoleNone},
	} {
		if got := l.Role(tc.cert); got != tc.want {
			t.Errorf("%s: role %v, want %v", tc.name, got, tc.want)
		}
	}
	var none *httpapi.Roles
	if got := none.Role(&x509.Certificate{Subject: pkix.Name{CommonName: "ops-1"}}); got != httpapi.RoleNone {
		t.Errorf("a nil list gives %v", got)
	}
}

// rolesFile grants one certificate each role, each by another selector.
const rolesFile = `
admin cn=admin-1
write san=dns:writer.svc.example
read  san=uri:spiffe://example/reader
`

// tlsServer serves h over mutual TLS with certificates from ca and
// returns clients holding the named certificates.
func tlsServer(t *testing.T, ca *testca.CA, h http.Handler, certs map[string]tls.Certificate) (*httptest.Server, map[string]*http.Client) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{
		Certificates: []tls.Certificate{ca.Issue(t, "node")},
		ClientCAs:    ca.Pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS12,
	}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	clients := map[string]*http.Client{}
	for name, cert := range certs {
		tr := &http.Transport{TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}}
		t.Cleanup(tr.CloseIdleConnections)
		clients[name] = &http.Client{Transport: tr, Timeout: 20 * time.Second}
	}
	return srv, clients
}

// roleCerts issues the certificates rolesFile names, and one it does not.
func roleCerts(t *testing.T, ca *testca.CA) map[string]tls.Certificate {
	spiffe, _ := url.Parse("spiffe://example/reader")
	return map[string]tls.Certificate{
		"admin":  ca.IssueTemplate(t, &x509.Certificate{Subject: pkix.Name{CommonName: "admin-1"}}),
		"write":  ca.IssueTemplate(t, &x509.Certificate{Subject: pkix.Name{CommonName: "billing"}, DNSNames: []string{"writer.svc.example"}}),
		"read":   ca.IssueTemplate(t, &x509.Certificate{Subject: pkix.Name{CommonName: "dashboard"}, URIs: []*url.URL{spiffe}}),
		"none":   ca.Issue(t, "stranger"),
		"nocert": {},
	}
}

func do(t *testing.T, c *http.Client, method, u, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	r := reply{status: resp.StatusCode}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		return r // a watch: the status is the answer
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r.raw = string(b)
	if method != "HEAD" && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(b, &r.body); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, u, b, err)
		}
	}
	return r
}

// TestRolesEndpoints runs every endpoint as a client of each role, and as
// a certificate from the cluster's CA that the allow-list does not name,
// over real mutual-TLS connections: each is served exactly when its role
// is at least the endpoint's, and refused with 403 permission_denied
// otherwise, changing nothing.
func TestRolesEndpoints(t *testing.T) {
	ca := testca.New(t, "abacus test CA")
	roles, err := httpapi.ParseRoles(strings.NewReader(rolesFile))
	if err != nil {
		t.Fatal(err)
	}
	c, _ := newServer(t)
	h := httpapi.New(c.Nodes[0], httpapi.WithLogger(testcluster.Logger()), httpapi.WithAuthorizer(roles),
		httpapi.WithFaults(&abacus.OffsetClock{}))
	certs := roleCerts(t, ca)
	delete(certs, "nocert") // the TLS handshake refuses it
	srv, clients := tlsServer(t, ca, h, certs)

	// {who} in a path or body is the client's name, so that each client
	// writes its own counters and locks.
	routes := []struct {
		method, path, body string
		need               httpapi.Role
		want               int // the status when allowed; 0: anything but 403
	}{
		{"GET", "/healthz", "", httpapi.RoleNone, 200},
		{"GET", "/readyz", "", httpapi.RoleNone, 200},
		{"GET", "/v1/counters/c-{who}", "", httpapi.RoleRead, 200},
		{"HEAD", "/v1/counters/c-{who}", "", httpapi.RoleRead, 200},
		{"GET", "/v1/counters/c-{who}/watch", "", httpapi.RoleRead, 200},
		{"GET", "/v1/locks/l-{who}", "", httpapi.RoleRead, 200},
		{"GET", "/v1/cluster", "", httpapi.RoleRead, 200},
		{"GET", "/v1/cluster/state", "", httpapi.RoleRead, 200},
		{"GET", "/metrics", "", httpapi.RoleRead, 200},
		{"POST", "/v1/counters/c-{who}/add", `{"delta": 2}`, httpapi.RoleWrite, 200},
		{"PUT", "/v1/counters/s-{who}", `{"value": 5}`, httpapi.RoleWrite, 200},
		{"POST", "/v1/counters/c-{who}/cas", `{"old": 2, "new": 3}`, httpapi.RoleWrite, 200},
		{"DELETE", "/v1/counters/s-{who}", "", httpapi.RoleWrite, 200},
		{"POST", "/v1/batch", `{"ops": [{"op": "add", "name": "b-{who}", "delta": 1}]}`, httpapi.RoleWrite, 200},
		{"POST", "/v1/locks/l-{who}/acquire", `{"holder": "{who}", "ttl_ms": 60000}`, httpapi.RoleWrite, 200},
		{"POST", "/v1/locks/l-{who}/keepalive", `{"token": 999999}`, httpapi.RoleWrite, 0},
		{"POST", "/v1/locks/l-{who}/release", `{"token": 999999}`, httpapi.RoleWrite, 0},
		{"POST", "/v1/instances", `{"ttl_ms": 60000}`, httpapi.RoleWrite, 200},
		{"POST", "/v1/instances/999999/keepalive", "", httpapi.RoleWrite, 0},
		{"DELETE", "/v1/instances/999999", "", httpapi.RoleWrite, 0},
		// Admin requests that the node refuses for other reasons once
		// they are let in, so that the one-node cluster stays as it is.
		{"POST", "/v1/cluster/members", `{}`, httpapi.RoleAdmin, 400},
		{"DELETE", "/v1/cluster/members/nobody", "", httpapi.RoleAdmin, 0},
		{"POST", "/v1/cluster/leadership-transfer", `{"id": "nobody"}`, httpapi.RoleAdmin, 0},
		{"POST", "/v1/admin/faults", `{"heal": true}`, httpapi.RoleAdmin, 200},
	}
	order := []struct {
		who  string
		role httpapi.Role
	}{{"none", httpapi.RoleNone}, {"read", httpapi.RoleRead}, {"write", httpapi.RoleWrite}, {"admin", httpapi.RoleAdmin}}
	for _, rt := range routes {
		for _, cl := range order {
			path := strings.ReplaceAll(rt.path, "{who}", cl.who)
			body := strings.ReplaceAll(rt.body, "{who}", cl.who)
			r := do(t, clients[cl.who], rt.method, srv.URL+path, body)
			what := cl.who + ": " + rt.method + " " + path
			if cl.role >= rt.need {
				if r.status == http.StatusForbidden || (rt.want != 0 && r.status != rt.want) {
					t.Errorf("%s (needs %v): %d %s, want it served", what, rt.need, r.status, r.raw)
				}
				continue
			}
			if r.status != http.StatusForbidden || (rt.method != "HEAD" && r.errCode() != "permission_denied") {
				t.Errorf("%s (needs %v): %d %s, want 403 permission_denied", what, rt.need, r.status, r.raw)
				continue
			}
			if msg := r.raw; rt.method != "HEAD" && (!strings.Contains(msg, map[httpapi.Role]string{httpapi.RoleNone: "has no role", httpapi.RoleRead: "has role read", httpapi.RoleWrite: "has role write"}[cl.role]) || !strings.Contains(msg, "needs "+rt.need.String())) {
				t.Errorf("%s: refusal %q does not say which role it has and needs", what, msg)
			}
		}
	}
	// The refused writes changed nothing.
	ctx := testcluster.Context(t, 10*time.Second)
	for _, who := range []string{"none", "read"} {
		for _, name := range []string{"c-", "s-", "b-"} {
			if v, err := c.Nodes[0].Get(ctx, name+who); err != nil || v.Exists {
				t.Errorf("%s%s after refused writes: %+v %v", name, who, v, err)
			}
		}
		if l, err := c.Nodes[0].GetLock(ctx, "l-"+who); err != nil || l.Held {
			t.Errorf("lock l-%s after a refused acquire: %+v %v", who, l, err)
		}
	}
	if v, err := c.Nodes[0].Get(ctx, "c-write"); err != nil || v.Value != 3 {
		t.Errorf("c-write after the allowed writes: %+v %v", v, err)
	}

	// The Go client maps a refusal to ErrPermissionDenied, a definite
	// answer it does not retry.
	rc, err := client.New([]string{srv.URL}, client.WithTLS(&tls.Config{Certificates: []tls.Certificate{certs["read"]}, RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := rc.Get(ctx, "c-write"); err != nil {
		t.Fatalf("read through the client: %v", err)
	}
	_, err = rc.Add(ctx, "c-read", 1)
	var ce *client.Error
	if !errors.Is(err, client.ErrPermissionDenied) || !errors.Is(err, abacus.ErrPermissionDenied) || !errors.As(err, &ce) || ce.Status != http.StatusForbidden {
		t.Fatalf("add by a reader through the client: %v, want ErrPermissionDenied", err)
	}
}

// TestRolesNeedVerifiedCertificates: with an allow-list, a request that
// carries no verified certificate (here plain HTTP) holds no role; the
// health endpoints stay open.
func TestRolesNeedVerifiedCertificates(t *testing.T) {
	roles, err := httpapi.ParseRoles(strings.NewReader(rolesFile))
	if err != nil {
		t.Fatal(err)
	}
	_, srv := newServer(t, httpapi.WithAuthorizer(roles))
	if r := call(t, srv, "GET", "/v1/counters/x", ""); r.status != 403 || r.errCode() != "permission_denied" || !strings.Contains(r.raw, "without TLS") {
		t.Errorf("read without TLS: %d %s", r.status, r.raw)
	}
	for _, p := range []string{"/healthz", "/readyz"} {
		if r := call(t, srv, "GET", p, ""); r.status != 200 {
			t.Errorf("%s without TLS: %d %s", p, r.status, r.raw)
		}
	}
}

// TestNoRolesEveryCertificateIsAdmin: without an allow-list, any
// certificate the CA verifies may do everything, cluster administration
// included.
func TestNoRolesEveryCertificateIsAdmin(t *testing.T) {
	ca := testca.New(t, "abacus test CA")
	c, _ := newServer(t)
	h := httpapi.New(c.Nodes[0], httpapi.WithLogger(testcluster.Logger()), httpapi.WithFaults(&abacus.OffsetClock{}))
	srv, clients := tlsServer(t, ca, h, map[string]tls.Certificate{"any": ca.Issue(t, "anyone")})
	if r := do(t, clients["any"], "POST", srv.URL+"/v1/admin/faults", `{"heal": true}`); r.status != 200 {
		t.Errorf("faults without roles: %d %s", r.status, r.raw)
	}
	if r := do(t, clients["any"], "POST", srv.URL+"/v1/counters/x/add", `{"delta": 1}`); r.status != 200 {
		t.Errorf("add without roles: %d %s", r.status, r.raw)
	}
}
