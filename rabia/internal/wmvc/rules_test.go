package wmvc

import (
	"errors"
	"testing"
)

func digestOf(tag string) Digest { return (&Value{ID: []byte(tag)}).Digest() }

func TestProposalRule(t *testing.T) {
	a, b := digestOf("a"), digestOf("b")
	type prop struct {
		bit uint8
		d   Digest
	}
	A, B, N := prop{1, a}, prop{1, b}, prop{}
	cases := []struct {
		name  string
		maj   int
		props []prop
		state uint8
		m     Digest
	}{
		{"n3 both same", 2, []prop{A, A}, 1, a},
		{"n3 split", 2, []prop{A, B}, 0, Digest{}},
		{"n3 value and null", 2, []prop{A, N}, 0, Digest{}},
		{"n3 both null", 2, []prop{N, N}, 0, Digest{}},
		{"n5 exactly majority", 3, []prop{A, A, A}, 1, a},
		{"n5 one short", 3, []prop{A, B, A}, 0, Digest{}},
		{"n5 majority of other value", 3, []prop{B, B, B}, 1, b},
		{"n5 nulls are not a value", 3, []prop{N, N, N}, 0, Digest{}},
		{"n5 split three ways", 3, []prop{A, B, N}, 0, Digest{}},
		{"n1 own value", 1, []prop{A}, 1, a},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var bits []uint8
			var ds []Digest
			for _, p := range tc.props {
				bits = append(bits, p.bit)
				ds = append(ds, p.d)
			}
			state, m := proposalRule(bits, ds, tc.maj)
			if state != tc.state || m != tc.m {
				t.Fatalf("got state %d digest %x, want %d %x", state, m[:4], tc.state, tc.m[:4])
			}
		})
	}
}

func TestVoteRule(t *testing.T) {
	cases := []struct {
		name   string
		maj    int
		states []uint8
		vote   uint8
	}{
		{"n3 both 1", 2, []uint8{1, 1}, 1},
		{"n3 both 0", 2, []uint8{0, 0}, 0},
		{"n3 mixed", 2, []uint8{1, 0}, VoteUnknown},
		{"n5 all 1", 3, []uint8{1, 1, 1}, 1},
		{"n5 all 0", 3, []uint8{0, 0, 0}, 0},
		{"n5 two of three", 3, []uint8{1, 0, 1}, VoteUnknown},
		{"n5 two zeros", 3, []uint8{0, 1, 0}, VoteUnknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := voteRule(tc.states, tc.maj); got != tc.vote {
				t.Fatalf("got %d, want %d", got, tc.vote)
			}
		})
	}
}

func TestVoteOutcome(t *testing.T) {
	const U = VoteUnknown
	cases := []struct {
		name  string
		f     int
		votes []uint8
		want  outcome
	}{
		{"n3 two 1 decide", 1, []uint8{1, 1}, outcome{decide: true, bit: 1}},
		{"n3 two 0 decide", 1, []uint8{0, 0}, outcome{decide: true, bit: 0}},
		{"n3 one 1 adopt", 1, []uint8{1, U}, outcome{bit: 1}},
		{"n3 one 0 adopt", 1, []uint8{U, 0}, outcome{bit: 0}},
		{"n3 all unknown coin", 1, []uint8{U, U}, outcome{coin: true}},
		{"n5 three 1 decide", 2, []uint8{1, 1, 1}, outcome{decide: true, bit: 1}},
		{"n5 two 1 adopt only", 2, []uint8{1, U, 1}, outcome{bit: 1}},
		{"n5 two 0 adopt only", 2, []uint8{0, 0, U}, outcome{bit: 0}},
		{"n5 one 0 adopt", 2, []uint8{U, U, 0}, outcome{bit: 0}},
		{"n5 all unknown coin", 2, []uint8{U, U, U}, outcome{coin: true}},
		{"conflict is never adopted", 1, []uint8{0, 1}, outcome{coin: true, conflict: true}},
		{"n5 conflict with f+1 does not decide", 2, []uint8{1, 1, 0}, outcome{coin: true, conflict: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := voteOutcome(tc.votes, tc.f); got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestCoin(t *testing.T) {
	secret := []byte("0123456789abcdef")
	e1, e2 := newCoin(secret), newCoin(secret)
	other := newCoin([]byte("fedcba9876543210"))
	ones, differ := 0, 0
	const rounds = 2000
	for i := 0; i < rounds; i++ {
		slot, phase := uint64(i/4), uint32(i%4+1)
		b := e1.flip(slot, phase)
		if b > 1 {
			t.Fatalf("coin gave %d", b)
		}
		if e2.flip(slot, phase) != b || Coin(secret, slot, phase) != b {
			t.Fatalf("coin(%d,%d) differs between replicas", slot, phase)
		}
		if other.flip(slot, phase) != b {
			differ++
		}
		ones += int(b)
	}
	// A fair bit: far outside these bounds has probability < 1e-9.
	if ones < rounds*4/10 || ones > rounds*6/10 {
		t.Fatalf("coin gave %d ones in %d flips", ones, rounds)
	}
	if differ < rounds*4/10 || differ > rounds*6/10 {
		t.Fatalf("another secret agrees on %d of %d flips", rounds-differ, rounds)
	}
}

func TestNewEngineRejects(t *testing.T) {
	secret := []byte("0123456789abcdef")
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no replicas", Config{N: 0, Secret: secret}},
		{"too many replicas", Config{N: MaxReplicas + 1, Secret: secret}},
		{"id out of range", Config{ID: 3, N: 3, Secret: secret}},
		{"negative id", Config{ID: -1, N: 3, Secret: secret}},
		{"short secret", Config{N: 3, Secret: []byte("short")}},
		{"negative payload bound", Config{N: 3, Secret: secret, MaxPayload: -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := NewEngine(tc.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
		})
	}
}
