package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/kubernetes/test/utils/ktesting"
)

// ControllerManagerPackage is the real kube-controller-manager, built from
// the test module (a tool directive in test/go.mod) at the release the
// in-process kube-apiserver is built from.
const ControllerManagerPackage = "k8s.io/kubernetes/cmd/kube-controller-manager"

// ControllerManager is a kube-controller-manager child process running the
// controllers the in-process API server lacks, for a test world with a real
// node: Deployments and ReplicaSets make real pods, EndpointSlices list
// their real addresses, PodDisruptionBudgets get their status from the
// disruption controller. None of it is simulated.
type ControllerManager struct {
	Log    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartControllerManager runs binary against the API server with only the
// named controllers, no leader election and no serving port (nothing
// listens), until t's cleanups run.
func StartControllerManager(t ktesting.TB, api *APIServer, binary, dir string, controllers ...string) (*ControllerManager, error) {
	logPath := filepath.Join(dir, "kube-controller-manager.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(binary,
		"--kubeconfig", api.Kubeconfig,
		"--controllers", strings.Join(controllers, ","),
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--secure-port=0",
		"--concurrent-deployment-syncs=2",
		"--concurrent-replicaset-syncs=2",
		"--v=2",
	)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &ControllerManager{Log: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-c.exited
		}
	})
	// Bad flags end it at once; the tests' own waits (pods appearing,
	// budgets getting a status) show that its controllers work.
	select {
	case <-c.exited:
		return nil, fmt.Errorf("kube-controller-manager exited: %s", tailFile(logPath, 20))
	case <-time.After(time.Second):
	}
	return c, nil
}

// LogTail returns the last lines of its log.
func (c *ControllerManager) LogTail(lines int) string { return tailFile(c.Log, lines) }

func tailFile(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}
