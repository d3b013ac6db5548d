//go:build unix && !linux

package moto

import "syscall"

func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func killGroup(pid int) {
	_ = syscall.Kill(-pid, syscall.SIGKILL)
}
