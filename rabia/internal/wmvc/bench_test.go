package wmvc

import "testing"

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
