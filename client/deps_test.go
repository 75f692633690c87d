package client_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLightDependencies: the client and the command line link none of the
// server: not the abacus package, not its HTTP handler, and none of the
// replication libraries (hashicorp/raft, raft-boltdb, bbolt).
func TestLightDependencies(t *testing.T) {
	goBin, err := exec.LookPath("go") // go test puts its own go first on PATH
	if err != nil {
		t.Fatalf("no go command to list dependencies with: %v", err)
	}
	pkgs := []string{"github.com/abacuskit/abacus/client", "github.com/abacuskit/abacus/cmd/abacus"}
	out, err := exec.Command(goBin, append([]string{"list", "-deps"}, pkgs...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) == 0 {
		t.Fatal("go list -deps listed nothing")
	}
	forbidden := map[string]bool{
		"github.com/abacuskit/abacus":         true,
		"github.com/abacuskit/abacus/httpapi": true,
	}
	for _, d := range deps {
		if forbidden[d] || strings.Contains(d, "hashicorp/raft") || strings.Contains(d, "raft-boltdb") ||
			strings.Contains(d, "bbolt") || strings.Contains(d, "boltdb/bolt") {
			t.Errorf("client or cmd/abacus depends on %s", d)
		}
	}
}
