// Command pause is the test node's pod sandbox process, doing what
// registry.k8s.io/pause does: hold the pod's namespaces, reap orphaned
// children (it is PID 1 of the pod), exit 0 on SIGINT or SIGTERM. The test
// node builds it statically and puts it in a local image (no registry here).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig == syscall.SIGCHLD {
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
