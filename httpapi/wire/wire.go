// Package wire holds the JSON request and response bodies of abacus's HTTP
// API (docs/API.md) and its header names. The server (package httpapi) and
// the client (package client) both use these types, so the two sides cannot
// drift apart, and the package imports only the standard library, so a
// client links none of the server.
package wire

import (
	"bytes"
	"fmt"
	"strconv"
)

// The headers that place a write in a client session (see docs/API.md), and
// the header of an idempotency key.
const (
	// SessionHeader carries a session id from POST /v1/sessions.
	SessionHeader = "Abacus-Session"
	// SeqHeader numbers the write within its session, from 1; every retry
	// of one write carries the same number.
	SeqHeader = "Abacus-Seq"
	// AckHeader is the lowest number whose outcome the client has not seen.
	AckHeader = "Abacus-Ack"
	// IdempotencyKeyHeader carries a write's idempotency key instead of a
	// session.
	IdempotencyKeyHeader = "Idempotency-Key"
)

// ID is a lease or instance id. It is a uint64 written in JSON as a decimal
// string ("18446744073709551615"), which every JSON reader keeps exactly;
// a bare JSON number is accepted on input too.
type ID uint64

// String returns the id in decimal.
func (id ID) String() string { return strconv.FormatUint(uint64(id), 10) }

// MarshalJSON writes the id as a decimal string.
func (id ID) MarshalJSON() ([]byte, error) {
	return []byte(`"` + id.String() + `"`), nil
}

// UnmarshalJSON reads a decimal string or a non-negative integer.
func (id *ID) UnmarshalJSON(b []byte) error {
	s := string(bytes.TrimSpace(b))
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	v, err := ParseID(s)
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseID parses a decimal id as it appears in paths and JSON.
func ParseID(s string) (ID, error) {
	if len(s) == 0 || len(s) > 20 {
		return 0, fmt.Errorf("id %q is not a decimal uint64", s)
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("id %q is not a decimal uint64", s)
	}
	return ID(v), nil
}

// Fence guards a write with a lock's fencing token.
type Fence struct {
	Lock  string `json:"lock"`
	Token uint64 `json:"token"`
}

// AddRequest is the body of POST /v1/counters/{name}/add. Only Delta is
// required. ExpiryMS starts an expiry window on the counter's first add:
// when it ends, the counter resets.
type AddRequest struct {
	Delta    *int64 `json:"delta"`
	Min      *int64 `json:"min,omitempty"`
	Max      *int64 `json:"max,omitempty"`
	Fence    *Fence `json:"fence,omitempty"`
	Instance ID     `json:"instance,omitempty"`
	ExpiryMS int64  `json:"expiry_ms,omitempty"`
}

// AddResponse is the reply to an add.
type AddResponse struct {
	Value         int64  `json:"value"`
	InstanceValue *int64 `json:"instance_value,omitempty"`
}

// GetResponse is the reply to GET /v1/counters/{name}.
type GetResponse struct {
	Value         int64  `json:"value"`
	Exists        bool   `json:"exists"`
	InstanceValue *int64 `json:"instance_value,omitempty"`
}

// SetRequest is the body of PUT /v1/counters/{name}.
type SetRequest struct {
	Value    *int64 `json:"value"`
	Fence    *Fence `json:"fence,omitempty"`
	Instance ID     `json:"instance,omitempty"`
}

// SetResponse is the reply to a set.
type SetResponse struct {
	Previous int64 `json:"previous"`
	Value    int64 `json:"value"`
}

// CASRequest is the body of POST /v1/counters/{name}/cas.
type CASRequest struct {
	Old   *int64 `json:"old"`
	New   *int64 `json:"new"`
	Fence *Fence `json:"fence,omitempty"`
}

// CASResponse is the reply to a compare-and-set: on a mismatch Swapped is
// false and Value is the current value.
type CASResponse struct {
	Swapped bool  `json:"swapped"`
	Value   int64 `json:"value"`
}

// DeleteRequest is the optional body of DELETE /v1/counters/{name}.
type DeleteRequest struct {
	Fence    *Fence `json:"fence,omitempty"`
	Instance ID     `json:"instance,omitempty"`
}

// DeleteResponse is the reply to a delete.
type DeleteResponse struct {
	Previous int64 `json:"previous"`
}

// BatchOp is one operation of a batch: Op is "add", "set", "cas", "get"
// or "delete", with the fields of the single request of that kind ("set"
// takes Value, "cas" takes Old and New).
type BatchOp struct {
	Op       string `json:"op"`
	Name     string `json:"name"`
	Delta    *int64 `json:"delta,omitempty"`
	Value    *int64 `json:"value,omitempty"`
	Old      *int64 `json:"old,omitempty"`
	New      *int64 `json:"new,omitempty"`
	Min      *int64 `json:"min,omitempty"`
	Max      *int64 `json:"max,omitempty"`
	Fence    *Fence `json:"fence,omitempty"`
	Instance ID     `json:"instance,omitempty"`
}

// BatchRequest is the body of POST /v1/batch.
type BatchRequest struct {
	Ops []BatchOp `json:"ops"`
}

// BatchResult is one operation's result: the fields of the single reply of
// its kind (add: value; set: previous, value; cas: swapped, value; get:
// value, exists; delete: previous), plus instance_value with an instance.
type BatchResult struct {
	Value         *int64 `json:"value,omitempty"`
	Previous      *int64 `json:"previous,omitempty"`
	Swapped       *bool  `json:"swapped,omitempty"`
	Exists        *bool  `json:"exists,omitempty"`
	InstanceValue *int64 `json:"instance_value,omitempty"`
}

// BatchResponse is the reply to a batch, one result per operation.
type BatchResponse struct {
	Results []BatchResult `json:"results"`
}

// WatchEvent is one event of a watch stream: the counter's value and the
// log revision of its last change. Exists is false
// once the counter is deleted or expired.
type WatchEvent struct {
	Value    int64  `json:"value"`
	Revision uint64 `json:"revision"`
	Exists   bool   `json:"exists"`
}

// AcquireRequest is the body of POST /v1/locks/{name}/acquire.
type AcquireRequest struct {
	Holder string `json:"holder"`
	TTLMS  int64  `json:"ttl_ms"`
	WaitMS int64  `json:"wait_ms"`
}

// AcquireResponse is the reply to a successful acquire.
type AcquireResponse struct {
	Token uint64 `json:"token"`
	TTLMS int64  `json:"ttl_ms"`
}

// TokenRequest is the body of a lock keep-alive or release.
type TokenRequest struct {
	Token uint64 `json:"token"`
}

// TTLResponse is the reply to a keep-alive.
type TTLResponse struct {
	TTLMS int64 `json:"ttl_ms"`
}

// LockResponse is the reply to GET /v1/locks/{name}.
type LockResponse struct {
	Held           bool   `json:"held"`
	Holder         string `json:"holder"`
	Token          uint64 `json:"token"`
	TTLMSRemaining int64  `json:"ttl_ms_remaining"`
}

// InstanceRequest is the body of POST /v1/instances.
type InstanceRequest struct {
	TTLMS int64 `json:"ttl_ms"`
}

// InstanceResponse is the reply to an instance registration.
type InstanceResponse struct {
	Instance ID    `json:"instance"`
	TTLMS    int64 `json:"ttl_ms"`
}

// SessionResponse is the reply to POST /v1/sessions: a client session for
// the Abacus-Session header.
type SessionResponse struct {
	Session ID `json:"session"`
}

// Empty is the reply of calls that return nothing: {}.
type Empty struct{}

// MemberInfo is one member in a cluster status.
type MemberInfo struct {
	ID       string `json:"id"`
	PeerAddr string `json:"peer_addr"`
	HTTPAddr string `json:"http_addr"`
	Voter    bool   `json:"voter"`
}

// ClusterStatus is the reply to GET /v1/cluster (docs/API.md).
type ClusterStatus struct {
	Node         string       `json:"node"`
	Backend      string       `json:"backend"`
	State        string       `json:"state"`
	Leader       string       `json:"leader"`
	Term         uint64       `json:"term"`
	AppliedIndex uint64       `json:"applied_index"`
	CommitIndex  uint64       `json:"commit_index"`
	Members      []MemberInfo `json:"members"`
}

// StateResponse is the reply to GET /v1/cluster/state: a hash of this node's state machine and the log position it
// has applied. Nodes that applied the same position have equal hashes.
type StateResponse struct {
	AppliedIndex uint64 `json:"applied_index"`
	Hash         string `json:"hash"`
}

// JoinRequest is the body of POST /v1/cluster/members. Voter defaults to
// true.
type JoinRequest struct {
	ID       string `json:"id"`
	PeerAddr string `json:"peer_addr"`
	HTTPAddr string `json:"http_addr"`
	Voter    *bool  `json:"voter,omitempty"`
}

// TransferRequest is the optional body of POST
// /v1/cluster/leadership-transfer: the voter to hand leadership to, or any
// when ID is empty.
type TransferRequest struct {
	ID string `json:"id,omitempty"`
}

// FaultsRequest is the body of POST /v1/admin/faults (nodes started with
// fault injection only). Every field present is applied, in the order heal,
// partition, isolate, delay, loss, clock offset.
type FaultsRequest struct {
	Heal          bool     `json:"heal,omitempty"`
	Partition     []string `json:"partition,omitempty"`
	Isolate       bool     `json:"isolate,omitempty"`
	DelayMS       *int64   `json:"delay_ms,omitempty"`
	Loss          *float64 `json:"loss,omitempty"`
	ClockOffsetMS *int64   `json:"clock_offset_ms,omitempty"`
}

// ErrorBody is the body of every error reply.
type ErrorBody struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail describes an error: a code from docs/API.md's table (the names
// of package errcode's table, plus internal and method_not_allowed) and a
// message. Holder is set for lock_held; Index names the failing operation
// of a batch.
type ErrorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Holder  string `json:"holder,omitempty"`
	Index   *int   `json:"index,omitempty"`
}
