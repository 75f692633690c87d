package abacus

import (
	"io"

	"github.com/hashicorp/raft"
)

// RaftFSM adapts an FSM to hashicorp/raft's FSM and BatchingFSM
// interfaces. The FSM itself knows nothing of Raft: the leaderless path
// drives it directly.
//
// Apply and ApplyBatch return, per log, a []Result for a command entry, an
// error wrapping ErrCorrupt for an entry that does not decode, and nil for
// Raft's own entries.
type RaftFSM struct {
	FSM *FSM
}

var _ raft.BatchingFSM = RaftFSM{}

// Apply applies one log.
func (r RaftFSM) Apply(l *raft.Log) any { return r.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies consecutive logs.
func (r RaftFSM) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		res, err := r.FSM.ApplyEntry(l.Index, l.Data)
		if err != nil {
			out[i] = err
			continue
		}
		out[i] = res
	}
	return out
}

// Snapshot captures the state; Raft persists it concurrently with applies.
func (r RaftFSM) Snapshot() (raft.FSMSnapshot, error) {
	return raftSnapshot{r.FSM.Snapshot()}, nil
}

// Restore replaces the state from a snapshot.
func (r RaftFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return r.FSM.Restore(rc)
}

type raftSnapshot struct{ s *Snapshot }

func (s raftSnapshot) Persist(sink raft.SnapshotSink) error {
	if _, err := s.s.WriteTo(sink); err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s raftSnapshot) Release() {}
