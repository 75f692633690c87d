package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"unicode/utf8"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/errcode"
	"github.com/abacuskit/abacus/httpapi/wire"
)

// apiError is an error with its HTTP form decided here rather than by the
// mapping of abacus errors.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

var (
	errNoRoute = refusal(errcode.ErrNotFound, "no such endpoint")
	errMethod  = &apiError{http.StatusMethodNotAllowed, "method_not_allowed", "method not allowed on this endpoint"}
)

// refusal returns an error answered with sentinel's status and code (from
// errcode's table) and msg as its message.
func refusal(sentinel error, msg string) *apiError {
	status, code := replyOf(sentinel)
	return &apiError{status, code, msg}
}

// invalid returns a 400 invalid_argument error.
func invalid(format string, args ...any) error {
	return refusal(errcode.ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// errorStatus maps an error to its status and code: errcode's table
// (docs/API.md), then context errors. write says whether the request may
// have changed state: a write that timed out is indeterminate, a read that
// timed out merely unavailable.
func errorStatus(err error, write bool) (int, string) {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae.status, ae.code
	}
	if e, ok := errcode.Reply(err); ok {
		return e.Status, e.Name
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		if write {
			return replyOf(errcode.ErrIndeterminate)
		}
		return replyOf(errcode.ErrUnavailable)
	}
	return http.StatusInternalServerError, "internal"
}

// replyOf returns the status and code of a sentinel's row.
func replyOf(sentinel error) (int, string) {
	e, _ := errcode.Reply(sentinel)
	return e.Status, e.Name
}

func (h *Handler) writeError(w http.ResponseWriter, err error, write bool) {
	status, code := errorStatus(err, write)
	d := wire.ErrorDetail{Code: code, Message: err.Error()}
	var oe *abacus.OpError
	if errors.As(err, &oe) {
		d.Holder = oe.Holder
		if oe.Index >= 0 {
			i := oe.Index
			d.Index = &i
		}
	}
	if status == http.StatusInternalServerError {
		h.log.Error("http request failed", "err", err)
	}
	if status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, DELETE")
	}
	writeJSON(w, status, wire.ErrorBody{Error: d})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"error":{"code":"internal","message":"encoding the response failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// readBody decodes the request body into v. An absent or empty body is an
// error unless optional is set. Bodies over MaxBodyBytes, malformed JSON,
// unknown fields and wrong types are invalid arguments.
func (q *request) readBody(v any, optional bool) error {
	body := http.MaxBytesReader(q.w, q.r.Body, MaxBodyBytes)
	b, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return invalid("request body over %d bytes", MaxBodyBytes)
		}
		return invalid("reading the request body: %v", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		if optional {
			return nil
		}
		return invalid("request body required")
	}
	if err := decodeJSON(b, v); err != nil {
		return invalid("request body: %s", jsonMessage(err))
	}
	return nil
}

// decodeJSON reads one JSON value into v: unknown fields, trailing data and
// type mismatches are errors.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	// Only whitespace may follow the value: anything else, even a stray
	// closing bracket or brace, is trailing data.
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the JSON value")
	}
	return nil
}

// jsonMessage words a decoding error for the client.
func jsonMessage(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field != "" {
			return fmt.Sprintf("field %q: cannot use a JSON %s as %s", te.Field, te.Value, te.Type)
		}
		return fmt.Sprintf("cannot use a JSON %s as %s", te.Value, te.Type)
	}
	return err.Error()
}

// name returns path parameter i as a counter or lock name.
// nameAndBody reads the first path name and decodes the JSON body into a
// T (an absent body is allowed when optional).
func nameAndBody[T any](q *request, optional bool) (string, T, error) {
	var body T
	name, err := q.name(0)
	if err != nil {
		return "", body, err
	}
	if err := q.readBody(&body, optional); err != nil {
		return "", body, err
	}
	return name, body, nil
}

// consistency reads the consistency query parameter.
func (q *request) consistency() ([]abacus.Option, error) {
	switch c := q.r.URL.Query().Get("consistency"); c {
	case "", "linearizable":
		return nil, nil
	case "stale":
		return []abacus.Option{abacus.WithStale()}, nil
	default:
		return nil, invalid("unknown consistency %q: want linearizable or stale", c)
	}
}

func (q *request) name(i int) (string, error) {
	n := q.params[i]
	if len(n) == 0 || len(n) > abacus.MaxNameLen {
		return "", invalid("name must be 1-%d bytes, got %d", abacus.MaxNameLen, len(n))
	}
	if !utf8.ValidString(n) {
		return "", invalid("name is not valid UTF-8")
	}
	return n, nil
}

// id returns path parameter i as an instance id. Ids are positive decimal
// integers, so any other string names no instance: 404 not_found, as an
// unknown number is.
func (q *request) id(i int) (uint64, error) {
	v, err := wire.ParseID(q.params[i])
	if err != nil || v == 0 {
		return 0, refusal(errcode.ErrNotFound, fmt.Sprintf("no instance %q (ids are positive decimal integers)", q.params[i]))
	}
	return uint64(v), nil
}

// writeOptions returns a write's exactly-once option: its Idempotency-Key,
// or its place in a client session (the Abacus-Session, Abacus-Seq and
// Abacus-Ack headers), or none.
func (q *request) writeOptions() ([]abacus.Option, error) {
	k := q.r.Header.Get(wire.IdempotencyKeyHeader)
	sess, err := q.session()
	switch {
	case err != nil:
		return nil, err
	case k != "" && sess != nil:
		return nil, invalid("a write carries an Idempotency-Key or a session, not both")
	case sess != nil:
		return []abacus.Option{sess}, nil
	case k == "":
		return nil, nil
	case len(k) > MaxIdempotencyKeyLen:
		return nil, invalid("Idempotency-Key over %d bytes", MaxIdempotencyKeyLen)
	}
	return []abacus.Option{abacus.WithIdempotencyKey(k)}, nil
}
