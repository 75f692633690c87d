package wmvc

// The round rules of Weak-MVC (Rabia, SOSP 2021, Algorithm "Weak-MVC"), as
// pure functions of exactly the n-f messages a round is evaluated on. With
// n replicas, f = (n-1)/2 and maj = n/2+1; note that n-f == maj for every
// n, so "maj of the n-f" means "all of them".

// proposalRule: state 1 if some non-null value appears at least maj times
// among the proposals (bits[i] == 1 marks a non-null proposal with digest
// digests[i]), returning that value's digest; else state 0. At most one value
// can reach maj, because a value with maj proposals out of the n replicas
// leaves fewer than maj replicas for any other value.
func proposalRule(bits []uint8, digests []Digest, maj int) (state uint8, m Digest) {
	for i := range bits {
		if bits[i] != 1 {
			continue
		}
		c := 0
		for j := range bits {
			if bits[j] == 1 && digests[j] == digests[i] {
				c++
			}
		}
		if c >= maj {
			return 1, digests[i]
		}
	}
	return 0, Digest{}
}

// voteRule: vote v if at least maj states are v, else VoteUnknown ('?').
// Two replicas never vote 0 and 1 in the same phase: each needs maj states,
// and a replica sends one state per phase.
func voteRule(states []uint8, maj int) uint8 {
	var c [2]int
	for _, b := range states {
		if b <= 1 {
			c[b]++
		}
	}
	switch {
	case c[1] >= maj:
		return 1
	case c[0] >= maj:
		return 0
	}
	return VoteUnknown
}

// outcome is what a phase's votes lead to.
type outcome struct {
	decide   bool  // decide bit
	bit      uint8 // decided value, or next state when !coin
	coin     bool  // next state = coin(slot, phase)
	conflict bool  // votes for both 0 and 1 (impossible when all follow the protocol)
}

// voteOutcome: decide v if at least f+1 votes are v (v not '?'); else the
// next state is v if some vote is v; else it is the common coin.
//
// Agreement: if some replica decides v in phase p it saw f+1 votes v, so
// every replica's n-f votes of phase p include a v (f+1 + n-f > n) and none
// is the other value; each replica therefore decides v or takes state v,
// phase p+1 has only states v, every vote is v and everyone decides v.
func voteOutcome(votes []uint8, f int) outcome {
	var c [3]int
	for _, b := range votes {
		if b <= VoteUnknown {
			c[b]++
		}
	}
	conflict := c[0] > 0 && c[1] > 0
	switch {
	case c[1] >= f+1 && !conflict:
		return outcome{decide: true, bit: 1}
	case c[0] >= f+1 && !conflict:
		return outcome{decide: true, bit: 0}
	case c[1] > 0 && !conflict:
		return outcome{bit: 1}
	case c[0] > 0 && !conflict:
		return outcome{bit: 0}
	}
	return outcome{coin: true, conflict: conflict}
}
