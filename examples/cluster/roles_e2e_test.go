//go:build unix

package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/abacuskit/abacus/httpapi/wire"
	"github.com/abacuskit/abacus/internal/testca"
)

// TestRoles: nodes started with --roles serve each client certificate
// what its role allows; the command line exits 1 with permission_denied
// for the rest; and a node joining with a certificate that holds admin is
// let in.
func TestRoles(t *testing.T) {
	dir := t.TempDir()
	ca := testca.New(t, "abacus test CA")
	flags := func(name string) []string {
		cert, key, caFile := ca.WriteFiles(t, dir, name)
		return []string{"--tls-cert", cert, "--tls-key", key, "--tls-ca", caFile}
	}
	nodeTLS, reader, writer, stranger := flags("node"), flags("reader"), flags("writer"), flags("stranger")
	roles := filepath.Join(dir, "roles")
	if err := os.WriteFile(roles, []byte("# the nodes join each other\nadmin cn=node\nwrite cn=writer\nread cn=reader\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tc := startCluster(t, append(nodeTLS, "--roles", roles)...)
	tc.cliArgs = nodeTLS
	tc.ready()
	eps := tc.endpoints()

	tc.cliArgs = writer
	if out, code := tc.cli(eps, "add", "r", "2"); code != 0 || out != "2" {
		t.Fatalf("add by the writer: %q exit %d", out, code)
	}
	tc.cliArgs = reader
	if out, code := tc.cli(eps, "get", "r"); code != 0 || out != "2" {
		t.Fatalf("get by the reader: %q exit %d", out, code)
	}
	if _, code := tc.cli(eps, "status"); code != 0 {
		t.Fatalf("status by the reader: exit %d", code)
	}
	for _, c := range []struct {
		who  string
		args []string
	}{{"reader", reader}, {"stranger", stranger}} {
		tc.cliArgs = c.args
		out, stderr, code := tc.cliFull(eps, nil, "add", "r", "1")
		if code != 1 || out != "" || !strings.Contains(stderr, "permission_denied") || !strings.Contains(stderr, "needs write") {
			t.Errorf("add by the %s: stdout %q stderr %q exit %d, want exit 1 and permission_denied", c.who, out, stderr, code)
		}
	}
	tc.cliArgs = nodeTLS
	if out, code := tc.cli(eps, "get", "r"); code != 0 || out != "2" {
		t.Fatalf("the refused adds changed the counter: %q exit %d", out, code)
	}

	// A joining node calls POST /v1/cluster/members with its own
	// certificate, which the roles file makes admin.
	addrs := freePorts(t, 2)
	p := &proc{id: "n4", peer: addrs[0], http: addrs[1], dir: filepath.Join(t.TempDir(), "n4")}
	p.args = append([]string{"node", "--id", p.id, "--data", p.dir, "--peer-addr", p.peer, "--http-addr", p.http,
		"--join", tc.nodes[0].http, "--log-level", "warn", "--roles", roles}, nodeTLS...)
	tc.nodes = append(tc.nodes, p)
	tc.start(p)
	tc.waitReady(p)
	out, code := tc.cli(p.http, "status", "--json", "--no-retries")
	var st wire.ClusterStatus
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || len(st.Members) != 4 {
		t.Fatalf("status from n4: %q exit %d", out, code)
	}
}
