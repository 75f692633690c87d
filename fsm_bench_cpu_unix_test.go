//go:build unix

package abacus

import "syscall"

// processCPU returns the CPU time the process has used (user and system,
// all threads, the garbage collector's included), in nanoseconds, and
// whether it is known. Benchmarks report it beside wall time because on a
// shared machine wall time also counts the time other processes held the
// cores.
func processCPU() (int64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), true
}
