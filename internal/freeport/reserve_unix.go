//go:build unix

package freeport

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// dir is the directory shared by every process using this package.
func dir() string { return filepath.Join(os.TempDir(), "abacus-freeport") }

// claim is one port's reservation: an exclusive advisory lock on a file
// named after the port. The lock's descriptor is a raw one, so no
// finalizer closes it; it is held until release, or until the process
// exits and the system drops it.
//
// A file is removed only by a process that holds its lock and has checked
// that the path still names the file it locked (release, sweep), and a
// claim counts only once that same check passes after locking. So a
// process that locks a file another one removed meanwhile notices and
// tries again on a fresh file, and no two processes ever hold one port.
type claim struct {
	fd   int
	path string
}

// reserve claims port among the processes using this package. It reports
// false when another holder has the port. Where no lock can be taken at
// all, the bind check alone decides: the claim is empty and ok is true.
func reserve(port int) (c claim, ok bool) {
	return reserveIn(dir(), port)
}

func reserveIn(d string, port int) (claim, bool) {
	if err := os.MkdirAll(d, 0o755); err != nil {
		return claim{fd: -1}, true
	}
	path := filepath.Join(d, strconv.Itoa(port))
	for range 10 {
		fd, err := syscall.Open(path, syscall.O_CREAT|syscall.O_RDWR|syscall.O_CLOEXEC, 0o644)
		if err != nil {
			return claim{fd: -1}, true
		}
		if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			syscall.Close(fd)
			return claim{fd: -1}, false
		}
		if samePath(fd, path) {
			return claim{fd: fd, path: path}, true
		}
		// Removed by its previous holder or a sweep while this process
		// opened it: the lock is on a file nobody else will look at.
		syscall.Close(fd)
	}
	return claim{fd: -1}, false
}

// release removes the reservation's file and drops its lock, so the port
// may be handed out again.
func (c claim) release() {
	if c.fd < 0 {
		return
	}
	os.Remove(c.path)
	syscall.Close(c.fd)
}

// samePath reports whether path still names the file open as fd.
func samePath(fd int, path string) bool {
	var a, b syscall.Stat_t
	if syscall.Fstat(fd, &a) != nil || syscall.Stat(path, &b) != nil {
		return false
	}
	return a.Dev == b.Dev && a.Ino == b.Ino
}

// sweep removes the reservation files that no process holds: those left
// by processes that exited without releasing their ports.
func sweep() { sweepIn(dir()) }

func sweepIn(d string) {
	entries, err := os.ReadDir(d)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		path := filepath.Join(d, e.Name())
		fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		// A file whose lock is held belongs to a live process.
		if syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB) == nil && samePath(fd, path) {
			os.Remove(path)
		}
		syscall.Close(fd)
	}
}
