package transport

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"
)

// TestFrameAllocationFollowsBytes declares frames of the largest allowed
// size and sends a few bytes of them: the reader must not reserve the
// declared size before the bytes arrive, or a peer could make a node hold
// MaxFrame bytes per connection by sending four.
func TestFrameAllocationFollowsBytes(t *testing.T) {
	const limit = DefaultMaxFrame
	rpc := binary.BigEndian.AppendUint32(nil, uint32(rpcBodyMin+limit))
	rpc = append(rpc, make([]byte, 9+100)...)
	msg := binary.BigEndian.AppendUint32(nil, uint32(limit))
	msg = append(msg, make([]byte, 100)...)
	for name, read := range map[string]func() error{
		"rpc": func() error {
			_, _, _, err := readRPCFrame(bytes.NewReader(rpc), limit)
			return err
		},
		"message": func() error {
			_, err := readMsgFrame(bytes.NewReader(msg), limit)
			return err
		},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		err := read()
		runtime.ReadMemStats(&after)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("%s: %v, want a truncated frame", name, err)
		}
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 2*payloadStep {
			t.Errorf("%s: a frame of 100 bytes sent allocated %d bytes", name, grew)
		}
	}
	// Whole frames of several steps still read exactly.
	big := bytes.Repeat([]byte("abcdefg"), 3*payloadStep/7+5)
	got, err := readMsgFrame(bytes.NewReader(appendMsgFrame(nil, big)), limit)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("large message: %d bytes, %v", len(got), err)
	}
	_, _, got, err = readRPCFrame(bytes.NewReader(newRPCFrame(3, 1, big)), limit)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("large rpc frame: %d bytes, %v", len(got), err)
	}
}
