package abacus

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// The log encoding. An entry is one version byte followed by a msgpack array
// of proposals. Commands, proposals and results are msgpack arrays of their
// fields in a fixed order; a decoder reads the fields it knows and skips any
// that a newer writer appended, so fields can be added without a new version.
// Field removals or changes of meaning need a new entryVersion.
const entryVersion byte = 1

// MaxEntryProposals bounds the proposals in one log entry; a decoder refuses
// larger counts before allocating.
const MaxEntryProposals = 1 << 16

const (
	commandFields  = 17
	proposalFields = 6
	// minProposalFields is the field count of proposals written before Key
	// was appended.
	minProposalFields = 5
	resultFields      = 14
)

// The fewest bytes one encoded proposal or result can take (every field a
// one-byte msgpack value). A decoder checks declared counts against the
// bytes left before it allocates for them.
const (
	minProposalBytes = 1 + (minProposalFields - 1) + 1 + commandFields
	minResultBytes   = 1 + resultFields
)

// EncodeEntry encodes proposals as one log entry.
func EncodeEntry(props []Proposal) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(16 + 48*len(props))
	buf.WriteByte(entryVersion)
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	if err := enc.EncodeArrayLen(len(props)); err != nil {
		return nil, err
	}
	for i := range props {
		if err := encodeProposal(enc, &props[i]); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// DecodeEntry decodes a log entry. Malformed input returns an error wrapping
// ErrCorrupt; it never panics.
func DecodeEntry(b []byte) ([]Proposal, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty entry", ErrCorrupt)
	}
	if b[0] != entryVersion {
		return nil, fmt.Errorf("%w: unknown entry version %d", ErrCorrupt, b[0])
	}
	// A fresh decoder each time, not a pooled one: a decoder keeps the
	// buffer a long (declared) string grew, and a pooled one would carry
	// it, and grow it further, from one malformed input to the next.
	r := bytes.NewReader(b[1:])
	dec := msgpack.NewDecoder(r)
	n, err := decodeLen(dec, MaxEntryProposals)
	if err != nil {
		return nil, err
	}
	if n > r.Len()/minProposalBytes {
		return nil, fmt.Errorf("%w: %d proposals declared in %d bytes", ErrCorrupt, n, r.Len())
	}
	props := make([]Proposal, n)
	for i := range props {
		if err := decodeProposal(dec, &props[i]); err != nil {
			return nil, err
		}
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, r.Len())
	}
	return props, nil
}

// EncodeResults encodes results, for sending them between nodes.
func EncodeResults(rs []Result) ([]byte, error) {
	var buf bytes.Buffer
	enc := msgpack.GetEncoder()
	defer msgpack.PutEncoder(enc)
	enc.Reset(&buf)
	if err := enc.EncodeArrayLen(len(rs)); err != nil {
		return nil, err
	}
	for i := range rs {
		if err := encodeResult(enc, &rs[i]); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// DecodeResults decodes what EncodeResults encoded.
func DecodeResults(b []byte) ([]Result, error) {
	r := bytes.NewReader(b)
	dec := msgpack.NewDecoder(r) // not pooled: see DecodeEntry
	n, err := decodeLen(dec, MaxEntryProposals)
	if err != nil {
		return nil, err
	}
	if n > r.Len()/minResultBytes {
		return nil, fmt.Errorf("%w: %d results declared in %d bytes", ErrCorrupt, n, r.Len())
	}
	rs := make([]Result, n)
	for i := range rs {
		if err := decodeResult(dec, &rs[i], true); err != nil {
			return nil, err
		}
	}
	if r.Len() != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, r.Len())
	}
	return rs, nil
}

// encoder collects the first error of a sequence of writes, so field lists
// read as plain sequences.
type encoder struct {
	*msgpack.Encoder
	err error
}

func (e *encoder) int(v int64) {
	if e.err == nil {
		e.err = e.EncodeInt(v)
	}
}

func (e *encoder) uint(v uint64) {
	if e.err == nil {
		e.err = e.EncodeUint(v)
	}
}

func (e *encoder) str(v string) {
	if e.err == nil {
		e.err = e.EncodeString(v)
	}
}

func (e *encoder) bool(v bool) {
	if e.err == nil {
		e.err = e.EncodeBool(v)
	}
}

func (e *encoder) arrayLen(n int) {
	if e.err == nil {
		e.err = e.EncodeArrayLen(n)
	}
}

func encodeProposal(enc *msgpack.Encoder, p *Proposal) error {
	e := encoder{Encoder: enc}
	e.arrayLen(proposalFields)
	e.uint(p.Client)
	e.uint(p.Seq)
	e.uint(p.Ack)
	e.int(p.Time)
	if e.err != nil {
		return e.err
	}
	if err := encodeCommand(enc, &p.Cmd); err != nil {
		return err
	}
	if p.Key.IsZero() {
		return enc.EncodeBytesLen(0)
	}
	return enc.EncodeBytes(p.Key[:])
}

func encodeCommand(enc *msgpack.Encoder, c *Command) error {
	e := encoder{Encoder: enc}
	e.arrayLen(commandFields)
	e.uint(uint64(c.Op))
	e.uint(uint64(c.Flags))
	e.str(c.Name)
	e.int(c.Delta)
	e.int(c.Value)
	e.int(c.Old)
	e.int(c.Min)
	e.int(c.Max)
	e.str(c.FenceLock)
	e.uint(c.FenceToken)
	e.uint(c.Instance)
	e.int(int64(c.TTL))
	e.uint(c.Lease)
	e.str(c.Holder)
	e.uint(c.Token)
	e.int(int64(c.Delay))
	e.arrayLen(len(c.Ops))
	if e.err != nil {
		return e.err
	}
	for i := range c.Ops {
		if err := encodeCommand(enc, &c.Ops[i]); err != nil {
			return err
		}
	}
	return nil
}

func encodeResult(enc *msgpack.Encoder, r *Result) error {
	e := encoder{Encoder: enc}
	e.arrayLen(resultFields)
	e.uint(uint64(r.Code))
	e.int(r.Value)
	e.int(r.Previous)
	e.int(r.Mine)
	e.bool(r.Exists)
	e.bool(r.Swapped)
	e.uint(r.Revision)
	e.uint(r.Token)
	e.uint(r.Lease)
	e.int(int64(r.TTL))
	e.int(int64(r.Remaining))
	e.str(r.Holder)
	e.int(int64(r.Index))
	e.arrayLen(len(r.Results))
	if e.err != nil {
		return e.err
	}
	for i := range r.Results {
		if err := encodeResult(enc, &r.Results[i]); err != nil {
			return err
		}
	}
	return nil
}

// decoder collects the first error of a sequence of reads.
type decoder struct {
	*msgpack.Decoder
	err error
}

func (d *decoder) int() int64 {
	if d.err != nil {
		return 0
	}
	v, err := d.DecodeInt64()
	d.err = err
	return v
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, err := d.DecodeUint64()
	d.err = err
	return v
}

func (d *decoder) small(limit uint64) uint8 {
	v := d.uint()
	if d.err == nil && v >= limit {
		d.err = fmt.Errorf("%w: value %d out of range", ErrCorrupt, v)
	}
	return uint8(v)
}

func (d *decoder) str(limit int) string {
	if d.err != nil {
		return ""
	}
	v, err := d.DecodeString()
	if err == nil && len(v) > limit {
		err = fmt.Errorf("%w: string of %d bytes", ErrCorrupt, len(v))
	}
	d.err = err
	return v
}

func (d *decoder) bool() bool {
	if d.err != nil {
		return false
	}
	v, err := d.DecodeBool()
	d.err = err
	return v
}

// fields reads an array header of at least min fields and returns its length.
func (d *decoder) fields(min int) int {
	if d.err != nil {
		return 0
	}
	n, err := d.DecodeArrayLen()
	if err == nil && n < min {
		err = fmt.Errorf("%w: %d fields, want at least %d", ErrCorrupt, n, min)
	}
	d.err = err
	return n
}

// skip discards fields a newer writer appended.
func (d *decoder) skip(n int) {
	if d.err == nil && n > 0 {
		d.err = skipValues(d.Decoder, n)
	}
}

// maxSkipDepth bounds how deeply a value a decoder skips may nest arrays
// and maps. Fields appended by newer writers nest far less; a peer's value
// nesting deeper is refused (msgpack's own Skip recurses once per level
// and, fed a few megabytes of nested array headers, overflows the stack,
// which kills the process).
const maxSkipDepth = 32

// skipValues discards the next n msgpack values without recursion: a
// stack of the values still to skip at each open nesting level, at most
// maxSkipDepth deep. The work is bounded by the input: every value
// skipped reads at least one byte, and a count declared beyond the input
// ends at its end with an error.
func skipValues(dec *msgpack.Decoder, n int) error {
	stack := make([]int, 1, 8)
	stack[0] = n
	for len(stack) > 0 {
		top := len(stack) - 1
		if stack[top] == 0 {
			stack = stack[:top]
			continue
		}
		stack[top]--
		c, err := dec.PeekCode()
		if err != nil {
			return err
		}
		var k int
		switch {
		case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
			k, err = dec.DecodeArrayLen()
		case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
			k, err = dec.DecodeMapLen()
			k *= 2 // keys and values
		default:
			// A scalar, string, binary or extension: msgpack's Skip reads
			// it without recursing.
			if err := dec.Skip(); err != nil {
				return err
			}
			continue
		}
		if err != nil {
			return err
		}
		if k <= 0 {
			continue
		}
		if len(stack) > maxSkipDepth {
			return fmt.Errorf("%w: values nested deeper than %d levels", ErrCorrupt, maxSkipDepth)
		}
		stack = append(stack, k)
	}
	return nil
}

func (d *decoder) wrap() error {
	if d.err == nil {
		return nil
	}
	return corrupt(d.err)
}

func corrupt(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrCorrupt) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrCorrupt, err)
}

func decodeLen(dec *msgpack.Decoder, limit int) (int, error) {
	n, err := dec.DecodeArrayLen()
	if err != nil {
		return 0, corrupt(err)
	}
	if n < 0 || n > limit {
		return 0, fmt.Errorf("%w: array of %d elements, limit %d", ErrCorrupt, n, limit)
	}
	return n, nil
}

func decodeProposal(dec *msgpack.Decoder, p *Proposal) error {
	d := decoder{Decoder: dec}
	n := d.fields(minProposalFields)
	p.Client = d.uint()
	p.Seq = d.uint()
	p.Ack = d.uint()
	p.Time = d.int()
	if d.err != nil {
		return d.wrap()
	}
	if err := decodeCommand(dec, &p.Cmd, true); err != nil {
		return err
	}
	if n >= proposalFields {
		d.key(&p.Key)
	}
	d.skip(n - proposalFields)
	return d.wrap()
}

// key reads a KeyID: an empty (or nil) byte string for none, else 16 bytes.
func (d *decoder) key(k *KeyID) {
	if d.err != nil {
		return
	}
	n, err := d.DecodeBytesLen()
	switch {
	case err != nil:
		d.err = err
	case n == 16:
		d.err = d.ReadFull(k[:])
	case n > 0:
		d.err = fmt.Errorf("%w: idempotency key of %d bytes", ErrCorrupt, n)
	}
}

func decodeCommand(dec *msgpack.Decoder, c *Command, top bool) error {
	d := decoder{Decoder: dec}
	n := d.fields(commandFields)
	c.Op = Op(d.small(256))
	c.Flags = Flags(d.small(256))
	c.Name = d.str(MaxNameLen)
	c.Delta = d.int()
	c.Value = d.int()
	c.Old = d.int()
	c.Min = d.int()
	c.Max = d.int()
	c.FenceLock = d.str(MaxNameLen)
	c.FenceToken = d.uint()
	c.Instance = d.uint()
	c.TTL = time.Duration(d.int())
	c.Lease = d.uint()
	c.Holder = d.str(MaxHolderLen)
	c.Token = d.uint()
	c.Delay = time.Duration(d.int())
	if d.err != nil {
		return d.wrap()
	}
	limit := MaxBatchOps
	if !top {
		limit = 0 // batches do not nest
	}
	ops, err := decodeLen(dec, limit)
	if err != nil {
		return err
	}
	if ops > 0 {
		// Grow as operations decode: the count is only declared so far.
		c.Ops = make([]Command, 0, min(ops, 16))
		for range ops {
			var op Command
			if err := decodeCommand(dec, &op, false); err != nil {
				return err
			}
			c.Ops = append(c.Ops, op)
		}
	}
	d.skip(n - commandFields)
	return d.wrap()
}

func decodeResult(dec *msgpack.Decoder, r *Result, top bool) error {
	d := decoder{Decoder: dec}
	n := d.fields(resultFields)
	r.Code = Code(d.small(256))
	r.Value = d.int()
	r.Previous = d.int()
	r.Mine = d.int()
	r.Exists = d.bool()
	r.Swapped = d.bool()
	r.Revision = d.uint()
	r.Token = d.uint()
	r.Lease = d.uint()
	r.TTL = time.Duration(d.int())
	r.Remaining = time.Duration(d.int())
	r.Holder = d.str(MaxHolderLen)
	r.Index = int(d.int())
	if d.err != nil {
		return d.wrap()
	}
	limit := MaxBatchOps
	if !top {
		limit = 0
	}
	k, err := decodeLen(dec, limit)
	if err != nil {
		return err
	}
	if k > 0 {
		// Grow as results decode: the count is only declared so far.
		r.Results = make([]Result, 0, min(k, 16))
		for range k {
			var res Result
			if err := decodeResult(dec, &res, false); err != nil {
				return err
			}
			r.Results = append(r.Results, res)
		}
	}
	d.skip(n - resultFields)
	return d.wrap()
}
