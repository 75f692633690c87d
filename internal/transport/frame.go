package transport

import (
	"encoding/binary"
	"fmt"
	"io"
	"slices"
)

// RPC frames: [u32 length][u64 request id][u8 method or status][payload],
// where length counts the bytes after the length field (9 + payload).
const (
	rpcHeaderLen = 4 + 8 + 1
	rpcBodyMin   = 8 + 1
)

// appendRPCFrame appends one RPC frame to b.
func appendRPCFrame(b []byte, id uint64, code byte, payload []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(rpcBodyMin+len(payload)))
	b = binary.BigEndian.AppendUint64(b, id)
	b = append(b, code)
	return append(b, payload...)
}

// newRPCFrame returns one RPC frame in a buffer of exactly its size.
func newRPCFrame(id uint64, code byte, payload []byte) []byte {
	return appendRPCFrame(make([]byte, 0, rpcHeaderLen+len(payload)), id, code, payload)
}

// readRPCFrame reads one RPC frame from r. A payload longer than maxPayload
// is refused (ErrFrameTooLarge) before anything is allocated, and a
// shorter one is allocated as it arrives (readPayload); a length too
// short to hold the header is ErrProtocol. Either leaves r unusable.
func readRPCFrame(r io.Reader, maxPayload int) (id uint64, code byte, payload []byte, err error) {
	var hdr [rpcHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:4]); err != nil {
		return 0, 0, nil, err
	}
	n := uint64(binary.BigEndian.Uint32(hdr[:4]))
	if n < rpcBodyMin {
		return 0, 0, nil, fmt.Errorf("%w: frame length %d below header size", ErrProtocol, n)
	}
	if n-rpcBodyMin > uint64(maxPayload) {
		return 0, 0, nil, fmt.Errorf("%w: payload of %d bytes, limit %d", ErrFrameTooLarge, n-rpcBodyMin, maxPayload)
	}
	if _, err := io.ReadFull(r, hdr[4:]); err != nil {
		return 0, 0, nil, unexpectedEOF(err)
	}
	payload, err = readPayload(r, int(n-rpcBodyMin))
	if err != nil {
		return 0, 0, nil, err
	}
	return binary.BigEndian.Uint64(hdr[4:12]), hdr[12], payload, nil
}

// Messages: [u32 length][payload].
const msgHeaderLen = 4

// appendMsgFrame appends one message frame to b.
func appendMsgFrame(b []byte, msg []byte) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(msg)))
	return append(b, msg...)
}

// readMsgFrame reads one message frame from r, refusing a payload longer
// than maxPayload before allocating it, and allocating a shorter one as it
// arrives (readPayload).
func readMsgFrame(r io.Reader, maxPayload int) ([]byte, error) {
	var hdr [msgHeaderLen]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, err
	}
	n := uint64(binary.BigEndian.Uint32(hdr[:]))
	if n > uint64(maxPayload) {
		return nil, fmt.Errorf("%w: message of %d bytes, limit %d", ErrFrameTooLarge, n, maxPayload)
	}
	return readPayload(r, int(n))
}

// payloadStep is how far ahead of the bytes received a frame's buffer
// grows.
const payloadStep = 1 << 20

// readPayload reads a frame's n-byte payload, growing its buffer as the
// bytes arrive (at most payloadStep ahead of them): a length a peer
// declares costs memory only once it has sent the bytes.
func readPayload(r io.Reader, n int) ([]byte, error) {
	b := make([]byte, 0, min(n, payloadStep))
	for len(b) < n {
		k := min(n-len(b), payloadStep)
		b = slices.Grow(b, k)
		m, err := io.ReadFull(r, b[len(b):len(b)+k])
		b = b[:len(b)+m]
		if err != nil {
			return nil, unexpectedEOF(err)
		}
	}
	return b, nil
}

// unexpectedEOF turns a clean EOF inside a frame into io.ErrUnexpectedEOF.
func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
