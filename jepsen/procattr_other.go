//go:build unix && !linux

package main

import "syscall"

// procAttr puts a node process in its own process group, so a terminal's
// signals reach only the harness.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
