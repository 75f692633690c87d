package wmvc

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/vmihailenco/msgpack/v5"
)

// Kind tells the messages of the protocol apart.
type Kind uint8

// Message kinds.
const (
	// KindProposal carries a replica's proposal for a slot (Value nil = null).
	KindProposal Kind = 1 + iota
	// KindState carries a replica's state bit for (Slot, Phase): round 1 of a
	// phase.
	KindState
	// KindVote carries a replica's vote (0, 1 or VoteUnknown) for
	// (Slot, Phase): round 2 of a phase.
	KindVote
	// KindDecision announces a slot's decision: Bit 0 is null; Bit 1 is the
	// value with digest Digest, included in Value when the sender holds it.
	KindDecision
	// KindCatchUp asks for a slot's decision. With HasDigest it asks for the
	// payload of the decided value with that digest (the sender knows the
	// slot decided 1 but lacks the value).
	KindCatchUp
	kindEnd
)

// String returns the kind's name.
func (k Kind) String() string {
	switch k {
	case KindProposal:
		return "proposal"
	case KindState:
		return "state"
	case KindVote:
		return "vote"
	case KindDecision:
		return "decision"
	case KindCatchUp:
		return "catchup"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// VoteUnknown is the '?' vote: the voter saw no majority among the states.
const VoteUnknown uint8 = 2

// Bounds enforced by Validate and DecodeMessage.
const (
	// MaxIDLen bounds Value.ID.
	MaxIDLen = 256
	// DefaultMaxPayload is the payload bound used when a Config or a caller
	// of DecodeMessage passes 0.
	DefaultMaxPayload = 16 << 20
)

// Errors returned by this package; test with errors.Is.
var (
	// ErrMalformed: a message could not be decoded or breaks the message
	// rules (wrong kind, bit out of range, oversized field, ...).
	ErrMalformed = errors.New("wmvc: malformed message")
	// ErrInvalidConfig: NewEngine was given an unusable Config.
	ErrInvalidConfig = errors.New("wmvc: invalid config")
	// ErrBadPeer: a message claims a sender index outside [0, N) or equal
	// to the local replica.
	ErrBadPeer = errors.New("wmvc: bad peer index")
	// ErrAlreadyProposed: Propose was called twice for one slot. A replica
	// proposes once per slot; a second, different proposal would be counted
	// by some peers and not others.
	ErrAlreadyProposed = errors.New("wmvc: slot already proposed")
	// ErrSlotOutOfWindow: the slot is below the compaction floor or too far
	// ahead of it (see Config.SlotWindow).
	ErrSlotOutOfWindow = errors.New("wmvc: slot outside the window")
	// ErrLearnOnly: Propose on a slot marked with Learn.
	ErrLearnOnly = errors.New("wmvc: slot is learn-only")
)

// Message is one protocol message. Which fields are meaningful depends on
// Kind; Validate checks the combinations:
//
//	Kind      Phase  Bit                 Ask  Digest                          Value
//	Proposal  0      0                   yes  no                              proposal or nil (null)
//	State     >= 1   0 or 1              yes  majority value's, if known      nil
//	Vote      >= 1   0, 1 or VoteUnknown yes  majority value's, if known      nil
//	Decision  0      0 (null) or 1       no   required when Bit is 1          decided value, if held
//	CatchUp   0      0                   no   wanted value's, optional        nil
//
// Ask on a proposal, state or vote asks the receiver to send back its own
// message of the same (slot, phase, round); answers never set Ask, so
// requests cannot bounce back and forth.
type Message struct {
	Kind      Kind
	Slot      uint64
	Phase     uint32
	Bit       uint8
	Ask       bool
	HasDigest bool
	Digest    Digest
	Value     *Value
}

// Validate checks the message against the table in Message's documentation
// and the length bounds (maxPayload 0 means DefaultMaxPayload).
func (m *Message) Validate(maxPayload int) error {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	bad := func(why string) error { return fmt.Errorf("%w: %s: %s", ErrMalformed, m.Kind, why) }
	if m.Value != nil {
		if len(m.Value.ID) > MaxIDLen {
			return bad("value id too long")
		}
		if len(m.Value.Payload) > maxPayload {
			return bad("payload too long")
		}
	}
	switch m.Kind {
	case KindProposal:
		if m.Phase != 0 || m.Bit != 0 || m.HasDigest {
			return bad("phase, bit and digest must be empty")
		}
	case KindState, KindVote:
		maxBit := uint8(1)
		if m.Kind == KindVote {
			maxBit = VoteUnknown
		}
		if m.Phase == 0 || m.Bit > maxBit || m.Value != nil {
			return bad("needs phase >= 1, a valid bit and no value")
		}
	case KindDecision:
		if m.Phase != 0 || m.Ask || m.Bit > 1 {
			return bad("needs phase 0, no ask, bit 0 or 1")
		}
		if m.Bit == 0 && (m.HasDigest || m.Value != nil) {
			return bad("null decision carries no value")
		}
		if m.Bit == 1 && !m.HasDigest {
			return bad("value decision needs a digest")
		}
		if m.Value != nil && m.Value.Digest() != m.Digest {
			return bad("value does not match digest")
		}
	case KindCatchUp:
		if m.Phase != 0 || m.Ask || m.Bit != 0 || m.Value != nil {
			return bad("needs only a slot and an optional digest")
		}
	default:
		return fmt.Errorf("%w: unknown kind %d", ErrMalformed, uint8(m.Kind))
	}
	return nil
}

// wireVersion is the first byte of every encoded message.
const wireVersion byte = 1

const messageFields = 7

// MarshalBinary encodes the message: a version byte, then a msgpack array
// [kind, slot, phase, bit, ask, digest (bin 32 or nil), value ([id, payload]
// or nil)].
func (m *Message) MarshalBinary() ([]byte, error) { return m.AppendBinary(nil) }

// AppendBinary appends the message's encoding (see MarshalBinary) to b,
// so a caller can put a header before it without copying the message.
func (m *Message) AppendBinary(b []byte) ([]byte, error) {
	buf := bytes.NewBuffer(b)
	n := 64
	if m.Value != nil {
		n += len(m.Value.ID) + len(m.Value.Payload)
	}
	buf.Grow(n)
	buf.WriteByte(wireVersion)
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(buf)
	err := errors.Join(
		enc.EncodeArrayLen(messageFields),
		enc.EncodeUint8(uint8(m.Kind)),
		enc.EncodeUint64(m.Slot),
		enc.EncodeUint32(m.Phase),
		enc.EncodeUint8(m.Bit),
		enc.EncodeBool(m.Ask),
	)
	if err != nil {
		return nil, err
	}
	if m.HasDigest {
		err = enc.EncodeBytes(m.Digest[:])
	} else {
		err = enc.EncodeNil()
	}
	if err != nil {
		return nil, err
	}
	if m.Value == nil {
		err = enc.EncodeNil()
	} else {
		err = errors.Join(
			enc.EncodeArrayLen(2),
			enc.EncodeBytes(m.Value.ID),
			enc.EncodeBytes(m.Value.Payload),
		)
	}
	if err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// DecodeMessage decodes and validates one message. Every length is checked
// against maxPayload (0 means DefaultMaxPayload), MaxIDLen and the input's
// size before anything is allocated; malformed input returns an error
// wrapping ErrMalformed and never panics. Trailing bytes are an error.
func DecodeMessage(b []byte, maxPayload int) (Message, error) {
	if maxPayload <= 0 {
		maxPayload = DefaultMaxPayload
	}
	var m Message
	if len(b) == 0 || b[0] != wireVersion {
		return m, fmt.Errorf("%w: missing or unknown version", ErrMalformed)
	}
	r := bytes.NewReader(b[1:])
	dec := msgpack.GetDecoder()
	defer msgpack.PutDecoder(dec)
	dec.Reset(r)
	if err := decodeMessage(dec, r, &m, maxPayload); err != nil {
		return Message{}, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if r.Len() != 0 {
		return Message{}, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, r.Len())
	}
	if err := m.Validate(maxPayload); err != nil {
		return Message{}, err
	}
	return m, nil
}

func decodeMessage(dec *msgpack.Decoder, r *bytes.Reader, m *Message, maxPayload int) error {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return err
	}
	if n != messageFields {
		return fmt.Errorf("message has %d fields, want %d", n, messageFields)
	}
	kind, err := dec.DecodeUint8()
	if err != nil {
		return err
	}
	m.Kind = Kind(kind)
	if m.Slot, err = dec.DecodeUint64(); err != nil {
		return err
	}
	if m.Phase, err = dec.DecodeUint32(); err != nil {
		return err
	}
	if m.Bit, err = dec.DecodeUint8(); err != nil {
		return err
	}
	if m.Ask, err = dec.DecodeBool(); err != nil {
		return err
	}
	d, err := readBytes(dec, r, len(m.Digest))
	if err != nil {
		return fmt.Errorf("digest: %w", err)
	}
	if d != nil {
		if len(d) != len(m.Digest) {
			return fmt.Errorf("digest has %d bytes", len(d))
		}
		m.HasDigest = true
		copy(m.Digest[:], d)
	}
	code, err := dec.PeekCode()
	if err != nil {
		return err
	}
	if code == 0xc0 { // msgpack nil
		return dec.DecodeNil()
	}
	if n, err = dec.DecodeArrayLen(); err != nil {
		return err
	}
	if n != 2 {
		return fmt.Errorf("value has %d fields, want 2", n)
	}
	v := &Value{}
	if v.ID, err = readBytes(dec, r, MaxIDLen); err != nil {
		return fmt.Errorf("value id: %w", err)
	}
	if v.Payload, err = readBytes(dec, r, maxPayload); err != nil {
		return fmt.Errorf("value payload: %w", err)
	}
	m.Value = v
	return nil
}

// readBytes reads a msgpack bin/str of at most limit bytes (nil for msgpack
// nil), refusing a length larger than limit or than the remaining input
// before allocating.
func readBytes(dec *msgpack.Decoder, r *bytes.Reader, limit int) ([]byte, error) {
	n, err := dec.DecodeBytesLen()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, nil
	}
	if n > limit || n > r.Len() {
		return nil, fmt.Errorf("length %d over limit %d or input", n, min(limit, r.Len()))
	}
	b := make([]byte, n)
	if err := dec.ReadFull(b); err != nil {
		return nil, err
	}
	return b, nil
}
