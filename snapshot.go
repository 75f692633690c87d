package abacus

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
)

// Snapshot format, version 2:
//
//	magic "ABCSNAP\x00" | version byte | chunks... | zero-length chunk | CRC-32C
//
// Each chunk is a 4-byte big-endian length and that many bytes; together the
// chunks carry a msgpack stream: meta, counters (by name), sessions (by
// activity), leases (by id), locks (by name), idempotency keys (by expiry).
// Version 1 had no keys section and no issued-session mark; it is still
// read. The CRC covers every byte before it. Framing in chunks lets the
// writer stream without holding the encoded state in memory; a restore
// reads the encoded body (at most maxSnapshotBody bytes) and verifies the
// checksum before it decodes anything. Derived state (which counters and locks each lease
// touches, the timer heap) is rebuilt on restore, not stored, so it can
// never disagree with what it is derived from.
const (
	snapshotMagic   = "ABCSNAP\x00"
	snapshotVersion = 2
	chunkSize       = 64 << 10
	maxChunk        = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot is a point-in-time copy of an FSM's state. Taking one is quick
// and happens on the applying goroutine; encoding it (WriteTo) may run
// concurrently with further applies.
type Snapshot struct {
	index, ops           uint64
	now                  int64
	nextLease, nextToken uint64
	sessionsIssued       uint64
	counters             []counterRecord
	sessions             []sessionRecord
	leases               []lease
	locks                []lockRecord
	keys                 []keyRecord
}

type counterRecord struct {
	name string
	counter
}

type sessionRecord struct {
	id, ack  uint64
	lastSeen int64
	seqs     []uint64
	results  []Result
}

type lockRecord struct {
	name string
	lock
}

// Snapshot captures the current state.
func (f *FSM) Snapshot() *Snapshot {
	f.mu.RLock()
	s := &Snapshot{
		index: f.index, ops: f.ops, now: f.now,
		nextLease: f.nextLease, nextToken: f.nextToken, sessionsIssued: f.sessions.issued,
		counters: make([]counterRecord, 0, len(f.counters)),
		keys:     make([]keyRecord, 0, f.keys.len()),
	}
	for name, k := range f.counters {
		rec := counterRecord{name: name, counter: *k}
		if k.slices != nil {
			rec.slices = make(map[uint64]int64, len(k.slices))
			for id, v := range k.slices {
				rec.slices[id] = v
			}
		}
		s.counters = append(s.counters, rec)
	}
	f.sessions.each(func(ss *session) {
		rec := sessionRecord{id: ss.id, ack: ss.ack, lastSeen: ss.lastSeen, seqs: make([]uint64, 0, len(ss.results))}
		for seq := range ss.results {
			rec.seqs = append(rec.seqs, seq)
		}
		slices.Sort(rec.seqs)
		rec.results = make([]Result, len(rec.seqs))
		for i, seq := range rec.seqs {
			rec.results[i] = ss.results[seq]
		}
		s.sessions = append(s.sessions, rec)
	})
	for _, l := range f.leases {
		s.leases = append(s.leases, lease{id: l.id, ttl: l.ttl, deadline: l.deadline})
	}
	slices.SortFunc(s.leases, func(a, b lease) int { return compareUints(a.id, b.id) })
	for _, name := range sortedKeys(f.locks) {
		lk := *f.locks[name]
		lk.waiters = slices.Clone(lk.waiters)
		s.locks = append(s.locks, lockRecord{name: name, lock: lk})
	}
	f.keys.each(func(r *keyRecord) { s.keys = append(s.keys, *r) })
	f.mu.RUnlock()
	// The records are copies: sorting them (most of the cost, with many
	// counters) needs no lock, so applies continue meanwhile.
	slices.SortFunc(s.counters, func(a, b counterRecord) int { return compareStrings(a.name, b.name) })
	return s
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func compareUints(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Index returns the log position the snapshot was taken at.
func (s *Snapshot) Index() uint64 { return s.index }

// WriteTo encodes the snapshot to w.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	cw := &chunkWriter{w: w, crc: crc32.New(castagnoli), buf: make([]byte, 0, chunkSize)}
	if err := cw.raw(append([]byte(snapshotMagic), snapshotVersion)); err != nil {
		return cw.n, err
	}
	enc := msgpack.NewEncoder(cw)
	if err := s.encode(enc); err != nil {
		return cw.n, err
	}
	return cw.n, cw.finish()
}

func (s *Snapshot) encode(enc *msgpack.Encoder) error {
	e := encoder{Encoder: enc}
	e.arrayLen(6)
	e.uint(s.index)
	e.int(s.now)
	e.uint(s.ops)
	e.uint(s.nextLease)
	e.uint(s.nextToken)
	e.uint(s.sessionsIssued)

	e.arrayLen(len(s.counters))
	for i := range s.counters {
		c := &s.counters[i]
		e.arrayLen(7)
		e.str(c.name)
		e.int(c.value)
		e.uint(c.rev)
		e.uint(c.ops)
		e.int(c.modified)
		e.int(c.expires)
		ids := make([]uint64, 0, len(c.slices))
		for id := range c.slices {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		e.arrayLen(2 * len(ids))
		for _, id := range ids {
			e.uint(id)
			e.int(c.slices[id])
		}
		if e.err != nil {
			return e.err
		}
	}

	e.arrayLen(len(s.sessions))
	for i := range s.sessions {
		ss := &s.sessions[i]
		e.arrayLen(4)
		e.uint(ss.id)
		e.uint(ss.ack)
		e.int(ss.lastSeen)
		e.arrayLen(len(ss.seqs))
		for j, seq := range ss.seqs {
			e.arrayLen(2)
			e.uint(seq)
			if e.err == nil {
				e.err = encodeResult(enc, &ss.results[j])
			}
		}
	}

	e.arrayLen(len(s.leases))
	for _, l := range s.leases {
		e.arrayLen(3)
		e.uint(l.id)
		e.int(l.ttl)
		e.int(l.deadline)
	}

	e.arrayLen(len(s.locks))
	for _, lk := range s.locks {
		e.arrayLen(7)
		e.str(lk.name)
		e.str(lk.holder)
		e.uint(lk.lease)
		e.uint(lk.token)
		e.int(lk.delay)
		e.int(lk.delayUntil)
		e.arrayLen(len(lk.waiters))
		for _, w := range lk.waiters {
			e.arrayLen(3)
			e.str(w.holder)
			e.uint(w.lease)
			e.int(w.delay)
		}
	}

	e.arrayLen(len(s.keys))
	for i := range s.keys {
		r := &s.keys[i]
		e.arrayLen(3)
		if e.err == nil {
			e.err = enc.EncodeBytes(r.id[:])
		}
		e.int(r.expires)
		if e.err == nil {
			e.err = encodeResult(enc, &r.result)
		}
	}
	return e.err
}

// Restore replaces the FSM's state with the snapshot read from r. It reads
// the whole encoded body and verifies its checksum before decoding any of
// it, then decodes into a fresh state: a corrupt or truncated snapshot
// returns an error wrapping ErrCorrupt and leaves the current state as it
// was. The observer is told of every change the restore made (see
// notifyRestored).
func (f *FSM) Restore(r io.Reader) error {
	return f.restore(r, nil)
}

// restore is Restore; check, when not nil, vets the decoded state before
// it replaces the current one.
func (f *FSM) restore(r io.Reader, check func(fresh *FSM) error) error {
	fresh := NewFSM(f.opts, nil)
	if err := fresh.decodeSnapshot(r); err != nil {
		return err
	}
	if check != nil {
		if err := check(fresh); err != nil {
			return err
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// The replaced maps, taken now; told before the lock is released.
	defer f.notifyRestored(f.counters, f.locks, f.leases)
	f.index, f.now, f.ops = fresh.index, fresh.now, fresh.ops
	f.counters, f.sessions, f.keys, f.leases, f.locks = fresh.counters, fresh.sessions, fresh.keys, fresh.leases, fresh.locks
	f.timers, f.nextLease, f.nextToken = fresh.timers, fresh.nextLease, fresh.nextToken
	return nil
}

// maxSnapshotBody bounds the encoded body a restore holds in memory while
// it verifies the checksum, before decoding any of it.
const maxSnapshotBody = 1 << 32

func (f *FSM) decodeSnapshot(r io.Reader) error {
	body, version, err := readSnapshotBody(r)
	if err != nil {
		return err
	}
	br := bytes.NewReader(body)
	if err := f.decodeBody(msgpack.NewDecoder(br), version); err != nil {
		return corrupt(err)
	}
	if br.Len() != 0 {
		return fmt.Errorf("%w: %d bytes after the snapshot body", ErrCorrupt, br.Len())
	}
	return nil
}

// readSnapshotBody reads a framed snapshot from r, at most maxSnapshotBody
// bytes of body, and returns the body once its checksum is verified: no
// byte a peer or a damaged disk sent reaches the decoder unchecked.
func readSnapshotBody(r io.Reader) (body []byte, version byte, err error) {
	crc := crc32.New(castagnoli)
	header := make([]byte, len(snapshotMagic)+1)
	if _, err := io.ReadFull(io.TeeReader(r, crc), header); err != nil {
		return nil, 0, fmt.Errorf("%w: snapshot header: %v", ErrCorrupt, err)
	}
	if string(header[:len(snapshotMagic)]) != snapshotMagic {
		return nil, 0, fmt.Errorf("%w: not an abacus snapshot", ErrCorrupt)
	}
	version = header[len(snapshotMagic)]
	if version != 1 && version != snapshotVersion {
		return nil, 0, fmt.Errorf("%w: unknown snapshot version %d", ErrCorrupt, version)
	}
	var buf bytes.Buffer
	if l, ok := r.(interface{ Len() int }); ok {
		// An in-memory snapshot says how large it is: no regrowth.
		buf.Grow(min(l.Len(), maxSnapshotBody))
	}
	cr := &chunkReader{r: r, crc: crc}
	n, err := buf.ReadFrom(io.LimitReader(cr, maxSnapshotBody+1))
	switch {
	case err != nil:
		return nil, 0, corrupt(err)
	case n > maxSnapshotBody:
		return nil, 0, fmt.Errorf("%w: snapshot body over %d bytes", ErrCorrupt, int64(maxSnapshotBody))
	case cr.err != io.EOF:
		return nil, 0, fmt.Errorf("%w: truncated snapshot", ErrCorrupt)
	}
	want := crc.Sum32()
	var trailer [4]byte
	if _, err := io.ReadFull(r, trailer[:]); err != nil {
		return nil, 0, fmt.Errorf("%w: snapshot checksum: %v", ErrCorrupt, err)
	}
	if got := binary.BigEndian.Uint32(trailer[:]); got != want {
		return nil, 0, fmt.Errorf("%w: snapshot checksum %08x, computed %08x", ErrCorrupt, got, want)
	}
	return buf.Bytes(), version, nil
}

// preallocate bounds what a declared count may reserve before the data
// behind it has been read.
func preallocate(n int) int { return max(0, min(n, 1<<16)) }

func (f *FSM) decodeBody(dec *msgpack.Decoder, version byte) error {
	d := decoder{Decoder: dec}
	metaFields := 5
	if version >= 2 {
		metaFields = 6
	}
	meta := d.fields(metaFields)
	f.index = d.uint()
	f.now = d.int()
	f.ops = d.uint()
	f.nextLease = d.uint()
	f.nextToken = d.uint()
	if version >= 2 {
		f.sessions.issued = d.uint()
	}
	d.skip(meta - metaFields)
	if d.err != nil {
		return d.err
	}

	n := d.count()
	// Collect the counters first and build the map at its final size: the
	// declared count cannot be trusted to size it, and growing a map to
	// millions of entries spends most of a restore rehashing.
	type namedCounter struct {
		name string
		k    *counter
	}
	recs := make([]namedCounter, 0, preallocate(n))
	prev := ""
	for i := 0; i < n && d.err == nil; i++ {
		d.fields(7)
		name := d.str(MaxNameLen)
		k := &counter{value: d.int(), rev: d.uint(), ops: d.uint(), modified: d.int(), expires: d.int()}
		pairs := d.count()
		if d.err == nil && (pairs%2 != 0 || (i > 0 && name <= prev) || name == "") {
			return errors.New("counter records out of order or malformed")
		}
		prev = name
		var lastID uint64
		for j := 0; j < pairs/2 && d.err == nil; j++ {
			id, v := d.uint(), d.int()
			if d.err == nil && (id <= lastID || v == 0) {
				return fmt.Errorf("counter %q: malformed instance slices", name)
			}
			lastID = id
			if k.slices == nil {
				k.slices = make(map[uint64]int64, 1)
			}
			k.slices[id] = v
		}
		recs = append(recs, namedCounter{name, k})
	}
	f.counters = make(map[string]*counter, len(recs))
	for _, r := range recs {
		f.counters[r.name] = r.k
	}

	n = d.count()
	for i := 0; i < n && d.err == nil; i++ {
		d.fields(4)
		s := &session{id: d.uint(), ack: d.uint(), lastSeen: d.int(), results: make(map[uint64]Result)}
		m := d.count()
		for j := 0; j < m && d.err == nil; j++ {
			d.fields(2)
			seq := d.uint()
			var r Result
			if d.err == nil {
				d.err = decodeResult(dec, &r, true)
			}
			if _, dup := s.results[seq]; d.err == nil && (dup || seq < s.ack) {
				return fmt.Errorf("session %d: malformed results", s.id)
			}
			s.results[seq] = r
		}
		if _, dup := f.sessions.byID[s.id]; d.err == nil && (dup || s.id == 0 || (version >= 2 && s.id > f.sessions.issued)) {
			return fmt.Errorf("duplicate or unissued session %d", s.id)
		}
		f.sessions.byID[s.id] = s
		f.sessions.pushBack(s)
		f.sessions.results += len(s.results)
	}

	n = d.count()
	var lastLease uint64
	for i := 0; i < n && d.err == nil; i++ {
		d.fields(3)
		l := &lease{id: d.uint(), ttl: d.int(), deadline: d.int()}
		if d.err == nil && (l.id <= lastLease || l.id > f.nextLease || l.ttl <= 0) {
			return errors.New("lease records out of order or malformed")
		}
		lastLease = l.id
		f.leases[l.id] = l
	}

	n = d.count()
	prev = ""
	for i := 0; i < n && d.err == nil; i++ {
		d.fields(7)
		name := d.str(MaxNameLen)
		lk := &lock{holder: d.str(MaxHolderLen), lease: d.uint(), token: d.uint(), delay: d.int(), delayUntil: d.int()}
		if d.err == nil && ((i > 0 && name <= prev) || name == "" || lk.token > f.nextToken) {
			return errors.New("lock records out of order or malformed")
		}
		prev = name
		if lk.token != 0 {
			if f.leases[lk.lease] == nil {
				return fmt.Errorf("lock %q held under unknown lease %d", name, lk.lease)
			}
			f.attach(f.leases[lk.lease], name)
		}
		m := d.count()
		if m > maxWaiters {
			return fmt.Errorf("lock %q: %d waiters", name, m)
		}
		for j := 0; j < m && d.err == nil; j++ {
			d.fields(3)
			w := waiter{holder: d.str(MaxHolderLen), lease: d.uint(), delay: d.int()}
			if d.err == nil && f.leases[w.lease] == nil {
				return fmt.Errorf("lock %q: waiter under unknown lease %d", name, w.lease)
			}
			f.attach(f.leases[w.lease], name)
			lk.waiters = append(lk.waiters, w)
		}
		f.locks[name] = lk
	}

	if version >= 2 {
		n = d.count()
		var lastExpiry int64
		for i := 0; i < n && d.err == nil; i++ {
			d.fields(3)
			r := &keyRecord{}
			d.key(&r.id)
			r.expires = d.int()
			if d.err == nil {
				d.err = decodeResult(dec, &r.result, true)
			}
			if _, dup := f.keys.byID[r.id]; d.err == nil && (dup || r.id.IsZero() || r.expires < lastExpiry) {
				return errors.New("idempotency key records out of order or malformed")
			}
			lastExpiry = r.expires
			f.keys.push(r)
		}
	}
	if d.err != nil {
		return d.err
	}

	// Rebuild what is derived from the records above.
	for name, k := range f.counters {
		for id := range k.slices {
			l := f.leases[id]
			if l == nil {
				return fmt.Errorf("counter %q: slice of unknown lease %d", name, id)
			}
			if l.counters == nil {
				l.counters = make(map[string]struct{}, 1)
			}
			l.counters[name] = struct{}{}
		}
	}
	f.rebuildTimers()
	return nil
}

func (d *decoder) count() int {
	if d.err != nil {
		return 0
	}
	n, err := d.DecodeArrayLen()
	if err == nil && n < 0 {
		err = errors.New("nil array")
	}
	d.err = err
	return n
}

// Hash returns a hex SHA-256 of the state's snapshot encoding: equal states
// have equal hashes, on any replica.
func (f *FSM) Hash() (string, error) { return f.Snapshot().Hash() }

// Hash returns the SHA-256 of the snapshot's encoding, in hex. Replicas
// that applied the same entries have equal hashes: the encoding is
// deterministic. Snapshot.Index tells which entries.
func (s *Snapshot) Hash() (string, error) {
	h := sha256.New()
	if _, err := s.WriteTo(h); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// chunkWriter frames a stream into length-prefixed chunks and keeps a CRC
// of every byte it writes.
type chunkWriter struct {
	w   io.Writer
	crc hash.Hash32
	buf []byte
	n   int64
}

func (c *chunkWriter) raw(b []byte) error {
	c.crc.Write(b)
	n, err := c.w.Write(b)
	c.n += int64(n)
	return err
}

func (c *chunkWriter) Write(p []byte) (int, error) {
	total := len(p)
	for len(p) > 0 {
		k := copy(c.buf[len(c.buf):cap(c.buf)], p)
		c.buf = c.buf[:len(c.buf)+k]
		p = p[k:]
		if len(c.buf) == cap(c.buf) {
			if err := c.flush(); err != nil {
				return total - len(p), err
			}
		}
	}
	return total, nil
}

// WriteByte implements io.ByteWriter. msgpack writes most values a byte at
// a time, and without it wraps the writer in an adapter that allocates for
// every byte.
func (c *chunkWriter) WriteByte(b byte) error {
	c.buf = append(c.buf, b)
	if len(c.buf) == cap(c.buf) {
		return c.flush()
	}
	return nil
}

func (c *chunkWriter) flush() error {
	if len(c.buf) == 0 {
		return nil
	}
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(c.buf)))
	if err := c.raw(hdr[:]); err != nil {
		return err
	}
	err := c.raw(c.buf)
	c.buf = c.buf[:0]
	return err
}

func (c *chunkWriter) finish() error {
	if err := c.flush(); err != nil {
		return err
	}
	if err := c.raw([]byte{0, 0, 0, 0}); err != nil {
		return err
	}
	var sum [4]byte
	binary.BigEndian.PutUint32(sum[:], c.crc.Sum32())
	n, err := c.w.Write(sum[:])
	c.n += int64(n)
	return err
}

// chunkReader reads the stream a chunkWriter framed, stopping with io.EOF
// at the terminating empty chunk, and feeds every byte to the CRC.
type chunkReader struct {
	r      io.Reader
	crc    hash.Hash32
	remain int
	err    error
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for c.remain == 0 {
		if c.err != nil {
			return 0, c.err
		}
		var hdr [4]byte
		if _, err := io.ReadFull(c.r, hdr[:]); err != nil {
			c.err = fmt.Errorf("%w: truncated snapshot", ErrCorrupt)
			return 0, c.err
		}
		c.crc.Write(hdr[:])
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 {
			c.err = io.EOF
			return 0, io.EOF
		}
		if n > maxChunk {
			c.err = fmt.Errorf("%w: snapshot chunk of %d bytes", ErrCorrupt, n)
			return 0, c.err
		}
		c.remain = int(n)
	}
	if len(p) > c.remain {
		p = p[:c.remain]
	}
	n, err := c.r.Read(p)
	c.crc.Write(p[:n])
	c.remain -= n
	if err == io.EOF && c.remain > 0 {
		err = fmt.Errorf("%w: truncated snapshot", ErrCorrupt)
	}
	if err == io.EOF {
		err = nil
	}
	if err != nil {
		c.err = err
	}
	return n, err
}
