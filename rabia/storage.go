package rabia

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/abacuskit/abacus"
	"github.com/abacuskit/abacus/rabia/internal/wmvc"
)

// On-disk layout, all in <Config.Dir>/rabia:
//
//	log       decided slots: records appended in decision order, each
//	          [u32 body length][u32 CRC-32C of body][body], body =
//	          [u64 slot][u8 kind: 0 null, 1 value][u16 id length][id][payload].
//	          A torn or corrupt tail (a crash mid-append) is cut off on open.
//	meta      the highest slot this replica has proposed in: [u64][u32 CRC].
//	snapshot  the state machine after applying every slot below its index:
//	          [u64 slots covered][FSM snapshot bytes] (the FSM snapshot
//	          checksums itself). Written to a temporary file, synced and
//	          renamed into place.

const (
	recordHeader = 8
	recordFixed  = 8 + 1 + 2 // slot, kind, id length
	// maxRecord bounds one record's body when reading the log back.
	maxRecord = recordFixed + wmvc.MaxIDLen + wmvc.DefaultMaxPayload
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// decided is one slot's decision: v nil is the null decision.
type decided struct {
	slot uint64
	v    *wmvc.Value
}

func (d decided) size() int {
	n := recordHeader + recordFixed
	if d.v != nil {
		n += len(d.v.ID) + len(d.v.Payload)
	}
	return n
}

func appendRecord(b []byte, d decided) []byte {
	start := len(b)
	b = append(b, make([]byte, recordHeader)...)
	b = binary.BigEndian.AppendUint64(b, d.slot)
	if d.v == nil {
		b = append(b, 0)
		b = binary.BigEndian.AppendUint16(b, 0)
	} else {
		b = append(b, 1)
		b = binary.BigEndian.AppendUint16(b, uint16(len(d.v.ID)))
		b = append(b, d.v.ID...)
		b = append(b, d.v.Payload...)
	}
	body := b[start+recordHeader:]
	binary.BigEndian.PutUint32(b[start:], uint32(len(body)))
	binary.BigEndian.PutUint32(b[start+4:], crc32.Checksum(body, castagnoli))
	return b
}

// parseBody decodes a record body whose checksum has been verified.
func parseBody(body []byte) (decided, error) {
	if len(body) < recordFixed {
		return decided{}, fmt.Errorf("%w: short log record", abacus.ErrCorrupt)
	}
	d := decided{slot: binary.BigEndian.Uint64(body)}
	kind := body[8]
	idLen := int(binary.BigEndian.Uint16(body[9:]))
	rest := body[recordFixed:]
	switch {
	case kind == 0 && idLen == 0 && len(rest) == 0:
		return d, nil
	case kind == 1 && idLen <= wmvc.MaxIDLen && idLen <= len(rest):
		d.v = &wmvc.Value{ID: slices.Clone(rest[:idLen]), Payload: slices.Clone(rest[idLen:])}
		return d, nil
	}
	return decided{}, fmt.Errorf("%w: malformed log record", abacus.ErrCorrupt)
}

// readRecord reads one record; io.EOF at a clean end, another error for a
// torn or corrupt record.
func readRecord(r *bufio.Reader) (decided, int, error) {
	var h [recordHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		if err == io.EOF {
			return decided{}, 0, io.EOF
		}
		return decided{}, 0, fmt.Errorf("%w: torn record header", abacus.ErrCorrupt)
	}
	n := int(binary.BigEndian.Uint32(h[:]))
	if n < recordFixed || n > maxRecord {
		return decided{}, 0, fmt.Errorf("%w: record length %d", abacus.ErrCorrupt, n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return decided{}, 0, fmt.Errorf("%w: torn record", abacus.ErrCorrupt)
	}
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(h[4:]) {
		return decided{}, 0, fmt.Errorf("%w: record checksum", abacus.ErrCorrupt)
	}
	d, err := parseBody(body)
	return d, recordHeader + n, err
}

// storage is a replica's durable state: the log of decided slots, the
// proposal high-water mark and the latest snapshot. Append, Compact and
// SaveSnapshot are called by one goroutine at a time (the applier);
// Get, Range and the snapshot readers may run concurrently with them.
type storage struct {
	dir    string
	noSync bool

	mu    sync.RWMutex
	f     *os.File
	size  int64
	index map[uint64]recordLoc // slot -> record position in f

	meta *os.File
}

type recordLoc struct {
	off int64
	n   int32
}

// openStorage opens (creating) the storage in dir and returns the decided
// slots found in the log, in file order.
func openStorage(dir string, noSync bool) (*storage, []decided, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	s := &storage{dir: dir, noSync: noSync, index: map[uint64]recordLoc{}}
	f, err := os.OpenFile(filepath.Join(dir, "log"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, err
	}
	s.f = f
	var recs []decided
	br := bufio.NewReaderSize(f, 1<<20)
	var off int64
	for {
		d, n, err := readRecord(br)
		if err == io.EOF {
			break
		}
		if err != nil {
			// A crash mid-append leaves a torn tail; nothing after it was
			// acknowledged (acknowledgement follows the sync).
			if terr := f.Truncate(off); terr != nil {
				f.Close()
				return nil, nil, fmt.Errorf("truncating torn log tail: %w", terr)
			}
			break
		}
		s.index[d.slot] = recordLoc{off: off, n: int32(n)}
		recs = append(recs, d)
		off += int64(n)
	}
	s.size = off
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, nil, err
	}
	s.meta, err = os.OpenFile(filepath.Join(dir, "meta"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return s, recs, nil
}

// Close closes the files.
func (s *storage) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return errors.Join(s.f.Close(), s.meta.Close())
}

func (s *storage) sync(f *os.File) error {
	if s.noSync {
		return nil
	}
	return f.Sync()
}

// Append writes decisions to the log and syncs it. Slots already in the
// log are skipped.
func (s *storage) Append(ds []decided) error {
	var buf []byte
	type pos struct {
		slot uint64
		loc  recordLoc
	}
	var locs []pos
	s.mu.RLock()
	off := s.size
	for _, d := range ds {
		if _, ok := s.index[d.slot]; ok {
			continue
		}
		start := len(buf)
		buf = appendRecord(buf, d)
		locs = append(locs, pos{d.slot, recordLoc{off: off + int64(start), n: int32(len(buf) - start)}})
	}
	f := s.f
	s.mu.RUnlock()
	if len(buf) == 0 {
		return nil
	}
	if _, err := f.WriteAt(buf, off); err != nil {
		return fmt.Errorf("rabia: log append: %w", err)
	}
	if err := s.sync(f); err != nil {
		return fmt.Errorf("rabia: log sync: %w", err)
	}
	s.mu.Lock()
	s.size = off + int64(len(buf))
	for _, p := range locs {
		s.index[p.slot] = p.loc
	}
	s.mu.Unlock()
	return nil
}

// Get returns slot's decision from the log.
func (s *storage) Get(slot uint64) (decided, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.getLocked(slot)
}

func (s *storage) getLocked(slot uint64) (decided, bool) {
	loc, ok := s.index[slot]
	if !ok {
		return decided{}, false
	}
	buf := make([]byte, loc.n)
	if _, err := s.f.ReadAt(buf, loc.off); err != nil {
		return decided{}, false
	}
	if crc32.Checksum(buf[recordHeader:], castagnoli) != binary.BigEndian.Uint32(buf[4:]) {
		return decided{}, false
	}
	d, err := parseBody(buf[recordHeader:])
	if err != nil {
		return decided{}, false
	}
	return d, true
}

// Range returns the decisions of consecutive slots from `from`, stopping at
// the first slot the log lacks, once maxBytes of records are gathered, or
// at maxRecords records.
func (s *storage) Range(from uint64, maxBytes, maxRecords int) []decided {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var out []decided
	size := 0
	for slot := from; size < maxBytes && len(out) < maxRecords; slot++ {
		d, ok := s.getLocked(slot)
		if !ok {
			break
		}
		out = append(out, d)
		size += d.size()
	}
	return out
}

// Has reports whether slot is in the log.
func (s *storage) Has(slot uint64) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.index[slot]
	return ok
}

// Compact rewrites the log without the records of slots below keepFrom.
func (s *storage) Compact(keepFrom uint64) error {
	s.mu.RLock()
	var keep []uint64
	for slot := range s.index {
		if slot >= keepFrom {
			keep = append(keep, slot)
		}
	}
	s.mu.RUnlock()
	slices.Sort(keep)
	tmp := filepath.Join(s.dir, "log.tmp")
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	index := make(map[uint64]recordLoc, len(keep))
	w := bufio.NewWriterSize(nf, 1<<20)
	var off int64
	s.mu.RLock()
	for _, slot := range keep {
		loc := s.index[slot]
		buf := make([]byte, loc.n)
		if _, err := s.f.ReadAt(buf, loc.off); err != nil {
			s.mu.RUnlock()
			nf.Close()
			return err
		}
		if _, err := w.Write(buf); err != nil {
			s.mu.RUnlock()
			nf.Close()
			return err
		}
		index[slot] = recordLoc{off: off, n: loc.n}
		off += int64(loc.n)
	}
	s.mu.RUnlock()
	if err := errors.Join(w.Flush(), s.sync(nf)); err != nil {
		nf.Close()
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Rename(tmp, filepath.Join(s.dir, "log")); err != nil {
		nf.Close()
		return err
	}
	if err := s.syncDir(); err != nil {
		nf.Close()
		return err
	}
	s.f.Close()
	s.f, s.index, s.size = nf, index, off
	return nil
}

func (s *storage) syncDir() error {
	if s.noSync {
		return nil
	}
	d, err := os.Open(s.dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SaveMark durably records that this replica may have proposed in every
// slot up to and including hwm.
func (s *storage) SaveMark(hwm uint64) error {
	var b [12]byte
	binary.BigEndian.PutUint64(b[:], hwm)
	binary.BigEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	if _, err := s.meta.WriteAt(b[:], 0); err != nil {
		return fmt.Errorf("rabia: meta write: %w", err)
	}
	if err := s.sync(s.meta); err != nil {
		return fmt.Errorf("rabia: meta sync: %w", err)
	}
	return nil
}

// LoadMark returns the recorded high-water mark (ok false: none yet).
func (s *storage) LoadMark() (hwm uint64, ok bool, err error) {
	var b [12]byte
	n, err := s.meta.ReadAt(b[:], 0)
	if n == 0 && (err == io.EOF || err == nil) {
		return 0, false, nil
	}
	if n != len(b) {
		return 0, false, fmt.Errorf("%w: short meta file", abacus.ErrCorrupt)
	}
	if crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		return 0, false, fmt.Errorf("%w: meta checksum", abacus.ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b[:]), true, nil
}

func (s *storage) snapshotPath() string { return filepath.Join(s.dir, "snapshot") }

// SaveSnapshot writes a snapshot that covers every slot below `slots`.
func (s *storage) SaveSnapshot(slots uint64, snap *abacus.Snapshot) error {
	err := s.writeSnapshotFile(func(f io.Writer) error {
		w := bufio.NewWriterSize(f, 1<<20)
		var h [8]byte
		binary.BigEndian.PutUint64(h[:], slots)
		if _, err := w.Write(h[:]); err != nil {
			return err
		}
		if _, err := snap.WriteTo(w); err != nil {
			return err
		}
		return w.Flush()
	})
	if err != nil {
		return fmt.Errorf("rabia: snapshot: %w", err)
	}
	return nil
}

// SaveSnapshotBytes installs a snapshot file received from a peer (the
// same layout SaveSnapshot writes).
func (s *storage) SaveSnapshotBytes(data []byte) error {
	return s.writeSnapshotFile(func(f io.Writer) error {
		_, err := f.Write(data)
		return err
	})
}

// writeSnapshotFile replaces the snapshot file with what fill writes:
// into a temporary file, synced, then renamed over the old one, with the
// directory synced.
func (s *storage) writeSnapshotFile(fill func(io.Writer) error) error {
	tmp := s.snapshotPath() + ".tmp"
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	err = fill(f)
	if err == nil {
		err = s.sync(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := os.Rename(tmp, s.snapshotPath()); err != nil {
		return err
	}
	return s.syncDir()
}

// LoadSnapshot restores fsm from the snapshot file, if there is one, and
// returns how many slots it covers. A file whose state is not at the
// index its header names is corrupt (ErrCorrupt), and fsm is left alone.
func (s *storage) LoadSnapshot(fsm *abacus.FSM) (uint64, bool, error) {
	f, err := os.Open(s.snapshotPath())
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<20)
	var h [8]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		return 0, false, fmt.Errorf("%w: snapshot header", abacus.ErrCorrupt)
	}
	slots := binary.BigEndian.Uint64(h[:])
	if err := fsm.RestoreAt(br, slots); err != nil {
		return 0, false, err
	}
	return slots, true, nil
}

// SnapshotChunk reads up to max bytes of the snapshot file from off and
// returns them with the file's total size and the slots it covers.
func (s *storage) SnapshotChunk(off int64, max int) (slots uint64, total int64, data []byte, err error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	f, err := os.Open(s.snapshotPath())
	if err != nil {
		return 0, 0, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, 0, nil, err
	}
	var h [8]byte
	if _, err := f.ReadAt(h[:], 0); err != nil {
		return 0, 0, nil, err
	}
	total = st.Size()
	if off < 0 || off > total {
		return 0, 0, nil, fmt.Errorf("%w: snapshot offset %d of %d", abacus.ErrInvalidArgument, off, total)
	}
	data = make([]byte, min(int64(max), total-off))
	if _, err := f.ReadAt(data, off); err != nil && err != io.EOF {
		return 0, 0, nil, err
	}
	return binary.BigEndian.Uint64(h[:]), total, data, nil
}
