package rabia

import (
	"bytes"
	"container/heap"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/rabia/internal/wmvc"
)

// Peer messages travel on the node's KindRabia connections; the first byte
// tells them apart.
const (
	// frameConsensus carries one wmvc.Message.
	frameConsensus byte = 1
	// frameBatch disseminates a batch: [u16 id length][id][payload].
	frameBatch byte = 2
	// frameStatus reports the sender's progress and its estimate of
	// state-machine time: [u64 slots applied][u64 time].
	frameStatus byte = 3
)

// batchIDLen is the length of a batch id: [u64 proposer time][u16
// proposer index][u64 proposer sequence], big-endian, so that comparing
// ids as bytes orders batches by (time, proposer, sequence): the queue
// order every replica shares.
const batchIDLen = 8 + 2 + 8

func makeBatchID(t int64, proposer int, seq uint64) []byte {
	b := make([]byte, 0, batchIDLen)
	b = binary.BigEndian.AppendUint64(b, uint64(max(t, 0)))
	b = binary.BigEndian.AppendUint16(b, uint16(proposer))
	return binary.BigEndian.AppendUint64(b, seq)
}

// batchProposer returns the proposer index of a well-formed batch id.
func batchProposer(id []byte) (int, bool) {
	if len(id) != batchIDLen {
		return 0, false
	}
	return int(binary.BigEndian.Uint16(id[8:])), true
}

func encodeBatchFrame(v *wmvc.Value) []byte {
	b := make([]byte, 0, 3+len(v.ID)+len(v.Payload))
	b = append(b, frameBatch)
	b = binary.BigEndian.AppendUint16(b, uint16(len(v.ID)))
	b = append(b, v.ID...)
	return append(b, v.Payload...)
}

func decodeBatchFrame(b []byte, maxPayload int) (*wmvc.Value, error) {
	if len(b) < 2 {
		return nil, fmt.Errorf("%w: short batch frame", abacus.ErrCorrupt)
	}
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if n != batchIDLen || n > len(b) || len(b)-n > maxPayload {
		return nil, fmt.Errorf("%w: batch frame lengths", abacus.ErrCorrupt)
	}
	return &wmvc.Value{ID: b[:n:n], Payload: b[n:]}, nil
}

func encodeStatusFrame(applied uint64, sm int64) []byte {
	b := binary.BigEndian.AppendUint64([]byte{frameStatus}, applied)
	return binary.BigEndian.AppendUint64(b, uint64(max(sm, 0)))
}

func decodeStatusFrame(b []byte) (applied uint64, sm int64, err error) {
	if len(b) != 16 {
		return 0, 0, fmt.Errorf("%w: status frame length", abacus.ErrCorrupt)
	}
	sm = int64(binary.BigEndian.Uint64(b[8:]))
	if sm < 0 {
		return 0, 0, fmt.Errorf("%w: status frame time", abacus.ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b), sm, nil
}

// batchQueue is a replica's queue of batches waiting for a slot, ordered
// by id (proposer time, proposer index, sequence): replicas that hold the
// same batches have the same head.
type batchQueue struct {
	h     idHeap
	items map[string]*queued
}

type queued struct {
	v       *wmvc.Value
	arrived time.Time
	index   int // position in the heap
}

type idHeap []*queued

func (h idHeap) Len() int           { return len(h) }
func (h idHeap) Less(i, j int) bool { return bytes.Compare(h[i].v.ID, h[j].v.ID) < 0 }
func (h idHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *idHeap) Push(x any) {
	q := x.(*queued)
	q.index = len(*h)
	*h = append(*h, q)
}
func (h *idHeap) Pop() any {
	old := *h
	q := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return q
}

func newBatchQueue() *batchQueue { return &batchQueue{items: map[string]*queued{}} }

// Len returns the number of queued batches.
func (q *batchQueue) Len() int { return len(q.items) }

// Has reports whether the batch with id is queued.
func (q *batchQueue) Has(id string) bool { _, ok := q.items[id]; return ok }

// Push queues v unless a batch with its id is queued already.
func (q *batchQueue) Push(v *wmvc.Value, arrived time.Time) {
	id := string(v.ID)
	if _, ok := q.items[id]; ok {
		return
	}
	e := &queued{v: v, arrived: arrived}
	q.items[id] = e
	heap.Push(&q.h, e)
}

// Remove drops the batch with id, if queued.
func (q *batchQueue) Remove(id string) {
	if e, ok := q.items[id]; ok {
		heap.Remove(&q.h, e.index)
		delete(q.items, id)
	}
}

// Peek returns the head without removing it.
func (q *batchQueue) Peek() (*queued, bool) {
	if len(q.h) == 0 {
		return nil, false
	}
	return q.h[0], true
}

// Pop removes and returns the head.
func (q *batchQueue) Pop() (*queued, bool) {
	e, ok := q.Peek()
	if !ok {
		return nil, false
	}
	heap.Pop(&q.h)
	delete(q.items, string(e.v.ID))
	return e, true
}
