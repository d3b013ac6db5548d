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

// SchedulerPackage is the real kube-scheduler (a tool directive too).
const SchedulerPackage = "k8s.io/kubernetes/cmd/kube-scheduler"

// StartScheduler runs kube-scheduler against the API server (no leader
// election, no serving port) until t's cleanups run: pods that name no node
// get the real node.
func StartScheduler(t ktesting.TB, api *APIServer, binary, dir string) (*ControllerManager, error) {
	return startChild(t, "kube-scheduler", binary, dir,
		"--kubeconfig", api.Kubeconfig, "--leader-elect=false", "--secure-port=0", "--v=2")
}

// ControllerManager is a kube-controller-manager child process running the
// controllers the in-process API server lacks, for a test world with a real
// node: Deployments and ReplicaSets make real pods, EndpointSlices list
// their real addresses, PodDisruptionBudgets get their status from the
// disruption controller. None of it is simulated. (kube-scheduler runs as
// one too.)
type ControllerManager struct {
	Log    string
	cmd    *exec.Cmd
	exited chan struct{}
}

// StartControllerManager runs binary against the API server with only the
// named controllers, no leader election and no serving port (nothing
// listens), until t's cleanups run.
func StartControllerManager(t ktesting.TB, api *APIServer, binary, dir string, controllers ...string) (*ControllerManager, error) {
	return startChild(t, "kube-controller-manager", binary, dir,
		"--kubeconfig", api.Kubeconfig,
		"--controllers", strings.Join(controllers, ","),
		"--leader-elect=false",
		"--use-service-account-credentials=false",
		"--secure-port=0",
		"--concurrent-deployment-syncs=2",
		"--concurrent-replicaset-syncs=2",
		"--v=2",
	)
}

// startChild runs a component as a child process that dies with this one,
// logging to dir/<name>.log, and stops it in t's cleanups.
func startChild(t ktesting.TB, name, binary, dir string, args ...string) (*ControllerManager, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	cmd := exec.Command(binary, args...)
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
		return nil, fmt.Errorf("%s exited: %s", name, tailFile(logPath, 20))
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
