package history

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// MaxLineBytes bounds one line of a history file; a longer line is refused
// with ErrLineTooLong before it is buffered whole.
const MaxLineBytes = 1 << 20

// ErrLineTooLong reports a history line longer than MaxLineBytes.
var ErrLineTooLong = errors.New("history: line too long")

// record is one line of a history file: exactly one field is set.
type record struct {
	Op    *Op          `json:"op,omitempty"`
	Fault *FaultWindow `json:"fault,omitempty"`
}

// Encoder writes a history as JSON lines. It is not safe for concurrent use
// (Recorder serialises its own writes).
type Encoder struct {
	w   *bufio.Writer
	enc *json.Encoder
}

// NewEncoder returns an Encoder writing to w. Call Flush when done.
func NewEncoder(w io.Writer) *Encoder {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	return &Encoder{w: bw, enc: enc}
}

// WriteOp writes one op line.
func (e *Encoder) WriteOp(op *Op) error { return e.enc.Encode(record{Op: op}) }

// WriteFault writes one fault-window line.
func (e *Encoder) WriteFault(f *FaultWindow) error { return e.enc.Encode(record{Fault: f}) }

// WriteHistory writes every op of h, then every fault window, and flushes.
func (e *Encoder) WriteHistory(h *History) error {
	for i := range h.Ops {
		if err := e.WriteOp(&h.Ops[i]); err != nil {
			return err
		}
	}
	for i := range h.Faults {
		if err := e.WriteFault(&h.Faults[i]); err != nil {
			return err
		}
	}
	return e.Flush()
}

// Flush writes any buffered data to the underlying writer.
func (e *Encoder) Flush() error { return e.w.Flush() }

// Decoder reads a history written by Encoder.
type Decoder struct {
	r    *bufio.Reader
	line int
}

// NewDecoder returns a Decoder reading from r.
func NewDecoder(r io.Reader) *Decoder {
	return &Decoder{r: bufio.NewReaderSize(r, 64<<10)}
}

// Next returns the next record: exactly one of op and fault is non-nil.
// Blank lines are skipped. At the end of input it returns io.EOF. A
// malformed line returns an error wrapping ErrInvalid (or ErrLineTooLong)
// that names the line.
func (d *Decoder) Next() (*Op, *FaultWindow, error) {
	for {
		line, err := d.readLine()
		if err != nil {
			return nil, nil, err
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var rec record
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return nil, nil, fmt.Errorf("%w: line %d: %v", ErrInvalid, d.line, err)
		}
		switch {
		case rec.Op != nil && rec.Fault == nil:
			if err := rec.Op.Validate(); err != nil {
				return nil, nil, fmt.Errorf("line %d: %w", d.line, err)
			}
			return rec.Op, nil, nil
		case rec.Fault != nil && rec.Op == nil:
			if err := rec.Fault.Validate(); err != nil {
				return nil, nil, fmt.Errorf("line %d: %w", d.line, err)
			}
			return nil, rec.Fault, nil
		}
		return nil, nil, fmt.Errorf("%w: line %d: want exactly one of \"op\" and \"fault\"", ErrInvalid, d.line)
	}
}

// readLine returns the next line without its newline, refusing lines longer
// than MaxLineBytes.
func (d *Decoder) readLine() ([]byte, error) {
	d.line++
	var buf []byte
	for {
		chunk, err := d.r.ReadSlice('\n')
		if len(buf)+len(chunk) > MaxLineBytes+1 {
			return nil, fmt.Errorf("%w: line %d exceeds %d bytes", ErrLineTooLong, d.line, MaxLineBytes)
		}
		buf = append(buf, chunk...)
		switch {
		case err == nil:
			return buf[:len(buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF) && len(buf) > 0:
			return buf, nil
		}
		return nil, err
	}
}

// Read decodes a whole history. Ops must appear in index order starting at
// 0; fault windows may be interleaved anywhere.
func Read(r io.Reader) (*History, error) {
	d := NewDecoder(r)
	h := &History{}
	for {
		op, fault, err := d.Next()
		if errors.Is(err, io.EOF) {
			return h, nil
		}
		if err != nil {
			return nil, err
		}
		if op != nil {
			if op.Index != len(h.Ops) {
				return nil, fmt.Errorf("%w: line %d: op index %d, want %d", ErrInvalid, d.line, op.Index, len(h.Ops))
			}
			h.Ops = append(h.Ops, *op)
		} else {
			h.Faults = append(h.Faults, *fault)
		}
	}
}

// ReadFile reads a history file written by WriteFile.
func ReadFile(path string) (*History, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return Read(f)
}

// WriteFile writes h to path as JSON lines, replacing any existing file.
func WriteFile(path string, h *History) (err error) {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	return NewEncoder(f).WriteHistory(h)
}
