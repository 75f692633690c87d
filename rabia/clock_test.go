package rabia

import (
	"testing"
	"time"
)

// TestSMClockNeverLearnsOlder checks the estimate's rule: it advances with
// elapsed time, rises to newer times it learns, and ignores anything older
// than what it extrapolates, such as a slot that took long to decide.
func TestSMClockNeverLearnsOlder(t *testing.T) {
	var c smClock
	t0 := time.Now()
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	ms := func(n int) int64 { return int64(time.Duration(n) * time.Millisecond) }
	if got := c.Read(t0); got != 0 {
		t.Fatalf("empty estimate %d", got)
	}
	steps := []struct {
		name  string
		learn int64 // learned at the step's time, when not negative
		now   int
		want  int64
	}{
		{"first time learned", ms(1000), 0, ms(1000)},
		{"elapsed time advances it", -1, 50, ms(1050)},
		{"a slot decided 200ms ago teaches nothing", ms(850), 50, ms(1050)},
		{"equal time changes nothing", ms(1060), 60, ms(1060)},
		{"a peer ahead raises it", ms(1100), 60, ms(1100)},
		{"and it runs on from there", -1, 100, ms(1140)},
	}
	for _, s := range steps {
		if s.learn >= 0 {
			c.Learn(s.learn, at(s.now))
		}
		if got := c.Read(at(s.now)); got != s.want {
			t.Fatalf("%s: estimate %v, want %v", s.name, time.Duration(got), time.Duration(s.want))
		}
	}
}
