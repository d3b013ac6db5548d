package harness

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/kubernetes/test/utils/ktesting"

	"github.com/kubectl-dualstack/kubectl-dualstack/test/node"
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
type ControllerManager struct{ *node.Process }

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
	p, err := node.StartProcess(name, filepath.Join(dir, name+".log"), "", binary, args...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { p.Stop(10 * time.Second) })
	// Bad flags end it at once; the tests' own waits (pods appearing,
	// budgets getting a status) show that its controllers work.
	time.Sleep(time.Second)
	if gone, log := p.Exited(); gone {
		return nil, fmt.Errorf("%s exited: %s", name, log)
	}
	return &ControllerManager{p}, nil
}
