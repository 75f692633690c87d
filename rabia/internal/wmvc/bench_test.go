package wmvc

import (
	"fmt"
	"testing"
)

// BenchmarkSimulatedSlots measures slots decided per second (on every
// replica) in the simulated network without I/O: three replicas, no faults,
// every message encoded and decoded, four slots in flight per replica.
func BenchmarkSimulatedSlots(b *testing.B) {
	for _, bc := range []struct {
		name string
		cfg  simConfig
	}{
		{"n3", simConfig{n: 3, encode: true}},
		{"n5", simConfig{n: 5, encode: true}},
		{"n3/mixed/lossy", simConfig{n: 3, encode: true, mixed: true, loss: 0.05, dup: 0.05}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			const slots = 500
			b.ReportAllocs()
			runs := 0
			for b.Loop() {
				cfg := bc.cfg
				cfg.slots = slots
				cfg.seed = uint64(runs + 1)
				s := newSim(b, cfg)
				s.run()
				runs++
			}
			b.ReportMetric(float64(runs*slots)/b.Elapsed().Seconds(), "slots/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkEngineFIFO measures the engines alone: n replicas exchange
// messages through in-memory FIFO queues (no encoding, no scheduler), all
// proposing the same 1 KiB value per slot, one slot at a time. One op is
// one slot decided on every replica.
func BenchmarkEngineFIFO(b *testing.B) {
	for _, n := range []int{3, 5} {
		b.Run(fmt.Sprintf("n%d", n), func(b *testing.B) {
			engines := make([]*Engine, n)
			for i := range engines {
				e, err := NewEngine(Config{ID: i, N: n, Secret: []byte("benchmark coin secret")})
				if err != nil {
					b.Fatal(err)
				}
				engines[i] = e
			}
			type pkt struct {
				from, to int
				m        Message
			}
			var q []pkt
			decided := 0
			collect := func(from int) {
				rd := engines[from].Ready()
				decided += len(rd.Decisions)
				for _, d := range rd.Decisions {
					engines[from].Persisted(d.Slot)
				}
				rd.Messages = append(rd.Messages, engines[from].Ready().Messages...)
				for _, env := range rd.Messages {
					for to := 0; to < n; to++ {
						if to != from && (env.To == Broadcast || env.To == to) {
							q = append(q, pkt{from, to, env.Msg})
						}
					}
				}
			}
			payload := make([]byte, 1024)
			b.ReportAllocs()
			slot := uint64(0)
			for b.Loop() {
				v := &Value{ID: []byte(fmt.Sprintf("batch-%d", slot)), Payload: payload}
				for i, e := range engines {
					if err := e.Propose(slot, v); err != nil {
						b.Fatal(err)
					}
					collect(i)
				}
				for len(q) > 0 {
					p := q[0]
					q = q[1:]
					if err := engines[p.to].Step(p.from, p.m); err != nil {
						b.Fatal(err)
					}
					collect(p.to)
				}
				if slot >= 8 {
					for _, e := range engines {
						e.Compact(slot - 8)
					}
				}
				slot++
			}
			if decided != int(slot)*n {
				b.Fatalf("%d decisions for %d slots", decided, slot)
			}
			b.ReportMetric(float64(slot)/b.Elapsed().Seconds(), "slots/s")
		})
	}
}
