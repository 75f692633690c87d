//go:build linux

package main

import "syscall"

// procAttr puts a node process in its own process group (so a terminal's
// signals reach only the harness), and has the kernel kill it should the
// harness die first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
