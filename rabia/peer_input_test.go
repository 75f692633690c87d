package rabia

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/internal/testcluster"
	"github.com/abacuskit/abacus/internal/transport"
	"github.com/abacuskit/abacus/rabia/internal/wmvc"
)

// poisonedBatch returns a batch payload of about size bytes that does not
// decode: its one proposal carries a trailing field of arrays nested all
// the way down.
func poisonedBatch(t testing.TB, size int) []byte {
	t.Helper()
	b, err := abacus.EncodeEntry([]abacus.Proposal{{Client: 77, Seq: 1, Ack: 1,
		Cmd: abacus.Command{Op: abacus.OpAdd, Name: "poison", Delta: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if b[1] != 0x91 || b[2] != 0x96 {
		t.Fatalf("unexpected entry layout % x", b[:3])
	}
	b[2] = 0x97 // one more field
	b = append(b, bytes.Repeat([]byte{0x91}, size)...)
	return append(b, 0xc0)
}

// TestPoisonedBatchNeverDecided has a peer that claims a member's id send
// a batch that does not decode to the other replicas, first as a batch
// to queue, then as its proposal in the coming slots. Queued, it would be
// the first batch every replica proposes (its id sorts before all
// others), be decided and persisted, and be applied by every replica on
// every restart. The replicas refuse it instead: it never reaches a log,
// and the cluster keeps serving.
func TestPoisonedBatchNeverDecided(t *testing.T) {
	rec := testcluster.NewRecorder()
	c := testcluster.NewLeaderless(t, 3,
		testcluster.WithBackend(Backend(Options{})), testcluster.WithLogger(rec))
	c.Ready("ready")
	ctx := testcluster.Context(t, 60*time.Second)

	const claimed = 1 // the member whose id the peer claims
	mux, err := transport.Listen(ctx, transport.Config{BindAddr: "127.0.0.1:0", NodeID: c.Configs[claimed].ID})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mux.Close() })
	msgr := mux.Messenger(func(string, []byte) {}, transport.MessengerConfig{})
	t.Cleanup(func() { _ = msgr.Close() })

	id := makeBatchID(1, claimed, 0xfeedface)
	batch := &wmvc.Value{ID: id, Payload: poisonedBatch(t, 12<<20)}
	small := &wmvc.Value{ID: id, Payload: poisonedBatch(t, 1<<10)}
	targets := []int{0, 2}
	for _, i := range targets {
		if err := msgr.Send(c.Configs[i].BindAddr, encodeBatchFrame(batch)); err != nil {
			t.Fatal(err)
		}
	}
	testcluster.Eventually(t, 20*time.Second, "both replicas refusing the batch", func() bool {
		return rec.Count("rabia: batch that does not decode") >= len(targets)
	})
	from := c.Nodes[0].Status().AppliedIndex
	for _, i := range targets {
		for s := from; s < from+16; s++ {
			m := wmvc.Message{Kind: wmvc.KindProposal, Slot: s, Value: small}
			frame, err := m.AppendBinary([]byte{frameConsensus})
			if err != nil {
				t.Fatal(err)
			}
			if err := msgr.Send(c.Configs[i].BindAddr, frame); err != nil {
				t.Fatal(err)
			}
		}
	}
	testcluster.Eventually(t, 20*time.Second, "both replicas refusing the proposals", func() bool {
		return rec.Count("rabia: proposal of a batch that does not decode") >= 2*16
	})

	// The cluster keeps deciding: enough slots for every replica to have
	// started several after the batch arrived.
	for round := range 10 {
		for i, n := range c.Nodes {
			if _, err := n.Add(ctx, "after", 1); err != nil {
				t.Fatalf("round %d, node %d: %v", round, i, err)
			}
		}
	}
	c.Converge("after", 10*int64(len(c.Nodes)))
	for i := range c.Nodes {
		if at := c.Nodes[i].Status().AppliedIndex; at < from+16 {
			t.Fatalf("node %d applied %d slots, want beyond the poisoned ones (%d)", i, at, from+16)
		}
	}
	for i := range c.Nodes {
		filepath.WalkDir(c.Configs[i].Dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, id) {
				t.Fatalf("node %d persisted the poisoned batch in %s", i, path)
			}
			return nil
		})
	}
}

// TestEncodeBatchRefusesUndecodable checks that a replica does not
// disseminate its own batch when it would not decode: batches do not nest,
// and a name over the limit is refused by every decoder.
func TestEncodeBatchRefusesUndecodable(t *testing.T) {
	for name, cmd := range map[string]abacus.Command{
		"nested batch": {Op: abacus.OpBatch, Ops: []abacus.Command{{Op: abacus.OpBatch, Ops: []abacus.Command{{Op: abacus.OpGet, Name: "x"}}}}},
		"long name":    {Op: abacus.OpAdd, Name: string(bytes.Repeat([]byte{'n'}, abacus.MaxNameLen+1)), Delta: 1},
	} {
		if _, err := encodeBatch([]abacus.Proposal{{Cmd: cmd}}); err == nil {
			t.Fatalf("%s: encoded a batch that does not decode", name)
		}
	}
	if _, err := encodeBatch([]abacus.Proposal{{Cmd: abacus.Command{Op: abacus.OpAdd, Name: "x", Delta: 1}}}); err != nil {
		t.Fatal(err)
	}
}

// FuzzBatchFrame feeds a replica's checks of a peer's batch frame
// arbitrary payloads, seeded with deeply nested ones: none may crash, and
// a batch that passes decodes as a log entry.
func FuzzBatchFrame(f *testing.F) {
	ok, err := abacus.EncodeEntry([]abacus.Proposal{{Cmd: abacus.Command{Op: abacus.OpAdd, Name: "x", Delta: 1}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(ok)
	f.Add(poisonedBatch(f, 1<<19))
	f.Add(poisonedBatch(f, 64))
	f.Add(append([]byte{1}, bytes.Repeat([]byte{0xdc, 0x00, 0x01}, 1<<17)...))
	f.Fuzz(func(t *testing.T, payload []byte) {
		frame := encodeBatchFrame(&wmvc.Value{ID: makeBatchID(1, 1, 1), Payload: payload})
		v, err := decodeBatchFrame(frame[1:], wmvc.DefaultMaxPayload)
		if err != nil {
			return
		}
		if checkBatch(v.Payload) == nil {
			if _, err := abacus.DecodeEntry(v.Payload); err != nil {
				t.Fatalf("batch passed the check but does not decode: %v", err)
			}
		}
	})
}
