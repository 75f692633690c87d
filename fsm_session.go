package abacus

// The exactly-once table. A client opens a session (OpSessionOpen) and the
// state machine issues its id; each session records the results of its
// proposals until the client acknowledges them (Proposal.Ack), so a retried
// proposal returns its first result instead of applying twice. Memory is
// bounded three ways: the client's window of unacknowledged proposals,
// idle expiry by state-machine time, and caps on sessions and recorded
// results that evict the least recently active session. Sessions sit on a
// list ordered by last activity, which is also their snapshot order, so
// eviction and encoding are deterministic.
//
// Forgetting a session never lets a retry apply twice: only OpSessionOpen
// creates a session, and ids are issued in increasing order and never
// reused, so a proposal whose session the table does not hold was refused
// or forgotten, and is refused with CodeSessionExpired without running.

type session struct {
	id         uint64
	ack        uint64 // every Seq below ack has been acknowledged
	lastSeen   int64  // state-machine time of the last proposal
	results    map[uint64]Result
	prev, next *session
}

type sessionTable struct {
	issued  uint64 // the last session id issued
	byID    map[uint64]*session
	head    session // sentinel of the activity list; head.next is the oldest
	results int     // recorded results over all sessions
}

func newSessionTable() *sessionTable {
	t := &sessionTable{byID: make(map[uint64]*session)}
	t.head.next, t.head.prev = &t.head, &t.head
	return t
}

func (t *sessionTable) unlink(s *session) {
	s.prev.next, s.next.prev = s.next, s.prev
	s.prev, s.next = nil, nil
}

func (t *sessionTable) pushBack(s *session) {
	last := t.head.prev
	s.prev, s.next = last, &t.head
	last.next, t.head.prev = s, s
}

func (t *sessionTable) oldest() *session {
	if t.head.next == &t.head {
		return nil
	}
	return t.head.next
}

func (t *sessionTable) remove(s *session) {
	t.unlink(s)
	delete(t.byID, s.id)
	t.results -= len(s.results)
}

// each calls fn for every session from least to most recently active.
func (t *sessionTable) each(fn func(*session)) {
	for s := t.head.next; s != &t.head; s = s.next {
		fn(s)
	}
}

// expire forgets sessions idle since before cutoff.
func (t *sessionTable) expire(cutoff int64) {
	for s := t.oldest(); s != nil && s.lastSeen < cutoff; s = t.oldest() {
		t.remove(s)
	}
}

// apply runs p exactly once for its client.
func (t *sessionTable) apply(f *FSM, p *Proposal) Result {
	s := t.byID[p.Client]
	if s == nil {
		// Never opened, or forgotten since: whether p ran before cannot be
		// told, so it does not run now.
		return failed(CodeSessionExpired)
	}
	t.unlink(s)
	s.lastSeen = f.now
	t.pushBack(s)
	if p.Ack > s.ack {
		t.acknowledge(s, p.Ack)
	}
	if p.Seq < s.ack {
		return failed(CodeStaleSequence)
	}
	if r, ok := s.results[p.Seq]; ok {
		return r
	}
	if p.Seq-s.ack >= f.opts.SessionWindow {
		return failed(CodeTooManyInFlight)
	}
	r := f.execute(&p.Cmd)
	s.results[p.Seq] = r
	t.results++
	t.enforce(f.opts, s)
	return r
}

// open starts a session under the next id.
func (t *sessionTable) open(f *FSM) Result {
	t.issued++
	s := &session{id: t.issued, ack: 1, lastSeen: f.now, results: make(map[uint64]Result)}
	t.byID[s.id] = s
	t.pushBack(s)
	t.enforce(f.opts, s)
	f.ops++
	return Result{Value: int64(s.id), Index: -1}
}

// acknowledge drops the results of s below ack.
func (t *sessionTable) acknowledge(s *session, ack uint64) {
	if ack-s.ack <= uint64(len(s.results)) {
		for seq := s.ack; seq < ack; seq++ {
			if _, ok := s.results[seq]; ok {
				delete(s.results, seq)
				t.results--
			}
		}
	} else {
		// A long jump: scanning the map is cheaper than walking the gap, and
		// deletion order does not affect the resulting state.
		for seq := range s.results {
			if seq < ack {
				delete(s.results, seq)
				t.results--
			}
		}
	}
	s.ack = ack
}

// enforce evicts least recently active sessions, never current, until the
// caps hold.
func (t *sessionTable) enforce(o FSMOptions, current *session) {
	for len(t.byID) > o.MaxSessions || t.results > o.MaxResults {
		s := t.oldest()
		if s == nil || s == current {
			return
		}
		t.remove(s)
	}
}
