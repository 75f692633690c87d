package transport

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// FuzzReadHandshake checks that any byte string either decodes to a
// handshake that re-encodes to the bytes consumed, or fails with
// ErrBadHandshake, and never reads past the handshake.
func FuzzReadHandshake(f *testing.F) {
	f.Add(appendHandshake(nil, KindRaft, "node-1"))
	f.Add(appendHandshake(nil, KindRPC, string(bytes.Repeat([]byte{'x'}, MaxNodeIDLen))))
	f.Add([]byte{KindRabia, 0})
	f.Add([]byte{KindRabia, 5, 'a'})
	f.Add([]byte{})
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		kind, id, err := readHandshake(r)
		if err != nil {
			if !errors.Is(err, ErrBadHandshake) {
				t.Fatalf("error %v does not wrap ErrBadHandshake", err)
			}
			return
		}
		consumed := len(data) - r.Len()
		enc := appendHandshake(nil, kind, id)
		if !bytes.Equal(enc, data[:consumed]) {
			t.Fatalf("decoded %d %q from %x, re-encodes to %x", kind, id, data[:consumed], enc)
		}
		if validNodeID(id) != nil {
			t.Fatalf("decoded an invalid id %q", id)
		}
	})
}

// FuzzReadRPCFrame checks that the frame decoder never panics, never
// allocates past its bound, and that decoded frames re-encode to the bytes
// consumed.
func FuzzReadRPCFrame(f *testing.F) {
	const max = 1 << 10
	f.Add(newRPCFrame(1, 2, []byte("hello")), uint16(max))
	f.Add(newRPCFrame(1<<63, 0, nil), uint16(max))
	f.Add(binary.BigEndian.AppendUint32(nil, 0xffffffff), uint16(max))
	f.Add(binary.BigEndian.AppendUint32(nil, 3), uint16(max))
	f.Add(append(newRPCFrame(7, 1, make([]byte, 100)), newRPCFrame(8, 0, nil)...), uint16(50))
	f.Add([]byte{0, 0}, uint16(max))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		r := bytes.NewReader(data)
		br := bufio.NewReaderSize(r, 16)
		for {
			id, code, payload, err := readRPCFrame(br, int(limit))
			if err != nil {
				return
			}
			if len(payload) > int(limit) {
				t.Fatalf("payload of %d bytes over limit %d", len(payload), limit)
			}
			enc := newRPCFrame(id, code, payload)
			if len(enc) > len(data) || !bytes.Equal(enc, data[:len(enc)]) {
				t.Fatalf("frame re-encodes to %x, input %x", enc, data)
			}
			data = data[len(enc):]
		}
	})
}

// FuzzReadMsgFrame does the same for message frames.
func FuzzReadMsgFrame(f *testing.F) {
	f.Add(appendMsgFrame(nil, []byte("abc")), uint16(10))
	f.Add(appendMsgFrame(nil, nil), uint16(0))
	f.Add(binary.BigEndian.AppendUint32(nil, 11), uint16(10))
	f.Add([]byte{0, 0, 0, 5, 'a'}, uint16(10))
	f.Fuzz(func(t *testing.T, data []byte, limit uint16) {
		msg, err := readMsgFrame(bytes.NewReader(data), int(limit))
		if err != nil {
			if errors.Is(err, ErrFrameTooLarge) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return
			}
			t.Fatalf("unexpected error %v", err)
		}
		if len(msg) > int(limit) {
			t.Fatalf("message of %d bytes over limit %d", len(msg), limit)
		}
		if enc := appendMsgFrame(nil, msg); !bytes.Equal(enc, data[:len(enc)]) {
			t.Fatalf("message re-encodes to %x, input %x", enc, data)
		}
	})
}
