//go:build linux

package main

import "syscall"

// childAttr puts a node process in its own process group, and has the
// kernel kill it should this process die first.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
