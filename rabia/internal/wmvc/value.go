package wmvc

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
)

// Digest identifies a Value: SHA-256 over the length-prefixed ID followed by
// the payload. Two proposals are "the same value" exactly when their digests
// are equal.
type Digest [sha256.Size]byte

// Value is what a replica proposes for a slot: an opaque batch identifier and
// the batch's encoded payload. A nil *Value stands for the null proposal (and
// a null decision). The engine never interprets either field; it stores the
// slices it is given, so callers must not modify them afterwards.
type Value struct {
	// ID names the batch (for example proposer id and a sequence number). It
	// is at most MaxIDLen bytes.
	ID []byte
	// Payload is the batch itself (for example an encoded log entry).
	Payload []byte
}

// Digest returns the value's identity.
func (v *Value) Digest() Digest {
	h := sha256.New()
	var l [8]byte
	binary.BigEndian.PutUint64(l[:], uint64(len(v.ID)))
	h.Write(l[:])
	h.Write(v.ID)
	h.Write(v.Payload)
	var d Digest
	h.Sum(d[:0])
	return d
}

// Equal reports whether v and w are the same value; two nil values are equal.
func (v *Value) Equal(w *Value) bool {
	if v == nil || w == nil {
		return v == w
	}
	return bytes.Equal(v.ID, w.ID) && bytes.Equal(v.Payload, w.Payload)
}

func (v *Value) clone() *Value {
	if v == nil {
		return nil
	}
	return &Value{ID: bytes.Clone(v.ID), Payload: bytes.Clone(v.Payload)}
}
