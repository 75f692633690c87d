package sequence

import "testing"

func TestNumbers(t *testing.T) {
	n := New()
	var seqs []uint64
	for range 4 {
		seq, ack := n.Begin()
		if ack != 1 {
			t.Fatalf("ack %d before anything finished", ack)
		}
		seqs = append(seqs, seq)
	}
	if seqs[0] != 1 || seqs[3] != 4 {
		t.Fatalf("sequence numbers %v", seqs)
	}
	n.Finish(2) // out of order: 1 is still open
	if _, ack := n.Begin(); ack != 1 {
		t.Fatalf("ack %d with 1 unfinished", ack)
	}
	n.Finish(1)
	if _, ack := n.Begin(); ack != 3 {
		t.Fatalf("ack %d after 1 and 2 finished, want 3", ack)
	}
	n.Finish(1) // again: ignored
	n.Finish(99)
	n.Finish(3)
	n.Finish(4)
	if _, ack := n.Begin(); ack != 5 {
		t.Fatalf("ack %d, want 5", ack)
	}
	if len(n.done) != 0 {
		t.Fatalf("done holds %v", n.done)
	}
}
