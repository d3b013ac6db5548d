package node

import (
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is a component run as a child process: it logs to Log, dies with
// this process (SIGKILL when its parent goes), and is stopped with SIGTERM,
// then SIGKILL after a grace period.
type Process struct {
	Name string
	Log  string
	cmd  *exec.Cmd
	done chan struct{}
}

// StartProcess starts binary with args, its output in logPath, its working
// directory dir (when not empty).
func StartProcess(name, logPath, dir, binary string, args ...string) (*Process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &Process{Name: name, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

// Pid is the process ID.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process ended, with how and the end of its log.
func (p *Process) Exited() (bool, string) {
	select {
	case <-p.done:
		return true, fmt.Sprintf("%v; its log ends:\n%s", p.cmd.ProcessState, tail(p.Log, 30))
	default:
		return false, ""
	}
}

// LogTail returns the last lines of its log.
func (p *Process) LogTail(lines int) string { return tail(p.Log, lines) }

// Stop sends SIGTERM and waits up to grace, then kills it; it returns once
// the process is gone. Safe to call more than once.
func (p *Process) Stop(grace time.Duration) {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.cmd.Process.Kill()
		<-p.done
	}
}

// process returns the component's process, nil when it is not running.
func (c *CoreDNS) process() *Process {
	if c == nil {
		return nil
	}
	return c.Process
}

func (p *KubeProxy) process() *Process {
	if p == nil {
		return nil
	}
	return p.Process
}

func (k *Kubelet) process() *Process {
	if k == nil {
		return nil
	}
	return k.Process
}
