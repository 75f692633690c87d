//go:build unix

package freeport

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// reserve claims port among the processes using this package, for the
// rest of this process's life: an exclusive advisory lock on a file named
// after the port in a shared directory. The lock's descriptor is never
// closed (it is a raw descriptor, so no finalizer closes it either); the
// system releases the lock when the process exits. It reports false when
// another holder has the port. Where no lock can be taken at all, the
// bind check alone decides.
func reserve(port int) bool {
	dir := filepath.Join(os.TempDir(), "abacus-freeport")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return true
	}
	fd, err := syscall.Open(filepath.Join(dir, strconv.Itoa(port)), syscall.O_CREAT|syscall.O_RDWR|syscall.O_CLOEXEC, 0o644)
	if err != nil {
		return true
	}
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		syscall.Close(fd)
		return false
	}
	return true
}
