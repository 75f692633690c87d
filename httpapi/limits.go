package httpapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strconv"

	"github.com/abacuskit/abacus/errcode"
	"github.com/abacuskit/abacus/httpapi/wire"
)

// MaxHeaderBytes bounds a request's line and header fields (method, URL,
// protocol, every header name and value): a request over it is answered
// 431 with the JSON error body, code invalid_argument.
const MaxHeaderBytes = 64 << 10

// ServerMaxHeaderBytes is the http.Server.MaxHeaderBytes to serve a Handler
// with. It is well above MaxHeaderBytes, so that the handler, which
// answers in JSON, refuses oversized headers rather than the server,
// which answers in plain text before any handler runs (see Listener for
// that case).
const ServerMaxHeaderBytes = 16 * MaxHeaderBytes

var errHeaderTooLarge = &apiError{http.StatusRequestHeaderFieldsTooLarge, errcode.Name(errcode.ErrInvalidArgument),
	fmt.Sprintf("request line and header fields over %d bytes", MaxHeaderBytes)}

// headerBytes is the size of r's request line and header fields as sent,
// give or take the separators.
func headerBytes(r *http.Request) int {
	n := len(r.Method) + 1 + len(r.RequestURI) + 1 + len(r.Proto) + 2
	n += len("Host: ") + len(r.Host) + 2
	for k, vs := range r.Header {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// Listener returns ln with the HTTP server's own error responses rewritten
// to the JSON error body. net/http answers some requests before any
// handler runs, in plain text: a request line and header over the
// server's MaxHeaderBytes (431), a malformed request (400), an unknown
// transfer encoding (501). On connections of ln that carry plain HTTP
// those answers keep their status and become {"error": {"code":
// "invalid_argument", "message": ...}}; over TLS they are encrypted
// below this listener and pass unchanged (the handler's own limit,
// MaxHeaderBytes, answers in JSON there up to ServerMaxHeaderBytes).
func Listener(ln net.Listener) net.Listener { return errorListener{ln} }

type errorListener struct{ net.Listener }

func (l errorListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &errorConn{Conn: c}, nil
}

// errorConn rewrites a write that is exactly one of net/http's plain-text
// error responses. net/http writes each as a single write straight to the
// connection, with these header fields and nothing else (no Date, which
// every response a handler writes carries), so nothing else matches.
type errorConn struct{ net.Conn }

const (
	serverErrorPrefix  = "HTTP/1.1 "
	serverErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
)

func (c *errorConn) Write(p []byte) (int, error) {
	if r, ok := rewriteServerError(p); ok {
		if _, err := c.Conn.Write(r); err != nil {
			return 0, err
		}
		return len(p), nil
	}
	return c.Conn.Write(p)
}

// rewriteServerError returns the JSON form of p when p is one of
// net/http's plain-text error responses.
func rewriteServerError(p []byte) ([]byte, bool) {
	if !bytes.HasPrefix(p, []byte(serverErrorPrefix)) {
		return nil, false
	}
	statusLine, body, ok := bytes.Cut(p[len(serverErrorPrefix):], []byte(serverErrorHeaders))
	if !ok || len(statusLine) < 4 || statusLine[3] != ' ' {
		return nil, false
	}
	code, err := strconv.Atoi(string(statusLine[:3]))
	if err != nil || code < 400 || code > 599 {
		return nil, false
	}
	msg := string(body)
	if code == http.StatusRequestHeaderFieldsTooLarge {
		msg = fmt.Sprintf("request line and header fields over %d bytes", ServerMaxHeaderBytes)
	}
	b, err := json.Marshal(wire.ErrorBody{Error: wire.ErrorDetail{Code: errcode.Name(errcode.ErrInvalidArgument), Message: msg}})
	if err != nil {
		return nil, false
	}
	b = append(b, '\n')
	var out bytes.Buffer
	fmt.Fprintf(&out, "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nCache-Control: no-store\r\nConnection: close\r\nContent-Length: %d\r\n\r\n",
		code, http.StatusText(code), len(b))
	out.Write(b)
	return out.Bytes(), true
}
