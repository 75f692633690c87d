package abacus_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
	"github.com/abacuskit/abacus/internal/transport"
)

// poisonedEntry returns a log entry of about size bytes whose one
// proposal carries, after its known fields, a field of arrays nested
// inside each other all the way down: a few megabytes of 0x91.
func poisonedEntry(t *testing.T, size int) []byte {
	t.Helper()
	b, err := abacus.EncodeEntry([]abacus.Proposal{{Client: 77, Seq: 1, Ack: 1,
		Cmd: abacus.Command{Op: abacus.OpAdd, Name: "poison", Delta: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	// [version][fixarray 1][fixarray 6: the proposal]...: one more field.
	if b[1] != 0x91 || b[2] != 0x96 {
		t.Fatalf("unexpected entry layout % x", b[:3])
	}
	b[2] = 0x97
	b = append(b, bytes.Repeat([]byte{0x91}, size)...)
	return append(b, 0xc0)
}

// TestPeerPortDeeplyNestedEntry sends a 12 MB entry of nested arrays to
// every node's peer port, as a follower forwards proposals and reads to
// its leader, and a membership change of the same shape. A recursive
// decoder overflows its stack on it, a fatal error that takes the whole
// process down; each node must answer with an invalid-argument error and
// keep serving.
func TestPeerPortDeeplyNestedEntry(t *testing.T) {
	c := testcluster.New(t, 3)
	ctx := testcluster.Context(t, 60*time.Second)
	leader := c.Leader()
	if _, err := c.Nodes[leader].Add(ctx, "after", 1); err != nil {
		t.Fatal(err)
	}

	mux, err := transport.Listen(ctx, transport.Config{BindAddr: "127.0.0.1:0", NodeID: "intruder"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mux.Close() })
	cli := transport.NewRPCClient(mux, 1)
	t.Cleanup(func() { _ = cli.Close() })

	poison := poisonedEntry(t, 12<<20)
	// A member as a map whose one (unknown) key holds the nested arrays.
	nestedMember := append([]byte{0x81, 0xa1, 'x'}, bytes.Repeat([]byte{0x91}, 12<<20)...)
	nestedMember = append(nestedMember, 0xc0)
	for i := range c.Nodes {
		addr := c.Configs[i].BindAddr
		for _, tc := range []struct {
			name    string
			method  uint8
			payload []byte
			n       int
		}{
			{"propose", abacus.MethodProposeForTest, poison, 0},
			{"read", abacus.MethodReadForTest, poison, 0},
			{"propose many", abacus.MethodProposeManyForTest, poison, 1},
			{"add member", abacus.MethodAddMemberForTest, nestedMember, 0},
		} {
			resp, err := cli.Call(ctx, addr, tc.method, abacus.ForwardRequestForTest(5*time.Second, tc.payload))
			if err != nil {
				t.Fatalf("node %d, %s: call: %v", i, tc.name, err)
			}
			err = abacus.DecodeForwardResponseForTest(resp, tc.n)
			if !errors.Is(err, abacus.ErrInvalidArgument) {
				t.Fatalf("node %d, %s: answer %v, want an invalid-argument error", i, tc.name, err)
			}
		}
	}

	// Every node still serves, the leader directly and the followers
	// through forwarding.
	for i, n := range c.Nodes {
		if _, err := n.Add(ctx, "after", 1); err != nil {
			t.Fatalf("node %d after the poisoned requests: %v", i, err)
		}
	}
	c.Converge("after", int64(1+len(c.Nodes)))
	if got := c.Leader(); got != leader {
		t.Logf("leadership moved from node %d to node %d", leader, got)
	}
}
