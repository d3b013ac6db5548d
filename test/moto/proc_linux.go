//go:build linux

package moto

import "syscall"

// sysProcAttr puts moto (and any child it forks) in its own process group, so Stop can kill
// the whole group, and asks the kernel to kill it if the test process dies first.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

func killGroup(pid int) {
	// The group id is the pid (Setpgid with Pgid 0).
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}
