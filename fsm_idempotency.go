package abacus

// Idempotency keys. A proposal with a Key runs once; any later proposal
// with the same key returns the first result without running, for KeyTTL of
// state-machine time after the first one applied. Unlike a session's
// results, a key's result is never dropped early: when MaxKeys results are
// held, a proposal with a new key is refused with CodeLimitReached (and
// does not run) until older keys expire. So within KeyTTL a key is never
// applied twice, whatever the rate of keyed writes; past KeyTTL the key
// names a new write.
//
// Records expire in the order they were made, since state-machine time
// never decreases: the queue is both the expiry order and the snapshot
// order, and neither depends on map iteration.

type keyRecord struct {
	id      KeyID
	expires int64 // state-machine time at which the record is dropped
	result  Result
}

// cost is what a record counts against MaxKeys: one, plus one per
// operation of a batch.
func (r *keyRecord) cost() int { return 1 + len(r.result.Results) }

type keyTable struct {
	byID  map[KeyID]*keyRecord
	queue []*keyRecord // queue[head:] by expiry, oldest first
	head  int
	cost  int // the records' cost, summed
}

func newKeyTable() *keyTable { return &keyTable{byID: make(map[KeyID]*keyRecord)} }

// apply runs p once for its key.
func (t *keyTable) apply(f *FSM, p *Proposal) Result {
	if r := t.byID[p.Key]; r != nil {
		return r.result
	}
	if t.cost >= f.opts.MaxKeys {
		return failed(CodeLimitReached)
	}
	t.push(&keyRecord{id: p.Key, expires: f.after(f.opts.KeyTTL), result: f.execute(&p.Cmd)})
	return t.queue[len(t.queue)-1].result
}

func (t *keyTable) push(r *keyRecord) {
	t.byID[r.id] = r
	t.queue = append(t.queue, r)
	t.cost += r.cost()
}

// expire drops the records whose time has come.
func (t *keyTable) expire(now int64) {
	for t.head < len(t.queue) && t.queue[t.head].expires <= now {
		r := t.queue[t.head]
		t.queue[t.head] = nil
		t.head++
		delete(t.byID, r.id)
		t.cost -= r.cost()
	}
	if t.head > 0 && t.head >= len(t.queue)/2 {
		// Reclaim the expired prefix once it is half the queue, so the
		// queue's room stays within twice what it holds.
		t.queue = append(t.queue[:0:0], t.queue[t.head:]...)
		t.head = 0
	}
}

// each calls fn for every record, oldest first.
func (t *keyTable) each(fn func(*keyRecord)) {
	for _, r := range t.queue[t.head:] {
		fn(r)
	}
}

func (t *keyTable) len() int { return len(t.queue) - t.head }
